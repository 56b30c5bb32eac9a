#!/usr/bin/env bash
# Validates Kubernetes manifests against the Kubernetes API schema, offline: the PyPI
# package kubernetes-validate (pinned) ships the published API's JSON schemas. Installs it
# once into TARGET/k8s-venv (PyPI through pip is the only network use).
# Usage: k8s-validate.sh TARGET FILE...
set -euo pipefail
target=${1:?usage: k8s-validate.sh TARGET FILE...}; shift
venv="$target/k8s-venv"
if ! "$venv/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q kubernetes-validate==1.37.0 >&2
fi
exec "$venv/bin/kubernetes-validate" --strict -k 1.33.0 "$@"
