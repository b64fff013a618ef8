#!/usr/bin/env python3
"""Export a trained detector checkpoint (train.py's detector.pt) to ONNX, and check an ONNX file
against expected outputs with onnxruntime.

The exported graph is models/yolo.py's YOLOv8 with symbolic height/width (its anchor grid is
computed from the feature-map sizes, and folds to constants when a build fixes the size;
--fixed-size bakes in --imgsz instead); its output is the decoded [N, 4 + classes, anchors]
tensor ((cx, cy, w, h) in input pixels, then per-class sigmoid scores); input 'images'
[N, 3, H, W] float RGB in [0, 1], H and W multiples of 32.

  python3 export.py --ckpt OUT/detector.pt --out OUT/detector.onnx [--imgsz 640] [--opset 17]
  python3 export.py --check OUT/detector.onnx --input x.npy --expect y.npy   # onnxruntime only
"""

import argparse
import inspect
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def build_export_model(state_dict, scale, nc, imgsz, dynamic_hw=False):
    """YOLOv8 at imgsz with the trained weights; the size-dependent decode buffers (anchors,
    strides) are rebuilt for imgsz rather than loaded."""
    import torch  # noqa: F401

    sys.path.insert(0, os.path.dirname(HERE))
    from yolo import YOLOv8

    model = YOLOv8(scale, nc=nc, imgsz=imgsz)
    skip = {"detect.anchors", "detect.strides"}
    sd = {k: v for k, v in state_dict.items() if k not in skip}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k not in skip]
    if missing or unexpected:
        raise RuntimeError(f"checkpoint does not fit YOLOv8-{scale} with {nc} classes: "
                           f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.detect.dynamic_hw = dynamic_hw
    return model.float().eval()


def export_onnx(model, path, imgsz, opset=17, metadata=None, log=print, dynamic_hw=False):
    """torch -> ONNX with a dynamic batch axis (and symbolic height/width with dynamic_hw: the
    model must then compute its anchor grid from the feature sizes, Detect8.dynamic_hw). Uses the
    TorchScript exporter where the torch version has a choice (dynamo=False), since it honours opset 17 exactly."""
    import torch

    x = torch.zeros(1, 3, imgsz, imgsz)
    kw = dict(opset_version=opset, input_names=["images"], output_names=["output0"],
              dynamic_axes={"images": {0: "batch", 2: "height", 3: "width"} if dynamic_hw
                            else {0: "batch"},
                            "output0": {0: "batch", 2: "anchors"} if dynamic_hw else {0: "batch"}},
              do_constant_folding=True)
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params:
        kw["dynamo"] = False
    try:
        with torch.no_grad():
            torch.onnx.export(model, (x,), path, **kw)
    except Exception as e:  # a torch without the TorchScript exporter: use dynamo's
        if "dynamo" not in params:
            raise
        log(f"TorchScript ONNX export failed ({e}); retrying with dynamo=True")
        kw["dynamo"] = True
        if "external_data" in params:
            kw["external_data"] = False  # one self-contained file
        with torch.no_grad():
            torch.onnx.export(model, (x,), path, **kw)
    try:
        import onnx
        usable = hasattr(onnx, "load")  # not a stray namespace package
    except ImportError:
        usable = False
    if not usable:  # e.g. Debian's python3-torch has no onnx module beside it
        side = path + ".meta.json"
        with open(side, "w") as f:
            json.dump(metadata or {}, f)
        log(f"onnx is not importable here: metadata saved to {side}; finish with "
            f"`python3 export.py --finalize {path}` where onnx is installed")
        return path
    finalize_onnx(path, metadata, log)
    return path


def finalize_onnx(path, metadata=None, log=print):
    """onnx checker, metadata props, and the output's class axis made static (4 + classes; the
    exporter names it symbolically when H/W are symbolic). metadata None: read PATH.meta.json."""
    import onnx

    side = path + ".meta.json"
    if metadata is None and os.path.exists(side):
        with open(side) as f:
            metadata = json.load(f)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    del m.metadata_props[:]
    for k, v in (metadata or {}).items():
        p = m.metadata_props.add()
        p.key, p.value = str(k), v if isinstance(v, str) else json.dumps(v)
    names = (metadata or {}).get("names")
    if names:
        d = m.graph.output[0].type.tensor_type.shape.dim
        if len(d) == 3 and not d[1].HasField("dim_value"):
            d[1].dim_value = 4 + len(names)
    onnx.checker.check_model(m)
    onnx.save(m, path)
    if os.path.exists(side):
        os.remove(side)
    log(f"onnx checker passed; opset {m.opset_import[0].version}; "
        f"metadata keys {sorted((metadata or {}).keys())}")

    return path


def check_onnx(path, x, expect, atol=2e-3, rtol=1e-3):
    """Run path with onnxruntime on x; compare with expect. Returns (max abs diff, ok)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})
    if y.shape != expect.shape:
        return float("inf"), False, y
    diff = np.abs(y.astype(np.float64) - expect)
    ok = bool(np.all(diff <= atol + rtol * np.abs(expect)))
    return float(diff.max()), ok, y


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ckpt", help="train.py checkpoint (detector.pt)")
    ap.add_argument("--out", help="ONNX file to write")
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--fixed-size", action="store_true",
                    help="export for --imgsz only (anchor grid as constants) instead of symbolic H/W")
    ap.add_argument("--check", help="ONNX file to run with onnxruntime")
    ap.add_argument("--finalize", help="ONNX file exported where onnx was missing: add its metadata")
    ap.add_argument("--input", help=".npy input for --check")
    ap.add_argument("--expect", help=".npy expected output for --check")
    a = ap.parse_args(argv)
    if a.finalize:
        finalize_onnx(a.finalize)
        return 0
    if a.check:
        if not (a.input and a.expect):
            ap.error("--check needs --input and --expect")
        err, ok, y = check_onnx(a.check, np.load(a.input), np.load(a.expect))
        print(f"onnxruntime on {a.check}: output {tuple(y.shape)}, max |diff| {err:.3g} -> "
              f"{'OK' if ok else 'MISMATCH'}")
        return 0 if ok else 1
    if not (a.ckpt and a.out):
        ap.error("give --ckpt and --out (export) or --check")
    if a.imgsz % 32:
        ap.error(f"--imgsz must be a multiple of 32, got {a.imgsz}")
    import torch

    ck = torch.load(a.ckpt, map_location="cpu")
    dyn = not a.fixed_size
    model = build_export_model(ck["model"], ck["scale"], ck["nc"], a.imgsz, dynamic_hw=dyn)
    meta = dict(ck.get("meta", {}), imgsz=a.imgsz)
    export_onnx(model, a.out, a.imgsz, a.opset, meta, dynamic_hw=dyn)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
