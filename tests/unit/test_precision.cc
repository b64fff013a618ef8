// INT8 calibration machinery (src/precision): calibrators on synthetic distributions with known
// answers, weight scales, fake quantization, the calibration cache, data sources, simulated INT8
// on tiny_cnn, and `ramjet validate` / `ramjet calibrate` end to end.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "precision/calibrator.h"
#include "precision/fake_quant.h"
#include "precision/lowering.h"
#include "plan/plan_format.h"
#include "graph_builder.h"
#include "ramjet/engine.h"

#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace ramjet::precision {
namespace {

namespace fs = std::filesystem;

Histogram histOf(const std::vector<float>& v, int bins = 2048) {
  Histogram h(bins);
  h.add(v.data(), static_cast<int64_t>(v.size()));
  return h;
}

double thresholdOf(const std::vector<float>& v, CalibrationMethod m, double pct = 99.99) {
  ThresholdOptions o;
  o.method = m;
  o.percentile = pct;
  return computeThreshold(histOf(v), o);
}

// Mean squared error of symmetric INT8 quantization of the samples themselves at threshold t.
double sampleMse(const std::vector<float>& v, double t) {
  double s = t / 127, e = 0;
  for (float x : v) {
    double q = std::clamp(std::nearbyint(x / s), -127.0, 127.0) * s;
    e += (x - q) * (x - q);
  }
  return e / v.size();
}

std::string tmpDir(const std::string& name) {
  std::string d = (fs::temp_directory_path() / ("ramjet_prec_" + name + "_" + std::to_string(getpid()))).string();
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

Result<Graph> tinyCnn() { return importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx"); }

TEST(PrecisionHistogram, GrowsByDoublingAndKeepsCounts) {
  Histogram h(8);
  std::vector<float> a{0.1f, -0.5f, 0.9f}, b{3.5f, -0.2f};
  h.add(a.data(), 3);
  EXPECT_NEAR(h.range(), 0.9, 1e-6);
  h.add(b.data(), 2);
  EXPECT_NEAR(h.range(), 3.6, 1e-6);  // 0.9 -> 1.8 -> 3.6
  EXPECT_DOUBLE_EQ(h.absMax(), 3.5);
  EXPECT_DOUBLE_EQ(h.total(), 5);
  double sum = 0;
  for (double c : h.counts()) sum += c;
  EXPECT_DOUBLE_EQ(sum, 5);
  // Bin width 0.45: 0.1, 0.2 -> bin 0; 0.5 -> bin 1; 0.9 -> bin 2 (it was the first range's
  // top edge); 3.5 -> bin 7.
  EXPECT_EQ(h.counts()[0], 2);
  EXPECT_EQ(h.counts()[1], 2);
  EXPECT_EQ(h.counts()[7], 1);
}

TEST(PrecisionCalibrators, MinMaxIsMaxAbs) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.f, 2.f);
  std::vector<float> v(50000);
  for (float& x : v) x = n(rng);
  v[123] = -17.25f;
  EXPECT_FLOAT_EQ(thresholdOf(v, CalibrationMethod::kMinMax), 17.25f);
}

TEST(PrecisionCalibrators, PercentileOnUniform) {
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(1000000);
  for (float& x : v) x = u(rng);
  // |x| is uniform on [0, 1): the p-th percentile of |x| is p/100.
  EXPECT_NEAR(thresholdOf(v, CalibrationMethod::kPercentile, 99.9), 0.999, 1.5e-3);
  EXPECT_NEAR(thresholdOf(v, CalibrationMethod::kPercentile, 99.99), 0.9999, 1.0e-3);
  EXPECT_NEAR(thresholdOf(v, CalibrationMethod::kPercentile, 50.0), 0.5, 5e-3);
}

TEST(PrecisionCalibrators, EntropyClipsHeavyTailButNotUniform) {
  std::mt19937 rng(3);
  std::exponential_distribution<float> e(1.f);  // Laplace(0, 1): exponential tails
  std::vector<float> heavy(200000);
  for (float& x : heavy) x = (rng() & 1 ? 1.f : -1.f) * e(rng);
  double mx = thresholdOf(heavy, CalibrationMethod::kMinMax);
  double ent = thresholdOf(heavy, CalibrationMethod::kEntropy);
  EXPECT_GT(ent, 2.0);  // clips the tail, not the bulk
  EXPECT_LT(ent, 0.8 * mx) << "max " << mx;
  std::cout << "laplace: max " << mx << " entropy threshold " << ent << "\n";
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  std::vector<float> flat(200000);
  for (float& x : flat) x = u(rng);
  // Nothing to gain from clipping a uniform distribution: the threshold stays near its max.
  EXPECT_GT(thresholdOf(flat, CalibrationMethod::kEntropy), 0.9 * 3.0);
}

TEST(PrecisionCalibrators, MseOptimumMatchesBruteForce) {
  std::mt19937 rng(4);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> v(100000);
  for (float& x : v) x = n(rng);
  double t = thresholdOf(v, CalibrationMethod::kMse);
  double mx = thresholdOf(v, CalibrationMethod::kMinMax);
  // Brute force on the samples over a fine grid of thresholds.
  double best = 1e30, best_t = 0;
  for (double c = 0.5; c <= mx; c += 0.01) {
    double e = sampleMse(v, c);
    if (e < best) best = e, best_t = c;
  }
  EXPECT_LT(t, mx);  // a Gaussian's MSE optimum clips its extreme samples
  EXPECT_LE(sampleMse(v, t), 1.10 * best) << "chosen " << t << " brute force " << best_t;
  EXPECT_LT(sampleMse(v, t), sampleMse(v, mx));
}

TEST(PrecisionCalibrators, AllZeroTensorGivesZero) {
  std::vector<float> z(100, 0.f);
  for (auto m : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
                 CalibrationMethod::kMse})
    EXPECT_EQ(thresholdOf(z, m), 0.0) << calibrationMethodName(m);
}

