// The CPU backend's fast kernels ("cpu.fast": FusedConv, MaxPool, Softmax in float32) against
// the reference interpreter on the same graphs: geometry (stride, padding, dilation, groups,
// 1x1), every activation, residual inputs, ceil-mode pooling, strided and contiguous softmax.
// Also the vectorized exp/sigmoid against double precision, and that engines pick the tactic.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "backends/cpu/fast_kernels.h"
#include "graph_builder.h"
#include "precision/calibrator.h"
#include "ramjet/engine.h"

namespace {

using namespace ramjet;
using rjtest::Builder;

Tensor randomTensor(std::vector<int64_t> dims, float lo, float hi, uint32_t seed) {
  return rjtest::uniformTensor(std::move(dims), lo, hi, seed);
}

// Builds g for the CPU (optimizer off: the node stays as written), checks which tactic the
// node got, runs it and compares with the reference interpreter.
void expectFastMatchesReference(Graph& g, const std::map<std::string, Tensor>& feeds, const std::string& what,
                                double rel_tol = 2e-6) {
  ASSERT_TRUE(g.inferShapes().ok()) << what;
  BuildOptions opt;
  opt.optimize = false;
  auto plan = build(g, opt);
  ASSERT_TRUE(plan.ok()) << what << ": " << plan.status().message();
  EXPECT_EQ(plan->report().tactics.count("cpu.fast"), 1u) << what << "\n" << plan->report().toString();
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok());
  auto got = (*engine)->createContext().value()->infer(feeds);
  ASSERT_TRUE(got.ok()) << what << ": " << got.status().message();
  auto want = reference::run(g, feeds);
  ASSERT_TRUE(want.ok()) << what << ": " << want.status().message();
  ASSERT_EQ(got->size(), want->size());
  for (size_t i = 0; i < got->size(); ++i) {
    const Tensor &a = (*got)[i], &b = (*want)[i];
    ASSERT_EQ(a.dims(), b.dims()) << what;
    double scale = 0, max_err = 0;
    for (int64_t k = 0; k < b.numel(); ++k) scale = std::max(scale, std::fabs(double(b.data<float>()[k])));
    for (int64_t k = 0; k < b.numel(); ++k)
      max_err = std::max(max_err, std::fabs(double(a.data<float>()[k]) - double(b.data<float>()[k])));
    EXPECT_LE(max_err, rel_tol * std::max(1.0, scale)) << what << ": max abs error " << max_err << " (scale " << scale << ")";
  }
}

struct ConvCase {
  int64_t n, c, h, w, m, k, stride, pad, dil, group;
  std::string act;
  bool bias, residual;
};

