#!/usr/bin/env bash
# Lead's second diagnosis: why a static batch-8 ResNet-50 plan runs slower than the dynamic
# 1..64 plan at batch 8 (same layout forced), kernel by kernel; and the layout choice per model
# with GPU compute timing at opt and min shapes. Tree untouched.
set -u
B=build/bin/ramjet; T=$(mktemp -d); M=models/zoo/resnet50.onnx; S=3x224x224
for L in nhwc nchw; do
  $B build $M -o $T/s8.$L.plan --device cuda --fp16 --layout $L --shapes input:8x$S > $T/s8.$L.log 2>&1 || tail -3 $T/s8.$L.log
  $B build $M -o $T/d.$L.plan --device cuda --fp16 --layout $L --min-shapes input:1x$S --opt-shapes input:32x$S --max-shapes input:64x$S > $T/d.$L.log 2>&1 || tail -3 $T/d.$L.log
  for p in s8 d; do
    echo "== $p $L at b8"; $B bench $T/$p.$L.plan --batch 8 --duration 0.3 --profile --top 6 2>&1 | grep -E "^batch|by op type|^ +[0-9]+ " | head -9
    grep -E "^tactics:" $T/$p.$L.log | cut -c1-400
  done
done
echo "== layout auto with compute timing"
for m in resnet50 mobilenet_v3_large efficientnet_b0 yolov8n; do
  f=models/zoo/$m.onnx; [ -f $f ] || continue
  read -r name rest < <(python3 -c 'import onnx,sys
m=onnx.load(sys.argv[1], load_external_data=False); i=m.graph.input[0]
d=[x.dim_value if x.dim_value>0 else 1 for x in i.type.tensor_type.shape.dim]
print(i.name, "x".join(str(v) for v in d[1:]))' "$f")
  timeout 120 $B build "$f" -o "$T/$m.plan" --device cuda --fp16 --timing-cache "$T/tc" \
    --min-shapes "$name:1x$rest" --opt-shapes "$name:64x$rest" --max-shapes "$name:64x$rest" 2>&1 | grep -E "conv layout|error|build time" | head -3
  timeout 60 $B bench "$T/$m.plan" --batch 1,64 --duration 0.3 --json 2>&1 | python3 -c 'import sys,json
t=sys.stdin.read()
try:
  print("  BENCH '$m' auto", " ".join("b%d %.4f ms" % (r["batch"], r["compute_ms"]["median"]) for r in json.loads(t[t.index("{"):])["results"]))
except Exception: print("  FAILED", t[-300:])'
  timeout 120 $B build "$f" -o "$T/$m.2.plan" --device cuda --fp16 --timing-cache "$T/tc" \
    --min-shapes "$name:1x$rest" --opt-shapes "$name:64x$rest" --max-shapes "$name:64x$rest" > $T/re.log 2>&1
  echo "  rebuild with cache: $(grep -E 'build time' $T/re.log); identical: $(cmp -s $T/$m.plan $T/$m.2.plan && echo yes || echo NO)"
done
rm -rf $T
