#!/usr/bin/env bash
# Lead tool: stages stripped binaries of a build into build-stage/ (small enough to carry to the
# GPU machine: the device tool carries at most 64 MiB with the tree). On the device, run
#   rm -rf build && ln -s build-stage build
# so scripts that use build/bin/... find them.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-build}
rm -rf build-stage && mkdir -p build-stage/bin
for f in "$SRC"/bin/* $(find "$SRC" -maxdepth 3 -type f -name '*gpu*' -perm -u+x -not -path '*/CMakeFiles/*'); do
  [ -f "$f" ] && [ -x "$f" ] || continue
  strip -o "build-stage/bin/$(basename "$f")" "$f" 2>/dev/null || cp "$f" build-stage/bin/
done
# Python extension modules, if the build made them.
if [ -d "$SRC/python" ]; then cp -r "$SRC/python" build-stage/python; find build-stage/python -name '*.so' -exec strip {} \; ; fi
du -sh build-stage
