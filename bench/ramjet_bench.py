#!/usr/bin/env python3
"""ramjet's own rows for the peer table: `ramjet bench` on each zoo model, as "ramjet-bench/1" JSON.

  python3 bench/ramjet_bench.py --ramjet build/bin/ramjet --zoo models/zoo \\
      --batches 1,8,32,64 --precisions fp32,fp16 --out ramjet.json
  python3 bench/report.py peers.json ramjet.json --md table.md --png chart.png

Runs `ramjet bench <zoo>/<model>.onnx --device D [--fp16] --batch B,.. --json` once per model
and precision (the engine is built in memory each time; that wall time is recorded as
build_and_bench_s). latency_ms is ramjet's GPU compute time per inference (enqueue ->
synchronize, inputs already on the device), which is what PyTorch's CUDA-event latency in
peer_bench.py measures too; host<->device copies and end-to-end time are kept alongside.
Small nets (models/zoo.py SMALL) also get --small-batches. Rows carry runtime "ramjet" and mode
ramjet_fp32 / ramjet_fp16, so bench/report.py fills the ramjet columns and ratios. Run it in
the same device call as peer_bench.py.
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
import zoo  # noqa: E402


def log(msg):
    print(f"[ramjet-bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_json(stdout):
    """The JSON object `ramjet bench --json` prints (the last line that parses)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    try:
        return json.loads(stdout)
    except json.JSONDecodeError:
        return None


def rows_from(name, prec, data, wall_s):
    rows = []
    for r in data.get("results", []):
        c = r.get("compute_ms") or {}
        if not c.get("median"):
            continue
        b = int(r["batch"])
        rows.append({
            "model": name, "batch": b, "runtime": "ramjet", "mode": f"ramjet_{prec}", "precision": prec,
            "device": data.get("device"), "status": "ok",
            "latency_ms": {k: c[k] for k in ("median", "mean", "min", "p90", "p99", "max") if k in c},
            "throughput_per_s": b / (c["median"] / 1e3), "iters": r.get("iterations"),
            "h2d_ms": r.get("h2d_ms"), "d2h_ms": r.get("d2h_ms"), "end_to_end_ms": r.get("end_to_end_ms"),
            "ramjet_throughput_per_s": r.get("throughput_per_s"), "load_ms": data.get("load_ms"),
            "engine_precision": data.get("precision"), "build_and_bench_s": round(wall_s, 1)})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ramjet", default=os.path.join(ROOT, "build", "bin", "ramjet"))
    ap.add_argument("--zoo", default=os.path.join(ROOT, "models", "zoo"))
    ap.add_argument("--models", default=",".join(zoo.MODELS), help="names of <zoo>/<name>.onnx")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--small-batches", default="256")
    ap.add_argument("--precisions", default="fp32,fp16")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--duration", type=float, default=0.3, help="seconds per batch (ramjet bench --duration)")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=300, help="seconds per ramjet bench call")
    ap.add_argument("--time-budget", type=float, default=1e9)
    ap.add_argument("--out", default="ramjet.json")
    ap.add_argument("--per-batch", action="store_true",
                    help="one static build per batch size (as a deployment would), instead of one dynamic plan")
    args = ap.parse_args()

    deadline = time.time() + args.time_budget
    if not os.access(args.ramjet, os.X_OK):
        print(f"error: no ramjet binary at {args.ramjet}", file=sys.stderr)
        return 2
    ver = subprocess.run([args.ramjet, "--version"], capture_output=True, text=True).stdout.strip()
    out = {"schema": "ramjet-bench/1", "command": " ".join(["python3"] + sys.argv),
           "env": {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
                   "ramjet": ver, "device": args.device},
           "results": []}
    res = out["results"]
    batches = [int(b) for b in args.batches.split(",") if b]
    small = [int(b) for b in args.small_batches.split(",") if b]
    for name in [m for m in args.models.split(",") if m]:
        path = os.path.join(args.zoo, name + ".onnx")
        bs = batches + ([b for b in small if b not in batches] if name in zoo.SMALL else [])
        for prec in [p for p in args.precisions.split(",") if p]:
            mode = f"ramjet_{prec}"
            if time.time() > deadline:
                res += [{"model": name, "batch": b, "runtime": "ramjet", "mode": mode, "precision": prec,
                         "status": "skipped", "note": "time budget spent"} for b in bs]
                continue
            if not os.path.exists(path):
                res += [{"model": name, "batch": b, "runtime": "ramjet", "mode": mode, "precision": prec,
                         "status": "skipped", "note": f"{path} not found"} for b in bs]
                continue
            for group in ([[b] for b in bs] if args.per_batch else [bs]):
                cmd = [args.ramjet, "bench", path, "--device", args.device, "--batch", ",".join(map(str, group)),
                       "--duration", str(args.duration), "--warmup", str(args.warmup), "--json"]
                if prec == "fp16":
                    cmd.append("--fp16")
                elif prec != "fp32":
                    log(f"{name}: precision {prec} not supported by this script")
                    continue
                t0 = time.time()
                try:
                    p = subprocess.run(cmd, capture_output=True, text=True,
                                       timeout=min(args.timeout, max(deadline - time.time(), 10)))
                    err = None if p.returncode == 0 else f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[:800]}"
                    data = parse_json(p.stdout) if p.returncode == 0 else None
                    if p.returncode == 0 and data is None:
                        err = f"no JSON in output: {p.stdout.strip()[:300]}"
                except subprocess.TimeoutExpired:
                    err, data = "timeout", None
                wall = time.time() - t0
                if data is not None:
                    out["env"].setdefault("gpu", data.get("gpu"))
                    got = rows_from(name, prec, data, wall)
                    res += got
                    seen = {r["batch"] for r in got}
                    res += [{"model": name, "batch": b, "runtime": "ramjet", "mode": mode, "precision": prec,
                             "status": "error", "error": "no result for this batch"} for b in group if b not in seen]
                    log(f"{name} {prec}: " + ", ".join(f"b{r['batch']} {r['latency_ms']['median']:.3f} ms" for r in got)
                        + f" ({wall:.0f} s)")
                else:
                    res += [{"model": name, "batch": b, "runtime": "ramjet", "mode": mode, "precision": prec,
                             "status": "error", "error": err} for b in group]
                    log(f"{name} {prec}: ERROR {err}")
            with open(args.out, "w") as f:
                json.dump(out, f, indent=1)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    ok = sum(r["status"] == "ok" for r in res)
    log(f"{ok}/{len(res)} rows measured -> {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
