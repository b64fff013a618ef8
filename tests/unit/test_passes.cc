// Graph passes (src/passes): for each pass a small graph before/after (node counts, op types)
// and the CPU reference's outputs on random inputs before vs after; kill switches; whole models.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "passes/pass_manager.h"
#include "ramjet/graph.h"

namespace ramjet {
namespace {

using passes::PassOptions;
using passes::PassReport;

// Tiny graph builder.
struct GB {
  Graph g;
  int counter = 0;
  Value* input(const std::string& name, std::vector<int64_t> dims,
               DataType dt = DataType::kFloat32) {
    Value* v = g.addValue(name);
    v->type = TensorType{dt, Shape::fromDims(dims)};
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
  Value* scalar(float f) { return cst(Tensor::scalar<float>(f)); }
  Value* ints(std::vector<int64_t> v) {
    return cst(Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}));
  }
  Value* randn(std::vector<int64_t> dims, uint32_t seed, float lo = -1, float hi = 1) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(lo, hi);
    Tensor t(DataType::kFloat32, dims);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
    return cst(t);
  }
  Node* node(const std::string& op, std::vector<Value*> ins, int nout = 1) {
    std::vector<Value*> outs;
    std::string name = op + "_" + std::to_string(counter++);
    for (int i = 0; i < nout; ++i) outs.push_back(g.addValue(name + "_out" + std::to_string(i)));
    return g.addNode(op, name, std::move(ins), std::move(outs));
  }
  Value* op(const std::string& op, std::vector<Value*> ins,
            std::map<std::string, Attribute> attrs = {}) {
    Node* n = node(op, std::move(ins));
    n->attrs = std::move(attrs);
    return n->outputs[0];
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
std::string opList(const Graph& g) {
  std::string s;
  for (const auto& [op, c] : opCounts(g)) s += op + "=" + std::to_string(c) + " ";
  return s;
}

std::map<std::string, Tensor> randomFeeds(const Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::map<std::string, Tensor> feeds;
  for (Value* v : g.inputs) {
    std::vector<int64_t> dims;
    for (const Dim& d : v->type.shape.dims) dims.push_back(d.known() ? d.value : 1);
    Tensor t(DataType::kFloat32, dims);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = nd(rng);
    feeds[v->name] = v->type.dtype == DataType::kFloat32 ? t : t.cast(v->type.dtype);
  }
  return feeds;
}

struct Outcome {
  std::map<std::string, int> before, after;
  size_t nodes_before = 0, nodes_after = 0;
  double max_abs = 0;
  PassReport report;
};

// Builds the graph twice, optimizes the second, and compares both on the reference.
Outcome optimizeAndCompare(const std::function<void(GB&)>& build, const PassOptions& opts = {},
                           double tol = 1e-4) {
  Outcome o;
  GB a, b;
  build(a);
  build(b);
  EXPECT_TRUE(a.g.inferShapes().ok());
  o.before = opCounts(a.g);
  o.nodes_before = a.g.nodes().size();
  Status st = passes::optimizeGraph(b.g, opts, &o.report);
  EXPECT_TRUE(st.ok()) << st.toString();
  EXPECT_TRUE(b.g.verify().ok()) << b.g.verify().toString();
  o.after = opCounts(b.g);
  o.nodes_after = b.g.nodes().size();
  auto feeds = randomFeeds(a.g, 7);
  auto ra = reference::run(a.g, feeds);
  auto rb = reference::run(b.g, feeds);
  EXPECT_TRUE(ra.ok()) << ra.status().toString();
  EXPECT_TRUE(rb.ok()) << rb.status().toString() << "\n" << b.g.dump();
  if (ra.ok() && rb.ok()) {
    EXPECT_EQ(ra->size(), rb->size());
    for (size_t i = 0; i < ra->size() && i < rb->size(); ++i) {
      CompareResult c = compareTensors((*rb)[i], (*ra)[i], tol, tol);
      EXPECT_TRUE(c.shape_match) << dimsToString((*rb)[i].dims()) << " vs "
                                 << dimsToString((*ra)[i].dims());
      o.max_abs = std::max(o.max_abs, c.max_abs);
    }
  }
  EXPECT_LE(o.max_abs, tol);
  std::printf("    before: %zu nodes [%s]\n    after:  %zu nodes [%s]\n    max abs error %.3g\n",
              o.nodes_before, opList(a.g).c_str(), o.nodes_after, opList(b.g).c_str(), o.max_abs);
  return o;
}

Attribute ints(std::vector<int64_t> v) {
  return Attribute::fromInts(std::move(v));
}

TEST(Passes, IdentityAndDropoutElimination) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 3});
    Value* i1 = b.op("Identity", {x});
    Value* r = b.op("Relu", {i1});
    Value* d = b.op("Dropout", {r});
    Value* i2 = b.op("Identity", {d});
    b.output(i2);  // graph output produced by an Identity: the name must survive
  });
  EXPECT_EQ(o.nodes_after, 1u);
  EXPECT_EQ(o.after["Relu"], 1);
}

