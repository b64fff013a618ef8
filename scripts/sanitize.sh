#!/usr/bin/env bash
# Sanitizer and fuzz runs for ramjet (issue #9; docs/HARDENING.md).
#
#   scripts/sanitize.sh [asan] [tsan] [fuzz]      (no argument: all three, in that order)
#
#   asan  clang build of the library, CLI and CPU tests with AddressSanitizer + UBSan (and
#         libFuzzer's coverage hooks, so the same objects serve the fuzzers), then
#         `ctest -L cpu -LE slow`: every error halts the test, leaks included.
#   tsan  ThreadSanitizer build of the library + unit tests; runs the tests that use threads
#         (engine contexts, thread pool, batcher, HTTP server) through TSAN_GTEST_FILTER.
#   fuzz  replays every saved crash input, then runs each libFuzzer target for FUZZ_SECONDS
#         (default 20) from its seed corpus (tests/fuzz/run_fuzzers.sh; longer runs: call it).
#
# Environment: SAN_BUILD_PREFIX (default build-san: build-san-asan, build-san-tsan),
# FUZZ_SECONDS, TSAN_GTEST_FILTER, SAN_CTEST_ARGS (extra ctest arguments, e.g. -R Faults).
# Needs clang and libclang-rt-14-dev (Debian 12) for -fsanitize=fuzzer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$root}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
prefix=${SAN_BUILD_PREFIX:-build-san}
fuzz_seconds=${FUZZ_SECONDS:-20}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(asan tsan fuzz)
supp=$root/tests/sanitize

# halt_on_error everywhere: a sanitizer report fails the test that triggered it.
export ASAN_OPTIONS="halt_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1:detect_odr_violation=2:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:suppressions=$supp/ubsan.supp"
export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$supp/tsan.supp"

for tool in clang clang++; do
  command -v $tool >/dev/null || { echo "sanitize: $tool not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
done

configure() {  # dir, extra cmake args...
  local dir=$1; shift
  if [ ! -f "$dir/build.ninja" ]; then
    # -O1: what the sanitizers recommend, and 3-4x quicker to compile than -O3 on this code.
    CC=clang CXX=clang++ cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      "-DCMAKE_CXX_FLAGS_RELEASE=-O1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELEASE=-O1 -DNDEBUG" \
      -DRAMJET_CUDA=OFF -DRAMJET_PYTHON=OFF "$@" >/dev/null
  fi
}

secs() { echo $(( $(date +%s) - $1 )); }
status=0
asan_dir=$prefix-asan
for step in "${steps[@]}"; do
  t0=$(date +%s)
  case $step in
    asan)
      configure "$asan_dir" -DRAMJET_FUZZ=ON  # = clang ASan+UBSan (+ coverage hooks)
      ninja -C "$asan_dir"
      echo "[sanitize] asan+ubsan build: $(secs $t0) s"
      t1=$(date +%s)
      # Under ASan the CPU tests run ~2-4x slower than a release build; conformance included.
      if ! ctest --test-dir "$asan_dir" -L cpu -LE slow -j2 --output-on-failure --timeout 1800 ${SAN_CTEST_ARGS:-}; then
        status=1
      fi
      echo "[sanitize] asan+ubsan ctest -L cpu: $(secs $t1) s"
      ;;
    tsan)
      dir=$prefix-tsan
      configure "$dir" -DRAMJET_SANITIZE=thread
      ninja -C "$dir" ramjet_unit_tests
      echo "[sanitize] tsan build: $(secs $t0) s"
      t1=$(date +%s)
      filter=${TSAN_GTEST_FILTER:-Engine.*:Threads.*:Batcher.*:Server.*:Http.*:*ThreadPool*:*Parallel*}
      if ! "$dir/tests/ramjet_unit_tests" --gtest_filter="$filter" --gtest_brief=1; then
        echo "[sanitize] FAIL: ThreadSanitizer run ($filter)" >&2
        status=1
      fi
      echo "[sanitize] tsan tests: $(secs $t1) s"
      ;;
    fuzz)
      configure "$asan_dir" -DRAMJET_FUZZ=ON  # = clang ASan+UBSan (+ coverage hooks)
      ninja -C "$asan_dir"
      n=$(ls "$asan_dir"/bin/*_fuzzer 2>/dev/null | wc -l)
      if ! tests/fuzz/run_fuzzers.sh $(( fuzz_seconds * (n > 0 ? n : 1) )) "$asan_dir"; then status=1; fi
      echo "[sanitize] fuzz: $(secs $t0) s"
      ;;
    *) echo "sanitize: unknown step '$step' (asan, tsan, fuzz)" >&2; exit 2 ;;
  esac
done
exit $status
