#!/usr/bin/env bash
# Lead tool: stages stripped binaries of a build into build-stage/ (small enough to carry to the
# GPU machine: the device tool carries at most 64 MiB with the tree) and packs them into
# build-pack/stage.tar.xz; carry build-pack. scripts/device_run_all.sh unpacks it and links build.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${1:-build}
rm -rf build-stage && mkdir -p build-stage/bin
for f in "$SRC"/bin/* $(find "$SRC" -maxdepth 3 -type f -name '*gpu*' -perm -u+x -not -path '*/CMakeFiles/*'); do
  [ -f "$f" ] && [ -x "$f" ] || continue
  strip -o "build-stage/bin/$(basename "$f")" "$f" 2>/dev/null || cp "$f" build-stage/bin/
done
# Python extension modules, if the build made them.
if [ -d "$SRC/python" ]; then
  cp -r "$SRC/python" build-stage/python; rm -rf build-stage/python/CMakeFiles
  find build-stage/python -name '*.so' -exec strip {} \;
fi
du -sh build-stage
# The binaries share most of their code, so one xz stream with a big dictionary packs them to
# ~13 MB. On the device: tar xJf build-pack/stage.tar.xz && ln -s build-stage build
rm -rf build-pack && mkdir -p build-pack
tar cf - build-stage | xz -T2 -9 > build-pack/stage.tar.xz
du -sh build-pack/stage.tar.xz
