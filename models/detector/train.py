#!/usr/bin/env python3
"""Train models/yolo.py's YOLOv8 on scenes from scenes.py, evaluate on a held-apart seed, export
to ONNX.

Data: worker processes generate scenes (seed --train-seed, indices 0, 1, 2, ...) into a cache
that lives on the training device (uint8 images + padded labels). Training starts once
--min-fill images are in; with --refresh (default) the workers keep generating new indices
that overwrite the oldest cache slots, so every step draws from a growing stream. Batches get
a random horizontal flip and, when --img-size is below --scene-size, a random crop at native
scale (objects keep their 8..300 px sizes; the exported model runs at --export-size).

Model: YOLOv8-{n,s} (models/yolo.py) trained on its raw head outputs (the per-level box-DFL
logits and class logits before decode); TAL assignment (task-aligned, top-10, alpha 0.5,
beta 6, IoU; tiny boxes get at least one stride-8 candidate), BCE class loss, CIoU box loss, DFL;
AdamW with linear warmup and cosine decay tied to the time budget, EMA weights, bf16 autocast
on CUDA. Evaluation: COCO-style mAP@0.5 and mAP@0.5:0.95 (101-point) on --val-count images of
--val-seed at --export-size, with the EMA weights. Export: export.py, opset 17, dynamic batch.

  python3 train.py --device cuda --time-budget-s 240 --out OUT
"""

import argparse
import json
import math
import multiprocessing as mp
import os
import queue
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402

MAX_BOXES = scenes.MAX_OBJECTS


# ----------------------------------------------------------------------------- data workers


def _worker(task_q, result_q):
    while True:
        task = task_q.get()
        if task is None:
            return
        seed, indices, size = task
        imgs, labels = [], []
        for i in indices:
            img, boxes, classes = scenes.generate(seed, i, size)
            imgs.append(img)
            labels.append(np.concatenate([classes[:, None].astype(np.float32), boxes], 1))
        result_q.put((seed, list(indices), np.stack(imgs), labels))


class SceneStream:
    """Worker processes that generate (seed, indices) chunks. Validation chunks are queued
    first; a feeder thread then queues training chunks, forever or up to a count."""

    def __init__(self, workers, size, chunk=4):
        ctx = mp.get_context("fork")
        self.size, self.chunk = size, chunk
        self.task_q = ctx.Queue(maxsize=4 * workers)
        self.result_q = ctx.Queue(maxsize=4 * workers)
        self.procs = [ctx.Process(target=_worker, args=(self.task_q, self.result_q), daemon=True)
                      for _ in range(workers)]
        for p in self.procs:
            p.start()
        self.stop = threading.Event()
        self.feeder = None

    def start(self, val_seed, val_count, train_seed, train_limit=None):
        def feed():
            for s in range(0, val_count, self.chunk):
                self.task_q.put((val_seed, range(s, min(s + self.chunk, val_count)), self.size))
            i = 0
            while not self.stop.is_set() and (train_limit is None or i < train_limit):
                n = self.chunk if train_limit is None else min(self.chunk, train_limit - i)
                while not self.stop.is_set():
                    try:
                        self.task_q.put((train_seed, range(i, i + n), self.size), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                i += n

        self.feeder = threading.Thread(target=feed, daemon=True)
        self.feeder.start()

    def get(self, timeout=None):
        return self.result_q.get(timeout=timeout)

    def close(self):
        self.stop.set()
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(timeout=5)
        for q in (self.task_q, self.result_q):
            q.cancel_join_thread()


# ----------------------------------------------------------------------------- model


def build_model(scale, nc, imgsz):
    """models/yolo.py's YOLOv8 whose head returns raw per-level maps [B, 64 + nc, H, W]
    (box DFL logits, class logits) instead of decoded boxes: the form the losses need. Only the
    instance's forward is replaced; parameter names stay those of yolo.YOLOv8."""
    import types

    import torch

    sys.path.insert(0, os.path.dirname(HERE))
    from yolo import YOLOv8

    model = YOLOv8(scale, nc=nc, imgsz=imgsz)

    def raw_forward(self, xs):
        return [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1) for i, x in enumerate(xs)]

    model.detect.forward = types.MethodType(raw_forward, model.detect)
    return model