TEST(PrecisionWeights, PerChannelScalesAndFakeQuant) {
  Tensor w = Tensor::fromVector<float>({1, -2, 0.5f, 0, 0, 0, 127, 1}, {4, 2});
  auto s0 = perChannelWeightScales(w, 0);
  ASSERT_TRUE(s0.ok()) << s0.status().toString();
  EXPECT_FLOAT_EQ((*s0)[0], 2.f / 127);
  EXPECT_FLOAT_EQ((*s0)[1], 0.5f / 127);
  EXPECT_GT((*s0)[2], 0.f);  // all-zero channel: tiny positive scale, no division by zero
  EXPECT_FLOAT_EQ((*s0)[3], 1.f);
  auto s1 = perChannelWeightScales(w, 1);
  ASSERT_TRUE(s1.ok());
  EXPECT_FLOAT_EQ((*s1)[0], 1.f);
  EXPECT_FLOAT_EQ((*s1)[1], 2.f / 127);
  auto q = fakeQuantizePerChannel(w, 0);
  ASSERT_TRUE(q.ok());
  const float* p = q->data<float>();
  EXPECT_FLOAT_EQ(p[1], -2.f);                    // the channel max is exact
  EXPECT_NEAR(p[0], 1.f, 2.f / 127 / 2 + 1e-6);  // within half a step
  EXPECT_FLOAT_EQ(p[6], 127.f);
  Tensor x = Tensor::fromVector<float>({0.26f, -5.f, 1.f}, {3});
  Tensor fx = fakeQuantize(x, 0.1f);
  EXPECT_NEAR(fx.data<float>()[0], 0.3f, 1e-6);  // round(2.6) = 3
  EXPECT_NEAR(fx.data<float>()[1], -5.f, 1e-6);
  Tensor big = fakeQuantize(Tensor::fromVector<float>({100.f}, {1}), 0.1f);
  EXPECT_NEAR(big.data<float>()[0], 12.7f, 1e-5);  // saturates at 127 steps
  EXPECT_FALSE(perChannelWeightScales(w, 2).ok());
  EXPECT_FALSE(perChannelWeightScales(Tensor::fromVector<int32_t>({1, 2}), 0).ok());
}

