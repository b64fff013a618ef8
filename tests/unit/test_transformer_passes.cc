// Tests of xfmr's level-4 passes (GemmEpilogueFusion, AttentionLayoutFold, ElementwiseFusion)
// and their fused ops' reference kernels: each pass on a small graph, op types before/after,
// outputs of the optimized graph vs the original on random inputs (CPU reference), kill
// switches, and the FusedElementwise program validation.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <map>
#include <random>

#include "graph_builder.h"
#include "ops/elementwise_program.h"
#include "passes/pass_manager.h"

using namespace rjtest;

namespace {

Tensor rnd(std::vector<int64_t> dims, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t(DataType::kFloat32, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(g);
  return t;
}
Tensor i64(std::vector<int64_t> v) { return Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}); }

// torch's sequence-first head split of a packed [S, B, 3W] QKV: q/k/v = Slice(qkv, i*W..(i+1)*W
// on `axes`) -> Reshape(shp) -> Transpose(1,0,2), as values q_t, k_t, v_t.
void splitHeadsSbh(Builder& b, Value* qkv, Value* axes, Value* shp, int64_t W) {
  for (int i = 0; i < 3; ++i) {
    const std::string n(1, "qkv"[i]);
    b.node("Slice", {qkv, b.constant(n + "_s", i64({i * W})), b.constant(n + "_e", i64({(i + 1) * W})), axes},
           {n + "_sl"});
    b.node("Reshape", {b.value(n + "_sl"), shp}, {n + "_rs"});
    b.node("Transpose", {b.value(n + "_rs")}, {n + "_t"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
  }
}

std::map<std::string, int> opCounts(const Graph& g) {
  std::map<std::string, int> m;
  for (const auto& n : g.nodes()) ++m[n->op_type];
  return m;
}
std::string opsString(const Graph& g) {
  std::string s;
  for (const auto& [k, v] : opCounts(g)) s += k + "=" + std::to_string(v) + " ";
  return s;
}

// Optimizes a fresh graph from `make` (with `disabled` passes off) and checks its outputs match
// the unoptimized graph's; returns the op counts after.
std::map<std::string, int> optimizeAndCompare(const std::function<std::shared_ptr<Graph>()>& make,
                                              const std::map<std::string, Tensor>& feeds,
                                              std::set<std::string> disabled = {}, double tol = 2e-5) {
  auto ref = make();
  auto want = runGraph(*ref, feeds);
  EXPECT_TRUE(want.ok()) << want.status().toString();
  auto g = make();
  const std::string before = opsString(*g);
  passes::PassOptions po;
  po.use_env = false;
  po.disabled = std::move(disabled);
  po.config.can_emit = [](const std::string&) { return true; };  // a target with every kernel
  passes::PassReport rep;
  Status st = passes::optimizeGraph(*g, po, &rep);
  EXPECT_TRUE(st.ok()) << st.toString();
  auto got = runGraph(*g, feeds);
  EXPECT_TRUE(got.ok()) << got.status().toString();
  if (!want.ok() || !got.ok()) return {};
  EXPECT_EQ(got->size(), want->size());
  double worst = 0;
  for (size_t i = 0; i < got->size() && i < want->size(); ++i) {
    CompareResult r = compareTensors((*got)[i], (*want)[i], tol, tol);
    worst = std::max(worst, r.max_abs);
    EXPECT_TRUE(r.shape_match && r.mismatches == 0) << "output " << i << ": " << r.toString();
  }
  std::printf("[xfmr-passes] before: %s\n[xfmr-passes] after:  %s max abs diff %.3g\n", before.c_str(),
              opsString(*g).c_str(), worst);
  return opCounts(*g);
}

}  // namespace

TEST(TransformerPasses, GemmEpilogueBiasGelu) {
  auto make = [] {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {2, 5, 8});
    Value* w = b.constant("w", rnd({8, 6}, 1));
    Value* bias = b.constant("bias", rnd({6}, 2));
    b.node("MatMul", {x, w}, {"mm"});
    b.node("Add", {b.value("bias"), b.value("mm")}, {"add"});
    (void)bias;
    b.node("Gelu", {b.value("add")}, {"y"});
    b.output("y");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({2, 5, 8}, 3)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["FusedGemm"], 1);
  EXPECT_EQ(after["MatMul"] + after["Add"] + after["Gelu"], 0);
  auto off = optimizeAndCompare(make, feeds, {"GemmEpilogueFusion"});
  EXPECT_EQ(off["FusedGemm"], 0);
  EXPECT_EQ(off["MatMul"], 1);
}

