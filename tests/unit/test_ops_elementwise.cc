// Elementwise ops through the graph + reference interpreter: hand-computed values, broadcasting,
// f16/bf16, integers, and clear errors on bad types and attributes.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "backends/cpu/reference/broadcast.h"
#include "backends/cpu/reference/interpreter.h"
#include "ramjet/graph.h"
#include "ramjet/tensor.h"

using namespace ramjet;

namespace {

using Attrs = std::map<std::string, Attribute>;

// Builds a one-node graph whose inputs are runtime inputs (an undefined Tensor marks an omitted
// optional input), infers shapes, runs it and checks the inferred output type against the result.
Result<Tensor> runOp(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs = {}) {
  Graph g;
  std::map<std::string, Tensor> feeds;
  std::vector<Value*> in;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!ins[i].defined()) {
      in.push_back(nullptr);
      continue;
    }
    Value* v = g.addValue("x" + std::to_string(i));
    v->type = ins[i].type();
    v->is_graph_input = true;
    g.inputs.push_back(v);
    in.push_back(v);
    feeds[v->name] = ins[i];
  }
  Value* y = g.addValue("y");
  Node* n = g.addNode(op, op + "_0", in, {y});
  n->attrs = attrs;
  g.outputs = {y};
  RJ_RETURN_IF_ERROR(g.verify());
  RJ_RETURN_IF_ERROR(g.inferShapes());
  RJ_ASSIGN_OR_RETURN(std::vector<Tensor> outs, reference::run(g, feeds));
  if (y->type.dtype != outs[0].dtype() || !y->type.shape.fullyKnown() ||
      y->type.shape.concrete() != outs[0].dims())
    return makeError(StatusCode::kInternal, "inferred ", y->type.toString(), " but got ",
                     dataTypeName(outs[0].dtype()), dimsToString(outs[0].dims()));
  return outs[0];
}

template <typename T>
Tensor vec(std::vector<T> v, std::vector<int64_t> dims = {}) {
  if (dims.empty()) dims = {static_cast<int64_t>(v.size())};
  return Tensor::fromVector<T>(v, dims);
}

template <typename T>
std::vector<double> values(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(static_cast<double>(static_cast<float>(t.data<T>()[i])));
  return out;
}
std::vector<double> asDouble(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(t.getDouble(i));
  return out;
}

void expectNear(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-6) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i;
      continue;
    }
    EXPECT_NEAR(got[i], want[i], tol * std::max(1.0, std::fabs(want[i]))) << "element " << i;
  }
}

#define ASSERT_RUN(var, call)                                   \
  auto var##_r = (call);                                        \
  ASSERT_TRUE(var##_r.ok()) << var##_r.status().toString();     \
  const Tensor& var = *var##_r

void expectError(const Result<Tensor>& r, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected an error mentioning '" << needle << "'";
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().message();
}

}  // namespace

TEST(Elementwise, AddBroadcastsRowAndColumn) {
  ASSERT_RUN(y, runOp("Add", {vec<float>({1, 2, 3, 4, 5, 6}, {2, 3}), vec<float>({10, 20, 30})}));
  EXPECT_EQ(y.dims(), (std::vector<int64_t>{2, 3}));
  expectNear(asDouble(y), {11, 22, 33, 14, 25, 36});
  // [2,1,3] + [4,1] -> [2,4,3]
  ASSERT_RUN(z, runOp("Add", {vec<float>({1, 2, 3, 4, 5, 6}, {2, 1, 3}), vec<float>({100, 200, 300, 400}, {4, 1})}));
  ASSERT_EQ(z.dims(), (std::vector<int64_t>{2, 4, 3}));
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k)
        EXPECT_EQ(z.data<float>()[(i * 4 + j) * 3 + k], (i * 3 + k + 1) + 100.f * (j + 1));
  // Scalar on either side.
  ASSERT_RUN(s, runOp("Sub", {Tensor::scalar<float>(10.f), vec<float>({1, 2, 3})}));
  expectNear(asDouble(s), {9, 8, 7});
}

