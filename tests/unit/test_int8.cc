// Reduced precision (issue #6) on the CPU backend: the FP16 overflow model, per-layer overrides,
// QConv/QGemm reference arithmetic, INT8 builds of tiny_cnn against the FP32 reference, the
// calibration cache reused across builds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "graph_builder.h"
#include "precision/calibrator.h"
#include "precision/int8_math.h"
#include "precision/lowering.h"
#include "ramjet/engine.h"

namespace {

using namespace ramjet;
using rjtest::Builder;
using rjtest::buildAndRun;

Tensor randomTensor(std::vector<int64_t> dims, float lo, float hi, uint32_t seed) {
  return rjtest::uniformTensor(std::move(dims), lo, hi, seed);
}

bool allFinite(const Tensor& t) {
  for (int64_t i = 0; i < t.numel(); ++i)
    if (!std::isfinite(t.getDouble(i))) return false;
  return true;
}

// x [4,64] * 50 -> MatMul with 40s: |activations| up to ~1.3e5 (> FP16's 65504) -> LayerNorm,
// and a ReduceSum over the same activations scaled back down.
std::shared_ptr<Graph> overflowModel() {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {4, 64});
  Tensor w(DataType::kFloat32, {64, 64});
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = 40.f;
  b.node("Mul", {x, b.constant("k", Tensor::scalar<float>(50.f))}, {"xs"});
  b.node("MatMul", {b.value("xs"), b.constant("W", w)}, {"big"});
  Tensor gam(DataType::kFloat32, {64}), bet(DataType::kFloat32, {64});
  for (int i = 0; i < 64; ++i) gam.data<float>()[i] = 1.f + 0.01f * i, bet.data<float>()[i] = 0.f;
  b.node("LayerNormalization", {b.value("big"), b.constant("g", gam), b.constant("b", bet)}, {"ln"},
         {{"axis", Attribute::fromInt(-1)}});
  b.node("ReduceSum", {b.value("big"), b.constant("ax", Tensor::fromVector<int64_t>({-1}, {1}))}, {"rs"},
         {{"keepdims", Attribute::fromInt(1)}});
  b.node("Mul", {b.value("rs"), b.constant("tiny", Tensor::scalar<float>(1e-6f))}, {"rs_small"});
  b.node("Add", {b.value("ln"), b.value("rs_small")}, {"y"});
  b.output("y");
  EXPECT_TRUE(b.g.inferShapes().ok());
  return b.owned;
}

TEST(PrecisionLowering, OverflowModelNaiveFp16Breaks) {
  auto g = overflowModel();
  std::map<std::string, Tensor> feeds{{"x", randomTensor({4, 64}, -1, 1, 7)}};
  auto ref = buildAndRun(*g, BuildOptions{}, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  ASSERT_TRUE(allFinite((*ref)[0]));
  // Naive FP16: every layer forced to half.
  BuildOptions naive;
  naive.precision = Precision::kFP16;
  naive.precision_overrides = {"MatMul:fp16", "LayerNormalization:fp16", "ReduceSum:fp16", "Mul:fp16", "Add:fp16"};
  auto bad = buildAndRun(*g, naive, feeds);
  ASSERT_TRUE(bad.ok()) << bad.status().message();
  EXPECT_FALSE(allFinite((*bad)[0])) << "the constructed model should overflow in naive FP16";
}

TEST(PrecisionLowering, OverflowModelStaysAccurateWithCalibratedRanges) {
  auto g = overflowModel();
  std::map<std::string, Tensor> feeds{{"x", randomTensor({4, 64}, -1, 1, 7)}};
  auto ref = buildAndRun(*g, BuildOptions{}, feeds);
  ASSERT_TRUE(ref.ok());
  BuildOptions opt;
  opt.precision = Precision::kFP16;
  // Calibration data held apart from the test input (another seed).
  auto calib = precision::makeRandomCalibrator(*g, 4, 99);
  opt.calibrator = calib.get();
  std::string report;
  auto got = buildAndRun(*g, opt, feeds, &report);
  ASSERT_TRUE(got.ok()) << got.status().message();
  ASSERT_TRUE(allFinite((*got)[0])) << report;
  CompareResult c = compareTensors((*got)[0], (*ref)[0], 1e-2, 1e-2);
  EXPECT_GT(c.cosine, 0.99999) << report;
  EXPECT_LT(c.max_abs, 2e-2) << report;
  EXPECT_NE(report.find("MatMul"), std::string::npos) << "the report should say why MatMul stayed FP32:\n" << report;
  // The LayerNormalization reads the 2e4-scale 'big': kept FP32 by its calibrated range.
  EXPECT_NE(report.find("LayerNormalization 'LayerNormalization_2': fp32 (calibrated |max| of 'big'"), std::string::npos)
      << report;
}

TEST(PrecisionLowering, OutOfRangeConstantKeepsItsConsumerFp32) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2, 32});
  b.node("Mul", {x, b.constant("k", Tensor::scalar<float>(1e5f))}, {"big"});
  b.node("ReduceMean", {b.value("big"), b.constant("ax", Tensor::fromVector<int64_t>({-1}, {1}))}, {"m"},
         {{"keepdims", Attribute::fromInt(1)}});
  b.node("Sub", {b.value("big"), b.value("m")}, {"y"});
  b.output("y");
  ASSERT_TRUE(b.g.inferShapes().ok());
  std::map<std::string, Tensor> feeds{{"x", randomTensor({2, 32}, -1, 1, 3)}};
  auto ref = buildAndRun(b.g, BuildOptions{}, feeds);
  ASSERT_TRUE(ref.ok());
  BuildOptions opt;
  opt.precision = Precision::kFP16;
  std::string report;
  auto got = buildAndRun(b.g, opt, feeds, &report);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_NE(report.find("outside the fp16 range"), std::string::npos) << report;
  // The Mul runs in FP32; its 1e5-scale output is then cast to FP16 for the rest (values up to
  // 1e5 still overflow there), so this checks only the decision, not end-to-end accuracy.
}

