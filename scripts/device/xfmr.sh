#!/usr/bin/env bash
# xfmr's device check (issue #5 item 3, transformer/GEMM/NVRTC fusion): the transformer GPU
# tests (Attention / MultiHeadAttention / FusedGemm / FusedElementwise / LayerNorm vs the CPU
# reference, ViT FP16 vs CPU FP32), then ViT-B/16 FP16 median GPU ms at batch 1 and 64 built
# with xfmr's passes, without them, and without AttentionFusion too (the state before).
# Time-guarded to stay under ~90 s. Writes $OUT/xfmr/summary.txt. Never modifies the tree.
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
B=build/bin
OUTD="${OUT:-/tmp}/xfmr"; mkdir -p "$OUTD"
SUM="$OUTD/summary.txt"; : > "$SUM"
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
export XDG_CACHE_HOME="$TMP/cache"   # NVRTC disk cache: cold on purpose
say() { echo "$@" | tee -a "$SUM"; }

say "== xfmr device check $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)"
if [ ! -x $B/ramjet_transformer_gpu_tests ]; then
  say "FAIL: $B/ramjet_transformer_gpu_tests missing (build/ not rebuilt with tests/gpu/test_transformer_gpu.cc?)"
else
  timeout 30 $B/ramjet_transformer_gpu_tests --gtest_filter='-*Vit*' > "$TMP/k.log" 2>&1
  say "kernel tests rc=$? ($(el) s)"
  grep -E "^\[xfmr-gpu\]|^\[  (PASSED|FAILED) |Failure|rror|Expected|Which is|actual|NVRTC" "$TMP/k.log" | head -80 | tee -a "$SUM"
fi

med() { python3 -c 'import sys,json
t=sys.stdin.read()
try:
  rs=json.loads(t[t.index("{"):])["results"]; print(" ".join("b%d %.4f" % (r["batch"], r["compute_ms"]["median"]) for r in rs))
except Exception: print("FAILED:", t[-300:].replace("\n"," "))'; }

f=models/zoo/vit_b_16.onnx
if [ ! -f "$f" ]; then
  say "BENCH vit: SKIP (no $f; python3 models/zoo.py makes it)"
else
  MINE=GemmEpilogueFusion,AttentionLayoutFold,AddLayerNormFusion,ElementwiseFusion
  for mode in fused before nofuse; do
    if [ "$(el)" -gt 50 ]; then say "BENCH vit $mode: SKIP (time budget)"; continue; fi
    case $mode in
      fused) unset RAMJET_DISABLE_PASSES ;;
      nofuse) export RAMJET_DISABLE_PASSES=$MINE ;;
      before) export RAMJET_DISABLE_PASSES=$MINE,AttentionFusion ;;
    esac
    t1=$(date +%s.%N)
    blog=$(timeout 35 $B/ramjet build "$f" -o "$TMP/vit.$mode.plan" --device cuda --fp16 \
      --min-shapes "input:1x3x224x224" --opt-shapes "input:64x3x224x224" --max-shapes "input:64x3x224x224" 2>&1)
    rc=$?
    t2=$(date +%s.%N)
    if [ $rc -ne 0 ]; then say "BENCH vit $mode: BUILD FAILED rc=$rc: $(echo "$blog" | tail -4 | tr '\n' ' ')"; continue; fi
    ops=$($B/ramjet inspect "$TMP/vit.$mode.plan" 2>/dev/null | awk '$2=="device"{print $3}' | sort | uniq -c | sort -rn | head -12 | awk '{printf "%s=%s ", $2, $1}')
    r=$(timeout 20 $B/ramjet bench "$TMP/vit.$mode.plan" --batch 1,64 --duration 0.3 --warmup 5 --json 2>&1 | med)
    say "BENCH vit $mode fp16 median_gpu_ms: $r  (build $(python3 -c "print(round($t2-$t1,1))") s) ops: $ops"
  done
  unset RAMJET_DISABLE_PASSES
fi

left=$(( 88 - $(el) ))
if [ -x $B/ramjet_transformer_gpu_tests ] && [ $left -gt 10 ]; then
  RAMJET_ZOO_DIR=models/zoo timeout $left $B/ramjet_transformer_gpu_tests --gtest_filter='*Vit*' > "$TMP/z.log" 2>&1
  say "vit accuracy test rc=$? ($(el) s)"
  grep -E "^\[xfmr-gpu\]|^\[  (PASSED|FAILED) |Failure" "$TMP/z.log" | head -30 | tee -a "$SUM"
else
  say "vit accuracy test: SKIP (time budget, $(el) s used)"
fi
say "== done in $(el) s"
