// src/vision: decoders on hand-built tensors, letterbox mapping, NMS vs brute force, mAP on
// hand-checkable cases, image errors, drawing and plotting.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "vision/decode.h"
#include "vision/draw.h"
#include "vision/image.h"
#include "vision/map.h"
#include "vision/nms.h"
#include "vision/pr_curve.h"
#include "vision/preprocess.h"

namespace ramjet::vision {
namespace {

std::string tmpPath(const std::string& name) { return ::testing::TempDir() + "/rj_vision_" + name; }

// ---- decoders ----

TEST(VisionDecode, DetectsFormatFromShape) {
  EXPECT_EQ(*detectYoloFormat({1, 84, 8400}, "o"), YoloFormat::kV8);
  EXPECT_EQ(*detectYoloFormat({1, 25200, 85}, "o"), YoloFormat::kV5);
  EXPECT_EQ(*detectYoloFormat({1, 300, 6}, "o"), YoloFormat::kE2E);
  EXPECT_EQ(*detectYoloFormat({2, 10, 8400}, "o"), YoloFormat::kV8);
  auto bad = detectYoloFormat({1, 1000}, "logits");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("logits"), std::string::npos);
  EXPECT_NE(bad.status().message().find("not a detector"), std::string::npos);
  EXPECT_FALSE(detectYoloFormat({1, 3, 4}, "o").ok());
  EXPECT_FALSE(detectYoloFormat({1, 0, 84}, "o").ok());
}

TEST(VisionDecode, V8KnownBoxes) {
  // 2 classes, 8 anchors (more anchors than channels, as in real outputs): [1, 6, 8].
  const int A = 8;
  std::vector<float> v(6 * A, 0.f);
  auto set = [&](int a, float cx, float cy, float w, float h, float s0, float s1) {
    v[0 * A + a] = cx, v[1 * A + a] = cy, v[2 * A + a] = w, v[3 * A + a] = h, v[4 * A + a] = s0, v[5 * A + a] = s1;
  };
  set(0, 100, 50, 20, 10, 0.9f, 0.1f);
  set(1, 200, 100, 40, 40, 0.2f, 0.7f);
  set(2, 10, 10, 4, 4, 0.1f, 0.2f);  // below threshold
  Tensor t = Tensor::fromVector(v, {1, 6, A});
  DecodeOptions o;
  o.conf_threshold = 0.25f;
  auto r = decodeYolo(t, "out", o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, YoloFormat::kV8);
  EXPECT_EQ(r->num_classes, 2);
  ASSERT_EQ(r->per_image[0].size(), 2u);
  const Detection& a = r->per_image[0][0];
  EXPECT_FLOAT_EQ(a.x1, 90);
  EXPECT_FLOAT_EQ(a.y1, 45);
  EXPECT_FLOAT_EQ(a.x2, 110);
  EXPECT_FLOAT_EQ(a.y2, 55);
  EXPECT_EQ(a.cls, 0);
  EXPECT_FLOAT_EQ(a.score, 0.9f);
  const Detection& b = r->per_image[0][1];
  EXPECT_EQ(b.cls, 1);
  EXPECT_FLOAT_EQ(b.x1, 180);
  EXPECT_FLOAT_EQ(b.y2, 120);
  // Class filter: only class 1 -> anchor 0 scores 0.1 for it and drops out.
  o.classes = {1};
  r = decodeYolo(t, "out", o);
  ASSERT_EQ(r->per_image[0].size(), 1u);
  EXPECT_EQ(r->per_image[0][0].cls, 1);
  // The same in FP16.
  Tensor h = t.cast(DataType::kFloat16);
  o.classes = {};
  auto rh = decodeYolo(h, "out", o);
  ASSERT_TRUE(rh.ok());
  ASSERT_EQ(rh->per_image[0].size(), 2u);
  EXPECT_NEAR(rh->per_image[0][1].x1, 180, 0.1);
}

TEST(VisionDecode, V5ObjectnessTimesClass) {
  // [1, 2, 5 + 3]
  std::vector<float> v = {50, 60, 10, 20, 0.8f, 0.1f, 0.5f, 0.2f,   // score 0.4, class 1
                          70, 80, 10, 10, 0.3f, 0.9f, 0.0f, 0.0f};  // score 0.27 < 0.3
  Tensor t = Tensor::fromVector(v, {1, 2, 8});
  DecodeOptions o;
  o.conf_threshold = 0.3f;
  auto r = decodeYolo(t, "out", o);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, YoloFormat::kV5);
  ASSERT_EQ(r->per_image[0].size(), 1u);
  const Detection& d = r->per_image[0][0];
  EXPECT_EQ(d.cls, 1);
  EXPECT_FLOAT_EQ(d.score, 0.4f);
  EXPECT_FLOAT_EQ(d.x1, 45);
  EXPECT_FLOAT_EQ(d.y1, 50);
  EXPECT_FLOAT_EQ(d.x2, 55);
  EXPECT_FLOAT_EQ(d.y2, 70);
}