TEST(Passes, DeadCodeElimination) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {4});
    Value* r = b.op("Relu", {x});
    b.op("Exp", {b.op("Neg", {x})});  // unused branch
    b.output(r);
  });
  EXPECT_EQ(o.nodes_after, 1u);
  EXPECT_EQ(o.after.count("Exp"), 0u);
}

TEST(Passes, ConstantFoldingIncludingShapeSubgraph) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 3, 4});
    Value* c = b.op("Add", {b.randn({4}, 1), b.randn({4}, 2)});
    Value* m = b.op("Mul", {x, b.op("Sqrt", {b.op("Abs", {c})})});
    // Shape -> Gather -> Unsqueeze -> Concat -> Reshape: static dims fold to a constant shape.
    Value* s = b.op("Shape", {x});
    Value* d0 =
        b.op("Gather", {s, b.cst(Tensor::scalar<int64_t>(0))}, {{"axis", Attribute::fromInt(0)}});
    Value* u = b.op("Unsqueeze", {d0, b.ints({0})});
    Value* shape = b.op("Concat", {u, b.ints({-1})}, {{"axis", Attribute::fromInt(0)}});
    b.output(b.op("Reshape", {m, shape}));
  });
  EXPECT_EQ(o.after.count("Shape"), 0u);
  EXPECT_EQ(o.after.count("Concat"), 0u);
  EXPECT_EQ(o.after.count("Sqrt"), 0u);
  EXPECT_EQ(o.after["Mul"], 1);
  EXPECT_EQ(o.after["Reshape"], 1);
  EXPECT_EQ(o.nodes_after, 2u);
}

TEST(Passes, ConstantFoldingSizeCap) {
  PassOptions opts;
  opts.config.fold_max_bytes = 1024;
  auto o = optimizeAndCompare(
      [](GB& b) {
        Value* x = b.input("x", {64, 64});
        Value* big = b.op("ConstantOfShape", {b.ints({64, 64})});  // 16 KiB of zeros
        b.output(b.op("Add", {x, big}));
      },
      opts);
  EXPECT_EQ(o.after["ConstantOfShape"], 1);  // over the cap: left for run time
}

TEST(Passes, CommonSubexpressionElimination) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {3, 5});
    Value* r1 = b.op("Relu", {x});
    Value* r2 = b.op("Relu", {x});
    Value* s1 = b.op("Mul", {r1, b.scalar(2.f)});
    Value* s2 = b.op("Mul", {r2, b.scalar(2.f)});  // equal constant, separate value
    b.output(b.op("Add", {s1, s2}));
  });
  EXPECT_EQ(o.after["Relu"], 1);
  EXPECT_EQ(o.after["Mul"], 1);
  EXPECT_EQ(o.nodes_after, 3u);
}

TEST(Passes, TransposeChains) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 3, 4});
    Value* t1 = b.op("Transpose", {x}, {{"perm", ints({0, 2, 1})}});
    Value* t2 = b.op("Transpose", {t1}, {{"perm", ints({0, 2, 1})}});  // cancels
    Value* t3 = b.op("Transpose", {t2}, {{"perm", ints({1, 0, 2})}});
    Value* t4 = b.op("Transpose", {t3}, {{"perm", ints({2, 1, 0})}});  // composes with t3
    b.output(b.op("Relu", {t4}));
  });
  EXPECT_EQ(o.after["Transpose"], 1);
  EXPECT_EQ(o.nodes_after, 2u);
}

