#!/usr/bin/env bash
# Sets up, builds and runs ramjet's CI test suite: the CPU tests and conformance suites, then the
# same CPU tests under ASan+UBSan, the threaded tests under TSan, and every fuzzer for
# FUZZ_SECONDS (10 here) after replaying its saved crashes (docs/HARDENING.md). GPU tests are
# compiled and skip without a GPU (they run on the GPU machine: scripts/device_run_all.sh).
# RAMJET_CI_SANITIZE=0 skips the sanitizer part (measured on this 2-core machine kind: ~11 min
# with a partly warm ccache, on top of ~4 min for the main build and tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_deps.sh --python
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j2 -LE slow
if [ "${RAMJET_CI_SANITIZE:-1}" = 1 ]; then
  FUZZ_SECONDS=${FUZZ_SECONDS:-10} scripts/sanitize.sh asan tsan fuzz
fi