// Random shapes against a naive per-element BroadcastIndexer loop: checks the row collapsing.
TEST(Elementwise, BroadcastMatchesNaiveOnRandomShapes) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    int rank = 1 + rng() % 5;
    std::vector<int64_t> out(rank), da, db;
    for (auto& d : out) d = 1 + rng() % 4;
    int ra = rng() % (rank + 1), rb = rng() % (rank + 1);
    for (int i = rank - ra; i < rank; ++i) da.push_back(rng() % 3 == 0 ? 1 : out[i]);
    for (int i = rank - rb; i < rank; ++i) db.push_back(rng() % 3 == 0 ? 1 : out[i]);
    Tensor a(DataType::kFloat32, da), b(DataType::kFloat32, db);
    for (int64_t i = 0; i < a.numel(); ++i) a.data<float>()[i] = static_cast<float>(rng() % 1000);
    for (int64_t i = 0; i < b.numel(); ++i) b.data<float>()[i] = static_cast<float>(rng() % 1000);
    auto r = runOp("Sub", {a, b});
    ASSERT_TRUE(r.ok()) << r.status().toString();
    std::vector<int64_t> od = r->dims();
    reference::BroadcastIndexer ia(da, od), ib(db, od);
    for (int64_t i = 0; i < r->numel(); ++i)
      ASSERT_EQ(r->data<float>()[i], a.data<float>()[ia(i)] - b.data<float>()[ib(i)])
          << dimsToString(da) << " - " << dimsToString(db) << " at " << i;
  }
}

// The iterator split into concurrent ranges that start mid-row: every output element is
// visited exactly once with the right input offsets, whatever the range size.
TEST(Elementwise, BroadcastRowRangesCoverOutputOnce) {
  std::mt19937 rng(11);
  for (int64_t nt : {0, 2, 7, 64}) {  // parallel_min: ranges of >= nt/2 elements
    for (int trial = 0; trial < 60; ++trial) {
      int rank = 1 + rng() % 5;
      std::vector<int64_t> out(rank), da, db;
      for (auto& d : out) d = 1 + rng() % 7;
      for (int i = rank - static_cast<int>(rng() % (rank + 1)); i < rank; ++i) da.push_back(rng() % 3 == 0 ? 1 : out[i]);
      for (int i = rank - static_cast<int>(rng() % (rank + 1)); i < rank; ++i) db.push_back(rng() % 3 == 0 ? 1 : out[i]);
      const int64_t total = numElements(out);
      std::vector<int> hits(total, 0);
      std::vector<int64_t> got_a(total, -1), got_b(total, -1);
      reference::forEachBroadcastRow<2>({&da, &db}, out, [&](const int64_t* off, int64_t o, int64_t n, const int64_t* s) {
        for (int64_t j = 0; j < n; ++j) {
          ++hits[o + j];
          got_a[o + j] = off[0] + j * s[0];
          got_b[o + j] = off[1] + j * s[1];
        }
      }, /*parallel_min=*/nt);
      reference::BroadcastIndexer ia(da, out), ib(db, out);
      for (int64_t i = 0; i < total; ++i) {
        ASSERT_EQ(hits[i], 1) << "parallel_min " << nt << ", " << dimsToString(out) << " element " << i;
        ASSERT_EQ(got_a[i], ia(i)) << dimsToString(da) << " -> " << dimsToString(out) << " at " << i;
        ASSERT_EQ(got_b[i], ib(i)) << dimsToString(db) << " -> " << dimsToString(out) << " at " << i;
      }
    }
  }
}