TEST(Passes, ReshapeSqueezeChains) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 3, 4});
    Value* r1 = b.op("Reshape", {x, b.ints({6, 4})});
    Value* r2 = b.op("Reshape", {r1, b.ints({4, -1})});  // Reshape∘Reshape
    Value* u = b.op("Unsqueeze", {r2, b.ints({0})});
    Value* s = b.op("Squeeze", {u, b.ints({0})});     // Unsqueeze∘Squeeze: no-op
    Value* n = b.op("Reshape", {s, b.ints({4, 6})});  // no-op reshape
    b.output(b.op("Relu", {n}));
  });
  EXPECT_EQ(o.after["Reshape"], 1);
  EXPECT_EQ(o.after.count("Squeeze"), 0u);
  EXPECT_EQ(o.after.count("Unsqueeze"), 0u);
  EXPECT_EQ(o.nodes_after, 2u);
}

// BN parameters with var > 0.
void bnParams(GB& b, int64_t c, std::vector<Value*>* p) {
  *p = {b.randn({c}, 11, 0.5, 1.5), b.randn({c}, 12), b.randn({c}, 13), b.randn({c}, 14, 0.2, 2)};
}

TEST(Passes, ConvBatchNormFold) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {1, 4, 6, 6});
    std::vector<Value*> bn;
    bnParams(b, 8, &bn);
    Value* c = b.op("Conv", {x, b.randn({8, 4, 3, 3}, 3), b.randn({8}, 4)},
                    {{"pads", ints({1, 1, 1, 1})}});
    Value* y = b.op("BatchNormalization", {c, bn[0], bn[1], bn[2], bn[3]},
                    {{"epsilon", Attribute::fromFloat(1e-3f)}});
    // ConvTranspose with groups and no bias, then BN.
    std::vector<Value*> bn2;
    bnParams(b, 6, &bn2);
    Value* ct = b.op("ConvTranspose", {y, b.randn({8, 3, 2, 2}, 5)},
                     {{"group", Attribute::fromInt(2)}, {"strides", ints({2, 2})}});
    b.output(b.op("BatchNormalization", {ct, bn2[0], bn2[1], bn2[2], bn2[3]}));
  });
  EXPECT_EQ(o.after.count("BatchNormalization"), 0u);
  EXPECT_EQ(o.after["Conv"], 1);
  EXPECT_EQ(o.after["ConvTranspose"], 1);
  EXPECT_EQ(o.nodes_after, 2u);
}

TEST(Passes, BatchNormToMulAddAndConvScaleBias) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 3, 5, 5});
    std::vector<Value*> bn;
    bnParams(b, 3, &bn);
    Value* y = b.op("BatchNormalization", {x, bn[0], bn[1], bn[2], bn[3]});  // no conv before
    Value* c = b.op("Conv", {y, b.randn({4, 3, 1, 1}, 6)});
    Value* m = b.op("Mul", {c, b.randn({4, 1, 1}, 7)});
    b.output(b.op("Add", {b.randn({1, 4, 1, 1}, 8), m}));
  });
  EXPECT_EQ(o.after.count("BatchNormalization"), 0u);
  EXPECT_EQ(o.after["Mul"], 1);  // the decomposed BN
  EXPECT_EQ(o.after["Add"], 1);
  EXPECT_EQ(o.after["Conv"], 1);  // with the later Mul/Add folded in
  EXPECT_EQ(o.nodes_after, 3u);
}

TEST(Passes, MatMulAddToGemm) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* a = b.input("a", {4, 8});
    Value* mm = b.op("MatMul", {a, b.randn({8, 5}, 1)});
    Value* y = b.op("Add", {mm, b.randn({5}, 2)});
    Value* g = b.op("Gemm", {y, b.randn({6, 5}, 3)}, {{"transB", Attribute::fromInt(1)}});
    b.output(b.op("Add", {b.randn({1, 6}, 4), g}));  // bias add folded into Gemm's C
  });
  EXPECT_EQ(o.after["Gemm"], 2);
  EXPECT_EQ(o.nodes_after, 2u);
}

