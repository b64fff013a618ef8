#!/usr/bin/env bash
# Where the time goes (issue #5 "the profile that shows where time goes"): for each model of
# PROFILE_MODELS, an FP16 dynamic 1..64 plan, `ramjet inspect` (kernels, fused origins, tactics)
# and `ramjet bench --profile` per-kernel GPU times at PROFILE_BATCH (default 64) with a Chrome
# trace. Writes $OUT/profile/<model>.{inspect,profile}.txt and <model>.trace.json.
set -u
O=${OUT:-/tmp}/profile; mkdir -p "$O"
B=build/bin
MODELS=${PROFILE_MODELS:-vit_b_16,yolov8n,efficientnet_b0,mobilenet_v3_large}
BATCH=${PROFILE_BATCH:-64}
for m in ${MODELS//,/ }; do
  f=models/zoo/$m.onnx
  [ -f "$f" ] || { echo "$m: no $f"; continue; }
  in=$(python3 -c "import onnx,sys; g=onnx.load('$f',load_external_data=False).graph; init={i.name for i in g.initializer}; i=[x for x in g.input if x.name not in init][0]; d=[x.dim_value for x in i.type.tensor_type.shape.dim]; print(i.name+':'+'x'.join(str(v) for v in d[1:]))")
  name=${in%%:*}; rest=${in#*:}
  t0=$(date +%s.%N)
  timeout 90 $B/ramjet build "$f" -o /tmp/$m.plan --device cuda --fp16 --min-shapes "$name:1x$rest" \
    --opt-shapes "$name:${BATCH}x$rest" --max-shapes "$name:${BATCH}x$rest" > "$O/$m.build.txt" 2>&1
  echo "$m build rc=$? $(python3 -c "import time; print(round(time.time()-$t0,1))") s"
  $B/ramjet inspect /tmp/$m.plan > "$O/$m.inspect.txt" 2>&1
  timeout 60 $B/ramjet bench /tmp/$m.plan --batch 1,$BATCH --duration 1 > "$O/$m.bench.txt" 2>&1
  grep -E "batch|median" "$O/$m.bench.txt" | head -6
  timeout 60 $B/ramjet bench /tmp/$m.plan --batch $BATCH --profile --top 40 --trace "$O/$m.trace.json" > "$O/$m.profile.txt" 2>&1
  echo "$m profile rc=$?"; sed -n '1,60p' "$O/$m.profile.txt" | grep -iE "total|type|%" | head -30
done
gzip -f "$O"/*.trace.json 2>/dev/null