// Outputs large enough to be split over the thread pool, through the graph + interpreter: every
// element must equal the serial formula (a wrong range start offset once made every range but
// the first repeat the first range's inputs).
TEST(Elementwise, LargeOutputsMatchSerial) {
  const int64_t C = 64, HW = 56 * 56;
  Tensor a(DataType::kFloat32, {1, C, 56, 56}), b(DataType::kFloat32, {1, C, 56, 56}), s(DataType::kFloat32, {1, C, 1, 1});
  Tensor cond(DataType::kBool, {56, 1});
  for (int64_t i = 0; i < a.numel(); ++i) {
    a.data<float>()[i] = static_cast<float>(i % 1009) - 500.f;
    b.data<float>()[i] = static_cast<float>(i % 977) * 0.5f;
  }
  for (int64_t c = 0; c < C; ++c) s.data<float>()[c] = static_cast<float>(c) - 7.f;
  for (int64_t i = 0; i < 56; ++i) cond.data<bool>()[i] = i % 3 == 0;
  for (int nt : {1, 2}) {  // twice: the pool is warm the second time
    ASSERT_RUN(add, runOp("Add", {a, b}));
    ASSERT_RUN(mul, runOp("Mul", {a, s}));
    ASSERT_RUN(sig, runOp("Sigmoid", {a}));
    ASSERT_RUN(mx, runOp("Max", {a, b, s}));
    ASSERT_RUN(wh, runOp("Where", {cond, a, b}));
    for (int64_t i = 0; i < a.numel(); ++i) {
      const float x = a.data<float>()[i], y = b.data<float>()[i], sc = s.data<float>()[i / HW];
      ASSERT_EQ(add.data<float>()[i], x + y) << "run " << nt << ", element " << i;
      ASSERT_EQ(mul.data<float>()[i], x * sc) << "run " << nt << ", element " << i;
      ASSERT_NEAR(sig.data<float>()[i], 1 / (1 + std::exp(-static_cast<double>(x))), 1e-6) << "run " << nt << ", " << i;
      ASSERT_EQ(mx.data<float>()[i], std::max({x, y, sc})) << "run " << nt << ", element " << i;
      ASSERT_EQ(wh.data<float>()[i], cond.data<bool>()[(i / 56) % 56] ? x : y) << "run " << nt << ", element " << i;
    }
  }
}

TEST(Elementwise, PerChannelNchwAndWhereThreeWay) {
  // [1,2,2,2] * [1,2,1,1] (a per-channel scale).
  ASSERT_RUN(y, runOp("Mul", {vec<float>({1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 2, 2}), vec<float>({10, -1}, {1, 2, 1, 1})}));
  expectNear(asDouble(y), {10, 20, 30, 40, -5, -6, -7, -8});
  Tensor cond = Tensor::fromVector<bool>({true, false}, {2, 1});
  ASSERT_RUN(w, runOp("Where", {cond, vec<int64_t>({1, 2, 3}), Tensor::scalar<int64_t>(-1)}));
  ASSERT_EQ(w.dims(), (std::vector<int64_t>{2, 3}));
  expectNear(asDouble(w), {1, 2, 3, -1, -1, -1});
}

TEST(Elementwise, IntegerDivTruncatesAndDivByZeroIsAnError) {
  ASSERT_RUN(d, runOp("Div", {vec<int32_t>({7, -7, 7, -7, std::numeric_limits<int32_t>::min()}),
                              vec<int32_t>({2, 2, -2, -2, -1})}));
  expectNear(asDouble(d), {3, -3, -3, 3, static_cast<double>(std::numeric_limits<int32_t>::min())});
  ASSERT_RUN(u, runOp("Div", {vec<uint8_t>({200, 9}), vec<uint8_t>({3, 2})}));
  expectNear(asDouble(u), {66, 4});
  expectError(runOp("Div", {vec<int64_t>({1, 2}), vec<int64_t>({1, 0})}), "division by zero");
  // Floats follow IEEE.
  ASSERT_RUN(f, runOp("Div", {vec<float>({1, -1}), vec<float>({0, 0})}));
  EXPECT_TRUE(std::isinf(f.data<float>()[0]) && f.data<float>()[0] > 0);
  EXPECT_TRUE(std::isinf(f.data<float>()[1]) && f.data<float>()[1] < 0);
}

TEST(Elementwise, IntegerAddMulWrap) {
  ASSERT_RUN(a, runOp("Add", {vec<int8_t>({127, -128}), vec<int8_t>({1, -1})}));
  expectNear(asDouble(a), {-128, 127});
  ASSERT_RUN(m, runOp("Mul", {vec<uint16_t>({65535}), vec<uint16_t>({65535})}));
  expectNear(asDouble(m), {1});
}

TEST(Elementwise, ModSignFollowsDivisorOrDividend) {
  Tensor a = vec<int32_t>({-4, 7, 5, 4, -7}), b = vec<int32_t>({3, -3, 2, -3, 2});
  ASSERT_RUN(py, runOp("Mod", {a, b}));
  expectNear(asDouble(py), {2, -2, 1, -2, 1});
  ASSERT_RUN(c, runOp("Mod", {a, b}, {{"fmod", Attribute::fromInt(1)}}));
  expectNear(asDouble(c), {-1, 1, 1, 1, -1});
  ASSERT_RUN(f, runOp("Mod", {vec<float>({-4.5f, 7.5f}), vec<float>({2.f, -2.f})}, {{"fmod", Attribute::fromInt(1)}}));
  expectNear(asDouble(f), {-0.5, 1.5});
  ASSERT_RUN(g, runOp("Mod", {vec<float>({-4.5f, 7.5f}), vec<float>({2.f, -2.f})}));
  expectNear(asDouble(g), {1.5, -0.5});
  expectError(runOp("Mod", {vec<int32_t>({1}), vec<int32_t>({0})}), "modulo by zero");
  expectError(runOp("Mod", {a, b}, {{"fmod", Attribute::fromInt(2)}}), "fmod");
}

