#!/usr/bin/env bash
# Lead's last round of the session: the Python exit crash bisected by test file, the new
# detector's mAP in FP32 / FP16 / INT8 on the GPU (INT8 calibrated on training-seed scenes,
# evaluated on the held-apart validation seed), and ViT-B/16's optimized graph around its
# Gather/Transpose nodes. Tree untouched.
set -u
B=build/bin/ramjet; T=$(mktemp -d)
export PYTHONPATH=$PWD/build/python RAMJET_CRASH_BACKTRACE=1 PYTHONFAULTHANDLER=1
echo "== python exit crash, per test file"
for f in test_cuda.py test_errors.py test_cpu.py; do
  timeout 60 python3 -m pytest -q -p no:cacheprovider python/tests/$f -k "not detector" > $T/p.log 2>&1
  echo "$f rc=$? $(grep -E 'passed|failed' $T/p.log | tail -1)"; grep -A12 "native backtrace\|Fatal Python" $T/p.log | head -16
done
timeout 60 python3 -m pytest -q -p no:cacheprovider python/tests/test_cuda.py -k "dlpack or torch" > $T/p.log 2>&1; echo "test_cuda -k 'dlpack or torch' rc=$? $(grep -E 'passed|failed' $T/p.log | tail -1)"
timeout 60 python3 -m pytest -q -p no:cacheprovider python/tests/test_cuda.py -k "not dlpack and not torch" > $T/p.log 2>&1; echo "test_cuda -k 'not dlpack and not torch' rc=$? $(grep -E 'passed|failed' $T/p.log | tail -1)"
echo "== detector mAP on the GPU (200 held-apart scenes, seed 2) in FP32 / FP16 / INT8"
for st in 0 50 100 150; do python3 models/detector/scenes.py --out $T/val --count 50 --start $st --seed 2 >/dev/null 2>&1 & done
python3 models/detector/scenes.py --out $T/cal --count 64 --seed 1 >/dev/null 2>&1 &
wait
cp models/detector/detector.onnx $T/det.onnx
for p in fp32 fp16; do
  timeout 60 $B eval --model $T/det.onnx --images $T/val/images --labels $T/val/labels --device cuda --precision $p --batch 32 2>&1 | grep -E "^mAP|per image" | tr '\n' ' '; echo " <- $p"
done
timeout 120 $B build $T/det.onnx -o $T/det.int8.plan --device cuda --int8 --calib-data $T/cal/images --calib-batches 8 \
  --min-shapes images:1x3x640x640 --opt-shapes images:32x3x640x640 --max-shapes images:32x3x640x640 > $T/b.log 2>&1
echo "int8 build rc=$? $(grep -E '^precision' $T/b.log | head -1)"; grep -iE "error|calib" $T/b.log | head -3
timeout 60 $B eval --model $T/det.int8.plan --images $T/val/images --labels $T/val/labels --batch 32 2>&1 | grep -E "^mAP|per image|error" | tr '\n' ' '; echo " <- int8"
echo "== vit_b_16 after passes: ops around Gather / Transpose"
timeout 60 $B optimize models/zoo/vit_b_16.onnx --dump > $T/vit.txt 2>&1
grep -c . $T/vit.txt; grep -nE "Gather|Transpose|Attention|Reshape|Split|Cast" $T/vit.txt | sed -n 1,60p | cut -c1-230
rm -rf $T
