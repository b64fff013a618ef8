#!/usr/bin/env python3
"""Seeded generator of labelled synthetic scenes: "a drone's view of obstacles".

Pure numpy (no Pillow, no OpenCV), so it runs the same on this machine, in CI and on the GPU
machine. Every image is a deterministic function of (seed, index[, size]): the generator for
image i draws from np.random.default_rng([seed, index, SALT]) only, so any subset of a set can
be regenerated independently and in parallel.

Scenes: a background (sky over ground with a tilted horizon, a top-down view of fields and
roads, or an abstract gradient/texture), 1..15 objects of 6 classes at sizes 8..300 px (at a
640 px image; sizes scale with min(H, W) / 640), painted back to front so that objects occlude
each other, then optional gaussian or motion blur, sensor noise, colour cast and a
gamma/brightness/contrast change.

Labels: one box per object that is at least MIN_VISIBLE (30%) visible, where visibility is
(pixels of the object that are inside the image and not covered by a later object) / (pixels
of the whole object, inside the image or not). The box is the tight box of the visible pixels
(so it is clipped to the image border), in pixels, xyxy, x2/y2 exclusive.

API:   generate(seed, index, size=640) -> (image uint8 [H, W, 3] RGB, boxes float32 [N, 4]
       xyxy pixels, classes int64 [N])
CLI:   python3 scenes.py --out DIR --count N --seed S [--size 640] [--preview 4]
       writes DIR/images/*.png, DIR/labels/*.txt (YOLO: class cx cy w h, normalized),
       DIR/annotations.json (COCO), DIR/data.yaml (manifest) and with --preview a grid of the
       first images with their boxes drawn (DIR/preview.png).
       python3 scenes.py --bench N   times generate() over N images.
"""

import argparse
import functools
import json
import math
import os
import struct
import sys
import time
import zlib

import numpy as np

CLASSES = ("balloon", "crate", "cone", "drone", "tyre", "pole")
NUM_CLASSES = len(CLASSES)
MIN_VISIBLE = 0.30
MIN_SIZE, MAX_SIZE = 8.0, 300.0  # object size range in px at the 640 px reference
REF_SIZE = 640
MAX_OBJECTS = 15
GENERATOR_VERSION = 1
_SALT = 0x5CE7E5  # part of every image's seed, so these streams differ from other seeded users


# ----------------------------------------------------------------------------- helpers


def _hsv(h, s, v):
    """One HSV colour (h in turns) to an RGB float32 triple."""
    h = (h % 1.0) * 6.0
    i = int(h) % 6
    f = h - int(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    rgb = ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))[i]
    return np.array(rgb, dtype=np.float32)