TEST(Passes, SiluAndMish) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 8});
    Value* s = b.op("Mul", {b.op("Sigmoid", {x}), x});
    Value* m = b.op("Mul", {s, b.op("Tanh", {b.op("Softplus", {s})})});
    b.output(m);
  });
  EXPECT_EQ(o.after["Silu"], 1);
  EXPECT_EQ(o.after["Mish"], 1);
  EXPECT_EQ(o.nodes_after, 2u);
}

// YOLOv8's DFL head: [B, 64, A] -> [B, 4, 16, A] -> [B, 16, 4, A] -> Softmax(1) -> Conv 1x1 16->1
// with weights 0..15 -> [B, 4, A]. A constant bias folds into the weights (probabilities sum
// to 1); a Conv with padding, two output channels or a legacy (2-D) Softmax is left alone.
TEST(Passes, SoftmaxWeightedSumFusion) {
  for (bool with_bias : {false, true}) {
    auto o = optimizeAndCompare([&](GB& b) {
      Value* x = b.input("x", {2, 64, 40});
      Value* r = b.op("Reshape", {x, b.ints({2, 4, 16, 40})});
      Value* t = b.op("Transpose", {r}, {{"perm", ints({0, 2, 1, 3})}});
      Value* sm = b.op("Softmax", {t}, {{"axis", Attribute::fromInt(1)}});
      std::vector<float> w(16);
      for (int i = 0; i < 16; ++i) w[static_cast<size_t>(i)] = static_cast<float>(i);
      std::vector<Value*> ins = {sm, b.cst(Tensor::fromVector<float>(w, {1, 16, 1, 1}))};
      if (with_bias) ins.push_back(b.cst(Tensor::fromVector<float>({0.25f}, {1})));
      Value* c = b.op("Conv", ins, {{"kernel_shape", ints({1, 1})}});
      b.output(b.op("Reshape", {c, b.ints({2, 4, 40})}));
    });
    EXPECT_EQ(o.after["SoftmaxWeightedSum"], 1) << "bias " << with_bias;
    EXPECT_EQ(o.after["Softmax"], 0);
    EXPECT_EQ(o.after["Conv"], 0);
  }
  auto kept = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 16, 4, 5});
    Value* sm = b.op("Softmax", {x}, {{"axis", Attribute::fromInt(1)}});
    b.output(b.op("Conv", {sm, b.randn({1, 16, 1, 1}, 3)}, {{"pads", ints({1, 1, 1, 1})}}));
    Value* sm2 = b.op("Softmax", {x}, {{"axis", Attribute::fromInt(1)}, {"coerce_2d", Attribute::fromInt(1)}});
    b.output(b.op("Conv", {sm2, b.randn({1, 16, 1, 1}, 4)}));
    Value* sm3 = b.op("Softmax", {x}, {{"axis", Attribute::fromInt(1)}});
    b.output(b.op("Conv", {sm3, b.randn({2, 16, 1, 1}, 5)}));
  });
  EXPECT_EQ(kept.after["SoftmaxWeightedSum"], 0);
}

// A patch embedding (Conv with kernel == stride, no padding) becomes reshape/transpose + a GEMM
// with the bias; overlapping, padded or 1x1 convolutions stay convolutions.
TEST(Passes, PatchifyConvToGemm) {
  for (bool bias : {true, false}) {
    auto o = optimizeAndCompare([&](GB& b) {
      Value* x = b.input("x", {2, 3, 8, 12});
      std::vector<Value*> ins = {x, b.randn({5, 3, 4, 4}, 11)};
      if (bias) ins.push_back(b.randn({5}, 12));
      b.output(b.op("Conv", ins, {{"kernel_shape", ints({4, 4})}, {"strides", ints({4, 4})}}));
    });
    EXPECT_EQ(o.after["Conv"], 0) << "bias " << bias;
    EXPECT_EQ(o.after["MatMul"] + o.after["Gemm"], 1);
  }
  auto kept = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {1, 3, 8, 8});
    b.output(b.op("Conv", {x, b.randn({4, 3, 4, 4}, 1)}, {{"kernel_shape", ints({4, 4})}, {"strides", ints({2, 2})}}));
    b.output(b.op("Conv", {x, b.randn({4, 3, 4, 4}, 2)},
                  {{"kernel_shape", ints({4, 4})}, {"strides", ints({4, 4})}, {"pads", ints({2, 2, 2, 2})}}));
    b.output(b.op("Conv", {x, b.randn({4, 3, 1, 1}, 3)}));
    b.output(b.op("Conv", {x, b.randn({4, 3, 3, 3}, 4)}, {{"kernel_shape", ints({3, 3})}, {"strides", ints({3, 3})}}));
  });
  EXPECT_EQ(kept.after["Conv"], 4);  // the last: 8 is not a multiple of 3
}