TEST(Elementwise, PowMixedTypes) {
  ASSERT_RUN(a, runOp("Pow", {vec<int32_t>({1, 2, 3}), vec<float>({1.f, 2.f, 3.f})}));
  EXPECT_EQ(a.dtype(), DataType::kInt32);
  expectNear(asDouble(a), {1, 4, 27});
  ASSERT_RUN(b, runOp("Pow", {vec<float>({2.f, 4.f, -3.f}), vec<int64_t>({3, -1, 2})}));
  EXPECT_EQ(b.dtype(), DataType::kFloat32);
  expectNear(asDouble(b), {8, 0.25, 9});
  ASSERT_RUN(c, runOp("Pow", {vec<int64_t>({3, 2, -1, 1, 10}), vec<int64_t>({39, -1, -3, -5, 2})}));
  EXPECT_EQ(c.data<int64_t>()[0], 4052555153018976267LL);  // 3^39, exact in int64
  std::vector<double> rest = asDouble(c);
  rest.erase(rest.begin());
  expectNear(rest, {0, -1, 1, 100});
  ASSERT_RUN(h, runOp("Pow", {vec<Half>({Half(1.5f), Half(2.f)}), Tensor::scalar<Half>(Half(2.f))}));
  expectNear(values<Half>(h), {2.25, 4});
}

TEST(Elementwise, Float16AndBFloat16ComputeInFloat) {
  ASSERT_RUN(a, runOp("Add", {vec<Half>({Half(1.5f), Half(-2.f)}), vec<Half>({Half(0.25f), Half(0.5f)})}));
  EXPECT_EQ(a.dtype(), DataType::kFloat16);
  expectNear(values<Half>(a), {1.75, -1.5});
  ASSERT_RUN(s, runOp("Sigmoid", {vec<BFloat16>({BFloat16(0.f), BFloat16(2.f)})}));
  EXPECT_EQ(s.dtype(), DataType::kBFloat16);
  expectNear(values<BFloat16>(s), {0.5, 1 / (1 + std::exp(-2.0))}, 1e-2);
  ASSERT_RUN(m, runOp("Max", {vec<Half>({Half(1.f), Half(5.f)}), vec<Half>({Half(3.f), Half(-1.f)}),
                              Tensor::scalar<Half>(Half(2.f))}));
  expectNear(values<Half>(m), {3, 5});
}