TEST(VisionDecode, EndToEndAndBatch) {
  // [2, 7, 6]: image 0 has two boxes, image 1 one; the rest are padding with score 0.
  std::vector<float> v(2 * 7 * 6, 0.f);
  auto row = [&](int n, int k, std::array<float, 6> x) {
    for (int i = 0; i < 6; ++i) v[(n * 7 + k) * 6 + i] = x[i];
  };
  row(0, 0, {1, 2, 30, 40, 0.95f, 3});
  row(0, 1, {5, 5, 9, 9, 0.5f, 0});
  row(1, 0, {10, 20, 30, 40, 0.6f, 2});
  Tensor t = Tensor::fromVector(v, {2, 7, 6});
  auto r = decodeYolo(t, "out", DecodeOptions{});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->format, YoloFormat::kE2E);
  ASSERT_EQ(r->per_image.size(), 2u);
  ASSERT_EQ(r->per_image[0].size(), 2u);
  EXPECT_EQ(r->per_image[0][0].cls, 3);
  EXPECT_FLOAT_EQ(r->per_image[0][0].x2, 30);
  ASSERT_EQ(r->per_image[1].size(), 1u);
  EXPECT_EQ(r->per_image[1][0].cls, 2);
}

TEST(VisionDecode, RejectsNonDetectorOutputs) {
  Tensor logits(DataType::kFloat32, {1, 1000});
  auto r = decodeYolo(logits, "logits", DecodeOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'logits'"), std::string::npos);
  Tensor ints(DataType::kInt64, {1, 84, 100});
  EXPECT_FALSE(decodeYolo(ints, "x", DecodeOptions{}).ok());
  DecodeOptions o;
  o.format = YoloFormat::kE2E;
  Tensor v8(DataType::kFloat32, {1, 84, 100});
  auto e = decodeYolo(v8, "x", o);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("e2e"), std::string::npos);
  EXPECT_FALSE(parseYoloFormat("v7").ok());
}

// ---- letterbox ----

TEST(VisionPreprocess, LetterboxMapsBoxesBack) {
  PreprocessOptions o;
  o.width = o.height = 640;
  Letterbox lb = computeLetterbox(1280, 720, o);  // scale 0.5 -> 640x360, pad 140 top
  EXPECT_FLOAT_EQ(lb.scale_x, 0.5f);
  EXPECT_FLOAT_EQ(lb.pad_x, 0);
  EXPECT_FLOAT_EQ(lb.pad_y, 140);
  // A frame box (100, 200)-(300, 400) is (50, 240)-(150, 340) in the input.
  float x1 = 50, y1 = 240, x2 = 150, y2 = 340;
  lb.toFrame(&x1, &y1, &x2, &y2);
  EXPECT_NEAR(x1, 100, 1e-3);
  EXPECT_NEAR(y1, 200, 1e-3);
  EXPECT_NEAR(x2, 300, 1e-3);
  EXPECT_NEAR(y2, 400, 1e-3);
  // Clipped to the frame.
  x1 = -10, y1 = 0, x2 = 700, y2 = 639;
  lb.toFrame(&x1, &y1, &x2, &y2);
  EXPECT_EQ(x1, 0);
  EXPECT_EQ(y1, 0);
  EXPECT_EQ(x2, 1280);
  EXPECT_EQ(y2, 720);
}

