#!/usr/bin/env python3
"""Peer benchmark: what ramjet is measured against, on the same GPU in the same device call.

For each zoo model (models/zoo.py builds the identical seeded torch module) and batch size:

  eager_fp32       PyTorch eager, FP32, NCHW (PyTorch defaults: cuDNN convolutions may use TF32,
                   matmul TF32 off -- recorded in env)
  eager_fp16_cl    PyTorch eager, model.half(), channels_last
  cudagraph_fp16   the eager FP16 channels_last forward captured once as a CUDA graph, replayed
  compile_fp16     torch.compile(mode="max-autotune") FP16 channels_last; opt-in per model:batch
                   (--compile), run in a child process with a timeout; compile seconds recorded
  ort_cpu_fp32     onnxruntime CPUExecutionProvider on the exported ONNX file (batch 1 only)

Latency: per-iteration CUDA events (host perf_counter on CPU), each iteration synchronised,
after warm-up (>= --warmup iterations and >= --warmup-ms); median over >= --min-iters
iterations or --target-ms of measuring, whichever is longer (capped at --max-iters).
Throughput = batch / median latency. Output: one JSON file (schema "ramjet-bench/1") that
bench/report.py turns into Markdown + PNG; ramjet's own rows (runtime "ramjet") go into the
same schema and slot into the same table.

  python3 bench/peers/peer_bench.py --out peers.json                  # everything, CUDA
  python3 bench/peers/peer_bench.py --device cpu --models yolov8n --batches 1 --min-iters 2 \\
      --target-ms 0 --modes eager_fp32 --ort-cpu --out /tmp/t.json    # smoke test on a CPU
"""

import argparse
import copy
import datetime
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "models"))
import zoo  # noqa: E402  (models/zoo.py; imports torch lazily)

MODES = ("eager_fp32", "eager_fp16_cl", "cudagraph_fp16")
PRECISION = {"eager_fp32": "fp32", "eager_fp16_cl": "fp16", "cudagraph_fp16": "fp16",
             "compile_fp16": "fp16", "ort_cpu_fp32": "fp32"}


def log(msg):
    print(f"[peer {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def percentile(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def stats(times_ms):
    return {"median": statistics.median(times_ms), "mean": statistics.fmean(times_ms),
            "min": min(times_ms), "p10": percentile(times_ms, 0.1),
            "p90": percentile(times_ms, 0.9), "max": max(times_ms)}


def time_fn(fn, device, args):
    """Median-able per-iteration latencies (ms) of fn(), each iteration synchronised."""
    import torch

    cuda = device == "cuda"
    t_w = time.perf_counter()
    n = 0
    while n < args.warmup or (time.perf_counter() - t_w) * 1e3 < args.warmup_ms:
        fn()
        n += 1
        if cuda:
            torch.cuda.synchronize()
    times = []
    t_end = time.perf_counter() + args.target_ms / 1e3
    if cuda:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    while len(times) < args.max_iters and (len(times) < args.min_iters or time.perf_counter() < t_end):
        if cuda:
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return times


def record(model, batch, mode, runtime="pytorch", **kw):
    r = {"model": model, "batch": batch, "runtime": runtime, "mode": mode,
         "precision": PRECISION.get(mode, ""), "status": "ok"}
    r.update(kw)
    if r.get("latency_ms"):
        r["throughput_per_s"] = batch / (r["latency_ms"]["median"] / 1e3)
    return r


def to_channels_last(model):
    """model.to(memory_format=channels_last) for 4-D tensors only: the YOLOv5 head keeps rank-5
    decode grids as buffers, which Module.to(memory_format=...) rejects."""
    import torch

    for t in list(model.parameters()) + list(model.buffers()):
        if t.dim() == 4:
            t.data = t.data.contiguous(memory_format=torch.channels_last)
    return model


def cosine(a, b):
    import numpy as np

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    d = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / d) if d > 0 else float("nan")


