// FusedConv / PoolNhwc on the GPU against the CPU reference (FP32 and FP16, NCHW and NHWC,
// residual, each activation, grouped/depthwise, strided, padded), then whole zoo models built
// FP16 with ConvActivationFusion + NhwcLayout vs the CPU FP32 reference (cosine, max abs error).
// Zoo models are read from $RAMJET_ZOO_DIR or models/zoo (python3 models/zoo.py); missing ones
// are skipped. Every comparison prints a "[fused-conv-gpu]" line with its numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <tuple>

#include "backends/cpu/reference/interpreter.h"
#include "backends/cuda/cuda_ops.h"
#include "ops/fused_conv.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

class FusedConvGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::deviceAvailable()) GTEST_SKIP() << "no CUDA device";
    ASSERT_TRUE(registerCudaBackend().ok());
  }
};

Tensor randomFloat(std::vector<int64_t> dims, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

struct Spec {
  std::string act;
  bool nhwc, residual;
  int64_t c, m, group, k, stride, pad;
};

// One FusedConv node over inputs x (and z); NHWC specs hold channels-last operands.
void buildOne(Graph& g, const Spec& s, const std::vector<int64_t>& xd, const std::vector<int64_t>& zd) {
  auto input = [&](const std::string& n, const std::vector<int64_t>& d) {
    Value* v = g.addValue(n);
    v->type = TensorType{DataType::kFloat32, Shape::fromDims(d)};
    v->is_graph_input = true;
    g.inputs.push_back(v);
    return v;
  };
  auto cst = [&](const std::string& n, Tensor t) {
    Value* v = g.addValue(n);
    v->type = t.type();
    v->constant = std::make_shared<Tensor>(std::move(t));
    return v;
  };
  Value* x = input("x", xd);
  Tensor w = randomFloat({s.m, s.c / s.group, s.k, s.k}, 7, -0.5f, 0.5f);
  if (s.nhwc) w = ops::permuteTensor(w, {0, 2, 3, 1});
  std::vector<Value*> ins = {x, cst("w", w), cst("b", randomFloat({s.m}, 8))};
  if (s.residual) ins.push_back(input("z", zd));
  Value* y = g.addValue("y");
  Node* n = g.addNode("FusedConv", "fc", ins, {y});
  n->attrs["group"] = Attribute::fromInt(s.group);
  n->attrs["strides"] = Attribute::fromInts({s.stride, s.stride});
  n->attrs["pads"] = Attribute::fromInts({s.pad, s.pad, s.pad, s.pad});
  n->attrs["activation"] = Attribute::fromString(s.act);
  if (s.act == "clip") {
    n->attrs["alpha"] = Attribute::fromFloat(-0.5f);
    n->attrs["beta"] = Attribute::fromFloat(0.75f);
  }
  if (s.act == "leaky_relu") n->attrs["alpha"] = Attribute::fromFloat(0.1f);
  n->attrs["layout"] = Attribute::fromString(s.nhwc ? "NHWC" : "NCHW");
  y->is_graph_output = true;
  g.outputs.push_back(y);
}

// Builds spec `s` as one FusedConv on 2xHxW inputs (13x11 unless given) (seeded by `seed`), in FP32 and FP16 without
// graph passes, and checks every run (first, capture, replay) against the CPU reference. With
// `want_tactic`, the plan must have used that tactic.
void checkSpec(const Spec& s, int seed, const std::string& want_tactic = "", int64_t H = 13, int64_t W = 11) {
  const int64_t N = 2;
  const int64_t oh = (H + 2 * s.pad - s.k) / s.stride + 1, ow = (W + 2 * s.pad - s.k) / s.stride + 1;
  std::vector<int64_t> xd = s.nhwc ? std::vector<int64_t>{N, H, W, s.c} : std::vector<int64_t>{N, s.c, H, W};
  std::vector<int64_t> zd = s.nhwc ? std::vector<int64_t>{N, oh, ow, s.m} : std::vector<int64_t>{N, s.m, oh, ow};
  Graph g;
  buildOne(g, s, xd, zd);
  ASSERT_TRUE(g.inferShapes().ok());
  std::map<std::string, Tensor> feeds = {{"x", randomFloat(xd, 100 + seed)}};
  if (s.residual) feeds["z"] = randomFloat(zd, 200 + seed);
  auto want = reference::run(g, feeds);
  ASSERT_TRUE(want.ok()) << want.status().toString();
  for (Precision prec : {Precision::kFP32, Precision::kFP16}) {
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.precision = prec;
    opt.optimize = false;  // the node as written (NCHW stays NCHW)
    auto plan = build(g, opt);
    ASSERT_TRUE(plan.ok()) << plan.status().toString();
    std::string tactics;
    for (const auto& [name, count] : plan->report().tactics) tactics += name + " ";
    if (!want_tactic.empty()) {
      EXPECT_EQ(plan->report().tactics.count(want_tactic), 1u) << want_tactic << " not used: " << tactics;
    }
    auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(engine.ok()) << engine.status().toString();
    auto ctx = (*engine)->createContext().value();
    for (int rep = 0; rep < 3; ++rep) {  // first run, capture, replay
      auto got = ctx->infer(feeds);
      ASSERT_TRUE(got.ok()) << got.status().toString();
      const bool fp16 = prec == Precision::kFP16;
      CompareResult c = compareTensors((*got)[0], (*want)[0], fp16 ? 3e-2 : 5e-3, fp16 ? 5e-2 : 5e-3);
      if (rep == 2)
        std::printf("[fused-conv-gpu] %-12s %s %s res=%d C=%ld M=%ld g=%ld k=%ld s=%ld %s: %s  tactics: %s\n",
                    s.act.c_str(), s.nhwc ? "NHWC" : "NCHW", fp16 ? "fp16" : "fp32", s.residual, (long)s.c,
                    (long)s.m, (long)s.group, (long)s.k, (long)s.stride, c.mismatches ? "FAIL" : "PASS",
                    c.toString().c_str(), tactics.c_str());
      EXPECT_EQ(c.mismatches, 0) << s.act << " " << c.toString();
      EXPECT_GE(c.cosine, 0.999) << s.act << " " << c.toString();
    }
  }
}

TEST_F(FusedConvGpu, KernelsMatchReference) {
  const std::vector<Spec> specs = {
      {"relu", false, false, 16, 32, 1, 3, 1, 1},      {"relu", true, false, 16, 32, 1, 3, 1, 1},
      {"relu", true, true, 16, 32, 1, 3, 1, 1},        {"silu", true, true, 32, 32, 1, 1, 1, 0},
      {"silu", false, true, 32, 32, 1, 3, 2, 1},       {"hard_swish", true, false, 16, 16, 16, 3, 1, 1},
      {"hard_sigmoid", true, true, 16, 16, 1, 1, 1, 0}, {"sigmoid", true, false, 24, 8, 1, 3, 1, 1},
      {"leaky_relu", true, false, 8, 16, 1, 3, 2, 1},  {"clip", true, true, 16, 16, 1, 3, 1, 1},
      {"tanh", false, false, 8, 8, 1, 3, 1, 1},        {"gelu", true, false, 8, 16, 1, 1, 1, 0},
      {"mish", true, false, 8, 16, 1, 3, 1, 1},        {"none", true, true, 64, 64, 64, 5, 2, 2},
      {"relu", true, false, 3, 16, 1, 3, 2, 1},        {"silu", true, false, 96, 96, 96, 3, 1, 1},
      {"none", false, false, 12, 24, 3, 3, 1, 1},
  };
  for (size_t i = 0; i < specs.size(); ++i) checkSpec(specs[i], static_cast<int>(i));
}

// RAMJET_CONV_TACTIC=<tactic> for one scope (restored when an assertion returns early, so the
// tests after it choose by timing again).
struct ForceTactic {
  explicit ForceTactic(const char* t) { setenv("RAMJET_CONV_TACTIC", t, 1); }
  ~ForceTactic() { unsetenv("RAMJET_CONV_TACTIC"); }
};

// The project's depthwise kernels (NCHW: the 8-wide tile kernel for 3x3/5x5 "same" windows at
// stride 1/2, a generic one otherwise; NHWC: 16-byte channel vectors), forced with
// RAMJET_CONV_TACTIC=depthwise whatever the timing would choose.
TEST_F(FusedConvGpu, DepthwiseKernelsMatchReference) {
  const std::vector<Spec> specs = {
      {"relu", false, false, 24, 24, 24, 3, 1, 1},      {"hard_swish", false, true, 24, 24, 24, 5, 2, 2},
      {"silu", false, false, 13, 13, 13, 3, 2, 1},      {"none", false, false, 8, 8, 8, 7, 1, 3},
      {"relu", false, true, 16, 16, 16, 5, 1, 2},       {"relu", true, false, 24, 24, 24, 3, 1, 1},
      {"relu", false, false, 8, 8, 8, 3, 1, 0},         {"silu", false, true, 8, 8, 8, 3, 2, 0},
      {"hard_swish", true, true, 24, 24, 24, 5, 2, 2},  {"silu", true, false, 13, 13, 13, 3, 2, 1},
  };
  ForceTactic force("depthwise");
  for (size_t i = 0; i < specs.size(); ++i) checkSpec(specs[i], 300 + static_cast<int>(i), "cuda.fused_conv.depthwise");
  // Rows of 16/32/40 elements take the 8-wide tile kernel's 16-byte loads and stores (FP16 and
  // FP32); 24, 20 and the 13x11 specs above take partial tiles or unaligned rows (element loads).
  const std::vector<std::tuple<Spec, int64_t, int64_t>> wide = {
      {{"relu", false, false, 8, 8, 8, 3, 1, 1}, 16, 16},
      {{"hard_swish", false, true, 8, 8, 8, 3, 2, 1}, 17, 32},
      {{"silu", false, true, 6, 6, 6, 5, 1, 2}, 9, 40},
      {{"relu", false, false, 6, 6, 6, 5, 2, 2}, 12, 32},
      {{"none", false, false, 5, 5, 5, 3, 1, 1}, 7, 24},
      {{"clip", false, true, 4, 4, 4, 3, 2, 1}, 6, 20},
  };
  for (size_t i = 0; i < wide.size(); ++i) {
    const auto& [spec, h, w] = wide[i];
    checkSpec(spec, 400 + static_cast<int>(i), "cuda.fused_conv.depthwise", h, w);
  }
}

// The project's NCHW direct 3x3 kernel for few input channels (first layers), forced with
// RAMJET_CONV_TACTIC=direct: stride 2 and 1, rows of 4-wide stores and partial ones, output
// channels not a multiple of 16, residual, unpadded.
TEST_F(FusedConvGpu, DirectKernelMatchesReference) {
  const std::vector<std::tuple<Spec, int64_t, int64_t>> specs = {
      {{"hard_swish", false, false, 3, 16, 1, 3, 2, 1}, 32, 32},
      {{"silu", false, false, 3, 32, 1, 3, 2, 1}, 13, 11},
      {{"relu", false, true, 4, 20, 1, 3, 1, 1}, 12, 16},
      {{"none", false, false, 1, 8, 1, 3, 1, 0}, 9, 10},
      {{"clip", false, true, 8, 5, 1, 3, 2, 0}, 10, 21},
  };
  ForceTactic force("direct");
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& [spec, h, w] = specs[i];
    checkSpec(spec, 600 + static_cast<int>(i), "cuda.fused_conv.direct", h, w);
  }
}

