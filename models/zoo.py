#!/usr/bin/env python3
"""ramjet model zoo: export seeded, random-init PyTorch models to ONNX with a dynamic batch axis.

  python3 models/zoo.py                      # every model -> models/zoo/<name>.onnx
  python3 models/zoo.py --models resnet50,yolov8n --check
  python3 models/zoo.py --check-only         # validate existing files (needs onnx + onnxruntime)

Export needs torch + torchvision (Debian's python3-torch 1.13 here, torch 2.11 on the GPU
machine). --check needs onnx + onnxruntime; when the interpreter that exported lacks them
(Debian python here) the check re-runs this script with --check-python (default: the first
other `python3` on PATH that has them).

Weights are random (no hub downloads) at a fixed seed. So that activations have the scale of a
trained network rather than vanishing or exploding through 50+ random layers, BatchNorm affine
parameters are drawn from U(0.8, 1.2) / U(-0.1, 0.1) and running statistics are recomputed
on a few seeded random batches (cumulative average, everything else in eval mode). The whole
procedure is deterministic given --seed.

Each export writes <name>.onnx, <name>.io.npz (a seeded batch-2 input and the torch output, for
the check) and merges a record into <out>/manifest.json.
"""

import argparse
import hashlib
import inspect
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (input name, input CHW, output name, kind, calibration batch)
MODELS = {
    "resnet50": ("input", (3, 224, 224), "logits", "classifier", 8),
    "mobilenet_v3_large": ("input", (3, 224, 224), "logits", "classifier", 8),
    "efficientnet_b0": ("input", (3, 224, 224), "logits", "classifier", 8),
    "vit_b_16": ("input", (3, 224, 224), "logits", "classifier", 0),
    "yolov8n": ("images", (3, 640, 640), "output0", "detector", 4),
    "yolov8s": ("images", (3, 640, 640), "output0", "detector", 4),
    "yolov5s": ("images", (3, 640, 640), "output0", "detector", 4),
}
SMALL = ("mobilenet_v3_large", "efficientnet_b0", "yolov8n")  # also benchmarked at batch 256
SLOW_ON_CPU = ("resnet50", "vit_b_16")  # skipped by --quick in tests/models/compare_ort.py


def input_shape(name, batch):
    return (batch,) + MODELS[name][1]


def seeded_input(name, batch, seed):
    """The deterministic test input every tool uses: N(0,1) for classifiers (a normalised image),
    U(0,1) for detectors (a 0..1 scaled image)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    shape = input_shape(name, batch)
    if MODELS[name][3] == "detector":
        return rng.random(shape, dtype=np.float32)
    return rng.standard_normal(shape, dtype=np.float32)


def build_model(name, seed=0, calibrate=True):
    """The zoo model `name` as a torch module in eval mode, identical for a given seed."""
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    if name.startswith("yolov8") or name.startswith("yolov5"):
        sys.path.insert(0, HERE)
        import yolo

        model = (yolo.yolov8 if name.startswith("yolov8") else yolo.yolov5)(name[-1])
    else:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
    # torchvision zero-initialises some weights (ViT's classifier head) so that a fresh model
    # outputs constants; give those seeded small values, or every comparison would be 0 vs 0.
    gen0 = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                p.copy_(torch.randn(p.shape, generator=gen0) * 0.02)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.num_features, generator=gen) * 0.4 + 0.8)
            bn.bias.copy_(torch.rand(bn.num_features, generator=gen) * 0.2 - 0.1)
    model.eval()
    cal_batch = MODELS[name][4]
    if calibrate and bns and cal_batch:
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative moving average over the calibration batches
            bn.train()
        with torch.no_grad():
            for i in range(2):
                model(torch.from_numpy(seeded_input(name, cal_batch, seed + 100 + i)))
        for bn in bns:
            bn.momentum = 0.1
        model.eval()
    return model


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest_update(out_dir, name, record):
    path = os.path.join(out_dir, "manifest.json")
    data = {}
    if os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
    data.setdefault(name, {}).update(record)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def export(name, out_dir, opset=17, seed=0, model=None):
    """Export `name` (built here, or the given module from build_model(name, seed))."""
    import numpy as np
    import torch

    in_name, _, out_name, _, _ = MODELS[name]
    t0 = time.time()
    if model is None:
        model = build_model(name, seed)
    build_s = time.time() - t0
    x = torch.from_numpy(seeded_input(name, 2, seed))  # batch 2 so nothing specialises on 1
    with torch.no_grad():
        y = model(x).numpy()
    path = os.path.join(out_dir, name + ".onnx")
    kwargs = dict(opset_version=opset, input_names=[in_name], output_names=[out_name],
                  dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
                  do_constant_folding=True)
    exporter = "torchscript"
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # torch >= 2.9 defaults to the dynamo exporter
    t0 = time.time()
    # Trace with autograd on: nn.MultiheadAttention's inference fast path
    # (aten::_native_multi_head_attention, torch 1.13+) has no ONNX export; it is skipped when
    # parameters require grad, so ViT exports as plain MatMul/Softmax.
    try:
        with torch.enable_grad():
            torch.onnx.export(model, (x,), path, **kwargs)
    except Exception as e:  # the TorchScript exporter may be gone in a future torch
        if kwargs.get("dynamo") is not False:
            raise
        print(f"[zoo] {name}: TorchScript exporter failed ({type(e).__name__}: {e}); "
              "trying dynamo=True", flush=True)
        kwargs["dynamo"] = True
        exporter = "dynamo"
        with torch.enable_grad():
            torch.onnx.export(model, (x,), path, **kwargs)
    export_s = time.time() - t0
    np.savez(os.path.join(out_dir, name + ".io.npz"), input=x.numpy(), output=y)
    record = {
        "file": name + ".onnx", "bytes": os.path.getsize(path), "sha256": _sha256(path),
        "opset": opset, "seed": seed, "input": [in_name, ["batch"] + list(MODELS[name][1])],
        "output": [out_name, ["batch"] + list(y.shape[1:])], "exporter": exporter,
        "torch": torch.__version__, "python": platform.python_version(),
        "params": int(sum(p.numel() for p in model.parameters())),
        "build_s": round(build_s, 2), "export_s": round(export_s, 2),
    }
    _manifest_update(out_dir, name, record)
    print(f"[zoo] {name}: {path} ({record['bytes'] / 1e6:.1f} MB, {record['params'] / 1e6:.2f} M "
          f"params, output {list(y.shape)}) built {build_s:.1f}s exported {export_s:.1f}s",
          flush=True)
    return path


def compare(a, b):
    """max abs error, max abs error relative to max |reference|, cosine (b is the reference)."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch {a.shape} vs {b.shape}")
    if not np.all(np.isfinite(a)):
        return {"max_abs": float("inf"), "rel_to_max": float("inf"), "cosine": float("nan")}
    diff = np.abs(a - b)
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return {"max_abs": float(diff.max()),
            "rel_to_max": float(diff.max() / max(np.abs(b).max(), 1e-30)),
            "cosine": float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))}