def bench_pytorch(name, model_cpu, batches, modes, device, args, deadline, results):
    """Every requested (batch, mode) of one model; appends to results."""
    import torch

    m32 = copy.deepcopy(model_cpu).to(device).eval()
    m16 = None
    if any(m != "eager_fp32" for m in modes):
        if device != "cuda":
            for b in batches:
                for mode in modes:
                    if mode != "eager_fp32":
                        results.append(record(name, b, mode, status="skipped", note="needs CUDA"))
            modes = [m for m in modes if m == "eager_fp32"]
        else:
            m16 = to_channels_last(copy.deepcopy(model_cpu).to(device).half()).eval()
    fp16_checked = False
    for b in batches:
        x32 = torch.from_numpy(zoo.seeded_input(name, b, args.seed + b)).to(device)
        x16 = x32.half().contiguous(memory_format=torch.channels_last) if m16 is not None else None
        for mode in modes:
            if time.time() > deadline:
                results.append(record(name, b, mode, status="skipped", note="time budget spent"))
                continue
            t0 = time.time()
            try:
                with torch.inference_mode():
                    if mode == "eager_fp32":
                        fn = lambda: m32(x32)  # noqa: E731
                    elif mode == "eager_fp16_cl":
                        fn = lambda: m16(x16)  # noqa: E731
                        if not fp16_checked:  # how far FP16 is from FP32 on this input
                            c = cosine(m16(x16).float().cpu().numpy(), m32(x32).cpu().numpy())
                            results.append(record(name, b, "fp16_vs_fp32", status="info", cosine=c))
                            fp16_checked = True
                    elif mode == "cudagraph_fp16":
                        static_in = x16.clone()
                        s = torch.cuda.Stream()
                        s.wait_stream(torch.cuda.current_stream())
                        with torch.cuda.stream(s):
                            for _ in range(3):
                                m16(static_in)
                        torch.cuda.current_stream().wait_stream(s)
                        g = torch.cuda.CUDAGraph()
                        with torch.cuda.graph(g):
                            static_out = m16(static_in)
                        ref = m16(static_in)
                        g.replay()
                        torch.cuda.synchronize()
                        if not torch.allclose(static_out.float(), ref.float(), rtol=1e-2, atol=1e-2):
                            raise RuntimeError("CUDA graph replay differs from eager")
                        fn = g.replay
                    else:
                        raise ValueError(f"unknown mode {mode}")
                    times = time_fn(fn, device, args)
                results.append(record(name, b, mode, device=device, latency_ms=stats(times),
                                      iters=len(times), wall_s=round(time.time() - t0, 2)))
                r = results[-1]
                log(f"{name} b{b} {mode}: {r['latency_ms']['median']:.3f} ms "
                    f"({r['throughput_per_s']:.0f}/s, {len(times)} it)")
            except Exception as e:
                msg = f"{type(e).__name__}: {e}"
                results.append(record(name, b, mode, status="error", error=msg[:500]))
                log(f"{name} b{b} {mode}: ERROR {msg[:300]}")
                if "out of memory" in msg.lower():
                    torch.cuda.empty_cache()
            finally:
                fn = None
                if mode == "cudagraph_fp16":
                    g = static_in = static_out = ref = None  # noqa: F841
    del m32, m16
    if device == "cuda":
        torch.cuda.empty_cache()


def bench_ort(name, path, args, results):
    try:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if args.ort_threads:
            opts.intra_op_num_threads = args.ort_threads
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        x = zoo.seeded_input(name, 1, args.seed + 1)
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(2):
            sess.run(None, feed)
        times = []
        t_end = time.perf_counter() + args.ort_target_ms / 1e3
        while len(times) < args.ort_max_iters and (len(times) < args.ort_min_iters or time.perf_counter() < t_end):
            t0 = time.perf_counter()
            sess.run(None, feed)
            times.append((time.perf_counter() - t0) * 1e3)
        results.append(record(name, 1, "ort_cpu_fp32", runtime="onnxruntime", device="cpu",
                              latency_ms=stats(times), iters=len(times),
                              threads=args.ort_threads or os.cpu_count()))
        log(f"{name} b1 ort_cpu_fp32: {results[-1]['latency_ms']['median']:.2f} ms ({len(times)} it)")
    except Exception as e:
        results.append(record(name, 1, "ort_cpu_fp32", runtime="onnxruntime", status="error",
                              error=f"{type(e).__name__}: {e}"[:500]))
        log(f"{name} ort: ERROR {e}")