TEST(Elementwise, CastBetweenAllKinds) {
  ASSERT_RUN(h, runOp("Cast", {vec<float>({1.f, 0.1f, 70000.f})}, {{"to", Attribute::fromInt(10)}}));
  EXPECT_EQ(h.dtype(), DataType::kFloat16);
  EXPECT_EQ(h.data<Half>()[0].bits, 0x3c00);
  EXPECT_TRUE(std::isinf(static_cast<float>(h.data<Half>()[2])));
  ASSERT_RUN(i, runOp("Cast", {vec<float>({2.7f, -2.7f, NAN})}, {{"to", Attribute::fromInt(6)}}));
  expectNear(asDouble(i), {2, -2, 0});
  // Out of range wraps like onnxruntime/numpy do: truncate, then modulo 2^bits.
  ASSERT_RUN(u8, runOp("Cast", {vec<float>({-5.3f, 300.f, 65535.9f})}, {{"to", Attribute::fromInt(2)}}));
  expectNear(asDouble(u8), {251, 44, 255});
  ASSERT_RUN(i8, runOp("Cast", {vec<double>({137.0, -129.7})}, {{"to", Attribute::fromInt(3)}}));
  expectNear(asDouble(i8), {-119, 127});
  ASSERT_RUN(b, runOp("Cast", {vec<float>({0.f, -0.5f, 3.f})}, {{"to", Attribute::fromInt(9)}}));
  EXPECT_EQ(b.dtype(), DataType::kBool);
  expectNear(asDouble(b), {0, 1, 1});
  ASSERT_RUN(bf, runOp("Cast", {Tensor::fromVector<bool>({true, false})}, {{"to", Attribute::fromInt(16)}}));
  expectNear(values<BFloat16>(bf), {1, 0});
  ASSERT_RUN(like, runOp("CastLike", {vec<int64_t>({3, -4}), vec<double>({0.0})}));
  EXPECT_EQ(like.dtype(), DataType::kFloat64);
  expectNear(asDouble(like), {3, -4});
  expectError(runOp("Cast", {vec<float>({1.f})}, {{"to", Attribute::fromInt(14)}}), "cannot cast");  // complex64; strings are castable
  // Text round trip, and string -> string is the identity.
  ASSERT_RUN(str, runOp("Cast", {vec<float>({1.5f, -2.f})}, {{"to", Attribute::fromInt(8)}}));
  ASSERT_EQ(str.dtype(), DataType::kString);
  ASSERT_RUN(same, runOp("Cast", {str}, {{"to", Attribute::fromInt(8)}}));
  EXPECT_EQ(same.strings()[0], str.strings()[0]);
  ASSERT_RUN(back, runOp("Cast", {str}, {{"to", Attribute::fromInt(1)}}));
  expectNear(asDouble(back), {1.5, -2});
  expectError(runOp("Cast", {vec<float>({1.f})}), "'to' is required");
}

TEST(Elementwise, ComparisonsAndLogic) {
  ASSERT_RUN(lt, runOp("Less", {vec<int32_t>({1, 5, 3}), Tensor::scalar<int32_t>(3)}));
  EXPECT_EQ(lt.dtype(), DataType::kBool);
  expectNear(asDouble(lt), {1, 0, 0});
  ASSERT_RUN(ge, runOp("GreaterOrEqual", {vec<float>({1, 5, 3}), Tensor::scalar<float>(3)}));
  expectNear(asDouble(ge), {0, 1, 1});
  ASSERT_RUN(eq, runOp("Equal", {Tensor::fromVector<bool>({true, false}), Tensor::scalar<bool>(false)}));
  expectNear(asDouble(eq), {0, 1});
  Tensor t = Tensor::fromVector<bool>({true, true, false, false}, {2, 2}), u = Tensor::fromVector<bool>({true, false}, {2});
  ASSERT_RUN(a, runOp("And", {t, u}));
  expectNear(asDouble(a), {1, 0, 0, 0});
  ASSERT_RUN(o, runOp("Or", {t, u}));
  expectNear(asDouble(o), {1, 1, 1, 0});
  ASSERT_RUN(x, runOp("Xor", {t, u}));
  expectNear(asDouble(x), {0, 1, 1, 0});
  ASSERT_RUN(n, runOp("Not", {u}));
  expectNear(asDouble(n), {0, 1});
  ASSERT_RUN(bx, runOp("BitwiseXor", {vec<uint8_t>({0xF0, 0x0F}), Tensor::scalar<uint8_t>(0xFF)}));
  expectNear(asDouble(bx), {0x0F, 0xF0});
  ASSERT_RUN(bn, runOp("BitwiseNot", {vec<int16_t>({0, -1})}));
  expectNear(asDouble(bn), {-1, 0});
  ASSERT_RUN(sl, runOp("BitShift", {vec<uint32_t>({1, 3, 1}), vec<uint32_t>({4, 1, 40})},
                       {{"direction", Attribute::fromString("LEFT")}}));
  expectNear(asDouble(sl), {16, 6, 0});
  ASSERT_RUN(sr, runOp("BitShift", {vec<uint64_t>({256, 7}), vec<uint64_t>({4, 1})},
                       {{"direction", Attribute::fromString("RIGHT")}}));
  expectNear(asDouble(sr), {16, 3});
}

