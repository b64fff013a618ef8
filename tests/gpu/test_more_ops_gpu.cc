// GPU tests of the "more ops" family (src/backends/cuda/more_ops.cc): each op as a one-node
// graph built into a CUDA engine *without* CPU fallback (so the node must run on the GPU),
// run on random inputs, compared with the CPU reference interpreter on the same inputs.
// Shapes include odd sizes, broadcasting and empty dims; float ops run in FP32 and FP16.
// In FP16 the float inputs are rounded to half first and the reference runs on the rounded
// values in FP32, so only the kernel's own arithmetic differs.
//
// Tolerances (atol, rtol): FP32 1e-5 / 1e-5 (transcendentals 1e-5 / 1e-4); FP16 2e-2 / 1e-2;
// index/integer/bool outputs exact. Each case prints its max abs/rel error and cosine.
// Without a CUDA device every test is skipped (CI compiles these and reports them skipped).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/reference/interpreter.h"
#include "backends/cuda/cuda_ops.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

std::mt19937& rng() {
  static std::mt19937 g(4242);
  return g;
}
Tensor randF(std::vector<int64_t> dims, float lo = -2.f, float hi = 2.f) {
  Tensor t(DataType::kFloat32, dims);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng());
  return t;
}
template <typename T>
Tensor randI(DataType dt, std::vector<int64_t> dims, int64_t lo, int64_t hi) {
  Tensor t(dt, dims);
  std::uniform_int_distribution<int64_t> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<T>()[i] = static_cast<T>(u(rng()));
  return t;
}
Tensor i64s(std::vector<int64_t> v) { return Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}); }
Tensor i64scalar(int64_t v) { return Tensor::scalar<int64_t>(v); }
// Distinct values (a shuffled ramp): orderings (TopK, ArgMax, Hardmax) have no ties.
Tensor distinct(std::vector<int64_t> dims) {
  Tensor t(DataType::kFloat32, dims);
  std::vector<float> v(t.numel());
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.25f - static_cast<float>(v.size()) * 0.1f;
  std::shuffle(v.begin(), v.end(), rng());
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = v[i];
  return t;
}

using Attrs = std::map<std::string, Attribute>;
struct In {
  Tensor t;
  bool constant = false;  // a constant of the graph (attribute-like inputs: K, pads, axes)
};
In data(Tensor t) { return {std::move(t), false}; }
In cst(Tensor t) { return {std::move(t), true}; }
In none() { return {Tensor(), true}; }

struct Case {
  std::string op;
  std::vector<In> ins;
  Attrs attrs;
  int n_out = 1;
  double atol = 1e-5, rtol = 1e-5;
  bool fp16 = true;  // also run the FP16 build (float data inputs)
};

bool gpu() { return cuda::deviceAvailable(); }

// Builds the one-node graph; float data inputs rounded through `round_to` first.
struct Built {
  Graph g;
  std::map<std::string, Tensor> feeds;
};
std::unique_ptr<Built> makeGraph(const Case& c, bool round_half) {
  auto b = std::make_unique<Built>();
  Graph& g = b->g;
  g.name = "more_" + c.op;
  std::vector<Value*> ins, outs;
  for (size_t i = 0; i < c.ins.size(); ++i) {
    const In& in = c.ins[i];
    if (!in.t.defined()) {
      ins.push_back(nullptr);
      continue;
    }
    Tensor t = in.t;
    if (round_half && t.dtype() == DataType::kFloat32 && !in.constant) t = t.cast(DataType::kFloat16).cast(DataType::kFloat32);
    Value* v = g.addValue("in" + std::to_string(i));
    v->type = t.type();
    if (in.constant) {
      v->constant = std::make_shared<Tensor>(t);
    } else {
      v->is_graph_input = true;
      g.inputs.push_back(v);
      b->feeds[v->name] = t;
    }
    ins.push_back(v);
  }
  for (int i = 0; i < c.n_out; ++i) {
    Value* v = g.addValue("out" + std::to_string(i));
    v->is_graph_output = true;
    g.outputs.push_back(v);
    outs.push_back(v);
  }
  Node* n = g.addNode(c.op, c.op + "_node", ins, outs);
  n->attrs = c.attrs;
  return b;
}