TEST(PrecisionLowering, OverridesAreValidated) {
  auto g = overflowModel();
  std::map<std::string, Tensor> feeds{{"x", randomTensor({4, 64}, -1, 1, 7)}};
  BuildOptions opt;
  opt.precision = Precision::kFP16;
  opt.precision_overrides = {"NoSuchLayer:fp32"};
  auto r = buildAndRun(*g, opt, feeds);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("matches no node name or op type"), std::string::npos) << r.status().message();
  opt.precision_overrides = {"MatMul:fp12"};
  r = buildAndRun(*g, opt, feeds);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("unknown precision 'fp12'"), std::string::npos) << r.status().message();
  opt.precision_overrides = {"MatMul"};
  r = buildAndRun(*g, opt, feeds);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("NAME_OR_OP:PRECISION"), std::string::npos);
  // A valid override is honoured and reported.
  opt.precision_overrides = {"MatMul:fp32", "LayerNormalization:fp32"};
  std::string report;
  r = buildAndRun(*g, opt, feeds, &report);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_NE(report.find("override 'MatMul:fp32'"), std::string::npos) << report;
}

TEST(PrecisionLowering, Bf16OnCpu) {
  auto g = overflowModel();  // BF16 has FP32's exponent range: no overflow
  std::map<std::string, Tensor> feeds{{"x", randomTensor({4, 64}, -1, 1, 7)}};
  auto ref = buildAndRun(*g, BuildOptions{}, feeds);
  BuildOptions opt;
  opt.precision = Precision::kBF16;
  std::string report;
  auto got = buildAndRun(*g, opt, feeds, &report);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_NE(report.find("bf16"), std::string::npos) << report;
  CompareResult c = compareTensors((*got)[0], (*ref)[0], 1e-1, 1e-1);
  EXPECT_GT(c.cosine, 0.999) << report;
}

