// Tensor-family ops (shape functions + reference kernels) against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cpu/reference/interpreter.h"
#include "ramjet/graph.h"
#include "ramjet/tensor.h"

using namespace ramjet;

namespace {

using Attrs = std::map<std::string, Attribute>;

// One-node graph: inputs[i] is a runtime graph input unless const_mask[i]; a default (undefined)
// tensor is an omitted optional input.
struct OneNode {
  Graph g;
  Node* node = nullptr;
  std::vector<Value*> outs;
  std::map<std::string, Tensor> feeds;
};

std::unique_ptr<OneNode> build(const std::string& op, const std::vector<Tensor>& inputs, const Attrs& attrs,
                               size_t n_out, const std::vector<bool>& const_mask = {}) {
  auto m = std::make_unique<OneNode>();
  std::vector<Value*> ins;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      ins.push_back(nullptr);
      continue;
    }
    Value* v = m->g.addValue("in" + std::to_string(i));
    v->type = inputs[i].type();
    if (i < const_mask.size() && const_mask[i]) {
      v->constant = std::make_shared<Tensor>(inputs[i]);
    } else {
      v->is_graph_input = true;
      m->g.inputs.push_back(v);
      m->feeds[v->name] = inputs[i];
    }
    ins.push_back(v);
  }
  for (size_t i = 0; i < n_out; ++i) m->outs.push_back(m->g.addValue("out" + std::to_string(i)));
  m->node = m->g.addNode(op, op + "_0", ins, m->outs);
  m->node->attrs = attrs;
  m->g.outputs = m->outs;
  for (Value* v : m->outs) v->is_graph_output = true;
  return m;
}

Result<std::vector<Tensor>> runOp(const std::string& op, const std::vector<Tensor>& inputs, const Attrs& attrs = {},
                                  size_t n_out = 1, const std::vector<bool>& const_mask = {}) {
  auto m = build(op, inputs, attrs, n_out, const_mask);
  RJ_RETURN_IF_ERROR(m->g.verify());
  RJ_RETURN_IF_ERROR(m->g.inferShapes());
  return reference::run(m->g, m->feeds);
}

Tensor F(std::vector<float> v, std::vector<int64_t> d) { return Tensor::fromVector<float>(v, d); }
Tensor I(std::vector<int64_t> v, std::vector<int64_t> d) { return Tensor::fromVector<int64_t>(v, d); }
Tensor I1(std::vector<int64_t> v) { return Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}); }

template <typename T>
std::vector<T> vals(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}
std::vector<float> fv(const Tensor& t) { return vals<float>(t); }
std::vector<int64_t> iv(const Tensor& t) { return vals<int64_t>(t); }
using D = std::vector<int64_t>;
using FV = std::vector<float>;

Attribute ai(int64_t v) { return Attribute::fromInt(v); }
Attribute as(std::string v) { return Attribute::fromString(v); }
Attribute ais(std::vector<int64_t> v) { return Attribute::fromInts(v); }

#define RUN_OK(var, expr)                                 \
  auto var##_r = (expr);                                  \
  ASSERT_TRUE(var##_r.ok()) << var##_r.status().toString(); \
  auto& var = *var##_r

}  // namespace

TEST(TensorOps, ReshapeZeroMinusOneAllowzero) {
  Tensor x = F({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 3, 2});
  RUN_OK(o, runOp("Reshape", {x, I1({0, -1})}));
  EXPECT_EQ(o[0].dims(), (D{2, 6}));
  EXPECT_EQ(fv(o[0]), fv(x));
  RUN_OK(o2, runOp("Reshape", {x, I1({-1, 4})}));
  EXPECT_EQ(o2[0].dims(), (D{3, 4}));
  // allowzero: a 0 is a real 0-size dim.
  RUN_OK(o3, runOp("Reshape", {F({}, {0, 3}), I1({3, 0})}, {{"allowzero", ai(1)}}));
  EXPECT_EQ(o3[0].dims(), (D{3, 0}));
  // Size mismatch and two -1 are errors naming the node.
  auto bad = runOp("Reshape", {x, I1({5, 2})}, {}, 1, {false, true});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("Reshape"), std::string::npos) << bad.status().message();
  EXPECT_NE(bad.status().message().find("cannot reshape"), std::string::npos) << bad.status().message();
  EXPECT_FALSE(runOp("Reshape", {x, I1({-1, -1})}).ok());
  EXPECT_FALSE(runOp("Reshape", {x, I1({5, -1})}).ok());
}

