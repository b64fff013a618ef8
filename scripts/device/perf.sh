#!/usr/bin/env bash
# Lead's performance round (issue #5 targets): PyTorch FP16 peers (eager channels-last, CUDA
# graphs) and ramjet FP16 (one dynamic 1..64 engine per model, conv layout autotuned) on the five
# milestone models at batch 1 and 64, in the same call on the same GPU. Writes $OUT/perf/.
set -u
O=${OUT:-/tmp}/perf; mkdir -p "$O"
MODELS=${PERF_MODELS:-resnet50,mobilenet_v3_large,efficientnet_b0,vit_b_16,yolov8n}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit --format=csv,noheader | tee "$O/gpu.txt"
timeout 150 python3 bench/peers/peer_bench.py --zoo models/zoo --device cuda --models "$MODELS" --batches 1,64 \
  --small-batches "" --modes eager_fp16_cl,cudagraph_fp16 --warmup 3 --warmup-ms 50 --min-iters 10 --target-ms 200 \
  --out "$O/peers.json" 2>&1 | grep -v -E "Warning|warnings.warn" | tail -25
timeout 150 python3 bench/ramjet_bench.py --ramjet build/bin/ramjet --zoo models/zoo --models "$MODELS" --batches 1,64 \
  --small-batches "" --precisions fp16 --out "$O/ramjet.json" 2>&1 | tail -15
python3 bench/report.py "$O/peers.json" "$O/ramjet.json" --md "$O/peers.md" 2>&1 | tail -3
cat "$O/peers.md" 2>/dev/null | head -40
