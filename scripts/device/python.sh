#!/usr/bin/env bash
# Device checks for the Python bindings (issue #10), run from the repo root on the GPU machine
# with the lead's build in build/ (built with scripts/build.sh: build/python/ramjet holds the
# module for this machine's python3 when a python3.12 was found at build time).
# Prints PASS/FAIL lines; writes $OUT/python/{pytest.txt,bench.json}. Never writes to the tree.
set -u
export PYTHONFAULTHANDLER=1 RAMJET_CRASH_BACKTRACE=1  # a crash prints the Python and the native stack
export PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT/python"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/build/python${PYTHONPATH:+:$PYTHONPATH}"
echo "== python: $($PY --version 2>&1) at $(command -v $PY); modules in build/python/ramjet:"
ls build/python/ramjet/ 2>&1 | grep -E '\.so$' || echo "FAIL: no compiled module in build/python/ramjet"
fails=0
probe() {  # import order matters when two libcudnn.so.9 can be loaded; try both
  timeout 60 $PY -c "$1" 2>&1 | tail -3
  local rc=${PIPESTATUS[0]}
  if [ "$rc" = 0 ]; then echo "PASS: $2"; else echo "FAIL: $2 (rc $rc)"; fails=$((fails+1)); fi
}
probe "import ramjet; print('ramjet', ramjet.__version__, 'cuda_compiled', ramjet.cuda_compiled, 'gpus', ramjet.cuda_device_count()); assert ramjet.cuda_available()" "import ramjet, CUDA available"
probe "import ramjet, torch; x=torch.ones(2,device='cuda'); print('torch', torch.__version__, float(x.sum()))" "import ramjet then torch"
probe "import torch, ramjet; x=torch.ones(2,device='cuda'); print('torch', torch.__version__, float(x.sum()))" "import torch then ramjet"

echo "== pytest python/tests (CUDA subset + CPU tests under this Python)"
timeout 75 $PY -m pytest -q -p no:cacheprovider -rs python/tests/test_cuda.py python/tests/test_errors.py \
  python/tests/test_cpu.py -k "not detector" 2>&1 | tee "$OUT/python/pytest.txt" | tail -30
rc=${PIPESTATUS[0]}
if [ "$rc" = 0 ]; then echo "PASS: pytest"; else echo "FAIL: pytest (rc $rc)"; fails=$((fails+1)); fi
if grep -q "needs a CUDA GPU\|torch has no CUDA" "$OUT/python/pytest.txt"; then
  echo "FAIL: CUDA tests were skipped on the GPU machine"; fails=$((fails+1))
fi

echo "== overhead benchmark (python/bench/overhead.py)"
timeout 60 $PY python/bench/overhead.py --json "$OUT/python/bench.json" 2>&1 | tail -20
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] || { echo "FAIL: overhead benchmark (rc $rc)"; fails=$((fails+1)); }
echo "== python.sh done: $fails failure(s)"
exit 0
