#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan/UBSan) into build-fuzz and runs them.
#   scripts/fuzz.sh [TARGET|all] [SECONDS]    default: all targets, 30 seconds each
# FUZZ_FLAGS adds libFuzzer flags, e.g. FUZZ_FLAGS=-runs=1000000 stops a target after a million
# executions if that comes before SECONDS. Each target starts from its seeds (generated from
# tests/data and assets by make_seeds), the reproducers kept in fuzz/corpus/<target>, and what
# earlier runs found (build-fuzz/corpus/<target>). Prints per target the executions and coverage
# (libFuzzer's final stats); exits non-zero if any target crashed, leaked, hung or ran out of
# memory, with the input saved under build-fuzz/artifacts/<target>/ and the log under build-fuzz/logs/.
set -euo pipefail
cd "$(dirname "$0")/.."

all=(safetensors safetensors_index gguf config quant_config generation_config tokenizer tokenizer_json chat_output openai_request jinja chat_template grammar json_schema)
declare -A max_len=([safetensors]=16384 [safetensors_index]=8192 [gguf]=65536 [config]=16384 [quant_config]=16384 [generation_config]=4096
  [tokenizer]=4096 [tokenizer_json]=20000 [chat_output]=4096 [openai_request]=8192 [jinja]=8192 [chat_template]=8192
  [grammar]=2048 [json_schema]=4096)
declare -A dict=([safetensors]=json [safetensors_index]=json [gguf]=gguf [config]=json [quant_config]=json [generation_config]=json [tokenizer]=tokenizer
  [tokenizer_json]=json [chat_output]=chat_output [openai_request]=json [jinja]=jinja [chat_template]=json
  [grammar]=grammar [json_schema]=json)

target=${1:-all}
seconds=${2:-30}
if [ "$target" = all ]; then
  targets=("${all[@]}")
elif [ -n "${max_len[$target]:-}" ]; then
  targets=("$target")
else
  echo "usage: scripts/fuzz.sh [TARGET|all] [SECONDS]; targets: ${all[*]}" >&2
  exit 2
fi
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "SECONDS must be a number, not '$seconds'" >&2; exit 2; }

scripts/install-deps.sh
b=build-fuzz
if [ ! -f $b/CMakeCache.txt ]; then
  CC=clang CXX=clang++ cmake -S . -B $b -DCMAKE_BUILD_TYPE=Release -DQNEXT_FUZZ=ON -DQNEXT_SERVER_E2E=OFF > /dev/null
fi
cmake --build $b --target fuzz -j"$(nproc 2>/dev/null || echo 2)"
rm -rf $b/seeds
$b/fuzz/make_seeds . $b/seeds

failed=()
for t in "${targets[@]}"; do
  mkdir -p $b/corpus/$t $b/seeds/$t $b/artifacts/$t $b/logs
  dirs=($b/corpus/$t $b/seeds/$t)
  [ -d fuzz/corpus/$t ] && dirs+=(fuzz/corpus/$t)
  log=$b/logs/$t.log
  rc=0
  # shellcheck disable=SC2086
  $b/fuzz/fuzz_$t "${dirs[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="${max_len[$t]}" \
    -dict=fuzz/dicts/${dict[$t]}.dict -print_final_stats=1 -artifact_prefix=$b/artifacts/$t/ ${FUZZ_FLAGS:-} \
    > "$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -1 || true)
  if [ "$rc" -eq 0 ]; then
    printf '%-18s ok      %10s execs  %-22s peak rss %s MB\n' "$t" "${execs:-?}" "${cov:-cov: ?}" "${rss:-?}"
  else
    printf '%-18s FAILED  %10s execs  %-22s (exit %d, log %s)\n' "$t" "${execs:-?}" "${cov:-cov: ?}" "$rc" "$log"
    grep -E 'ERROR|SUMMARY:|runtime error|property violated|Test unit written|ParseDictionaryFile' "$log" | head -5 | sed 's/^/    /' || true
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failures in ${failed[*]}" >&2
  exit 1
fi
