#!/usr/bin/env bash
# Serves the live model for one test or bench process and stops with it: the server is
# killed when the watched process (the test binary) is gone, even if it never ran its
# destructors (a shared server kept in a static, a panic, a SIGKILL).
# Usage: tests/live/serve.sh WATCH_PID VENV GGUF PORT N_CTX [extra server args...]
set -u
watch=$1 venv=$2 gguf=$3 port=$4 n_ctx=$5
shift 5
# chatml-function-calling: the GGUF's own template drops `tools` silently; this format
# returns OpenAI tool_calls (when the request says `tool_choice`).
# Passive OpenMP waits: spinning worker threads on a shared 2-core machine made requests
# three times slower.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} "$venv/bin/python" -m llama_cpp.server --model "$gguf" --model_alias SmolLM2-135M-Instruct \
  --host 127.0.0.1 --port "$port" --n_ctx "$n_ctx" --n_threads 2 --n_threads_batch 2 \
  --chat_format chatml-function-calling --verbose False "$@" &
server=$!
trap 'kill $server 2>/dev/null; exit 0' TERM INT HUP
while kill -0 "$watch" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
kill "$server" 2>/dev/null
wait "$server"