@functools.lru_cache(maxsize=256)
def _interp_taps(n_out, n_in):
    """Bilinear upsampling n_in -> n_out (align_corners=False): left tap, right tap, weight."""
    x = (np.arange(n_out, dtype=np.float64) + 0.5) * n_in / n_out - 0.5
    x = np.clip(x, 0, n_in - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (x - i0).astype(np.float32)


def _upsample(grid, h, w):
    """Separable bilinear resize of a 2-D float32 grid by gathers (no BLAS: the reference
    BLAS of some distributions makes the matrix form slow)."""
    i0, i1, wy = _interp_taps(h, grid.shape[0])
    rows = grid[i0] + (grid[i1] - grid[i0]) * wy[:, None]
    j0, j1, wx = _interp_taps(w, grid.shape[1])
    left = rows[:, j0]
    return left + (rows[:, j1] - left) * wx[None, :]


def _fractal(rng, h, w, base=4, octaves=4, persistence=0.55):
    """Smooth value noise: octaves of random grids summed at the finest grid's resolution,
    then bilinearly upsampled once to [h, w]; normalized to [0, 1]."""
    gmax = base * 2 ** (octaves - 1)
    fh = max(2, int(round(gmax * h / max(h, w))))
    fw = max(2, int(round(gmax * w / max(h, w))))
    acc = np.zeros((fh, fw), dtype=np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        g = base * (2 ** o)
        gh = max(2, int(round(g * h / max(h, w))))
        gw = max(2, int(round(g * w / max(h, w))))
        acc += amp * _upsample(rng.random((gh, gw), dtype=np.float32), fh, fw)
        total += amp
        amp *= persistence
    out = _upsample(acc / total, h, w)
    lo, hi = float(out.min()), float(out.max())
    return (out - lo) / max(hi - lo, 1e-6)


def _grid(h, w):
    """Pixel-centre-free coordinate vectors (float32 [h, 1] and [1, w]) for broadcasting."""
    return (np.arange(h, dtype=np.float32)[:, None], np.arange(w, dtype=np.float32)[None, :])


def _gaussian_kernel(sigma):
    r = max(1, int(math.ceil(2.0 * sigma)))
    x = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _convolve_axis(img, k, axis):
    """Correlate img with a symmetric 1-D kernel along axis, edge-replicated, by shifted-slice
    sums (pairs of taps share one multiply)."""
    r = len(k) // 2
    pad = [(0, 0)] * img.ndim
    pad[axis] = (r, r)
    p = np.pad(img, pad, mode="edge")
    n = img.shape[axis]

    def shifted(i):
        sl = [slice(None)] * img.ndim
        sl[axis] = slice(i, i + n)
        return p[tuple(sl)]

    out = shifted(r) * k[r]
    tmp = np.empty_like(out)
    for i in range(1, r + 1):
        np.add(shifted(r - i), shifted(r + i), out=tmp)
        tmp *= k[r + i]
        out += tmp
    return out


def gaussian_blur(img, sigma):
    k = _gaussian_kernel(sigma)
    return _convolve_axis(_convolve_axis(img, k, 0), k, 1)


def motion_blur(img, length, angle):
    """Average of `length` copies shifted along a line of direction `angle` (radians)."""
    n = max(2, int(round(length)))
    h, w = img.shape[:2]
    r = int(math.ceil(length / 2)) + 1
    p = np.pad(img, ((r, r), (r, r), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    for t in np.linspace(-length / 2, length / 2, n):
        dx, dy = int(round(t * math.cos(angle))), int(round(t * math.sin(angle)))
        out += p[r + dy:r + dy + h, r + dx:r + dx + w]
    return out / n


# ----------------------------------------------------------------------------- backgrounds

_GROUND = (  # (hue, sat, val) families for ground textures
    (0.25, 0.55, 0.45), (0.28, 0.45, 0.35), (0.20, 0.50, 0.55),  # grass
    (0.08, 0.45, 0.45), (0.10, 0.35, 0.60), (0.07, 0.55, 0.30),  # soil, sand, mud
    (0.0, 0.0, 0.45), (0.6, 0.05, 0.35), (0.13, 0.25, 0.70),     # asphalt, concrete, dry
)
_SKY = ((0.58, 0.55, 0.90), (0.60, 0.35, 0.95), (0.60, 0.05, 0.80), (0.05, 0.45, 0.95),
        (0.62, 0.70, 0.55))


def _jitter_hsv(rng, hsv, dh=0.03, ds=0.15, dv=0.15):
    h, s, v = hsv
    return _hsv(h + rng.uniform(-dh, dh), float(np.clip(s + rng.uniform(-ds, ds), 0, 1)),
                float(np.clip(v + rng.uniform(-dv, dv), 0.05, 1)))


def _ground_texture(rng, h, w):
    c1 = _jitter_hsv(rng, _GROUND[rng.integers(len(_GROUND))])
    c2 = _jitter_hsv(rng, _GROUND[rng.integers(len(_GROUND))])
    n = _fractal(rng, h, w, base=int(rng.integers(2, 6)), octaves=4)
    mix = np.clip((n - 0.5) * rng.uniform(2, 8) + 0.5, 0, 1)[..., None]
    img = c1 * (1 - mix) + c2 * mix
    fine = _fractal(rng, h, w, base=int(rng.integers(16, 48)), octaves=2)
    img *= (0.75 + 0.5 * fine)[..., None]
    if rng.random() < 0.4:  # rows of a ploughed or planted field
        yy, xx = _grid(h, w)
        th = rng.uniform(0, math.pi)
        period = rng.uniform(6, 40) * min(h, w) / REF_SIZE
        s = np.sin((xx * math.cos(th) + yy * math.sin(th)) * (2 * math.pi / period))
        img *= (1 + rng.uniform(0.05, 0.25) * s)[..., None]
    if rng.random() < 0.3:  # a road with a dashed centre line
        yy, xx = _grid(h, w)
        th = rng.uniform(0, math.pi)
        d = (xx - rng.uniform(0, w)) * math.cos(th) + (yy - rng.uniform(0, h)) * math.sin(th)
        along = -(xx * math.sin(th)) + yy * math.cos(th)
        half = rng.uniform(15, 60) * min(h, w) / REF_SIZE
        road = np.abs(d) < half
        grey = rng.uniform(0.25, 0.45)
        img[road] = grey * (0.9 + 0.2 * fine[road])[:, None]
        line = (np.abs(d) < half * 0.06) & (np.sin(along * 2 * math.pi / (half * 2)) > 0)
        img[line] = rng.uniform(0.75, 0.95)
    return img


def _background(rng, h, w):
    kind = rng.random()
    if kind < 0.35:  # sky over ground, tilted horizon
        sky_top = _jitter_hsv(rng, _SKY[rng.integers(len(_SKY))])
        sky_bot = np.clip(sky_top + rng.uniform(0.05, 0.3), 0, 1)
        t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(sky_top * (1 - t) + sky_bot * t, (h, w, 3)).copy()
        if rng.random() < 0.7:  # clouds
            c = _fractal(rng, h, w, base=int(rng.integers(2, 5)), octaves=4)
            a = np.clip((c - rng.uniform(0.4, 0.7)) * 3, 0, 1)[..., None]
            img = img * (1 - a) + np.float32(rng.uniform(0.8, 1.0)) * a
        ground = _ground_texture(rng, h, w)
        yy, xx = _grid(h, w)
        horizon = h * rng.uniform(0.1, 0.75) + (xx - w / 2) * rng.uniform(-0.2, 0.2)
        below = np.clip((yy - horizon) / 2 + 0.5, 0, 1)
        haze = np.exp(-np.maximum(yy - horizon, 0) / (h * rng.uniform(0.05, 0.3)))
        ground = ground * (1 - 0.6 * haze[..., None]) + sky_bot * 0.6 * haze[..., None]
        img = img * (1 - below[..., None]) + ground * below[..., None]
    elif kind < 0.75:  # looking down at the ground
        img = _ground_texture(rng, h, w)
    else:  # abstract: gradient between random colours plus texture
        c1 = _hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 1))
        c2 = _hsv(rng.random(), rng.uniform(0, 0.8), rng.uniform(0.2, 1))
        yy, xx = _grid(h, w)
        th = rng.uniform(0, 2 * math.pi)
        t = (xx * math.cos(th) + yy * math.sin(th))
        t = ((t - t.min()) / max(float(t.max() - t.min()), 1e-6))[..., None]
        img = c1 * (1 - t) + c2 * t
        n = _fractal(rng, h, w, base=int(rng.integers(3, 40)), octaves=3)
        img *= (1 + rng.uniform(0.1, 0.6) * (n - 0.5))[..., None]
    return np.clip(img, 0, 1).astype(np.float32)


# ----------------------------------------------------------------------------- objects
# Each painter gets pixel offsets (u, v) from the object's centre in its rotated frame, the size
# s in pixels and the rng; it returns (signed distance in pixels, <0 inside; colour [h, w, 3]).


def _sd_box(u, v, hw, hh):
    return np.maximum(np.abs(u) - hw, np.abs(v) - hh)


def _sd_ellipse(u, v, a, b):
    return (np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1.0) * min(a, b)


def _sd_segment(u, v, ax, ay, bx, by, r):
    px, py, dx, dy = u - ax, v - ay, bx - ax, by - ay
    t = np.clip((px * dx + py * dy) / (dx * dx + dy * dy), 0, 1)
    return np.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2) - r


def _paint_balloon(u, v, s, rng):
    a, b = s * 0.5 * rng.uniform(0.72, 0.92), s * 0.46
    vo = -s * 0.04
    d = _sd_ellipse(u, v - vo, a, b)
    # knot: a small triangle under the envelope
    kt, kb, kw = vo + b - s * 0.02, vo + b + s * 0.06, s * 0.05
    knot = np.maximum(np.maximum(v - kb, kt - v), np.abs(u) - kw * (v - kt) / (kb - kt) - 0.5)
    d = np.minimum(d, knot)
    hue = rng.choice([0.0, 0.95, 0.13, 0.6, 0.8, 0.05, 0.33]) + rng.uniform(-0.03, 0.03)
    base = _hsv(hue, rng.uniform(0.6, 1.0), rng.uniform(0.65, 1.0))
    hx, hy = -0.35 * a, vo - 0.4 * b
    r2 = ((u - hx) ** 2 + (v - hy) ** 2) / (s * s)
    shade = (1.05 - 0.9 * np.sqrt(((u / a) ** 2 + ((v - vo) / b) ** 2) * 0.35))[..., None]
    col = base * shade + np.exp(-r2 / 0.01)[..., None] * rng.uniform(0.4, 0.8)
    return d, col


def _paint_crate(u, v, s, rng):
    hw, hh = s * 0.5, s * 0.5 * rng.uniform(0.65, 1.0)
    if rng.random() < 0.5:
        hw, hh = hh, hw
    d = _sd_box(u, v, hw, hh)
    r = rng.random()
    if r < 0.7:
        base = _hsv(rng.uniform(0.06, 0.11), rng.uniform(0.45, 0.8), rng.uniform(0.4, 0.8))
    elif r < 0.85:
        base = _hsv(rng.uniform(0.22, 0.3), rng.uniform(0.3, 0.6), rng.uniform(0.3, 0.5))
    else:
        base = _hsv(rng.uniform(0.55, 0.65), rng.uniform(0.2, 0.5), rng.uniform(0.4, 0.7))
    frame_w = min(hw, hh) * rng.uniform(0.1, 0.18)
    frame = (np.abs(u) > hw - frame_w) | (np.abs(v) > hh - frame_w)
    planks = np.abs(np.sin((v + hh) * math.pi * rng.integers(3, 6) / (2 * hh))) < 0.15
    brace = np.abs(u * (hh / hw) - v * rng.choice([-1, 1])) < frame_w * 0.8
    grain = 0.9 + 0.2 * rng.random(u.shape, dtype=np.float32)
    m = np.where(frame | brace, 1.2, np.where(planks, 0.6, 1.0)) * grain
    return d, base * m[..., None]


def _paint_cone(u, v, s, rng):
    h, w = s, s * rng.uniform(0.28, 0.4)
    ay = -h / 2
    ln = math.hypot(w, h)
    right = ((u - 0) * h - (v - ay) * w) / ln
    left = (-(u - 0) * h - (v - ay) * w) / ln
    body_bottom = h / 2 - h * 0.08
    d = np.maximum(np.maximum(right, left), v - body_bottom)
    plate = _sd_box(u, v - (h / 2 - h * 0.04), w * 1.2, h * 0.04)
    d = np.minimum(d, plate)
    base = _hsv(rng.uniform(0.02, 0.09), rng.uniform(0.8, 1.0), rng.uniform(0.8, 1.0))
    col = np.broadcast_to(base, u.shape + (3,)).copy()
    t = (v - ay) / h  # 0 at the apex, 1 at the bottom
    nb = rng.integers(1, 3)
    for k in range(nb):
        c = 0.35 + 0.3 * k + rng.uniform(-0.03, 0.03)
        col[np.abs(t - c) < 0.07] = rng.uniform(0.85, 1.0)
    col[v > body_bottom] = rng.uniform(0.05, 0.25)
    col *= (1.0 - 0.4 * np.clip(u / w, -1, 1) * rng.uniform(-1, 1))[..., None]
    return d, col


def _paint_drone(u, v, s, rng):
    arm = s * rng.uniform(0.32, 0.36)
    rr = s * 0.5 - arm
    th = s * rng.uniform(0.04, 0.07)
    c = arm / math.sqrt(2)
    d = np.minimum(_sd_segment(u, v, -c, -c, c, c, th / 2), _sd_segment(u, v, -c, c, c, -c, th / 2))
    d = np.minimum(d, _sd_box(u, v, s * 0.11, s * 0.11) - s * 0.02)
    body = _hsv(rng.random(), rng.uniform(0, 0.3), rng.choice([0.12, 0.2, 0.85, 0.6]))
    col = np.broadcast_to(body, u.shape + (3,)).copy()
    rotor_col = rng.uniform(0.5, 0.8)
    for sx, sy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        dr = np.sqrt((u - sx * c) ** 2 + (v - sy * c) ** 2)
        disc = dr - rr
        d = np.minimum(d, disc)
        inside = disc < 0
        col[inside] = rotor_col
        col[inside & (np.abs(dr - rr * 0.85) < rr * 0.12)] = 0.15
        col[dr < rr * 0.25] = body
    led = _hsv(rng.choice([0.0, 0.33]), 1.0, 1.0)
    col[(u ** 2 + v ** 2) < (s * 0.04) ** 2] = led
    return d, col


def _paint_tyre(u, v, s, rng):
    big = s * 0.5
    small = big * rng.uniform(0.42, 0.62)
    k = rng.uniform(0.45, 1.0)  # perspective squash
    r = np.sqrt(u ** 2 + (v / k) ** 2)
    d = np.maximum(r - big, small - r) * k
    ang = np.arctan2(v / k, u)
    base = rng.uniform(0.06, 0.2)
    tread = 1 + 0.5 * (np.sin(ang * rng.integers(18, 36)) > 0.3) * (r > (big + small) / 2)
    col = (base * tread)[..., None] * np.array([1, 1, rng.uniform(1.0, 1.15)], np.float32)
    if rng.random() < 0.5:  # a lighter inner wall
        col[(r - small) < (big - small) * 0.2] = rng.uniform(0.3, 0.5)
    return d, col


def _paint_pole(u, v, s, rng):
    h = s
    tw = s * rng.uniform(0.06, 0.12) / 2
    if rng.random() < 0.65:  # tree: trunk + canopy
        ca, cb = s * rng.uniform(0.22, 0.4), s * rng.uniform(0.25, 0.32)
        cy = -h / 2 + cb
        trunk = _sd_box(u, v - (cy + h / 2) / 2, tw, (h / 2 - cy) / 2)
        can = _sd_ellipse(u, v - cy, ca, cb)
        d = np.minimum(trunk, can)
        col = np.broadcast_to(_hsv(rng.uniform(0.05, 0.1), 0.6, rng.uniform(0.25, 0.45)),
                              u.shape + (3,)).copy()
        leaf = _hsv(rng.uniform(0.22, 0.38), rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.7))
        blot = 0.7 + 0.6 * rng.random(u.shape, dtype=np.float32)
        inc = can < 0
        col[inc] = leaf * blot[inc][:, None]
    else:  # pole with a crossbar or a lamp
        d = _sd_box(u, v, tw, h / 2)
        bar_y = -h / 2 + h * rng.uniform(0.05, 0.2)
        d = np.minimum(d, _sd_box(u, v - bar_y, s * rng.uniform(0.15, 0.3), tw * 0.8))
        grey = rng.uniform(0.5, 0.9)
        col = np.full(u.shape + (3,), grey, np.float32)
        col[np.abs(v) % (s * 0.2) < s * 0.1] *= rng.choice([1.0, 0.5])
    col = col * (1 + 0.3 * np.clip(u / (s * 0.3), -1, 1) * rng.uniform(-1, 1))[..., None]
    return d, col