TEST(PrecisionCache, RoundTripAndStaleRejection) {
  std::string d = tmpDir("cache");
  CalibrationTable t;
  t.model_hash = "fnv1a64:0123456789abcdef";
  t.method = "entropy";
  t.num_batches = 3;
  t.amax = {{"conv1_out", 3.25f}, {"x", 0.1234567f}, {"weird name/with:chars", 1e-20f}};
  std::string path = d + "/c.cache";
  ASSERT_TRUE(saveCalibrationCache(path, t).ok());
  auto r = loadCalibrationCache(path, t.model_hash);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->amax, t.amax);  // bit exact
  EXPECT_EQ(r->method, "entropy");
  EXPECT_EQ(r->num_batches, 3u);
  EXPECT_FLOAT_EQ(r->scale("conv1_out"), 3.25f / 127);

  auto stale = loadCalibrationCache(path, "fnv1a64:ffffffffffffffff");
  ASSERT_FALSE(stale.ok());
  EXPECT_NE(stale.status().message().find("stale"), std::string::npos) << stale.status().message();
  EXPECT_NE(stale.status().message().find(path), std::string::npos);

  std::ofstream(d + "/v2.cache") << R"({"format":"ramjet-calibration","version":2,"model_hash":"x","tensors":{}})";
  auto v2 = loadCalibrationCache(d + "/v2.cache", "");
  ASSERT_FALSE(v2.ok());
  EXPECT_NE(v2.status().message().find("version 2"), std::string::npos) << v2.status().message();
  std::ofstream(d + "/junk.cache") << "{not json";
  EXPECT_FALSE(loadCalibrationCache(d + "/junk.cache", "").ok());
  std::ofstream(d + "/neg.cache") << R"({"format":"ramjet-calibration","version":1,"model_hash":"x","tensors":{"a":{"amax":-1}}})";
  auto neg = loadCalibrationCache(d + "/neg.cache", "");
  ASSERT_FALSE(neg.ok());
  EXPECT_NE(neg.status().message().find("'a'"), std::string::npos);
  EXPECT_EQ(loadCalibrationCache(d + "/missing.cache", "").status().code(), StatusCode::kNotFound);
  fs::remove_all(d);
}

TEST(PrecisionCache, GraphHashSeesWeights) {
  auto a = tinyCnn();
  auto b = tinyCnn();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(graphHash(*a), graphHash(*b));
  for (const auto& v : b->values())
    if (v->constant && v->constant->dtype() == DataType::kFloat32 && v->constant->numel() > 0) {
      auto t = std::make_shared<Tensor>(v->constant->clone());
      t->data<float>()[0] += 1.0f;
      v->constant = t;
      break;
    }
  EXPECT_NE(graphHash(*a), graphHash(*b));
}

TEST(PrecisionCalibrate, TinyCnnInt8SimIsClose) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok()) << g.status().toString();
  auto calib = makeRandomCalibrator(*g, 8, 100);
  CalibrationOptions opt;
  size_t progress_calls = 0;
  opt.progress = [&](size_t done, size_t total) {
    ++progress_calls;
    EXPECT_EQ(total, 8u);
    EXPECT_LE(done, total);
  };
  auto table = calibrate(*g, *calib, opt);
  ASSERT_TRUE(table.ok()) << table.status().toString();
  EXPECT_EQ(progress_calls, 8u);
  EXPECT_EQ(table->model_hash, graphHash(*g));
  // Every float node output and the input are calibrated.
  EXPECT_TRUE(table->amax.count(g->inputs[0]->name));
  for (const auto& n : g->nodes())
    for (Value* v : n->outputs)
      if (v && v->type.dtype == DataType::kFloat32) EXPECT_TRUE(table->amax.count(v->name)) << v->name;

  auto sim = tinyCnn();
  ASSERT_TRUE(sim.ok());
  auto rep = applyFakeQuant(*sim, *table);
  ASSERT_TRUE(rep.ok()) << rep.status().toString();
  EXPECT_GT(rep->weights, 0u);
  EXPECT_GT(rep->activations, 0u);
  EXPECT_TRUE(rep->not_calibrated.empty());

  // Held-apart inputs (another seed than calibration).
  auto data = makeRandomCalibrator(*g, 4, 7);
  std::map<std::string, Tensor> feeds;
  double worst_cos = 1;
  bool any_diff = false;
  while (*data->getBatch(&feeds)) {
    auto ref = reference::run(*g, feeds);
    auto got = reference::run(*sim, feeds);
    ASSERT_TRUE(ref.ok() && got.ok());
    CompareResult c = compareTensors((*got)[0], (*ref)[0], 0, 0);
    worst_cos = std::min(worst_cos, c.cosine);
    any_diff |= c.max_abs > 0;
  }
  EXPECT_GT(worst_cos, 0.99);
  EXPECT_TRUE(any_diff) << "simulated INT8 must actually change the numbers";

  // Coarse quantization (a deliberately tiny amax everywhere) must hurt: the test can fail.
  CalibrationTable bad = *table;
  for (auto& [k, a] : bad.amax) a *= 0.01f;
  auto sim2 = tinyCnn();
  ASSERT_TRUE(applyFakeQuant(*sim2, bad).ok());
  data->reset().ok();
  ASSERT_TRUE(*data->getBatch(&feeds));
  auto ref = reference::run(*g, feeds);
  auto got = reference::run(*sim2, feeds);
  ASSERT_TRUE(ref.ok() && got.ok());
  EXPECT_LT(compareTensors((*got)[0], (*ref)[0], 0, 0).cosine, 0.99);
}