TEST(CpuFast, FusedConvMatchesReference) {
  const std::vector<ConvCase> cases = {
      {1, 3, 33, 31, 16, 3, 2, 1, 1, 1, "silu", true, false},      // a stem: odd sizes, stride 2
      {2, 16, 20, 20, 24, 3, 1, 1, 1, 1, "relu", true, true},     // residual
      {1, 32, 12, 12, 64, 1, 1, 0, 1, 1, "sigmoid", false, false},  // pointwise, no bias
      {1, 8, 15, 15, 8, 3, 1, 2, 2, 1, "leaky_relu", true, false},  // dilation
      {1, 16, 14, 14, 16, 3, 1, 1, 1, 16, "hard_swish", true, false},  // depthwise
      {1, 12, 9, 9, 18, 3, 2, 0, 1, 3, "clip", true, false},     // groups, no padding
      {1, 8, 10, 10, 8, 5, 1, 2, 1, 1, "tanh", true, false},     // 5x5, a scalar activation
      {1, 8, 7, 7, 4, 3, 1, 1, 1, 1, "none", true, true},
      {1, 4, 6, 6, 8, 3, 1, 1, 1, 1, "hard_sigmoid", true, false},
      {1, 4, 6, 6, 8, 1, 2, 0, 1, 1, "mish", true, false},       // strided 1x1 (not pointwise)
      {1, 4, 6, 6, 8, 3, 1, 1, 1, 1, "gelu", false, false},
      // Large enough for several k blocks (K = 288 > 256), column blocks (P = 2,304 > 2,048) and
      // threads; the windows are gathered while packing (gemmIm2col).
      {1, 32, 48, 48, 20, 3, 1, 1, 1, 1, "relu", true, true},
      {2, 24, 40, 37, 16, 3, 2, 1, 1, 1, "silu", true, false},  // stride 2, odd width, batch 2
      {1, 8, 30, 30, 2, 3, 1, 1, 1, 1, "none", true, false},    // 2 output channels: small-M path
  };
  uint32_t seed = 1;
  for (const auto& c : cases) {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {c.n, c.c, c.h, c.w});
    std::vector<Value*> ins = {x, b.constant("w", randomTensor({c.m, c.c / c.group, c.k, c.k}, -0.5f, 0.5f, seed++))};
    ins.push_back(c.bias ? b.constant("b", randomTensor({c.m}, -1, 1, seed++)) : nullptr);
    const int64_t oh = (c.h + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1;
    const int64_t ow = (c.w + 2 * c.pad - c.dil * (c.k - 1) - 1) / c.stride + 1;
    std::map<std::string, Tensor> feeds{{"x", randomTensor({c.n, c.c, c.h, c.w}, -2, 2, seed++)}};
    if (c.residual) {
      ins.push_back(b.input("z", DataType::kFloat32, {c.n, c.m, oh, ow}));
      feeds["z"] = randomTensor({c.n, c.m, oh, ow}, -1, 1, seed++);
    }
    std::map<std::string, Attribute> attrs{{"kernel_shape", Attribute::fromInts({c.k, c.k})},
                                           {"strides", Attribute::fromInts({c.stride, c.stride})},
                                           {"pads", Attribute::fromInts({c.pad, c.pad, c.pad, c.pad})},
                                           {"dilations", Attribute::fromInts({c.dil, c.dil})},
                                           {"group", Attribute::fromInt(c.group)},
                                           {"activation", Attribute::fromString(c.act)}};
    if (c.act == "clip") {
      attrs["alpha"] = Attribute::fromFloat(-0.5f);
      attrs["beta"] = Attribute::fromFloat(0.75f);
    }
    b.node("FusedConv", ins, {"y"}, attrs);
    b.output("y");
    expectFastMatchesReference(b.g, feeds, "FusedConv " + c.act + " k" + std::to_string(c.k) + " g" + std::to_string(c.group));
  }
}

TEST(CpuFast, MaxPoolMatchesReference) {
  struct P {
    int64_t k, s, pad, dil, ceil, h, w;
  };
  for (const P& p : {P{5, 1, 2, 1, 0, 20, 20}, P{3, 2, 1, 1, 0, 17, 16}, P{3, 2, 0, 1, 1, 16, 15},
                     P{2, 2, 0, 1, 0, 9, 9}, P{3, 1, 2, 2, 0, 11, 12}}) {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {2, 5, p.h, p.w});
    b.node("MaxPool", {x}, {"y"},
           {{"kernel_shape", Attribute::fromInts({p.k, p.k})}, {"strides", Attribute::fromInts({p.s, p.s})},
            {"pads", Attribute::fromInts({p.pad, p.pad, p.pad, p.pad})}, {"dilations", Attribute::fromInts({p.dil, p.dil})},
            {"ceil_mode", Attribute::fromInt(p.ceil)}});
    b.output("y");
    expectFastMatchesReference(b.g, {{"x", randomTensor({2, 5, p.h, p.w}, -3, 3, 7)}},
                               "MaxPool k" + std::to_string(p.k) + " s" + std::to_string(p.s), 0.0);
  }
}