std::string caseName(const Case& c) {
  std::string s = c.op;
  for (const auto& in : c.ins)
    if (in.t.defined() && !in.constant) s += " " + std::string(dataTypeName(in.t.dtype())) + dimsToString(in.t.dims());
  return s;
}

void runCase(const Case& c) {
  for (Precision prec : {Precision::kFP32, Precision::kFP16}) {
    bool has_float = false;
    for (const auto& in : c.ins) has_float |= in.t.defined() && !in.constant && in.t.dtype() == DataType::kFloat32;
    if (prec == Precision::kFP16 && (!c.fp16 || !has_float)) continue;
    const bool half = prec == Precision::kFP16;
    std::string what = caseName(c) + (half ? " fp16" : " fp32");
    auto b = makeGraph(c, half);
    Status st = b->g.inferShapes();
    ASSERT_TRUE(st.ok()) << what << ": " << st.toString();
    auto want = reference::run(b->g, b->feeds);
    ASSERT_TRUE(want.ok()) << what << " reference: " << want.status().toString();
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.precision = prec;
    opt.allow_cpu_fallback = false;  // the node must have a CUDA kernel
    opt.optimize = false;            // test the op itself, not a rewrite of it
    auto plan = build(b->g, opt);
    ASSERT_TRUE(plan.ok()) << what << " build: " << plan.status().toString();
    EXPECT_EQ(plan->report().fallback_nodes, 0u) << what;
    auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(e.ok()) << what << " load: " << e.status().toString();
    auto ctx = (*e)->createContext();
    ASSERT_TRUE(ctx.ok());
    // Twice: the second run replays a CUDA graph.
    for (int rep = 0; rep < 2; ++rep) {
      auto got = (*ctx)->infer(b->feeds);
      ASSERT_TRUE(got.ok()) << what << " run: " << got.status().toString();
      ASSERT_EQ(got->size(), want->size());
      for (size_t i = 0; i < got->size(); ++i) {
        const Tensor& w = (*want)[i];
        bool exact = !isFloatType(w.dtype());
        double atol = exact ? 0 : half ? std::max(c.atol, 2e-2) : c.atol;
        double rtol = exact ? 0 : half ? std::max(c.rtol, 1e-2) : c.rtol;
        CompareResult r = compareTensors((*got)[i], w, atol, rtol);
        if (rep == 0)
          std::printf("[more-ops] %-58s out%zu %s%s\n", what.c_str(), i, r.toString().c_str(), exact ? " (exact)" : "");
        EXPECT_TRUE(r.shape_match && r.dtype_match && r.mismatches == 0 && !r.nan_mismatch)
            << what << " output " << i << ": " << r.toString() << "\n got " << (*got)[i].summary() << "\n want "
            << w.summary();
      }
    }
  }
}

class MoreOpsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gpu()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
    ASSERT_TRUE(registerCudaBackend().ok());
  }
};

Attribute AI(int64_t v) { return Attribute::fromInt(v); }
Attribute AF(float v) { return Attribute::fromFloat(v); }
Attribute AS(const std::string& s) { return Attribute::fromString(s); }
Attribute AIs(std::vector<int64_t> v) { return Attribute::fromInts(std::move(v)); }

}  // namespace

