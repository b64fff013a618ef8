#!/usr/bin/env bash
# Runs ramjet_conformance over the ONNX backend test suite of the installed (PyPI) onnx wheel,
# which is newer than Debian's libonnx-testdata, and prints the pass rate per group and overall.
#
#   tests/conformance/run_pip_suite.sh [BUILD_DIR] [-- extra ramjet_conformance flags, e.g. --filter qlinear]
#
# Recent wheels ship pytorch-converted/, pytorch-operator/, simple/ (and light/, real/ which
# need downloads) but no longer the node/ data: it is generated from the wheel's own test cases
# (onnx.backend.test.case.node + cmd_tools' writer) into BUILD_DIR/pip-suite-data once per
# onnx version. Reports go to BUILD_DIR/conformance_pip_<group>.md.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="$root/build"
if [[ $# -gt 0 && "$1" != "--" ]]; then build="$1"; shift; fi
[[ $# -gt 0 && "$1" == "--" ]] && shift
runner="$build/bin/ramjet_conformance"
py="${PYTHON:-python3}"
if [[ ! -x "$runner" ]]; then echo "run_pip_suite: $runner not built (ninja -C $build ramjet_conformance)" >&2; exit 2; fi
if ! onnx_dir="$("$py" -c 'import onnx, os; print(os.path.dirname(onnx.__file__))' 2>/dev/null)"; then
  echo "run_pip_suite: '$py' cannot import onnx (pip install onnx, or set PYTHON=...)" >&2
  exit 2
fi
version="$("$py" -c 'import onnx; print(onnx.__version__)')"
data="$onnx_dir/backend/test/data"
gen="$build/pip-suite-data/onnx-$version"
if [[ ! -d "$data/node" && ! -f "$gen/.complete" ]]; then
  echo "run_pip_suite: onnx $version ships no node/ test data; generating it into $gen ..."
  rm -rf "$gen" && mkdir -p "$gen"
  # cmd_tools generate-data writes only the model cases; feed it the node cases instead.
  if ! "$py" - "$gen" > "$gen.log" 2>&1 <<'PY'
import argparse, sys
import onnx.backend.test.case.node as node
import onnx.backend.test.cmd_tools as ct
ct.model_test.collect_testcases = lambda: node.collect_testcases()
ct.generate_data(argparse.Namespace(output=sys.argv[1]))
PY
  then
    echo "run_pip_suite: generating the node tests failed, see $gen.log" >&2
    exit 2
  fi
  touch "$gen/.complete"
fi
suites=()
if [[ -d "$data/node" ]]; then suites+=("$data/node"); else suites+=("$gen/node"); fi
for grp in pytorch-converted pytorch-operator simple; do [[ -d "$data/$grp" ]] && suites+=("$data/$grp"); done
all_pass=0; all_total=0
echo "onnx $version backend suite via $runner"
for s in "${suites[@]}"; do
  grp="$(basename "$s")"
  line="$("$runner" --suite "$s" --report "$build/conformance_pip_$grp.md" "$@" 2>&1 | grep '^conformance total:' | tail -1)"
  pass="$(sed -E 's/conformance total: ([0-9]+) of ([0-9]+).*/\1/' <<< "$line")"
  total="$(sed -E 's/conformance total: ([0-9]+) of ([0-9]+).*/\2/' <<< "$line")"
  if [[ -z "$line" || -z "$pass" ]]; then echo "  $grp: runner failed"; continue; fi
  all_pass=$((all_pass + pass)); all_total=$((all_total + total))
  awk -v g="$grp" -v p="$pass" -v t="$total" 'BEGIN { printf "  %-18s %5d / %5d pass (%.1f%%)\n", g, p, t, t ? 100 * p / t : 0 }'
done
awk -v p="$all_pass" -v t="$all_total" 'BEGIN { printf "  %-18s %5d / %5d pass (%.1f%%)\n", "TOTAL", p, t, t ? 100 * p / t : 0 }'