// Shape -> Gather -> Unsqueeze -> Concat -> Reshape with a symbolic batch gives [N, 60].
TEST(TensorOps, SymbolicBatchReshapeThroughShapeSubgraph) {
  Graph g;
  Value* x = g.addValue("x");
  x->type = TensorType{DataType::kFloat32, Shape({Dim::symbolic("N"), Dim(3), Dim(4), Dim(5)})};
  x->is_graph_input = true;
  g.inputs = {x};
  auto cst = [&](const std::string& name, Tensor t) {
    Value* v = g.addValue(name);
    v->type = t.type();
    v->constant = std::make_shared<Tensor>(t);
    return v;
  };
  Value *shape = g.addValue("shape"), *n = g.addValue("n"), *n1 = g.addValue("n1"), *target = g.addValue("target"),
        *y = g.addValue("y"), *c = g.addValue("c"), *y2 = g.addValue("y2"), *tail = g.addValue("tail"),
        *t2 = g.addValue("t2"), *y3 = g.addValue("y3");
  g.addNode("Shape", "shape0", {x}, {shape});
  g.addNode("Gather", "gather0", {shape, cst("zero", Tensor::scalar<int64_t>(0))}, {n});
  g.addNode("Unsqueeze", "unsq0", {n, cst("ax0", I1({0}))}, {n1});
  g.addNode("Concat", "concat0", {n1, cst("c60", I1({60}))}, {target})->attrs["axis"] = ai(0);
  g.addNode("Reshape", "reshape0", {x, target}, {y});
  // The same through -1: [N, -1] must cancel N and give 60.
  g.addNode("Concat", "concat1", {n1, cst("cm1", I1({-1}))}, {c})->attrs["axis"] = ai(0);
  g.addNode("Reshape", "reshape1", {x, c}, {y2});
  // Slice of the shape ([3,4,5]) concatenated after N: [N, 3, 4, 5] -> [N*?] keeps exact dims.
  g.addNode("Slice", "slice0", {shape, cst("s1", I1({1})), cst("e1", I1({INT64_MAX}))}, {tail});
  g.addNode("Concat", "concat2", {n1, tail}, {t2})->attrs["axis"] = ai(0);
  g.addNode("Expand", "expand0", {x, t2}, {y3});
  g.outputs = {y, y2, y3};
  ASSERT_TRUE(g.verify().ok());
  Status st = g.inferShapes();
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_EQ(shape->type.shape.toString(), "[4]");
  EXPECT_EQ(n->type.shape.toString(), "[]");
  EXPECT_EQ(y->type.shape.toString(), "[N,60]");
  EXPECT_EQ(y2->type.shape.toString(), "[N,60]");
  EXPECT_EQ(y3->type.shape.toString(), "[N,3,4,5]");
  Tensor in(DataType::kFloat32, {2, 3, 4, 5});
  for (int64_t i = 0; i < in.numel(); ++i) in.data<float>()[i] = static_cast<float>(i);
  auto out = reference::run(g, {{"x", in}});
  ASSERT_TRUE(out.ok()) << out.status().toString();
  EXPECT_EQ((*out)[0].dims(), (D{2, 60}));
  EXPECT_EQ((*out)[1].dims(), (D{2, 60}));
  EXPECT_EQ((*out)[2].dims(), (D{2, 3, 4, 5}));
  EXPECT_EQ((*out)[0].data<float>()[119], 119.f);
}

