// GPU detection pipeline vs the CPU one (issue #8): the letterbox kernel against
// preprocessInto (max abs error), GPU decode + sort + NMS against decodeYolo + nms on the same
// raw outputs (same boxes within 1e-3, same order), and the Detector's GPU path against its CPU
// path on one CUDA engine. Every test skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <random>

#include <unistd.h>

#include "backends/cuda/cuda_ops.h"
#include "ramjet/engine.h"
#include "vision/detector.h"
#include "vision/gpu_pipeline.h"

using namespace ramjet;
using namespace ramjet::vision;

namespace {

class VisionGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::deviceAvailable()) GTEST_SKIP() << "no CUDA device";
  }
};

Image randomImage(int w, int h, uint32_t seed) {
  Image img(w, h);
  std::mt19937 rng(seed);
  // Smooth-ish content plus noise so bilinear taps matter.
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.at(x, y)[c] = uint8_t((x * (c + 1) + y * (3 - c) + rng() % 64) & 255);
  return img;
}

double maxAbsDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.dims(), b.dims());
  EXPECT_EQ(a.dtype(), b.dtype());
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.dtype() == DataType::kFloat16 ? float(a.data<Half>()[i]) : a.data<float>()[i];
    double y = b.dtype() == DataType::kFloat16 ? float(b.data<Half>()[i]) : b.data<float>()[i];
    m = std::max(m, std::fabs(x - y));
  }
  return m;
}

}  // namespace

TEST_F(VisionGpu, LetterboxMatchesCpu) {
  struct Case {
    int w, h, ow, oh;
    bool fp16, bgr, center, letterbox, norm;
  };
  const Case cases[] = {
      {640, 384, 640, 640, false, false, true, true, false},  {1280, 720, 640, 640, false, true, true, true, true},
      {37, 53, 320, 320, false, false, true, true, false},    {300, 900, 640, 480, true, false, true, true, false},
      {640, 640, 640, 640, true, true, false, true, true},    {1920, 1080, 512, 512, false, false, true, false, false},
      {17, 1000, 640, 640, false, false, false, true, false},
  };
  int k = 0;
  for (const Case& c : cases) {
    PreprocessOptions opt;
    opt.width = c.ow;
    opt.height = c.oh;
    opt.fp16 = c.fp16;
    opt.bgr = c.bgr;
    opt.center = c.center;
    opt.letterbox = c.letterbox;
    if (c.norm) opt.mean = {0.485f, 0.456f, 0.406f}, opt.std = {0.229f, 0.224f, 0.225f};
    Image a = randomImage(c.w, c.h, 11 + k), b = randomImage(c.h, c.w, 99 + k);  // a batch of two shapes
    ++k;
    auto got = gpuPreprocess({&a, &b}, opt);
    ASSERT_TRUE(got.ok()) << got.status().toString();
    Tensor want(opt.fp16 ? DataType::kFloat16 : DataType::kFloat32, {2, 3, opt.height, opt.width});
    ASSERT_TRUE(preprocessInto(a, opt, &want, 0, nullptr).ok());
    ASSERT_TRUE(preprocessInto(b, opt, &want, 1, nullptr).ok());
    double err = maxAbsDiff(*got, want);
    std::printf("[vision-gpu] letterbox %dx%d (+%dx%d) -> %dx%d %s%s%s%s: max abs error %.3g\n", c.w, c.h, c.h, c.w,
                c.ow, c.oh, c.fp16 ? "fp16" : "fp32", c.bgr ? " bgr" : "", c.center ? "" : " corner",
                c.letterbox ? "" : " stretch", err);
    EXPECT_LE(err, c.fp16 ? 2.5e-3 : 1e-5);  // fp16: one half ulp at 2.6 if a float differs by 1 ulp
  }
}