TEST_F(MoreOpsGpu, ExtraUnaryMath) {
  for (const char* op : {"Tan", "Atan", "Sinh", "Cosh", "Asinh", "Softsign"})
    runCase({op, {data(randF({3, 37}, -1.2f, 1.2f))}, {}, 1, 1e-5, 1e-4});
  for (const char* op : {"Asin", "Acos", "Atanh"}) runCase({op, {data(randF({5, 19}, -0.95f, 0.95f))}, {}, 1, 1e-5, 1e-4});
  runCase({"Acosh", {data(randF({7, 11}, 1.05f, 4.f))}, {}, 1, 1e-5, 1e-4});
  runCase({"Celu", {data(randF({2, 3, 17}))}, {{"alpha", AF(0.7f)}}, 1, 1e-5, 1e-4});
  runCase({"ThresholdedRelu", {data(randF({129}))}, {{"alpha", AF(0.3f)}}});
  runCase({"Shrink", {data(randF({4, 33}))}, {{"bias", AF(0.25f)}, {"lambd", AF(0.6f)}}});
  runCase({"Tan", {data(randF({0, 5}))}});  // empty
}

TEST_F(MoreOpsGpu, IsNaNIsInfNotBitOps) {
  Tensor x = randF({6, 13});
  float* p = x.data<float>();
  p[0] = NAN, p[5] = INFINITY, p[9] = -INFINITY, p[30] = NAN, p[40] = INFINITY;
  runCase({"IsNaN", {data(x)}, {}, 1, 0, 0, false});
  runCase({"IsInf", {data(x)}, {}, 1, 0, 0, false});
  runCase({"IsInf", {data(x)}, {{"detect_negative", AI(0)}}, 1, 0, 0, false});
  Tensor bools(DataType::kBool, {3, 7});
  for (int64_t i = 0; i < bools.numel(); ++i) bools.data<bool>()[i] = (i * 7) % 3 == 0;
  runCase({"Not", {data(bools)}});
  runCase({"BitwiseNot", {data(randI<int32_t>(DataType::kInt32, {9, 5}, -1000, 1000))}});
  runCase({"BitwiseAnd", {data(randI<int32_t>(DataType::kInt32, {4, 5}, 0, 1 << 20)),
                          data(randI<int32_t>(DataType::kInt32, {5}, 0, 1 << 20))}});
  runCase({"BitwiseXor", {data(randI<int64_t>(DataType::kInt64, {3, 1, 6}, -99, 99)),
                          data(randI<int64_t>(DataType::kInt64, {4, 1}, -99, 99))}});
  runCase({"BitShift", {data(randI<uint32_t>(DataType::kUInt32, {4, 9}, 0, 1 << 20)),
                        data(randI<uint32_t>(DataType::kUInt32, {9}, 0, 8))}, {{"direction", AS("LEFT")}}});
  runCase({"BitShift", {data(randI<uint8_t>(DataType::kUInt8, {2, 3, 5}, 0, 255)),
                        data(randI<uint8_t>(DataType::kUInt8, {1}, 0, 7))}, {{"direction", AS("RIGHT")}}});
}

TEST_F(MoreOpsGpu, ClipIntegersAndVariadic) {
  runCase({"Clip", {data(randI<int32_t>(DataType::kInt32, {5, 31}, -50, 50)), cst(Tensor::scalar<int32_t>(-7)),
                    cst(Tensor::scalar<int32_t>(20))}});
  runCase({"Clip", {data(randI<int64_t>(DataType::kInt64, {77}, -50, 50)), none(), cst(Tensor::scalar<int64_t>(3))}});
  runCase({"Clip", {data(randI<uint8_t>(DataType::kUInt8, {64}, 0, 255)), cst(Tensor::scalar<uint8_t>(10)), none()}});
  // An absent bound must not wrap when narrowed to the type (int32 / int8).
  runCase({"Clip", {data(randI<int32_t>(DataType::kInt32, {40}, -1000, 1000)), none(), cst(Tensor::scalar<int32_t>(100))}});
  runCase({"Clip", {data(randI<int8_t>(DataType::kInt8, {40}, -100, 100)), cst(Tensor::scalar<int8_t>(-20)), none()}});
  runCase({"Clip", {data(randF({3, 41})), cst(Tensor::scalar<float>(-0.5f)), cst(Tensor::scalar<float>(0.75f))}});
  runCase({"Sum", {data(randF({3, 4, 5})), data(randF({4, 1})), data(randF({5}))}});
  runCase({"Mean", {data(randF({2, 7})), data(randF({2, 7})), data(randF({1, 7})), data(randF({7}))}});
  runCase({"Max", {data(randF({6, 1, 3})), data(randF({1, 5, 3})), data(randF({3}))}});
  runCase({"Min", {data(randI<int32_t>(DataType::kInt32, {4, 6}, -9, 9)), data(randI<int32_t>(DataType::kInt32, {6}, -9, 9)),
                   data(randI<int32_t>(DataType::kInt32, {4, 1}, -9, 9))}});
  runCase({"Sum", {data(randF({8, 3}))}});
  runCase({"Max", {data(randF({0, 3})), data(randF({3}))}});
}

