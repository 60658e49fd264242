#!/usr/bin/env bash
# Makes the tiny random-weight demo model in models/default once (its answers are noise) and
# prints its directory. Needs build/qnext.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=models/default
if [ ! -f "$dir/generation_config.json" ]; then
  echo "Creating a tiny random-weight demo model in $dir (its answers are noise)..." >&2
  rm -rf "$dir"
  build/qnext synth --preset tiny --seed 1 --out "$dir" >&2
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
echo "$dir"
