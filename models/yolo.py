"""YOLO-style detectors written for the ramjet model zoo.

Both networks follow the public architecture descriptions of the Ultralytics YOLOv8 and YOLOv5
(v6.0+) model YAMLs; no code or weights are taken from those projects. They exist so that the
zoo has detectors with the exact op mix that real exported YOLO models have (Conv+BN+SiLU,
Split/Concat-heavy CSP blocks, MaxPool SPPF, nearest Resize, Reshape/Transpose/Softmax heads),
not to detect anything: weights are random at a fixed seed.

  YOLOv8n/s-style: C2f backbone, SPPF, FPN/PAN neck of C2f blocks, decoupled anchor-free head
                   with DFL (reg_max 16). Output [N, 4 + classes, 8400] at 640x640:
                   (cx, cy, w, h) in pixels, then per-class sigmoid scores.
  YOLOv5s-style:   CSP C3 backbone, SPPF, PAN neck of C3 blocks, anchor-based head with
                   objectness, 3 anchors per cell. Output [N, 25200, 5 + classes] at 640x640:
                   (cx, cy, w, h) in pixels, objectness, per-class scores (all after sigmoid).

The decode grids and anchors depend only on the image size, which is fixed at construction
(`imgsz`), so they are buffers and become ONNX initializers; only the batch axis is dynamic.
"""

import math

import torch
import torch.nn as nn


def make_divisible(x, divisor=8):
    return int(math.ceil(x / divisor) * divisor)


class Conv(nn.Module):
    """Conv2d (no bias) + BatchNorm2d + SiLU, 'same' padding for odd kernels."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2 if p is None else p, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 stride-1 max pools, concatenated."""

    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


# ----------------------------------------------------------------------------- YOLOv8-style


