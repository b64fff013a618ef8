#!/usr/bin/env bash
# Lead's round check on the GPU machine: environment, the existing GPU test suites, and FP16
# batch-1 / batch-64 GPU compute time of the five milestone models (one static build per batch),
# optimizer on and off. Needs the zoo (scripts/device_run_all.sh generates it first).
set -u
echo "tools: $(command -v nsys ncu compute-sanitizer | tr '\n' ' ')"; python3 --version
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
# LEAD_EXTRA_TESTS="ramjet_vision_gpu_tests ramjet_int8_gpu_tests" adds suites from build/bin.
for t in build/bin/ramjet_gpu_tests build/bin/ramjet_engine_gpu_tests ${LEAD_EXTRA_TESTS:+$(printf 'build/bin/%s ' $LEAD_EXTRA_TESTS)}; do
  [ -x "$t" ] || continue
  mkdir -p "${OUT:-/tmp}/lead"; RAMJET_ZOO_DIR=models/zoo timeout 100 "$t" > "${OUT:-/tmp}/lead/$(basename "$t").log" 2>&1
  grep -E -A3 "^\[zoo\]|^\[  (PASSED|FAILED|SKIPPED) |^\[==========\]|Failure|error" "${OUT:-/tmp}/lead/$(basename "$t").log" | head -60
done
FP16=${LEAD_FP16---fp16}
MODELS=${LEAD_MODELS:-resnet50,mobilenet_v3_large,efficientnet_b0,vit_b_16,yolov8n}
for m in ${MODELS//,/ }; do
  f=models/zoo/$m.onnx
  [ -f "$f" ] || { echo "$m: no $f"; continue; }
  for b in 1 64; do
    for mode in opt noopt; do
      [ $mode = noopt ] && export RAMJET_DISABLE_PASSES=all || unset RAMJET_DISABLE_PASSES
      r=$(timeout 60 build/bin/ramjet bench "$f" --device ${LEAD_DEVICE:-cuda} $FP16 --batch $b --duration 0.5 --json 2>&1)
      med=$(echo "$r" | python3 -c 'import sys,json
t=sys.stdin.read()
try:
  r=json.loads(t[t.index("{"):])["results"][0]; print(r["compute_ms"]["median"], "img/s", round(r["throughput_per_s"]))
except Exception: print("FAILED:", t[-400:].replace("\n"," "))')
      echo "BENCH $m b$b $mode fp16 median_ms $med"
    done
  done
done
unset RAMJET_DISABLE_PASSES

# Batch-1 diagnosis on ResNet-50: static plan, without CUDA graphs, and a dynamic 1..64 plan.
f=models/zoo/resnet50.onnx
if [ -f $f ]; then
  p() { python3 -c 'import sys,json
t=sys.stdin.read()
try:
  for r in json.loads(t[t.index("{"):])["results"]: print("  b%d median_ms %.4f p90 %.4f" % (r["batch"], r["compute_ms"]["median"], r["compute_ms"]["p90"]))
except Exception: print("FAILED:", t[-400:].replace("\n"," "))'; }
  echo "DIAG resnet50 static b1:"; build/bin/ramjet bench $f --device cuda --fp16 --batch 1 --duration 0.5 --json 2>&1 | p
  echo "DIAG resnet50 static b1, RAMJET_NO_CUDA_GRAPHS=1:"; RAMJET_NO_CUDA_GRAPHS=1 build/bin/ramjet bench $f --device cuda --fp16 --batch 1 --duration 0.5 --json 2>&1 | p
  echo "DIAG resnet50 dynamic 1..64 plan at b1 and b64:"; build/bin/ramjet bench $f --device cuda --fp16 --batch 1,64 --duration 0.5 --json 2>&1 | p
fi