def compile_child(args):
    """Child process: one torch.compile(max-autotune) FP16 measurement, JSON to --child-out."""
    import torch

    name, b = args.compile_job.split(":")
    b = int(b)
    torch.backends.cudnn.benchmark = True
    model = to_channels_last(zoo.build_model(name, args.seed).cuda().half()).eval()
    x = torch.from_numpy(zoo.seeded_input(name, b, args.seed + b)).cuda().half()
    x = x.contiguous(memory_format=torch.channels_last)
    cm = torch.compile(model, mode="max-autotune")
    t0 = time.time()
    with torch.inference_mode():
        y = cm(x)
        torch.cuda.synchronize()
        compile_s = time.time() - t0
        ref = model(x)
        c = cosine(y.float().cpu().numpy(), ref.float().cpu().numpy())
        times = time_fn(lambda: cm(x), "cuda", args)
    r = record(name, b, "compile_fp16", device="cuda", latency_ms=stats(times), iters=len(times),
               compile_s=round(compile_s, 1), cosine_vs_eager_fp16=c)
    with open(args.child_out, "w") as f:
        json.dump(r, f)


def run_compile_jobs(jobs, args, deadline, results):
    for job in jobs:
        name, b = job.split(":")
        remaining = deadline - time.time() - 5
        limit = min(args.compile_timeout, remaining)
        if limit < 30:
            results.append(record(name, int(b), "compile_fp16", status="skipped",
                                  note=f"time budget spent ({remaining:.0f} s left)"))
            log(f"compile {job}: skipped, {remaining:.0f} s left")
            continue
        out = tempfile.mktemp(suffix=".json")
        cmd = [sys.executable, os.path.abspath(__file__), "--compile-job", job, "--child-out", out,
               "--seed", str(args.seed), "--warmup", str(args.warmup), "--warmup-ms", str(args.warmup_ms),
               "--min-iters", str(args.min_iters), "--max-iters", str(args.max_iters),
               "--target-ms", str(args.target_ms)]
        log(f"compile {job}: starting (timeout {limit:.0f} s)")
        t0 = time.time()
        p = subprocess.Popen(cmd, start_new_session=True)  # own group: kill inductor workers too
        try:
            rc = p.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            results.append(record(name, int(b), "compile_fp16", status="timeout",
                                  note=f"not finished after {limit:.0f} s (compile + timing)"))
            log(f"compile {job}: TIMEOUT after {limit:.0f} s")
            continue
        if rc == 0 and os.path.exists(out):
            with open(out) as f:
                results.append(json.load(f))
            r = results[-1]
            log(f"compile {job}: {r['latency_ms']['median']:.3f} ms, compiled in {r['compile_s']} s")
        else:
            results.append(record(name, int(b), "compile_fp16", status="error",
                                  error=f"child exited {rc} after {time.time() - t0:.0f} s"))
            log(f"compile {job}: child exited {rc}")