TEST_F(MoreOpsGpu, ReductionsArgTopK) {
  for (const char* op : {"ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSumExp"}) {
    runCase({op, {data(randF({3, 5, 7}, 0.5f, 1.5f)), cst(i64s({1}))}, {{"keepdims", AI(1)}}, 1, 1e-5, 1e-4});
    runCase({op, {data(randF({2, 33, 4}, 0.5f, 1.5f)), cst(i64s({0, -1}))}, {{"keepdims", AI(0)}}, 1, 1e-5, 1e-4});
  }
  runCase({"ReduceLogSum", {data(randF({4, 9}, 0.1f, 2.f)), cst(i64s({1}))}, {}, 1, 1e-5, 1e-4});
  runCase({"ReduceL2", {data(randF({4, 300}, -1.f, 1.f))}, {{"keepdims", AI(0)}}, 1, 1e-5, 1e-4});  // all axes
  for (const char* op : {"ArgMax", "ArgMin"}) {
    runCase({op, {data(distinct({5, 17, 3}))}, {{"axis", AI(1)}}});
    runCase({op, {data(distinct({4, 9}))}, {{"axis", AI(-1)}, {"keepdims", AI(0)}}});
    runCase({op, {data(distinct({2, 11}))}, {{"axis", AI(0)}, {"select_last_index", AI(1)}}});
  }
  runCase({"TopK", {data(distinct({3, 50})), cst(i64s({5}))}, {{"axis", AI(-1)}}, 2});
  runCase({"TopK", {data(distinct({4, 21, 3})), cst(i64s({21}))}, {{"axis", AI(1)}, {"largest", AI(0)}}, 2});
  runCase({"TopK", {data(distinct({1, 1000})), cst(i64s({100}))}, {}, 2});
  runCase({"TopK", {data(randF({0, 8})), cst(i64s({3}))}, {}, 2});
  runCase({"Hardmax", {data(distinct({3, 4, 9}))}, {{"axis", AI(-1)}}});
  runCase({"Hardmax", {data(distinct({5, 6, 2}))}, {{"axis", AI(1)}}});
  runCase({"LpNormalization", {data(randF({3, 17}))}, {{"axis", AI(-1)}, {"p", AI(2)}}, 1, 1e-5, 1e-4});
  runCase({"LpNormalization", {data(randF({4, 5, 3}))}, {{"axis", AI(1)}, {"p", AI(1)}}, 1, 1e-5, 1e-4});
  runCase({"CumSum", {data(randF({4, 37})), cst(i64scalar(1))}, {}, 1, 1e-5, 1e-4});
  runCase({"CumSum", {data(randF({5, 6, 3})), cst(i64scalar(-2))}, {{"exclusive", AI(1)}, {"reverse", AI(1)}}, 1, 1e-5, 1e-4});
  runCase({"CumSum", {data(randI<int64_t>(DataType::kInt64, {3, 10}, -100, 100)), cst(i64scalar(0))}, {{"reverse", AI(1)}}});
  runCase({"CumSum", {data(randI<int32_t>(DataType::kInt32, {2, 9}, -100, 100)), cst(Tensor::scalar<int32_t>(1))}, {{"exclusive", AI(1)}}});
}

