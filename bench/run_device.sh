#!/usr/bin/env bash
# One GPU-machine call: export + check the zoo with the machine's torch, then time every zoo
# model x batch against the PyTorch / onnxruntime peers. Results land in $OUT (or out/device):
#   peers.json (bench/report.py input), peer_bench.log, nvidia-smi.txt, manifest.json (zoo),
#   peers.md + peers.png when matplotlib is there.
# Knobs (environment): BUDGET_S (seconds for peer_bench, default 430), HARD_S (kill after,
# default 500), COMPILE (model:batch list for torch.compile max-autotune, default
# "yolov8n:1,resnet50:1"), MODELS (default: all), EXTRA (more peer_bench flags), RAMJET_BIN
# (a ramjet binary: adds ramjet.json from bench/ramjet_bench.py), DEVICE (cuda; cpu to smoke-test).
set -u
OUT=${OUT:-out/device}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
BUDGET_S=${BUDGET_S:-430}
HARD_S=${HARD_S:-500}
COMPILE=${COMPILE-yolov8n:1,resnet50:1}
MODELS=${MODELS:-resnet50,mobilenet_v3_large,efficientnet_b0,vit_b_16,yolov8n,yolov8s,yolov5s}
ZOO=${ZOO:-/tmp/ramjet_zoo}

{ date -u; nvidia-smi; nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu,utilization.gpu --format=csv; } > "$OUT/nvidia-smi.txt" 2>&1
python3 -c 'import torch, torchvision, onnx, onnxruntime, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "torchvision", torchvision.__version__, "onnx", onnx.__version__, "onnxruntime", onnxruntime.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tee "$OUT/peer_bench.log"

set -o pipefail
timeout -k 5 "$HARD_S" python3 bench/peers/peer_bench.py --export --ort-cpu --zoo "$ZOO" --device "${DEVICE:-cuda}" \
  --models "$MODELS" --compile "$COMPILE" --compile-timeout 240 --time-budget "$BUDGET_S" \
  --warmup 3 --warmup-ms 50 --min-iters 10 --target-ms 200 ${EXTRA:-} \
  --out "$OUT/peers.json" 2>&1 | grep -v -E "Warning|warnings.warn|^  _C\.|^  torch\._C" | tee -a "$OUT/peer_bench.log"
rc=$?
cp "$ZOO/manifest.json" "$OUT/manifest.json" 2>/dev/null
# ramjet's own rows, same call, same zoo files: RAMJET_BIN=<a ramjet built for this machine>
# (building it is the CUDA backend's recipe, not this script's). RAMJET_BUDGET_S caps it.
REPORT_IN="$OUT/peers.json"
if [ -n "${RAMJET_BIN:-}" ] && [ -x "$RAMJET_BIN" ]; then
  timeout -k 5 "${RAMJET_BUDGET_S:-240}" python3 bench/ramjet_bench.py --ramjet "$RAMJET_BIN" --zoo "$ZOO" \
    --models "$MODELS" --time-budget "$(( ${RAMJET_BUDGET_S:-240} - 10 ))" --out "$OUT/ramjet.json" 2>&1 | tee -a "$OUT/peer_bench.log"
  [ -f "$OUT/ramjet.json" ] && REPORT_IN="$REPORT_IN $OUT/ramjet.json"
fi
if [ -f "$OUT/peers.json" ] && python3 -c 'import matplotlib' 2>/dev/null; then
  python3 bench/report.py $REPORT_IN --md "$OUT/peers.md" --png "$OUT/peers.png" || true
fi
exit $rc