_PAINTERS = (_paint_balloon, _paint_crate, _paint_cone, _paint_drone, _paint_tyre, _paint_pole)
_MAX_ROT = (0.45, math.pi, 0.35, math.pi, math.pi, 0.2)  # rotation range per class (radians)


def sample_object(rng, h, w, cls=None):
    """Random object parameters (placement, size, rotation); paint_object draws them."""
    cls = int(rng.integers(NUM_CLASSES)) if cls is None else cls
    scale = min(h, w) / REF_SIZE
    s = math.exp(rng.uniform(math.log(MIN_SIZE), math.log(MAX_SIZE))) * scale
    # centres may lie slightly outside the image so that border-cut objects occur
    cx = rng.uniform(-0.25 * s, w + 0.25 * s)
    cy = rng.uniform(-0.25 * s, h + 0.25 * s)
    rot = rng.uniform(-_MAX_ROT[cls], _MAX_ROT[cls])
    return {"cls": cls, "size": s, "cx": cx, "cy": cy, "rot": rot,
            "seed": int(rng.integers(2 ** 63 - 1)), "shade": rng.uniform(-0.35, 0.35),
            "shade_dir": rng.uniform(0, 2 * math.pi)}


def paint_object(img, owner, obj, idx):
    """Alpha-composite obj onto img (float32 [H, W, 3]); mark its pixels in owner with idx.
    Returns the object's total pixel count (alpha >= 0.5), inside the image or not."""
    h, w = img.shape[:2]
    s, cx, cy = obj["size"], obj["cx"], obj["cy"]
    rad = s * 0.75 + 2  # bounding radius of every shape (rotated)
    x0, x1 = int(math.floor(cx - rad)), int(math.ceil(cx + rad)) + 1
    y0, y1 = int(math.floor(cy - rad)), int(math.ceil(cy + rad)) + 1
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5 - cx
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5 - cy
    ca, sa = math.cos(obj["rot"]), math.sin(obj["rot"])
    u = ca * xs[None, :] + sa * ys[:, None]
    v = -sa * xs[None, :] + ca * ys[:, None]
    rng = np.random.default_rng(obj["seed"])
    d, col = _PAINTERS[obj["cls"]](u, v, s, rng)
    alpha = np.clip(0.5 - d, 0, 1).astype(np.float32)
    total = int(np.count_nonzero(alpha >= 0.5))
    light = 1 + obj["shade"] * (u * math.cos(obj["shade_dir"]) + v * math.sin(obj["shade_dir"])) / s
    col = np.clip(col * light[..., None], 0, 1)
    # crop the patch to the image
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, w), min(y1, h)
    if cx1 <= cx0 or cy1 <= cy0:
        return total
    sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
    a = alpha[sl][..., None]
    region = img[cy0:cy1, cx0:cx1]
    region *= 1 - a
    region += col[sl] * a
    owner[cy0:cy1, cx0:cx1][alpha[sl] >= 0.5] = idx
    obj["_patch"] = (cx0, cy0, cx1, cy1)
    return total