TEST(CpuFast, SoftmaxMatchesReference) {
  struct S {
    std::vector<int64_t> dims;
    int64_t axis;
    int coerce;
  };
  for (const S& s : {S{{1, 16, 4, 700}, 1, 0}, S{{3, 7, 1001}, -1, 0}, S{{2, 5, 6}, 1, 1}, S{{4, 1}, 0, 0}}) {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, s.dims);
    b.node("Softmax", {x}, {"y"}, {{"axis", Attribute::fromInt(s.axis)}, {"coerce_2d", Attribute::fromInt(s.coerce)}});
    b.output("y");
    expectFastMatchesReference(b.g, {{"x", randomTensor(s.dims, -20, 20, 3)}}, "Softmax axis " + std::to_string(s.axis));
  }
  // A masked row (-inf entries, as attention masks write) gives exact zeros there.
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2, 6});
  b.node("Softmax", {x}, {"y"}, {{"axis", Attribute::fromInt(-1)}});
  b.output("y");
  Tensor masked = randomTensor({2, 6}, -2, 2, 9);
  masked.data<float>()[1] = -INFINITY;
  masked.data<float>()[8] = -INFINITY;
  expectFastMatchesReference(b.g, {{"x", masked}}, "Softmax with -inf");
  ASSERT_TRUE(b.g.inferShapes().ok());
  auto plan = build(b.g, BuildOptions{});
  ASSERT_TRUE(plan.ok());
  auto y = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size()).value()->createContext().value()->infer({{"x", masked}});
  ASSERT_TRUE(y.ok());
  EXPECT_EQ((*y)[0].data<float>()[1], 0.f);
  EXPECT_EQ((*y)[0].data<float>()[8], 0.f);
}

TEST(CpuFast, NearestResizeMatchesReferenceExactly) {
  struct R {
    std::string ct, nearest;
    std::vector<float> scales;
    std::vector<int64_t> sizes;
  };
  for (const R& r : {R{"asymmetric", "floor", {1, 1, 2, 2}, {}}, R{"half_pixel", "round_prefer_floor", {1, 1, 2, 2}, {}},
                     R{"half_pixel", "round_prefer_ceil", {1, 1, 1.5f, 1.5f}, {}},
                     R{"align_corners", "round_prefer_floor", {1, 1, 0.5f, 0.5f}, {}},
                     R{"pytorch_half_pixel", "ceil", {}, {2, 3, 13, 7}}, R{"asymmetric", "floor", {1, 1, 3, 1}, {}}}) {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {2, 3, 9, 10});
    Value* scales = r.scales.empty() ? nullptr
                                     : b.constant("scales", Tensor::fromVector<float>(r.scales, {4}));
    Value* sizes = r.sizes.empty() ? nullptr : b.constant("sizes", Tensor::fromVector<int64_t>(r.sizes, {4}));
    std::vector<Value*> ins = {x, nullptr, scales};
    if (sizes) ins.push_back(sizes);
    b.node("Resize", ins, {"y"},
           {{"mode", Attribute::fromString("nearest")}, {"coordinate_transformation_mode", Attribute::fromString(r.ct)},
            {"nearest_mode", Attribute::fromString(r.nearest)}});
    b.output("y");
    expectFastMatchesReference(b.g, {{"x", randomTensor({2, 3, 9, 10}, -3, 3, 5)}}, "Resize " + r.ct + " " + r.nearest, 0.0);
  }
}

