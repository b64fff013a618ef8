"""The seed workflow from Python: ONNX -> FP16 build -> save -> load -> infer a batch of images -> top-5.

    PYTHONPATH=build/python python3 python/examples/classify.py                  # defaults below
    python3 python/examples/classify.py --model models/zoo/resnet50.onnx --device cuda img1.jpg img2.jpg

Model: --model, else models/zoo/resnet50.onnx when the zoo was generated (models/zoo.py), else
models/tiny_cnn.onnx. Images: the arguments, else Debian's darknet samples
(/usr/share/darknet/data/*.jpg, decoded with Pillow); without Pillow or images it generates
scenes with models/detector/scenes.py (pure numpy). Note: the zoo's weights are random unless
you exported trained ones, so the labels show the workflow, not a trained classifier's answer.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import sys
import time

import numpy as np

import ramjet

REPO = pathlib.Path(__file__).resolve().parents[2]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def load_images(paths, h, w):
    """-> (float32 [N, 3, h, w] normalized, names)."""
    try:
        from PIL import Image
    except ImportError:
        Image = None
    arrays, names = [], []
    if paths and Image is None:
        sys.exit("decoding image files needs Pillow (pip install pillow)")
    if Image is not None:
        for p in paths:
            img = Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR)
            arrays.append(np.asarray(img, np.uint8))
            names.append(os.path.basename(p))
    if not arrays:  # no Pillow or no images: the project's own scene generator
        sys.path.insert(0, str(REPO / "models" / "detector"))
        import scenes
        for i in range(4):
            img, _, _ = scenes.generate(2, i, (h, w))
            arrays.append(img)
            names.append(f"scene-2-{i}")
    x = np.stack(arrays).astype(np.float32) / 255.0
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), names


def labels_for(n):
    f = pathlib.Path("/usr/share/darknet/data/imagenet.shortnames.list")
    if n == 1000 and f.exists():
        return f.read_text().splitlines()
    return [f"class{i}" for i in range(n)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="*")
    ap.add_argument("--model", default="")
    ap.add_argument("--device", default="cuda" if ramjet.cuda_available() else "cpu")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--plan", default="/tmp/classify.plan")
    a = ap.parse_args()

    model = a.model or str(REPO / "models" / "zoo" / "resnet50.onnx")
    if not os.path.exists(model):
        model = str(REPO / "models" / "tiny_cnn.onnx")
    try:
        import PIL  # noqa: F401  (decodes the darknet JPEGs)
        default_images = sorted(glob.glob("/usr/share/darknet/data/*.jpg"))
    except ImportError:
        default_images = []  # generated scenes instead
    images = a.images or default_images

    graph = ramjet.import_onnx(model)
    inp = graph.inputs[0]
    _, c, h, w = inp.shape
    x, names = load_images(images, h, w)
    n = x.shape[0]
    print(f"model {os.path.basename(model)}: {graph.num_nodes} nodes, input {inp.name} {inp.shape}; "
          f"{n} images; {a.device} {a.precision}")

    t0 = time.perf_counter()
    try:
        plan = ramjet.build(graph, device=a.device, precision=a.precision,
                            profiles={inp.name: ((1, c, h, w), (n, c, h, w), (max(n, 8), c, h, w))})
    except ramjet.UnsupportedError as e:
        print(f"{a.precision} unsupported here ({e}); building fp32")
        plan = ramjet.build(graph, device=a.device, precision="fp32",
                            profiles={inp.name: ((1, c, h, w), (n, c, h, w), (max(n, 8), c, h, w))})
    plan.save(a.plan)
    print(f"built in {time.perf_counter() - t0:.2f} s, saved {a.plan} ({plan.nbytes / 1e6:.1f} MB)")

    engine = ramjet.Engine.load(a.plan)
    ctx = engine.create_context()
    out = ctx.infer({inp.name: x})
    t0 = time.perf_counter()
    out = ctx.infer({inp.name: x})
    dt = time.perf_counter() - t0
    logits = out[engine.outputs[0].name].reshape(n, -1).astype(np.float64)
    if not np.allclose(logits.sum(1), 1, atol=1e-3):  # logits -> probabilities
        e = np.exp(logits - logits.max(1, keepdims=True))
        logits = e / e.sum(1, keepdims=True)
    labels = labels_for(logits.shape[1])
    print(f"infer batch {n}: {dt * 1e3:.2f} ms")
    for i in range(n):
        top = np.argsort(-logits[i])[:5]
        print(f"{names[i]:>14s}: " + ", ".join(f"{labels[k]} {logits[i, k]:.3f}" for k in top))
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
