#!/usr/bin/env bash
# Builds qnext and starts an interactive chat.
#   scripts/chat.sh                      # a tiny random-weight demo model (created once in models/default)
#   scripts/chat.sh --model DIR [ARGS]   # a real model directory; ARGS go to `qnext chat`
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh

for arg in "$@"; do
  case "$arg" in
    --model|-m|--model=*) exec build/qnext chat "$@" ;;
  esac
done

dir=$(scripts/demo-model.sh)
exec build/qnext chat --model "$dir" "$@"
