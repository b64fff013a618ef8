#!/usr/bin/env bash
# Every bad input to the CLI gets a clear error (non-zero exit, message naming what and why),
# never a crash. Usage: test_cli_errors.sh <ramjet binary> <source dir>
set -u
RJ=$1; SRC=$2
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
fails=0; passes=0
# expect_error "<description>" "<substring the message must contain>" cmd...
expect_error() {
  local what=$1 want=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -qF -- "$want" <<<"$out"; then
    echo "FAIL: $what (rc=$rc) output: $out"; fails=$((fails+1))
  else
    passes=$((passes+1))
  fi
}
M=$SRC/models/tiny_cnn.onnx
head -c 1000 "$M" > "$T/trunc.onnx"
printf 'hello, not a model' > "$T/garbage.onnx"
: > "$T/empty.onnx"
printf 'junk' > "$T/bad.npy"
python3 - "$T" <<'PY' 2>/dev/null || true
import sys, numpy as np
np.save(sys.argv[1] + "/wrong_shape.npy", np.zeros((2, 3, 16, 16), np.float32))
np.save(sys.argv[1] + "/wrong_dtype.npy", np.zeros((2, 3, 32, 32), np.int32))
PY
expect_error "missing model" "does not exist" "$RJ" run "$T/nope.onnx"
expect_error "directory as model" "is a directory" "$RJ" run "$T"
expect_error "empty model" "is empty" "$RJ" run "$T/empty.onnx"
expect_error "garbage model" "not a valid ONNX" "$RJ" run "$T/garbage.onnx"
expect_error "truncated model" "trunc.onnx" "$RJ" run "$T/trunc.onnx"
expect_error "bad npy" "not a valid .npy" "$RJ" run "$M" -i images="$T/bad.npy"
expect_error "missing npy" "cannot open" "$RJ" run "$M" -i images="$T/none.npy"
expect_error "unknown input name" "model's inputs are: images" "$RJ" run "$M" -i pictures="$T/bad.npy"
expect_error "malformed --input" "NAME=file.npy" "$RJ" run "$M" -i images
expect_error "bad --shapes" "is not a dimension" "$RJ" run "$M" --shapes images:1xZx32x32
expect_error "--shapes unknown input" "not a model input" "$RJ" run "$M" --shapes foo:1x3x32x32
if [ -f "$T/wrong_shape.npy" ]; then
  expect_error "wrong input shape" "input 'images' must have shape" "$RJ" run "$M" -i images="$T/wrong_shape.npy" -o "$T/o"
  expect_error "wrong input dtype" "must be f32" "$RJ" run "$M" -i images="$T/wrong_dtype.npy" -o "$T/o"
fi
expect_error "inspect garbage" "not a valid ONNX" "$RJ" inspect "$T/garbage.onnx"
# detect (issue #8): corrupt image, unreadable video, non-detector model, bad flags.
D=$SRC/models/detector/detector.onnx
mkdir -p "$T/imgs" && printf '\x89PNG\r\n\x1a\nbroken' > "$T/imgs/corrupt.png"
head -c 3000 /dev/urandom > "$T/noise.mp4"
expect_error "detect corrupt image" "corrupt.png" "$RJ" detect --model "$D" --source "$T/imgs/corrupt.png" --no-plan-cache
expect_error "detect unreadable video" "noise.mp4" "$RJ" detect --model "$D" --source "$T/noise.mp4" --no-plan-cache
expect_error "detect video without FFmpeg" "FFmpeg" env RAMJET_NO_FFMPEG=1 "$RJ" detect --model "$D" --source "$T/noise.mp4"
expect_error "detect missing video" "does not exist" "$RJ" detect --model "$D" --source "$T/none.mp4"
expect_error "detect non-detector model" "not a YOLO detector" "$RJ" detect --model "$M" --source "$T/imgs" --no-plan-cache
mkdir -p "$T/emptydir"
expect_error "detect empty folder" "no .jpg/.png/.bmp" "$RJ" detect --model "$D" --source "$T/emptydir"
expect_error "detect bad --batch" "--batch" "$RJ" detect --model "$D" --source "$T/imgs" --batch 0
expect_error "detect bad --source-size" "--source-size" "$RJ" detect --model "$D" --source "$T/x.rgb" --source-size 12by4
echo "cli error tests: $passes ok, $fails wrong"
[ $fails -eq 0 ]
