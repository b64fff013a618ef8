#!/usr/bin/env bash
# FP8 (issue #6): ViT-B/16 built --fp8 (E4M3 GEMMs through cuBLASLt, random-data calibration,
# minmax ranges) vs --fp16, static engines at batch 1 and 64: GPU compute median per engine
# (`ramjet bench`), accuracy of both against the FP32 CPU reference (`ramjet validate`, 8 random
# samples), and the FP8 b64 engine's kernel profile. Writes $OUT/fp8/summary.txt; temp files only.
set -u
R=build/bin/ramjet
O=${OUT:-/tmp}/fp8; mkdir -p "$O"
SUM="$O/summary.txt"; : > "$SUM"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
say() { echo "$@" | tee -a "$SUM"; }
M=${FP8_MODEL:-models/zoo/vit_b_16.onnx}
IN=${FP8_INPUT:-input}; S=${FP8_SHAPE:-3x224x224}
[ -f "$M" ] || { say "FAIL: $M missing"; exit 1; }
say "== fp8 device check $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1): $M"
med() { python3 -c 'import sys,json
t=sys.stdin.read()
try: print("%.4f" % json.loads(t[t.index("{"):])["results"][0]["compute_ms"]["median"])
except Exception: print("nan")'; }
say "| precision | batch | GPU ms | images/s | build |"
say "|---|---|---|---|---|"
for b in 1 64; do
  for p in fp16 fp8; do
    # Calibration (CPU reference, batch of the build's shape) once at batch 1; b64 reads the cache.
    extra=""; [ $p = fp8 ] && extra="--calib-cache $T/calib.cache"
    [ $p = fp8 ] && [ $b = 1 ] && extra="$extra --calib-data random --calib-batches 4"
    t0=$(date +%s)
    if ! timeout 120 $R build "$M" -o "$T/$p-b$b.plan" --device cuda --$p $extra --shapes $IN:${b}x$S > "$T/$p-b$b.log" 2>&1; then
      say "| $p | $b | FAIL: $(tail -2 "$T/$p-b$b.log" | tr '\n' ' ') | | |"; continue
    fi
    bt=$(( $(date +%s) - t0 ))
    ms=$(timeout 60 $R bench "$T/$p-b$b.plan" --batch $b --duration 1 --warmup 20 --json 2>&1 | med)
    ips=$(python3 -c "print('%.0f' % ($b/($ms/1e3)))" 2>/dev/null || echo "?")
    say "| $p | $b | $ms | $ips | ${bt} s |"
  done
done
grep -E "^precision:|fp8 GEMMs|not fp8" "$T/fp8-b1.log" | head -6 | tee -a "$SUM"
for p in fp16 fp8; do
  say "== accuracy $p b1 vs FP32 CPU reference (8 random samples)"
  timeout 120 $R validate --model "$M" --plan "$T/$p-b1.plan" --samples 8 2>&1 | grep -E "^output" | tee -a "$SUM"
done
say "== fp8 b64 profile (top kernels)"
timeout 60 $R bench "$T/fp8-b64.plan" --batch 64 --profile --top 12 2>&1 | tail -30 | tee -a "$SUM"
say "== fp16 b64 profile (top kernels)"
timeout 60 $R bench "$T/fp16-b64.plan" --batch 64 --profile --top 8 2>&1 | tail -22 | tee -a "$SUM"
