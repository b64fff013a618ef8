#!/usr/bin/env python3
"""Tests for the scene generator, its file formats, the mAP code and (when torch is importable)
the training losses and the train/export decode agreement.

  python3 models/detector/test_detector.py        # unittest; torch tests skip without torch
"""

import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenes  # noqa: E402
import train  # noqa: E402  (imports torch lazily; the numpy parts work without it)

try:
    import torch
except ImportError:
    torch = None


def _digest(seed, index, size=640):
    img, boxes, classes = scenes.generate(seed, index, size)
    h = hashlib.sha256(img.tobytes())
    h.update(boxes.tobytes())
    h.update(classes.tobytes())
    return h.hexdigest()


class GeneratorTest(unittest.TestCase):
    def test_deterministic_per_seed_and_index(self):
        self.assertEqual(_digest(7, 3), _digest(7, 3))
        self.assertNotEqual(_digest(7, 3), _digest(7, 4))
        self.assertNotEqual(_digest(7, 3), _digest(8, 3))
        # the same in a fresh process (no state carried between calls)
        code = (f"import sys; sys.path.insert(0, {HERE!r}); import test_detector as t; "
                "print(t._digest(7, 3))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True).stdout.strip()
        self.assertEqual(out, _digest(7, 3))

    def test_order_independent(self):
        a = _digest(11, 5)
        for i in range(3):
            scenes.generate(11, i)
        self.assertEqual(a, _digest(11, 5))

    def test_labels_valid(self):
        counts, classes_seen, sizes = [], set(), []
        for size in (640, 320, (384, 640)):
            h, w = scenes._size_hw(size)
            for i in range(12 if size == 640 else 4):
                img, boxes, classes = scenes.generate(3, i, size)
                self.assertEqual(img.shape, (h, w, 3))
                self.assertEqual(img.dtype, np.uint8)
                self.assertEqual(boxes.shape, (len(classes), 4))
                self.assertLessEqual(len(classes), scenes.MAX_OBJECTS)
                self.assertTrue(np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 1] >= 0))
                self.assertTrue(np.all(boxes[:, 2] <= w) and np.all(boxes[:, 3] <= h))
                self.assertTrue(np.all(boxes[:, 2] > boxes[:, 0]))
                self.assertTrue(np.all(boxes[:, 3] > boxes[:, 1]))
                self.assertTrue(np.all((classes >= 0) & (classes < scenes.NUM_CLASSES)))
                if size == 640:
                    counts.append(len(classes))
                    classes_seen |= set(classes.tolist())
                    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
                    sizes += np.maximum(bw, bh).tolist()
        self.assertEqual(classes_seen, set(range(scenes.NUM_CLASSES)))
        self.assertGreater(max(counts), 5)
        self.assertLess(min(sizes), 16)  # small objects occur
        self.assertGreater(max(sizes), 120)  # and big ones

    def test_images_vary(self):
        means = [scenes.generate(4, i)[0].reshape(-1, 3).mean(0) for i in range(8)]
        self.assertGreater(np.std(np.array(means), 0).max(), 10)

    def _scene(self, objs, h=200, w=200):
        rng = np.random.default_rng(0)
        bg = np.full((h, w, 3), 0.5, np.float32)
        return scenes.render(rng, h, w, objs, background=bg)

    def _obj(self, cls, cx, cy, size, rot=0.0):
        o = scenes.sample_object(np.random.default_rng(cls), 200, 200, cls=cls)
        o.update(cx=cx, cy=cy, size=size, rot=rot, shade=0.0)
        return o

    def test_border_clipping_and_visibility(self):
        # a square crate centred on the left border: half of it inside the image
        o = self._obj(1, 0.0, 100.0, 80.0)
        _, boxes, vis = self._scene([o])
        self.assertIsNotNone(boxes[0])
        x1, y1, x2, y2 = boxes[0]
        self.assertEqual(x1, 0)
        self.assertAlmostEqual(vis[0], 0.5, delta=0.08)
        # the crate is 80 px on one side and 52..80 px on the other; half of it shows
        self.assertTrue(0.65 * 40 - 2 <= x2 - x1 <= 40 + 2, (x2 - x1))
        self.assertTrue(0.65 * 80 - 2 <= y2 - y1 <= 80 + 2, (y2 - y1))
        # fully outside: no box
        _, boxes, vis = self._scene([self._obj(1, -100.0, 100.0, 80.0)])
        self.assertIsNone(boxes[0])
        self.assertEqual(vis[0], 0.0)

    def test_occlusion(self):
        # a small tyre under a big crate (painted later) is hidden; on top it is visible
        small, big = self._obj(4, 100.0, 100.0, 30.0), self._obj(1, 100.0, 100.0, 120.0)
        _, boxes, vis = self._scene([small, big])
        self.assertLess(vis[0], 0.05)
        self.assertGreater(vis[1], 0.8)
        small, big = self._obj(4, 100.0, 100.0, 30.0), self._obj(1, 100.0, 100.0, 120.0)
        _, boxes, vis = self._scene([big, small])
        self.assertGreater(vis[1], 0.95)
        self.assertTrue(0.9 < vis[0] < 0.999, vis[0])  # the tyre covers a bit of the crate
        bx = boxes[1]
        self.assertAlmostEqual((bx[0] + bx[2]) / 2, 100, delta=1.5)
        self.assertAlmostEqual(bx[2] - bx[0], 30, delta=2)

    def test_box_is_tight_on_painted_pixels(self):
        o = self._obj(0, 90.0, 110.0, 60.0)  # balloon on a flat background
        img, boxes, _ = self._scene([o])
        changed = np.abs(img - 0.5).max(-1) > 0.02
        ys, xs = np.nonzero(changed)
        x1, y1, x2, y2 = boxes[0]
        self.assertLessEqual(abs(xs.min() - x1), 1)
        self.assertLessEqual(abs(xs.max() + 1 - x2), 1)
        self.assertLessEqual(abs(ys.min() - y1), 1)
        self.assertLessEqual(abs(ys.max() + 1 - y2), 1)


