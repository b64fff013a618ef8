#!/usr/bin/env bash
# Python exit crash with the backtrace re-armed at exit; detector INT8 mAP per calibration method.
set -u
B=build/bin/ramjet; T=$(mktemp -d)
export PYTHONPATH=$PWD/build/python RAMJET_CRASH_BACKTRACE=1
timeout 60 python3 -m pytest -q -p no:cacheprovider python/tests/test_errors.py > $T/p.log 2>&1
echo "test_errors.py rc=$?"; grep -A40 "native backtrace" $T/p.log | head -45
timeout 60 python3 -m pytest -q -p no:cacheprovider -p no:faulthandler python/tests/test_errors.py > $T/p.log 2>&1
echo "test_errors.py without pytest's faulthandler rc=$?"
for st in 0 50 100 150; do python3 models/detector/scenes.py --out $T/val --count 50 --start $st --seed 2 >/dev/null 2>&1 & done
python3 models/detector/scenes.py --out $T/cal --count 128 --seed 1 >/dev/null 2>&1 &
wait
for m in percentile mse minmax; do
  timeout 90 $B build models/detector/detector.onnx -o $T/det.$m.plan --device cuda --int8 --calib-data $T/cal/images --calib-batches 16 \
    --calib-method $m --min-shapes images:1x3x640x640 --opt-shapes images:32x3x640x640 --max-shapes images:32x3x640x640 > $T/b.log 2>&1 || tail -2 $T/b.log
  timeout 60 $B eval --model $T/det.$m.plan --images $T/val/images --labels $T/val/labels --batch 32 2>&1 | grep -E "^mAP" | tr '\n' ' '; echo " <- int8 $m (16 batches)"
done
rm -rf $T