TEST(VisionPreprocess, PixelsPaddingChannelsAndFp16) {
  // A 4x2 image: left half red, right half blue. Into an 8x8 input: scale 2, pad 2 rows top.
  Image img(4, 2);
  for (int y = 0; y < 2; ++y)
    for (int x = 0; x < 4; ++x) {
      uint8_t* p = img.at(x, y);
      p[0] = x < 2 ? 255 : 0;
      p[2] = x < 2 ? 0 : 255;
    }
  PreprocessOptions o;
  o.width = o.height = 8;
  Letterbox lb;
  auto t = preprocess(img, o, &lb);
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->dims(), (std::vector<int64_t>{1, 3, 8, 8}));
  EXPECT_FLOAT_EQ(lb.pad_y, 2);
  const float* d = t->data<float>();
  auto px = [&](int c, int y, int x) { return d[c * 64 + y * 8 + x]; };
  EXPECT_NEAR(px(0, 0, 0), 114 / 255.f, 1e-6);  // padding
  EXPECT_NEAR(px(0, 2, 0), 1.f, 1e-6);          // red on the left
  EXPECT_NEAR(px(2, 2, 0), 0.f, 1e-6);
  EXPECT_NEAR(px(2, 5, 7), 1.f, 1e-6);          // blue on the right
  EXPECT_NEAR(px(0, 7, 7), 114 / 255.f, 1e-6);
  // Bilinear: the middle columns blend.
  EXPECT_GT(px(0, 3, 3), 0.3f);
  EXPECT_LT(px(0, 3, 3), 1.0f);
  // BGR order + mean/std + FP16.
  o.bgr = true;
  o.fp16 = true;
  o.mean = {0.5f, 0.5f, 0.5f};
  o.std = {0.5f, 0.5f, 0.5f};
  auto h = preprocess(img, o, nullptr);
  ASSERT_TRUE(h.ok());
  ASSERT_EQ(h->dtype(), DataType::kFloat16);
  const Half* hd = h->data<Half>();
  EXPECT_NEAR(float(hd[0 * 64 + 2 * 8 + 0]), -1.f, 1e-3);  // channel 0 is blue now: 0 -> -1
  EXPECT_NEAR(float(hd[2 * 64 + 2 * 8 + 0]), 1.f, 1e-3);   // channel 2 is red: 255 -> 1
  o.std = {0, 1, 1};
  EXPECT_FALSE(preprocess(img, o, nullptr).ok());
  EXPECT_FALSE(preprocess(Image(), PreprocessOptions{}, nullptr).ok());
}

// ---- NMS vs brute force ----

// The definition, written the slow obvious way: repeatedly take the best remaining box and
// drop every remaining box of its class (or any class) overlapping it by more than the threshold.
std::vector<Detection> bruteNms(std::vector<Detection> b, float thr, bool agnostic, int max_det) {
  std::vector<Detection> out;
  std::vector<bool> gone(b.size(), false);
  while (true) {
    int best = -1;
    for (size_t i = 0; i < b.size(); ++i)
      if (!gone[i] && (best < 0 || b[i].score > b[best].score)) best = int(i);
    if (best < 0 || (max_det > 0 && int(out.size()) == max_det)) break;
    out.push_back(b[best]);
    gone[best] = true;
    for (size_t i = 0; i < b.size(); ++i) {
      if (gone[i] || (!agnostic && b[i].cls != b[best].cls)) continue;
      float iw = std::min(b[i].x2, b[best].x2) - std::max(b[i].x1, b[best].x1);
      float ih = std::min(b[i].y2, b[best].y2) - std::max(b[i].y1, b[best].y1);
      float inter = iw > 0 && ih > 0 ? iw * ih : 0;
      float u = (b[i].x2 - b[i].x1) * (b[i].y2 - b[i].y1) + (b[best].x2 - b[best].x1) * (b[best].y2 - b[best].y1) - inter;
      if (inter / u > thr) gone[i] = true;
    }
  }
  return out;
}

TEST(VisionNms, MatchesBruteForce) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pos(0, 200), size(5, 80), sc(0, 1);
  for (int trial = 0; trial < 60; ++trial) {
    std::vector<Detection> boxes;
    int n = 1 + trial * 5;
    for (int i = 0; i < n; ++i) {
      Detection d;
      d.x1 = pos(rng), d.y1 = pos(rng);
      d.x2 = d.x1 + size(rng), d.y2 = d.y1 + size(rng);
      d.score = sc(rng);  // distinct almost surely: the order is then unambiguous
      d.cls = int(rng() % 3);
      boxes.push_back(d);
    }
    for (bool agnostic : {false, true})
      for (float thr : {0.3f, 0.5f, 0.7f}) {
        NmsOptions o;
        o.iou_threshold = thr;
        o.agnostic = agnostic;
        o.max_detections = trial % 4 == 0 ? 5 : 300;
        auto got = nms(boxes, o);
        auto want = bruteNms(boxes, thr, agnostic, o.max_detections);
        ASSERT_EQ(got.size(), want.size()) << "trial " << trial << " agnostic " << agnostic << " thr " << thr;
        for (size_t i = 0; i < got.size(); ++i) {
          EXPECT_EQ(got[i].score, want[i].score);
          EXPECT_EQ(got[i].cls, want[i].cls);
        }
      }
  }
}