TEST(CpuFast, VectorExpAndSigmoidAccuracy) {
  std::vector<float> x, y;
  for (float v = -87.f; v <= 88.f; v += 0.0137f) x.push_back(v);
  y = x;
  backend::cpufast::expInPlace(y.data(), static_cast<int64_t>(y.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = std::exp(double(x[i]));
    worst = std::max(worst, std::fabs(y[i] - want) / want);
  }
  EXPECT_LT(worst, 3e-7);
  y = x;
  backend::cpufast::sigmoidInPlace(y.data(), static_cast<int64_t>(y.size()));
  double worst_abs = 0;
  for (size_t i = 0; i < x.size(); ++i) worst_abs = std::max(worst_abs, std::fabs(y[i] - 1.0 / (1.0 + std::exp(-double(x[i])))));
  EXPECT_LT(worst_abs, 2e-7);
  // Outside the range: exp(-inf) and exp(-100) are exactly 0 (masked softmax), NaN stays NaN.
  float e[4] = {-INFINITY, -100.f, NAN, 0.f};
  backend::cpufast::expInPlace(e, 4);
  EXPECT_EQ(e[0], 0.f);
  EXPECT_EQ(e[1], 0.f);
  EXPECT_TRUE(std::isnan(e[2]));
  EXPECT_EQ(e[3], 1.f);
  // Far outside the clamp: finite, saturated.
  float big[4] = {-1e30f, -200.f, 200.f, 1e30f};
  backend::cpufast::sigmoidInPlace(big, 4);
  EXPECT_GE(big[0], 0.f);
  EXPECT_LT(big[0], 1e-30f);
  EXPECT_LT(big[1], 1e-30f);
  EXPECT_EQ(big[2], 1.f);
  EXPECT_EQ(big[3], 1.f);
}

// INT8 QConv: the fast kernel (chunked float GEMM) gives the reference's int32 accumulators,
// so whole INT8 engines are bit-identical with and without it. 128 channels x 3x3 = 1152
// products per output: more than one 1000-product chunk. Strides, padding, a residual add
// and int8 outputs feeding the next QConv are all exercised.
TEST(CpuFast, QConvIsBitIdenticalToTheReference) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2, 128, 12, 12});
  auto conv = [&](const char* in, const char* out, int64_t k, int64_t stride, uint32_t seed) {
    b.node("Conv", {b.value(in), b.constant(std::string("w_") + out, randomTensor({128, 128, k, k}, -0.05f, 0.05f, seed)),
                    b.constant(std::string("b_") + out, randomTensor({128}, -0.1f, 0.1f, seed + 100))},
           {out},
           {{"kernel_shape", Attribute::fromInts({k, k})}, {"strides", Attribute::fromInts({stride, stride})},
            {"pads", Attribute::fromInts({k / 2, k / 2, k / 2, k / 2})}});
  };
  (void)x;
  conv("x", "c1", 3, 1, 1);
  b.node("Relu", {b.value("c1")}, {"r1"});
  conv("r1", "c2", 3, 1, 2);
  b.node("Add", {b.value("c2"), b.value("r1")}, {"s2"});  // residual
  b.node("Relu", {b.value("s2")}, {"r2"});
  conv("r2", "c3", 1, 2, 3);
  b.output("c3");
  ASSERT_TRUE(b.g.inferShapes().ok());
  auto calib = precision::makeRandomCalibrator(b.g, 4, 11);
  BuildOptions opt;
  opt.precision = Precision::kINT8;
  opt.calibrator = calib.get();
  std::map<std::string, Tensor> feeds{{"x", randomTensor({2, 128, 12, 12}, -1, 1, 12)}};
  auto run = [&](bool reference, std::string* tactics) -> std::vector<Tensor> {
    if (reference) setenv("RAMJET_CPU_REFERENCE", "1", 1);
    auto plan = build(b.g, opt);
    unsetenv("RAMJET_CPU_REFERENCE");
    EXPECT_TRUE(plan.ok()) << plan.status().message();
    if (!plan.ok()) return {};
    *tactics = plan->report().toString();
    EXPECT_GE(plan->report().int8_layers.size(), 2u) << plan->report().precision;
    auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size()).value();
    return engine->createContext().value()->infer(feeds).value();
  };
  std::string t_fast, t_ref;
  auto fast = run(false, &t_fast), ref = run(true, &t_ref);
  EXPECT_NE(t_fast.find("cpu.fast"), std::string::npos) << t_fast;
  EXPECT_EQ(t_ref.find("cpu.fast"), std::string::npos) << t_ref;
  ASSERT_EQ(fast.size(), 1u);
  ASSERT_EQ(ref.size(), 1u);
  ASSERT_EQ(fast[0].dims(), ref[0].dims());
  EXPECT_EQ(std::memcmp(fast[0].raw(), ref[0].raw(), fast[0].nbytes()), 0) << "INT8 outputs differ";
}

TEST(CpuFast, ReferenceOnlyEnvironmentSwitch) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {1, 4, 8});
  b.node("Softmax", {x}, {"y"}, {{"axis", Attribute::fromInt(-1)}});
  b.output("y");
  ASSERT_TRUE(b.g.inferShapes().ok());
  setenv("RAMJET_CPU_REFERENCE", "1", 1);
  auto plan = build(b.g, BuildOptions{});
  unsetenv("RAMJET_CPU_REFERENCE");
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->report().tactics.count("cpu.fast"), 0u);
  EXPECT_EQ(plan->report().tactics.count("cpu.reference"), 1u);
}

}  // namespace