TEST_F(FusedConvGpu, PoolNhwcMatchesReference) {
  for (const std::string mode : {"max", "average"}) {
    Graph g;
    Value* x = g.addValue("x");
    x->type = TensorType{DataType::kFloat32, Shape::fromDims({2, 9, 10, 24})};
    x->is_graph_input = true;
    g.inputs.push_back(x);
    Value* y = g.addValue("y");
    Node* n = g.addNode("PoolNhwc", "p", {x}, {y});
    n->attrs["mode"] = Attribute::fromString(mode);
    n->attrs["kernel_shape"] = Attribute::fromInts({3, 3});
    n->attrs["strides"] = Attribute::fromInts({2, 2});
    n->attrs["pads"] = Attribute::fromInts({1, 1, 1, 1});
    y->is_graph_output = true;
    g.outputs.push_back(y);
    ASSERT_TRUE(g.inferShapes().ok());
    std::map<std::string, Tensor> feeds = {{"x", randomFloat({2, 9, 10, 24}, 5)}};
    auto want = reference::run(g, feeds);
    ASSERT_TRUE(want.ok()) << want.status().toString();
    for (Precision prec : {Precision::kFP32, Precision::kFP16}) {
      BuildOptions opt;
      opt.device = DeviceKind::kCuda;
      opt.precision = prec;
      opt.optimize = false;
      auto plan = build(g, opt);
      ASSERT_TRUE(plan.ok()) << plan.status().toString();
      auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
      ASSERT_TRUE(engine.ok());
      auto got = (*engine)->createContext().value()->infer(feeds);
      ASSERT_TRUE(got.ok()) << got.status().toString();
      CompareResult c = compareTensors((*got)[0], (*want)[0], 1e-2, 1e-2);
      std::printf("[fused-conv-gpu] PoolNhwc %s %s: %s %s\n", mode.c_str(), prec == Precision::kFP16 ? "fp16" : "fp32",
                  c.mismatches ? "FAIL" : "PASS", c.toString().c_str());
      EXPECT_EQ(c.mismatches, 0) << c.toString();
    }
  }
}

