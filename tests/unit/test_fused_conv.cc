// FusedConv (src/ops/fused_conv.h), ConvActivationFusion and NhwcLayout (src/passes): the fused
// op against the unfused Conv/Add/activation graph on the CPU reference, the passes' graphs
// before/after with outputs unchanged on random inputs, NHWC rewriting of small CNNs and of
// models/tiny_cnn.onnx, the kill switch, and errors for malformed nodes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "ops/fused_conv.h"
#include "passes/pass_manager.h"
#include "ramjet/graph.h"

namespace ramjet {
namespace {

using passes::PassOptions;

Tensor randomTensor(std::vector<int64_t> dims, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t(DataType::kFloat32, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

struct G {
  Graph g;
  int counter = 0;
  Value* input(const std::string& name, std::vector<int64_t> dims) {
    Value* v = g.addValue(name);
    v->type = TensorType{DataType::kFloat32, Shape::fromDims(dims)};
    v->is_graph_input = true;
    g.inputs.push_back(v);
    return v;
  }
  Value* cst(Tensor t) {
    Value* v = g.addValue("c" + std::to_string(counter++));
    v->type = t.type();
    v->constant = std::make_shared<Tensor>(std::move(t));
    return v;
  }
  Value* ints(std::vector<int64_t> v) { return cst(Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())})); }
  Value* op(const std::string& op, std::vector<Value*> ins, std::map<std::string, Attribute> attrs = {}) {
    std::string name = op + "_" + std::to_string(counter++);
    Value* out = g.addValue(name + "_out");
    Node* n = g.addNode(op, name, std::move(ins), {out});
    n->attrs = std::move(attrs);
    return out;
  }
  void output(Value* v) {
    v->is_graph_output = true;
    g.outputs.push_back(v);
  }
};

std::map<std::string, int> opCounts(const Graph& g) {
  std::map<std::string, int> m;
  for (const auto& n : g.nodes()) ++m[n->op_type];
  return m;
}

std::map<std::string, Tensor> feedsFor(const Graph& g, uint32_t seed) {
  std::map<std::string, Tensor> f;
  for (const Value* v : g.inputs) f[v->name] = randomTensor(v->type.shape.concrete(), seed++);
  return f;
}

double maxAbsDiff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double m = 0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    EXPECT_EQ(a[i].dims(), b[i].dims());
    if (a[i].dims() != b[i].dims()) return 1e30;
    for (int64_t j = 0; j < a[i].numel(); ++j) m = std::max(m, std::fabs(a[i].getDouble(j) - b[i].getDouble(j)));
  }
  return m;
}

std::map<std::string, Attribute> convAttrs(std::vector<int64_t> pads, std::vector<int64_t> strides, int64_t group) {
  return {{"pads", Attribute::fromInts(pads)}, {"strides", Attribute::fromInts(strides)},
          {"group", Attribute::fromInt(group)}};
}

struct Case {
  std::string act;  // ONNX op of the activation ("" = none)
  bool residual;
  int64_t group;
  int64_t stride;
  int64_t pad;
};

// Conv [+ Add] [+ act] built from ONNX ops; the passes must turn it into one FusedConv.
void buildChain(G& b, const Case& c) {
  const int64_t C = 8, M = 8;
  Value* x = b.input("x", {2, C, 9, 7});
  Value* w = b.cst(randomTensor({M, C / c.group, 3, 3}, 11));
  Value* bias = b.cst(randomTensor({M}, 12));
  Value* y = b.op("Conv", {x, w, bias}, convAttrs({c.pad, c.pad, c.pad, c.pad}, {c.stride, c.stride}, c.group));
  if (c.residual) {
    const int64_t oh = (9 + 2 * c.pad - 3) / c.stride + 1, ow = (7 + 2 * c.pad - 3) / c.stride + 1;
    Value* z = b.input("z", {2, M, oh, ow});
    y = b.op("Add", {z, y});
  }
  if (c.act == "Clip") {
    y = b.op("Clip", {y, b.cst(Tensor::scalar<float>(0.f)), b.cst(Tensor::scalar<float>(0.5f))});
  } else if (c.act == "LeakyRelu") {
    y = b.op("LeakyRelu", {y}, {{"alpha", Attribute::fromFloat(0.2f)}});
  } else if (c.act == "HardSigmoid") {
    y = b.op("HardSigmoid", {y}, {{"alpha", Attribute::fromFloat(0.25f)}, {"beta", Attribute::fromFloat(0.4f)}});
  } else if (!c.act.empty()) {
    y = b.op(c.act, {y});
  }
  b.output(y);
}