// QConv's float output equals an FP32 convolution of the dequantized operands (exact int32
// accumulation, then one fma per element): only FP32 rounding separates them.
TEST(Int8Ops, QConvMatchesDequantizedFloatConv) {
  const int64_t N = 2, C = 8, H = 9, W = 7, K = 12, R = 3, S = 3;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> q(-128, 127), qw(-127, 127);
  Tensor xq(DataType::kInt8, {N, H, W, C}), wq(DataType::kInt8, {K, R, S, C});
  for (int64_t i = 0; i < xq.numel(); ++i) xq.data<int8_t>()[i] = static_cast<int8_t>(q(rng));
  for (int64_t i = 0; i < wq.numel(); ++i) wq.data<int8_t>()[i] = static_cast<int8_t>(qw(rng));
  const float sx = 0.02f;
  Tensor sw = randomTensor({K}, 0.001f, 0.01f, 9), bias = randomTensor({K}, -1, 1, 10), mul(DataType::kFloat32, {K});
  for (int64_t k = 0; k < K; ++k) mul.data<float>()[k] = sx * sw.data<float>()[k];
  Builder b;
  Value* x = b.input("xq", DataType::kInt8, {N, H, W, C});
  b.node("QConv", {x, b.constant("wq", wq), b.constant("bias", bias), b.constant("mul", mul)}, {"y"},
         {{"strides", Attribute::fromInts({2, 1})}, {"pads", Attribute::fromInts({1, 0, 1, 2})},
          {"out_nchw", Attribute::fromInt(1)}});
  b.output("y");
  auto got = rjtest::runGraph(b.g, {{"xq", xq}});
  ASSERT_TRUE(got.ok()) << got.status().message();
  // Float reference: NCHW conv of dequantized values.
  Builder f;
  Tensor xf(DataType::kFloat32, {N, C, H, W}), wf(DataType::kFloat32, {K, C, R, S});
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t w = 0; w < W; ++w)
          xf.data<float>()[((n * C + c) * H + h) * W + w] = xq.data<int8_t>()[((n * H + h) * W + w) * C + c] * sx;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t r = 0; r < R; ++r)
        for (int64_t s = 0; s < S; ++s)
          wf.data<float>()[((k * C + c) * R + r) * S + s] = wq.data<int8_t>()[((k * R + r) * S + s) * C + c] * sw.data<float>()[k];
  Value* xv = f.input("x", DataType::kFloat32, {N, C, H, W});
  f.node("Conv", {xv, f.constant("w", wf), f.constant("b", bias)}, {"y"},
         {{"strides", Attribute::fromInts({2, 1})}, {"pads", Attribute::fromInts({1, 0, 1, 2})}});
  f.output("y");
  auto ref = rjtest::runGraph(f.g, {{"x", xf}});
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  ASSERT_EQ((*got)[0].dims(), (*ref)[0].dims());
  CompareResult c = compareTensors((*got)[0], (*ref)[0], 1e-4, 1e-4);
  EXPECT_LT(c.max_abs, 1e-4);
  EXPECT_GT(c.cosine, 0.9999999);
}

TEST(Int8Ops, QuantizeRoundsHalfToEvenAndSaturates) {
  EXPECT_EQ(int8::quantizeInt8(2.5f, 1.f), 2);
  EXPECT_EQ(int8::quantizeInt8(3.5f, 1.f), 4);
  EXPECT_EQ(int8::quantizeInt8(-2.5f, 1.f), -2);
  EXPECT_EQ(int8::quantizeInt8(1000.f, 1.f), 127);
  EXPECT_EQ(int8::quantizeInt8(-1000.f, 1.f), -128);
  EXPECT_EQ(int8::quantizeInt8(NAN, 1.f), -128);
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {1, 3, 2, 2});
  b.node("Int8Quantize", {x}, {"q"}, {{"scale", Attribute::fromFloat(0.5f)}, {"nhwc", Attribute::fromInt(1)}});
  b.node("Int8Dequantize", {b.value("q")}, {"y"},
         {{"scale", Attribute::fromFloat(0.5f)}, {"nhwc", Attribute::fromInt(1)}, {"to", Attribute::fromInt(1)}});
  b.output("q");
  b.output("y");
  Tensor xin(DataType::kFloat32, {1, 3, 2, 2});
  for (int i = 0; i < 12; ++i) xin.data<float>()[i] = 0.25f * i - 1.f;
  auto r = rjtest::runGraph(b.g, {{"x", xin}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{1, 2, 2, 3}));
  // NHWC element (h=0,w=1,c=2) is NCHW element (c=2,h=0,w=1) = index 9: 0.25*9-1 = 1.25 -> 2.5 -> 2
  EXPECT_EQ((*r)[0].data<int8_t>()[1 * 3 + 2], 2);
  for (int i = 0; i < 12; ++i) EXPECT_NEAR((*r)[1].data<float>()[i], xin.data<float>()[i], 0.25f + 1e-6f);
}

