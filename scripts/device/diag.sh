#!/usr/bin/env bash
# Lead's diagnosis round: crash backtraces (detect CLI, Python at exit), the full messages of
# failing GPU tests, and the conv-layout auto choice on the CNN zoo models. Tree untouched.
set -u
B=build/bin
T=$(mktemp -d)
echo "gdb: $(command -v gdb || echo none)"
python3 models/detector/scenes.py --out "$T/scenes" --count 8 --seed 2 --size 384x640 >/dev/null 2>&1
cp models/detector/detector.onnx "$T/det.onnx"
echo "== detect crash"
timeout 60 $B/ramjet detect --model "$T/det.onnx" --source "$T/scenes/images" --device cuda --fp16 --max-frames 4 2>&1 | tail -40
echo "rc=${PIPESTATUS[0]}"
if command -v gdb >/dev/null; then
  timeout 90 gdb -batch -ex run -ex bt -ex "info threads" --args $B/ramjet detect --model "$T/det.onnx" --source "$T/scenes/images" --device cuda --fp16 --max-frames 4 2>&1 | grep -v "^\[New Thread\|^\[Thread" | tail -40
fi
echo "== eval crash"
timeout 60 $B/ramjet eval --model "$T/det.onnx" --images "$T/scenes/images" --labels "$T/scenes/labels" --device cuda --precision fp16 2>&1 | tail -25
echo "== python exit crash"
PY=python3
export PYTHONPATH=$PWD/build/python
timeout 60 $PY -X faulthandler python/bench/overhead.py --json "$T/b.json" 2>&1 | tail -25
if command -v gdb >/dev/null; then
  timeout 90 gdb -batch -ex run -ex bt --args $PY python/bench/overhead.py --json "$T/b.json" 2>&1 | grep -v "^\[New Thread\|^\[Thread" | tail -30
fi
echo "== failing GPU tests, full"
timeout 60 $B/ramjet_transformer_gpu_tests --gtest_filter='*AttentionShapesAndMasks*' 2>&1 | grep -v "^\[xfmr-gpu\]" | head -60
timeout 60 $B/ramjet_more_ops_gpu_tests --gtest_filter='*ReductionsArgTopK*' 2>&1 | grep -B3 -A8 "Failure" | head -60
echo "== conv layout auto (dynamic 1..64, fp16)"
for m in resnet50 mobilenet_v3_large efficientnet_b0 yolov8n; do
  f=models/zoo/$m.onnx; [ -f $f ] || continue
  read -r name rest < <(python3 -c 'import onnx,sys
m=onnx.load(sys.argv[1], load_external_data=False); i=m.graph.input[0]
d=[x.dim_value if x.dim_value>0 else 1 for x in i.type.tensor_type.shape.dim]
print(i.name, "x".join(str(v) for v in d[1:]))' "$f")
  t1=$(date +%s.%N)
  timeout 120 $B/ramjet build "$f" -o "$T/$m.plan" --device cuda --fp16 --timing-cache "$T/tc" \
    --min-shapes "$name:1x$rest" --opt-shapes "$name:64x$rest" --max-shapes "$name:64x$rest" 2>&1 | grep -E "conv layout|error|build time" | head -3
  echo "  build wall $(python3 -c "print(round($(date +%s.%N)-$t1,1))") s"
  timeout 60 $B/ramjet bench "$T/$m.plan" --batch 1,64 --duration 0.3 --json 2>&1 | python3 -c 'import sys,json
t=sys.stdin.read()
try:
  print("  BENCH '$m' auto", " ".join("b%d %.4f ms" % (r["batch"], r["compute_ms"]["median"]) for r in json.loads(t[t.index("{"):])["results"]))
except Exception: print("  FAILED", t[-300:])'
  t1=$(date +%s.%N)
  timeout 120 $B/ramjet build "$f" -o "$T/$m.2.plan" --device cuda --fp16 --timing-cache "$T/tc" \
    --min-shapes "$name:1x$rest" --opt-shapes "$name:64x$rest" --max-shapes "$name:64x$rest" 2>&1 | grep -E "conv layout|timed" | head -2
  echo "  rebuild with cache wall $(python3 -c "print(round($(date +%s.%N)-$t1,1))") s; identical: $(cmp -s $T/$m.plan $T/$m.2.plan && echo yes || echo NO)"
done
rm -rf "$T"