def environment(device):
    import torch

    env = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
           "host": socket.gethostname(), "python": platform.python_version(), "torch": torch.__version__,
           "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
           "device": device}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    env["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        env["onnxruntime"] = None
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        env.update(gpu=p.name, gpu_mem_gib=round(p.total_memory / 2**30, 1), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version(), sm=f"{p.major}.{p.minor}",
                   cudnn_benchmark=torch.backends.cudnn.benchmark,
                   cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                   matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
        try:
            q = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name,clocks.max.sm,power.limit",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
            env["nvidia_smi"] = q.stdout.strip()
            env["driver"] = q.stdout.split(",")[0].strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return env


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(zoo.MODELS))
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--small-batches", default="256", help="extra batches for " + ", ".join(zoo.SMALL))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--compile", default="", help="model:batch[,model:batch..] for compile_fp16 (slow)")
    ap.add_argument("--compile-timeout", type=float, default=240)
    ap.add_argument("--ort-cpu", action="store_true", help="onnxruntime CPU at batch 1")
    ap.add_argument("--ort-threads", type=int, default=0)
    ap.add_argument("--ort-min-iters", type=int, default=5)
    ap.add_argument("--ort-max-iters", type=int, default=50)
    ap.add_argument("--ort-target-ms", type=float, default=1000)
    ap.add_argument("--zoo", default=os.path.join(ROOT, "models", "zoo"))
    ap.add_argument("--export", action="store_true", help="export each model to --zoo and check it (onnx.checker + ORT vs torch)")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--warmup-ms", type=float, default=100)
    ap.add_argument("--min-iters", type=int, default=10)
    ap.add_argument("--max-iters", type=int, default=200)
    ap.add_argument("--target-ms", type=float, default=300)
    ap.add_argument("--time-budget", type=float, default=1e9, help="seconds; later jobs are skipped and say so")
    ap.add_argument("--out", required=False, default="peers.json")
    ap.add_argument("--compile-job", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.compile_job:
        compile_child(args)
        return 0

    t_start = time.time()
    deadline = t_start + args.time_budget
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU (use --device cpu for a smoke test)", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    names = [n for n in args.models.split(",") if n]
    bad = [n for n in names if n not in zoo.MODELS]
    if bad:
        ap.error(f"unknown models {bad}")
    batches = [int(b) for b in args.batches.split(",") if b]
    small = [int(b) for b in args.small_batches.split(",") if b]
    modes = [m for m in args.modes.split(",") if m]
    jobs = [j for j in args.compile.split(",") if j]
    for j in jobs:
        if ":" not in j or j.split(":")[0] not in zoo.MODELS:
            ap.error(f"--compile wants model:batch, got '{j}'")
    out = {"schema": "ramjet-bench/1", "command": " ".join([os.path.basename(sys.executable)] + sys.argv),
           "env": environment(args.device), "settings": vars(args).copy(), "results": [], "zoo": {}}
    results = out["results"]
    log(f"env: {json.dumps(out['env'])}")

    def save():
        with open(args.out + ".tmp", "w") as f:
            json.dump(out, f, indent=1)
        os.replace(args.out + ".tmp", args.out)

    os.makedirs(args.zoo, exist_ok=True)
    for name in names:
        t0 = time.time()
        try:
            model = zoo.build_model(name, args.seed)
        except Exception as e:
            results.append(record(name, 0, "build", status="error", error=f"{type(e).__name__}: {e}"))
            log(f"{name}: build failed: {e}")
            continue
        log(f"{name}: built in {time.time() - t0:.1f} s")
        path = os.path.join(args.zoo, name + ".onnx")
        if args.export:
            try:
                zoo.export(name, args.zoo, seed=args.seed, model=model)
                zoo.check(name, args.zoo)
            except Exception as e:
                traceback.print_exc()
                results.append(record(name, 0, "export", status="error", error=f"{type(e).__name__}: {e}"[:500]))
        bs = batches + ([b for b in small if b not in batches] if name in zoo.SMALL else [])
        try:
            bench_pytorch(name, model, bs, modes, args.device, args, deadline, results)
        except Exception as e:  # one model's failure must not lose the others
            traceback.print_exc()
            results.append(record(name, 0, "pytorch", status="error", error=f"{type(e).__name__}: {e}"[:500]))
        if args.ort_cpu:
            if os.path.exists(path):
                bench_ort(name, path, args, results)
            else:
                results.append(record(name, 1, "ort_cpu_fp32", runtime="onnxruntime", status="skipped",
                                      note=f"{path} not found (run models/zoo.py or --export)"))
        save()
    run_compile_jobs(jobs, args, deadline, results)
    manifest = os.path.join(args.zoo, "manifest.json")
    if os.path.exists(manifest):
        with open(manifest) as f:
            out["zoo"] = {k: v for k, v in json.load(f).items() if k in names}
    out["wall_s"] = round(time.time() - t_start, 1)
    save()
    log(f"done in {out['wall_s']} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