def check(name, out_dir, tol_rel=1e-3, tol_cos=0.9999):
    """onnx.checker + onnxruntime (CPU) vs the torch output saved at export."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    path = os.path.join(out_dir, name + ".onnx")
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path, load_external_data=False)
    in_dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if not isinstance(in_dims[0], str):
        raise ValueError(f"{name}: batch axis of input '{model.graph.input[0].name}' is not "
                         f"symbolic: {in_dims}")
    io = np.load(os.path.join(out_dir, name + ".io.npz"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = min(os.cpu_count() or 1, 16)
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    t0 = time.time()
    (got,) = sess.run(None, {sess.get_inputs()[0].name: io["input"]})
    run_s = time.time() - t0
    m = compare(got, io["output"])
    ok = m["cosine"] >= tol_cos and m["rel_to_max"] <= tol_rel
    if float(np.ptp(io["output"])) == 0.0:  # a constant output would compare equal to anything
        print(f"[zoo] check {name}: torch output is constant ({io['output'].flat[0]}): degenerate model")
        ok = False
    record = {"check": dict(m, ok=bool(ok), onnx=onnx.__version__, onnxruntime=ort.__version__,
                            ort_batch2_s=round(run_s, 3), opset_in_file=model.opset_import[0].version,
                            nodes=len(model.graph.node))}
    _manifest_update(out_dir, name, record)
    print(f"[zoo] check {name}: onnx.checker ok, batch axis '{in_dims[0]}', onnxruntime vs torch "
          f"max_abs={m['max_abs']:.3e} rel_to_max={m['rel_to_max']:.3e} cosine={m['cosine']:.8f} "
          f"-> {'OK' if ok else 'FAIL'}", flush=True)
    return ok


def _has_checker_deps(python):
    code = "import onnx, onnxruntime, numpy; onnx.checker.check_model"
    try:
        return subprocess.run([python, "-c", code], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _find_checker_python(explicit):
    if explicit:
        return explicit
    for d in os.environ.get("PATH", "").split(os.pathsep):
        cand = os.path.join(d, "python3")
        if os.access(cand, os.X_OK) and os.path.realpath(cand) != os.path.realpath(sys.executable):
            if _has_checker_deps(cand):
                return cand
    return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of: " + ", ".join(MODELS))
    ap.add_argument("--out", default=os.path.join(HERE, "zoo"), help="output folder (git-ignored)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--check", action="store_true", help="after export: onnx.checker + onnxruntime vs torch")
    ap.add_argument("--check-only", action="store_true", help="only check already exported files")
    ap.add_argument("--check-python", default=None, help="interpreter with onnx+onnxruntime for --check")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = ap.parse_args(argv)

    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {list(MODELS)}")
    os.makedirs(args.out, exist_ok=True)

    if not args.check_only:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        for n in names:
            export(n, args.out, args.opset, args.seed)
    if not (args.check or args.check_only):
        return 0
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401

        have = hasattr(onnx, "checker")
    except ImportError:
        have = False
    if not have:
        py = _find_checker_python(args.check_python)
        if not py:
            print("[zoo] error: --check needs onnx and onnxruntime; none of the python3 on PATH "
                  "has them (give --check-python)", file=sys.stderr)
            return 2
        print(f"[zoo] checking with {py}", flush=True)
        return subprocess.call([py, os.path.abspath(__file__), "--check-only", "--models",
                                ",".join(names), "--out", args.out])
    failed = []
    for n in names:
        try:
            if not check(n, args.out):
                failed.append(n)
        except Exception as e:  # report every model, then fail
            print(f"[zoo] check {n}: FAILED: {type(e).__name__}: {e}", flush=True)
            failed.append(n)
    if failed:
        print(f"[zoo] check failed for: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