TEST(Passes, GeluErfAndTanhForms) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {3, 16});
    // torch's erf export: (x * (1 + erf(x / sqrt2))) * 0.5
    Value* e = b.op("Add", {b.op("Erf", {b.op("Div", {x, b.scalar(1.4142135f)})}), b.scalar(1.f)});
    Value* g1 = b.op("Mul", {b.op("Mul", {x, e}), b.scalar(0.5f)});
    // (x * 0.5) * (1 + erf(x * 0.7071))
    Value* e2 =
        b.op("Add", {b.scalar(1.f), b.op("Erf", {b.op("Mul", {g1, b.scalar(0.70710677f)})})});
    Value* g2 = b.op("Mul", {b.op("Mul", {g1, b.scalar(0.5f)}), e2});
    // tanh form: x * ((1 + tanh(0.79788 * (x + 0.044715 * x^3))) * 0.5)
    Value* cube = b.op("Pow", {g2, b.scalar(3.f)});
    Value* inner = b.op("Add", {g2, b.op("Mul", {cube, b.scalar(0.044715f)})});
    Value* t = b.op("Tanh", {b.op("Mul", {b.scalar(0.7978845608f), inner})});
    Value* h = b.op("Mul", {b.op("Add", {t, b.scalar(1.f)}), b.scalar(0.5f)});
    b.output(b.op("Mul", {g2, h}));
  });
  EXPECT_EQ(o.after["Gelu"], 3);
  EXPECT_EQ(o.nodes_after, 3u);
}

TEST(Passes, HardSwishForms) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 10});
    Value* h1 =
        b.op("Mul", {x, b.op("HardSigmoid", {x}, {{"alpha", Attribute::fromFloat(1.f / 6)}})});
    Value* r6 = b.op("Clip", {b.op("Add", {h1, b.scalar(3.f)}), b.scalar(0.f), b.scalar(6.f)});
    Value* h2 = b.op("Div", {b.op("Mul", {h1, r6}), b.scalar(6.f)});  // (x * relu6(x+3)) / 6
    Value* r6b = b.op("Clip", {b.op("Add", {h2, b.scalar(3.f)}), b.scalar(0.f), b.scalar(6.f)});
    b.output(b.op("Mul", {h2, b.op("Mul", {r6b, b.scalar(1.f / 6)})}));  // x * (relu6(x+3) / 6)
  });
  EXPECT_EQ(o.after["HardSwish"], 3);
  EXPECT_EQ(o.nodes_after, 3u);
}

// The pre-opset-17 LayerNorm decomposition over `axes`, optionally with affine parameters.
Value* decomposedLayerNorm(GB& b, Value* x, std::vector<int64_t> axes, Value* gamma, Value* beta) {
  Value* mean = b.op("ReduceMean", {x, b.ints(axes)});
  Value* d = b.op("Sub", {x, mean});
  Value* var = b.op("ReduceMean", {b.op("Pow", {d, b.scalar(2.f)}), b.ints(axes)});
  Value* n = b.op("Div", {d, b.op("Sqrt", {b.op("Add", {var, b.scalar(1e-5f)})})});
  if (gamma) n = b.op("Mul", {n, gamma});
  if (beta) n = b.op("Add", {n, beta});
  return n;
}

TEST(Passes, LayerNormFusion) {
  auto o = optimizeAndCompare([](GB& b) {
    Value* x = b.input("x", {2, 5, 8});
    Value* y = decomposedLayerNorm(b, x, {-1}, b.randn({8}, 1), b.randn({8}, 2));
    Value* z = decomposedLayerNorm(b, y, {1, 2}, nullptr, nullptr);  // two axes, no affine
    b.output(z);
  });
  EXPECT_EQ(o.after["LayerNormalization"], 2);
  EXPECT_EQ(o.nodes_after, 2u);
}