TEST(ConvActivationFusion, EveryActivationResidualGroupedStridedPadded) {
  const std::vector<std::string> acts = {"", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Silu", "HardSwish",
                                         "HardSigmoid", "Clip", "Mish", "Gelu"};
  int cases = 0;
  for (const auto& act : acts) {
    for (const Case& c : {Case{act, false, 1, 1, 1}, Case{act, true, 1, 1, 1}, Case{act, true, 2, 2, 0},
                          Case{act, false, 8, 2, 1}}) {
      if (act.empty() && !c.residual) continue;  // a plain Conv stays a Conv
      G a, b;
      buildChain(a, c);
      buildChain(b, c);
      ASSERT_TRUE(a.g.inferShapes().ok());
      PassOptions po;
      Status st = passes::optimizeGraph(b.g, po);
      ASSERT_TRUE(st.ok()) << st.toString();
      auto ops = opCounts(b.g);
      EXPECT_EQ(ops["FusedConv"], 1) << act << " residual=" << c.residual << "\n" << b.g.dump();
      EXPECT_EQ(b.g.nodes().size(), 1u) << b.g.dump();
      auto feeds = feedsFor(a.g, 5);
      auto ra = reference::run(a.g, feeds);
      auto rb = reference::run(b.g, feeds);
      ASSERT_TRUE(ra.ok()) << ra.status().toString();
      ASSERT_TRUE(rb.ok()) << rb.status().toString();
      EXPECT_LE(maxAbsDiff(*ra, *rb), 2e-5) << act << " residual=" << c.residual << " group=" << c.group;
      ++cases;
    }
  }
  EXPECT_EQ(cases, 42);
}

TEST(ConvActivationFusion, NoFusionWhenIntermediateHasOtherUses) {
  G b;
  Value* x = b.input("x", {1, 4, 6, 6});
  Value* y = b.op("Conv", {x, b.cst(randomTensor({4, 4, 3, 3}, 3))}, convAttrs({1, 1, 1, 1}, {1, 1}, 1));
  Value* r = b.op("Relu", {y});
  b.output(r);
  b.output(y);  // the conv output is also a graph output: must stay
  ASSERT_TRUE(passes::optimizeGraph(b.g, {}).ok());
  auto ops = opCounts(b.g);
  EXPECT_EQ(ops["FusedConv"], 0);
  EXPECT_EQ(ops["Conv"], 1);
  EXPECT_EQ(ops["Relu"], 1);
}

TEST(ConvActivationFusion, KillSwitchAndCanEmit) {
  Case c{"Relu", true, 1, 1, 1};
  {
    G b;
    buildChain(b, c);
    ::setenv("RAMJET_DISABLE_PASSES", "ConvActivationFusion,NhwcLayout", 1);
    Status st = passes::optimizeGraph(b.g, {});
    ::unsetenv("RAMJET_DISABLE_PASSES");
    ASSERT_TRUE(st.ok()) << st.toString();
    EXPECT_EQ(opCounts(b.g)["FusedConv"], 0);
    EXPECT_EQ(opCounts(b.g)["Conv"], 1);
  }
  {
    G b;
    buildChain(b, c);
    PassOptions po;
    po.config.can_emit = [](const std::string& op) { return op != "FusedConv"; };
    ASSERT_TRUE(passes::optimizeGraph(b.g, po).ok());
    EXPECT_EQ(opCounts(b.g)["FusedConv"], 0);
  }
}