namespace {

// Raw outputs with clustered duplicates (so NMS suppresses), exact score ties (so the order of
// equal scores is checked) and a few non-finite values.
Tensor makeRaw(YoloFormat f, int n, int A, int C, bool fp16, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  std::vector<int64_t> dims = f == YoloFormat::kV8 ? std::vector<int64_t>{n, 4 + C, A}
                              : f == YoloFormat::kV5 ? std::vector<int64_t>{n, A, 5 + C}
                                                     : std::vector<int64_t>{n, A, 6};
  Tensor t(DataType::kFloat32, dims);
  float* p = t.data<float>();
  const int ch = int(dims[1] == A ? dims[2] : dims[1]);
  auto set = [&](int b, int a, int c, float v) {
    if (f == YoloFormat::kV8) p[(size_t(b) * ch + c) * A + a] = v;
    else p[(size_t(b) * A + a) * ch + c] = v;
  };
  for (int b = 0; b < n; ++b) {
    float cx = 0, cy = 0, w = 0, h = 0;
    int cls = 0;
    float base = 0;
    for (int a = 0; a < A; ++a) {
      if (a % 7 == 0) {  // a new object every 7 anchors; the next 6 jitter around it
        cx = u(rng) * 640, cy = u(rng) * 640, w = 8 + u(rng) * 200, h = 8 + u(rng) * 200;
        cls = int(rng() % (f == YoloFormat::kE2E ? 6 : C));
        base = u(rng) < 0.3f ? 0.3f + 0.7f * u(rng) : 0.2f * u(rng);
      }
      float j = (a % 7) * 0.04f;
      float box[4] = {cx + (u(rng) - 0.5f) * w * j, cy + (u(rng) - 0.5f) * h * j, w * (1 + (u(rng) - 0.5f) * j),
                      h * (1 + (u(rng) - 0.5f) * j)};
      // Quantized scores: many exact ties.
      float score = std::round((base * (1.f - 0.05f * (a % 7)) + 0.02f * u(rng)) * 64.f) / 64.f;
      if (f == YoloFormat::kE2E) {
        set(b, a, 0, box[0] - box[2] / 2), set(b, a, 1, box[1] - box[3] / 2);
        set(b, a, 2, box[0] + box[2] / 2), set(b, a, 3, box[1] + box[3] / 2);
        set(b, a, 4, score), set(b, a, 5, float(cls));
        continue;
      }
      for (int i = 0; i < 4; ++i) set(b, a, i, box[i]);
      int off = f == YoloFormat::kV8 ? 4 : 5;
      if (f == YoloFormat::kV5) set(b, a, 4, std::min(1.f, score + 0.1f));
      for (int c = 0; c < C; ++c) set(b, a, off + c, c == cls ? score : 0.15f * u(rng));
      if (a % 997 == 5) set(b, a, 0, NAN);  // a broken box must be dropped, not poison the sort
    }
  }
  if (!fp16) return t;
  Tensor h(DataType::kFloat16, dims);
  for (int64_t i = 0; i < t.numel(); ++i) h.data<Half>()[i] = Half(p[i]);
  return h;
}

std::vector<std::vector<Detection>> cpuDecodeNms(const Tensor& raw, YoloFormat f, const DecodeOptions& d,
                                                 const NmsOptions& nopt, const std::vector<Letterbox>* lbs) {
  DecodeOptions dd = d;
  dd.format = f;
  auto dec = decodeYolo(raw, "raw", dd);
  EXPECT_TRUE(dec.ok()) << dec.status().toString();
  std::vector<std::vector<Detection>> r;
  for (size_t i = 0; i < dec->per_image.size(); ++i) {
    std::vector<Detection> v;
    if (f == YoloFormat::kE2E) {
      v = dec->per_image[i];
      std::stable_sort(v.begin(), v.end(), [](const Detection& a, const Detection& b) { return a.score > b.score; });
      if (nopt.max_detections > 0 && v.size() > size_t(nopt.max_detections)) v.resize(nopt.max_detections);
    } else {
      v = nms(dec->per_image[i], nopt);
    }
    if (lbs)
      for (auto& x : v) (*lbs)[i].toFrame(&x.x1, &x.y1, &x.x2, &x.y2);
    r.push_back(v);
  }
  return r;
}

}  // namespace