TEST_F(MoreOpsGpu, Normalizations) {
  runCase({"InstanceNormalization", {data(randF({2, 3, 7, 5})), cst(randF({3})), cst(randF({3}))}, {{"epsilon", AF(1e-5f)}}, 1, 1e-4, 1e-4});
  runCase({"InstanceNormalization", {data(randF({1, 4, 33})), cst(randF({4})), cst(randF({4}))}, {}, 1, 1e-4, 1e-4});
  runCase({"GroupNormalization", {data(randF({2, 6, 5, 3})), cst(randF({6})), cst(randF({6}))}, {{"num_groups", AI(3)}}, 1, 1e-4, 1e-4});
}

TEST_F(MoreOpsGpu, PadTileDepthSpaceTrilu) {
  for (const char* mode : {"constant", "reflect", "edge"}) {
    runCase({"Pad", {data(randF({2, 3, 5, 6})), cst(i64s({0, 0, 1, 2, 0, 1, 3, 1})), cst(Tensor::scalar<float>(1.5f))},
             {{"mode", AS(mode)}}});
  }
  runCase({"Pad", {data(randI<int64_t>(DataType::kInt64, {3, 4}, -5, 5)), cst(i64s({1, 0, 0, 2}))}});
  runCase({"Pad", {data(randF({3, 4, 5})), cst(i64s({2, 1})), none(), cst(i64s({-1}))}});  // axes input
  runCase({"Pad", {data(randF({4, 7})), cst(i64s({0, -2, 0, -1}))}});                      // negative = crop
  runCase({"Tile", {data(randF({2, 3, 5})), cst(i64s({2, 1, 3}))}});
  runCase({"Tile", {data(randI<int32_t>(DataType::kInt32, {3, 1}, -5, 5)), cst(i64s({1, 4}))}});
  for (const char* mode : {"DCR", "CRD"})
    runCase({"DepthToSpace", {data(randF({2, 8, 3, 5}))}, {{"blocksize", AI(2)}, {"mode", AS(mode)}}});
  runCase({"SpaceToDepth", {data(randF({2, 3, 6, 9}))}, {{"blocksize", AI(3)}}});
  runCase({"Trilu", {data(randF({2, 5, 7})), cst(i64scalar(1))}, {{"upper", AI(1)}}});
  runCase({"Trilu", {data(randF({6, 4})), cst(i64scalar(-1))}, {{"upper", AI(0)}}});
  runCase({"Trilu", {data(randI<int64_t>(DataType::kInt64, {3, 3}, -5, 5))}, {{"upper", AI(0)}}});
}

