#!/usr/bin/env bash
# Device checks for issue #9 (engineer "harden"), run on the GPU machine from the repo root with
# the lead's build in build/: the GPU-fault test (refused device allocations), then the GPU test
# executables under compute-sanitizer: memcheck (with leak check) on every build/bin/*gpu*
# test, racecheck / initcheck / synccheck on the kernel tests (ramjet_gpu_tests). Subsets are
# picked with --gtest_filter so the whole script stays under ~170 s; each step has its own
# time cap taken from what is left. Prints PASS/FAIL/SKIP lines and each tool's ERROR SUMMARY.
# Writes nothing in the tree; logs go to a temp dir, tails of them to $OUT/harden/.
set -u
start=$(date +%s)
budget=${HARDEN_BUDGET_S:-170}
bin=build/bin
work=$(mktemp -d /tmp/harden-device.XXXXXX)
out=${OUT:-$work/out}/harden
mkdir -p "$out"
tails=$out/sanitizer_tails.txt
: > "$tails"
fails=0

left() { echo $(( budget - ($(date +%s) - start) )); }
note() { echo "$@"; }

cs=""
for c in /usr/local/cuda/bin/compute-sanitizer "$(command -v compute-sanitizer 2>/dev/null)"; do
  [[ -n "$c" && -x "$c" ]] && { cs=$c; break; }
done
note "harden: device $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)"
note "harden: compute-sanitizer ${cs:-NOT FOUND} $([[ -n $cs ]] && $cs --version 2>/dev/null | grep -o 'Version [0-9.]*' | head -1)"

# step NAME CAP_S CMD...: runs with a cap of min(CAP_S, time left - 5); reports PASS/FAIL/SKIP.
step() {
  local name=$1 cap=$2; shift 2
  local l; l=$(left)
  (( l - 5 < cap )) && cap=$(( l - 5 ))
  if (( cap < 10 )); then
    note "SKIP $name: out of time budget"
    return
  fi
  local log=$work/$name.log t0 rc
  t0=$(date +%s)
  timeout -k 5 "$cap" "$@" > "$log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 ))
  local summary gtest
  summary=$(grep -h "ERROR SUMMARY" "$log" | tail -1)
  gtest=$(grep -hE "^\[  (PASSED|FAILED|SKIPPED) +\]" "$log" | tr '\n' ' ')
  if (( rc == 124 || rc == 137 )); then
    note "FAIL $name: timed out after ${cap} s (raise the cap or narrow the filter) $gtest"
    fails=$((fails + 1))
  elif (( rc != 0 )); then
    note "FAIL $name: exit $rc in ${dt} s; ${summary:-no sanitizer summary}; $gtest"
    fails=$((fails + 1))
  else
    note "PASS $name: ${dt} s; ${summary:-(no sanitizer)}; $gtest"
  fi
  grep -hE "^\[faults-gpu\]|^\[  FAILED  \]|Failure|Invalid|Hazard|Race|Uninitialized|Barrier|leaked|ERROR SUMMARY" "$log" \
    | head -40 | sed "s/^/  $name| /"
  { echo "=== $name (exit $rc, ${dt} s): $*"; grep -vE "^\[ +(RUN|OK) +\]" "$log" | tail -60; } | head -c 8000 >> "$tails"
}

# 1. Out-of-memory fault test (RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES), no sanitizer.
if [[ -x $bin/ramjet_faults_gpu_tests ]]; then
  step faults_gpu 60 "$bin/ramjet_faults_gpu_tests"
else
  note "FAIL faults_gpu: $bin/ramjet_faults_gpu_tests not built"
  fails=$((fails + 1))
fi

if [[ -z $cs ]]; then
  note "FAIL compute-sanitizer: not found in /usr/local/cuda/bin or on PATH"
  echo "harden: $fails failure(s) in $(( $(date +%s) - start )) s"
  exit 1
fi
mc=("$cs" --tool memcheck --leak-check full --error-exitcode 99 --print-limit 20)
# Kernel tests: everything but the throughput measurement (timing loops, ~100x slower here).
kern_filter='CudaKernels.*:-CudaKernels.Throughput'
# Kernels that use shared memory / warp shuffles / barriers: where races and sync bugs live.
shared_filter='CudaKernels.Softmax:CudaKernels.LayerNorm:CudaKernels.Reduce:CudaKernels.ArgMaxArgMin:CudaKernels.TopK:CudaKernels.InstanceAndGroupNorm:CudaKernels.Pooling:CudaKernels.Transpose'

# 2. memcheck on every GPU test executable (engine: the tiny CNN and caller-stream tests; the
#    zoo test skips without RAMJET_ZOO_DIR).
if [[ -x $bin/ramjet_gpu_tests ]]; then
  step memcheck_kernels 50 "${mc[@]}" "$bin/ramjet_gpu_tests" --gtest_filter="$kern_filter"
fi
if [[ -x $bin/ramjet_engine_gpu_tests ]]; then
  step memcheck_engine 40 "${mc[@]}" "$bin/ramjet_engine_gpu_tests" \
    --gtest_filter='EngineGpu.TinyCnn*:EngineGpu.EnqueueOnCallerStream*:EngineGpu.Unsupported*'
fi
for exe in "$bin"/*gpu*; do
  base=$(basename "$exe")
  [[ -x $exe && -f $exe ]] || continue
  case $base in
    ramjet_gpu_tests|ramjet_engine_gpu_tests) continue ;;
    ramjet_faults_gpu_tests) step memcheck_faults 30 "${mc[@]}" "$exe" --gtest_filter='FaultsGpu.MalformedBudget*' ;;
    *) step "memcheck_${base}" 25 "${mc[@]}" "$exe" ;;
  esac
done

# 3. racecheck / synccheck / initcheck on the kernel tests (shared-memory kernels for the first two).
if [[ -x $bin/ramjet_gpu_tests ]]; then
  step racecheck_kernels 30 "$cs" --tool racecheck --error-exitcode 99 --print-limit 20 \
    "$bin/ramjet_gpu_tests" --gtest_filter="$shared_filter"
  step synccheck_kernels 25 "$cs" --tool synccheck --error-exitcode 99 --print-limit 20 \
    "$bin/ramjet_gpu_tests" --gtest_filter="$shared_filter"
  step initcheck_kernels 30 "$cs" --tool initcheck --error-exitcode 99 --print-limit 20 \
    "$bin/ramjet_gpu_tests" --gtest_filter='CudaKernels.Unary:CudaKernels.BinaryFloat:CudaKernels.Gather:CudaKernels.Slice:CudaKernels.ConcatAndSplit:CudaKernels.Softmax:CudaKernels.Reduce:CudaKernels.Pooling:CudaKernels.Resize'
fi

echo "harden: $fails failure(s) in $(( $(date +%s) - start )) s; log tails in $tails"
rm -rf "$work"
exit $(( fails > 0 ))
