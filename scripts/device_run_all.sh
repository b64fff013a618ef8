#!/usr/bin/env bash
# Lead tool, runs ON the GPU machine: every scripts/device/*.sh (or the names given), each with
# a time limit, output into $OUT/logs/<name>.log; files they write under $OUT/<name>/ are packed
# into $OUT/files.tar.gz (the device tool returns at most 8 files).
set -u
cd "$(dirname "$0")/.."
if [ -f build-pack/stage.tar.xz ]; then rm -rf build-stage build; tar xJf build-pack/stage.tar.xz; fi
[ -e build ] || ln -s build-stage build
OUT=${OUT:-out/device}; mkdir -p "$OUT/logs"
LIMIT=${LIMIT:-150}
# The zoo (git-ignored) is made here with the machine's torch; kept while the machine stays warm.
ZOO_MODELS=${ZOO_MODELS:-resnet50,mobilenet_v3_large,efficientnet_b0,vit_b_16,yolov8n}
missing=""; for m in ${ZOO_MODELS//,/ }; do [ -f models/zoo/$m.onnx ] || missing="$missing,$m"; done
if [ -n "$missing" ]; then
  t0=$(date +%s); python3 models/zoo.py --models "${missing#,}" > "$OUT/logs/zoo.log" 2>&1
  echo "=== zoo ${missing#,}: rc=$? $(( $(date +%s) - t0 )) s"; tail -3 "$OUT/logs/zoo.log"
fi
names=("$@")
if [ ${#names[@]} -eq 0 ]; then for f in scripts/device/*.sh; do names+=("$(basename "$f" .sh)"); done; fi
for n in "${names[@]}"; do
  echo "=== $n $(date -u +%T)"
  t0=$(date +%s)
  OUT="$OUT" timeout -k 5 "$LIMIT" bash "scripts/device/$n.sh" > "$OUT/logs/$n.log" 2>&1
  rc=$?
  echo "=== $n rc=$rc $(( $(date +%s) - t0 )) s" | tee -a "$OUT/logs/$n.log"
  tail -5 "$OUT/logs/$n.log"
done
(cd "$OUT" && tar czf files.tar.gz --exclude=files.tar.gz $(ls -d */ 2>/dev/null) 2>/dev/null; rm -rf $(ls -d */ | grep -v '^logs/$'))
(cd "$OUT" && tar czf logs.tar.gz logs && rm -rf logs)
ls -la "$OUT"
