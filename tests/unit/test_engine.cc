// build -> save -> load -> infer on the CPU backend, checked against the reference interpreter.
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "builder/conv_layout.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

std::string tmpPath(const std::string& name) {
  return "/tmp/ramjet_test_" + std::to_string(::getpid()) + "_" + name;
}

Tensor randomFloat(std::vector<int64_t> dims, uint32_t seed) {
  Tensor t(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

Result<Graph> tinyCnn() { return importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx"); }

// x[b,6] -> a = x + x -> r = Reshape(a, Shape(x)) (alias) -> y = r + c; plus s = Shape(x) as output.
Graph dynamicGraph() {
  Graph g;
  g.name = "dyn";
  Value* x = g.addValue("x");
  x->type = TensorType{DataType::kFloat32, Shape({Dim::symbolic("b"), Dim(6)})};
  x->is_graph_input = true;
  g.inputs.push_back(x);
  Value* c = g.addValue("c");
  c->constant = std::make_shared<Tensor>(randomFloat({6}, 7));
  c->type = c->constant->type();
  Value* a = g.addValue("a");
  Value* s = g.addValue("s");
  Value* r = g.addValue("r");
  Value* y = g.addValue("y");
  g.addNode("Add", "add0", {x, x}, {a});
  g.addNode("Shape", "shape0", {x}, {s});
  g.addNode("Reshape", "reshape0", {a, s}, {r});
  g.addNode("Add", "add1", {r, c}, {y});
  y->is_graph_output = true;
  s->is_graph_output = true;
  g.outputs = {y, s};
  Status st = g.inferShapes();
  EXPECT_TRUE(st.ok()) << st.toString();
  return g;
}

void expectSame(const std::vector<Tensor>& got, const std::vector<Tensor>& want, double atol = 1e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CompareResult c = compareTensors(got[i], want[i], atol, 1e-5);
    EXPECT_TRUE(c.shape_match && c.dtype_match) << "output " << i << ": " << c.toString();
    EXPECT_EQ(c.mismatches, 0) << "output " << i << ": " << c.toString();
  }
}

}  // namespace

TEST(Engine, TinyCnnRoundTripMatchesReferenceAcrossBatches) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok()) << g.status().toString();
  BuildOptions opt;
  opt.device = DeviceKind::kCpu;
  opt.profiles = {{"images", {1, 3, 32, 32}, {2, 3, 32, 32}, {4, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  const MemoryReport& m = plan->report().memory;
  EXPECT_GT(m.num_tensors, 0u);
  EXPECT_LE(m.arena_bytes, m.sum_tensor_bytes);
  EXPECT_GE(m.arena_bytes, m.peak_live_bytes);
  std::string path = tmpPath("tiny.plan");
  ASSERT_TRUE(plan->save(path).ok());
  auto engine = Engine::load(path);
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  EXPECT_EQ((*engine)->info().device, DeviceKind::kCpu);
  auto ctx = (*engine)->createContext();
  ASSERT_TRUE(ctx.ok());
  for (int64_t b : {1, 3, 4, 2}) {
    Tensor x = randomFloat({b, 3, 32, 32}, static_cast<uint32_t>(b));
    auto got = (*ctx)->infer({{"images", x}});
    ASSERT_TRUE(got.ok()) << got.status().toString();
    auto want = reference::run(*g, {{"images", x}});
    ASSERT_TRUE(want.ok());
    expectSame(*got, *want);
  }
  // Outside the profile: a clear error.
  auto bad = (*ctx)->infer({{"images", randomFloat({5, 3, 32, 32}, 1)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("profile"), std::string::npos) << bad.status().message();
  std::remove(path.c_str());
}

TEST(Engine, ContextsShareOneEngine) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.profiles = {{"images", {2, 3, 32, 32}, {2, 3, 32, 32}, {2, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  auto c1 = (*engine)->createContext();
  auto c2 = (*engine)->createContext();
  ASSERT_TRUE(c1.ok() && c2.ok());
  Tensor x1 = randomFloat({2, 3, 32, 32}, 11), x2 = randomFloat({2, 3, 32, 32}, 12);
  auto r1 = (*c1)->infer({{"images", x1}});
  auto r2 = (*c2)->infer({{"images", x2}});
  auto r1b = (*c1)->infer({{"images", x1}});
  ASSERT_TRUE(r1.ok() && r2.ok() && r1b.ok());
  expectSame(*r1, *reference::run(*g, {{"images", x1}}));
  expectSame(*r2, *reference::run(*g, {{"images", x2}}));
  expectSame(*r1b, *r1, 0);
}

TEST(Engine, EnqueueWithBoundAddressesAndErrors) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.profiles = {{"images", {1, 3, 32, 32}, {1, 3, 32, 32}, {3, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok());
  auto ctx = (*engine)->createContext().value();
  ASSERT_TRUE(ctx->setInputShape("images", {3, 3, 32, 32}).ok());
  auto oshape = ctx->tensorShape("probs");
  ASSERT_TRUE(oshape.ok()) << oshape.status().toString();
  EXPECT_EQ(*oshape, (std::vector<int64_t>{3, 10}));
  Tensor x = randomFloat({3, 3, 32, 32}, 5);
  Tensor y(DataType::kFloat32, *oshape);
  ASSERT_TRUE(ctx->setTensorAddress("images", x.raw()).ok());
  Status missing = ctx->enqueue(nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("probs"), std::string::npos) << missing.message();
  ASSERT_TRUE(ctx->setTensorAddress("probs", y.raw()).ok());
  ASSERT_TRUE(ctx->enqueue(nullptr).ok());
  expectSame({y}, *reference::run(*g, {{"images", x}}));

  EXPECT_FALSE(ctx->setTensorAddress("nope", y.raw()).ok());
  Status s = ctx->setInputShape("images", {3, 3, 31, 32});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("images"), std::string::npos);
  auto r = ctx->infer({});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("missing input 'images'"), std::string::npos) << r.status().message();
}

TEST(Engine, DynamicShapeArithmeticHostNodesAndAliases) {
  Graph g = dynamicGraph();
  BuildOptions opt;
  opt.optimize = false;  // the optimizer would drop the no-op Reshape this test needs
  opt.profiles = {{"x", {1, 6}, {2, 6}, {8, 6}}};
  auto plan = build(g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  EXPECT_EQ(plan->report().host_nodes, 1u);                // Shape runs on the host per signature
  EXPECT_EQ(plan->report().memory.num_aliases, 1u);        // Reshape shares its input's buffer
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  auto ctx = (*engine)->createContext().value();
  for (int64_t b : {1, 5, 8}) {
    Tensor x = randomFloat({b, 6}, 3);
    auto got = ctx->infer({{"x", x}});
    ASSERT_TRUE(got.ok()) << got.status().toString();
    expectSame(*got, *reference::run(g, {{"x", x}}));
  }
}

TEST(Engine, StaticBuildFoldsShapeArithmetic) {
  Graph g = dynamicGraph();
  BuildOptions opt;
  opt.profiles = {{"x", {3, 6}, {3, 6}, {3, 6}}};
  auto plan = build(g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  EXPECT_EQ(plan->report().host_nodes, 0u);
  EXPECT_GE(plan->report().nodes_folded, 1u);
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  Tensor x = randomFloat({3, 6}, 9);
  auto got = (*(*engine)->createContext())->infer({{"x", x}});
  ASSERT_TRUE(got.ok()) << got.status().toString();
  expectSame(*got, *reference::run(g, {{"x", x}}));
}

// y = x + float(range(width(x))): a profile that fixes the width but not the batch makes the
// Shape -> Gather -> Range subgraph constants (how a detector's anchor grid folds when it is
// built for one image size and many batch sizes); the batch stays dynamic.
TEST(Engine, ProfileFixingOneDimFoldsItsShapeArithmetic) {
  Graph g;
  Value* x = g.addValue("x");
  x->type = TensorType{DataType::kFloat32, Shape({Dim::symbolic("b"), Dim::symbolic("w")})};
  x->is_graph_input = true;
  g.inputs.push_back(x);
  auto constant = [&](const char* name, Tensor t) {
    Value* v = g.addValue(name);
    v->constant = std::make_shared<Tensor>(std::move(t));
    v->type = v->constant->type();
    return v;
  };
  Value* idx = constant("idx", Tensor::fromVector<int64_t>({1}, {}));
  Value* zero = constant("zero", Tensor::fromVector<int64_t>({0}, {}));
  Value* one = constant("one", Tensor::fromVector<int64_t>({1}, {}));
  Value *s = g.addValue("s"), *w = g.addValue("w"), *r = g.addValue("r"), *rf = g.addValue("rf"),
        *y = g.addValue("y");
  g.addNode("Shape", "shape", {x}, {s});
  g.addNode("Gather", "width", {s, idx}, {w});
  g.addNode("Range", "range", {zero, w, one}, {r});
  g.addNode("Cast", "cast", {r}, {rf})->attrs["to"] = Attribute::fromInt(1);
  g.addNode("Add", "add", {x, rf}, {y});
  y->is_graph_output = true;
  g.outputs = {y};
  ASSERT_TRUE(g.inferShapes().ok());

  BuildOptions opt;
  opt.profiles = {{"x", {1, 5}, {2, 5}, {4, 5}}};
  auto plan = build(g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  EXPECT_EQ(plan->report().host_nodes, 0u) << plan->report().toString();
  EXPECT_EQ(plan->report().nodes_out, 1u) << plan->report().toString();  // only the Add is left
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  auto ctx = (*engine)->createContext().value();
  for (int64_t b : {1, 3, 4}) {
    Tensor xt = randomFloat({b, 5}, 11);
    auto got = ctx->infer({{"x", xt}});
    ASSERT_TRUE(got.ok()) << got.status().toString();
    expectSame(*got, *reference::run(g, {{"x", xt}}));
  }
  Status bad = ctx->setInputShape("x", {2, 6});  // the width was fixed at build time
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("x"), std::string::npos) << bad.message();
}

// Symbolic H/W without a profile: the "imgsz" metadata YOLO exporters write gives the size
// (else symbolic dims default to 1).
TEST(Engine, ImageSizeMetadataGivesTheDefaultProfile) {
  for (const char* md : {"[32, 48]", "32", ""}) {
    Graph g;
    Value* x = g.addValue("x");
    x->type = TensorType{DataType::kFloat32,
                         Shape({Dim::symbolic("b"), Dim(3), Dim::symbolic("h"), Dim::symbolic("w")})};
    x->is_graph_input = true;
    g.inputs.push_back(x);
    Value* y = g.addValue("y");
    g.addNode("Relu", "relu", {x}, {y});
    y->is_graph_output = true;
    g.outputs = {y};
    if (*md) g.metadata["imgsz"] = md;
    ASSERT_TRUE(g.inferShapes().ok());
    auto plan = build(g, BuildOptions{});
    ASSERT_TRUE(plan.ok()) << plan.status().toString();
    auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(engine.ok());
    ASSERT_EQ((*engine)->info().profiles.size(), 1u);
    std::vector<int64_t> want = std::string(md) == "32" ? std::vector<int64_t>{1, 3, 32, 32}
                                : *md                   ? std::vector<int64_t>{1, 3, 32, 48}
                                                        : std::vector<int64_t>{1, 3, 1, 1};
    EXPECT_EQ((*engine)->info().profiles[0].max, want) << md;
  }
}

// Two optimization profiles (batch 1..4 and 8..32): one plan, a context switching between
// them (explicitly, by setInputShape on a single-input engine, by infer()), same results as the
// reference, clear errors for shapes no profile takes, a corrupted container refused.
TEST(Engine, MultiProfilePlanSwitchesProfiles) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.profiles = {{"images", {1, 3, 32, 32}, {2, 3, 32, 32}, {4, 3, 32, 32}}};
  opt.extra_profiles = {{{"images", {8, 3, 32, 32}, {16, 3, 32, 32}, {32, 3, 32, 32}}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  EXPECT_EQ(plan->report().optimization_profiles, 2u);
  const std::string path = ::testing::TempDir() + "/multi_profile.plan";
  ASSERT_TRUE(plan->save(path).ok());
  auto engine = Engine::load(path);
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  auto sets = (*engine)->optimizationProfiles();
  ASSERT_EQ(sets.size(), 2u);
  EXPECT_EQ(sets[1][0].max, (std::vector<int64_t>{32, 3, 32, 32}));
  auto ctx = (*engine)->createContext().value();
  for (int64_t b : {2, 16, 1, 32}) {  // infer() picks the profile
    Tensor x = randomFloat({b, 3, 32, 32}, 40 + static_cast<uint32_t>(b));
    auto got = ctx->infer({{"images", x}});
    ASSERT_TRUE(got.ok()) << b << ": " << got.status().toString();
    EXPECT_EQ(ctx->optimizationProfile(), b <= 4 ? 0 : 1);
    expectSame(*got, *reference::run(*g, {{"images", x}}));
  }
  // Explicit selection and the enqueue path: addresses survive the switch.
  Tensor x = randomFloat({8, 3, 32, 32}, 77);
  Tensor y(DataType::kFloat32, {8, 10});
  ASSERT_TRUE(ctx->setOptimizationProfile(0).ok());
  ASSERT_TRUE(ctx->setTensorAddress("images", x.raw()).ok());
  ASSERT_TRUE(ctx->setTensorAddress("probs", y.raw()).ok());
  ASSERT_TRUE(ctx->setOptimizationProfile(1).ok());
  ASSERT_TRUE(ctx->setInputShape("images", {8, 3, 32, 32}).ok());
  ASSERT_TRUE(ctx->enqueue(nullptr).ok());
  expectSame({y}, *reference::run(*g, {{"images", x}}));
  ASSERT_TRUE(ctx->setOptimizationProfile(0).ok());
  ASSERT_TRUE(ctx->setInputShape("images", {16, 3, 32, 32}).ok());  // one dynamic input: switches
  EXPECT_EQ(ctx->optimizationProfile(), 1);
  Status gap = ctx->setInputShape("images", {6, 3, 32, 32});
  ASSERT_FALSE(gap.ok());
  EXPECT_NE(gap.message().find("profile 1: [8,3,32,32]..[32,3,32,32]"), std::string::npos) << gap.message();
  auto none = ctx->infer({{"images", randomFloat({6, 3, 32, 32}, 1)}});
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no optimization profile accepts"), std::string::npos);
  Status bad = ctx->setOptimizationProfile(2);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("0..1"), std::string::npos) << bad.message();

  // Corruption of the container header, truncation, a single-profile engine's defaults.
  std::vector<uint8_t> bytes = plan->bytes();
  bytes[20] ^= 0x40;
  auto corrupt = Engine::loadFromMemory(bytes.data(), bytes.size());
  ASSERT_FALSE(corrupt.ok());
  EXPECT_NE(corrupt.status().message().find("checksum"), std::string::npos) << corrupt.status().message();
  auto cut = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size() - 100);
  ASSERT_FALSE(cut.ok());
  EXPECT_NE(cut.status().message().find("truncated"), std::string::npos) << cut.status().message();
  BuildOptions one;
  one.profiles = opt.profiles;
  auto single = Engine::loadFromMemory(build(*g, one)->bytes().data(), build(*g, one)->bytes().size());
  ASSERT_TRUE(single.ok());
  EXPECT_EQ((*single)->optimizationProfiles().size(), 1u);
  EXPECT_FALSE((*single)->createContext().value()->setOptimizationProfile(1).ok());
}

TEST(Engine, Fp16BuildOnCpuStaysClose) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.precision = Precision::kFP16;
  opt.profiles = {{"images", {2, 3, 32, 32}, {2, 3, 32, 32}, {2, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  EXPECT_LT(plan->report().weight_bytes, g->weightBytes() * 0.6);
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  EXPECT_EQ((*engine)->outputs()[0].dtype, DataType::kFloat32);
  Tensor x = randomFloat({2, 3, 32, 32}, 21);
  auto got = (*(*engine)->createContext())->infer({{"images", x}});
  ASSERT_TRUE(got.ok()) << got.status().toString();
  auto want = reference::run(*g, {{"images", x}});
  CompareResult c = compareTensors((*got)[0], (*want)[0], 2e-2, 2e-2);
  EXPECT_EQ(c.mismatches, 0) << c.toString();
  EXPECT_GT(c.cosine, 0.999) << c.toString();
}

TEST(Engine, BadProfilesAreRejected) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.profiles = {{"nope", {1}, {1}, {1}}};
  auto p = build(*g, opt);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("'nope'"), std::string::npos);
  opt.profiles = {{"images", {4, 3, 32, 32}, {2, 3, 32, 32}, {8, 3, 32, 32}}};
  p = build(*g, opt);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("min <= opt <= max"), std::string::npos) << p.status().message();
  opt.profiles = {{"images", {1, 3, 32, 32}, {1, 3, 32, 32}, {1, 4, 32, 32}}};
  p = build(*g, opt);
  ASSERT_FALSE(p.ok());
}

TEST(Engine, CudaBuildWithoutBackendFailsClearly) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  auto p = build(*g, opt);
  if (p.ok()) GTEST_SKIP() << "a CUDA backend is registered in this process";
  EXPECT_NE(p.status().message().find("cuda"), std::string::npos) << p.status().message();
}

// Builds are reproducible: the same graph and options give the same plan bytes (no wall-clock
// time in the plan unless SOURCE_DATE_EPOCH asks for one), and the optimizer's kill switch
// still gives a plan whose outputs match the reference.
// The conv-layout rule on GPU times measured on the H100 (2026-11-26, dynamic 1..64 FP16 builds,
// opt = 64, min = 1; docs/PERFORMANCE.md): NCHW ms at opt, NHWC at opt, NCHW at min, NHWC at min.
TEST(Engine, ConvLayoutRuleOnMeasuredTimes) {
  EXPECT_TRUE(builder::preferNhwc(6.265, 3.314, 0.843, 0.416));    // ResNet-50: NHWC wins both ends
  EXPECT_FALSE(builder::preferNhwc(3.678, 3.062, 0.454, 1.376));   // MobileNetV3: 3x worse at batch 1
  EXPECT_FALSE(builder::preferNhwc(5.109, 14.365, 0.729, 7.493));  // EfficientNet-B0: worse everywhere
  EXPECT_TRUE(builder::preferNhwc(14.502, 15.185, 1.174, 1.041));  // YOLOv8n: +4.7% at opt, -11% at min (geo-mean 0.964)
  EXPECT_FALSE(builder::preferNhwc(1.0, 0.98, 1.0, 0.98));         // within the 3% margin: keep NCHW
  EXPECT_TRUE(builder::preferNhwc(1.0, 0.95, 1.0, 0.95));          // static profile (opt twice)
  EXPECT_FALSE(builder::preferNhwc(1.0, 0.5, 1.0, 1.12));          // big win at opt but >10% loss at min
  // Switched off by exact pass name or "all", in the options or the environment list.
  EXPECT_TRUE(builder::nhwcLayoutDisabled({"NhwcLayout"}, nullptr));
  EXPECT_TRUE(builder::nhwcLayoutDisabled({}, "ConvBnFold, all"));
  EXPECT_TRUE(builder::nhwcLayoutDisabled({}, "ConvBnFold,NhwcLayout"));
  EXPECT_FALSE(builder::nhwcLayoutDisabled({"ConvActivationFusion"}, "CallSomething,NhwcLayoutX"));
  EXPECT_FALSE(builder::nhwcLayoutDisabled({}, nullptr));
}

TEST(Engine, RebuildGivesIdenticalBytesAndOptimizerOffStillMatches) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.profiles = {{"images", {2, 3, 32, 32}, {2, 3, 32, 32}, {2, 3, 32, 32}}};
  auto a = build(*g, opt);
  auto b = build(*g, opt);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(a->bytes() == b->bytes());
  EXPECT_LT(a->report().nodes_after_passes, a->report().nodes_in);  // the BN was folded
  EXPECT_FALSE(a->report().passes.empty());
  opt.optimize = false;
  auto c = build(*g, opt);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->report().nodes_after_passes, c->report().nodes_in);
  Tensor x = randomFloat({2, 3, 32, 32}, 5);
  auto want = reference::run(*g, {{"images", x}});
  ASSERT_TRUE(want.ok());
  for (auto* p : {&*a, &*c}) {
    auto e = Engine::loadFromMemory(p->bytes().data(), p->bytes().size());
    ASSERT_TRUE(e.ok());
    auto got = (*(*e)->createContext())->infer({{"images", x}});
    ASSERT_TRUE(got.ok());
    CompareResult r = compareTensors((*got)[0], (*want)[0], 1e-4, 1e-4);
    EXPECT_EQ(r.mismatches, 0) << r.toString();
  }
}