# ----------------------------------------------------------------------------- scenes


def _photometric_lut(rng):
    """Per-channel 256-entry tables: colour cast, gamma, contrast, brightness in one lookup."""
    x = np.arange(256, dtype=np.float32) / 255.0
    gamma = math.exp(rng.uniform(math.log(0.6), math.log(1.6)))
    contrast = rng.uniform(0.65, 1.3)
    bright = rng.uniform(-0.15, 0.15)
    cast = 1 + rng.uniform(-0.12, 0.12, size=3)
    luts = []
    for c in range(3):
        y = np.power(x, gamma)
        y = (y - 0.5) * contrast + 0.5 + bright
        y = y * cast[c]
        luts.append(np.clip(np.round(y * 255), 0, 255).astype(np.uint8))
    return luts


def _size_hw(size):
    if isinstance(size, (tuple, list)):
        return int(size[0]), int(size[1])
    return int(size), int(size)


def render(rng, h, w, objects, background=None):
    """Background (generated, or a float32 [h, w, 3] copy given) + objects (painted in list
    order, later ones on top). Returns the float image, per-object boxes (xyxy px, exclusive
    x2/y2; None if nothing shows) and visible fractions."""
    img = _background(rng, h, w) if background is None else background.astype(np.float32)
    owner = np.full((h, w), -1, dtype=np.int16)
    totals = [paint_object(img, owner, o, i) for i, o in enumerate(objects)]
    boxes, vis = [], []
    for i, o in enumerate(objects):
        box, frac = None, 0.0
        if "_patch" in o and totals[i] > 0:
            x0, y0, x1, y1 = o.pop("_patch")
            m = owner[y0:y1, x0:x1] == i
            n = int(np.count_nonzero(m))
            frac = n / totals[i]
            if n:
                rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
                box = (x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1)
        o.pop("_patch", None)
        boxes.append(box)
        vis.append(frac)
    return img, boxes, vis


