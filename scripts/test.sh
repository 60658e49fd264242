#!/usr/bin/env bash
# The test suite: set up, build, then ctest.
#   scripts/test.sh             the normal build (build/) and every test
#   scripts/test.sh --asan      every test, built with ASan + UBSan (g++, build-asan/)
#   scripts/test.sh --tsan      the concurrent parts built with TSan (build-tsan/): the thread pool,
#                               generator, engine and server tests, the server end-to-end included
#   scripts/test.sh --sanitize  --asan, then --tsan
# Sanitized runs stop a test at its first report, also in the processes tests start (the qnext
# binary, `qnext serve` under the end-to-end test). Suppressions for what is not our bug:
# tests/sanitizers/*.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc 2>/dev/null || echo 2)

modes=()
for arg in "$@"; do
  case "$arg" in
    --asan) modes+=(asan) ;;
    --tsan) modes+=(tsan) ;;
    --sanitize) modes+=(asan tsan) ;;
    *) echo "usage: scripts/test.sh [--asan|--tsan|--sanitize]" >&2; exit 2 ;;
  esac
done

# The npm packages of the server's end-to-end test (the openai client) and of the chat page's
# browser test (puppeteer-core), from the committed lockfiles; again only when node_modules is
# missing or older than the lockfile.
e2e_setup() {
  local dir
  for dir in tests/server/e2e tests/server/webui; do
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund)
    fi
  done
}

if ((${#modes[@]} == 0)); then
  scripts/build.sh
  e2e_setup
  ctest --test-dir build --output-on-failure -j"$jobs"
  exit 0
fi

# sanitized <build dir> <address|thread> <targets to build or ""> [ctest arguments...]
sanitized() {
  local dir=$1 san=$2 targets=$3
  shift 3
  scripts/install-deps.sh
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DQNEXT_SANITIZE="$san" > /dev/null
  if [ -n "$targets" ]; then
    # shellcheck disable=SC2086
    cmake --build "$dir" -j"$jobs" --target $targets
  else
    cmake --build "$dir" -j"$jobs"
  fi
  e2e_setup
  # Options for the tests and every process they start. A report stops the process (and fails its
  # test); the end-to-end test echoes its servers' stderr, so a report from `qnext serve` shows in
  # its failure output, and allows 4x its deadlines for the slower model.
  local supp=$root/tests/sanitizers
  ASAN_OPTIONS="detect_leaks=${LEAKS:-1}" \
  LSAN_OPTIONS="suppressions=$supp/lsan.supp" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp" \
  TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp" \
  QNEXT_E2E_VERBOSE=1 QNEXT_E2E_TIMEOUT_SCALE=4 \
    ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@"
}

for mode in "${modes[@]}"; do
  if [ "$mode" = asan ]; then
    # The tests that run mpirun (expert parallelism) without leak checks, every other check on: Open
    # MPI leaves its own allocations at exit, from components it has unloaded by then, so their
    # stacks cannot be told apart from ours by a suppression. Leaks of the forward pass are checked
    # in one process by the first run; the exchange code (runtime/expert_parallel.cpp) holds its
    # buffers in vectors.
    mpi_tests='ExpertParallel|^server_e2e_mpi$'
    sanitized build-asan address "" -E "$mpi_tests"
    LEAKS=0 sanitized build-asan address "" -R "$mpi_tests"
  else
    # The thread pool, generation, the engine's scheduler, the expert cache's reader threads and the
    # server (its request layer and, end to end, `qnext serve` with its HTTP threads and engine thread).
    sanitized build-tsan thread "qnext test_thread_pool test_generator test_engine test_openai_request test_openai_response test_expert_cache" \
      -R '^(ThreadPool|Generator|ChatSession|StopStrings|Engine|StateCache|ChatRequest|CompletionRequest|ChatResponse|CompletionResponse|Sse|Ids|Metrics|ApiErrorJson|ExpertCache|ExpertCacheCli|ExpertTrace|ExpertPrefetch|Formats/ExpertCacheModels|Modes/DirectReaderModes)\.|^server_e2e(_constrained)?$'
  fi
done