TEST(PrecisionCalibrate, CallbackCalibratorAndErrors) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  const Value* in = g->inputs[0];
  std::vector<int64_t> dims;
  for (const auto& d : in->type.shape.dims) dims.push_back(d.known() ? d.value : 1);
  CallbackCalibrator cb(
      [&](size_t i, std::map<std::string, Tensor>* feeds) -> Result<bool> {
        if (i >= 3) return false;
        Tensor t(DataType::kFloat32, dims);
        for (int64_t k = 0; k < t.numel(); ++k) t.data<float>()[k] = static_cast<float>((k % 7) - 3) * (i + 1);
        (*feeds)[in->name] = t;
        return true;
      },
      3);
  CalibrationOptions opt;
  opt.threshold.method = CalibrationMethod::kMinMax;
  auto table = calibrate(*g, cb, opt);
  ASSERT_TRUE(table.ok()) << table.status().toString();
  EXPECT_EQ(table->num_batches, 3u);
  EXPECT_FLOAT_EQ(table->amax.at(in->name), 9.f);  // max |k%7-3| * 3

  CallbackCalibrator failing([](size_t, std::map<std::string, Tensor>*) -> Result<bool> {
    return Status(StatusCode::kIoError, "camera unplugged");
  });
  auto f = calibrate(*g, failing, opt);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("camera unplugged"), std::string::npos);
  CallbackCalibrator empty([](size_t, std::map<std::string, Tensor>*) -> Result<bool> { return false; });
  EXPECT_FALSE(calibrate(*g, empty, opt).ok());
  EXPECT_FALSE(parseCalibrationMethod("kl").ok());
}

TEST(PrecisionData, NpyFolderAndBadFiles) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  const Value* in = g->inputs[0];
  std::vector<int64_t> dims;
  for (const auto& d : in->type.shape.dims) dims.push_back(d.known() ? d.value : 1);
  std::string d = tmpDir("npy");
  Tensor t(DataType::kFloat32, dims);
  ASSERT_TRUE(writeNpy(d + "/a.npy", t).ok());
  std::vector<int64_t> no_batch(dims.begin() + 1, dims.end());  // leading batch dim added
  ASSERT_TRUE(writeNpy(d + "/b.npy", Tensor(DataType::kFloat32, no_batch)).ok());
  auto c = makeCalibratorForSpec(*g, d, ImagePreprocess{}, 0, 0);
  ASSERT_TRUE(c.ok()) << c.status().toString();
  EXPECT_EQ((*c)->numBatches(), 2u);
  std::map<std::string, Tensor> feeds;
  ASSERT_TRUE(*(*c)->getBatch(&feeds));
  ASSERT_TRUE(*(*c)->getBatch(&feeds));
  EXPECT_EQ(feeds.at(in->name).dims(), dims);
  EXPECT_FALSE(*(*c)->getBatch(&feeds));

  ASSERT_TRUE(writeNpy(d + "/c.npy", Tensor(DataType::kFloat32, {2, 2})).ok());
  auto c2 = makeNpyFolderCalibrator(*g, d);
  ASSERT_TRUE(c2.ok());
  *(*c2)->getBatch(&feeds);
  *(*c2)->getBatch(&feeds);
  auto bad = (*c2)->getBatch(&feeds);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("c.npy"), std::string::npos) << bad.status().message();

  auto missing = makeCalibratorForSpec(*g, d + "/nope", ImagePreprocess{}, 0, 0);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
  std::string e = tmpDir("empty");
  EXPECT_FALSE(makeCalibratorForSpec(*g, e, ImagePreprocess{}, 0, 0).ok());
  fs::remove_all(d);
  fs::remove_all(e);
}