def finish(rng, img, luts=None, blur=True):
    """Blur, sensor noise, quantization and the photometric change (luts: fixed tables from
    _photometric_lut, e.g. for every frame of a clip)."""
    h, w = img.shape[:2]
    scale = min(h, w) / REF_SIZE
    r = rng.random() if blur else 1.0
    if r < 0.2:
        img = gaussian_blur(img, rng.uniform(0.6, 2.0) * max(scale, 0.5))
    elif r < 0.32:
        img = motion_blur(img, rng.uniform(3, 12) * max(scale, 0.5), rng.uniform(0, math.pi))
    if rng.random() < 0.5:
        sigma = np.float32(rng.uniform(0.005, 0.03))
        img = img + rng.standard_normal((h, w, 1), dtype=np.float32) * sigma
    u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    luts = _photometric_lut(rng) if luts is None else luts
    for c in range(3):
        u8[..., c] = luts[c][u8[..., c]]
    return u8


def generate(seed, index, size=640):
    """Image index of set seed: (uint8 [H, W, 3] RGB, boxes float32 [N, 4] xyxy px,
    classes int64 [N]). size is an int (square) or (height, width)."""
    h, w = _size_hw(size)
    rng = np.random.default_rng([int(seed), int(index), _SALT])
    n = int(rng.integers(1, MAX_OBJECTS + 1))
    objects = [sample_object(rng, h, w) for _ in range(n)]
    # paint roughly back to front: big (near) objects first, small ones over them, with noise
    objects.sort(key=lambda o: -o["size"] * rng.uniform(0.5, 1.5))
    img, boxes, vis = render(rng, h, w, objects)
    img = finish(rng, img)
    keep = [i for i in range(n) if boxes[i] is not None and vis[i] >= MIN_VISIBLE]
    b = np.array([boxes[i] for i in keep], dtype=np.float32).reshape(-1, 4)
    c = np.array([objects[i]["cls"] for i in keep], dtype=np.int64)
    return img, b, c


