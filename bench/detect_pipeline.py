#!/usr/bin/env python3
"""PyTorch peer of ramjet's detection pipeline (issue #8 speed table), on the same frames.

From decoded 8-bit frames in pinned host memory to final boxes on the host, per batch:
  pre   - upload, HWC->CHW, letterbox (bilinear resize + pad 114), /255, FP16 (tensor ops on the GPU)
  infer - the detector (models/yolo.py YOLOv8 with the committed ONNX weights, BN folded into the
          convolutions, FP16, channels-last) replayed as a CUDA graph
  nms   - best class + confidence filter, torchvision.ops.batched_nms (class-aware, per image),
          top max_det, boxes mapped back to frame coordinates, copied to the host
Times are CUDA events around each part (median over the iterations) plus the wall time of the
whole loop; frames/s = batch / median total.

  python3 bench/detect_pipeline.py --frames DIR [--model models/detector/detector.onnx]
      [--batch 1,32] [--iters 50] [--json out.json]
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "models"))
sys.path.insert(0, os.path.join(ROOT, "models", "detector"))


def load_frames(folder, limit):
    import scenes
    paths = sorted(glob.glob(os.path.join(folder, "*.png")))[:limit]
    if not paths:
        raise SystemExit(f"no PNG frames in {folder}")
    return [scenes.read_png(p) for p in paths]


def build_model(onnx_path, device):
    import torch
    from train import load_onnx_weights
    from yolo import YOLOv8

    model = YOLOv8("n", nc=6, imgsz=640)
    report = load_onnx_weights(model, onnx_path)
    model.eval()
    # Fold BN into the convolutions (what a deployed PyTorch model would do).
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    for m in model.modules():
        if hasattr(m, "conv") and hasattr(m, "bn") and isinstance(m.bn, torch.nn.BatchNorm2d):
            m.conv = fuse_conv_bn_eval(m.conv, m.bn)
            m.bn = torch.nn.Identity()
    model = model.to(device).half().to(memory_format=torch.channels_last)
    return model, report


def letterbox_params(h, w, size=640):
    s = min(size / w, size / h)
    rw, rh = max(1, round(w * s)), max(1, round(h * s))
    return rw / w, rh / h, (size - rw) // 2, (size - rh) // 2, rw, rh


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", required=True, help="folder of PNG frames (same size)")
    ap.add_argument("--model", default=os.path.join(ROOT, "models/detector/detector.onnx"))
    ap.add_argument("--batch", default="1,32")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.45)
    ap.add_argument("--max-det", type=int, default=300)
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    import torch
    import torch.nn.functional as F
    if not torch.cuda.is_available():
        print("SKIP: no CUDA device for the PyTorch pipeline")
        return 0
    try:
        import torchvision
        batched_nms = torchvision.ops.batched_nms
        nms_name = f"torchvision {torchvision.__version__} batched_nms"
    except ImportError:
        batched_nms = None
        nms_name = "torchvision missing: class-offset greedy NMS in torch ops (slower than torchvision)"

    def nms_fallback(boxes, scores, idxs, iou):
        # Greedy NMS on an IoU matrix; classes separated by an offset, as batched_nms does.
        off = idxs.to(boxes.dtype)[:, None] * (boxes.max() + 1)
        b = boxes + off
        order = scores.argsort(descending=True)
        b = b[order]
        x1, y1, x2, y2 = b.unbind(1)
        area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
        iw = (torch.minimum(x2[:, None], x2[None]) - torch.maximum(x1[:, None], x1[None])).clamp(min=0)
        ih = (torch.minimum(y2[:, None], y2[None]) - torch.maximum(y1[:, None], y1[None])).clamp(min=0)
        inter = iw * ih
        m = (inter / (area[:, None] + area[None] - inter + 1e-9)) > iou
        m = m.triu(1).cpu().numpy()
        keep, removed = [], np.zeros(len(order), bool)
        for i in range(len(order)):
            if removed[i]:
                continue
            keep.append(i)
            removed |= m[i]
        return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]

    nms_fn = batched_nms or nms_fallback
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    frames = load_frames(a.frames, 256)
    H, W = frames[0].shape[:2]
    if any(f.shape != frames[0].shape for f in frames):
        raise SystemExit("frames must share one size")
    model, report = build_model(a.model, dev)
    sx, sy, px, py, rw, rh = letterbox_params(H, W)
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}; {len(frames)} frames {W}x{H} -> 640x640 "
          f"(resize {rw}x{rh}, pad {px},{py}); weights: {report}; NMS: {nms_name}")
    results = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0), "frame": [W, H], "nms": nms_name,
               "runs": []}
    for B in [int(b) for b in a.batch.split(",")]:
        host = torch.from_numpy(np.stack([frames[i % len(frames)] for i in range(B)])).pin_memory()
        static_in = torch.full((B, 3, 640, 640), 114 / 255, device=dev, dtype=torch.half).contiguous(
            memory_format=torch.channels_last)

        def pre(h):
            d = h.to(dev, non_blocking=True).permute(0, 3, 1, 2).float()
            if (rh, rw) != (H, W):
                d = F.interpolate(d, size=(rh, rw), mode="bilinear", align_corners=False)
            static_in[:, :, py:py + rh, px:px + rw] = (d / 255).half()

        with torch.no_grad():
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(3):
                    model(static_in)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                static_out = model(static_in)

        def post(out):
            o = out.float()  # [B, 4 + C, A]
            box, cls_s = o[:, :4], o[:, 4:]
            score, cls = cls_s.max(1)  # [B, A]
            keep = score >= a.conf
            bi, ai = keep.nonzero(as_tuple=True)
            cx, cy, w, h = box[bi, 0, ai], box[bi, 1, ai], box[bi, 2, ai], box[bi, 3, ai]
            xyxy = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), 1)
            sc, cl = score[bi, ai], cls[bi, ai]
            k = nms_fn(xyxy, sc, bi * 1000 + cl, a.iou)  # class-aware, per image
            k = k[torch.argsort(bi[k] * 4.0 - sc[k], stable=True)]  # image, then score
            xyxy, sc, cl, bi = xyxy[k], sc[k], cl[k], bi[k]
            xyxy[:, 0::2] = ((xyxy[:, 0::2] - px) / sx).clamp(0, W)
            xyxy[:, 1::2] = ((xyxy[:, 1::2] - py) / sy).clamp(0, H)
            res = torch.cat((xyxy, sc[:, None], cl[:, None].float(), bi[:, None].float()), 1).cpu().numpy()
            per = [res[res[:, 6] == i][: a.max_det] for i in range(B)]
            return per

        ev = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        t_pre, t_inf, t_post, t_tot = [], [], [], []
        nboxes = 0
        with torch.no_grad():
            for it in range(a.iters + 5):
                t0 = time.perf_counter()
                ev[0].record()
                pre(host)
                ev[1].record()
                g.replay()
                ev[2].record()
                per = post(static_out)
                ev[3].record()
                torch.cuda.synchronize()
                wall = (time.perf_counter() - t0) * 1e3
                if it >= 5:
                    t_pre.append(ev[0].elapsed_time(ev[1]))
                    t_inf.append(ev[1].elapsed_time(ev[2]))
                    t_post.append(ev[2].elapsed_time(ev[3]))
                    t_tot.append(wall)
                    nboxes = sum(len(p) for p in per)
        med = lambda v: float(np.median(v))  # noqa: E731
        r = {"batch": B, "pre_ms": med(t_pre), "infer_ms": med(t_inf), "nms_ms": med(t_post), "total_ms": med(t_tot),
             "ms_per_frame": med(t_tot) / B, "fps": 1000.0 * B / med(t_tot), "boxes_per_batch": nboxes}
        results["runs"].append(r)
        print(f"PYTORCH batch {B}: pre {r['pre_ms']:.3f} infer {r['infer_ms']:.3f} nms {r['nms_ms']:.3f} ms; "
              f"total {r['total_ms']:.3f} ms per batch = {r['ms_per_frame']:.3f} ms/frame, {r['fps']:.0f} frames/s "
              f"({nboxes} boxes)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