class Bottleneck8(nn.Module):
    def __init__(self, c1, c2, shortcut=True, e=1.0):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 3)
        self.cv2 = Conv(c_, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP bottleneck with two convolutions: split in two, chain n bottlenecks on one half,
    concatenate every intermediate."""

    def __init__(self, c1, c2, n=1, shortcut=False, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck8(self.c, self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class DFL(nn.Module):
    """Distribution focal loss integral: softmax over reg_max bins, expectation by a fixed
    1x1 convolution with weights 0..reg_max-1."""

    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.c1 = c1

    def forward(self, x):
        b, _, a = x.shape
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


class Detect8(nn.Module):
    """Decoupled anchor-free head: per level a box branch (4*reg_max DFL logits) and a class
    branch; decoded to (cx, cy, w, h) pixels + sigmoid class scores."""

    def __init__(self, nc, ch, strides, imgsz):
        super().__init__()
        self.nc, self.reg_max = nc, 16
        self.no = nc + 4 * self.reg_max
        c2 = max(16, ch[0] // 4, 4 * self.reg_max)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1))
            for x in ch)
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = DFL(self.reg_max)
        # dynamic_hw: the anchor grid is computed from each feature map's size in forward(), so an
        # ONNX export with symbolic H/W runs at any multiple of 32 (the grid folds to constants
        # once a build fixes the size). Off for training, which uses the buffers below.
        self.dynamic_hw = False
        self.stride_values = tuple(float(s) for s in strides)
        anchors, stride_t = [], []
        for s in strides:
            h, w = imgsz // s, imgsz // s
            sy, sx = torch.meshgrid(torch.arange(h, dtype=torch.float) + 0.5,
                                    torch.arange(w, dtype=torch.float) + 0.5, indexing="ij")
            anchors.append(torch.stack((sx, sy), -1).view(-1, 2))
            stride_t.append(torch.full((h * w, 1), float(s)))
        self.register_buffer("anchors", torch.cat(anchors).transpose(0, 1).unsqueeze(0))  # [1,2,A]
        self.register_buffer("strides", torch.cat(stride_t).transpose(0, 1).unsqueeze(0))  # [1,1,A]

    def forward(self, xs):
        b = xs[0].shape[0]
        feats = [torch.cat((self.cv2[i](x), self.cv3[i](x)), 1).view(b, self.no, -1)
                 for i, x in enumerate(xs)]
        x = torch.cat(feats, 2)
        box, cls = x.split((4 * self.reg_max, self.nc), 1)
        lt, rb = self.dfl(box).chunk(2, 1)
        anchors, strides = self._grid(xs) if self.dynamic_hw else (self.anchors, self.strides)
        x1y1 = anchors - lt
        x2y2 = anchors + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)

    def _grid(self, xs):
        """Anchor centres [1, 2, A] and strides [1, 1, A] for the feature maps' actual sizes
        (the same values as the buffers at the construction size)."""
        anchors, strides = [], []
        for x, s in zip(xs, self.stride_values):
            h, w = x.shape[2], x.shape[3]
            sy = torch.arange(h, dtype=torch.float32, device=x.device) + 0.5
            sx = torch.arange(w, dtype=torch.float32, device=x.device) + 0.5
            gy = sy.view(-1, 1).expand(h, w).reshape(1, -1)
            gx = sx.view(1, -1).expand(h, w).reshape(1, -1)
            anchors.append(torch.cat((gx, gy), 0))
            strides.append(torch.ones_like(gx) * s)
        return torch.cat(anchors, 1).unsqueeze(0), torch.cat(strides, 1).unsqueeze(0)


class YOLOv8(nn.Module):
    SCALES = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768)}

    def __init__(self, scale="n", nc=80, imgsz=640):
        super().__init__()
        depth, width, max_ch = self.SCALES[scale]
        ch = lambda c: make_divisible(min(c, max_ch) * width, 8)  # noqa: E731
        n = lambda k: max(round(k * depth), 1)  # noqa: E731
        c64, c128, c256, c512, c1024 = ch(64), ch(128), ch(256), ch(512), ch(1024)
        # Backbone
        self.b0 = Conv(3, c64, 3, 2)  # P1/2
        self.b1 = Conv(c64, c128, 3, 2)  # P2/4
        self.b2 = C2f(c128, c128, n(3), True)
        self.b3 = Conv(c128, c256, 3, 2)  # P3/8
        self.b4 = C2f(c256, c256, n(6), True)
        self.b5 = Conv(c256, c512, 3, 2)  # P4/16
        self.b6 = C2f(c512, c512, n(6), True)
        self.b7 = Conv(c512, c1024, 3, 2)  # P5/32
        self.b8 = C2f(c1024, c1024, n(3), True)
        self.b9 = SPPF(c1024, c1024, 5)
        # Neck: top-down (FPN) then bottom-up (PAN)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h12 = C2f(c1024 + c512, c512, n(3))
        self.h15 = C2f(c512 + c256, c256, n(3))  # P3 out
        self.h16 = Conv(c256, c256, 3, 2)
        self.h18 = C2f(c256 + c512, c512, n(3))  # P4 out
        self.h19 = Conv(c512, c512, 3, 2)
        self.h21 = C2f(c512 + c1024, c1024, n(3))  # P5 out
        self.detect = Detect8(nc, (c256, c512, c1024), (8, 16, 32), imgsz)

    def forward(self, x):
        x = self.b2(self.b1(self.b0(x)))
        p3 = self.b4(self.b3(x))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h12 = self.h12(torch.cat((self.up(p5), p4), 1))
        o3 = self.h15(torch.cat((self.up(h12), p3), 1))
        o4 = self.h18(torch.cat((self.h16(o3), h12), 1))
        o5 = self.h21(torch.cat((self.h19(o4), p5), 1))
        return self.detect([o3, o4, o5])


# ----------------------------------------------------------------------------- YOLOv5-style


class Bottleneck5(nn.Module):
    def __init__(self, c1, c2, shortcut=True, e=1.0):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with three convolutions."""

    def __init__(self, c1, c2, n=1, shortcut=True, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c1, c_, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck5(c_, c_, shortcut) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class Detect5(nn.Module):
    """Anchor-based head: per level a 1x1 conv to na*(5+nc); sigmoid; xy = (2s - 0.5 + grid) *
    stride, wh = (2s)^2 * anchor; flattened to [N, na*H*W, 5+nc] and concatenated."""

    ANCHORS = ((10, 13, 16, 30, 33, 23), (30, 61, 62, 45, 59, 119), (116, 90, 156, 198, 373, 326))

    def __init__(self, nc, ch, strides, imgsz):
        super().__init__()
        self.nc, self.no, self.na = nc, nc + 5, 3
        self.strides = strides
        self.m = nn.ModuleList(nn.Conv2d(x, self.no * self.na, 1) for x in ch)
        for i, s in enumerate(strides):
            h = w = imgsz // s
            yv, xv = torch.meshgrid(torch.arange(h, dtype=torch.float),
                                    torch.arange(w, dtype=torch.float), indexing="ij")
            grid = (torch.stack((xv, yv), 2) - 0.5).view(1, 1, h, w, 2)
            anchor = torch.tensor(self.ANCHORS[i], dtype=torch.float).view(1, self.na, 1, 1, 2)
            self.register_buffer(f"grid{i}", grid)
            self.register_buffer(f"anchor_grid{i}", anchor)

    def forward(self, xs):
        z = []
        for i, x in enumerate(xs):
            x = self.m[i](x)
            bs, _, ny, nx = x.shape
            x = x.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            xy, wh, conf = x.sigmoid().split((2, 2, self.nc + 1), 4)
            xy = (xy * 2 + getattr(self, f"grid{i}")) * self.strides[i]
            wh = (wh * 2) ** 2 * getattr(self, f"anchor_grid{i}")
            z.append(torch.cat((xy, wh, conf), 4).view(bs, self.na * ny * nx, self.no))
        return torch.cat(z, 1)


class YOLOv5(nn.Module):
    SCALES = {"n": (0.33, 0.25), "s": (0.33, 0.50), "m": (0.67, 0.75)}

    def __init__(self, scale="s", nc=80, imgsz=640):
        super().__init__()
        depth, width = self.SCALES[scale]
        ch = lambda c: make_divisible(c * width, 8)  # noqa: E731
        n = lambda k: max(round(k * depth), 1)  # noqa: E731
        c64, c128, c256, c512, c1024 = ch(64), ch(128), ch(256), ch(512), ch(1024)
        self.b0 = Conv(3, c64, 6, 2, 2)  # P1/2 (the 6x6 'stem' that replaced Focus)
        self.b1 = Conv(c64, c128, 3, 2)  # P2/4
        self.b2 = C3(c128, c128, n(3))
        self.b3 = Conv(c128, c256, 3, 2)  # P3/8
        self.b4 = C3(c256, c256, n(6))
        self.b5 = Conv(c256, c512, 3, 2)  # P4/16
        self.b6 = C3(c512, c512, n(9))
        self.b7 = Conv(c512, c1024, 3, 2)  # P5/32
        self.b8 = C3(c1024, c1024, n(3))
        self.b9 = SPPF(c1024, c1024, 5)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h10 = Conv(c1024, c512, 1)
        self.h13 = C3(c512 + c512, c512, n(3), False)
        self.h14 = Conv(c512, c256, 1)
        self.h17 = C3(c256 + c256, c256, n(3), False)  # P3 out
        self.h18 = Conv(c256, c256, 3, 2)
        self.h20 = C3(c256 + c256, c512, n(3), False)  # P4 out
        self.h21 = Conv(c512, c512, 3, 2)
        self.h23 = C3(c512 + c512, c1024, n(3), False)  # P5 out
        self.detect = Detect5(nc, (c256, c512, c1024), (8, 16, 32), imgsz)

    def forward(self, x):
        x = self.b2(self.b1(self.b0(x)))
        p3 = self.b4(self.b3(x))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h10 = self.h10(p5)
        h14 = self.h14(self.h13(torch.cat((self.up(h10), p4), 1)))
        o3 = self.h17(torch.cat((self.up(h14), p3), 1))
        o4 = self.h20(torch.cat((self.h18(o3), h14), 1))
        o5 = self.h23(torch.cat((self.h21(o4), h10), 1))
        return self.detect([o3, o4, o5])


def yolov8(scale="n", nc=80, imgsz=640):
    return YOLOv8(scale, nc, imgsz)


def yolov5(scale="s", nc=80, imgsz=640):
    return YOLOv5(scale, nc, imgsz)


if __name__ == "__main__":
    for name, m in (("yolov8n", yolov8("n")), ("yolov8s", yolov8("s")), ("yolov5s", yolov5("s"))):
        m.eval()
        with torch.no_grad():
            y = m(torch.rand(1, 3, 640, 640))
        params = sum(p.numel() for p in m.parameters())
        print(f"{name}: output {tuple(y.shape)}, {params / 1e6:.2f} M parameters")