TEST(TensorOps, TransposeConcatSplit) {
  Tensor x = F({1, 2, 3, 4, 5, 6}, {2, 3});
  RUN_OK(t, runOp("Transpose", {x}));
  EXPECT_EQ(t[0].dims(), (D{3, 2}));
  EXPECT_EQ(fv(t[0]), (FV{1, 4, 2, 5, 3, 6}));
  RUN_OK(t3, runOp("Transpose", {F({0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2})}, {{"perm", ais({1, 2, 0})}}));
  EXPECT_EQ(fv(t3[0]), (FV{0, 4, 1, 5, 2, 6, 3, 7}));
  EXPECT_FALSE(runOp("Transpose", {x}, {{"perm", ais({0, 0})}}).ok());

  RUN_OK(c, runOp("Concat", {x, F({7, 8}, {2, 1})}, {{"axis", ai(-1)}}));
  EXPECT_EQ(c[0].dims(), (D{2, 4}));
  EXPECT_EQ(fv(c[0]), (FV{1, 2, 3, 7, 4, 5, 6, 8}));
  RUN_OK(ce, runOp("Concat", {x, F({}, {0, 3})}, {{"axis", ai(0)}}));  // empty input
  EXPECT_EQ(fv(ce[0]), fv(x));
  EXPECT_FALSE(runOp("Concat", {x, F({1, 2}, {1, 2})}, {{"axis", ai(0)}}).ok());
  EXPECT_FALSE(runOp("Concat", {x, x}, {{"axis", ai(2)}}).ok());

  // num_outputs with an uneven last chunk: 5 -> 2, 2, 1.
  RUN_OK(s, runOp("Split", {F({1, 2, 3, 4, 5}, {5})}, {{"num_outputs", ai(3)}}, 3));
  EXPECT_EQ(fv(s[0]), (FV{1, 2}));
  EXPECT_EQ(fv(s[2]), (FV{5}));
  RUN_OK(s2, runOp("Split", {x, I1({1, 2})}, {{"axis", ai(-1)}}, 2));
  EXPECT_EQ(fv(s2[0]), (FV{1, 4}));
  EXPECT_EQ(fv(s2[1]), (FV{2, 3, 5, 6}));
  EXPECT_FALSE(runOp("Split", {x, I1({1, 1})}, {{"axis", ai(1)}}, 2, {false, true}).ok());
}

