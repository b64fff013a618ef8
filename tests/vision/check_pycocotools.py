#!/usr/bin/env python3
"""`ramjet eval` vs pycocotools' COCOeval on the same detections (issue #8): mAP@0.5,
mAP@0.5:0.95 and every class's AP must agree to 3 decimals.

A seeded synthetic set: non-contiguous category ids, jittered true boxes with random scores,
duplicates, class confusions, false positives, images without objects, a class with truth but no
detections and one with detections but no truth. Exits 77 (CTest skip) without pycocotools.

    check_pycocotools.py RAMJET_BIN [--seed 0] [--images 60]
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

try:
    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except ImportError as e:  # pragma: no cover
    print(f"SKIP: pycocotools/numpy not importable ({e}); pip install pycocotools")
    sys.exit(77)


def make_set(seed, n_images):
    rng = random.Random(seed)
    cats = [1, 3, 7, 8, 12, 20]  # 20: detections only, never in the truth
    images, anns, dets = [], [], []
    for i in range(n_images):
        w, h = rng.choice([(640, 480), (320, 320), (1280, 720)])
        images.append({"id": 100 + i, "file_name": f"img{i:03d}.png", "width": w, "height": h})
        n_obj = 0 if i % 9 == 0 else rng.randint(1, 8)
        for _ in range(n_obj):
            c = rng.choice(cats[:4] if rng.random() < 0.9 else cats[:5])  # 12 is rare
            bw, bh = rng.uniform(4, w / 3), rng.uniform(4, h / 3)
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": c, "bbox": [x, y, bw, bh],
                         "area": bw * bh, "iscrowd": 0})
            if c == 12:
                continue  # truth without any detection
            for _ in range(1 if rng.random() < 0.8 else 2):  # sometimes a duplicate
                if rng.random() < 0.15:
                    continue  # missed
                j = rng.uniform(0.0, 0.25)
                dx, dy = rng.gauss(0, j * bw / 2), rng.gauss(0, j * bh / 2)
                sw, sh = bw * rng.uniform(1 - j, 1 + j), bh * rng.uniform(1 - j, 1 + j)
                dc = c if rng.random() > 0.05 else rng.choice(cats)
                dets.append({"image_id": 100 + i, "category_id": dc, "bbox": [x + dx, y + dy, sw, sh],
                             "score": round(rng.random(), 6)})
        for _ in range(rng.randint(0, 4)):  # false positives, some of class 20
            bw, bh = rng.uniform(4, w / 4), rng.uniform(4, h / 4)
            dets.append({"image_id": 100 + i, "category_id": rng.choice(cats), "score": round(rng.random() * 0.6, 6),
                         "bbox": [rng.uniform(0, w - bw), rng.uniform(0, h - bh), bw, bh]})
    gt = {"images": images, "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in cats]}
    return gt, dets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ramjet")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=60)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        gt, dets = make_set(a.seed, a.images)
        gp, dp = os.path.join(d, "gt.json"), os.path.join(d, "dets.json")
        json.dump(gt, open(gp, "w"))
        json.dump(dets, open(dp, "w"))
        out = subprocess.run([a.ramjet, "eval", "--detections", dp, "--labels", gp, "--images", d, "--json"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print("ramjet eval failed:", out.stderr)
            return 1
        r = json.loads(out.stdout)
        coco = COCO(gp)
        ev = COCOeval(coco, coco.loadRes(dp), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        ref = {"map50_95": ev.stats[0], "map50": ev.stats[1]}
        # Per class: precision[T, R, K, area 'all', maxDets 100].
        prec = ev.eval["precision"][:, :, :, 0, 2]
        cat_ids = ev.params.catIds
        checks = [("mAP@0.5", r["map50"], ref["map50"]), ("mAP@0.5:0.95", r["map50_95"], ref["map50_95"])]
        got_cls = {c["name"]: c for c in r["classes"]}
        for k, cid in enumerate(cat_ids):
            p = prec[:, :, k]
            if (p > -1).sum() == 0:
                if f"c{cid}" in got_cls:
                    checks.append((f"c{cid} present in ramjet but has no truth", 1, 0))
                continue
            if f"c{cid}" not in got_cls:
                checks.append((f"c{cid} missing from ramjet", 0, 1))
                continue
            checks.append((f"AP50 c{cid}", got_cls[f"c{cid}"]["ap50"], float(np.mean(p[0][p[0] > -1]))))
            checks.append((f"AP50-95 c{cid}", got_cls[f"c{cid}"]["ap50_95"], float(np.mean(p[p > -1]))))
        bad = 0
        for name, mine, theirs in checks:
            ok = abs(mine - theirs) < 5e-4
            bad += not ok
            print(f"{'ok ' if ok else 'BAD'} {name:24s} ramjet {mine:.6f} pycocotools {theirs:.6f} diff {mine - theirs:+.2e}")
        print(f"{len(checks) - bad} passed, {bad} failed")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
