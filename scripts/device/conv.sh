#!/usr/bin/env bash
# conv's device check (issue #5 items 3-4): FusedConv/PoolNhwc kernels vs the CPU reference,
# then FP16 GPU time at batch 1 and 64 of the CNN milestone models built with and without
# ConvActivationFusion + NhwcLayout (nhwc: RAMJET_NHWC=1 turns NhwcLayout on), then the zoo models' FP16 accuracy
# (fusion + NHWC) vs the CPU FP32
# reference. Time-guarded to stay under ~90 s: later steps are skipped when time runs out.
# Writes $OUT/conv/summary.txt. Never modifies the tree (plans go to a temp dir).
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
B=build/bin
OUTD="${OUT:-/tmp}/conv"; mkdir -p "$OUTD"
SUM="$OUTD/summary.txt"; : > "$SUM"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
say() { echo "$@" | tee -a "$SUM"; }

say "== conv device check $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
if [ ! -x $B/ramjet_fused_conv_gpu_tests ]; then
  say "FAIL: $B/ramjet_fused_conv_gpu_tests missing (build/ not rebuilt with tests/gpu/test_fused_conv_gpu.cc?)"
else
  timeout 35 $B/ramjet_fused_conv_gpu_tests --gtest_filter='*KernelsMatchReference*:*PoolNhwc*' > "$TMP/k.log" 2>&1
  echo "kernel tests rc=$? ($(el) s)" | tee -a "$SUM"
  grep -E "^\[fused-conv-gpu\]|^\[  (PASSED|FAILED) |Failure|rror" "$TMP/k.log" | head -70 | tee -a "$SUM"
fi

med() { python3 -c 'import sys,json
t=sys.stdin.read()
try:
  rs=json.loads(t[t.index("{"):])["results"]; print(" ".join("b%d %.4f" % (r["batch"], r["compute_ms"]["median"]) for r in rs))
except Exception: print("FAILED:", t[-300:].replace("\n"," "))'; }
inshape() { python3 -c 'import onnx,sys
m=onnx.load(sys.argv[1], load_external_data=False); i=m.graph.input[0]
d=[x.dim_value if x.dim_value>0 else 1 for x in i.type.tensor_type.shape.dim]
print(i.name, "x".join(str(v) for v in d[1:]))' "$1"; }

for m in resnet50 mobilenet_v3_large efficientnet_b0 yolov8n; do
  f=models/zoo/$m.onnx
  [ -f "$f" ] || { say "BENCH $m: SKIP (no $f; python3 models/zoo.py makes it)"; continue; }
  read -r name rest < <(inshape "$f")
  for mode in fused base nhwc; do
    if [ "$(el)" -gt 62 ]; then say "BENCH $m $mode: SKIP (time budget)"; continue; fi
    [ $mode = base ] && export RAMJET_DISABLE_PASSES=ConvActivationFusion,NhwcLayout || unset RAMJET_DISABLE_PASSES
    [ $mode = nhwc ] && export RAMJET_NHWC=1 || unset RAMJET_NHWC
    t1=$(date +%s.%N)
    blog=$(timeout 40 $B/ramjet build "$f" -o "$TMP/$m.$mode.plan" --device cuda --fp16 \
      --min-shapes "$name:1x$rest" --opt-shapes "$name:64x$rest" --max-shapes "$name:64x$rest" 2>&1)
    rc=$?
    t2=$(date +%s.%N)
    if [ $rc -ne 0 ]; then say "BENCH $m $mode: BUILD FAILED rc=$rc: $(echo "$blog" | tail -3 | tr '\n' ' ')"; continue; fi
    r=$(timeout 30 $B/ramjet bench "$TMP/$m.$mode.plan" --batch 1,64 --duration 0.3 --warmup 5 --json 2>&1 | med)
    say "BENCH $m $mode fp16 median_gpu_ms: $r  (build $(python3 -c "print(round($t2-$t1,1))") s)"
  done
  unset RAMJET_DISABLE_PASSES RAMJET_NHWC
done

left=$(( 88 - $(el) ))
if [ -x $B/ramjet_fused_conv_gpu_tests ] && [ $left -gt 10 ]; then
  RAMJET_NHWC=1 RAMJET_ZOO_DIR=models/zoo timeout $left $B/ramjet_fused_conv_gpu_tests --gtest_filter='*ZooModels*' > "$TMP/z.log" 2>&1
  echo "zoo accuracy test rc=$? ($(el) s)" | tee -a "$SUM"
  grep -E "^\[fused-conv-gpu\]|^\[  (PASSED|FAILED) |Failure" "$TMP/z.log" | head -30 | tee -a "$SUM"
else
  say "zoo accuracy test: SKIP (time budget, $(el) s used)"
fi
say "== done in $(el) s"