TEST(Int8Build, TinyCnnInt8MatchesFp32AndReusesTheCache) {
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::map<std::string, Tensor> feeds{{"images", randomTensor({1, 3, 32, 32}, -1, 1, 21)}};
  auto ref = buildAndRun(*g, BuildOptions{}, feeds);
  ASSERT_TRUE(ref.ok());
  const std::string cache = std::string(RAMJET_BINARY_DIR) + "/int8_test_tiny.cache";
  std::remove(cache.c_str());
  BuildOptions opt;
  opt.precision = Precision::kINT8;
  opt.calibration_cache_path = cache;
  // Without any calibration source, INT8 refuses with a clear message.
  auto none = buildAndRun(*g, opt, feeds);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("needs activation ranges"), std::string::npos) << none.status().message();
  auto calib = precision::makeRandomCalibrator(*g, 8, 1234);
  opt.calibrator = calib.get();
  std::string report;
  auto got = buildAndRun(*g, opt, feeds, &report);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_NE(report.find("int8x1"), std::string::npos) << report;  // conv2 (+relu fused)
  CompareResult c = compareTensors((*got)[0], (*ref)[0], 1e-2, 1e-2);
  EXPECT_GT(c.cosine, 0.9999) << report;
  // Second build: the cache alone (no calibrator) gives the same engine outputs.
  BuildOptions again = opt;
  again.calibrator = nullptr;
  std::string report2;
  auto got2 = buildAndRun(*g, again, feeds, &report2);
  ASSERT_TRUE(got2.ok()) << got2.status().message();
  EXPECT_NE(report2.find("cache"), std::string::npos) << report2;
  CompareResult same = compareTensors((*got2)[0], (*got)[0], 0, 0);
  EXPECT_EQ(same.max_abs, 0.0);
  std::remove(cache.c_str());
}

}  // namespace