// FusedConv{layout=NHWC} on channels-last operands equals the NCHW op.
TEST(FusedConvOp, NhwcMatchesNchw) {
  for (int64_t group : {1, 3, 6}) {
    G a, b;
    Tensor w = randomTensor({6, 6 / group, 3, 3}, 21), bias = randomTensor({6}, 22);
    std::map<std::string, Attribute> at = convAttrs({1, 1, 1, 1}, {2, 1}, group);
    at["activation"] = Attribute::fromString("silu");
    {
      Value* x = a.input("x", {2, 6, 7, 8});
      Value* z = a.input("z", {2, 6, 4, 8});
      a.output(a.op("FusedConv", {x, a.cst(w), a.cst(bias), z}, at));
    }
    {
      Value* x = b.input("x", {2, 6, 7, 8});
      Value* z = b.input("z", {2, 6, 4, 8});
      auto perm = [](std::vector<int64_t> p) { return std::map<std::string, Attribute>{{"perm", Attribute::fromInts(p)}}; };
      Value* xt = b.op("Transpose", {x}, perm({0, 2, 3, 1}));
      Value* zt = b.op("Transpose", {z}, perm({0, 2, 3, 1}));
      auto at2 = at;
      at2["layout"] = Attribute::fromString("NHWC");
      Value* y = b.op("FusedConv", {xt, b.cst(ops::permuteTensor(w, {0, 2, 3, 1})), b.cst(bias), zt}, at2);
      b.output(b.op("Transpose", {y}, perm({0, 3, 1, 2})));
    }
    ASSERT_TRUE(a.g.inferShapes().ok());
    Status sb = b.g.inferShapes();
    ASSERT_TRUE(sb.ok()) << sb.toString();
    EXPECT_EQ(b.g.outputs[0]->type.shape.toString(), a.g.outputs[0]->type.shape.toString());
    auto feeds = feedsFor(a.g, 9);
    auto ra = reference::run(a.g, feeds);
    auto rb = reference::run(b.g, feeds);
    ASSERT_TRUE(ra.ok()) << ra.status().toString();
    ASSERT_TRUE(rb.ok()) << rb.status().toString();
    EXPECT_LE(maxAbsDiff(*ra, *rb), 1e-6) << "group " << group;
  }
}

TEST(FusedConvOp, BadNodesGiveClearErrors) {
  auto infer = [](const std::string& key, Attribute val, std::vector<int64_t> zdims) {
    G b;
    Value* x = b.input("x", {1, 4, 5, 5});
    std::vector<Value*> ins = {x, b.cst(randomTensor({4, 4, 3, 3}, 1)), nullptr};
    if (!zdims.empty()) ins.push_back(b.input("z", zdims));
    std::map<std::string, Attribute> at = convAttrs({1, 1, 1, 1}, {1, 1}, 1);
    at[key] = val;
    b.output(b.op("FusedConv", ins, at));
    return b.g.inferShapes();
  };
  Status s1 = infer("activation", Attribute::fromString("swishy"), {});
  EXPECT_FALSE(s1.ok());
  EXPECT_NE(s1.message().find("unknown activation 'swishy'"), std::string::npos) << s1.message();
  Status s2 = infer("layout", Attribute::fromString("NCWH"), {});
  EXPECT_FALSE(s2.ok());
  EXPECT_NE(s2.message().find("layout 'NCWH'"), std::string::npos) << s2.message();
  Status s3 = infer("activation", Attribute::fromString("relu"), {1, 4, 4, 5});
  EXPECT_FALSE(s3.ok());
  EXPECT_NE(s3.message().find("residual Z"), std::string::npos) << s3.message();
  EXPECT_TRUE(infer("activation", Attribute::fromString("relu"), {1, 4, 5, 5}).ok());
}