std::string zooDir() {
  if (const char* d = std::getenv("RAMJET_ZOO_DIR")) return d;
  return std::string(RAMJET_SOURCE_DIR) + "/models/zoo";
}

// Whole models, FP16 with the default passes (NHWC on CUDA FP16) vs the CPU FP32 reference.
TEST_F(FusedConvGpu, ZooModelsFp16MatchReference) {
  int ran = 0;
  for (const std::string name : {"resnet50", "mobilenet_v3_large", "efficientnet_b0", "yolov8n"}) {
    const std::string path = zooDir() + "/" + name + ".onnx";
    if (!std::filesystem::exists(path)) {
      std::printf("[fused-conv-gpu] %s: SKIP (%s not present)\n", name.c_str(), path.c_str());
      continue;
    }
    auto g = importOnnx(path);
    ASSERT_TRUE(g.ok()) << g.status().toString();
    const Value* in = g->inputs[0];
    std::vector<int64_t> dims;
    for (const Dim& d : in->type.shape.dims) dims.push_back(d.known() ? d.value : 1);
    dims[0] = 2;
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.precision = Precision::kFP16;
    opt.profiles = {{in->name, dims, dims, dims}};
    auto plan = build(*g, opt);
    ASSERT_TRUE(plan.ok()) << name << ": " << plan.status().toString();
    std::string tactics;
    for (const auto& [t, count] : plan->report().tactics) tactics += t + "=" + std::to_string(count) + " ";
    auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(engine.ok()) << engine.status().toString();
    auto ctx = (*engine)->createContext().value();
    Tensor x = randomFloat(dims, 42, 0.f, 1.f);
    auto got = ctx->infer({{in->name, x}});
    ASSERT_TRUE(got.ok()) << got.status().toString();
    auto want = reference::run(*g, {{in->name, x}});
    ASSERT_TRUE(want.ok()) << want.status().toString();
    for (size_t i = 0; i < got->size(); ++i) {
      CompareResult c = compareTensors((*got)[i], (*want)[i], 1e30, 1e30);
      std::printf("[fused-conv-gpu] %s fp16+passes vs cpu fp32, output %zu: cosine %.6f max_abs %.4g (%s)\n",
                  name.c_str(), i, c.cosine, c.max_abs, c.toString().c_str());
      EXPECT_TRUE(c.shape_match) << name;
      EXPECT_GE(c.cosine, 0.995) << name << " output " << i;
    }
    std::printf("[fused-conv-gpu] %s: %zu -> %zu nodes after passes; tactics: %s\n", name.c_str(),
                plan->report().nodes_in, plan->report().nodes_after_passes, tactics.c_str());
    ++ran;
  }
  if (ran == 0) GTEST_SKIP() << "no zoo model under " << zooDir();
}

}  // namespace