TEST_F(MoreOpsGpu, GatherScatter) {
  // GatherElements: indices in range, negatives included.
  runCase({"GatherElements", {data(randF({4, 6})), data(randI<int64_t>(DataType::kInt64, {4, 3}, -6, 5))}, {{"axis", AI(1)}}});
  runCase({"GatherElements", {data(randF({5, 3, 2})), data(randI<int32_t>(DataType::kInt32, {2, 3, 2}, 0, 4))}, {{"axis", AI(0)}}});
  runCase({"GatherND", {data(randF({4, 5, 3})), data(randI<int64_t>(DataType::kInt64, {6, 2}, 0, 3))}});
  runCase({"GatherND", {data(randF({3, 4, 5})), data(randI<int64_t>(DataType::kInt64, {3, 2, 1}, -4, 3))}, {{"batch_dims", AI(1)}}});
  runCase({"GatherND", {data(randI<int32_t>(DataType::kInt32, {3, 4}, -50, 50)), data(randI<int64_t>(DataType::kInt64, {5, 2}, 0, 2))}});
  // Scatter with unique indices (duplicate order is undefined in ONNX for reduction 'none').
  Tensor perm(DataType::kInt64, {3, 5});
  for (int64_t r = 0; r < 3; ++r) {
    std::vector<int64_t> v = {0, 1, 2, 3, 4, 5, 6};
    std::shuffle(v.begin(), v.end(), rng());
    for (int64_t c = 0; c < 5; ++c) perm.data<int64_t>()[r * 5 + c] = v[c];
  }
  runCase({"ScatterElements", {data(randF({3, 7})), data(perm), data(randF({3, 5}))}, {{"axis", AI(1)}}});
  runCase({"ScatterElements", {data(randF({3, 7})), data(randI<int64_t>(DataType::kInt64, {3, 9}, -7, 6)), data(randF({3, 9}))},
           {{"axis", AI(1)}, {"reduction", AS("add")}}, 1, 1e-5, 1e-5, false});
  runCase({"ScatterElements", {data(randF({3, 7})), data(randI<int64_t>(DataType::kInt64, {3, 9}, 0, 6)), data(randF({3, 9}))},
           {{"axis", AI(1)}, {"reduction", AS("max")}}, 1, 0, 0, false});
  Tensor nd(DataType::kInt64, {3, 1});
  nd.data<int64_t>()[0] = 4, nd.data<int64_t>()[1] = 0, nd.data<int64_t>()[2] = -2;
  runCase({"ScatterND", {data(randF({5, 6})), data(nd), data(randF({3, 6}))}});
  runCase({"ScatterND", {data(randF({5, 6})), data(nd), data(randF({3, 6}))}, {{"reduction", AS("add")}}, 1, 1e-5, 1e-5, false});
}

TEST_F(MoreOpsGpu, FillsRangeOneHot) {
  Tensor v(DataType::kFloat32, {1});
  v.data<float>()[0] = 2.5f;
  Attribute val;
  val.kind = Attribute::Kind::kTensor;
  val.t = v;
  // ConstantOfShape of a data-derived shape: Shape(x) -> ConstantOfShape, so the fill runs.
  {
    Graph g;
    Value* x = g.addValue("x");
    x->type = TensorType{DataType::kFloat32, Shape::fromDims({3, 5})};
    x->is_graph_input = true;
    g.inputs.push_back(x);
    Value* s = g.addValue("s");
    Value* y = g.addValue("y");
    g.addNode("Shape", "shape", {x}, {s});
    g.addNode("ConstantOfShape", "cos", {s}, {y})->attrs["value"] = val;
    y->is_graph_output = true;
    g.outputs.push_back(y);
    ASSERT_TRUE(g.inferShapes().ok());
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.fold_constants = false;
    opt.optimize = false;
    auto plan = build(g, opt);
    ASSERT_TRUE(plan.ok()) << plan.status().toString();
    auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(e.ok()) << e.status().toString();
    Tensor xin = randF({3, 5});
    auto got = (*e)->createContext().value()->infer({{"x", xin}});
    ASSERT_TRUE(got.ok()) << got.status().toString();
    auto want = reference::run(g, {{"x", xin}});
    ASSERT_TRUE(want.ok());
    CompareResult r = compareTensors((*got)[0], (*want)[0], 0, 0);
    std::printf("[more-ops] ConstantOfShape %s\n", r.toString().c_str());
    EXPECT_EQ(r.mismatches, 0);
  }
  runCase({"OneHot", {data(randI<int64_t>(DataType::kInt64, {3, 4}, -5, 4)), cst(i64scalar(5)),
                      cst(Tensor::fromVector<float>({-1.f, 3.f}, {2}))}, {{"axis", AI(-1)}}});
  runCase({"OneHot", {data(randI<int32_t>(DataType::kInt32, {6}, 0, 6)), cst(i64scalar(7)),
                      cst(Tensor::fromVector<int64_t>({0, 1}, {2}))}, {{"axis", AI(0)}}});
}
