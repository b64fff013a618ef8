"""Per-call overhead of the Python API over the C++ enqueue on device buffers (issue #10).

    PYTHONPATH=build/python python3 python/bench/overhead.py [--model models/tiny_cnn.onnx] [--json out.json]

Builds the model for CUDA, binds PyTorch CUDA tensors, then times on one stream:
  cpp_enqueue      ExecutionContext::enqueue in a C++ loop (ctx._time_enqueue): the baseline
  py_execute_async ctx.execute_async(stream) from Python with bound addresses
  py_infer_out     ctx.infer({x: tensor}, outputs={y: tensor}, stream=s)   (zero-copy, no alloc)
  py_infer_alloc   ctx.infer({x: tensor}, stream=s)  (outputs allocated by torch each call)
Each is timed as bursts of --burst calls (host clock, queue not full), synchronizing between
bursts; the median per-call time over --reps bursts is reported, and overhead = python - C++.
A tiny model keeps the GPU time per call small, so host-side costs are what is measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

import ramjet


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/tiny_cnn.onnx")
    ap.add_argument("--input", default="images")
    ap.add_argument("--shape", default="1,3,32,32")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--json", default="")
    ap.add_argument("--limit-us", type=float, default=20.0)
    a = ap.parse_args()

    import torch

    shape = tuple(int(v) for v in a.shape.split(","))
    g = ramjet.import_onnx(a.model)
    prof = {a.input: (shape, shape, shape)}
    engine = ramjet.Engine.from_bytes(
        ramjet.build(g, device="cuda", precision=a.precision, profiles=prof).to_bytes())
    ctx = engine.create_context()
    out_name = engine.outputs[0].name
    stream = torch.cuda.Stream()
    x = torch.randn(shape, device="cuda")
    ctx.set_input_shape(a.input, shape)
    y = torch.empty(ctx.tensor_shape(out_name), device="cuda")
    ctx.set_tensor_address(a.input, x)
    ctx.set_tensor_address(out_name, y)
    h = stream.cuda_stream

    def burst_cpp():
        return ctx._time_enqueue(a.burst, h) / a.burst

    def burst_exec():
        t0 = time.perf_counter()
        for _ in range(a.burst):
            ctx.execute_async(h)
        dt = time.perf_counter() - t0
        stream.synchronize()
        return dt / a.burst

    inputs = {a.input: x}
    outputs = {out_name: y}

    def burst_infer_out():
        t0 = time.perf_counter()
        for _ in range(a.burst):
            ctx.infer(inputs, outputs=outputs, stream=h)
        dt = time.perf_counter() - t0
        stream.synchronize()
        return dt / a.burst

    def burst_infer_alloc():
        t0 = time.perf_counter()
        with torch.cuda.stream(stream):
            for _ in range(a.burst):
                ctx.infer(inputs, stream=h)
        dt = time.perf_counter() - t0
        stream.synchronize()
        return dt / a.burst

    def sync_latency(fn_one):
        ts = []
        for _ in range(a.burst):
            t0 = time.perf_counter()
            fn_one()
            stream.synchronize()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    cases = {"cpp_enqueue": burst_cpp, "py_execute_async": burst_exec,
             "py_infer_out": burst_infer_out, "py_infer_alloc": burst_infer_alloc}
    for fn in cases.values():  # warm-up (CUDA graph capture, torch allocator)
        for _ in range(3):
            fn()
    res = {k: [] for k in cases}
    for _ in range(a.reps):  # interleaved so drift hits every case alike
        for k, fn in cases.items():
            res[k].append(fn())
    med = {k: statistics.median(v) * 1e6 for k, v in res.items()}
    lat_cpp = sync_latency(lambda: ctx._time_enqueue(1, h)) * 1e6
    lat_py = sync_latency(lambda: ctx.infer(inputs, outputs=outputs, stream=h)) * 1e6

    # Correctness of what was timed: the bound output equals the host-path result.
    ref = engine.create_context().infer({a.input: x.cpu().numpy()})[out_name]
    ctx.infer(inputs, outputs=outputs, stream=h)
    stream.synchronize()
    err = float(np.abs(y.cpu().numpy() - ref).max())

    print(f"device: {torch.cuda.get_device_name()}  model {a.model} {shape} {a.precision}  "
          f"burst {a.burst} x {a.reps}")
    for k, v in med.items():
        print(f"  {k:18s} {v:8.2f} us/call (host, median of bursts)")
    print(f"  sync latency: C++ enqueue+sync {lat_cpp:.2f} us, py infer+sync {lat_py:.2f} us")
    over = {k: med[k] - med["cpp_enqueue"] for k in ("py_execute_async", "py_infer_out", "py_infer_alloc")}
    for k, v in over.items():
        print(f"  overhead {k:18s} {v:+8.2f} us/call over C++ enqueue")
    print(f"  bound output vs host path: max abs {err:.3e}")
    ok = over["py_infer_out"] <= a.limit_us and err < 1e-3
    print(("PASS" if ok else "FAIL") + f": python infer on device buffers adds {over['py_infer_out']:.2f} us/call "
          f"(limit {a.limit_us} us); execute_async adds {over['py_execute_async']:.2f} us")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"median_us": med, "overhead_us": over, "sync_latency_us": {"cpp": lat_cpp, "py_infer": lat_py},
                       "max_abs_err": err, "device": torch.cuda.get_device_name(), "model": a.model,
                       "shape": shape, "precision": a.precision, "burst": a.burst, "reps": a.reps}, f, indent=1)
    engine.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