// A small CNN with every layout-agnostic op NhwcLayout sinks through: after the passes it runs
// NHWC end to end (one Transpose at the input, none inside), with unchanged outputs.
void buildSmallCnn(G& b) {
  auto perm = [](std::vector<int64_t> p) { return std::map<std::string, Attribute>{{"perm", Attribute::fromInts(p)}}; };
  (void)perm;
  Value* x = b.input("x", {2, 3, 16, 16});
  Value* c1 = b.op("Relu", {b.op("Conv", {x, b.cst(randomTensor({8, 3, 3, 3}, 1)), b.cst(randomTensor({8}, 2))},
                                 convAttrs({1, 1, 1, 1}, {1, 1}, 1))});
  Value* p1 = b.op("MaxPool", {c1}, {{"kernel_shape", Attribute::fromInts({2, 2})}, {"strides", Attribute::fromInts({2, 2})}});
  // Depthwise + residual + SiLU.
  Value* dw = b.op("Conv", {p1, b.cst(randomTensor({8, 1, 3, 3}, 3))}, convAttrs({1, 1, 1, 1}, {1, 1}, 8));
  Value* res = b.op("Silu", {b.op("Add", {dw, p1})});
  // Per-channel scale (constant [C,1,1]) and a scalar.
  Value* sc = b.op("Mul", {res, b.cst(randomTensor({8, 1, 1}, 4, 0.5f, 1.5f))});
  Value* sc2 = b.op("Add", {sc, b.cst(Tensor::scalar<float>(0.25f))});
  // Split on channels, one branch convolved, Concat back.
  Node* split = b.g.addNode("Split", "split", {sc2, b.ints({3, 5})}, {b.g.addValue("s0"), b.g.addValue("s1")});
  split->attrs["axis"] = Attribute::fromInt(1);
  Value* s1c = b.op("Conv", {b.g.findValue("s1"), b.cst(randomTensor({5, 5, 1, 1}, 5))}, convAttrs({0, 0, 0, 0}, {1, 1}, 1));
  Value* cat = b.op("Concat", {b.g.findValue("s0"), s1c}, {{"axis", Attribute::fromInt(1)}});
  // Upsample and slice, average pool, global pool, classifier.
  Value* up = b.op("Resize", {cat, nullptr, b.cst(Tensor::fromVector<float>({1, 1, 2, 2}, {4}))},
                   {{"mode", Attribute::fromString("nearest")}});
  Value* sl = b.op("Slice", {up, b.ints({1, 2}), b.ints({15, 14}), b.ints({2, 3})});
  Value* ap = b.op("AveragePool", {sl}, {{"kernel_shape", Attribute::fromInts({3, 3})}, {"pads", Attribute::fromInts({1, 1, 1, 1})}});
  Value* gp = b.op("GlobalAveragePool", {ap});
  Value* fl = b.op("Flatten", {gp}, {{"axis", Attribute::fromInt(1)}});
  Value* fc = b.op("Gemm", {fl, b.cst(randomTensor({8, 4}, 6))});
  b.output(fc);
}

TEST(NhwcLayout, SmallCnnRunsChannelsLastEndToEnd) {
  G a, b;
  buildSmallCnn(a);
  buildSmallCnn(b);
  ASSERT_TRUE(a.g.inferShapes().ok());
  PassOptions po;
  po.config.prefer_nhwc = true;
  passes::PassReport rep;
  Status st = passes::optimizeGraph(b.g, po, &rep);
  ASSERT_TRUE(st.ok()) << st.toString();
  ASSERT_TRUE(b.g.verify().ok());
  auto ops = opCounts(b.g);
  EXPECT_EQ(ops["Conv"], 0) << b.g.dump();
  EXPECT_EQ(ops["FusedConv"], 3);
  EXPECT_EQ(ops["Transpose"], 1) << b.g.dump();  // the input's, only
  EXPECT_EQ(ops["PoolNhwc"], 2);
  EXPECT_EQ(ops["GlobalAveragePool"], 0);
  for (const auto& n : b.g.nodes())
    if (n->op_type == "FusedConv") EXPECT_EQ(n->attrString("layout", ""), "NHWC");
  auto feeds = feedsFor(a.g, 13);
  auto ra = reference::run(a.g, feeds);
  auto rb = reference::run(b.g, feeds);
  ASSERT_TRUE(ra.ok()) << ra.status().toString();
  ASSERT_TRUE(rb.ok()) << rb.status().toString() << b.g.dump();
  const double d = maxAbsDiff(*ra, *rb);
  std::printf("  small CNN NCHW vs NHWC-rewritten: max abs diff %.3g, %zu -> %zu nodes\n", d, a.g.nodes().size(),
              b.g.nodes().size());
  EXPECT_LE(d, 1e-4);
}