TEST(PrecisionData, ImagePreprocessing) {
  std::string d = tmpDir("img");
  // 4x4 image, left half (R,G,B) = (255, 0, 51), right half = (0, 255, 102).
  std::vector<uint8_t> px(4 * 4 * 3);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) {
      uint8_t* p = &px[(y * 4 + x) * 3];
      if (x < 2) p[0] = 255, p[1] = 0, p[2] = 51;
      else p[0] = 0, p[1] = 255, p[2] = 102;
    }
  ASSERT_TRUE(stbi_write_png((d + "/a.png").c_str(), 4, 4, 3, px.data(), 12));
  ImagePreprocess pre;
  pre.height = 2, pre.width = 2;
  pre.mean = {0.5f, 0.f, 0.f};
  pre.std = {0.5f, 1.f, 2.f};
  auto t = loadImageTensor(d + "/a.png", pre);
  ASSERT_TRUE(t.ok()) << t.status().toString();
  ASSERT_EQ(t->dims(), (std::vector<int64_t>{1, 3, 2, 2}));
  const float* p = t->data<float>();
  // Downscale by 2: each output pixel lies between two source pixels of the same half.
  EXPECT_NEAR(p[0], 1.f, 1e-5);           // R left: (1 - 0.5) / 0.5
  EXPECT_NEAR(p[1], -1.f, 1e-5);          // R right: (0 - 0.5) / 0.5
  EXPECT_NEAR(p[4 + 1], 1.f, 1e-5);       // G right: 1 / 1
  EXPECT_NEAR(p[8], 0.2f / 2, 1e-5);      // B left: 51/255 / 2
  EXPECT_NEAR(p[8 + 3], 0.4f / 2, 1e-5);  // B right
  std::ofstream(d + "/broken.jpg") << "not really a jpeg";
  auto bad = loadImageTensor(d + "/broken.jpg", pre);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("broken.jpg"), std::string::npos);
  pre.std = {0.f, 1.f, 1.f};
  EXPECT_FALSE(loadImageTensor(d + "/a.png", pre).ok());
  fs::remove_all(d);
}

// ---- CLI end to end (the binary is built next to the tests) ----
std::string cli() { return std::string(RAMJET_BINARY_DIR) + "/bin/ramjet"; }

int runCli(const std::string& args, std::string* out) {
  std::string file = (fs::temp_directory_path() / ("ramjet_prec_out_" + std::to_string(getpid()) + ".txt")).string();
  int rc = std::system((cli() + " " + args + " > " + file + " 2>&1").c_str());
  std::ifstream f(file);
  out->assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  fs::remove(file);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(PrecisionCli, ValidateTinyCnn) {
  if (!fs::exists(cli())) GTEST_SKIP() << "build ramjet_cli first: " << cli();
  std::string model = std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx", out;
  ASSERT_EQ(runCli("validate --model " + model + " --precision fp32 --samples 4 --json", &out), 0) << out;
  auto j = nlohmann::json::parse(out.substr(out.find('{')));
  for (const auto& [name, m] : j["outputs"].items()) {
    EXPECT_GT(m["cosine"].get<double>(), 0.999999) << name;
    EXPECT_LT(m["max_abs"].get<double>(), 1e-4) << name;
  }
  ASSERT_EQ(runCli("validate --model " + model + " --precision int8-sim --samples 8 --json --per-layer", &out), 0) << out;
  j = nlohmann::json::parse(out.substr(out.find('{')));
  for (const auto& [name, m] : j["outputs"].items()) {
    EXPECT_GT(m["cosine"].get<double>(), 0.99) << name;
    EXPECT_GT(m["max_abs"].get<double>(), 0) << name;
  }
  EXPECT_GT(j["layers"].size(), 2u);

  std::string d = tmpDir("cli");
  ASSERT_EQ(runCli("calibrate --model " + model + " --data random --samples 4 -q -o " + d + "/c.cache", &out), 0) << out;
  ASSERT_EQ(runCli("validate --model " + model + " --precision int8-sim --calib-cache " + d +
                       "/c.cache --samples 2 --plot " + d + "/p.png",
                   &out),
            0)
      << out;
  EXPECT_TRUE(fs::exists(d + "/p.png"));
  // A cache from another model is rejected.
  std::ofstream(d + "/stale.cache") << R"({"format":"ramjet-calibration","version":1,"model_hash":"fnv1a64:0","tensors":{}})";
  EXPECT_EQ(runCli("validate --model " + model + " --precision int8-sim --calib-cache " + d + "/stale.cache", &out), 1);
  EXPECT_NE(out.find("stale"), std::string::npos) << out;
  EXPECT_EQ(runCli("validate --model " + model + " --inputs " + d + "/nothing_here", &out), 1);
  EXPECT_NE(out.find("nothing_here"), std::string::npos) << out;
  EXPECT_EQ(runCli("validate --model " + d + "/missing.onnx", &out), 1);
  EXPECT_NE(runCli("calibrate --model " + model + " --data random --method kl -o x", &out), 0);
  fs::remove_all(d);
}

}  // namespace
}  // namespace ramjet::precision

