#!/usr/bin/env bash
# Sets up, builds and runs ramjet's CI test suite (CPU tests, conformance, short fuzz runs).
# GPU tests are compiled and skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_deps.sh --python
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 -LE slow