class FormatTest(unittest.TestCase):
    def test_png_roundtrip(self):
        img, _, _ = scenes.generate(1, 0, (96, 160))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "a.png")
            scenes.write_png(p, img)
            np.testing.assert_array_equal(scenes.read_png(p), img)
            try:
                from PIL import Image
            except ImportError:
                return
            np.testing.assert_array_equal(np.asarray(Image.open(p).convert("RGB")), img)

    def test_png_reader_rejects_garbage(self):
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "bad.png")
            with open(p, "wb") as f:
                f.write(b"not a png at all")
            with self.assertRaisesRegex(ValueError, "not a PNG"):
                scenes.read_png(p)

    def test_yolo_and_coco(self):
        h, w = 384, 640
        img, boxes, classes = scenes.generate(2, 1, (h, w))
        self.assertGreater(len(boxes), 0)
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "a.txt")
            with open(p, "w") as f:
                f.write(scenes.yolo_lines(boxes, classes, h, w))
            b2, c2 = scenes.read_yolo(p, h, w)
            np.testing.assert_allclose(b2, boxes, atol=1e-3)
            np.testing.assert_array_equal(c2, classes)
        coco = scenes.coco_dict([("a.png", boxes, classes)], h, w)
        self.assertEqual(len(coco["annotations"]), len(boxes))
        self.assertEqual(len(coco["categories"]), scenes.NUM_CLASSES)
        bb = coco["annotations"][0]["bbox"]
        np.testing.assert_allclose([bb[0], bb[1], bb[0] + bb[2], bb[1] + bb[3]], boxes[0])

    def test_cli(self):
        with tempfile.TemporaryDirectory() as d:
            r = subprocess.run([sys.executable, os.path.join(HERE, "scenes.py"), "--out", d,
                                "--count", "3", "--seed", "9", "--size", "128x192"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            names = sorted(os.listdir(os.path.join(d, "images")))
            self.assertEqual(names, ["9_000000.png", "9_000001.png", "9_000002.png"])
            img = scenes.read_png(os.path.join(d, "images", names[1]))
            ref, boxes, classes = scenes.generate(9, 1, (128, 192))
            np.testing.assert_array_equal(img, ref)
            b, c = scenes.read_yolo(os.path.join(d, "labels", "9_000001.txt"), 128, 192)
            np.testing.assert_allclose(b, boxes, atol=1e-3)
            with open(os.path.join(d, "annotations.json")) as f:
                self.assertEqual(len(json.load(f)["images"]), 3)
            with open(os.path.join(d, "data.yaml")) as f:
                y = f.read()
            self.assertIn("seed: 9", y)
            self.assertIn("5: pole", y)
            r = subprocess.run([sys.executable, os.path.join(HERE, "scenes.py"), "--out", d,
                                "--count", "1", "--seed", "1", "--size", "abc"],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("--size", r.stderr)


class MapTest(unittest.TestCase):
    def test_perfect_and_empty(self):
        gts = [(np.array([[10, 10, 50, 50], [60, 60, 90, 100]], np.float32), np.array([0, 3]))]
        dets = [(gts[0][0].copy(), np.array([0.9, 0.8]), np.array([0, 3]))]
        r = train.coco_map(dets, gts, 6)
        self.assertAlmostEqual(r["map50"], 1.0)
        self.assertAlmostEqual(r["map"], 1.0)
        self.assertEqual(set(r["per_class"]), {"balloon", "drone"})
        r = train.coco_map([(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))], gts, 6)
        self.assertEqual(r["map50"], 0.0)

    def test_iou_thresholds(self):
        # IoU 0.62: a hit at thresholds 0.50, 0.55, 0.60 only -> AP 0.3 over 0.50:0.95
        g = np.array([[0, 0, 100, 100]], np.float32)
        d = np.array([[0, 0, 100, 62]], np.float32)
        r = train.coco_map([(d, np.array([0.9]), np.array([1]))], [(g, np.array([1]))], 6)
        self.assertAlmostEqual(r["map50"], 1.0)
        self.assertAlmostEqual(r["map"], 0.3)

    def test_false_positive_ranked_first(self):
        g = np.array([[0, 0, 50, 50]], np.float32)
        d = np.array([[100, 100, 150, 150], [0, 0, 50, 50]], np.float32)
        r = train.coco_map([(d, np.array([0.9, 0.8]), np.array([2, 2]))], [(g, np.array([2]))], 6)
        self.assertAlmostEqual(r["map50"], 0.5)  # precision 1/2 at every recall level
        # a duplicate detection of a matched gt is a false positive
        d = np.array([[0, 0, 50, 50], [1, 1, 50, 50]], np.float32)
        r = train.coco_map([(d, np.array([0.9, 0.8]), np.array([2, 2]))], [(g, np.array([2]))], 6)
        self.assertAlmostEqual(r["map50"], 1.0)
        # wrong class is a miss
        r = train.coco_map([(g, np.array([0.9]), np.array([1]))], [(g, np.array([2]))], 6)
        self.assertEqual(r["map50"], 0.0)

    def test_matches_pycocotools_when_installed(self):
        try:
            import pycocotools  # noqa: F401
        except ImportError:
            self.skipTest("pycocotools not installed")
        rng = np.random.default_rng(0)
        gts, dets = [], []
        for i in range(20):
            _, b, c = scenes.generate(5, i, 320)
            gts.append((b, c))
            jit = b + rng.normal(0, 3, b.shape).astype(np.float32)
            jit = np.concatenate([np.minimum(jit[:, :2], jit[:, 2:]),
                                  np.maximum(jit[:, :2], jit[:, 2:])], 1)  # no inverted boxes
            extra = rng.uniform(0, 300, (3, 2))
            eb = np.concatenate([extra, extra + 30], 1).astype(np.float32)
            dets.append((np.concatenate([jit, eb]), rng.random(len(b) + 3),
                         np.concatenate([c, rng.integers(0, 6, 3)])))
        ours = train.coco_map(dets, gts, 6)
        ref = train.pycocotools_map(dets, gts, 320, 320)
        self.assertAlmostEqual(ours["map50"], ref["map50"], places=3)
        self.assertAlmostEqual(ours["map"], ref["map"], places=3)


@unittest.skipIf(torch is None, "torch not importable")
class TorchTest(unittest.TestCase):
    def test_raw_head_decode_matches_yolo_forward(self):
        sys.path.insert(0, os.path.dirname(HERE))
        from export import build_export_model
        torch.manual_seed(0)
        raw = train.build_model("n", 6, 256)
        train.init_head_biases(raw, imgsz=256)
        raw.eval()
        full = build_export_model(raw.state_dict(), "n", 6, 320)  # other size: buffers rebuilt
        x = torch.rand(2, 3, 320, 320)
        with torch.no_grad():
            boxes, scores = train.decode(raw(x), 6)
            y = full(x)
        cxcywh = torch.cat(((boxes[..., :2] + boxes[..., 2:]) / 2,
                            boxes[..., 2:] - boxes[..., :2]), -1)
        torch.testing.assert_close(y[:, :4].transpose(1, 2), cxcywh, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(y[:, 4:].transpose(1, 2), scores, atol=1e-5, rtol=1e-4)

    def test_dynamic_hw_grid_matches_buffers_at_any_size(self):
        sys.path.insert(0, os.path.dirname(HERE))
        from export import build_export_model
        torch.manual_seed(0)
        sd = train.build_model("n", 6, 256).state_dict()
        dyn = build_export_model(sd, "n", 6, 256, dynamic_hw=True)
        for size in (256, 320):  # 320: a size other than the one the model was built for
            fixed = build_export_model(sd, "n", 6, size)
            x = torch.rand(1, 3, size, size)
            with torch.no_grad():
                torch.testing.assert_close(dyn(x), fixed(x), atol=1e-4, rtol=1e-5)

    def test_assigner_gives_tiny_boxes_an_anchor(self):
        feats = [torch.zeros(1, 70, 160 // s, 160 // s) for s in (8, 16, 32)]
        anchors, strides = train.make_anchors(feats, (8, 16, 32), "cpu")
        A = anchors.shape[0]
        gt = torch.tensor([[[50.2, 50.2, 55.8, 55.8], [10.0, 20.0, 110.0, 100.0]]])
        pd_boxes = gt[0, :1].expand(A, 4)[None].clone()
        pd_scores = torch.full((1, A, 6), 0.5)
        lab, tb, ts, fg = train.tal_assign(pd_scores, pd_boxes, anchors * strides,
                                           torch.tensor([[2, 4]]), gt,
                                           torch.tensor([[True, True]]))
        self.assertTrue(fg.any())
        self.assertIn(2, lab[fg].tolist())  # the 5.6 px box got a positive
        self.assertIn(4, lab[fg].tolist())
        self.assertTrue(torch.all(ts[~fg] == 0))
        # a padded (masked) gt gets nothing
        lab, tb, ts, fg = train.tal_assign(pd_scores, pd_boxes, anchors * strides,
                                           torch.tensor([[2, 4]]), gt,
                                           torch.tensor([[False, False]]))
        self.assertFalse(fg.any())

    def test_loss_prefers_correct_predictions(self):
        torch.manual_seed(0)
        model = train.build_model("n", 6, 128)
        train.init_head_biases(model, imgsz=128)
        loss_fn = train.DetectionLoss(6)
        x = torch.rand(2, 3, 128, 128)
        gl = torch.tensor([[1, 3], [0, 0]])
        gb = torch.tensor([[[10.0, 10.0, 60.0, 50.0], [70.0, 64.0, 120.0, 120.0]],
                           [[30.0, 30.0, 90.0, 100.0], [0.0, 0.0, 0.0, 0.0]]])
        gm = torch.tensor([[True, True], [True, False]])
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        model.train()
        first = None
        for _ in range(25):
            loss, parts = loss_fn(model(x), gl, gb, gm)
            self.assertTrue(torch.isfinite(loss))
            first = float(loss) if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.assertLess(float(loss), 0.6 * first)

    def test_make_batch_flip_and_crop(self):
        cache = train.GpuCache(4, 128, torch.device("cpu"))
        imgs = np.zeros((2, 128, 128, 3), np.uint8)
        imgs[0, 20:40, 10:30] = 255
        labels = [np.array([[3, 10, 20, 30, 40]], np.float32), np.zeros((0, 5), np.float32)]
        cache.put([0, 1], imgs, labels)
        gen = torch.Generator().manual_seed(0)
        x, gl, gb, gm = train.make_batch(cache, torch.tensor([0, 0, 1]), 128, gen, flip_p=1.0)
        self.assertEqual(gb.shape[1], train.MAX_BOXES)  # fixed padding (make_batch never syncs)
        self.assertEqual(gm[0].sum().item(), 1)
        self.assertEqual(gl[0, 0].item(), 3)
        torch.testing.assert_close(gb[0, 0], torch.tensor([98.0, 20.0, 118.0, 40.0]))
        self.assertTrue(x[0, :, 30, 108].min() > 0.99 and x[0, :, 30, 20].max() < 0.01)
        self.assertFalse(gm[2].any())
        x, gl, gb, gm = train.make_batch(cache, torch.tensor([0] * 16), 64, gen, flip_p=0.0)
        self.assertEqual(tuple(x.shape), (16, 3, 64, 64))
        for b in range(16):  # kept boxes are inside the crop and mark the white square
            if gm[b, 0]:
                x1, y1, x2, y2 = gb[b, 0].round().long().tolist()
                self.assertTrue(0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64)
                self.assertGreater(x[b, 0, y1:y2, x1:x2].mean().item(), 0.99)


if __name__ == "__main__":
    unittest.main(verbosity=2)