namespace ramjet::precision {
namespace {

// Verifies b's graph, infers shapes, lowers it to FP16 with `env` and checks the result still
// verifies. Returns the graph as it was before (for reference runs), null on any failure.
std::unique_ptr<Graph> lowerFp16(rjtest::Builder& b, const LoweringEnv& env, LoweringReport* rep) {
  if (!b.g.verify().ok() || !b.g.inferShapes().ok()) return nullptr;
  auto original = plan::cloneGraph(b.g);
  if (!original.ok()) return nullptr;
  BuildOptions opt;
  opt.precision = Precision::kFP16;
  auto r = lowerPrecision(b.g, **original, opt, env);
  EXPECT_TRUE(r.ok()) << r.status().toString();
  if (!r.ok() || !b.g.verify().ok()) return nullptr;
  *rep = *r;
  return std::move(*original);
}

// FP16 lowering on a device without FP16 Shape kernels (as CUDA): a Shape consumer reads the
// FP16 tensor's dims directly; no Cast is inserted for it.
TEST(PrecisionLowering, ShapeConsumersNeedNoCast) {
  rjtest::Builder b;
  b.input("x", TensorType{DataType::kFloat32, Shape::fromDims({2, 8})});
  b.node("Sigmoid", {b.value("x")}, {"r"});
  b.node("Shape", {b.value("r")}, {"s"});
  b.node("Sigmoid", {b.value("r")}, {"y"});
  b.output("y");
  b.output("s");
  LoweringEnv env;
  env.supports = [](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
    if (n.op_type == "Shape" && !in.empty() && in[0].dtype != DataType::kFloat32)
      return makeError(StatusCode::kUnsupported, "no fp16 Shape");
    return Status::Ok();
  };
  LoweringReport rep;
  ASSERT_TRUE(lowerFp16(b, env, &rep));
  size_t casts = 0;
  for (const auto& n : b.g.nodes()) {
    if (n->op_type != "Cast") continue;
    ++casts;
    for (const Node* c : n->outputs[0]->consumers) EXPECT_NE(c->op_type, "Shape") << n->name << " feeds a Shape";
  }
  EXPECT_EQ(casts, 2u) << rep.toString();  // the graph input to FP16 and the output back to FP32
  auto got = reference::run(b.g, {{"x", Tensor(DataType::kFloat32, {2, 8})}});
  ASSERT_TRUE(got.ok()) << got.status().toString();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[1].data<int64_t>()[0], 2);
  EXPECT_EQ((*got)[1].data<int64_t>()[1], 8);
}

// The FP32 graph input transposed to NHWC for FP16 consumers: the Cast runs before the
// Transpose (half the bytes moved), the result unchanged.
TEST(PrecisionLowering, NarrowingCastRunsBeforeTranspose) {
  rjtest::Builder b;
  b.input("x", TensorType{DataType::kFloat32, Shape::fromDims({2, 3, 4, 5})});
  b.node("Transpose", {b.value("x")}, {"t"}, {{"perm", Attribute::fromInts({0, 2, 3, 1})}});
  b.node("Sigmoid", {b.value("t")}, {"y"});
  b.output("y");
  LoweringReport rep;
  std::unique_ptr<Graph> original = lowerFp16(b, LoweringEnv{}, &rep);
  ASSERT_TRUE(original);
  const Value* x = b.g.findValue("x");
  ASSERT_EQ(x->consumers.size(), 1u);
  EXPECT_EQ(x->consumers[0]->op_type, "Cast");
  const Node* t = nullptr;
  for (const auto& n : b.g.nodes())
    if (n->op_type == "Transpose") t = n.get();
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->inputs[0]->type.dtype, DataType::kFloat16);
  EXPECT_EQ(t->attrInts("perm"), (std::vector<int64_t>{0, 2, 3, 1}));
  Tensor in = rjtest::uniformTensor({2, 3, 4, 5}, -3.f, 3.f, 5);
  auto got = reference::run(b.g, {{"x", in}});
  auto want = reference::run(*original, {{"x", in}});
  ASSERT_TRUE(got.ok() && want.ok());
  CompareResult c = compareTensors((*got)[0], (*want)[0], 2e-3, 2e-3);
  EXPECT_EQ(c.mismatches, 0) << c.toString();
}

