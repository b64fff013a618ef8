#!/usr/bin/env bash
# The detector's accuracy table on the GPU (issue #8): mAP of models/detector/detector.onnx in
# FP32, FP16 and INT8 with each calibrator, on 200 held-apart scenes (validation seed 2), INT8
# calibrated on 128 scenes of the training seed 1. Writes $OUT/detect_precision/table.md.
# Tree untouched.
set -u
B=build/bin/ramjet; T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
O=${OUT:-/tmp}/detect_precision; mkdir -p "$O"
for st in 0 50 100 150; do python3 models/detector/scenes.py --out $T/val --count 50 --start $st --seed 2 >/dev/null 2>&1 & done
python3 models/detector/scenes.py --out $T/cal --count 128 --seed 1 >/dev/null 2>&1 &
wait
cp models/detector/detector.onnx $T/det.onnx
shapes="--min-shapes images:1x3x640x640 --opt-shapes images:32x3x640x640 --max-shapes images:32x3x640x640"
row() {  # label, eval args...
  local label=$1; shift
  local m; m=$(timeout 90 $B eval --images $T/val/images --labels $T/val/labels --batch 32 "$@" 2>&1 | grep -E "^mAP|error" | head -1)
  echo "| $label | $m |" | tee -a "$O/table.md"
}
echo "| precision | result (200 val scenes) |" > "$O/table.md"; echo "|---|---|" >> "$O/table.md"
row fp32 --model $T/det.onnx --device cuda --precision fp32
row fp16 --model $T/det.onnx --device cuda --precision fp16
for m in ${DP_METHODS:-percentile mse entropy minmax}; do
  if timeout 120 $B build $T/det.onnx -o $T/det.$m.plan --device cuda --int8 --calib-data $T/cal/images \
       --calib-batches 16 --calib-method $m $shapes > $T/b.log 2>&1; then
    row "int8 $m" --model $T/det.$m.plan
  else
    echo "| int8 $m | build failed: $(tail -1 $T/b.log) |" | tee -a "$O/table.md"
  fi
done
