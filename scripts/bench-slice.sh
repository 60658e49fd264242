#!/usr/bin/env bash
# The performance table of the README: a 4-layer slice of Qwen3-Next-80B-A3B with the real
# per-layer dimensions (16.5 GiB at BF16), its q8 / q4-mixed / q4 versions, and `qnext bench` on
# each: pp512 + tg128, pp8192, and tg at a depth of 8192 tokens with an f32 and an f16 KV cache.
# Makes what is missing under models/ (about 35 GiB in all), then prints one JSON line per run to
# stdout.
#
#   scripts/bench-slice.sh [threads] [formats...]    (default: 2 bf16 q8 q4-mixed q4)
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
shift || true
formats=("$@")
[[ ${#formats[@]} -gt 0 ]] || formats=(bf16 q8 q4-mixed q4)
scripts/build.sh >&2
qnext=build/qnext

slice=models/slice4
if [[ ! -f $slice/config.json ]]; then
  $qnext synth --preset qwen3-next-80b-a3b --layers 4 --out "$slice" >&2
fi
for type in q8 q4-mixed q4; do
  if [[ ! -f $slice-$type/config.json ]]; then
    $qnext quantize --model "$slice" --type "$type" --out "$slice-$type" >&2
  fi
done

for format in "${formats[@]}"; do
  model="$slice-$format"
  [[ $format != bf16 ]] || model="$slice"
  $qnext bench --model "$model" -t "$threads" -p 512 -n 128 -r 3 --json
  $qnext bench --model "$model" -t "$threads" -p 8192 -n 0 -r 1 --json
  for kv in f32 f16; do
    $qnext bench --model "$model" -t "$threads" -p 0 -n 64 -r 1 --depth 8192 --kv-type "$kv" --json
  done
done