TEST_F(VisionGpu, DecodeNmsMatchesCpu) {
  struct Case {
    YoloFormat f;
    int n, A, C;
    bool fp16, agnostic;
    float conf;
    int max_det;
    std::vector<int> classes;
    bool place;
  };
  const Case cases[] = {
      {YoloFormat::kV8, 1, 8400, 6, false, false, 0.25f, 300, {}, true},
      {YoloFormat::kV8, 3, 8400, 6, false, false, 0.001f, 300, {}, false},  // eval settings: thousands of candidates
      {YoloFormat::kV8, 2, 8400, 80, true, false, 0.25f, 300, {}, true},
      {YoloFormat::kV8, 2, 2100, 6, false, true, 0.1f, 20, {1, 3}, false},
      {YoloFormat::kV5, 2, 6300, 6, false, false, 0.25f, 300, {}, true},
      {YoloFormat::kV5, 1, 6300, 3, true, true, 0.05f, 100, {0}, false},
      {YoloFormat::kE2E, 2, 300, 6, false, false, 0.25f, 300, {}, true},
      {YoloFormat::kE2E, 1, 300, 6, false, false, 0.0f, 50, {2, 5}, false},
  };
  int k = 0;
  for (const Case& c : cases) {
    Tensor raw = makeRaw(c.f, c.n, c.A, c.C, c.fp16, 1234 + k++);
    DecodeOptions d;
    d.conf_threshold = c.conf;
    d.classes = c.classes;
    NmsOptions nopt;
    nopt.agnostic = c.agnostic;
    nopt.max_detections = c.max_det;
    std::vector<Letterbox> lbs;
    PreprocessOptions po;
    for (int i = 0; i < c.n; ++i) lbs.push_back(computeLetterbox(1280 - 100 * i, 720 + 50 * i, po));
    auto want = cpuDecodeNms(raw, c.f, d, nopt, c.place ? &lbs : nullptr);
    auto got = gpuDecodeNms(raw, c.f, d, nopt, c.place ? &lbs : nullptr);
    ASSERT_TRUE(got.ok()) << got.status().toString();
    ASSERT_EQ(got->size(), want.size());
    size_t total = 0;
    double max_err = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ((*got)[i].size(), want[i].size()) << "format " << yoloFormatName(c.f) << " image " << i;
      for (size_t j = 0; j < want[i].size(); ++j) {
        const Detection &g = (*got)[i][j], &w = want[i][j];
        EXPECT_EQ(g.cls, w.cls) << "image " << i << " box " << j;
        for (float e : {g.x1 - w.x1, g.y1 - w.y1, g.x2 - w.x2, g.y2 - w.y2, g.score - w.score})
          max_err = std::max(max_err, double(std::fabs(e)));
      }
      total += want[i].size();
    }
    std::printf("[vision-gpu] decode+nms %s n=%d A=%d C=%d %s%s conf %.3g: %zu boxes, same order, max abs error %.3g\n",
                yoloFormatName(c.f), c.n, c.A, c.C, c.fp16 ? "fp16" : "fp32", c.agnostic ? " agnostic" : "", c.conf,
                total, max_err);
    EXPECT_GT(total, 0u);
    EXPECT_LE(max_err, 1e-3);
  }
}

TEST_F(VisionGpu, DetectorGpuPathMatchesCpuPostprocessing) {
  const std::string src = std::string(RAMJET_SOURCE_DIR) + "/models/detector/detector.onnx";
  if (!std::filesystem::exists(src)) GTEST_SKIP() << "no " << src;
  ASSERT_TRUE(registerCudaBackend().ok());
  registerGpuPipeline();
  // A private copy: the first open builds and caches the plan, the second loads it.
  auto dir = std::filesystem::temp_directory_path() / ("rj_vision_gpu_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string model = (dir / "det.onnx").string();
  std::filesystem::copy_file(src, model, std::filesystem::copy_options::overwrite_existing);
  DetectorOptions o;
  o.device = DeviceKind::kCuda;
  o.cache_plan = true;
  o.max_batch = 2;
  auto gpu = Detector::open(model, o);
  ASSERT_TRUE(gpu.ok()) << gpu.status().toString();
  EXPECT_STREQ((*gpu)->pipelineName(), "gpu");
  o.gpu_pipeline = false;
  auto cpu = Detector::open(model, o);
  ASSERT_TRUE(cpu.ok()) << cpu.status().toString();
  EXPECT_STREQ((*cpu)->pipelineName(), "cpu");
  Image a = randomImage(1280, 720, 5), b = randomImage(500, 400, 6);
  // Paint a few solid shapes so the detector has something to find.
  for (Image* im : {&a, &b})
    for (int y = im->height / 4; y < im->height / 2; ++y)
      for (int x = im->width / 4; x < im->width / 2; ++x) im->at(x, y)[0] = 240, im->at(x, y)[1] = 120, im->at(x, y)[2] = 20;
  for (int n : {1, 2}) {
    std::vector<const Image*> frames = {&a, &b};
    frames.resize(n);
    StageTimes tg, tc;
    auto g = (*gpu)->detectBatch(frames, &tg);
    auto c = (*cpu)->detectBatch(frames, &tc);
    ASSERT_TRUE(g.ok()) << g.status().toString();
    ASSERT_TRUE(c.ok()) << c.status().toString();
    for (int i = 0; i < n; ++i) {
      size_t m = std::min((*g)[i].size(), (*c)[i].size());
      double err = 0;
      for (size_t j = 0; j < m; ++j)
        for (float e : {(*g)[i][j].x1 - (*c)[i][j].x1, (*g)[i][j].y2 - (*c)[i][j].y2, (*g)[i][j].score - (*c)[i][j].score})
          err = std::max(err, double(std::fabs(e)));
      std::printf("[vision-gpu] detector batch %d frame %d: gpu %zu boxes, cpu-post %zu boxes, max abs diff %.3g "
                  "(gpu pre %.3f infer %.3f post %.3f ms)\n",
                  n, i, (*g)[i].size(), (*c)[i].size(), err, tg.pre_ms, tg.infer_ms, tg.post_ms);
      // Same engine, same input bits (the letterbox matches exactly): identical boxes.
      EXPECT_EQ((*g)[i].size(), (*c)[i].size());
      EXPECT_LE(err, 1e-3);
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}
