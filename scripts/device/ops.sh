#!/usr/bin/env bash
# ops' device check (issue #4 item 3, issue #5 item 6): the more_ops CUDA kernels vs the CPU
# reference, the ONNX node suite through CUDA engines (coverage), then `ramjet bench --profile`
# on ResNet-50 and ViT-B/16 FP16 at batch 1 and 64 (top 15 kernels each) with one Chrome
# trace. Time-guarded (~110 s): later steps are skipped when time runs out. Writes
# $OUT/ops/summary.txt and $OUT/ops/resnet50_fp16_trace.json. Never modifies the tree.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( ${1} - $(el) )); }
B=build/bin
OUTD="${OUT:-/tmp}/ops"; mkdir -p "$OUTD"
SUM="$OUTD/summary.txt"; : > "$SUM"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
say() { echo "$@" | tee -a "$SUM"; }

say "== ops device check $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"

# 1. more_ops kernels (one-node CUDA engines, no CPU fallback) vs the CPU reference.
if [ -x $B/ramjet_more_ops_gpu_tests ]; then
  timeout 30 $B/ramjet_more_ops_gpu_tests > "$TMP/m.log" 2>&1
  rc=$?
  say "more_ops gpu tests rc=$rc ($(el) s): $(grep -c '^\[more-ops\]' "$TMP/m.log") comparisons printed"
  grep -E "^\[  (PASSED|FAILED) |^\[  FAILED  \]|Failure|error:" "$TMP/m.log" | head -40 | tee -a "$SUM"
  # worst FP32 / FP16 errors of the float comparisons
  grep '^\[more-ops\]' "$TMP/m.log" | grep -v exact | awk '{print}' | grep -E "fp16" | sort -t= -k2 -g | tail -3 | tee -a "$SUM"
  grep -E '^\[more-ops\].*(mismatch|nan)' "$TMP/m.log" | grep -v "mismatches=0" | head -20 | tee -a "$SUM"
else
  say "FAIL: $B/ramjet_more_ops_gpu_tests missing"
fi

# 2. ONNX node suite (the CPU-passing list) through CUDA engines, FP32, no CPU fallback.
if [ -x $B/ramjet_cuda_conformance ]; then
  timeout 60 $B/ramjet_cuda_conformance --suite /usr/share/libonnx-testdata/data/node \
    --only tests/conformance/passing_node.txt --budget 40 --timeout 20 > "$TMP/c.log" 2>&1
  say "cuda conformance rc=$? ($(el) s)"
  grep -E "^cuda conformance|^  (pass|fail|unsupported|skip|error|crash|timeout|not run):|^  ops keeping" "$TMP/c.log" | tee -a "$SUM"
  grep -E "^(fail|error|crash|timeout)  " "$TMP/c.log" | head -40 | tee -a "$SUM"
else
  say "FAIL: $B/ramjet_cuda_conformance missing"
fi

# 3. Per-kernel profiles of the zoo's ResNet-50 and ViT-B/16, FP16, batch 1 and 64.
ZOO=models/zoo
if [ ! -f $ZOO/resnet50.onnx ] || [ ! -f $ZOO/vit_b_16.onnx ]; then
  ZOO="$TMP/zoo"
  timeout 45 python3 models/zoo.py --models resnet50,vit_b_16 --out "$ZOO" > "$TMP/zoo.log" 2>&1
  say "zoo generated into a temp dir rc=$? ($(el) s)"
fi
for m in resnet50 vit_b_16; do
  if [ ! -f "$ZOO/$m.onnx" ]; then say "SKIP $m: no $ZOO/$m.onnx"; continue; fi
  if [ "$(left 105)" -lt 12 ]; then say "SKIP $m profile: out of time ($(el) s)"; continue; fi
  TR=()
  [ $m = resnet50 ] && TR=(--trace "$OUTD/resnet50_fp16_trace.json")
  timeout $(left 110) $B/ramjet bench "$ZOO/$m.onnx" --fp16 --batch 1,64 --iterations 50 --warmup 10 \
    --profile --profile-iterations 10 --top 15 "${TR[@]}" > "$TMP/p_$m.log" 2>&1
  say "== $m fp16 bench --profile rc=$? ($(el) s)"
  grep -E "^batch|^profile|^ +[0-9]+ |^  rank|by op type|^error|^trace" "$TMP/p_$m.log" | cut -c1-400 | tee -a "$SUM"
done
[ -f "$OUTD/resnet50_fp16_trace.json" ] && say "trace: $(wc -c < "$OUTD/resnet50_fp16_trace.json") bytes, $(grep -o '"ph":"X"' "$OUTD/resnet50_fp16_trace.json" | wc -l) kernel events"
say "== ops device check done in $(el) s"