TEST(TensorOps, SliceStepsClampingAxes) {
  Tensor x = F({0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {10});
  RUN_OK(a, runOp("Slice", {x, I1({-1}), I1({INT64_MIN}), I1({0}), I1({-3})}));
  EXPECT_EQ(fv(a[0]), (FV{9, 6, 3, 0}));
  RUN_OK(b, runOp("Slice", {x, I1({2}), I1({1000})}));
  EXPECT_EQ(fv(b[0]), (FV{2, 3, 4, 5, 6, 7, 8, 9}));
  RUN_OK(e, runOp("Slice", {x, I1({5}), I1({2})}));  // empty
  EXPECT_EQ(e[0].dims(), (D{0}));
  Tensor m = F({1, 2, 3, 4, 5, 6}, {2, 3});
  RUN_OK(c, runOp("Slice", {m, I1({1}), I1({3}), I1({-1})}));
  EXPECT_EQ(c[0].dims(), (D{2, 2}));
  EXPECT_EQ(fv(c[0]), (FV{2, 3, 5, 6}));
  EXPECT_FALSE(runOp("Slice", {m, I1({0}), I1({1}), I1({2})}).ok());          // bad axis
  EXPECT_FALSE(runOp("Slice", {m, I1({0}), I1({1}), I1({0}), I1({0})}).ok());  // zero step
  // Huge steps and empty axes do not overflow.
  RUN_OK(h, runOp("Slice", {x, I1({1}), I1({INT64_MAX}), I1({0}), I1({INT64_MAX})}));
  EXPECT_EQ(fv(h[0]), (FV{1}));
  RUN_OK(z, runOp("Slice", {F({}, {0}), I1({-1}), I1({INT64_MIN}), I1({0}), I1({-1})}));
  EXPECT_EQ(z[0].numel(), 0);
}

TEST(TensorOps, GatherFamily) {
  Tensor x = F({1, 2, 3, 4, 5, 6}, {3, 2});
  RUN_OK(g, runOp("Gather", {x, I({-1, 0}, {2})}));
  EXPECT_EQ(fv(g[0]), (FV{5, 6, 1, 2}));
  RUN_OK(g1, runOp("Gather", {x, Tensor::scalar<int64_t>(1)}, {{"axis", ai(1)}}));
  EXPECT_EQ(g1[0].dims(), (D{3}));
  EXPECT_EQ(fv(g1[0]), (FV{2, 4, 6}));
  auto oob = runOp("Gather", {x, I({3}, {1})});
  ASSERT_FALSE(oob.ok());
  EXPECT_NE(oob.status().message().find("out of range"), std::string::npos);

  RUN_OK(ge, runOp("GatherElements", {F({1, 2, 3, 4}, {2, 2}), I({0, 0, 1, 0}, {2, 2})}, {{"axis", ai(1)}}));
  EXPECT_EQ(fv(ge[0]), (FV{1, 1, 4, 3}));
  RUN_OK(gn, runOp("GatherND", {F({0, 1, 2, 3, 4, 5, 6, 7}, {2, 2, 2}), I({1, 0}, {2, 1})},
                   {{"batch_dims", ai(1)}}));
  EXPECT_EQ(gn[0].dims(), (D{2, 2}));
  EXPECT_EQ(fv(gn[0]), (FV{2, 3, 4, 5}));

  RUN_OK(sn, runOp("ScatterND", {F({1, 2, 3, 4}, {4}), I({1, 1, 3}, {3, 1}), F({10, 20, 30}, {3})},
                   {{"reduction", as("add")}}));
  EXPECT_EQ(fv(sn[0]), (FV{1, 32, 3, 34}));
  RUN_OK(se, runOp("ScatterElements", {F({0, 0, 0, 0}, {2, 2}), I({1, 0}, {1, 2}), F({5, 6}, {1, 2})},
                   {{"axis", ai(0)}}));
  EXPECT_EQ(fv(se[0]), (FV{0, 6, 5, 0}));
  RUN_OK(sm, runOp("ScatterElements", {F({1, 2}, {2}), I({1, 1}, {2}), F({5, 7}, {2})}, {{"reduction", as("max")}}));
  EXPECT_EQ(fv(sm[0]), (FV{1, 7}));
}

TEST(TensorOps, SqueezeUnsqueezeFlattenExpandTile) {
  Tensor x = F({1, 2, 3}, {1, 3, 1});
  RUN_OK(s, runOp("Squeeze", {x, I1({-1})}));
  EXPECT_EQ(s[0].dims(), (D{1, 3}));
  RUN_OK(sa, runOp("Squeeze", {x}));
  EXPECT_EQ(sa[0].dims(), (D{3}));
  EXPECT_FALSE(runOp("Squeeze", {x, I1({1})}).ok());  // size 3 is not squeezable
  RUN_OK(u, runOp("Unsqueeze", {F({1, 2, 3}, {3}), I1({0, -1})}));
  EXPECT_EQ(u[0].dims(), (D{1, 3, 1}));
  EXPECT_FALSE(runOp("Unsqueeze", {F({1, 2, 3}, {3}), I1({3})}).ok());
  RUN_OK(f, runOp("Flatten", {F({1, 2, 3, 4, 5, 6}, {1, 2, 3})}, {{"axis", ai(-1)}}));
  EXPECT_EQ(f[0].dims(), (D{2, 3}));
  RUN_OK(e, runOp("Expand", {F({1, 2, 3}, {3, 1}), I1({2, 1, 2})}));
  EXPECT_EQ(e[0].dims(), (D{2, 3, 2}));
  EXPECT_EQ(fv(e[0]), (FV{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  EXPECT_FALSE(runOp("Expand", {F({1, 2, 3}, {3}), I1({2})}).ok());
  RUN_OK(t, runOp("Tile", {F({1, 2, 3, 4}, {2, 2}), I1({1, 2})}));
  EXPECT_EQ(fv(t[0]), (FV{1, 2, 1, 2, 3, 4, 3, 4}));
}

TEST(TensorOps, PadModes) {
  Tensor x = F({1, 2, 3}, {3});
  RUN_OK(c, runOp("Pad", {x, I1({2, 1}), Tensor::scalar<float>(9)}));
  EXPECT_EQ(fv(c[0]), (FV{9, 9, 1, 2, 3, 9}));
  RUN_OK(r, runOp("Pad", {x, I1({2, 2})}, {{"mode", as("reflect")}}));
  EXPECT_EQ(fv(r[0]), (FV{3, 2, 1, 2, 3, 2, 1}));
  RUN_OK(e, runOp("Pad", {x, I1({2, 1})}, {{"mode", as("edge")}}));
  EXPECT_EQ(fv(e[0]), (FV{1, 1, 1, 2, 3, 3}));
  RUN_OK(w, runOp("Pad", {x, I1({2, 1})}, {{"mode", as("wrap")}}));
  EXPECT_EQ(fv(w[0]), (FV{2, 3, 1, 2, 3, 1}));
  RUN_OK(n, runOp("Pad", {x, I1({-1, 0})}));  // negative pad crops
  EXPECT_EQ(fv(n[0]), (FV{2, 3}));
  // axes input: pad only the last axis of a 2-D tensor.
  RUN_OK(a, runOp("Pad", {F({1, 2}, {1, 2}), I1({1, 0}), Tensor(), I1({-1})}));
  EXPECT_EQ(a[0].dims(), (D{1, 3}));
  EXPECT_EQ(fv(a[0]), (FV{0, 1, 2}));
  EXPECT_FALSE(runOp("Pad", {x, I1({1})}).ok());
  // CenterCropPad: crop 5 -> 2 drops 1 at the start and 2 at the end; pad 3 -> 6 adds 1 and 2.
  RUN_OK(cc, runOp("CenterCropPad", {F({1, 2, 3, 4, 5}, {5}), I1({2})}));
  EXPECT_EQ(fv(cc[0]), (FV{2, 3}));
  RUN_OK(cp, runOp("CenterCropPad", {x, I1({6})}));
  EXPECT_EQ(fv(cp[0]), (FV{0, 1, 2, 3, 0, 0}));
}

TEST(TensorOps, DepthSpace) {
  Tensor x(DataType::kFloat32, {1, 8, 1, 1});
  for (int i = 0; i < 8; ++i) x.data<float>()[i] = i;
  RUN_OK(d, runOp("DepthToSpace", {x}, {{"blocksize", ai(2)}}));
  EXPECT_EQ(d[0].dims(), (D{1, 2, 2, 2}));
  EXPECT_EQ(fv(d[0]), (FV{0, 2, 4, 6, 1, 3, 5, 7}));
  RUN_OK(c, runOp("DepthToSpace", {x}, {{"blocksize", ai(2)}, {"mode", as("CRD")}}));
  EXPECT_EQ(fv(c[0]), (FV{0, 1, 2, 3, 4, 5, 6, 7}));
  RUN_OK(s, runOp("SpaceToDepth", {d[0]}, {{"blocksize", ai(2)}}));
  EXPECT_EQ(fv(s[0]), fv(x));
  EXPECT_FALSE(runOp("DepthToSpace", {F({1, 2, 3}, {1, 3, 1, 1})}, {{"blocksize", ai(2)}}).ok());
}

TEST(TensorOps, ShapeSizeConstantOfShapeRange) {
  Tensor x(DataType::kFloat32, {2, 3, 4});
  RUN_OK(s, runOp("Shape", {x}, {{"start", ai(-2)}}));
  EXPECT_EQ(iv(s[0]), (D{3, 4}));
  RUN_OK(z, runOp("Size", {x}));
  EXPECT_EQ(iv(z[0]), (D{24}));
  RUN_OK(c, runOp("ConstantOfShape", {I1({2, 2})}, {{"value", Attribute::fromTensor(I({7}, {1}))}}));
  EXPECT_EQ(iv(c[0]), (D{7, 7, 7, 7}));
  RUN_OK(r, runOp("Range", {Tensor::scalar<float>(1), Tensor::scalar<float>(2), Tensor::scalar<float>(0.25f)}));
  EXPECT_EQ(fv(r[0]), (FV{1, 1.25f, 1.5f, 1.75f}));
  RUN_OK(ri, runOp("Range", {Tensor::scalar<int64_t>(10), Tensor::scalar<int64_t>(4), Tensor::scalar<int64_t>(-3)}));
  EXPECT_EQ(iv(ri[0]), (D{10, 7}));
  RUN_OK(re, runOp("Range", {Tensor::scalar<int64_t>(3), Tensor::scalar<int64_t>(3), Tensor::scalar<int64_t>(1)}));
  EXPECT_EQ(re[0].numel(), 0);
}

TEST(TensorOps, ReductionsArgTopK) {
  Tensor x = F({1, 2, 3, 4, 5, 6}, {2, 3});
  RUN_OK(s, runOp("ReduceSum", {x, I1({-1})}));
  EXPECT_EQ(s[0].dims(), (D{2, 1}));
  EXPECT_EQ(fv(s[0]), (FV{6, 15}));
  RUN_OK(all, runOp("ReduceMean", {x}, {{"keepdims", ai(0)}}));
  EXPECT_EQ(all[0].dims(), (D{}));
  EXPECT_FLOAT_EQ(fv(all[0])[0], 3.5f);
  RUN_OK(noop, runOp("ReduceSum", {x, I1({})}, {{"noop_with_empty_axes", ai(1)}}));
  EXPECT_EQ(fv(noop[0]), fv(x));
  RUN_OK(mx, runOp("ReduceMax", {x, I1({0})}, {{"keepdims", ai(0)}}));
  EXPECT_EQ(fv(mx[0]), (FV{4, 5, 6}));
  RUN_OK(l2, runOp("ReduceL2", {F({3, 4}, {2})}));
  EXPECT_FLOAT_EQ(fv(l2[0])[0], 5.f);
  RUN_OK(lse, runOp("ReduceLogSumExp", {F({1000, 1000}, {2})}));  // no overflow
  EXPECT_NEAR(fv(lse[0])[0], 1000 + std::log(2.0), 1e-3);
  RUN_OK(pe, runOp("ReduceProd", {F({}, {0, 2}), I1({0})}));  // empty reduction: identity 1
  EXPECT_EQ(fv(pe[0]), (FV{1, 1}));
  EXPECT_FALSE(runOp("ReduceSum", {x, I1({2})}).ok());

  Tensor t = F({3, 1, 3, 2}, {4});
  RUN_OK(am, runOp("ArgMax", {t}, {{"select_last_index", ai(1)}}));
  EXPECT_EQ(iv(am[0]), (D{2}));
  RUN_OK(am0, runOp("ArgMax", {t}, {{"keepdims", ai(0)}}));
  EXPECT_EQ(iv(am0[0]), (D{0}));
  RUN_OK(an, runOp("ArgMin", {x}, {{"axis", ai(-1)}}));
  EXPECT_EQ(iv(an[0]), (D{0, 0}));
  RUN_OK(tk, runOp("TopK", {t, I1({3})}, {}, 2));
  EXPECT_EQ(fv(tk[0]), (FV{3, 3, 2}));
  EXPECT_EQ(iv(tk[1]), (D{0, 2, 3}));  // ties by lower index
  RUN_OK(tks, runOp("TopK", {t, I1({2})}, {{"largest", ai(0)}}, 2));
  EXPECT_EQ(iv(tks[1]), (D{1, 3}));
  EXPECT_FALSE(runOp("TopK", {t, I1({5})}, {}, 2).ok());
}

TEST(TensorOps, CumSumNonZeroOneHotTrilu) {
  Tensor x = F({1, 2, 3}, {3});
  RUN_OK(c, runOp("CumSum", {x, Tensor::scalar<int64_t>(0)}, {{"exclusive", ai(1)}, {"reverse", ai(1)}}));
  EXPECT_EQ(fv(c[0]), (FV{5, 3, 0}));
  RUN_OK(nz, runOp("NonZero", {F({0, 1, 2, 0}, {2, 2})}));
  EXPECT_EQ(nz[0].dims(), (D{2, 2}));
  EXPECT_EQ(iv(nz[0]), (D{0, 1, 1, 0}));
  RUN_OK(oh, runOp("OneHot", {I1({0, -1}), Tensor::scalar<int64_t>(3), F({0, 5}, {2})}));
  EXPECT_EQ(oh[0].dims(), (D{2, 3}));
  EXPECT_EQ(fv(oh[0]), (FV{5, 0, 0, 0, 0, 5}));
  Tensor m = F({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
  RUN_OK(tu, runOp("Trilu", {m, Tensor::scalar<int64_t>(1)}));
  EXPECT_EQ(fv(tu[0]), (FV{0, 2, 3, 0, 0, 6, 0, 0, 0}));
  RUN_OK(tl, runOp("Trilu", {m}, {{"upper", ai(0)}}));
  EXPECT_EQ(fv(tl[0]), (FV{1, 0, 0, 4, 5, 0, 7, 8, 9}));
}

TEST(TensorOps, CompressReverseSequenceEyeLikeUnique) {
  Tensor m = F({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor cond = Tensor::fromVector<bool>({false, true, true}, {3});
  RUN_OK(c, runOp("Compress", {m, cond}, {{"axis", ai(0)}}));
  EXPECT_EQ(c[0].dims(), (D{2, 2}));
  EXPECT_EQ(fv(c[0]), (FV{3, 4, 5, 6}));
  RUN_OK(cf, runOp("Compress", {m, cond}));
  EXPECT_EQ(fv(cf[0]), (FV{2, 3}));
  // time-major [T=3, B=2]: batch 0 reverses 3 steps, batch 1 reverses 1.
  RUN_OK(rs, runOp("ReverseSequence", {m, I1({3, 1})}, {{"time_axis", ai(0)}, {"batch_axis", ai(1)}}));
  EXPECT_EQ(fv(rs[0]), (FV{5, 2, 3, 4, 1, 6}));
  RUN_OK(ey, runOp("EyeLike", {F({0, 0, 0, 0, 0, 0}, {2, 3})}, {{"k", ai(1)}}));
  EXPECT_EQ(fv(ey[0]), (FV{0, 1, 0, 0, 0, 1}));
  RUN_OK(u, runOp("Unique", {F({2, 1, 1, 3, 4, 3}, {6})}, {{"sorted", ai(0)}}, 4));
  EXPECT_EQ(fv(u[0]), (FV{2, 1, 3, 4}));
  EXPECT_EQ(iv(u[1]), (D{0, 1, 3, 4}));
  EXPECT_EQ(iv(u[2]), (D{0, 1, 1, 2, 3, 2}));
  EXPECT_EQ(iv(u[3]), (D{1, 2, 2, 1}));
  RUN_OK(us, runOp("Unique", {F({2, 1, 1, 3, 4, 3}, {6})}, {}, 1));
  EXPECT_EQ(fv(us[0]), (FV{1, 2, 3, 4}));
}

TEST(TensorOps, ResizeNearestLinearCubic) {
  Tensor x = F({1, 2, 3, 4}, {1, 1, 2, 2});
  Tensor scales = F({1, 1, 2, 2}, {4});
  RUN_OK(n, runOp("Resize", {x, Tensor(), scales},
                  {{"mode", as("nearest")}, {"coordinate_transformation_mode", as("asymmetric")},
                   {"nearest_mode", as("floor")}}));
  EXPECT_EQ(n[0].dims(), (D{1, 1, 4, 4}));
  EXPECT_EQ(fv(n[0]), (FV{1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}));
  // half_pixel linear on 1-D [1, 3] -> 4 samples: x_ori = -0.25, 0.25, 0.75, 1.25 (edge-clamped).
  RUN_OK(l, runOp("Resize", {F({1, 3}, {2}), Tensor(), F({2}, {1})}, {{"mode", as("linear")}}));
  EXPECT_EQ(fv(l[0]), (FV{1, 1.5f, 2.5f, 3}));
  // sizes + align_corners: exact endpoints.
  RUN_OK(a, runOp("Resize", {F({0, 3}, {2}), Tensor(), Tensor(), I1({4})},
                  {{"mode", as("linear")}, {"coordinate_transformation_mode", as("align_corners")}}));
  EXPECT_EQ(fv(a[0]), (FV{0, 1, 2, 3}));
  // cubic on a linear ramp reproduces the ramp away from the borders.
  RUN_OK(cb, runOp("Resize", {F({0, 1, 2, 3, 4, 5, 6, 7}, {8}), Tensor(), Tensor(), I1({15})},
                   {{"mode", as("cubic")}, {"coordinate_transformation_mode", as("align_corners")}}));
  EXPECT_NEAR(fv(cb[0])[7], 3.5f, 1e-5);
  EXPECT_FALSE(runOp("Resize", {x, Tensor(), F({2}, {1})}).ok());  // wrong scales length
  EXPECT_FALSE(runOp("Resize", {x, Tensor(), scales}, {{"mode", as("bogus")}}).ok());
}

// Values flow through the elementwise ops of shape subgraphs: Mul gives "N*2" (ViT's
// batch*heads), torch's expand(-1) pattern Where(Equal(s, -1), 1, s) keeps N.
TEST(TensorOps, ShapeValuesThroughArithmetic) {
  Graph g;
  Value* x = g.addValue("x");
  x->type = TensorType{DataType::kFloat32, Shape({Dim::symbolic("N"), Dim(4), Dim(6)})};
  x->is_graph_input = true;
  g.inputs = {x};
  auto cst = [&](const std::string& name, Tensor t) {
    Value* v = g.addValue(name);
    v->type = t.type();
    v->constant = std::make_shared<Tensor>(t);
    return v;
  };
  auto val = [&](const std::string& name) { return g.addValue(name); };
  Value *s = val("s"), *n = val("n"), *n2 = val("n2"), *n2u = val("n2u"), *t = val("t"), *y = val("y");
  g.addNode("Shape", "shape0", {x}, {s});
  g.addNode("Gather", "gather0", {s, cst("zero", Tensor::scalar<int64_t>(0))}, {n});
  g.addNode("Mul", "mul0", {n, cst("two", Tensor::scalar<int64_t>(2))}, {n2});
  g.addNode("Unsqueeze", "unsq0", {n2, cst("ax0", I1({0}))}, {n2u});
  g.addNode("Concat", "concat0", {n2u, cst("m1", I1({-1}))}, {t})->attrs["axis"] = ai(0);
  g.addNode("Reshape", "reshape0", {x, t}, {y});
  // Expand(c[1,1,6], Where(Equal(r, -1), ones, r)) with r = [N, -1, -1].
  Value *nu = val("nu"), *r = val("r"), *eq = val("eq"), *ones = val("ones"), *w = val("w"), *e = val("e"),
        *rs = val("rs");
  g.addNode("Unsqueeze", "unsq1", {n, cst("ax1", I1({0}))}, {nu});
  g.addNode("Concat", "concat1", {nu, cst("m11", I1({-1, -1}))}, {r})->attrs["axis"] = ai(0);
  g.addNode("Equal", "eq0", {r, cst("m1s", Tensor::scalar<int64_t>(-1))}, {eq});
  g.addNode("Shape", "shape1", {r}, {rs});
  g.addNode("ConstantOfShape", "cos0", {rs}, {ones})->attrs["value"] = Attribute::fromTensor(I({1}, {1}));
  g.addNode("Where", "where0", {eq, ones, r}, {w});
  Tensor c(DataType::kFloat32, {1, 1, 6});
  g.addNode("Expand", "expand0", {cst("c", c), w}, {e});
  g.outputs = {y, e};
  Status st = g.inferShapes();
  ASSERT_TRUE(st.ok()) << st.toString();
  EXPECT_EQ(y->type.shape.toString(), "[N*2,12]");
  EXPECT_EQ(e->type.shape.toString(), "[N,1,6]");
  auto out = reference::run(g, {{"x", Tensor(DataType::kFloat32, {3, 4, 6})}});
  ASSERT_TRUE(out.ok()) << out.status().toString();
  EXPECT_EQ((*out)[0].dims(), (D{6, 12}));
  EXPECT_EQ((*out)[1].dims(), (D{3, 1, 6}));
}

// Scalars and malformed parameters are errors naming the node, never out-of-bounds accesses.
TEST(TensorOps, BadInputsAreErrors) {
  Tensor s = Tensor::scalar<float>(1.f);
  auto expectError = [](const Result<std::vector<Tensor>>& r, const char* what) {
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_FALSE(r.status().message().empty()) << what;
  };
  expectError(runOp("Split", {s}, {}, 2), "Split of a scalar");
  expectError(runOp("Slice", {s, I1({0}), I1({1})}), "Slice of a scalar");
  expectError(runOp("Squeeze", {s, I1({0})}), "Squeeze of a scalar");
  expectError(runOp("ReduceSum", {s, I1({0})}), "ReduceSum axis of a scalar");
  expectError(runOp("GatherElements", {s, Tensor::scalar<int64_t>(0)}), "GatherElements of scalars");
  expectError(runOp("Compress", {s, Tensor::fromVector<bool>({true}, {1})}, {{"axis", ai(0)}}), "Compress");
  expectError(runOp("GatherND", {F({1, 2}, {2}), Tensor::scalar<int64_t>(0)}), "GatherND scalar indices");
  expectError(runOp("Trilu", {F({1, 2, 3, 4}, {2, 2}), I1({1, 2})}), "Trilu k with two elements");
  expectError(runOp("Tile", {F({1, 2}, {2}), I1({1, 2})}), "Tile repeats of the wrong length");
  expectError(runOp("TopK", {s, I1({1})}, {}, 2), "TopK of a scalar");
  expectError(runOp("Pad", {F({1, 2}, {2}), I1({-3, 0})}), "Pad cropping below zero");
  expectError(runOp("Resize", {F({1, 2}, {2}), Tensor(), F({-1}, {1})}), "Resize negative scale");
  expectError(runOp("ScatterND", {F({1, 2}, {2}), I({5}, {1, 1}), F({9}, {1})}), "ScatterND index out of range");
}