# ----------------------------------------------------------------------------- file formats


CLASS_COLOURS = ((255, 40, 40), (255, 160, 0), (255, 255, 0), (0, 255, 255), (255, 0, 255),
                 (0, 255, 0))


def draw_boxes(img, boxes, classes, thickness=2):
    """Copy of img with each box outlined in its class colour (for looking at labels)."""
    out = img.copy()
    h, w = out.shape[:2]
    for (x1, y1, x2, y2), c in zip(np.asarray(boxes), classes):
        col = CLASS_COLOURS[int(c) % len(CLASS_COLOURS)]
        x1, y1 = int(max(0, math.floor(x1))), int(max(0, math.floor(y1)))
        x2, y2 = int(min(w, math.ceil(x2))), int(min(h, math.ceil(y2)))
        t = thickness
        out[y1:min(y1 + t, y2), x1:x2] = col
        out[max(y2 - t, y1):y2, x1:x2] = col
        out[y1:y2, x1:min(x1 + t, x2)] = col
        out[y1:y2, max(x2 - t, x1):x2] = col
    return out


def preview(seed, count, size, path, start=0):
    """A grid (2 columns) of images start.. with their boxes drawn, as one PNG."""
    tiles = [draw_boxes(*generate(seed, i, size)) for i in range(start, start + count)]
    if len(tiles) % 2:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.concatenate(tiles[i:i + 2], 1) for i in range(0, len(tiles), 2)]
    write_png(path, np.concatenate(rows, 0))


