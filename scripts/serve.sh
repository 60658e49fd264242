#!/usr/bin/env bash
# Builds qnext and starts the OpenAI-compatible server (http://127.0.0.1:8080/v1).
#   scripts/serve.sh                      # the tiny random-weight demo model (models/default)
#   scripts/serve.sh --model DIR [ARGS]   # a real model directory; ARGS go to `qnext serve`
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
for arg in "$@"; do
  case "$arg" in
    --model|-m|--model=*) exec build/qnext serve "$@" ;;
  esac
done
dir=$(scripts/demo-model.sh)
exec build/qnext serve --model "$dir" "$@"