// INT8 boundaries between FP16 layers (what an INT8 build leaves around a stem convolution):
// Int8Quantize{nhwc=1} after NHWC layers and Int8Dequantize{nhwc=1} before them absorb the
// layout Transposes (nhwc=0), and a QConv's channels-first float output turns channels-last,
// with the reference's outputs unchanged.
TEST(NhwcLayout, Int8BoundariesAbsorbTheTransposes) {
  auto make = [](G& b) {
    Value* x = b.input("x", {2, 3, 16, 16});
    Value* c1 = b.op("Relu", {b.op("Conv", {x, b.cst(randomTensor({8, 3, 3, 3}, 1)), b.cst(randomTensor({8}, 2))},
                                   convAttrs({1, 1, 1, 1}, {1, 1}, 1))});
    Value* p1 = b.op("MaxPool", {c1}, {{"kernel_shape", Attribute::fromInts({2, 2})}, {"strides", Attribute::fromInts({2, 2})}});
    Value* q = b.op("Int8Quantize", {p1}, {{"scale", Attribute::fromFloat(0.02f)}, {"nhwc", Attribute::fromInt(1)}});
    Value* d = b.op("Int8Dequantize", {q}, {{"scale", Attribute::fromFloat(0.02f)}, {"nhwc", Attribute::fromInt(1)},
                                            {"to", Attribute::fromInt(static_cast<int64_t>(DataType::kFloat32))}});
    Value* c2 = b.op("Conv", {d, b.cst(randomTensor({4, 8, 1, 1}, 3))}, convAttrs({0, 0, 0, 0}, {1, 1}, 1));
    b.output(c2);
    // An INT8 layer whose float output (written NCHW) feeds a convolution: it becomes a
    // channels-last output + Transpose, which cancels against the convolution's.
    Tensor w(DataType::kInt8, {4, 3, 3, 8});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>((i * 37) % 255 - 127);
    Value* qc = b.op("QConv", {q, b.cst(w), b.cst(randomTensor({4}, 4)), b.cst(randomTensor({4}, 5, 1e-3f, 2e-3f))},
                     {{"pads", Attribute::fromInts({1, 1, 1, 1})},
                      {"to", Attribute::fromInt(static_cast<int64_t>(DataType::kFloat32))},
                      {"out_nchw", Attribute::fromInt(1)}});
    b.output(b.op("Conv", {qc, b.cst(randomTensor({6, 4, 1, 1}, 6))}, convAttrs({0, 0, 0, 0}, {1, 1}, 1)));
  };
  G a, b;
  make(a);
  make(b);
  ASSERT_TRUE(a.g.inferShapes().ok());
  PassOptions po;
  po.config.prefer_nhwc = true;
  Status st = passes::optimizeGraph(b.g, po);
  ASSERT_TRUE(st.ok()) << st.toString();
  ASSERT_TRUE(b.g.verify().ok());
  auto ops = opCounts(b.g);
  EXPECT_EQ(ops["Transpose"], 3) << b.g.dump();  // the input's and the two outputs'
  EXPECT_EQ(ops["QConv"], 1);
  for (const auto& n : b.g.nodes()) {
    if (n->op_type == "Int8Quantize" || n->op_type == "Int8Dequantize") EXPECT_EQ(n->attrInt("nhwc", -1), 0) << b.g.dump();
    if (n->op_type == "QConv") EXPECT_EQ(n->attrInt("out_nchw", -1), 0) << b.g.dump();
  }
  auto feeds = feedsFor(a.g, 17);
  auto ra = reference::run(a.g, feeds);
  auto rb = reference::run(b.g, feeds);
  ASSERT_TRUE(ra.ok()) << ra.status().toString();
  ASSERT_TRUE(rb.ok()) << rb.status().toString() << b.g.dump();
  EXPECT_LE(maxAbsDiff(*ra, *rb), 1e-5);
}

TEST(NhwcLayout, OffUnlessPreferred) {
  G b;
  buildSmallCnn(b);
  ASSERT_TRUE(passes::optimizeGraph(b.g, {}).ok());
  auto ops = opCounts(b.g);
  EXPECT_EQ(ops["Transpose"], 0);
  EXPECT_EQ(ops["PoolNhwc"], 0);
}