namespace {

// An explicitly quantized (QDQ) model as PyTorch's quantization tools export it: activation
// Q/DQ pairs with per-tensor scales, weights as DequantizeLinear of int8 constants with
// per-channel scales. The INT8 build needs no calibration and matches the FP32 reference (which
// runs the Q/DQ ops exactly) to within one output quantization step.
// The detector in INT8 with its FP32 remainder (stem, SPPF pools, head convolutions, decode)
// channels-last (what CUDA INT8 builds do) and channels-first: the int8 boundaries absorb the
// layout Transposes and both plans compute the same detections (the quantized layers see the
// same values; FP32 layers differ by summation order only).
TEST(Int8Build, DetectorNhwcRemainderMatchesNchw) {
  const std::string path = std::string(RAMJET_SOURCE_DIR) + "/models/detector/detector.onnx";
  auto g = importOnnx(path);
  ASSERT_TRUE(g.ok()) << g.status().message();
  std::map<std::string, Tensor> feeds{{"images", randomTensor({1, 3, 64, 64}, 0, 1, 5)}};
  BuildOptions opt;
  opt.precision = Precision::kINT8;
  opt.profiles = {ShapeProfile{"images", {1, 3, 64, 64}, {1, 3, 64, 64}, {1, 3, 64, 64}}};
  precision::CallbackCalibrator calib(
      [](size_t i, std::map<std::string, Tensor>* f) -> Result<bool> {
        if (i >= 2) return false;
        (*f)["images"] = randomTensor({1, 3, 64, 64}, 0, 1, 40 + static_cast<uint32_t>(i));
        return true;
      },
      2);
  opt.calibrator = &calib;
  opt.conv_layout = BuildOptions::ConvLayout::kNchw;
  auto nchw = buildAndRun(*g, opt, feeds);
  ASSERT_TRUE(nchw.ok()) << nchw.status().message();
  opt.conv_layout = BuildOptions::ConvLayout::kNhwc;
  opt.device = DeviceKind::kCpu;
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  // Channels-last FP32 layers with the layout Transposes folded into the int8 boundaries.
  const std::string& passes = plan->report().passes;
  const size_t after = passes.find("after INT8 lowering");
  ASSERT_NE(after, std::string::npos) << passes;
  const size_t line = passes.find("\nNhwcLayout", after);
  ASSERT_NE(line, std::string::npos) << passes;
  const std::string row = passes.substr(line + 1, passes.find('\n', line + 1) - line - 1);
  const long rewrites = std::strtol(row.substr(row.find_last_of(' ') + 1).c_str(), nullptr, 10);
  EXPECT_GE(rewrites, 8) << row;  // stem, pools, head convolutions, int8 boundaries
  auto nhwc = buildAndRun(*g, opt, feeds);
  ASSERT_TRUE(nhwc.ok()) << nhwc.status().message();
  ASSERT_EQ((*nhwc)[0].dims(), (*nchw)[0].dims());
  CompareResult c = compareTensors((*nhwc)[0], (*nchw)[0], 1e-3, 1e-3);
  std::printf("detector int8 NHWC vs NCHW remainder: max abs %g cosine %.9f mismatches %lld\n", c.max_abs, c.cosine,
              static_cast<long long>(c.mismatches));
  EXPECT_GT(c.cosine, 0.99999);
}

// A YOLOv8 C2f block: conv -> two channel Slices -> bottleneck (conv + residual Add of a slice)
// -> Concat of the slices and the bottleneck -> conv. The Slices and the Concat run on the int8
// NHWC tensors (one scale across them) instead of dequantize / float concat / quantize again;
// RAMJET_INT8_MOVES=0 gives the old lowering. Both stay close to FP32.
std::shared_ptr<Graph> c2fBlock(bool use_split) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2, 8, 10, 10});
  auto conv = [&](const char* name, Value* in, int64_t k, int64_t c, int64_t r, uint32_t seed) {
    b.node("Conv", {in, b.constant(std::string(name) + "_w", randomTensor({k, c, r, r}, -0.4f, 0.4f, seed)),
                    b.constant(std::string(name) + "_b", randomTensor({k}, -0.1f, 0.1f, seed + 1))},
           {std::string(name) + "_c"},
           {{"pads", Attribute::fromInts({r / 2, r / 2, r / 2, r / 2})}});
    b.node("Relu", {b.value(std::string(name) + "_c")}, {name});
    return b.value(name);
  };
  auto ints = [&](const char* name, std::vector<int64_t> v) {
    return b.constant(name, Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}));
  };
  Value* y1 = conv("cv1", x, 16, 8, 1, 10);
  if (use_split) {  // YOLOv8 exports use either form
    b.node("Split", {y1, ints("sizes", {8, 8})}, {"left", "right"}, {{"axis", Attribute::fromInt(1)}});
  } else {
    b.node("Slice", {y1, ints("s0", {0}), ints("e0", {8}), ints("a0", {1})}, {"left"});
    b.node("Slice", {y1, ints("s1", {8}), ints("e1", {16}), ints("a1", {1})}, {"right"});
  }
  Value* m1 = conv("m1", b.value("right"), 8, 8, 3, 20);
  b.node("Conv", {m1, b.constant("m2_w", randomTensor({8, 8, 3, 3}, -0.4f, 0.4f, 30)),
                  b.constant("m2_b", randomTensor({8}, -0.1f, 0.1f, 31))},
         {"m2"}, {{"pads", Attribute::fromInts({1, 1, 1, 1})}});
  b.node("Add", {b.value("right"), b.value("m2")}, {"res"});
  b.node("Concat", {b.value("left"), b.value("right"), b.value("res")}, {"cat"}, {{"axis", Attribute::fromInt(1)}});
  conv("cv2", b.value("cat"), 12, 24, 1, 40);
  b.output("cv2");
  EXPECT_TRUE(b.g.inferShapes().ok());
  return b.owned;
}

TEST(Int8Build, ConcatAndSliceRunOnInt8BetweenInt8Layers) {
  for (bool use_split : {false, true}) {
    SCOPED_TRACE(use_split ? "Split" : "two Slices");
    auto g = c2fBlock(use_split);
    std::map<std::string, Tensor> feeds{{"x", randomTensor({2, 8, 10, 10}, -1, 1, 3)}};
    auto ref = buildAndRun(*g, BuildOptions{}, feeds);
    ASSERT_TRUE(ref.ok()) << ref.status().message();
    BuildOptions opt;
    opt.precision = Precision::kINT8;
    precision::CallbackCalibrator calib(
        [](size_t i, std::map<std::string, Tensor>* f) -> Result<bool> {
          if (i >= 4) return false;
          (*f)["x"] = randomTensor({2, 8, 10, 10}, -1, 1, 60 + static_cast<uint32_t>(i));
          return true;
        },
        4);
    opt.calibrator = &calib;
    std::string moved, plain;
    auto with = buildAndRun(*g, opt, feeds, &moved);
    ASSERT_TRUE(with.ok()) << with.status().message();
    ::setenv("RAMJET_INT8_MOVES", "0", 1);
    auto without = buildAndRun(*g, opt, feeds, &plain);
    ::unsetenv("RAMJET_INT8_MOVES");
    ASSERT_TRUE(without.ok()) << without.status().message();
    // 4 INT8 layers; the Slices (or the Split) and the Concat on int8; only the input is quantized.
    EXPECT_NE(moved.find("int8x4"), std::string::npos) << moved;
    EXPECT_NE(moved.find(use_split ? "2 concat/slice/split on int8" : "3 concat/slice/split on int8"),
              std::string::npos)
        << moved;
    EXPECT_NE(moved.find(" 1 quantize"), std::string::npos) << moved;
    EXPECT_EQ(plain.find("on int8"), std::string::npos) << plain;
    EXPECT_NE(plain.find(" 3 quantize"), std::string::npos) << plain;  // x, the right slice, the concat
    CompareResult a = compareTensors((*with)[0], (*ref)[0], 1e-2, 1e-2);
    CompareResult b = compareTensors((*without)[0], (*ref)[0], 1e-2, 1e-2);
    std::printf("C2f block int8 vs fp32: cosine %.6f (int8 concat/slice) vs %.6f (float concat), max abs %g vs %g\n",
                a.cosine, b.cosine, a.max_abs, b.max_abs);
    EXPECT_GT(a.cosine, 0.999);
    EXPECT_GT(b.cosine, 0.999);
  }
}

