#!/usr/bin/env bash
# Sets up, builds and runs ramjet's main job on bundled data: the detector we trained
# (models/detector/detector.onnx, YOLOv8n-style, 6 classes) on scenes from the project's seeded
# generator; annotated frames, JSON lines, per-stage times, FPS and mAP. Runs on the GPU when
# one is present (--device cuda), else on the CPU backend.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_deps.sh --python
scripts/build.sh
B=${BUILD_DIR:-build}
OUT=${OUT:-out/demo}
DEVICE=cpu
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then DEVICE=cuda; fi
mkdir -p "$OUT"
echo "[demo] generating 8 validation scenes (seed 2, held apart from training)"
python3 models/detector/scenes.py --out "$OUT/scenes" --count 8 --seed 2 >/dev/null
echo "[demo] ramjet detect on $DEVICE"
"$B/bin/ramjet" detect --model models/detector/detector.onnx --source "$OUT/scenes/images" \
  --output "$OUT/annotated" --json "$OUT/detections.jsonl" --show-fps --device "$DEVICE" --no-plan-cache
echo "[demo] ramjet eval (mAP against the generator's labels)"
"$B/bin/ramjet" eval --model models/detector/detector.onnx --images "$OUT/scenes/images" \
  --labels "$OUT/scenes/labels" --device "$DEVICE" --no-plan-cache --pr-png "$OUT/pr.png"
echo "[demo] annotated frames: $OUT/annotated  detections: $OUT/detections.jsonl  PR curves: $OUT/pr.png"
PREC=""; [ "$DEVICE" = cuda ] && PREC=--fp16
echo "[demo] ramjet detect on the bundled clip (120 frames, 640x384, H.264) -> annotated video, on $DEVICE $PREC"
"$B/bin/ramjet" detect --model models/detector/detector.onnx --source models/detector/video/clip.mp4 \
  --output "$OUT/clip_annotated.mp4" --json "$OUT/clip.jsonl" --show-fps --device "$DEVICE" $PREC -q --no-plan-cache
echo "[demo] annotated video: $OUT/clip_annotated.mp4  per-frame boxes + summary: $OUT/clip.jsonl"