TEST(TransformerPasses, GemmEpilogueResidualAndGemmBias) {
  auto make = [] {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {3, 7, 16});
    Value* r = b.input("r", DataType::kFloat32, {3, 7, 12});
    b.node("MatMul", {x, b.constant("w", rnd({16, 12}, 4))}, {"mm"});
    b.node("Add", {b.value("mm"), b.constant("bias", rnd({1, 12}, 5))}, {"a1"});
    b.node("Add", {r, b.value("a1")}, {"y"});
    // 2-D Gemm with transB and C as a bias, then Relu.
    Value* z = b.input("z", DataType::kFloat32, {4, 16});
    b.node("Gemm", {z, b.constant("w2", rnd({5, 16}, 6)), b.constant("c2", rnd({5}, 7))}, {"gm"},
           {{"transB", Attribute::fromInt(1)}});
    b.node("Relu", {b.value("gm")}, {"y2"});
    b.output("y");
    b.output("y2");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({3, 7, 16}, 8)}, {"r", rnd({3, 7, 12}, 9)}, {"z", rnd({4, 16}, 10)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["FusedGemm"], 2);
  EXPECT_EQ(after["Add"] + after["Relu"] + after["Gemm"] + after["MatMul"], 0);
}

// torch nn.MultiheadAttention's head split around an Attention node (sbh layout).
TEST(TransformerPasses, AttentionLayoutFoldSbh) {
  const int64_t S = 7, B = 2, H = 2, D = 4, W = H * D;
  auto make = [&] {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {S, B, 3 * W});
    Value* axes = b.constant("axes", i64({2}));
    Value* shp = b.constant("shp", i64({S, B * H, D}));
    splitHeadsSbh(b, x, axes, shp, W);
    b.node("Attention", {b.value("q_t"), b.value("k_t"), b.value("v_t")}, {"att"},
           {{"scale", Attribute::fromFloat(0.3f)}});
    b.node("Transpose", {b.value("att")}, {"att_t"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
    b.node("Reshape", {b.value("att_t"), b.constant("oshp", i64({S, B, W}))}, {"y"});
    b.output("y");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({S, B, 3 * W}, 11, -2.f, 2.f)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["MultiHeadAttention"], 1);
  EXPECT_EQ(after["Attention"] + after["Transpose"] + after["Slice"], 0);
  auto off = optimizeAndCompare(make, feeds, {"AttentionLayoutFold"});
  EXPECT_EQ(off["MultiHeadAttention"], 0);
  EXPECT_EQ(off["Attention"], 1);
}

// A batch-first block around sequence-first attention (torchvision ViT): X[B,S,W] -> Transpose ->
// QKV MatMul+Add -> head split -> Attention -> merge -> Reshape [S*B,W] -> Gemm -> Reshape [S,B,W]
// -> Transpose -> + X. AttentionBatchFirst removes both Transposes (attention runs "bsh").
TEST(TransformerPasses, AttentionBatchFirstDropsTheTransposes) {
  const int64_t S = 7, B = 3, H = 2, D = 4, W = H * D;
  auto make = [&] {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {B, S, W});
    b.node("Transpose", {x}, {"xt"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
    b.node("MatMul", {b.value("xt"), b.constant("wqkv", rnd({W, 3 * W}, 21))}, {"qkv0"});
    b.node("Add", {b.value("qkv0"), b.constant("bqkv", rnd({3 * W}, 22))}, {"qkv"});
    Value* axes = b.constant("axes", i64({2}));
    Value* shp = b.constant("shp", i64({S, B * H, D}));
    splitHeadsSbh(b, b.value("qkv"), axes, shp, W);
    b.node("Attention", {b.value("q_t"), b.value("k_t"), b.value("v_t")}, {"att"});
    b.node("Transpose", {b.value("att")}, {"att_t"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
    b.node("Reshape", {b.value("att_t"), b.constant("rows", i64({S * B, W}))}, {"att_rows"});
    b.node("Gemm", {b.value("att_rows"), b.constant("wo", rnd({5, W}, 23)), b.constant("bo", rnd({5}, 24))}, {"proj"},
           {{"transB", Attribute::fromInt(1)}});
    b.node("Reshape", {b.value("proj"), b.constant("back", i64({S, B, 5}))}, {"proj3"});
    b.node("Transpose", {b.value("proj3")}, {"y0"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
    b.node("Relu", {b.value("y0")}, {"y"});
    b.output("y");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({B, S, W}, 25, -2.f, 2.f)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["MultiHeadAttention"], 1);
  EXPECT_EQ(after["Transpose"], 0);
  auto off = optimizeAndCompare(make, feeds, {"AttentionBatchFirst"});
  EXPECT_EQ(off["MultiHeadAttention"], 1);
  EXPECT_EQ(off["Transpose"], 2);
}

// The same block as exporters write it for a dynamic batch: the head split reshapes by [0,-1,D],
// the row and back reshapes take their dims from Shape(Transpose output) (torch's tgt_len, bsz),
// and a final Reshape to [bsz, tgt_len*5] reads them too. After the pass those Shape readers see
// X's [B,S,W] swapped back: without the swap the last Reshape would make [S, B*5].
TEST(TransformerPasses, AttentionBatchFirstDynamicBatchShapes) {
  const int64_t S = 7, B = 3, H = 2, D = 4, W = H * D;
  auto make = [&] {
    Builder b;
    Value* x = b.input("x", TensorType{DataType::kFloat32, Shape(std::vector<Dim>{Dim::symbolic("N"), Dim(S), Dim(W)})});
    b.node("Transpose", {x}, {"xt"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
    b.node("MatMul", {b.value("xt"), b.constant("wqkv", rnd({W, 3 * W}, 31))}, {"qkv"});
    Value* axes = b.constant("axes", i64({2}));
    Value* shp = b.constant("shp", i64({0, -1, D}));
    splitHeadsSbh(b, b.value("qkv"), axes, shp, W);
    b.node("Attention", {b.value("q_t"), b.value("k_t"), b.value("v_t")}, {"att"});
    b.node("Transpose", {b.value("att")}, {"att_t"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
    // tgt_len, bsz = Shape(xt)[0], Shape(xt)[1]
    b.node("Shape", {b.value("xt")}, {"sh"});
    b.node("Gather", {b.value("sh"), b.constant("i0", Tensor::scalar<int64_t>(0))}, {"tl"}, {{"axis", Attribute::fromInt(0)}});
    b.node("Gather", {b.value("sh"), b.constant("i1", Tensor::scalar<int64_t>(1))}, {"bs"}, {{"axis", Attribute::fromInt(0)}});
    Value* ax0 = b.constant("ax0", i64({0}));
    b.node("Unsqueeze", {b.value("tl"), ax0}, {"tl1"});
    b.node("Unsqueeze", {b.value("bs"), ax0}, {"bs1"});
    b.node("Mul", {b.value("tl1"), b.value("bs1")}, {"rows_n"});
    b.node("Concat", {b.value("rows_n"), b.constant("w1", i64({W}))}, {"rows"}, {{"axis", Attribute::fromInt(0)}});
    b.node("Reshape", {b.value("att_t"), b.value("rows")}, {"att_rows"});
    b.node("MatMul", {b.value("att_rows"), b.constant("wo", rnd({W, 5}, 33))}, {"proj"});
    b.node("Concat", {b.value("tl1"), b.value("bs1"), b.constant("n5", i64({5}))}, {"back"}, {{"axis", Attribute::fromInt(0)}});
    b.node("Reshape", {b.value("proj"), b.value("back")}, {"proj3"});
    b.node("Transpose", {b.value("proj3")}, {"y0"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
    b.node("Mul", {b.value("tl1"), b.constant("n5b", i64({5}))}, {"tl5"});
    b.node("Concat", {b.value("bs1"), b.value("tl5")}, {"final"}, {{"axis", Attribute::fromInt(0)}});
    b.node("Reshape", {b.value("y0"), b.value("final")}, {"y"});  // [bsz, tgt_len*5]
    b.output("y");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({B, S, W}, 35, -2.f, 2.f)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["MultiHeadAttention"], 1);
  EXPECT_EQ(after["Transpose"], 0);
  EXPECT_GE(after["Gather"], 1);  // a Shape reader's dims swapped back
}

// torch 2.x nn.MultiheadAttention as exported for ViT: the packed projection [S,B,3W] is split
// by Reshape[S,B,3,W] -> Unsqueeze(0) -> Transpose(3,1,2,0,4) -> Squeeze(3) -> Gather(i), each
// head split goes through an extra Reshape to [B,H,S,D], and the merge is Transpose(2,0,1,3).
TEST(TransformerPasses, AttentionLayoutFoldTorchMhaGatherSplit) {
  const int64_t S = 5, B = 3, H = 2, D = 4, W = H * D;
  auto make = [&] {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {S, B, 3 * W});
    b.node("Reshape", {x, b.constant("s4", i64({S, B, 3, W}))}, {"r4"});
    b.node("Unsqueeze", {b.value("r4"), b.constant("u0", i64({0}))}, {"u5"});
    b.node("Transpose", {b.value("u5")}, {"t5"}, {{"perm", Attribute::fromInts({3, 1, 2, 0, 4})}});
    b.node("Squeeze", {b.value("t5"), b.constant("sq", i64({3}))}, {"qkv"});
    const char* names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; ++i) {
      std::string n = names[i];
      b.node("Gather", {b.value("qkv"), b.constant(n + "_i", Tensor::scalar<int64_t>(i))}, {n + "_g"},
             {{"axis", Attribute::fromInt(0)}});
      b.node("Reshape", {b.value(n + "_g"), b.constant(n + "_s3", i64({S, B * H, D}))}, {n + "_rs"});
      b.node("Transpose", {b.value(n + "_rs")}, {n + "_t"}, {{"perm", Attribute::fromInts({1, 0, 2})}});
      b.node("Reshape", {b.value(n + "_t"), b.constant(n + "_s4", i64({B, H, S, D}))}, {n + "_h"});
    }
    b.node("Attention", {b.value("q_h"), b.value("k_h"), b.value("v_h")}, {"att"},
           {{"scale", Attribute::fromFloat(0.35f)}});
    b.node("Transpose", {b.value("att")}, {"att_t"}, {{"perm", Attribute::fromInts({2, 0, 1, 3})}});
    b.node("Reshape", {b.value("att_t"), b.constant("oshp", i64({S * B, W}))}, {"y"});
    b.output("y");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({S, B, 3 * W}, 12, -2.f, 2.f)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["MultiHeadAttention"], 1);
  EXPECT_EQ(after["Attention"] + after["Transpose"] + after["Gather"] + after["Slice"] + after["Squeeze"], 0);
  auto off = optimizeAndCompare(make, feeds, {"AttentionLayoutFold"});
  EXPECT_EQ(off["MultiHeadAttention"], 0);
  EXPECT_EQ(off["Gather"], 3);
}

// HF-style head split (bsh): X[B,S,H*D] -> Reshape[B,S,H,D] -> Transpose(0,2,1,3).
TEST(TransformerPasses, AttentionLayoutFoldBsh) {
  const int64_t S = 5, B = 3, H = 3, D = 4, W = H * D;
  auto make = [&] {
    Builder b;
    Value* shp = b.constant("shp", i64({B, S, H, D}));
    const char* names[3] = {"q", "k", "v"};
    for (int i = 0; i < 3; ++i) {
      std::string n = names[i];
      Value* x = b.input(n, DataType::kFloat32, {B, S, W});
      b.node("Reshape", {x, shp}, {n + "_rs"});
      b.node("Transpose", {b.value(n + "_rs")}, {n + "_t"}, {{"perm", Attribute::fromInts({0, 2, 1, 3})}});
    }
    b.node("Attention", {b.value("q_t"), b.value("k_t"), b.value("v_t")}, {"att"});
    b.node("Transpose", {b.value("att")}, {"att_t"}, {{"perm", Attribute::fromInts({0, 2, 1, 3})}});
    b.node("Reshape", {b.value("att_t"), b.constant("oshp", i64({B, S, W}))}, {"y"});
    b.output("y");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{
      {"q", rnd({B, S, W}, 12)}, {"k", rnd({B, S, W}, 13)}, {"v", rnd({B, S, W}, 14)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["MultiHeadAttention"], 1);
  EXPECT_EQ(after["Attention"] + after["Transpose"], 0);
}

TEST(TransformerPasses, ElementwiseFusionTreeWithBroadcast) {
  auto make = [] {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {3, 4, 5});
    Value* y = b.input("y", DataType::kFloat32, {5});
    b.node("Add", {x, y}, {"a"});
    b.node("Tanh", {b.value("a")}, {"t"});
    b.node("Mul", {b.value("t"), b.constant("half", Tensor::scalar<float>(0.5f))}, {"m"});
    b.node("Sub", {b.value("m"), x}, {"s"});
    b.node("Clip", {b.value("s"), b.constant("lo", Tensor::scalar<float>(-0.4f)),
                    b.constant("hi", Tensor::scalar<float>(0.6f))},
           {"c"});
    // exp(x) is used twice: it stays a separate node (no recomputation inside two groups).
    b.node("Exp", {x}, {"e"});
    b.node("Add", {b.value("e"), b.value("c")}, {"out1"});
    b.node("Mul", {b.value("e"), y}, {"out2"});
    b.output("out1");
    b.output("out2");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({3, 4, 5}, 15, -2.f, 2.f)}, {"y", rnd({5}, 16)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["FusedElementwise"], 1);
  EXPECT_EQ(after["Exp"], 1);
  EXPECT_EQ(after["Tanh"] + after["Clip"] + after["Sub"], 0);
  auto off = optimizeAndCompare(make, feeds, {"ElementwiseFusion"});
  EXPECT_EQ(off["FusedElementwise"], 0);
}

// x + r -> LayerNorm, the sum also used afterwards (the next residual).
TEST(TransformerPasses, AddLayerNormFusion) {
  auto make = [] {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {2, 5, 16});
    Value* r = b.input("r", DataType::kFloat32, {2, 5, 16});
    b.node("Add", {x, r}, {"s"});
    b.node("LayerNormalization", {b.value("s"), b.constant("g", rnd({16}, 30)), b.constant("be", rnd({16}, 31))}, {"y"},
           {{"axis", Attribute::fromInt(-1)}, {"epsilon", Attribute::fromFloat(1e-5f)}});
    b.node("Mul", {b.value("s"), b.value("y")}, {"out"});
    b.output("out");
    return b.owned;
  };
  std::map<std::string, Tensor> feeds{{"x", rnd({2, 5, 16}, 32, -3.f, 3.f)}, {"r", rnd({2, 5, 16}, 33)}};
  auto after = optimizeAndCompare(make, feeds);
  EXPECT_EQ(after["AddLayerNorm"], 1);
  EXPECT_EQ(after["LayerNormalization"] + after["Add"], 0);
  auto off = optimizeAndCompare(make, feeds, {"AddLayerNormFusion"});
  EXPECT_EQ(off["AddLayerNorm"], 0);
  EXPECT_EQ(off["LayerNormalization"], 1);
}

// Without a target (can_emit unset, e.g. `ramjet optimize`) the device lowerings do nothing.
TEST(TransformerPasses, NoTargetNoLowering) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {4, 8});
  b.node("MatMul", {x, b.constant("w", rnd({8, 3}, 20))}, {"mm"});
  b.node("Relu", {b.value("mm")}, {"r"});
  b.node("Exp", {b.value("r")}, {"y"});
  b.output("y");
  passes::PassOptions po;
  po.use_env = false;
  ASSERT_TRUE(passes::optimizeGraph(b.g, po, nullptr).ok());
  auto c = opCounts(b.g);
  EXPECT_EQ(c["FusedGemm"] + c["FusedElementwise"], 0);
  EXPECT_EQ(c["MatMul"], 1);
}

TEST(TransformerPasses, ElementwiseProgramValidation) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {4});
  Node* n = b.node("FusedElementwise", {x}, {"y"});
  n->attrs["ops"] = Attribute::fromString("Relu,Add");
  n->attrs["args"] = Attribute::fromInts({0, -1, 1, 2});  // Add reads r0 and r1 (itself): invalid
  b.output("y");
  Status st = b.g.inferShapes();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("earlier result"), std::string::npos) << st.toString();
  n->attrs["ops"] = Attribute::fromString("Relu,Frobnicate");
  st = b.g.inferShapes();
  EXPECT_NE(st.message().find("unknown instruction 'Frobnicate'"), std::string::npos) << st.toString();
  n->attrs["ops"] = Attribute::fromString("Relu,Add");
  n->attrs["args"] = Attribute::fromInts({0, -1, 1, 0});
  ASSERT_TRUE(b.g.inferShapes().ok());
  auto p = ops::ewProgramFromNode(*n, 1);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->toString(), "Relu(i0);Add(r0,i0)");
  Tensor xv = Tensor::fromVector<float>({-1.f, 2.f, -3.f, 4.f}, {4});
  auto out = runGraph(b.g, {{"x", xv}});
  ASSERT_TRUE(out.ok()) << out.status().toString();
  const float want[4] = {-1.f, 4.f, -3.f, 8.f};
  for (int i = 0; i < 4; ++i) EXPECT_FLOAT_EQ((*out)[0].data<float>()[i], want[i]);
}

TEST(TransformerPasses, ViTZooModel) {
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/zoo/vit_b_16.onnx");
  if (!g.ok()) GTEST_SKIP() << "models/zoo/vit_b_16.onnx not generated";
  passes::PassOptions po;
  po.use_env = false;
  po.config.can_emit = [](const std::string&) { return true; };
  passes::PassReport rep;
  ASSERT_TRUE(passes::optimizeGraph(*g, po, &rep).ok());
  auto c = opCounts(*g);
  std::printf("[xfmr-passes] vit_b_16 after: %s\n", opsString(*g).c_str());
  EXPECT_EQ(c["MultiHeadAttention"], 12);
  EXPECT_EQ(c["Attention"], 0);
  EXPECT_GE(c["FusedGemm"], 36);
  EXPECT_EQ(c["AddLayerNorm"], 12);  // ln_2 of every block: x + attention output  // qkv (bias), fc1 (bias+gelu), fc2 (bias+residual) per layer
}