TEST(VisionNms, ClassAwareKeepsOverlapsOfOtherClasses) {
  std::vector<Detection> b = {{0, 0, 10, 10, 0.9f, 0}, {0, 0, 10, 10, 0.8f, 1}, {1, 1, 10, 10, 0.7f, 0}};
  EXPECT_EQ(nms(b, NmsOptions{}).size(), 2u);
  NmsOptions ag;
  ag.agnostic = true;
  EXPECT_EQ(nms(b, ag).size(), 1u);
  auto batched = batchedNms({b, {}, {b[2]}}, NmsOptions{});
  ASSERT_EQ(batched.size(), 3u);
  EXPECT_EQ(batched[0].size(), 2u);
  EXPECT_EQ(batched[1].size(), 0u);
  EXPECT_EQ(batched[2].size(), 1u);
}

// ---- mAP ----

TEST(VisionMap, PerfectAndHandComputedAp) {
  EvalImage im;
  im.truth = {{0, 0, 10, 10, 0}, {20, 20, 40, 40, 0}, {50, 50, 60, 60, 1}};
  im.detections = {{0, 0, 10, 10, 0.9f, 0}, {20, 20, 40, 40, 0.8f, 0}, {50, 50, 60, 60, 0.7f, 1}};
  auto r = evaluate({im});
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->map50, 1.0, 1e-12);
  EXPECT_NEAR(r->map50_95, 1.0, 1e-12);
  // Class 0: a false positive ranked first, then both hits: precision at recall 0.5 and 1 is
  // 2/3 after interpolation (the envelope), so AP50 = 2/3 (all 101 points are >= 0 recall).
  im.detections = {{100, 100, 110, 110, 0.95f, 0}, {0, 0, 10, 10, 0.9f, 0}, {20, 20, 40, 40, 0.8f, 0}};
  r = evaluate({im});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->classes.size(), 2u);
  EXPECT_NEAR(r->classes[0].ap50, 2.0 / 3.0, 1e-9);
  EXPECT_NEAR(r->classes[1].ap50, 0.0, 1e-12);  // class 1 has truth but no detection
  EXPECT_NEAR(r->map50, 1.0 / 3.0, 1e-9);
  // Only one of two found: recall stops at 0.5 -> 51 of 101 points have precision 1.
  im.detections = {{0, 0, 10, 10, 0.9f, 0}, {50, 50, 60, 60, 0.7f, 1}};
  r = evaluate({im});
  EXPECT_NEAR(r->classes[0].ap50, 51.0 / 101.0, 1e-9);
  // A box with IoU 0.6 counts at 0.5..0.6 (3 thresholds of 10) only.
  EvalImage j;
  j.truth = {{0, 0, 10, 10, 0}};
  j.detections = {{0, 0, 10, 6, 0.9f, 0}};
  r = evaluate({j});
  EXPECT_NEAR(r->classes[0].ap50_95, 0.3, 1e-9);
  EXPECT_FALSE(evaluate({EvalImage{}}).ok());
}

