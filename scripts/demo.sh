#!/usr/bin/env bash
# Sets up, builds and runs ramjet's main job on bundled data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_deps.sh
scripts/build.sh
B=${BUILD_DIR:-build}
echo "[demo] ramjet run on the bundled model (CPU reference backend)"
"$B/bin/ramjet" inspect models/tiny_cnn.onnx | head -20
"$B/bin/ramjet" run models/tiny_cnn.onnx --input images=models/tiny_cnn_input.npy -o out/demo
