T=$(mktemp -d); RJ=build/bin/ramjet
python3 models/detector/scenes.py --out $T/scenes --count 64 --seed 2 --size 384x640 >/dev/null 2>&1 &
python3 models/detector/scenes.py --out $T/cal --count 64 --seed 1 --size 384x640 >/dev/null 2>&1; wait
cp models/detector/detector.onnx $T/det.onnx; S=$T/scenes/images
I8="--device cuda --precision int8 --calib-data $T/cal/images --calib-images 64"
for tag in build_b32 gpu_b32 gpu_b32_again; do
  src="$S"; [ $tag != build_b32 ] && src="$S $S $S $S"
  t0=$(date +%s.%N); timeout 250 $RJ detect --model $T/det.onnx -q --json $T/$tag.jsonl --source $src $I8 --batch 32 > $T/$tag.out 2>&1; rc=$?
  echo "$tag rc=$rc wall $(python3 -c "import time;print(round(time.time()-$t0,1))") s: $(grep -E 'FPS|error' $T/$tag.out | head -2 | tr '\n' ' ')"
  python3 - $T/$tag.jsonl <<'PY'
import json,sys
try:
  L=[json.loads(x) for x in open(sys.argv[1])]; F=[l for l in L if "frame" in l]; s=[l["summary"] for l in L if "summary" in l][0]
  ms=sorted(l["ms"]["pre"]+l["ms"]["infer"]+l["ms"]["post"] for l in F[max(1,s["batch"]):]); m=s["ms_per_frame"]
  print("  median pre+infer+post %.3f ms/frame; mean infer %.3f; frames %d boxes %d" % (ms[len(ms)//2] if ms else float('nan'), m["infer"], s["frames"], s["boxes"]))
except Exception as e: print("  parse:", e)
PY
done
ls $T/*.plan 2>/dev/null
