#!/usr/bin/env bash
# Loopback soak of `ramjet serve` (issue #7): a dynamic-batching server under `ramjet loadgen
# --check` (distinct inputs per client; every response must equal that client's first) for a
# fixed time, the server's resident memory sampled every INTERVAL seconds. Fails on any failed
# or mismatched response, or when RSS at the end exceeds RSS after warm-up by more than
# RSS_SLACK_MB.
#
#   scripts/soak.sh [SECONDS] [MODEL.onnx] [DEVICE]
#   (defaults: 600, models/tiny_cnn.onnx, cpu; CONCURRENCY=16 INTERVAL=15 RSS_SLACK_MB=64
#    CHECK_TOL=1e-4 PRECISION=fp32|fp16). On CUDA, batches of other sizes run other cuDNN/cuBLASLt
#    algorithms (TF32 for FP32), so answers differ by rounding: CHECK_TOL=0.02 there still
#    separates rounding (~1e-3) from a response mixed up with another client's (~1).)
#
# Writes OUT (default out/soak)/{loadgen.txt,rss.tsv,server.log}.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TOTAL=${1:-600}
MODEL=${2:-models/tiny_cnn.onnx}
DEVICE=${3:-cpu}
B=${BUILD_DIR:-build}/bin/ramjet
OUT=${OUT:-out/soak}
C=${CONCURRENCY:-16}
INTERVAL=${INTERVAL:-15}
SLACK=${RSS_SLACK_MB:-64}
TOL=${CHECK_TOL:-1e-4}
PREC_FLAG=""; [ "${PRECISION:-fp32}" = fp16 ] && PREC_FLAG="--fp16"
mkdir -p "$OUT/repo"
name=$(basename "$MODEL" .onnx)
input=$(python3 -c "import onnx,sys; m=onnx.load(sys.argv[1]); print(m.graph.input[0].name)" "$MODEL")
dims=$(python3 -c "import onnx,sys; m=onnx.load(sys.argv[1]); d=m.graph.input[0].type.tensor_type.shape.dim; print('x'.join(str(x.dim_value or 1) for x in d[1:]))" "$MODEL")
echo "[soak] building $name for $DEVICE (batch 1..16 of $input [N,$dims])"
"$B" build "$MODEL" -o "$OUT/repo/$name.plan" --device "$DEVICE" $PREC_FLAG \
  --min-shapes "$input:1x$dims" --opt-shapes "$input:8x$dims" --max-shapes "$input:16x$dims" > "$OUT/build.log"
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
"$B" serve "$OUT/repo" --http-port "$port" --instances 2 > "$OUT/server.log" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "127.0.0.1:$port/v2/health/ready" >/dev/null && break; sleep 0.2; done
rss() { awk '/VmRSS/ {print $2}' /proc/$srv/status; }
echo -e "t_s\trss_kb" > "$OUT/rss.tsv"
start=$(date +%s)
"$B" loadgen --url "127.0.0.1:$port" -m "$name" -c "$C" --check --check-tol "$TOL" -d "$SECONDS_TOTAL" --warmup 5 > "$OUT/loadgen.txt" 2>&1 &
lg=$!
sleep 10
base=$(rss)
while kill -0 $lg 2>/dev/null; do
  echo -e "$(( $(date +%s) - start ))\t$(rss)" >> "$OUT/rss.tsv"
  sleep "$INTERVAL"
done
wait $lg && lg_rc=0 || lg_rc=$?
end_rss=$(rss)
kill -TERM $srv; wait $srv || true
trap - EXIT
cat "$OUT/loadgen.txt"
growth=$(( (end_rss - base) / 1024 ))
echo "[soak] ${SECONDS_TOTAL}s at concurrency $C on $DEVICE: server RSS after warm-up ${base} kB, at the end ${end_rss} kB (${growth} MB growth); loadgen rc=$lg_rc"
if [ "$lg_rc" -ne 0 ]; then echo "[soak] FAIL: loadgen reported failed or mismatched responses"; exit 1; fi
if [ "$growth" -gt "$SLACK" ]; then echo "[soak] FAIL: memory grew by more than ${SLACK} MB"; exit 1; fi
echo "[soak] PASS"