def _onnx_scope_to_module(node_name):
    """'/detect/cv3.2/cv3.2.0/conv/Conv' -> 'detect.cv3.2.0.conv': the TorchScript exporter names
    each node by its module scopes, where a container's child repeats its parent's name."""
    path = []
    for part in node_name.strip("/").split("/")[:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


# Decode constants that yolo.py rebuilds for the model's own input size (not weights).
_DECODE_BUFFERS = ("detect.anchors", "detect.strides")


def read_onnx_weights(path):
    """(initializers {name: array}, Conv nodes [(name, inputs)]) of an ONNX file."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as e:
        raise ImportError(f"--init-onnx needs the onnx package ({e})") from e
    m = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    convs = [(n.name, list(n.input)) for n in m.graph.node if n.op_type == "Conv"]
    return inits, convs


def load_onnx_weights(model, path, weights=None):
    """Loads an exported detector.onnx into a yolo.YOLOv8 by initializer name. The exporter folds
    each BatchNorm into its convolution (weights 'onnx::Conv_N', named through the Conv node's
    module scope); those load as the conv weight plus a BN that adds the folded bias (gamma 1,
    mean 0, var 1 - eps), so the eval-mode network computes exactly what the ONNX does.
    Every initializer must land in exactly one tensor of matching shape and every Conv2d of
    the model must be loaded, else ValueError. `weights`: read_onnx_weights(path) already done.
    Returns a one-line report."""
    import torch

    inits, convs = weights if weights is not None else read_onnx_weights(path)
    modules = dict(model.named_modules())
    sd = model.state_dict()
    used, loaded_convs, problems = set(), set(), []
    n_fused = 0

    def take(name, shape, what):
        if name not in inits:
            problems.append(f"{what}: initializer '{name}' missing")
            return None
        a = inits[name]
        if tuple(a.shape) != tuple(shape):
            problems.append(f"{what}: '{name}' has shape {list(a.shape)}, the model wants {list(shape)}")
            return None
        if name in used:
            problems.append(f"{what}: '{name}' used twice")
        used.add(name)
        return torch.from_numpy(a.copy())

    with torch.no_grad():
        for node_name, node_inputs in convs:
            path_ = _onnx_scope_to_module(node_name)
            conv = modules.get(path_)
            if not isinstance(conv, torch.nn.Conv2d):
                problems.append(f"Conv node '{node_name}' -> '{path_}' is not a Conv2d of the model")
                continue
            w = take(node_inputs[1], conv.weight.shape, path_ + ".weight")
            if w is not None:
                conv.weight.copy_(w)
            bias_name = node_inputs[2] if len(node_inputs) > 2 and node_inputs[2] else None
            if conv.bias is not None:
                b = take(bias_name or "", conv.bias.shape, path_ + ".bias")
                if b is not None:
                    conv.bias.copy_(b)
            elif bias_name:
                parent = modules.get(path_.rsplit(".", 1)[0]) if "." in path_ else None
                bn = getattr(parent, "bn", None)
                if not isinstance(bn, torch.nn.BatchNorm2d):
                    problems.append(f"'{path_}': ONNX has a bias but the model has neither a conv bias nor a BN")
                    continue
                b = take(bias_name, bn.bias.shape, path_ + " folded BN bias")
                if b is not None:
                    bn.weight.fill_(1.0)
                    bn.bias.copy_(b)
                    bn.running_mean.zero_()
                    bn.running_var.fill_(1.0 - bn.eps)
                    n_fused += 1
            loaded_convs.add(path_)
        for name, a in inits.items():
            if name in used:
                continue
            if name in sd and tuple(sd[name].shape) == tuple(a.shape):
                if name in _DECODE_BUFFERS:
                    if not np.allclose(sd[name].cpu().numpy(), a, atol=1e-4):
                        problems.append(f"decode constant '{name}' differs from the model's")
                else:
                    sd[name].copy_(torch.from_numpy(a.copy()))
                used.add(name)
            elif name in _DECODE_BUFFERS and name in sd:
                used.add(name)  # built for another input size; the model keeps its own
            else:
                problems.append(f"initializer '{name}' {list(a.shape)} matches no tensor of the model")
    missing = [n for n, mod in modules.items() if isinstance(mod, torch.nn.Conv2d) and n not in loaded_convs]
    if missing:
        problems.append(f"{len(missing)} Conv2d of the model not in the ONNX: {missing[:4]}")
    if problems:
        raise ValueError(f"{path}: " + "; ".join(problems[:8]) + (f" (+{len(problems) - 8} more)" if len(problems) > 8 else ""))
    return (f"{len(loaded_convs)} convolutions ({n_fused} with folded BN), {len(inits)} initializers, "
            f"every one matched")


def rebalance_folded_bn(model, batches, amp=False):
    """After load_onnx_weights the BNs are identities plus a bias, so train-mode BN (batch
    statistics) would compute something else than the loaded network. Measure each such BN's
    input mean/var over `batches` (eval mode: the output does not depend on them) and set
    running stats to them with gamma = sqrt(var + eps), beta = bias + mean: eval output is
    unchanged (x + bias) and train mode now starts where eval is."""
    import torch

    bns = [mod for mod in model.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    sums = {id(b): [0.0, 0.0, 0] for b in bns}

    def hook(mod, inp, out):
        x = inp[0].detach().float()
        s = sums[id(mod)]
        s[0] = s[0] + x.sum((0, 2, 3))
        s[1] = s[1] + (x * x).sum((0, 2, 3))
        s[2] += x.numel() // x.shape[1]

    hs = [b.register_forward_hook(hook) for b in bns]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for x in batches:
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
                model(x)
    for h in hs:
        h.remove()
    with torch.no_grad():
        for b in bns:
            s0, s1, n = sums[id(b)]
            if n == 0:
                continue
            mean = s0 / n
            var = (s1 / n - mean * mean).clamp(min=0)
            bias = b.bias - b.weight * b.running_mean / torch.sqrt(b.running_var + b.eps)  # current x -> x + bias
            scale = b.weight / torch.sqrt(b.running_var + b.eps)
            # eval: gamma (x - mean) / sqrt(var + eps) + beta == scale * x + bias
            gamma = scale * torch.sqrt(var + b.eps)
            b.weight.copy_(gamma)
            b.bias.copy_(bias + scale * mean)
            b.running_mean.copy_(mean)
            b.running_var.copy_(var)
    model.train(was_training)


def init_head_biases(model, strides=(8, 16, 32), imgsz=640):
    """Box logits start at 1.0, class logits at log(5 / nc / cells): the usual YOLOv8 prior
    (about 5 objects per image), which keeps the early class loss from being swamped."""
    d = model.detect
    for a, b, s in zip(d.cv2, d.cv3, strides):
        a[-1].bias.data[:] = 1.0
        b[-1].bias.data[: d.nc] = math.log(5 / d.nc / (imgsz / s) ** 2)


def make_anchors(feats, strides, device):
    import torch

    points, stride_t = [], []
    for f, s in zip(feats, strides):
        h, w = f.shape[2], f.shape[3]
        sy, sx = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32) + 0.5,
                                torch.arange(w, device=device, dtype=torch.float32) + 0.5,
                                indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride_t.append(torch.full((h * w, 1), float(s), device=device))
    return torch.cat(points), torch.cat(stride_t)


def bbox_ciou(b1, b2, eps=1e-7):
    """Complete IoU of xyxy boxes (broadcasting), as in the CIoU paper."""
    import torch

    b1x1, b1y1, b1x2, b1y2 = b1.unbind(-1)
    b2x1, b2y1, b2x2, b2y2 = b2.unbind(-1)
    w1, h1 = b1x2 - b1x1, (b1y2 - b1y1).clamp(min=eps)
    w2, h2 = b2x2 - b2x1, (b2y2 - b2y1).clamp(min=eps)
    inter = ((torch.minimum(b1x2, b2x2) - torch.maximum(b1x1, b2x1)).clamp(min=0)
             * (torch.minimum(b1y2, b2y2) - torch.maximum(b1y1, b2y1)).clamp(min=0))
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.maximum(b1x2, b2x2) - torch.minimum(b1x1, b2x1)
    ch = torch.maximum(b1y2, b2y2) - torch.minimum(b1y1, b2y1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = ((b2x1 + b2x2 - b1x1 - b1x2) ** 2 + (b2y1 + b2y2 - b1y1 - b1y2) ** 2) / 4
    v = (4 / math.pi ** 2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


def bbox_iou(b1, b2, eps=1e-7):
    """IoU of xyxy boxes (broadcasting)."""
    import torch

    iw = torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0])
    ih = torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1])
    iw, ih = iw.clamp(min=0), ih.clamp(min=0)
    inter = iw * ih
    a1 = (b1[..., 2] - b1[..., 0]).clamp(min=0) * (b1[..., 3] - b1[..., 1]).clamp(min=0)
    a2 = (b2[..., 2] - b2[..., 0]).clamp(min=0) * (b2[..., 3] - b2[..., 1]).clamp(min=0)
    return inter / (a1 + a2 - inter + eps)


def tal_assign(pd_scores, pd_boxes, anchors, gt_labels, gt_boxes, gt_mask, topk=10, alpha=0.5,
               beta=6.0, min_cand=8.0, eps=1e-9):
    """Task-aligned assignment (TOOD / YOLOv8). pd_scores [B, A, C] probabilities, pd_boxes
    [B, A, 4] xyxy px, anchors [A, 2] px, gt_labels [B, M] long, gt_boxes [B, M, 4] xyxy px,
    gt_mask [B, M] bool. Candidates are anchors whose centre lies in the gt box grown to at
    least min_cand px (so every box of any size has a stride-8 candidate). Returns target
    labels [B, A], boxes [B, A, 4] px, scores [B, A, C] and the foreground mask [B, A]."""
    import torch
    import torch.nn.functional as F

    B, A, C = pd_scores.shape
    M = gt_boxes.shape[1]
    dev = pd_scores.device
    if M == 0:
        return (torch.zeros(B, A, dtype=torch.long, device=dev),
                torch.zeros(B, A, 4, device=dev), torch.zeros(B, A, C, device=dev),
                torch.zeros(B, A, dtype=torch.bool, device=dev))
    cxy = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2
    half = ((gt_boxes[..., 2:] - gt_boxes[..., :2]) / 2).clamp(min=min_cand / 2)
    lt = anchors[None, None] - (cxy - half)[:, :, None]
    rb = (cxy + half)[:, :, None] - anchors[None, None]
    mask_in = torch.cat((lt, rb), -1).amin(-1) > eps  # [B, M, A]
    mask = mask_in & gt_mask[..., None]
    zero = torch.zeros((), device=dev)
    # plain IoU (not CIoU, which is often negative for tiny boxes under the large early
    # predictions): any overlap ranks a candidate, so small objects get positives from step 1
    overlaps = torch.where(mask, bbox_iou(gt_boxes[:, :, None], pd_boxes[:, None]), zero)
    bbox_scores = torch.where(mask, torch.gather(pd_scores.transpose(1, 2), 1,
                                                 gt_labels[..., None].expand(-1, -1, A)), zero)
    align = bbox_scores.pow(alpha) * overlaps.pow(beta)
    k = min(topk, A)
    top_idx = align.topk(k, dim=-1).indices  # [B, M, k]
    mask_top = torch.zeros_like(align).scatter_(-1, top_idx, 1.0)
    mask_pos = mask_top * mask  # [B, M, A]
    fg = mask_pos.sum(1)
    # An anchor claimed by several gts keeps the one it overlaps most. Computed unconditionally:
    # `if (fg > 1).any()` would stall the CPU until the GPU caught up, every step.
    multi = (fg > 1)[:, None].expand(-1, M, -1)
    best = F.one_hot(overlaps.argmax(1), M).permute(0, 2, 1).to(mask_pos.dtype)
    mask_pos = torch.where(multi, best, mask_pos)
    fg = mask_pos.sum(1)
    gt_idx = mask_pos.argmax(1)  # [B, A]
    flat = gt_idx + torch.arange(B, device=dev)[:, None] * M
    t_labels = gt_labels.flatten()[flat]
    t_boxes = gt_boxes.reshape(-1, 4)[flat]
    fg_mask = fg > 0
    t_scores = F.one_hot(t_labels, C).float() * fg_mask[..., None]
    align = align * mask_pos
    pos_align = align.amax(-1, keepdim=True)
    pos_ov = (overlaps * mask_pos).amax(-1, keepdim=True)
    norm = (align * pos_ov / (pos_align + eps)).amax(1)  # [B, A]
    return t_labels, t_boxes, t_scores * norm[..., None], fg_mask


class DetectionLoss:
    """BCE class loss + CIoU box loss + distribution focal loss, normalized by the sum of the
    assigned target scores (YOLOv8's recipe: gains 0.5 / 7.5 / 1.5)."""

    def __init__(self, nc, reg_max=16, strides=(8, 16, 32), gains=(7.5, 0.5, 1.5)):
        self.nc, self.reg_max, self.strides, self.gains = nc, reg_max, strides, gains

    def __call__(self, feats, gt_labels, gt_boxes, gt_mask):
        import torch
        import torch.nn.functional as F

        B, dev = feats[0].shape[0], feats[0].device
        x = torch.cat([f.float().flatten(2) for f in feats], 2)  # [B, no, A]
        pd_dist, pd_logits = x.split((4 * self.reg_max, self.nc), 1)
        pd_dist = pd_dist.transpose(1, 2).contiguous()  # [B, A, 64]
        pd_logits = pd_logits.transpose(1, 2).contiguous()  # [B, A, nc]
        anchors, stride_t = make_anchors(feats, self.strides, dev)
        A = anchors.shape[0]
        proj = torch.arange(self.reg_max, device=dev, dtype=torch.float32)
        ltrb = pd_dist.view(B, A, 4, self.reg_max).softmax(3) @ proj  # grid units
        pd_boxes = torch.cat((anchors - ltrb[..., :2], anchors + ltrb[..., 2:]), -1)
        with torch.no_grad():
            _, t_boxes, t_scores, fg = tal_assign(
                pd_logits.detach().sigmoid(), pd_boxes.detach() * stride_t, anchors * stride_t,
                gt_labels, gt_boxes, gt_mask)
        tss = t_scores.sum().clamp(min=1)
        loss_cls = F.binary_cross_entropy_with_logits(pd_logits, t_scores, reduction="sum") / tss
        # Box and DFL losses over every anchor, kept where fg: the same sums as indexing with
        # [fg], without the data-dependent shapes that make the CPU wait for the GPU each step.
        zero = torch.zeros((), device=dev)
        w = t_scores.sum(-1)  # [B, A]
        tb = t_boxes / stride_t  # grid units
        ciou = bbox_ciou(pd_boxes, tb)
        loss_box = torch.where(fg, (1 - ciou) * w, zero).sum() / tss
        anc = anchors[None].expand(B, -1, -1)
        t_ltrb = torch.cat((anc - tb[..., :2], tb[..., 2:] - anc), -1)
        t_ltrb = t_ltrb.clamp(0, self.reg_max - 1 - 0.01)
        tl = t_ltrb.long()
        wl = (tl + 1).float() - t_ltrb
        logits = pd_dist.view(-1, self.reg_max)
        ce_l = F.cross_entropy(logits, tl.view(-1), reduction="none").view(tl.shape)
        ce_r = F.cross_entropy(logits, (tl + 1).view(-1), reduction="none").view(tl.shape)
        dfl = (ce_l * wl + ce_r * (1 - wl)).mean(-1)  # [B, A]
        loss_dfl = torch.where(fg, dfl * w, zero).sum() / tss
        gb, gc, gd = self.gains
        total = gb * loss_box + gc * loss_cls + gd * loss_dfl
        return total, torch.stack((loss_box, loss_cls, loss_dfl)).detach()


def decode(feats, nc, reg_max=16, strides=(8, 16, 32)):
    """Raw head maps -> [B, A, 4] xyxy px and [B, A, nc] scores (Detect8's decode)."""
    import torch

    B, dev = feats[0].shape[0], feats[0].device
    x = torch.cat([f.float().flatten(2) for f in feats], 2)
    dist, logits = x.split((4 * reg_max, nc), 1)
    anchors, stride_t = make_anchors(feats, strides, dev)
    A = anchors.shape[0]
    proj = torch.arange(reg_max, device=dev, dtype=torch.float32)
    ltrb = dist.transpose(1, 2).reshape(B, A, 4, reg_max).softmax(3) @ proj
    boxes = torch.cat((anchors - ltrb[..., :2], anchors + ltrb[..., 2:]), -1) * stride_t
    return boxes, logits.transpose(1, 2).sigmoid()


def nms(boxes, scores, iou_thr):
    import torch
    try:
        import torchvision
        return torchvision.ops.nms(boxes, scores, iou_thr)
    except (ImportError, RuntimeError):
        pass
    order = scores.argsort(descending=True)
    keep = []
    while order.numel():
        i = order[0]
        keep.append(int(i))
        if order.numel() == 1:
            break
        rest = order[1:]
        xx1 = torch.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = torch.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = torch.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = torch.minimum(boxes[i, 3], boxes[rest, 3])
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
        iou = inter / (area(boxes[i]) + area(boxes[rest]) - inter + 1e-9)
        order = rest[iou <= iou_thr]
    return torch.tensor(keep, dtype=torch.long, device=boxes.device)


def postprocess(boxes, scores, conf=0.001, iou=0.7, max_det=100, pre_nms=3000):
    """Per image: best class per anchor, confidence filter, class-aware NMS."""
    import torch

    out = []
    for b, s in zip(boxes, scores):
        conf_v, cls = s.max(1)
        k = conf_v > conf
        b, conf_v, cls = b[k], conf_v[k], cls[k]
        if conf_v.numel() > pre_nms:
            top = conf_v.topk(pre_nms).indices
            b, conf_v, cls = b[top], conf_v[top], cls[top]
        offset = cls[:, None].float() * 4096.0  # class-aware NMS by offsetting boxes
        keep = nms(b + offset, conf_v, iou)[:max_det]
        out.append((b[keep].cpu().numpy(), conf_v[keep].cpu().numpy(), cls[keep].cpu().numpy()))
    return out


# ----------------------------------------------------------------------------- evaluation


def box_iou_np(a, b):
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    a, b = a.astype(np.float64), b.astype(np.float64)
    ix = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    iy = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    ix, iy = np.clip(ix, 0, None), np.clip(iy, 0, None)
    inter = ix * iy
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def coco_map(dets, gts, nc, max_dets=100):
    """COCO-style bbox AP (area 'all', maxDets per image and class, greedy matching in score
    order to the best-IoU unmatched gt, 101-point interpolated precision), per class and IoU
    threshold 0.50:0.05:0.95. dets: per image (boxes xyxy [n, 4], scores [n], classes [n]);
    gts: per image (boxes [m, 4], classes [m]). Returns dict with map50, map, per_class."""
    thrs = np.linspace(0.5, 0.95, 10)
    rec_pts = np.linspace(0, 1, 101)
    ap = np.full((len(thrs), nc), -1.0)
    for c in range(nc):
        all_scores, all_tp, n_gt = [], [], 0
        for (db, ds, dc), (gb, gc) in zip(dets, gts):
            g = gb[gc == c]
            n_gt += len(g)
            m = dc == c
            d, s = db[m], ds[m]
            if len(d) == 0:
                continue
            order = np.argsort(-s, kind="mergesort")[:max_dets]
            d, s = d[order], s[order]
            tp = np.zeros((len(thrs), len(d)))
            if len(g):
                ious = box_iou_np(d, g)
                cand = np.flatnonzero(ious.max(1) >= thrs[0])
                for t, thr in enumerate(thrs):
                    matched = np.zeros(len(g), bool)
                    for i in cand:
                        row = np.where(matched | (ious[i] < min(thr, 1 - 1e-10)), -1.0, ious[i])
                        j = int(row.argmax())
                        if row[j] >= 0:
                            matched[j] = True
                            tp[t, i] = 1
            all_scores.append(s)
            all_tp.append(tp)
        if n_gt == 0:
            continue
        if not all_scores:
            ap[:, c] = 0.0
            continue
        s = np.concatenate(all_scores)
        tp = np.concatenate(all_tp, 1)
        order = np.argsort(-s, kind="mergesort")
        tp = tp[:, order]
        for t in range(len(thrs)):
            tpc = np.cumsum(tp[t])
            fpc = np.cumsum(1 - tp[t])
            rc = tpc / n_gt
            pr = tpc / np.maximum(tpc + fpc, np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]
            inds = np.searchsorted(rc, rec_pts, side="left")
            q = np.zeros(len(rec_pts))
            ok = inds < len(pr)
            q[ok] = pr[inds[ok]]
            ap[t, c] = q.mean()
    valid = ap[0] >= 0
    per_class = {scenes.CLASSES[c]: {"ap50": float(ap[0, c]), "ap": float(ap[:, c].mean())}
                 for c in range(nc) if valid[c]}
    return {"map50": float(ap[0, valid].mean()) if valid.any() else 0.0,
            "map": float(ap[:, valid].mean()) if valid.any() else 0.0, "per_class": per_class}


def pycocotools_map(dets, gts, h, w):
    """The same numbers through pycocotools, when it is installed (else None)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    import contextlib
    import io

    gt = scenes.coco_dict([(str(i), b, c) for i, (b, c) in enumerate(gts)], h, w)
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    res = [{"image_id": i, "category_id": int(c), "score": float(s),
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]}
           for i, (bb, ss, cc) in enumerate(dets) for b, s, c in zip(bb, ss, cc)]
    if not res:
        return {"map50": 0.0, "map": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        cd = coco.loadRes(res)
        e = COCOeval(coco, cd, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    return {"map50": float(e.stats[1]), "map": float(e.stats[0])}


def evaluate(model, val_imgs, val_labels, nc, device, batch=16, amp=False):
    """mAP of model (raw-head form) on uint8 images [N, H, W, 3] with labels [(n, 5)]."""
    import torch

    model.eval()
    dets = []
    t0 = time.time()
    with torch.no_grad():
        for s in range(0, len(val_imgs), batch):
            x = torch.from_numpy(val_imgs[s:s + batch]).to(device)
            x = x.permute(0, 3, 1, 2).float().div_(255)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                feats = model(x)
            boxes, scores = decode(feats, nc)
            dets += postprocess(boxes, scores)
    dt = time.time() - t0
    gts = [(lab[:, 1:5], lab[:, 0].astype(np.int64)) for lab in val_labels]
    res = coco_map(dets, gts, nc)
    h, w = val_imgs.shape[1:3]
    pc = pycocotools_map(dets, gts, h, w)
    if pc is not None:
        res["pycocotools"] = pc
    res["eval_s"] = dt
    res["images"] = len(val_imgs)
    return res, dets


# ----------------------------------------------------------------------------- training


class EMA:
    """Exponential moving average of parameters and buffers; decay ramps up as
    d * (1 - exp(-updates / tau)) so early, fast-changing weights are not frozen in."""

    def __init__(self, model, ema_model, decay=0.997, tau=200):
        self.model, self.ema = model, ema_model
        self.decay, self.tau, self.updates = decay, tau, 0
        self.ema.load_state_dict(model.state_dict())
        for p in self.ema.parameters():
            p.requires_grad_(False)
        self.pairs = [(e, m) for e, m in zip(self.ema.state_dict().values(),
                                             self.model.state_dict().values())
                      if e.dtype.is_floating_point]

    def update(self):
        import torch
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        with torch.no_grad():
            e = [p[0] for p in self.pairs]
            m = [p[1] for p in self.pairs]
            torch._foreach_mul_(e, d)
            torch._foreach_add_(e, m, alpha=1 - d)


def recalibrate_bn(model, batches, amp):
    """Precise BN: replace the running mean/var of every BatchNorm by the plain average over
    the given batches (train-mode forward, no gradients). Running stats start at mean 0 / var
    1 and, with YOLO's momentum of 0.03, keep a visible part of that start for a few hundred
    steps and lag the weights after that; this fixes both."""
    import torch

    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for x in batches:
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16, enabled=amp):
                model(x)
    for m, mo in zip(bns, saved):
        m.momentum = mo
    model.eval()


def make_optimizer(model, lr, wd, fused=False):
    import torch
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim > 1 else no_decay).append(p)
    # fused (CUDA): one kernel for the whole update, and it takes the scaler's on-device
    # found-inf flag, so a non-finite step is skipped without a host round trip.
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, betas=(0.937, 0.999), fused=True)
        except (TypeError, RuntimeError):
            pass
    return torch.optim.AdamW(groups, lr=lr, betas=(0.937, 0.999))


class GpuCache:
    """Scene images [N, S, S, 3] uint8 and labels [N, MAX_BOXES, 5] (cls, x1, y1, x2, y2; -1
    class = padding) on the training device; slot = index % N."""

    def __init__(self, n, size, device):
        import torch
        self.n, self.size, self.device = n, size, device
        self.imgs = torch.zeros((n, size, size, 3), dtype=torch.uint8, device=device)
        self.labels = torch.full((n, MAX_BOXES, 5), -1.0, device=device)
        self.filled = torch.zeros(n, dtype=torch.bool)
        self.count = 0  # images written so far

    def put(self, indices, imgs, labels):
        import torch
        slots = torch.tensor([i % self.n for i in indices], dtype=torch.long)
        lab = np.full((len(indices), MAX_BOXES, 5), -1.0, np.float32)
        for k, l in enumerate(labels):
            lab[k, :len(l)] = l[:MAX_BOXES]
        # Pinned + non_blocking: a pageable .to(cuda) synchronizes the stream, so every cache
        # write used to stall the training loop until the GPU had drained its queue.
        pin = self.device.type == "cuda"
        slots_d = (slots.pin_memory() if pin else slots).to(self.device, non_blocking=pin)
        imgs_t = torch.from_numpy(imgs)
        lab_t = torch.from_numpy(lab)
        if pin:
            imgs_t, lab_t = imgs_t.pin_memory(), lab_t.pin_memory()
        self.imgs[slots_d] = imgs_t.to(self.device, non_blocking=pin)
        self.labels[slots_d] = lab_t.to(self.device, non_blocking=pin)
        self.filled[slots] = True
        self.count += len(indices)

    def filled_slots(self):
        import torch
        return torch.nonzero(self.filled).flatten()


def make_batch(cache, slots, img_size, gen, flip_p=0.5):
    """Batch of images [B, 3, s, s] float and padded labels from cache slots: random
    horizontal flip, random native-scale crop to img_size; boxes clipped to the crop and kept
    if >= 30% of their area and >= 2 px on each side remain.

    Free of host synchronization (the randoms go to the device in one pinned, non-blocking
    copy; flip + crop are one gather; labels keep their fixed MAX_BOXES padding instead of
    being cut to the batch's longest list), so the CPU keeps queueing work ahead of the GPU.
    Draws the same random numbers in the same order as before, so batches are unchanged."""
    import torch

    dev = cache.device
    B, S = len(slots), cache.size
    flip = torch.rand(B, generator=gen) < flip_p
    if img_size < S:
        ox = torch.randint(0, S - img_size + 1, (B,), generator=gen)
        oy = torch.randint(0, S - img_size + 1, (B,), generator=gen)
    else:
        ox = oy = torch.zeros(B, dtype=torch.long)
    meta = torch.stack((slots.long(), flip.long(), ox, oy), 1)
    if dev.type == "cuda":
        meta = meta.pin_memory().to(dev, non_blocking=True)
    idx, f, ox_d, oy_d = meta.unbind(1)
    f = f.bool()
    lab = cache.labels[idx].clone()  # [B, M, 5]
    valid = lab[..., 0] >= 0
    # flip (of the whole scene) then crop, as one gather
    r = torch.arange(img_size, device=dev)
    rows = oy_d[:, None] + r
    cols = ox_d[:, None] + r
    cols = torch.where(f[:, None], S - 1 - cols, cols)
    imgs = cache.imgs[idx[:, None, None], rows[:, :, None], cols[:, None, :]]  # [B, s, s, 3]
    x1 = lab[..., 1].clone()
    lab[..., 1] = torch.where(f[:, None], S - lab[..., 3], lab[..., 1])
    lab[..., 3] = torch.where(f[:, None], S - x1, lab[..., 3])
    if img_size < S:
        off = torch.stack((ox_d, oy_d, ox_d, oy_d), 1).float()[:, None]
        area0 = (lab[..., 3] - lab[..., 1]) * (lab[..., 4] - lab[..., 2])
        bx = (lab[..., 1:5] - off).clamp(0, img_size)
        w, h = bx[..., 2] - bx[..., 0], bx[..., 3] - bx[..., 1]
        keep = valid & (w >= 2) & (h >= 2) & (w * h >= 0.3 * area0)
        lab[..., 1:5] = bx
        valid = keep
    x = imgs.permute(0, 3, 1, 2).float().div_(255)
    if dev.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    # compact the valid boxes to the front of each row (padding rows are masked everywhere)
    order = torch.sort((~valid).to(torch.int32), dim=1, stable=True).indices
    lab = torch.gather(lab, 1, order[..., None].expand(-1, -1, 5))
    valid = torch.gather(valid, 1, order)
    gt_labels = lab[..., 0].clamp(min=0).long()
    return x, gt_labels, lab[..., 1:5], valid


def collect_val(stream, cache, val_seed, val_count):
    """Pull results until the validation set is complete; training results go to the cache."""
    val = {}
    while len(val) < val_count:
        seed, idx, imgs, labels = stream.get(timeout=600)
        if seed == val_seed and len(val) < val_count and idx[0] < val_count:
            for k, i in enumerate(idx):
                val[i] = (imgs[k], labels[k])
        else:
            cache.put(idx, imgs, labels)
    keys = sorted(val)
    return np.stack([val[k][0] for k in keys]), [val[k][1] for k in keys]


def export_and_check(a, sd, nc, meta, val_imgs, summary, log):
    import torch

    from export import build_export_model, export_onnx
    onnx_path = os.path.join(a.out, "detector.onnx")
    em = build_export_model(sd, a.scale, nc, a.export_size, dynamic_hw=True)
    export_onnx(em, onnx_path, a.export_size, 17, meta, log=log, dynamic_hw=True)
    # a reference input/output pair for checking the ONNX file with any runtime
    x = torch.from_numpy(val_imgs[:1]).permute(0, 3, 1, 2).float().div(255).contiguous()
    with torch.no_grad():
        y = em(x).numpy()
    np.save(os.path.join(a.out, "check_input.npy"), x.numpy())
    np.save(os.path.join(a.out, "check_output.npy"), y)
    summary["onnx"] = onnx_path
    try:
        from export import check_onnx
        err, ok, _ = check_onnx(onnx_path, x.numpy(), y)
        summary["onnxruntime_max_abs_diff"] = err
        log(f"onnxruntime check: max |diff| {err:.3g} -> {'OK' if ok else 'MISMATCH'}")
    except ImportError:
        log("onnxruntime not importable here; check with: python3 models/detector/export.py "
            f"--check {onnx_path} --input {a.out}/check_input.npy "
            f"--expect {a.out}/check_output.npy")
    log(f"exported {onnx_path} ({os.path.getsize(onnx_path) / 1e6:.1f} MB, input "
        f"[N, 3, {a.export_size}, {a.export_size}], output {list(y.shape)})")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    ap.add_argument("--out", required=True, help="output folder (checkpoint, ONNX, metrics)")
    ap.add_argument("--scale", default="n", choices=("n", "s"))
    ap.add_argument("--time-budget-s", type=float, default=0,
                    help="wall-clock budget for the whole run incl. data, eval and export; "
                         "training stops early enough to finish within it (0 = none)")
    ap.add_argument("--reserve-s", type=float, default=None,
                    help="seconds of the budget kept for final eval + export "
                         "(default: 30 on cuda, estimated on cpu)")
    ap.add_argument("--epochs", type=int, default=1000, help="upper bound; the budget ends first")
    ap.add_argument("--imgs-per-epoch", type=int, default=4096)
    ap.add_argument("--img-size", type=int, default=512, help="training crop size")
    ap.add_argument("--scene-size", type=int, default=640, help="generated scene size")
    ap.add_argument("--export-size", type=int, default=640, help="eval and ONNX input size")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--lrf", type=float, default=0.02, help="final lr fraction (cosine)")
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--warmup-steps", type=int, default=300)
    ap.add_argument("--ema-decay", type=float, default=0.997,
                    help="EMA decay (horizon ~1/(1-d) steps: ~330, a few %% of a 4-minute run)")
    ap.add_argument("--ema-tau", type=float, default=200, help="EMA warm-up ramp (steps)")
    ap.add_argument("--cache", type=int, default=8192, help="scenes held on the device")
    ap.add_argument("--min-fill", type=int, default=2048, help="scenes in cache before step 1")
    ap.add_argument("--no-refresh", action="store_true",
                    help="fixed training set: indices 0..cache-1 only")
    ap.add_argument("--workers", type=int, default=0,
                    help="generator processes (0 = cpus-4: the training loop needs a free core "
                         "to queue its kernels)")
    ap.add_argument("--init-onnx", default="",
                    help="start from this exported detector (e.g. models/detector/detector.onnx): "
                         "its weights are loaded by initializer name, every tensor checked")
    ap.add_argument("--train-seed", type=int, default=1)
    ap.add_argument("--val-seed", type=int, default=2)
    ap.add_argument("--val-count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0, help="torch seed")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--bn-batches", type=int, default=32,
                    help="training batches for precise-BN statistics before the final eval "
                         "(0 = keep the EMA running stats)")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--no-export", action="store_true")
    a = ap.parse_args(argv)
    for name in ("img_size", "scene_size", "export_size"):
        if getattr(a, name) % 32:
            ap.error(f"--{name.replace('_', '-')} must be a multiple of 32")
    if a.img_size > a.scene_size:
        ap.error("--img-size must be <= --scene-size")
    if a.train_seed == a.val_seed:
        ap.error("--train-seed and --val-seed must differ (the validation set is held apart)")
    if a.min_fill > a.cache:
        a.min_fill = a.cache

    t_start = time.time()
    os.makedirs(a.out, exist_ok=True)
    log_f = open(os.path.join(a.out, "train_log.txt"), "w")

    def log(msg):
        line = f"[{time.time() - t_start:7.1f}s] {msg}"
        print(line, flush=True)
        log_f.write(line + "\n")
        log_f.flush()

    # Fork the generator workers before CUDA is initialized in this process.
    workers = a.workers or max(1, (os.cpu_count() or 2) - 4)
    stream = SceneStream(workers, a.scene_size)
    stream.start(a.val_seed, a.val_count, a.train_seed,
                 train_limit=a.cache if a.no_refresh else None)

    import torch

    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    if a.device == "cuda" and not torch.cuda.is_available():
        log("error: --device cuda but torch.cuda.is_available() is False")
        stream.close()
        return 2
    device = torch.device(a.device)
    amp = device.type == "cuda"
    if amp:
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")  # TF32 for the fp32 evaluation passes
    nc = scenes.NUM_CLASSES
    log(f"torch {torch.__version__} on {device}"
        + (f" ({torch.cuda.get_device_name(0)})" if amp else "")
        + f"; {workers} generator workers; args {vars(a)}")

    model = build_model(a.scale, nc, a.img_size)
    if a.init_onnx:
        if a.scale != "n" or nc != 6:
            log("warning: --init-onnx expects the committed YOLOv8-n with 6 classes")
        try:
            log(f"init from {a.init_onnx}: {load_onnx_weights(model, a.init_onnx)}")
        except Exception as e:
            log(f"error: --init-onnx {a.init_onnx}: {e}")
            stream.close()
            return 2
    else:
        init_head_biases(model, imgsz=a.img_size)
    model.to(device)
    ema_model = build_model(a.scale, nc, a.img_size).to(device)
    if amp:
        model.to(memory_format=torch.channels_last)
        ema_model.to(memory_format=torch.channels_last)
    ema = EMA(model, ema_model, a.ema_decay, a.ema_tau)
    fwd = torch.compile(model) if a.compile else model
    opt = make_optimizer(model, a.lr, a.wd, fused=amp)
    # On CUDA a GradScaler (scale 1, never grown: bf16 needs no loss scaling) supplies the
    # on-device found-inf flag the fused optimizer skips non-finite steps with.
    scaler = torch.amp.GradScaler("cuda", init_scale=1.0, growth_interval=10 ** 9) if amp else None
    loss_fn = DetectionLoss(nc)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"YOLOv8-{a.scale}: {n_params / 1e6:.2f} M parameters")

    cache = GpuCache(a.cache, a.scene_size, device)
    t0 = time.time()
    val_imgs, val_labels = collect_val(stream, cache, a.val_seed, a.val_count)
    n_val_boxes = sum(len(l) for l in val_labels)
    log(f"validation set: seed {a.val_seed}, {len(val_imgs)} images, {n_val_boxes} boxes "
        f"({time.time() - t0:.1f} s)")
    while int(cache.filled.sum()) < a.min_fill:
        seed, idx, imgs, labels = stream.get(timeout=600)
        cache.put(idx, imgs, labels)
    gen_rate = cache.count / max(time.time() - t0, 1e-9)
    if a.init_onnx:
        gen0 = torch.Generator().manual_seed(a.seed + 1)
        fs = cache.filled_slots()
        rebalance_folded_bn(model, [make_batch(cache, fs[torch.randint(0, len(fs), (a.batch,), generator=gen0)],
                                               a.img_size, gen0)[0] for _ in range(8)], amp)
        ema.ema.load_state_dict(model.state_dict())
        res0, _ = evaluate(model, val_imgs, val_labels, nc, device, amp=False)
        log(f"val of the loaded weights (seed {a.val_seed}, {len(val_imgs)} images @ {a.export_size}): "
            f"mAP@0.5 {res0['map50']:.4f}  mAP@0.5:0.95 {res0['map']:.4f}")
        model.train()
    log(f"cache: {int(cache.filled.sum())} scenes ready; generation "
        f"~{(cache.count + len(val_imgs)) / max(time.time() - t0, 1e-9):.0f} images/s")

    # Budget: stop training so that eval + export fit in what is left.
    if a.reserve_s is None:
        a.reserve_s = 45.0 if amp else 20.0 + 0.8 * a.val_count * (a.export_size / 640) ** 2
    train_deadline = (t_start + a.time_budget_s - a.reserve_s) if a.time_budget_s else None
    total_steps = a.epochs * max(1, a.imgs_per_epoch // a.batch)
    train_t0 = time.time()
    gen = torch.Generator().manual_seed(a.seed)
    history, step, seen = [], 0, 0
    loss_acc, loss_n, t_log, seen_log = torch.zeros(3, device=device), 0, time.time(), 0
    bad_acc = torch.zeros((), device=device)  # non-finite steps, read only when logging
    # Freshly generated scenes go into the cache from a thread: unpickling the 5 MB chunks and
    # copying them to the device used to take a fifth of the training loop's own time.
    cache_lock, feeder_stop = threading.Lock(), threading.Event()

    def feed_cache():
        while not feeder_stop.is_set():
            try:
                _, idx, imgs, labels = stream.result_q.get(timeout=0.2)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                return
            with cache_lock:
                cache.put(idx, imgs, labels)

    feeder = threading.Thread(target=feed_cache, daemon=True)
    feeder.start()
    model.train()
    stop_reason = "epochs"
    bad_steps = 0
    try:
        while step < total_steps:
            now = time.time()
            if train_deadline is not None and now >= train_deadline:
                stop_reason = "time budget"
                break
            # lr: warmup, then cosine over max(step progress, time progress)
            p = step / total_steps
            if train_deadline is not None:
                p = max(p, (now - train_t0) / max(train_deadline - train_t0, 1e-9))
            lr = a.lr * (a.lrf + (1 - a.lrf) * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))
            if step < a.warmup_steps:
                lr *= (step + 1) / a.warmup_steps
            for g in opt.param_groups:
                g["lr"] = lr
            with cache_lock:  # the feeder thread writes slots; batches see whole scenes
                filled = cache.filled_slots()
                slots = filled[torch.randint(0, len(filled), (a.batch,), generator=gen)]
                x, gl, gb, gm = make_batch(cache, slots, a.img_size, gen)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
                feats = fwd(x)
            loss, parts = loss_fn(feats, gl, gb, gm)
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                if not bool(torch.isfinite(loss)):  # skip the step rather than poison the weights
                    bad_steps += 1
                    log(f"step {step}: non-finite loss {parts.tolist()}, skipped ({bad_steps} so far)")
                    if bad_steps >= 50:
                        stop_reason = "non-finite losses"
                        break
                    continue
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                opt.step()
            else:
                # The same skip without a host sync: the scaler's found-inf flag (non-finite
                # gradients, which a non-finite loss produces) makes the fused step a no-op.
                bad_acc += (~torch.isfinite(loss)).float()
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
                scaler.step(opt)
                scaler.update()
            ema.update()
            step += 1
            seen += a.batch
            loss_acc += parts
            loss_n += 1
            if step % a.log_every == 0 or step == 1:
                if scaler is not None:
                    bad_steps = int(bad_acc)
                    if bad_steps:
                        log(f"step {step}: {bad_steps} non-finite steps skipped so far")
                    if bad_steps >= 50:
                        stop_reason = "non-finite losses"
                        break
                lb, lc, ld = (loss_acc / loss_n).tolist()
                dt = time.time() - t_log
                rate = (seen - seen_log) / max(dt, 1e-9)
                history.append({"step": step, "epoch": seen / a.imgs_per_epoch, "images": seen,
                                "box": lb, "cls": lc, "dfl": ld, "lr": lr, "imgs_per_s": rate,
                                "t": time.time() - t_start})
                log(f"step {step:5d} ep {seen / a.imgs_per_epoch:6.2f} loss box {lb:.4f} "
                    f"cls {lc:.4f} dfl {ld:.4f} lr {lr:.2e} {rate:6.1f} img/s "
                    f"scenes {cache.count}")
                loss_acc.zero_()
                loss_n, t_log, seen_log = 0, time.time(), seen
    except Exception as e:  # keep what was learned: evaluate and export the EMA weights
        import traceback
        stop_reason = f"error: {e!r}"
        log(f"training failed at step {step}:\n{traceback.format_exc()}")
    train_s = time.time() - train_t0
    feeder_stop.set()
    feeder.join(timeout=5)
    stream.close()
    log(f"training stopped ({stop_reason}) after {step} steps, {seen} images, {train_s:.1f} s "
        f"({seen / max(train_s, 1e-9):.1f} img/s); {cache.count} training scenes generated")

    ck_path = os.path.join(a.out, "detector.pt")

    def save_ckpt(meta):
        sd = {k: v.detach().float().cpu() for k, v in ema_model.state_dict().items()}
        torch.save({"model": sd, "scale": a.scale, "nc": nc, "meta": meta, "args": vars(a)},
                   ck_path)
        return sd

    meta = {"names": {i: n for i, n in enumerate(scenes.CLASSES)}, "stride": 32,
            "task": "detect", "format": "yolov8", "train_seed": a.train_seed,
            "val_seed": a.val_seed, "val_count": a.val_count,
            "generator_version": scenes.GENERATOR_VERSION}
    save_ckpt(meta)  # before evaluation, in case that fails

    # Evaluate the EMA weights at the export size, as they are and with precise BN statistics;
    # keep the better for export.
    def report(tag, res):
        log(f"val {tag} (seed {a.val_seed}, {len(val_imgs)} images @ {a.export_size}): "
            f"mAP@0.5 {res['map50']:.4f}  mAP@0.5:0.95 {res['map']:.4f}  ({res['eval_s']:.1f} s)"
            + (f"  pycocotools {res['pycocotools']}" if "pycocotools" in res else ""))

    def final_eval():
        res, _ = evaluate(ema_model, val_imgs, val_labels, nc, device, amp=False)
        report("EMA", res)
        bn_choice = "ema running stats"
        if a.bn_batches > 0:
            t_bn = time.time()
            recalibrate_bn(ema_model, (make_batch(cache, cache.filled_slots()[torch.randint(
                0, len(cache.filled_slots()), (a.batch,), generator=gen)], a.img_size, gen)[0]
                for _ in range(a.bn_batches)), amp)
            res_bn, _ = evaluate(ema_model, val_imgs, val_labels, nc, device, amp=False)
            report(f"EMA + precise BN ({a.bn_batches} batches, {time.time() - t_bn:.1f} s)",
                   res_bn)
            res_ema = {"map50": res["map50"], "map": res["map"]}
            if res_bn["map50"] + res_bn["map"] >= res["map50"] + res["map"]:
                res, bn_choice = res_bn, "precise BN"
            else:
                ema_model.load_state_dict(sd_before)
            res["ema_running_stats"] = res_ema
        return res, bn_choice

    import copy
    sd_before = copy.deepcopy(ema_model.state_dict())
    try:
        res, bn_choice = final_eval()
    except Exception as e:  # still save and export what was trained
        import traceback
        log(f"evaluation failed:\n{traceback.format_exc()}")
        ema_model.load_state_dict(sd_before)
        res, bn_choice = {"map50": -1.0, "map": -1.0, "per_class": {}, "error": repr(e)}, "n/a"
    log(f"exporting the EMA weights with {bn_choice}")
    res["bn"] = bn_choice
    for name, v in res["per_class"].items():
        log(f"  {name:8s} AP50 {v['ap50']:.4f}  AP {v['ap']:.4f}")

    meta.update(map50=round(res["map50"], 4), map=round(res["map"], 4), bn=bn_choice)
    sd = save_ckpt(meta)
    summary = {"args": vars(a), "steps": step, "images_seen": seen, "train_s": train_s,
               "train_imgs_per_s": seen / max(train_s, 1e-9), "scenes_generated": cache.count,
               "generation_imgs_per_s_startup": gen_rate, "stop_reason": stop_reason,
               "val": res, "history": history, "torch": torch.__version__,
               "device": torch.cuda.get_device_name(0) if amp else "cpu"}
    if not a.no_export:
        try:
            export_and_check(a, sd, nc, meta, val_imgs, summary, log)
        except Exception as e:  # keep the checkpoint and metrics; export can be redone
            summary["export_error"] = repr(e)
            log(f"export failed: {e!r}; redo it from the checkpoint with: python3 "
                f"models/detector/export.py --ckpt {ck_path} --out {a.out}/detector.onnx")
    summary["total_s"] = time.time() - t_start
    with open(os.path.join(a.out, "metrics.json"), "w") as f:
        json.dump(summary, f, indent=1)
    log(f"done in {summary['total_s']:.1f} s; wrote {a.out}/metrics.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
