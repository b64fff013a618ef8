#!/usr/bin/env bash
# detect engineer's GPU round (issue #8): the GPU vision tests; `ramjet detect` FP16 on CUDA over
# 64 generated 384x640 scenes at batch 1 (GPU and CPU pre/post-processing) and batched; the
# PyTorch peer pipeline on the same frames. Writes $OUT/detect/results.jsonl. Never modifies
# the tree: the model is copied to a temp dir, so the cached plans land there.
set -u
T=$(mktemp -d)
R="$OUT/detect"
mkdir -p "$R"
log() { echo "[detect $(date -u +%T)] $*"; }
log "ldd build/bin/ramjet | grep libav: $(ldd build/bin/ramjet 2>/dev/null | grep -c libav) (0 = FFmpeg is not a link-time dependency)"

log "GPU vision tests"
timeout 70 build/bin/ramjet_vision_gpu_tests 2>&1 | grep -E "^\[vision-gpu\]|^\[  (PASSED|FAILED|SKIPPED) |^\[       OK|^\[  FAILED|Failure|error|Expected|Which is|actual" | head -60
echo "GPU_TESTS rc=${PIPESTATUS[0]}"

log "64 scenes, seed 2, 384x640"
python3 models/detector/scenes.py --out "$T/scenes" --count 64 --seed 2 --size 384x640 >/dev/null 2>&1 || log "scene generation FAILED"
cp models/detector/detector.onnx "$T/det.onnx"
RJ=build/bin/ramjet
summ() {  # prints the summary line of a JSON-lines file and the median per-frame pre+infer+post
  python3 - "$1" "$2" <<'EOF'
import json, sys
lines = [json.loads(x) for x in open(sys.argv[1])]
frames = [l for l in lines if "frame" in l]
s = [l["summary"] for l in lines if "summary" in l][0]
# per-frame share of its batch's pre+infer+post, skipping the first batch (CUDA graph capture)
ms = sorted(l["ms"]["pre"] + l["ms"]["infer"] + l["ms"]["post"] for l in frames[max(1, s["batch"]):])
med = ms[len(ms) // 2] if ms else float("nan")
m = s["ms_per_frame"]
print(f"RESULT {sys.argv[2]}: frames {s['frames']} batch {s['batch']} {s['pipeline']} pre/post | mean ms/frame "
      f"decode {m['decode']:.3f} pre {m['pre']:.3f} infer {m['infer']:.3f} post {m['post']:.3f} encode {m['encode']:.3f} | "
      f"median pre+infer+post {med:.3f} ms/frame = {1000 / med:.0f} frames/s | end-to-end {s['fps']:.1f} FPS "
      f"({s['boxes']} boxes)")
s["tag"] = sys.argv[2]; s["median_pre_infer_post_ms"] = med
print("JSON " + json.dumps(s))
EOF
}
run() {  # tag, then ramjet detect args
  local tag=$1; shift
  local t0=$(date +%s.%N)
  timeout 60 $RJ detect --model "$T/det.onnx" -q --json "$T/$tag.jsonl" "$@" > "$T/$tag.out" 2>&1
  local rc=$?
  log "$tag: rc=$rc $(python3 -c "print(round($(date +%s.%N)-$t0,1))") s; $(grep -E "FPS|error" "$T/$tag.out" | head -3 | tr '\n' ' ')"
  [ $rc -eq 0 ] && summ "$T/$tag.jsonl" "$tag" | tee -a "$R/results.jsonl" | grep RESULT
}
S="$T/scenes/images"
# First run builds + caches the FP16 plan; the second is the timed one (plan loaded).
run build_b1 --source "$S" --device cuda --fp16 --max-frames 4
run gpu_b1 --source "$S" "$S" "$S" --device cuda --fp16
run build_b32 --source "$S" --device cuda --fp16 --batch 32 --max-frames 4
run gpu_b32 --source "$S" "$S" "$S" "$S" --device cuda --fp16 --batch 32

log "PyTorch peer pipeline on the same frames"
timeout 60 python3 bench/detect_pipeline.py --frames "$S" --batch 1,32 --iters 40 --json "$T/torch.json" 2>&1 | tail -6
[ -f "$T/torch.json" ] && python3 -c "import json;print(json.dumps(json.load(open('$T/torch.json'))))" >> "$R/results.jsonl"

# DETECT_INT8=1: the same pipeline on an INT8 plan (percentile, 128 calibration scenes of the
# training seed 1), built on the first run and cached beside the model like the FP16 one.
if [ "${DETECT_INT8:-0}" = 1 ]; then
  python3 models/detector/scenes.py --out "$T/cal" --count 128 --seed 1 --size 384x640 >/dev/null 2>&1 || log "calibration scenes FAILED"
  I8="--device cuda --precision int8 --calib-data $T/cal/images --calib-images 128"
  run build_i8_b1 --source "$S" $I8 --max-frames 4
  run gpu_i8_b1 --source "$S" "$S" "$S" $I8
  run build_i8_b32 --source "$S" $I8 --batch 32 --max-frames 4
  run gpu_i8_b32 --source "$S" "$S" "$S" "$S" $I8 --batch 32
fi
run cpupost_b1 --source "$S" --device cuda --fp16 --cpu-post
log "annotated output without FFmpeg (.y4m)"
run y4m_out --source "$S" --device cuda --fp16 --max-frames 8 --output "$T/annot.y4m" --show-fps
ls -la "$T/annot.y4m" 2>&1 | tail -1
log "video source without FFmpeg (expect a clear error):"
$RJ detect --model "$T/det.onnx" --source models/detector/video/clip.mp4 --device cuda --fp16 --max-frames 4 -q 2>&1 | tail -2
if [ $SECONDS -lt 95 ]; then
  log "accuracy on the GPU: FP32 vs FP16 (GPU pre/post) on 200 held-apart scenes (seed 2, 640)"
  for st in 0 50 100 150; do python3 models/detector/scenes.py --out "$T/val" --count 50 --start $st --seed 2 >/dev/null 2>&1 & done
  wait
  for p in fp16 fp32; do
    timeout 45 $RJ eval --model "$T/det.onnx" --images "$T/val/images" --labels "$T/val/labels" --device cuda \
      --precision $p --batch 32 --json > "$T/eval_$p.json" 2> "$T/eval_$p.err"
    echo "EVAL $p rc=$? $(python3 -c "import json;t=open('$T/eval_$p.json').read();r=json.loads(t[t.index('{'):]);print('mAP@0.5', round(r['map50'],4), 'mAP@0.5:0.95', round(r['map50_95'],4))" 2>&1 | tail -1) $(tail -2 "$T/eval_$p.err")" | tee -a "$R/results.jsonl"
  done
else
  log "skipping the FP32/FP16 accuracy check ($SECONDS s used)"
fi
log "done"
rm -rf "$T"
