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

dir=models/default
if [ ! -f "$dir/generation_config.json" ]; then
  echo "Creating a tiny random-weight demo model in $dir (its answers are noise)..." >&2
  rm -rf "$dir"
  build/qnext synth --preset tiny --seed 1 --out "$dir"
  cp assets/tokenizer/tokenizer.json assets/tokenizer/tokenizer_config.json "$dir"/
  # Written last: its presence marks the directory complete.
  cat > "$dir/generation_config.json" <<'JSON'
{
  "do_sample": true,
  "temperature": 0.7,
  "top_p": 0.8,
  "top_k": 20,
  "eos_token_id": [151645, 151643]
}
JSON
fi
exec build/qnext chat --model "$dir" "$@"