TEST(Int8Build, QdqModelFusesWithoutCalibration) {
  const int64_t C = 8, K = 16;
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2, C, 10, 10});
  Tensor wq(DataType::kInt8, {K, C, 3, 3});
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> u(-127, 127);
  for (int64_t i = 0; i < wq.numel(); ++i) wq.data<int8_t>()[i] = static_cast<int8_t>(u(rng));
  for (int64_t k = 0; k < K; ++k) wq.data<int8_t>()[k * C * 9] = 127;  // symmetric per-channel: max maps to 127
  Tensor sw = randomTensor({K}, 0.001f, 0.004f, 4);
  auto scalar = [&](const char* n, float v) { return b.constant(n, Tensor::scalar<float>(v)); };
  auto zp = [&](const char* n) { return b.constant(n, Tensor::scalar<int8_t>(0)); };
  b.node("QuantizeLinear", {x, scalar("sx", 0.02f), zp("zx")}, {"xq"});
  b.node("DequantizeLinear", {b.value("xq"), scalar("sx2", 0.02f), zp("zx2")}, {"xd"});
  b.node("DequantizeLinear", {b.constant("wq", wq), b.constant("sw", sw), b.constant("zw", Tensor(DataType::kInt8, {K}))},
         {"w"}, {{"axis", Attribute::fromInt(0)}});
  b.node("Conv", {b.value("xd"), b.value("w"), b.constant("bias", randomTensor({K}, -0.2f, 0.2f, 5))}, {"c"},
         {{"pads", Attribute::fromInts({1, 1, 1, 1})}});
  b.node("Relu", {b.value("c")}, {"r"});
  b.node("QuantizeLinear", {b.value("r"), scalar("sy", 0.05f), zp("zy")}, {"rq"});
  b.node("DequantizeLinear", {b.value("rq"), scalar("sy2", 0.05f), zp("zy2")}, {"y"});
  b.output("y");
  ASSERT_TRUE(b.g.inferShapes().ok());
  std::map<std::string, Tensor> feeds{{"x", randomTensor({2, C, 10, 10}, -2, 2, 6)}};
  auto ref = buildAndRun(b.g, BuildOptions{}, feeds);
  ASSERT_TRUE(ref.ok()) << ref.status().message();
  BuildOptions opt;
  opt.precision = Precision::kINT8;
  std::string report;
  auto got = buildAndRun(b.g, opt, feeds, &report);
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_NE(report.find("int8x1"), std::string::npos) << report;
  EXPECT_NE(report.find("Q/DQ pairs"), std::string::npos) << report;
  const Tensor& g = (*got)[0];
  const Tensor& r = (*ref)[0];
  int64_t exact = 0;
  double worst = 0;
  for (int64_t i = 0; i < r.numel(); ++i) {
    double d = std::fabs(g.getDouble(i) - r.getDouble(i));
    worst = std::max(worst, d);
    exact += d == 0;
  }
  EXPECT_LE(worst, 0.05 + 1e-6) << report;                  // at most one output step
  EXPECT_GE(exact, r.numel() * 99 / 100) << exact << " of " << r.numel() << " exact\n" << report;
}

}  // namespace