TEST(Passes, AttentionFusion) {
  // The ViT (torch MultiheadAttention) export: Q / sqrt(d), K already transposed by a
  // 3-D Transpose, then MatMul -> Softmax -> MatMul; a second block with a scale and a mask.
  auto o = optimizeAndCompare([](GB& b) {
    Value* q = b.input("q", {6, 5, 8});  // [B*H, S, D]
    Value* k = b.input("k", {5, 6, 8});  // [S, B*H, D]
    Value* v = b.input("v", {6, 5, 8});
    Value* mask = b.input("mask", {1, 5, 5});
    Value* qs = b.op("Div", {q, b.scalar(std::sqrt(8.f))});
    Value* kt = b.op("Transpose", {k}, {{"perm", ints({1, 2, 0})}});
    Value* p = b.op("Softmax", {b.op("MatMul", {qs, kt})}, {{"axis", Attribute::fromInt(-1)}});
    Value* a1 = b.op("MatMul", {p, v});
    Value* kt2 = b.op("Transpose", {a1}, {{"perm", ints({0, 2, 1})}});
    Value* s2 = b.op("Add", {b.op("Mul", {b.op("MatMul", {a1, kt2}), b.scalar(0.3f)}), mask});
    Value* p2 = b.op("Softmax", {s2}, {{"axis", Attribute::fromInt(2)}});
    b.output(b.op("MatMul", {p2, v}));
  });
  EXPECT_EQ(o.after["Attention"], 2);
  EXPECT_EQ(o.after.count("Softmax"), 0u);
  EXPECT_EQ(o.after["Transpose"], 1);  // K's transposes merged/cancelled
  EXPECT_EQ(o.nodes_after, 3u);
}

void buildMix(GB& b) {
  Value* x = b.input("x", {1, 3, 6, 6});
  std::vector<Value*> bn;
  bnParams(b, 4, &bn);
  Value* c = b.op("Conv", {b.op("Identity", {x}), b.randn({4, 3, 3, 3}, 1)});
  Value* y = b.op("BatchNormalization", {c, bn[0], bn[1], bn[2], bn[3]});
  b.output(b.op("Mul", {y, b.op("Sigmoid", {y})}));
}

TEST(Passes, KillSwitchByOption) {
  PassOptions off;
  off.disabled = {"all"};
  auto o = optimizeAndCompare(buildMix, off);
  EXPECT_EQ(o.after, o.before);
  PassOptions some;
  // BatchNormToMulAdd too: otherwise BN -> Mul+Add -> ConvScaleBiasFold reaches the same graph.
  some.disabled = {"ConvBnFold", "BatchNormToMulAdd", "SiluFusion"};
  auto p = optimizeAndCompare(buildMix, some);
  EXPECT_EQ(p.after["BatchNormalization"], 1);
  EXPECT_EQ(p.after["Sigmoid"], 1);
  EXPECT_EQ(p.after.count("Identity"), 0u);  // still enabled
  bool reported = false;
  for (const auto& e : p.report.passes) reported |= e.name == "ConvBnFold" && e.disabled;
  EXPECT_TRUE(reported);
  auto all = optimizeAndCompare(buildMix);
  EXPECT_EQ(all.after.count("BatchNormalization"), 0u);
  EXPECT_EQ(all.after["Silu"] + all.after["FusedConv"], 1);  // Conv+Silu -> FusedConv
}

TEST(Passes, KillSwitchByEnvironment) {
  setenv("RAMJET_DISABLE_PASSES", "ConvBnFold, BatchNormToMulAdd,SiluFusion", 1);
  auto o = optimizeAndCompare(buildMix);
  unsetenv("RAMJET_DISABLE_PASSES");
  EXPECT_EQ(o.after["BatchNormalization"], 1);
  EXPECT_EQ(o.after["Sigmoid"], 1);
}

TEST(Passes, UnknownPassNameIsAnError) {
  GB b;
  buildMix(b);
  PassOptions opts;
  opts.disabled = {"NoSuchPass"};
  Status st = passes::optimizeGraph(b.g, opts);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("NoSuchPass"), std::string::npos) << st.message();
}