TEST(Elementwise, VariadicBroadcastAndNaN) {
  ASSERT_RUN(s, runOp("Sum", {vec<float>({1, 2, 3}), Tensor::scalar<float>(10), vec<float>({1, 2}, {2, 1})}));
  ASSERT_EQ(s.dims(), (std::vector<int64_t>{2, 3}));
  expectNear(asDouble(s), {12, 13, 14, 13, 14, 15});
  ASSERT_RUN(m, runOp("Mean", {vec<float>({1, 2}), vec<float>({3, 4}), vec<float>({5, 9})}));
  expectNear(asDouble(m), {3, 5});
  ASSERT_RUN(one, runOp("Min", {vec<int8_t>({4, -3})}));
  expectNear(asDouble(one), {4, -3});
  ASSERT_RUN(mx, runOp("Max", {vec<float>({NAN, 1}), vec<float>({0, NAN})}));
  expectNear(asDouble(mx), {NAN, NAN});
  ASSERT_RUN(mn, runOp("Min", {vec<uint64_t>({5, 1}), vec<uint64_t>({3, 9})}));
  expectNear(asDouble(mn), {3, 1});
}

TEST(Elementwise, ClipBounds) {
  Tensor x = vec<float>({-5, -1, 0, 1, 5});
  ASSERT_RUN(a, runOp("Clip", {x, Tensor::scalar<float>(-2), Tensor::scalar<float>(2)}));
  expectNear(asDouble(a), {-2, -1, 0, 1, 2});
  ASSERT_RUN(b, runOp("Clip", {x, Tensor(), Tensor::scalar<float>(0.5f)}));  // max only
  expectNear(asDouble(b), {-5, -1, 0, 0.5, 0.5});
  ASSERT_RUN(c, runOp("Clip", {vec<int8_t>({-100, 0, 100}), Tensor::scalar<int8_t>(-10)}));  // min only
  expectNear(asDouble(c), {-10, 0, 100});
  ASSERT_RUN(d, runOp("Clip", {x, Tensor::scalar<float>(3), Tensor::scalar<float>(1)}));  // min > max
  expectNear(asDouble(d), {1, 1, 1, 1, 1});
  ASSERT_RUN(e, runOp("Clip", {vec<float>({INFINITY, NAN})}));
  EXPECT_TRUE(std::isinf(e.data<float>()[0]));
  EXPECT_TRUE(std::isnan(e.data<float>()[1]));
  expectError(runOp("Clip", {x, vec<float>({1, 2})}), "scalar");
}

TEST(Elementwise, Activations) {
  Tensor x = vec<float>({-2, -0.5f, 0, 0.5f, 3});
  auto run = [&](const std::string& op, Attrs attrs = {}) {
    auto r = runOp(op, {x}, attrs);
    EXPECT_TRUE(r.ok()) << op << ": " << r.status().toString();
    return r.ok() ? asDouble(*r) : std::vector<double>(5, -999);
  };
  auto each = [&](auto f) {
    std::vector<double> v;
    for (double xi : {-2.0, -0.5, 0.0, 0.5, 3.0}) v.push_back(f(xi));
    return v;
  };
  expectNear(run("Relu"), {0, 0, 0, 0.5, 3});
  expectNear(run("LeakyRelu", {{"alpha", Attribute::fromFloat(0.1f)}}), {-0.2, -0.05, 0, 0.5, 3});
  expectNear(run("Elu"), each([](double v) { return v >= 0 ? v : std::exp(v) - 1; }));
  expectNear(run("Selu"), each([](double v) {
               return 1.0507009873554805 * (v > 0 ? v : 1.6732632423543772 * (std::exp(v) - 1));
             }), 1e-5);
  expectNear(run("Celu", {{"alpha", Attribute::fromFloat(2.f)}}),
             each([](double v) { return std::max(0.0, v) + std::min(0.0, 2 * (std::exp(v / 2) - 1)); }));
  expectNear(run("HardSigmoid"), each([](double v) { return std::clamp(0.2 * v + 0.5, 0.0, 1.0); }));
  expectNear(run("HardSwish"), each([](double v) { return v * std::clamp(v / 6 + 0.5, 0.0, 1.0); }));
  expectNear(run("Softplus"), each([](double v) { return std::log(std::exp(v) + 1); }));
  expectNear(run("Softsign"), each([](double v) { return v / (1 + std::fabs(v)); }));
  expectNear(run("ThresholdedRelu", {{"alpha", Attribute::fromFloat(0.5f)}}), {0, 0, 0, 0, 3});
  expectNear(run("Shrink", {{"lambd", Attribute::fromFloat(1.f)}, {"bias", Attribute::fromFloat(0.5f)}}),
             {-1.5, 0, 0, 0, 2.5});
  expectNear(run("Gelu"), each([](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); }));
  expectNear(run("Gelu", {{"approximate", Attribute::fromString("tanh")}}), each([](double v) {
               return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
             }));
  expectNear(run("Mish"), each([](double v) { return v * std::tanh(std::log1p(std::exp(v))); }));
  expectNear(run("Tanh"), each([](double v) { return std::tanh(v); }));
  // Extremes stay finite and saturate.
  ASSERT_RUN(big, runOp("Softplus", {vec<float>({1000.f, -1000.f})}));
  expectNear(asDouble(big), {1000, 0});
  ASSERT_RUN(sig, runOp("Sigmoid", {vec<float>({-1000.f, 1000.f})}));
  expectNear(asDouble(sig), {0, 1});
  // PRelu with a per-channel slope broadcast over [N,C,W].
  ASSERT_RUN(p, runOp("PRelu", {vec<float>({-1, 2, -3, 4}, {1, 2, 2}), vec<float>({0.5f, 0.25f}, {2, 1})}));
  expectNear(asDouble(p), {-0.5, 2, -0.75, 4});
  expectError(runOp("Gelu", {x}, {{"approximate", Attribute::fromString("fast")}}), "approximate");
}