TEST(NhwcLayout, TinyCnnModel) {
  const std::string path = std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  auto a = importOnnx(path);
  auto b = importOnnx(path);
  ASSERT_TRUE(a.ok() && b.ok());
  PassOptions po;
  po.config.prefer_nhwc = true;
  Status st = passes::optimizeGraph(*b, po);
  ASSERT_TRUE(st.ok()) << st.toString();
  auto ops = opCounts(*b);
  EXPECT_EQ(ops["Conv"], 0) << b->dump();
  EXPECT_GE(ops["FusedConv"], 2);
  EXPECT_LE(ops["Transpose"], 2) << b->dump();
  std::map<std::string, Tensor> feeds;
  uint32_t seed = 3;
  for (const Value* v : a->inputs) {
    std::vector<int64_t> d;
    for (const Dim& x : v->type.shape.dims) d.push_back(x.known() ? x.value : 2);
    feeds[v->name] = randomTensor(d, seed++);
  }
  auto ra = reference::run(*a, feeds);
  auto rb = reference::run(*b, feeds);
  ASSERT_TRUE(ra.ok()) << ra.status().toString();
  ASSERT_TRUE(rb.ok()) << rb.status().toString();
  const double d = maxAbsDiff(*ra, *rb);
  std::printf("  tiny_cnn NCHW vs NHWC: max abs diff %.3g, Transposes left %d\n", d, ops["Transpose"]);
  EXPECT_LE(d, 1e-4);
}

}  // namespace
}  // namespace ramjet

namespace ramjet {
namespace {
// Zoo CNNs (python3 models/zoo.py; skipped when absent): NHWC from the first convolution to the
// head (one Transpose, at the input) with the CPU reference's outputs unchanged.
TEST(NhwcLayout, ZooCnnsRunChannelsLastWithUnchangedOutputs) {
  int ran = 0;
  for (const std::string name : {"resnet50", "mobilenet_v3_large", "efficientnet_b0", "yolov8n"}) {
    const std::string path = std::string(RAMJET_SOURCE_DIR) + "/models/zoo/" + name + ".onnx";
    if (!std::filesystem::exists(path)) continue;
    auto a = importOnnx(path);
    auto b = importOnnx(path);
    ASSERT_TRUE(a.ok() && b.ok());
    PassOptions po;
    po.config.prefer_nhwc = true;
    Status st = passes::optimizeGraph(*b, po);
    ASSERT_TRUE(st.ok()) << name << ": " << st.toString();
    auto ops = opCounts(*b);
    std::map<std::string, Tensor> feeds;
    uint32_t seed = 1;
    for (const Value* v : a->inputs) {
      std::vector<int64_t> d;
      for (const Dim& x : v->type.shape.dims) d.push_back(x.known() ? x.value : 1);
      feeds[v->name] = randomTensor(d, seed++, 0.f, 1.f);
    }
    auto ra = reference::run(*a, feeds);
    auto rb = reference::run(*b, feeds);
    ASSERT_TRUE(ra.ok()) << ra.status().toString();
    ASSERT_TRUE(rb.ok()) << rb.status().toString();
    double ref_max = 0;
    for (const Tensor& t : *ra)
      for (int64_t j = 0; j < t.numel(); ++j) ref_max = std::max(ref_max, std::fabs(t.getDouble(j)));
    const double d = maxAbsDiff(*ra, *rb);
    std::printf("  %s NCHW vs NHWC: max abs diff %.3g (max |y| %.3g), FusedConv %d, Transposes %d\n", name.c_str(), d,
                ref_max, ops["FusedConv"], ops["Transpose"]);
    EXPECT_LE(d, 1e-5 * std::max(1.0, ref_max)) << name;
    EXPECT_EQ(ops["Conv"], 0) << name;
    if (name != "yolov8n") EXPECT_EQ(ops["Transpose"], 1) << name;  // YOLO's head stays NCHW
    ++ran;
  }
  if (!ran) GTEST_SKIP() << "no zoo model under models/zoo";
}
}  // namespace
}  // namespace ramjet
