"""Detection with the project's trained detector: ONNX -> FP16 build -> save -> load -> boxes.

    PYTHONPATH=build/python python3 python/examples/detect.py [--count 4] [--device cuda]

Images come from models/detector/scenes.py (validation seed 2), so every box can be checked
against the generator's ground truth; the output is YOLOv8-style [N, 4 + classes, anchors]
(cx, cy, w, h in pixels, sigmoid class scores), decoded and NMS'ed here in numpy.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np

import ramjet

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "models" / "detector"))
import scenes  # noqa: E402


def iou(a, b):
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter + 1e-9)


def decode(pred, conf=0.25, iou_thr=0.45):
    """pred [4 + nc, A] -> boxes xyxy [K, 4], scores [K], classes [K] (class-aware NMS)."""
    cxcywh, cls = pred[:4].T, pred[4:].T
    c = cls.argmax(1)
    s = cls[np.arange(len(c)), c]
    keep = s > conf
    b = np.concatenate([cxcywh[keep, :2] - cxcywh[keep, 2:] / 2, cxcywh[keep, :2] + cxcywh[keep, 2:] / 2], 1)
    s, c = s[keep], c[keep]
    order = np.argsort(-s)
    b, s, c = b[order], s[order], c[order]
    out = []
    alive = np.ones(len(s), bool)
    for i in range(len(s)):
        if not alive[i]:
            continue
        out.append(i)
        same = (c == c[i]) & alive
        same[: i + 1] = False
        alive[same] = iou(b[i : i + 1], b[same])[0] < iou_thr
    out = np.array(out, int)
    return b[out], s[out], c[out]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "models" / "detector" / "detector.onnx"))
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--device", default="cuda" if ramjet.cuda_available() else "cpu")
    ap.add_argument("--precision", default="fp16")
    ap.add_argument("--plan", default="/tmp/detector.plan")
    a = ap.parse_args()

    graph = ramjet.import_onnx(a.model)
    name = graph.inputs[0].name
    size = 640
    shape = (a.count, 3, size, size)
    t0 = time.perf_counter()
    try:
        plan = ramjet.build(graph, device=a.device, precision=a.precision, profiles={name: ((1, 3, size, size), shape, shape)})
    except ramjet.UnsupportedError as e:
        print(f"{a.precision} unsupported here ({e}); building fp32")
        plan = ramjet.build(graph, device=a.device, profiles={name: ((1, 3, size, size), shape, shape)})
    plan.save(a.plan)
    print(f"{a.device} {a.precision} build {time.perf_counter() - t0:.1f} s -> {a.plan}")

    engine = ramjet.Engine.load(a.plan)
    ctx = engine.create_context()
    imgs, truth = [], []
    for i in range(a.count):
        img, boxes, classes = scenes.generate(2, i, size)
        imgs.append(img)
        truth.append((boxes, classes))
    x = np.ascontiguousarray(np.stack(imgs).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    t0 = time.perf_counter()
    pred = ctx.infer({name: x})[engine.outputs[0].name]
    print(f"infer batch {a.count}: {(time.perf_counter() - t0) * 1e3:.1f} ms, output {pred.shape}")
    found = total = 0
    for i in range(a.count):
        b, s, c = decode(pred[i].astype(np.float32))
        gt_b, gt_c = truth[i]
        hits = 0
        if len(b) and len(gt_b):
            m = iou(gt_b, b)
            hits = int(sum(((m[j] > 0.5) & (c == gt_c[j])).any() for j in range(len(gt_b))))
        found += hits
        total += len(gt_b)
        print(f"image {i}: {len(b)} boxes, {hits}/{len(gt_b)} ground-truth objects matched (IoU > 0.5)")
        for bb, ss, cc in list(zip(b, s, c))[:6]:
            print(f"    {scenes.CLASSES[cc]:8s} {ss:.2f}  [{bb[0]:.0f} {bb[1]:.0f} {bb[2]:.0f} {bb[3]:.0f}]")
    print(f"recall@0.5: {found}/{total}")
    engine.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