TEST(Passes, FusedOpsRejectBadInputsWithClearErrors) {
  GB b;
  Value* q = b.input("q", {2, 4, 8});
  Value* k = b.input("k", {2, 5, 6});  // head size 6 != 8
  Value* v = b.input("v", {2, 5, 8});
  Node* n = b.node("Attention", {q, k, v});
  b.output(n->outputs[0]);
  Status st = b.g.inferShapes();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("head size"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find(n->name), std::string::npos) << st.message();
  GB c;
  Value* x = c.input("x", {3}, DataType::kInt64);
  c.output(c.op("Silu", {x}));
  st = c.g.inferShapes();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("float"), std::string::npos) << st.message();
}

// Whole models: node count before/after and the reference output difference.
void wholeModel(const std::string& path, double tol, std::map<std::string, int>* after_ops) {
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present";
  auto a = importOnnx(path);
  auto b = importOnnx(path);
  ASSERT_TRUE(a.ok()) << a.status().toString();
  ASSERT_TRUE(b.ok());
  PassReport report;
  Status st = passes::optimizeGraph(*b, {}, &report);
  ASSERT_TRUE(st.ok()) << st.toString();
  auto feeds = randomFeeds(*a, 3);
  auto ra = reference::run(*a, feeds);
  auto rb = reference::run(*b, feeds);
  ASSERT_TRUE(ra.ok()) << ra.status().toString();
  ASSERT_TRUE(rb.ok()) << rb.status().toString();
  double max_abs = 0, ref_max = 0;
  for (size_t i = 0; i < ra->size(); ++i) {
    CompareResult c = compareTensors((*rb)[i], (*ra)[i], tol, tol);
    EXPECT_TRUE(c.shape_match);
    max_abs = std::max(max_abs, c.max_abs);
    for (int64_t j = 0; j < (*ra)[i].numel(); ++j)
      ref_max = std::max(ref_max, std::fabs((*ra)[i].getDouble(j)));
  }
  *after_ops = opCounts(*b);
  std::printf(
      "  %s\n%s  ops before: %s\n  ops after:  %s\n  max abs error %.3g (output max |y| %.3g)\n",
      path.c_str(), report.toString().c_str(), opList(*a).c_str(), opList(*b).c_str(), max_abs,
      ref_max);
  EXPECT_LE(max_abs, tol * std::max(1.0, ref_max));
}

TEST(PassesModels, TinyCnn) {
  std::map<std::string, int> ops;
  wholeModel(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx", 1e-4, &ops);
  EXPECT_EQ(ops.count("BatchNormalization"), 0u);  // conv1 -> bn1 folds into conv1
  EXPECT_EQ(ops["Conv"] + ops["FusedConv"], 2);  // Conv+Relu become FusedConv (ConvActivationFusion)
}

TEST(PassesModels, ZooResNet50) {
  std::map<std::string, int> ops;
  wholeModel(std::string(RAMJET_SOURCE_DIR) + "/models/zoo/resnet50.onnx", 1e-4, &ops);
  EXPECT_EQ(ops.count("BatchNormalization"), 0u);
}

// ResNet-50 exported with its BatchNormalization nodes kept (the zoo's export folds them in
// torch already); docs/PASSES.md gives the export command. Path from RAMJET_TEST_BN_RESNET50.
TEST(PassesModels, ResNet50WithBatchNorm) {
  const char* path = std::getenv("RAMJET_TEST_BN_RESNET50");
  if (!path)
    GTEST_SKIP() << "set RAMJET_TEST_BN_RESNET50 to a ResNet-50 exported with BatchNormalization";
  std::map<std::string, int> ops;
  wholeModel(path, 1e-4, &ops);
  EXPECT_EQ(ops.count("BatchNormalization"), 0u);
  EXPECT_EQ(ops["Conv"], 53);
}

TEST(PassesModels, ZooViT) {
  std::map<std::string, int> ops;
  wholeModel(std::string(RAMJET_SOURCE_DIR) + "/models/zoo/vit_b_16.onnx", 1e-4, &ops);
  if (ops.empty()) return;
  EXPECT_EQ(ops["LayerNormalization"], 25);
  EXPECT_EQ(ops["Gelu"], 12);
  EXPECT_EQ(ops.count("Erf"), 0u);
}

}  // namespace
}  // namespace ramjet
