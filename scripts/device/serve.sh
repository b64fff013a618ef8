#!/usr/bin/env bash
# serve's device check (issue #7): ResNet-50 FP16 with a dynamic batch 1..64 profile vs static
# engines for batch 1, 8, 32 (`ramjet bench`, GPU compute median, dynamic/static ratio), then
# `ramjet serve` on loopback with dynamic batching vs without, driven by `ramjet loadgen` at
# concurrency 1, 16, 64 (binary tensors over HTTP keep-alive): throughput and p50/p99.
# Time-guarded (~110 s); plans and the repository go to a temp dir; never modifies the tree.
# Writes $OUT/serve/summary.txt. SERVE_REDUCED_IO=1: plans built --reduced-io (FP16 requests and
# responses, half the bytes); SERVE_INSTANCES: batching instances (default 2); SERVE_DELAY_US: the
# batching model's max_queue_delay_us (default 2000).
set -u
T0=$(date +%s)
el() { echo $(( $(date +%s) - T0 )); }
R=build/bin/ramjet
OUTD="${OUT:-/tmp}/serve"; mkdir -p "$OUTD"
SUM="$OUTD/summary.txt"; : > "$SUM"
TMP=$(mktemp -d)
SRV=""
cleanup() { [ -n "$SRV" ] && kill "$SRV" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
say() { echo "$@" | tee -a "$SUM"; }

say "== serve device check $(date -u +%FT%TZ) on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1), $(nproc) cores"
[ -x $R ] || { say "FAIL: $R missing"; exit 1; }
$R serve --help >/dev/null 2>&1 || { say "FAIL: this ramjet has no 'serve' command (build/ older than the serve commit?)"; exit 1; }

M=models/zoo/resnet50.onnx
if [ ! -f $M ]; then
  timeout 45 python3 models/zoo.py --models resnet50 --out "$TMP/zoo" > "$TMP/zoo.log" 2>&1
  M=$TMP/zoo/resnet50.onnx
  [ -f $M ] || { say "FAIL: could not export resnet50 ($(tail -3 "$TMP/zoo.log" | tr '\n' ' '))"; exit 1; }
  say "exported resnet50 ($(el) s)"
fi
IN=input; S=3x224x224
TC="$TMP/timing.cache"
build() {  # name, extra args...
  local n=$1; shift
  timeout 60 $R build $M -o "$TMP/$n.plan" --device cuda --fp16 ${SERVE_REDUCED_IO:+--reduced-io} --timing-cache "$TC" "$@" > "$TMP/$n.build.log" 2>&1 \
    || { say "FAIL: build $n: $(tail -2 "$TMP/$n.build.log" | tr '\n' ' ')"; return 1; }
  say "  $n: $(grep -E '^conv layout' "$TMP/$n.build.log")"
}
build dyn --min-shapes $IN:1x$S --opt-shapes $IN:32x$S --max-shapes $IN:64x$S || exit 1
say "built dynamic 1..64 ($(el) s)"
for b in 1 8 32; do
  if [ "$(el)" -gt 50 ]; then say "SKIP static b$b (time budget)"; continue; fi
  build s$b --shapes $IN:${b}x$S && say "built static b$b ($(el) s)"
done

med() { python3 -c 'import sys,json
t=sys.stdin.read()
try:
  rs=json.loads(t[t.index("{"):])["results"]; print(" ".join("%d:%.4f" % (r["batch"], r["compute_ms"]["median"]) for r in rs))
except Exception: print("")'; }
DYN=$($R bench "$TMP/dyn.plan" --batch 1,8,32 --duration 1 --warmup 20 --json 2>&1 | med)
say "dynamic engine median ms: $DYN"
say "| batch | static ms | dynamic ms | dynamic/static |"
say "|---|---|---|---|"
for b in 1 8 32; do
  [ -f "$TMP/s$b.plan" ] || continue
  ST=$($R bench "$TMP/s$b.plan" --batch $b --duration 1 --warmup 20 --json 2>&1 | med)
  s=${ST#*:}; d=$(echo "$DYN" | tr ' ' '\n' | grep "^$b:" | cut -d: -f2)
  if [ -n "$s" ] && [ -n "$d" ]; then
    r=$(python3 -c "print('%.3f' % ($d/$s))")
    v=$(python3 -c "print('PASS' if $d/$s <= 1.05 else 'FAIL')")
    say "| $b | $s | $d | $r ($v: target <= 1.05) |"
  else
    say "| $b | ${s:-?} | ${d:-?} | FAIL: no measurement |"
  fi
done
say "bench done ($(el) s)"

# ---- the server: one repository, the dynamic plan twice (batching on / off), 2 instances each ----
mkdir -p "$TMP/repo/rn50" "$TMP/repo/rn50_nobatch"
ln -s "$TMP/dyn.plan" "$TMP/repo/rn50/model.plan"
ln -s "$TMP/dyn.plan" "$TMP/repo/rn50_nobatch/model.plan"
echo "{\"max_batch\": 64, \"max_queue_delay_us\": ${SERVE_DELAY_US:-2000}, \"instances\": ${SERVE_INSTANCES:-2}}" > "$TMP/repo/rn50/config.json"
echo '{"dynamic_batching": false, "instances": 2}' > "$TMP/repo/rn50_nobatch/config.json"
PORT=18000
$R serve "$TMP/repo" --http-port $PORT --http-threads 160 > "$TMP/serve.log" 2>&1 &
SRV=$!
for i in $(seq 1 100); do
  grep -q "HTTP on" "$TMP/serve.log" && break
  kill -0 $SRV 2>/dev/null || break
  sleep 0.2
done
if ! grep -q "HTTP on" "$TMP/serve.log"; then
  say "FAIL: ramjet serve did not start: $(tail -3 "$TMP/serve.log" | tr '\n' ' ')"; exit 1
fi
say "server up ($(el) s)"
LD=2
[ "$(el)" -gt 75 ] && LD=1
for model in rn50 rn50_nobatch; do
  # --check: distinct input per client, every answer compared with that client's first one
  # (FP16 engines: batch composition may pick other tactics, hence the 2% tolerance).
  $R loadgen --url 127.0.0.1:$PORT -m $model -c 1,16,64 -d $LD --warmup 0.5 --label "$model" --check --check-tol 0.02 \
    --json > "$TMP/$model.json" 2> "$TMP/$model.err"
  echo "loadgen $model rc=$? ($(el) s)" | tee -a "$SUM"
done
python3 - "$TMP/rn50.json" "$TMP/rn50_nobatch.json" <<'EOF2' | tee -a "$SUM"
import json, sys
def load(p):
    try: return {r["concurrency"]: r for r in json.load(open(p))}
    except Exception as e: print("FAIL: cannot read", p, e); return {}
b, n = load(sys.argv[1]), load(sys.argv[2])
print("| concurrency | batching req/s | p50 ms | p99 ms | errors | no batching req/s | p50 ms | p99 ms | errors | speedup |")
print("|---|---|---|---|---|---|---|---|---|---|")
for c in sorted(set(b) | set(n)):
    x, y = b.get(c, {}), n.get(c, {})
    sp = x.get("req_per_s", 0) / y["req_per_s"] if y.get("req_per_s") else 0
    print("| %d | %.1f | %.2f | %.2f | %d | %.1f | %.2f | %.2f | %d | %.2fx |" % (c, x.get("req_per_s", 0), x.get("p50_ms", 0),
          x.get("p99_ms", 0), x.get("errors", -1), y.get("req_per_s", 0), y.get("p50_ms", 0), y.get("p99_ms", 0), y.get("errors", -1), sp))
    for r in (x, y):
        if r.get("first_error"): print("  first error:", r["first_error"][:300])
if 64 in b and 64 in n and n[64]["req_per_s"]:
    sp = b[64]["req_per_s"] / n[64]["req_per_s"]
    print("%s: batching speedup at concurrency 64 = %.2fx (target >= 5x), p99 %.2f ms" % ("PASS" if sp >= 5 else "FAIL", sp, b[64]["p99_ms"]))
errs = sum(r.get("errors", 0) for d in (b, n) for r in d.values())
mism = sum(r.get("mismatches", 0) for d in (b, n) for r in d.values())
chk = sum(r.get("checked", 0) for d in (b, n) for r in d.values())
print("%s: %d failed requests under load" % ("PASS" if errs == 0 else "FAIL", errs))
print("%s: %d of %d checked responses differ from their client's first answer by > 2%%" % ("PASS" if mism == 0 and chk > 0 else "FAIL", mism, chk))
EOF2
python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://127.0.0.1:$PORT/metrics', timeout=5).read().decode())" 2>&1 | grep -E '^ramjet_(requests_total|batches_total|batch_size_(sum|count))' | tee -a "$SUM"
# Where a request's time goes at concurrency 64 (batching): the server's queue and compute means
# over one more 2-second run, against the client's latency, and the CPU both processes used.
python3 - "$R" "$PORT" "$SRV" <<'EOF3' | tee -a "$SUM"
import subprocess, sys, time, urllib.request, json, os, resource
R, port, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
tck = os.sysconf("SC_CLK_TCK")
def metrics():
    t = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % port, timeout=5).read().decode()
    m = {}
    for line in t.splitlines():
        if line.startswith("ramjet_") and 'model="rn50"' in line and "_bucket" not in line:
            k, v = line.rsplit(" ", 1); m[k.split("{")[0]] = float(v)
    return m
def cpu(p):
    f = open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tck
ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
a, c0, t0 = metrics(), cpu(pid), time.time()
lg = subprocess.run([R, "loadgen", "--url", "127.0.0.1:" + port, "-m", "rn50", "-c", "64", "-d", "2", "--warmup", "0.3", "--json"],
                    capture_output=True, text=True)
b, c1, t1 = metrics(), cpu(pid), time.time()
ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
lg_cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / (t1 - t0)
try: r = json.loads(lg.stdout)[0]
except Exception: r = {}
d = lambda k: b.get(k, 0) - a.get(k, 0)
n, nb = d("ramjet_queue_duration_seconds_count"), d("ramjet_batches_total")
print("c64 breakdown: client p50 %.2f ms, %.0f req/s; server queue mean %.2f ms, compute mean %.2f ms per batch, "
      "%.1f rows per batch; server CPU %.1f cores; loadgen CPU %.1f cores" % (r.get("p50_ms", 0), r.get("req_per_s", 0),
      1e3 * d("ramjet_queue_duration_seconds_sum") / max(n, 1), 1e3 * d("ramjet_compute_duration_seconds_sum") / max(nb, 1),
      d("ramjet_batch_size_sum") / max(nb, 1), (c1 - c0) / (t1 - t0), lg_cpu))
EOF3
kill -TERM $SRV
for i in $(seq 1 50); do kill -0 $SRV 2>/dev/null || break; sleep 0.2; done
if kill -0 $SRV 2>/dev/null; then say "FAIL: server still running 10 s after SIGTERM"; else
  wait $SRV; say "server stopped on SIGTERM (rc $?): $(tail -1 "$TMP/serve.log")"; fi
SRV=""
say "done ($(el) s)"