// Reduced-precision I/O (BuildOptions::reduced_precision_io, `ramjet build --reduced-io`): the
// engine takes and returns FP16/BF16 tensors, no input Cast, and computes exactly what the
// FP32-I/O plan computes, rounded to the output type (tiny_cnn's Softmax stays FP32, so its
// output is now cast down); a layer kept in FP32 gets its Cast from the FP16 input; FP32 and INT8
// builds refuse the option.
TEST(PrecisionLowering, ReducedPrecisionIo) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok()) << g.status().toString();
  auto engineOf = [&](Precision p, bool reduced, std::vector<std::string> overrides = {}) {
    BuildOptions opt;
    opt.device = DeviceKind::kCpu;
    opt.precision = p;
    opt.reduced_precision_io = reduced;
    opt.precision_overrides = std::move(overrides);
    auto plan = build(*g, opt);
    EXPECT_TRUE(plan.ok()) << plan.status().toString();
    auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    EXPECT_TRUE(e.ok()) << e.status().toString();
    return std::move(*e);
  };
  Tensor x = rjtest::uniformTensor({1, 3, 32, 32}, -1.f, 1.f, 17);
  for (Precision p : {Precision::kFP16, Precision::kBF16}) {
    const DataType io = p == Precision::kFP16 ? DataType::kFloat16 : DataType::kBFloat16;
    auto base = engineOf(p, false);
    auto low = engineOf(p, true);
    ASSERT_EQ(low->inputs().size(), 1u);
    EXPECT_EQ(base->inputs()[0].dtype, DataType::kFloat32);
    EXPECT_EQ(low->inputs()[0].dtype, io);
    EXPECT_EQ(low->outputs()[0].dtype, io);
    auto want = base->createContext().value()->infer({{"images", x}});
    ASSERT_TRUE(want.ok()) << want.status().toString();
    auto ctx = low->createContext().value();
    auto got = ctx->infer({{"images", x.cast(io)}});
    ASSERT_TRUE(got.ok()) << got.status().toString();
    ASSERT_EQ((*got)[0].dtype(), io);
    // Exact, once the FP32-I/O answer is rounded like the output (Softmax stays FP32 in both).
    CompareResult c = compareTensors((*got)[0].cast(DataType::kFloat32), (*want)[0].cast(io).cast(DataType::kFloat32), 0, 0);
    EXPECT_EQ(c.mismatches, 0) << precisionName(p) << ": " << c.toString();
    // FP32 data for an FP16 input is refused with the reason.
    auto wrong = ctx->infer({{"images", x}});
    ASSERT_FALSE(wrong.ok());
    EXPECT_NE(wrong.status().message().find("must be"), std::string::npos) << wrong.status().toString();
  }
  // The first convolution kept in FP32: a Cast from the FP16 input feeds it; same answers as
  // the FP32-I/O plan with the same override.
  auto base = engineOf(Precision::kFP16, false, {"FusedConv:fp32"});
  auto low = engineOf(Precision::kFP16, true, {"FusedConv:fp32"});
  auto want = base->createContext().value()->infer({{"images", x}});
  auto got = low->createContext().value()->infer({{"images", x.cast(DataType::kFloat16)}});
  ASSERT_TRUE(want.ok() && got.ok());
  CompareResult c = compareTensors((*got)[0].cast(DataType::kFloat32),
                                   (*want)[0].cast(DataType::kFloat16).cast(DataType::kFloat32), 0, 0);
  EXPECT_EQ(c.mismatches, 0) << c.toString();
  for (Precision p : {Precision::kFP32, Precision::kINT8}) {
    BuildOptions opt;
    opt.device = DeviceKind::kCpu;
    opt.precision = p;
    opt.reduced_precision_io = true;
    auto plan = build(*g, opt);
    ASSERT_FALSE(plan.ok()) << precisionName(p);
    EXPECT_NE(plan.status().message().find("fp16 or bf16"), std::string::npos) << plan.status().toString();
  }
}

}  // namespace
}  // namespace ramjet::precision
