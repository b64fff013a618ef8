#!/usr/bin/env python3
"""A short clip of moving scenes from scenes.py's generator, with per-frame ground truth.

The camera pans slowly over a wide generated background; 6..12 objects of the six classes move
with their own velocities (drones fast, balloons drifting and bobbing, crates/tyres/cones
mostly still in the world but moving through the frame with the pan), some spin. Each frame is
painted with scenes.render, so boxes follow the same rules as the still images (tight box of
the visible pixels, kept when >= 30% of the object is visible). One photometric table and a
light sensor noise hold for the whole clip. Deterministic in --seed.

  python3 make_video.py --out DIR [--seed 0] [--frames 120] [--fps 15] [--size 384x640]
      [--png] [--npy] [--no-mp4]

writes DIR/labels.json (per frame: boxes xyxy px, classes, track ids), DIR/annotations.json
(COCO, file names frames/NNNNNN.png), DIR/labels/NNNNNN.txt (YOLO), and the frames: DIR/clip.mp4
(H.264 via the ffmpeg program, when it is on PATH), DIR/frames/NNNNNN.png (--png, or when no
mp4 could be written) and/or DIR/frames.npy ([T, H, W, 3] uint8, --npy).
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402

_SALT = 0xC11B


def make_clip(seed=0, frames=120, h=384, w=640, fps=15):
    """Yields (frame uint8 [h, w, 3], boxes float32 [N, 4], classes int64 [N], track ids [N])."""
    rng = np.random.default_rng([seed, _SALT])
    scale = min(h, w) / 384
    pan = np.array([rng.uniform(1.5, 3.0) * rng.choice([-1, 1]), rng.uniform(-0.6, 0.6)]) * scale
    margin = 64
    world_w = int(w + abs(pan[0]) * frames + 2 * margin)
    world_h = int(h + abs(pan[1]) * frames + 2 * margin)
    bg = scenes._background(rng, world_h, world_w)
    cam0 = np.array([margin + (abs(pan[0]) * frames if pan[0] < 0 else 0),
                     margin + (abs(pan[1]) * frames if pan[1] < 0 else 0)])
    n = int(rng.integers(6, 13))
    objs = []
    for k in range(n):
        o = scenes.sample_object(rng, h, w, cls=k % scenes.NUM_CLASSES if k < 6 else None)
        o["size"] = math.exp(rng.uniform(math.log(14), math.log(200))) * scale
        # world position such that the object passes through the camera's path
        t_mid = rng.uniform(0, frames)
        cam_mid = cam0 + pan * t_mid
        o["x0"] = cam_mid[0] + rng.uniform(0.05, 0.95) * w
        o["y0"] = cam_mid[1] + rng.uniform(0.05, 0.95) * h
        speed = {3: 3.0, 0: 0.8}.get(o["cls"], 0.25) * scale
        ang = rng.uniform(0, 2 * math.pi)
        o["vx"], o["vy"] = speed * math.cos(ang), speed * math.sin(ang)
        o["vr"] = rng.uniform(-0.04, 0.04) if o["cls"] in (1, 3, 4) else 0.0
        o["bob"] = rng.uniform(2, 6) * scale if o["cls"] == 0 else 0.0
        o["x0"] -= o["vx"] * t_mid
        o["y0"] -= o["vy"] * t_mid
        o["track"] = k
        objs.append(o)
    objs.sort(key=lambda o: -o["size"])
    luts = scenes._photometric_lut(rng)
    noise = float(rng.uniform(0.003, 0.008))
    for t in range(frames):
        cam = cam0 + pan * t
        cx, cy = int(round(cam[0])), int(round(cam[1]))
        frame_objs = []
        for o in objs:
            fo = dict(o)
            fo["cx"] = o["x0"] + o["vx"] * t - cx
            fo["cy"] = o["y0"] + o["vy"] * t - cy + o["bob"] * math.sin(2 * math.pi * t / (2 * fps))
            fo["rot"] = o["rot"] + o["vr"] * t
            frame_objs.append(fo)
        frng = np.random.default_rng([seed, _SALT, t])
        img, boxes, vis = scenes.render(frng, h, w, frame_objs, background=bg[cy:cy + h, cx:cx + w])
        img = img + frng.standard_normal((h, w, 1), dtype=np.float32) * np.float32(noise)
        u8 = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        for c in range(3):
            u8[..., c] = luts[c][u8[..., c]]
        keep = [i for i, o in enumerate(frame_objs)
                if boxes[i] is not None and vis[i] >= scenes.MIN_VISIBLE]
        yield (u8, np.array([boxes[i] for i in keep], np.float32).reshape(-1, 4),
               np.array([frame_objs[i]["cls"] for i in keep], np.int64),
               np.array([frame_objs[i]["track"] for i in keep], np.int64))


def write_mp4(frames_dir, path, fps, crf=23):
    ff = shutil.which("ffmpeg")
    if not ff:
        return False
    cmd = [ff, "-y", "-loglevel", "error", "-framerate", str(fps), "-i",
           os.path.join(frames_dir, "%06d.png"), "-c:v", "libx264", "-preset", "slow", "-crf",
           str(crf), "-pix_fmt", "yuv420p", "-g", str(fps), "-movflags", "+faststart", path]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"ffmpeg failed ({r.returncode}): {r.stderr.strip()}", file=sys.stderr)
        return False
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--size", default="384x640", help="HxW (default 384x640)")
    ap.add_argument("--png", action="store_true", help="keep the PNG frames")
    ap.add_argument("--npy", action="store_true", help="also write frames.npy")
    ap.add_argument("--no-mp4", action="store_true")
    ap.add_argument("--crf", type=int, default=23, help="H.264 quality (lower = bigger)")
    a = ap.parse_args(argv)
    h, w = scenes.parse_size(a.size)
    if a.frames < 1 or a.fps < 1:
        ap.error("--frames and --fps must be >= 1")
    if h % 2 or w % 2 or min(h, w) < 64:
        ap.error(f"--size must be even and at least 64x64 (H.264 4:2:0), got {a.size}")
    os.makedirs(os.path.join(a.out, "labels"), exist_ok=True)
    want_mp4 = not a.no_mp4 and shutil.which("ffmpeg") is not None
    keep_png = a.png or not want_mp4
    frames_dir = os.path.join(a.out, "frames") if keep_png else tempfile.mkdtemp(prefix="clip_")
    os.makedirs(frames_dir, exist_ok=True)
    stack = [] if a.npy else None
    records, per_frame = [], []
    for t, (img, boxes, classes, tracks) in enumerate(make_clip(a.seed, a.frames, h, w, a.fps)):
        name = f"{t:06d}"
        scenes.write_png(os.path.join(frames_dir, name + ".png"), img)
        with open(os.path.join(a.out, "labels", name + ".txt"), "w") as f:
            f.write(scenes.yolo_lines(boxes, classes, h, w))
        records.append((f"frames/{name}.png", boxes, classes))
        per_frame.append({"frame": t, "time_s": t / a.fps, "boxes": boxes.tolist(),
                          "classes": classes.tolist(), "track_ids": tracks.tolist()})
        if stack is not None:
            stack.append(img)
    if stack is not None:
        np.save(os.path.join(a.out, "frames.npy"), np.stack(stack))
    with open(os.path.join(a.out, "labels.json"), "w") as f:
        json.dump({"seed": a.seed, "fps": a.fps, "height": h, "width": w,
                   "generator_version": scenes.GENERATOR_VERSION, "names": list(scenes.CLASSES),
                   "regenerate": f"python3 models/detector/make_video.py --out DIR --seed {a.seed} "
                                 f"--frames {a.frames} --fps {a.fps} --size {h}x{w}",
                   "frames": per_frame}, f)
    scenes.write_coco(os.path.join(a.out, "annotations.json"), records, h, w)
    made = []
    if want_mp4 and write_mp4(frames_dir, os.path.join(a.out, "clip.mp4"), a.fps, a.crf):
        made.append(f"clip.mp4 ({os.path.getsize(os.path.join(a.out, 'clip.mp4')) / 1e6:.2f} MB)")
    if keep_png:
        made.append("frames/*.png")
    else:
        shutil.rmtree(frames_dir)
    if a.npy:
        made.append("frames.npy")
    n_boxes = sum(len(p["boxes"]) for p in per_frame)
    print(f"{a.frames} frames {w}x{h} @ {a.fps} fps, {n_boxes} boxes; wrote {', '.join(made)}, "
          f"labels.json, annotations.json, labels/ in {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