def write_png(path, img):
    """Minimal PNG writer (8-bit RGB or grey, filter 'Sub' on every row, zlib level 3)."""
    img = np.ascontiguousarray(img)
    if img.ndim == 2:
        img = img[..., None]
    h, w, c = img.shape
    ctype = {1: 0, 3: 2, 4: 6}[c]
    sub = img.astype(np.int16)
    sub[:, 1:] -= img[:, :-1]
    rows = (sub & 0xFF).astype(np.uint8).reshape(h, w * c)
    raw = np.concatenate([np.ones((h, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 3)))
        f.write(chunk(b"IEND", b""))


def read_png(path):
    """Reader for 8-bit non-interlaced PNGs; filters 0-4 (3 and 4 per row, slow but rare)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        tag, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if tag == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat.append(body)
        elif tag == b"IEND":
            break
    if hdr is None:
        raise ValueError(f"{path}: no IHDR chunk")
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or interlace or ctype not in (0, 2, 6):
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {ctype}, "
                         f"interlace {interlace})")
    c = {0: 1, 2: 3, 6: 4}[ctype]
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), np.uint8).reshape(h, w * c + 1)
    out = np.zeros((h, w * c), np.uint8)
    prev = np.zeros(w * c, np.int32)
    for y in range(h):
        ft, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if ft == 0:
            cur = row
        elif ft == 1:
            cur = np.cumsum(row.reshape(w, c), axis=0).reshape(-1) & 0xFF
        elif ft == 2:
            cur = (row + prev) & 0xFF
        elif ft in (3, 4):
            cur = np.zeros_like(row)
            for i in range(w * c):
                a = cur[i - c] if i >= c else 0
                b, cc = prev[i], prev[i - c] if i >= c else 0
                if ft == 3:
                    pred = (a + b) >> 1
                else:
                    p = a + b - cc
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                cur[i] = (row[i] + pred) & 0xFF
        else:
            raise ValueError(f"{path}: bad PNG filter type {ft} in row {y}")
        out[y] = cur
        prev = cur
    return out.reshape(h, w, c)


def yolo_lines(boxes, classes, h, w):
    lines = []
    for (x1, y1, x2, y2), c in zip(boxes, classes):
        lines.append(f"{int(c)} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} "
                     f"{(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}")
    return "\n".join(lines) + ("\n" if lines else "")


def read_yolo(path, h, w):
    """YOLO txt -> (boxes xyxy px float32 [N, 4], classes int64 [N])."""
    rows = []
    with open(path) as f:
        for ln, line in enumerate(f, 1):
            p = line.split()
            if not p:
                continue
            if len(p) != 5:
                raise ValueError(f"{path}:{ln}: expected 5 fields, got {len(p)}")
            rows.append([float(x) for x in p])
    a = np.array(rows, np.float64).reshape(-1, 5)
    cx, cy, bw, bh = a[:, 1] * w, a[:, 2] * h, a[:, 3] * w, a[:, 4] * h
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1).astype(np.float32)
    return boxes, a[:, 0].astype(np.int64)


def coco_dict(records, h, w):
    """records: [(file_name, boxes xyxy, classes)] -> COCO detection dict (category ids 0..5,
    image ids 0..n-1, bbox [x, y, w, h])."""
    images, anns = [], []
    for i, (name, boxes, classes) in enumerate(records):
        images.append({"id": i, "file_name": name, "height": h, "width": w})
        for (x1, y1, x2, y2), c in zip(np.asarray(boxes, np.float64), classes):
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c),
                         "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                         "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0})
    return {"images": images, "annotations": anns,
            "categories": [{"id": i, "name": n} for i, n in enumerate(CLASSES)]}


def write_coco(path, records, h, w):
    with open(path, "w") as f:
        json.dump(coco_dict(records, h, w), f)


def write_manifest(path, out, seed, count, h, w, start=0):
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(CLASSES))
    with open(path, "w") as f:
        f.write(f"# generated by models/detector/scenes.py "
                f"(generator version {GENERATOR_VERSION})\n"
                f"# regenerate: python3 models/detector/scenes.py --out {out} --count {count} "
                f"--seed {seed} --size {h}x{w} --start {start}\n"
                f"path: {os.path.abspath(out)}\ntrain: images\nval: images\n"
                f"labels: labels\ncoco: annotations.json\nseed: {seed}\nstart: {start}\n"
                f"count: {count}\nheight: {h}\nwidth: {w}\nnc: {NUM_CLASSES}\nnames:\n{names}\n")


def write_set(out, seed, count, size=640, start=0, log=print):
    h, w = _size_hw(size)
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    os.makedirs(os.path.join(out, "labels"), exist_ok=True)
    records = []
    t0 = time.time()
    for i in range(start, start + count):
        img, boxes, classes = generate(seed, i, (h, w))
        name = f"{seed}_{i:06d}"
        write_png(os.path.join(out, "images", name + ".png"), img)
        with open(os.path.join(out, "labels", name + ".txt"), "w") as f:
            f.write(yolo_lines(boxes, classes, h, w))
        records.append((name + ".png", boxes, classes))
    write_coco(os.path.join(out, "annotations.json"), records, h, w)
    write_manifest(os.path.join(out, "data.yaml"), out, seed, count, h, w, start)
    dt = time.time() - t0
    log(f"wrote {count} images to {out} in {dt:.1f} s ({count / max(dt, 1e-9):.1f} images/s)")
    return records


def parse_size(s):
    if "x" in str(s):
        a, b = str(s).lower().split("x")
        return int(a), int(b)
    return int(s), int(s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="output folder")
    ap.add_argument("--count", type=int, help="number of images")
    ap.add_argument("--seed", type=int, default=None, help="set seed")
    ap.add_argument("--preview", type=int, default=0,
                    help="also write DIR/preview.png: the first N images with boxes drawn")
    ap.add_argument("--bench", type=int, default=0,
                    help="only time generate() over this many images (one core) and exit")
    ap.add_argument("--start", type=int, default=0, help="first image index")
    ap.add_argument("--size", default="640", help="N (square) or HxW, default 640")
    a = ap.parse_args(argv)
    if a.bench:
        size = parse_size(a.size)
        t0, c0 = time.time(), time.process_time()
        n_boxes = sum(len(generate(a.seed or 0, i, size)[2]) for i in range(a.bench))
        dt, dc = time.time() - t0, time.process_time() - c0
        print(f"{a.bench} images {size[1]}x{size[0]}: {a.bench / dt:.1f} images/s wall, "
              f"{a.bench / dc:.1f} images per CPU-second ({n_boxes / a.bench:.1f} boxes/image)")
        return 0
    if a.out is None or a.count is None or a.seed is None:
        ap.error("--out, --count and --seed are required (or --bench N)")
    if a.count < 0:
        ap.error("--count must be >= 0")
    try:
        size = parse_size(a.size)
    except ValueError:
        ap.error(f"--size: expected N or HxW, got {a.size!r}")
    if min(size) < 32:
        ap.error(f"--size: images must be at least 32x32, got {a.size}")
    write_set(a.out, a.seed, a.count, size, a.start)
    if a.preview:
        preview(a.seed, min(a.preview, max(a.count, 1)), size, os.path.join(a.out, "preview.png"),
                a.start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
