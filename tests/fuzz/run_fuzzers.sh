#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time and fails if any of them finds a crash.
#
#   tests/fuzz/run_fuzzers.sh SECONDS [BUILD_DIR]
#
# SECONDS is the total budget, split evenly between the fuzzers (FUZZERS="a_fuzzer b_fuzzer" to
# pick some; default: every *_fuzzer in BUILD_DIR/bin). BUILD_DIR defaults to
# build-fuzz next to this checkout, configured with
#   CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DRAMJET_FUZZ=ON -DRAMJET_CUDA=OFF
# First each fuzzer replays its saved crash regressions (tests/fuzz/regressions/<fuzzer>/), then
# fuzzes from the seed corpus (tests/fuzz/corpus/<corpus>/) into a scratch corpus in BUILD_DIR.
# Crash inputs land in BUILD_DIR/fuzz-artifacts/<fuzzer>/; copy them to regressions/ once fixed.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
total="${1:-60}"
build="${2:-$root/build-fuzz}"
# Every libFuzzer binary built in BUILD_DIR/bin (X_fuzzer seeds from corpus/X), or FUZZERS="a b".
if [[ -n "${FUZZERS:-}" ]]; then
  read -r -a fuzzers <<< "$FUZZERS"
else
  fuzzers=()
  for b in "$build"/bin/*_fuzzer; do [[ -x "$b" ]] && fuzzers+=("$(basename "$b")"); done
fi
if (( ${#fuzzers[@]} == 0 )); then
  echo "run_fuzzers: no *_fuzzer binaries in $build/bin (configure with -DRAMJET_FUZZ=ON, clang)" >&2
  exit 1
fi
per=$(( total / ${#fuzzers[@]} ))
(( per < 1 )) && per=1
status=0
for f in "${fuzzers[@]}"; do
  bin="$build/bin/$f"
  if [[ ! -x "$bin" ]]; then
    echo "run_fuzzers: $bin not built (ninja -C $build $f)" >&2
    status=1
    continue
  fi
  art="$build/fuzz-artifacts/$f/"
  work="$build/fuzz-corpus/$f"
  mkdir -p "$art" "$work"
  reg="$here/regressions/$f"
  if compgen -G "$reg/*" > /dev/null; then
    if ! "$bin" -rss_limit_mb=2048 -timeout=10 "$reg"/* > "$build/fuzz-$f-regressions.log" 2>&1; then
      echo "run_fuzzers: $f FAILS a saved regression input (see $build/fuzz-$f-regressions.log)" >&2
      status=1
    else
      echo "$f: $(ls "$reg" | wc -l) regression inputs pass"
    fi
  fi
  log="$build/fuzz-$f.log"
  start=$(date +%s)
  "$bin" -max_total_time="$per" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$art" "$work" "$here/corpus/${f%_fuzzer}" > "$log" 2>&1
  rc=$?
  end=$(date +%s)
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  echo "$f: ${execs:-?} executions in $((end - start)) s, ${cov:-cov: ?}, corpus $(ls "$work" | wc -l) files, exit $rc"
  if (( rc != 0 )); then
    echo "run_fuzzers: $f found a problem; inputs in $art, log $log:" >&2
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5 >&2
    status=1
  fi
done
exit $status