TEST(Elementwise, UnaryMath) {
  ASSERT_RUN(r, runOp("Round", {vec<float>({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f})}));
  expectNear(asDouble(r), {0, 2, 2, -0, -2, 2});
  ASSERT_RUN(s, runOp("Sign", {vec<int32_t>({-7, 0, 9})}));
  expectNear(asDouble(s), {-1, 0, 1});
  ASSERT_RUN(a, runOp("Abs", {vec<int8_t>({-128, -3, 4})}));
  expectNear(asDouble(a), {-128, 3, 4});  // wraps like two's complement
  ASSERT_RUN(n, runOp("Neg", {vec<double>({1.5, -2})}));
  expectNear(asDouble(n), {-1.5, 2});
  ASSERT_RUN(e, runOp("Erf", {vec<double>({0.0, 1.0})}));
  expectNear(asDouble(e), {0, std::erf(1.0)}, 1e-12);
  ASSERT_RUN(rc, runOp("Reciprocal", {vec<float>({4, -0.5f})}));
  expectNear(asDouble(rc), {0.25, -2});
  ASSERT_RUN(fl, runOp("Floor", {vec<float>({-1.5f, 1.5f})}));
  expectNear(asDouble(fl), {-2, 1});
  ASSERT_RUN(ac, runOp("Acosh", {vec<float>({1.f, 2.f})}));
  expectNear(asDouble(ac), {0, std::acosh(2.0)});
  Tensor special = vec<float>({INFINITY, -INFINITY, NAN, 1.f});
  ASSERT_RUN(inf, runOp("IsInf", {special}, {{"detect_negative", Attribute::fromInt(0)}}));
  expectNear(asDouble(inf), {1, 0, 0, 0});
  ASSERT_RUN(nan, runOp("IsNaN", {special}));
  expectNear(asDouble(nan), {0, 0, 1, 0});
}

TEST(Elementwise, TypeErrorsNameTheInput) {
  expectError(runOp("Add", {vec<float>({1}), vec<int32_t>({1})}), "input 1 ('x1') is i32");
  expectError(runOp("Sqrt", {vec<int32_t>({4})}), "Sqrt accepts only float");
  expectError(runOp("And", {vec<float>({1}), vec<float>({1})}), "accepts only bool");
  expectError(runOp("Where", {vec<float>({1}), vec<float>({1}), vec<float>({2})}), "must be bool");
  expectError(runOp("Where", {Tensor::scalar<bool>(true), vec<float>({1}), vec<double>({2})}), "same type");
  expectError(runOp("BitShift", {vec<uint8_t>({1}), vec<uint8_t>({1})}), "direction");
  expectError(runOp("BitShift", {vec<int8_t>({1}), vec<int8_t>({1})}, {{"direction", Attribute::fromString("LEFT")}}),
              "unsigned int");
  expectError(runOp("Mul", {vec<float>({1, 2, 3}), vec<float>({1, 2})}), "broadcast");
  expectError(runOp("Sum", {vec<int32_t>({1}), vec<int32_t>({1})}), "accepts only float");
}