TEST(VisionMap, YoloLabelsAndErrors) {
  std::string dir = tmpPath("ds"), labels = tmpPath("ds_labels");
  std::filesystem::remove_all(dir);
  std::filesystem::remove_all(labels);
  std::filesystem::create_directories(dir);
  std::filesystem::create_directories(labels);
  ASSERT_TRUE(savePng(dir + "/a.png", Image(200, 100, 0)).ok());
  ASSERT_TRUE(savePng(dir + "/b.png", Image(200, 100, 0)).ok());
  std::ofstream(labels + "/a.txt") << "1 0.5 0.5 0.2 0.4\n";
  auto ds = loadYoloDataset(dir, labels);
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  ASSERT_EQ(ds->images.size(), 2u);
  ASSERT_EQ(ds->images[0].truth.size(), 1u);
  EXPECT_EQ(ds->images[0].truth[0].cls, 1);
  EXPECT_NEAR(ds->images[0].truth[0].x1, 80, 1e-4);
  EXPECT_NEAR(ds->images[0].truth[0].y2, 70, 1e-4);
  EXPECT_TRUE(ds->images[1].truth.empty());
  std::ofstream(labels + "/b.txt") << "0 0.5 oops 0.1 0.1\n";
  auto bad = loadYoloDataset(dir, labels);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("b.txt' line 1"), std::string::npos);
  EXPECT_FALSE(loadYoloDataset(dir + "/missing", labels).ok());
}

// ---- images ----

TEST(VisionImage, PngRoundTripAndCorruptFiles) {
  Image img(5, 3);
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = uint8_t(i * 7);
  std::string p = tmpPath("rt.png");
  ASSERT_TRUE(savePng(p, img).ok());
  auto back = loadImage(p);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->width, 5);
  EXPECT_EQ(back->height, 3);
  EXPECT_EQ(back->pixels, img.pixels);
  // Truncated PNG.
  auto bytes = encodePng(img);
  ASSERT_TRUE(bytes.ok());
  auto t = decodeImage(bytes->data(), bytes->size() / 2, "half.png");
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("half.png"), std::string::npos);
  // Not an image at all; an empty file; a JPEG signature followed by garbage; a missing file.
  std::string text = "hello, not an image";
  auto n = decodeImage(text.data(), text.size(), "notes.jpg");
  ASSERT_FALSE(n.ok());
  EXPECT_NE(n.status().message().find("not a JPEG, PNG or BMP"), std::string::npos);
  EXPECT_FALSE(decodeImage("", 0, "empty.png").ok());
  std::string jpg = "\xFF\xD8\xFF\xE0garbagegarbagegarbage";
  auto j = decodeImage(jpg.data(), jpg.size(), "bad.jpg");
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("corrupt JPEG"), std::string::npos);
  auto m = loadImage(tmpPath("does_not_exist.png"));
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), StatusCode::kNotFound);
}

TEST(VisionImage, RealJpegIfPresent) {
  const char* dog = "/usr/share/darknet/data/dog.jpg";
  if (!std::ifstream(dog)) GTEST_SKIP() << dog << " absent (Debian package darknet)";
  auto img = loadImage(dog);
  ASSERT_TRUE(img.ok()) << img.status().message();
  EXPECT_EQ(img->width, 768);
  EXPECT_EQ(img->height, 576);
}

// ---- drawing ----

TEST(VisionDraw, BoxesTextAndPlot) {
  Image img(160, 120, 0);
  drawDetections(&img, {{10, 60, 60, 100, 0.87f, 2}}, {"a", "b", "cone"}, DrawOptions{1, 1, 12.5});
  Rgb c = classColor(2);
  // Box edge in the class colour; label above it; FPS overlay top-left (white text on black).
  const uint8_t* edge = img.at(10, 80);
  EXPECT_EQ(edge[0], c[0]);
  EXPECT_EQ(edge[1], c[1]);
  EXPECT_EQ(edge[2], c[2]);
  EXPECT_EQ(img.at(35, 80)[0], 0);  // inside the box untouched
  int label_px = 0, white = 0;
  for (int y = 45; y < 60; ++y)
    for (int x = 10; x < 70; ++x) label_px += img.at(x, y)[0] == c[0] && img.at(x, y)[1] == c[1];
  for (int y = 4; y < 30; ++y)
    for (int x = 4; x < 60; ++x) white += img.at(x, y)[0] == 255 && img.at(x, y)[1] == 255 && img.at(x, y)[2] == 255;
  EXPECT_GT(label_px, 100);
  EXPECT_GT(white, 20);
  // Text width follows the font.
  EXPECT_EQ(textWidth("abc", 2), 36);
  Curve k{"class 0", {0, 0.5, 1}, {1, 0.8, 0.2}};
  auto plot = plotCurves({k});
  ASSERT_TRUE(plot.ok());
  EXPECT_EQ(plot->width, 900);
  Curve bad{"bad", {0, 1}, {1}};
  EXPECT_FALSE(plotCurves({bad}).ok());
}

}  // namespace
}  // namespace ramjet::vision
