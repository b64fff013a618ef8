// GPU kernel tests: every CUDA kernel against the CPU reference kernels (the oracle), run
// through a one-node Graph and ramjet::reference::run, on random shapes with odd sizes,
// broadcasting and empty dims, in FP32 and FP16. Outputs are poisoned (all bits set: NaN for
// floats, -1 for ints) before each run so an unwritten element fails the comparison.
// Without a CUDA device every test is skipped (CI compiles these and reports them skipped).
//
// Tolerances (atol, rtol): FP32 project kernels 1e-5 (transcendentals 1e-5 rel + 1e-6 abs);
// TF32 convolution / GEMM 2e-3 relative to the output scale; FP16 1e-2 (inputs are rounded
// to FP16 for the reference too, so only the kernels' own rounding differs).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/reference/interpreter.h"
#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cuda_ops.h"
#include "backends/cuda/cudnn_conv.h"
#include "ramjet/graph.h"

namespace ramjet::cuda {
namespace {

// ------------------------------------------------------------------ helpers
struct DevBuf {
  void* p = nullptr;
  size_t bytes = 0;
  explicit DevBuf(size_t n) : bytes(n) {
    if (cudaMalloc(&p, std::max<size_t>(n, 256)) != cudaSuccess) p = nullptr;
    if (p) cudaMemset(p, 0xFF, std::max<size_t>(n, 256));  // poison
  }
  ~DevBuf() {
    if (p) cudaFree(p);
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
};
using Buf = std::unique_ptr<DevBuf>;

Buf upload(const Tensor& t) {
  auto b = std::make_unique<DevBuf>(t.nbytes());
  if (t.nbytes()) cudaMemcpy(b->p, t.raw(), t.nbytes(), cudaMemcpyHostToDevice);
  return b;
}
Buf alloc(DataType dt, const std::vector<int64_t>& dims) {
  return std::make_unique<DevBuf>(static_cast<size_t>(numElements(dims)) * dataTypeSize(dt));
}
Tensor download(const Buf& b, DataType dt, const std::vector<int64_t>& dims) {
  Tensor t(dt, dims);
  if (t.nbytes()) {
    cudaError_t e = cudaMemcpy(t.raw(), b->p, t.nbytes(), cudaMemcpyDeviceToHost);
    EXPECT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
  }
  return t;
}

std::mt19937& rng() {
  static std::mt19937 g(12345);
  return g;
}
Tensor randT(DataType dt, const std::vector<int64_t>& dims, float lo = -2.f, float hi = 2.f) {
  Tensor f(DataType::kFloat32, dims);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = u(rng());
  return dt == DataType::kFloat32 ? f : f.cast(dt);
}
// Small integers (as floats): many ties, exact in f16.
Tensor randInts(DataType dt, const std::vector<int64_t>& dims, int lo, int hi) {
  Tensor f(DataType::kFloat32, dims);
  std::uniform_int_distribution<int> u(lo, hi);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = static_cast<float>(u(rng()));
  return f.cast(dt);
}
Tensor i64(std::vector<int64_t> v) { return Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}); }
Tensor f32s(std::vector<float> v) { return Tensor::fromVector<float>(v, {static_cast<int64_t>(v.size())}); }

using Attrs = std::map<std::string, Attribute>;
Attribute AI(int64_t v) { return Attribute::fromInt(v); }
Attribute AF(float v) { return Attribute::fromFloat(v); }
Attribute AS(const std::string& v) { return Attribute::fromString(v); }
Attribute AIs(std::vector<int64_t> v) { return Attribute::fromInts(std::move(v)); }

// Runs one op on the reference interpreter. Undefined tensors are omitted optional inputs.
Result<std::vector<Tensor>> oracle(const std::string& op, const std::vector<Tensor>& ins,
                                   const Attrs& attrs = {}, int n_out = 1) {
  Graph g;
  g.name = "oracle_" + op;
  std::vector<Value*> in_vals, out_vals;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!ins[i].defined()) { in_vals.push_back(nullptr); continue; }
    Value* v = g.addValue("in" + std::to_string(i));
    v->constant = std::make_shared<Tensor>(ins[i]);
    v->type = ins[i].type();
    in_vals.push_back(v);
  }
  for (int i = 0; i < n_out; ++i) {
    Value* v = g.addValue("out" + std::to_string(i));
    v->is_graph_output = true;
    out_vals.push_back(v);
    g.outputs.push_back(v);
  }
  Node* n = g.addNode(op, op + "_0", in_vals, out_vals);
  n->attrs = attrs;
  return reference::run(g, {});
}

// Max error over all comparisons of a test, printed at the end for the report.
struct ErrStats {
  double max_abs = 0, max_rel = 0, max_l2rel = 0;  // l2rel = ||got - ref|| / ||ref||
  int compared = 0;
};
std::map<std::string, ErrStats>& stats() {
  static std::map<std::string, ErrStats> s;
  return s;
}
std::string testName() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? std::string(info->test_suite_name()) + "." + info->name() : "?";
}

void expectClose(const Tensor& got, const Tensor& ref, double atol, double rtol,
                 const std::string& what) {
  CompareResult c = compareTensors(got, ref, atol, rtol);
  bool ok = c.shape_match && c.dtype_match && c.mismatches == 0 && !c.nan_mismatch;
  EXPECT_TRUE(ok) << what << ": " << c.toString() << " got " << got.summary() << " ref "
                  << ref.summary();
  auto& s = stats()[testName() + " " + dataTypeName(ref.dtype())];
  if (std::isfinite(c.max_abs)) s.max_abs = std::max(s.max_abs, c.max_abs);
  if (std::isfinite(c.max_rel)) s.max_rel = std::max(s.max_rel, c.max_rel);
  if (c.shape_match && c.dtype_match && got.numel() > 0) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < got.numel(); ++i) {
      double g = got.getDouble(i), r = ref.getDouble(i);
      if (!std::isfinite(g) || !std::isfinite(r)) continue;
      num += (g - r) * (g - r);
      den += r * r;
    }
    if (den > 0) s.max_l2rel = std::max(s.max_l2rel, std::sqrt(num / den));
  }
  ++s.compared;
}
void expectExact(const Tensor& got, const Tensor& ref, const std::string& what) {
  expectClose(got, ref, 0, 0, what);
}

double tolFor(DataType dt) { return dt == DataType::kFloat16 ? 1e-2 : 1e-5; }
const char* dtName(DataType dt) { return dataTypeName(dt); }

#define ASSERT_OK(expr)                                   \
  do {                                                    \
    ::ramjet::Status st_ = (expr);                        \
    ASSERT_TRUE(st_.ok()) << #expr << ": " << st_.toString(); \
  } while (0)
#define ASSERT_ORACLE(var, expr)                                        \
  auto var##_r = (expr);                                                \
  ASSERT_TRUE(var##_r.ok()) << "reference: " << var##_r.status().toString(); \
  auto var = std::move(var##_r).value()

void sync() {
  cudaError_t e = cudaDeviceSynchronize();
  ASSERT_EQ(e, cudaSuccess) << cudaGetErrorString(e);
}

// Host transpose (any dtype) for layout tests.
Tensor hostTranspose(const Tensor& t, const std::vector<int64_t>& perm) {
  std::vector<int64_t> od(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) od[i] = t.dims()[perm[i]];
  Tensor o(t.dtype(), od);
  size_t es = dataTypeSize(t.dtype());
  std::vector<int64_t> ist(t.rank());
  int64_t s = 1;
  for (int i = static_cast<int>(t.rank()) - 1; i >= 0; --i) { ist[i] = s; s *= t.dims()[i]; }
  for (int64_t i = 0; i < o.numel(); ++i) {
    int64_t rem = i, off = 0;
    for (int d = static_cast<int>(od.size()) - 1; d >= 0; --d) {
      off += (rem % od[d]) * ist[perm[d]];
      rem /= od[d];
    }
    std::memcpy(static_cast<uint8_t*>(o.raw()) + i * es, static_cast<const uint8_t*>(t.raw()) + off * es, es);
  }
  return o;
}

class CudaKernels : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!deviceAvailable()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
  }
  cudaStream_t s = nullptr;  // default stream
};

const DataType kFloatTypes[] = {DataType::kFloat32, DataType::kFloat16};

// ------------------------------------------------------------------ unary
struct UnaryCase {
  UnaryOp op;
  const char* onnx;
  Attrs attrs;
  float lo, hi;
  UnaryParams p;
};

TEST_F(CudaKernels, Unary) {
  std::vector<UnaryCase> cases = {
      {UnaryOp::kRelu, "Relu", {}, -2, 2, {}},
      {UnaryOp::kSigmoid, "Sigmoid", {}, -6, 6, {}},
      {UnaryOp::kTanh, "Tanh", {}, -3, 3, {}},
      {UnaryOp::kHardSigmoid, "HardSigmoid", {{"alpha", AF(0.25f)}, {"beta", AF(0.4f)}}, -4, 4, {0.25f, 0.4f}},
      {UnaryOp::kHardSwish, "HardSwish", {}, -5, 5, {}},
      {UnaryOp::kGelu, "Gelu", {}, -4, 4, {}},
      {UnaryOp::kGeluTanh, "Gelu", {{"approximate", AS("tanh")}}, -4, 4, {}},
      {UnaryOp::kErf, "Erf", {}, -3, 3, {}},
      {UnaryOp::kExp, "Exp", {}, -4, 4, {}},
      {UnaryOp::kLog, "Log", {}, 0.05f, 8, {}},
      {UnaryOp::kSqrt, "Sqrt", {}, 0, 9, {}},
      {UnaryOp::kReciprocal, "Reciprocal", {}, 0.5f, 4, {}},
      {UnaryOp::kNeg, "Neg", {}, -3, 3, {}},
      {UnaryOp::kAbs, "Abs", {}, -3, 3, {}},
      {UnaryOp::kLeakyRelu, "LeakyRelu", {{"alpha", AF(0.1f)}}, -3, 3, {0.1f, 0}},
      {UnaryOp::kElu, "Elu", {{"alpha", AF(0.7f)}}, -3, 3, {0.7f, 0}},
      {UnaryOp::kSelu, "Selu", {{"alpha", AF(1.67326f)}, {"gamma", AF(1.0507f)}}, -3, 3, {1.67326f, 1.0507f}},
      {UnaryOp::kMish, "Mish", {}, -5, 5, {}},
      {UnaryOp::kSoftplus, "Softplus", {}, -5, 25, {}},
      {UnaryOp::kFloor, "Floor", {}, -5, 5, {}},
      {UnaryOp::kCeil, "Ceil", {}, -5, 5, {}},
      {UnaryOp::kRound, "Round", {}, -5, 5, {}},
      {UnaryOp::kSin, "Sin", {}, -4, 4, {}},
      {UnaryOp::kCos, "Cos", {}, -4, 4, {}},
      {UnaryOp::kSign, "Sign", {}, -2, 2, {}},
  };
  // 4099: vector body + scalar tail; 7: scalar only; 0: empty.
  std::vector<std::vector<int64_t>> shapes = {{4099}, {3, 7}, {2, 0, 5}, {1, 3, 33, 17}};
  for (DataType dt : kFloatTypes) {
    for (const auto& c : cases) {
      for (const auto& dims : shapes) {
        Tensor x = randT(dt, dims, c.lo, c.hi);
        ASSERT_ORACLE(ref, oracle(c.onnx, {x}, c.attrs));
        Buf dx = upload(x), dy = alloc(dt, dims);
        ASSERT_OK(unary(c.op, dt, dx->p, dy->p, x.numel(), c.p, s));
        sync();
        double tol = dt == DataType::kFloat16 ? 1e-2 : 1e-5;
        expectClose(download(dy, dt, dims), ref[0], tol, tol,
                    std::string(unaryOpName(c.op)) + " " + dtName(dt) + " " + dimsToString(dims));
      }
    }
    // Unaligned (offset by one element) pointers take the scalar path.
    Tensor x = randT(dt, {1001});
    ASSERT_ORACLE(ref, oracle("Tanh", {x}));
    Buf dx = upload(x), dy = alloc(dt, {1002});
    size_t es = dataTypeSize(dt);
    ASSERT_OK(cudaMemcpy(static_cast<char*>(dx->p), x.raw(), x.nbytes(), cudaMemcpyHostToDevice) == cudaSuccess
                  ? Status::Ok() : Status(StatusCode::kDeviceError, "memcpy"));
    ASSERT_OK(unary(UnaryOp::kTanh, dt, dx->p, static_cast<char*>(dy->p) + es, 1001, {}, s));
    sync();
    Tensor got(dt, {1001});
    cudaMemcpy(got.raw(), static_cast<char*>(dy->p) + es, got.nbytes(), cudaMemcpyDeviceToHost);
    expectClose(got, ref[0], tolFor(dt), tolFor(dt), "Tanh unaligned");
  }
}

TEST_F(CudaKernels, ClipAndSilu) {
  for (DataType dt : kFloatTypes) {
    Tensor x = randT(dt, {5, 37});
    Tensor lo = Tensor::scalar<float>(-0.5f).cast(dt);
    Tensor hi = Tensor::scalar<float>(1.25f).cast(dt);
    ASSERT_ORACLE(ref, oracle("Clip", {x, lo, hi}));
    Buf dx = upload(x), dy = alloc(dt, x.dims());
    ASSERT_OK(unary(UnaryOp::kClip, dt, dx->p, dy->p, x.numel(), {-0.5f, 1.25f}, s));
    sync();
    expectClose(download(dy, dt, x.dims()), ref[0], tolFor(dt), tolFor(dt), "Clip");
    // Silu = x * Sigmoid(x): reference through two nodes' worth of oracle calls.
    ASSERT_ORACLE(sg, oracle("Sigmoid", {x}));
    ASSERT_ORACLE(silu, oracle("Mul", {x, sg[0]}));
    ASSERT_OK(unary(UnaryOp::kSilu, dt, dx->p, dy->p, x.numel(), {}, s));
    sync();
    expectClose(download(dy, dt, x.dims()), silu[0], 2 * tolFor(dt), 2 * tolFor(dt), "Silu");
  }
}

TEST_F(CudaKernels, UnaryInt) {
  for (DataType dt : {DataType::kInt32, DataType::kInt64}) {
    Tensor x = randInts(dt, {3, 41}, -50, 50);
    for (auto [op, name] : {std::pair{UnaryOp::kNeg, "Neg"}, {UnaryOp::kAbs, "Abs"}, {UnaryOp::kSign, "Sign"}}) {
      ASSERT_ORACLE(ref, oracle(name, {x}));
      Buf dx = upload(x), dy = alloc(dt, x.dims());
      ASSERT_OK(unary(op, dt, dx->p, dy->p, x.numel(), {}, s));
      sync();
      expectExact(download(dy, dt, x.dims()), ref[0], std::string(name) + " " + dtName(dt));
    }
  }
  Status bad = unary(UnaryOp::kExp, DataType::kInt32, nullptr, nullptr, 4, {}, s);
  EXPECT_EQ(bad.code(), StatusCode::kUnsupported) << bad.toString();
}

// ------------------------------------------------------------------ cast
TEST_F(CudaKernels, Cast) {
  std::vector<std::pair<DataType, DataType>> pairs = {
      {DataType::kFloat32, DataType::kFloat16}, {DataType::kFloat16, DataType::kFloat32},
      {DataType::kFloat32, DataType::kInt32},   {DataType::kFloat32, DataType::kInt64},
      {DataType::kInt64, DataType::kFloat32},   {DataType::kInt32, DataType::kInt64},
      {DataType::kInt64, DataType::kInt32},     {DataType::kFloat32, DataType::kBool},
      {DataType::kBool, DataType::kFloat32},    {DataType::kFloat16, DataType::kInt64},
      {DataType::kInt64, DataType::kFloat16},   {DataType::kBool, DataType::kInt64},
      {DataType::kUInt8, DataType::kFloat32},   {DataType::kInt8, DataType::kFloat16}};
  for (auto [from, to] : pairs) {
    Tensor x = (from == DataType::kFloat32 || from == DataType::kFloat16)
                   ? randT(DataType::kFloat32, {7, 131}, -100, 100).cast(from)
                   : randInts(from, {7, 131}, from == DataType::kBool || from == DataType::kUInt8 ? 0 : -100,
                              from == DataType::kBool ? 1 : 100);
    if (from == DataType::kFloat32) x.data<float>()[3] = 0.f;  // a real zero for ->bool
    ASSERT_ORACLE(ref, oracle("Cast", {x}, {{"to", AI(static_cast<int64_t>(to))}}));
    Buf dx = upload(x), dy = alloc(to, x.dims());
    ASSERT_OK(cast(from, dx->p, to, dy->p, x.numel(), s));
    sync();
    expectExact(download(dy, to, x.dims()), ref[0],
                std::string("Cast ") + dtName(from) + "->" + dtName(to));
  }
}

// ------------------------------------------------------------------ binary / where
struct Bshape {
  std::vector<int64_t> a, b;
};
std::vector<Bshape> binaryShapes() {
  return {{{3, 5, 7}, {3, 5, 7}},       {{2, 3, 1, 5}, {3, 4, 1}},     {{}, {4, 5}},
          {{6}, {1}},                   {{0, 3}, {3}},                 {{2, 1, 3, 1, 2, 3}, {1, 4, 1, 5, 1, 1}},
          {{1, 16, 9, 9}, {1, 16, 1, 1}}, {{2, 1, 1, 1, 1, 1, 1, 3}, {2, 2, 2, 2, 2, 2, 2, 1}},
          // 16-byte units along the innermost dim (binaryBcastVecKernel): squeeze-excite NCHW and
          // NHWC, row-vector bias, a broadcast first operand.
          {{2, 8, 4, 4}, {2, 8, 1, 1}}, {{2, 6, 16}, {2, 1, 16}}, {{4, 8}, {8}}, {{3, 1, 8}, {3, 5, 8}},
          {{2, 3, 1}, {2, 3, 8}},
          // 8- and 4-byte units where 16 do not divide the row (14x14 and 6-wide rows).
          {{2, 5, 14, 14}, {2, 5, 1, 1}}, {{3, 6}, {3, 1}}};
}
std::vector<int64_t> bcastDims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t r = std::max(a.size(), b.size());
  std::vector<int64_t> o(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t x = i + a.size() >= r ? a[i + a.size() - r] : 1;
    int64_t y = i + b.size() >= r ? b[i + b.size() - r] : 1;
    o[i] = x == 1 ? y : x;
  }
  return o;
}

TEST_F(CudaKernels, BinaryFloat) {
  struct C { BinaryOp op; const char* onnx; Attrs attrs; };
  std::vector<C> ops = {{BinaryOp::kAdd, "Add", {}}, {BinaryOp::kSub, "Sub", {}},
                        {BinaryOp::kMul, "Mul", {}}, {BinaryOp::kDiv, "Div", {}},
                        {BinaryOp::kPow, "Pow", {}}, {BinaryOp::kMax, "Max", {}},
                        {BinaryOp::kMin, "Min", {}}, {BinaryOp::kMod, "Mod", {{"fmod", AI(1)}}},
                        {BinaryOp::kEqual, "Equal", {}}, {BinaryOp::kLess, "Less", {}},
                        {BinaryOp::kLessOrEqual, "LessOrEqual", {}}, {BinaryOp::kGreater, "Greater", {}},
                        {BinaryOp::kGreaterOrEqual, "GreaterOrEqual", {}}};
  for (DataType dt : kFloatTypes) {
    for (const auto& c : ops) {
      for (const auto& sh : binaryShapes()) {
        bool cmp = binaryOpIsComparison(c.op);
        Tensor a = cmp ? randInts(dt, sh.a, -3, 3) : c.op == BinaryOp::kPow ? randT(dt, sh.a, 0.2f, 2.f) : randT(dt, sh.a);
        Tensor b = cmp ? randInts(dt, sh.b, -3, 3) : randT(dt, sh.b, 0.5f, 2.f);
        ASSERT_ORACLE(ref, oracle(c.onnx, {a, b}, c.attrs));
        std::vector<int64_t> od = bcastDims(sh.a, sh.b);
        DataType odt = cmp ? DataType::kBool : dt;
        Buf da = upload(a), db = upload(b), dy = alloc(odt, od);
        ASSERT_OK(binary(c.op, dt, da->p, sh.a, db->p, sh.b, dy->p, od, s));
        sync();
        double tol = tolFor(dt) * (c.op == BinaryOp::kPow ? 2 : 1);
        expectClose(download(dy, odt, od), ref[0], tol, tol,
                    std::string(c.onnx) + " " + dtName(dt) + " " + dimsToString(sh.a) + " x " + dimsToString(sh.b));
      }
    }
  }
}

TEST_F(CudaKernels, BinaryIntAndBool) {
  struct C { BinaryOp op; const char* onnx; };
  for (DataType dt : {DataType::kInt32, DataType::kInt64}) {
    for (auto c : {C{BinaryOp::kAdd, "Add"}, C{BinaryOp::kSub, "Sub"}, C{BinaryOp::kMul, "Mul"},
                   C{BinaryOp::kDiv, "Div"}, C{BinaryOp::kMod, "Mod"}, C{BinaryOp::kMax, "Max"},
                   C{BinaryOp::kMin, "Min"}, C{BinaryOp::kEqual, "Equal"}, C{BinaryOp::kGreater, "Greater"}}) {
      std::vector<int64_t> ad = {4, 1, 9}, bd = {3, 1};
      Tensor a = randInts(dt, ad, -40, 40);
      Tensor b = randInts(dt, bd, 1, 7);
      if (dt == DataType::kInt64) b.data<int64_t>()[1] = -3;
      else b.data<int32_t>()[1] = -3;
      ASSERT_ORACLE(ref, oracle(c.onnx, {a, b}));
      std::vector<int64_t> od = bcastDims(ad, bd);
      DataType odt = binaryOpIsComparison(c.op) ? DataType::kBool : dt;
      Buf da = upload(a), db = upload(b), dy = alloc(odt, od);
      ASSERT_OK(binary(c.op, dt, da->p, ad, db->p, bd, dy->p, od, s));
      sync();
      expectExact(download(dy, odt, od), ref[0], std::string(c.onnx) + " " + dtName(dt));
    }
  }
  for (auto [op, name] : {std::pair{BinaryOp::kAnd, "And"}, {BinaryOp::kOr, "Or"}, {BinaryOp::kXor, "Xor"}}) {
    std::vector<int64_t> ad = {5, 1, 3}, bd = {4, 3};
    Tensor a = randInts(DataType::kBool, ad, 0, 1), b = randInts(DataType::kBool, bd, 0, 1);
    ASSERT_ORACLE(ref, oracle(name, {a, b}));
    std::vector<int64_t> od = bcastDims(ad, bd);
    Buf da = upload(a), db = upload(b), dy = alloc(DataType::kBool, od);
    ASSERT_OK(binary(op, DataType::kBool, da->p, ad, db->p, bd, dy->p, od, s));
    sync();
    expectExact(download(dy, DataType::kBool, od), ref[0], name);
  }
  // Incompatible shapes are an error, not a crash.
  Status bad = binary(BinaryOp::kAdd, DataType::kFloat32, nullptr, {3, 4}, nullptr, {5}, nullptr, {3, 4}, s);
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument) << bad.toString();
}

TEST_F(CudaKernels, PRelu) {
  for (DataType dt : kFloatTypes) {
    std::vector<int64_t> xd = {2, 5, 7, 3}, sd = {5, 1, 1};
    Tensor x = randT(dt, xd), sl = randT(dt, sd, 0.f, 0.5f);
    ASSERT_ORACLE(ref, oracle("PRelu", {x, sl}));
    Buf dx = upload(x), dsl = upload(sl), dy = alloc(dt, xd);
    ASSERT_OK(binary(BinaryOp::kPRelu, dt, dx->p, xd, dsl->p, sd, dy->p, xd, s));
    sync();
    expectClose(download(dy, dt, xd), ref[0], tolFor(dt), tolFor(dt), "PRelu");
  }
}

TEST_F(CudaKernels, Where) {
  for (DataType dt : {DataType::kFloat32, DataType::kFloat16, DataType::kInt64}) {
    std::vector<int64_t> cd = {3, 1, 5}, xd = {4, 1}, yd = {1, 4, 5};
    Tensor c = randInts(DataType::kBool, cd, 0, 1);
    Tensor x = randInts(dt, xd, -9, 9), y = randInts(dt, yd, -9, 9);
    ASSERT_ORACLE(ref, oracle("Where", {c, x, y}));
    std::vector<int64_t> od = {3, 4, 5};
    Buf dc = upload(c), dx = upload(x), dyy = upload(y), dout = alloc(dt, od);
    ASSERT_OK(where(dt, dc->p, cd, dx->p, xd, dyy->p, yd, dout->p, od, s));
    sync();
    expectExact(download(dout, dt, od), ref[0], std::string("Where ") + dtName(dt));
  }
}

// ------------------------------------------------------------------ data movement
TEST_F(CudaKernels, ExpandAndTile) {
  for (DataType dt : {DataType::kFloat32, DataType::kFloat16, DataType::kInt64, DataType::kBool}) {
    std::vector<int64_t> in = {3, 1, 5}, shape = {2, 3, 4, 5};
    Tensor x = randInts(dt, in, 0, 1);
    ASSERT_ORACLE(ref, oracle("Expand", {x, i64(shape)}));
    Buf dx = upload(x), dy = alloc(dt, shape);
    ASSERT_OK(broadcastCopy(dataTypeSize(dt), dx->p, in, dy->p, shape, s));
    sync();
    expectExact(download(dy, dt, shape), ref[0], std::string("Expand ") + dtName(dt));

    std::vector<int64_t> reps = {2, 3, 1};
    ASSERT_ORACLE(tref, oracle("Tile", {x, i64(reps)}));
    std::vector<int64_t> td = {6, 3, 5};
    Buf dt2 = alloc(dt, td);
    ASSERT_OK(tile(dataTypeSize(dt), dx->p, in, reps, dt2->p, s));
    sync();
    expectExact(download(dt2, dt, td), tref[0], std::string("Tile ") + dtName(dt));
  }
}

TEST_F(CudaKernels, Transpose) {
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> cases = {
      {{2, 3, 17, 19}, {0, 2, 3, 1}},  // NCHW -> NHWC (tiled)
      {{2, 17, 19, 3}, {0, 3, 1, 2}},  // NHWC -> NCHW (tiled)
      {{33, 65}, {1, 0}},
      {{4, 1, 5, 6}, {2, 0, 3, 1}},
      {{2, 3, 4, 5, 6}, {4, 2, 0, 3, 1}},
      {{2, 3, 2, 3, 2, 3, 2, 2}, {7, 6, 5, 4, 3, 2, 1, 0}},
      {{3, 0, 4}, {2, 1, 0}},
      {{1, 1, 7}, {2, 0, 1}},
      {{2, 5, 9, 16}, {0, 2, 1, 3}},  // innermost dim kept: copied in 16-byte units where aligned
      {{7, 3, 24}, {1, 0, 2}},        // [B, S, D] -> [S, B, D] (torch MHA)
      {{2, 3, 37, 41}, {0, 2, 3, 1}}, // RGB NCHW -> NHWC: the few-rows kernel
      {{2, 4, 5, 3}, {0, 2, 3, 1}},   // 4 rows: still the few-rows kernel
      {{2, 16, 5, 3}, {0, 2, 3, 1}},  // 16 rows: tiles
      {{3, 70, 130}, {0, 2, 1}},      // partial 64x64 tiles, even sizes (2-byte words)
      {{2, 67, 33}, {0, 2, 1}},       // odd sizes: element copies at the edges
  };
  for (DataType dt : {DataType::kFloat32, DataType::kFloat16, DataType::kInt64, DataType::kUInt8}) {
    for (const auto& [dims, perm] : cases) {
      Tensor x = randInts(dt, dims, 0, 100);
      ASSERT_ORACLE(ref, oracle("Transpose", {x}, {{"perm", AIs(perm)}}));
      Buf dx = upload(x), dy = alloc(dt, ref[0].dims());
      ASSERT_OK(transpose(dataTypeSize(dt), dx->p, dims, perm, dy->p, s));
      sync();
      expectExact(download(dy, dt, ref[0].dims()), ref[0],
                  std::string("Transpose ") + dtName(dt) + " " + dimsToString(dims));
    }
  }
  Status bad = transpose(4, nullptr, {2, 3}, {0, 0}, nullptr, s);
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
}

TEST_F(CudaKernels, ConcatAndSplit) {
  for (DataType dt : {DataType::kFloat32, DataType::kFloat16, DataType::kInt64}) {
    for (int axis : {0, 1, 2}) {
      std::vector<int64_t> base = {3, 5, 7};
      std::vector<int64_t> lens = {base[axis], 0, 2};
      std::vector<Tensor> ins;
      std::vector<Buf> bufs;
      std::vector<const void*> ptrs;
      for (int64_t l : lens) {
        std::vector<int64_t> d = base;
        d[axis] = l;
        ins.push_back(randInts(dt, d, -50, 50));
        bufs.push_back(upload(ins.back()));
        ptrs.push_back(bufs.back()->p);
      }
      ASSERT_ORACLE(ref, oracle("Concat", ins, {{"axis", AI(axis)}}));
      Buf dy = alloc(dt, ref[0].dims());
      ASSERT_OK(concat(dataTypeSize(dt), ptrs, lens, base, axis, dy->p, s));
      sync();
      expectExact(download(dy, dt, ref[0].dims()), ref[0], "Concat axis " + std::to_string(axis));

      // Split the concatenation back.
      ASSERT_ORACLE(sref, oracle("Split", {ref[0], i64(lens)}, {{"axis", AI(axis)}}, 3));
      std::vector<Buf> outs;
      std::vector<void*> optrs;
      for (const Tensor& t : sref) { outs.push_back(alloc(dt, t.dims())); optrs.push_back(outs.back()->p); }
      ASSERT_OK(split(dataTypeSize(dt), dy->p, ref[0].dims(), axis, lens, optrs, s));
      sync();
      for (size_t i = 0; i < sref.size(); ++i)
        expectExact(download(outs[i], dt, sref[i].dims()), sref[i], "Split part " + std::to_string(i));
    }
  }
}

// NHWC channel concatenation (YOLO C2f blocks): widths of 8-48 fp16 channels copied as 16-byte
// units by the 2-D copy kernel, odd widths byte by byte; and the split back.
TEST_F(CudaKernels, ConcatSplitChannelsLast) {
  for (DataType dt : {DataType::kFloat32, DataType::kFloat16, DataType::kUInt8}) {
    for (const std::vector<int64_t>& lens : {std::vector<int64_t>{16, 8, 24}, std::vector<int64_t>{3, 5, 1}}) {
      std::vector<int64_t> base = {2, 3, 5, 0};
      std::vector<Tensor> ins;
      std::vector<Buf> bufs;
      std::vector<const void*> ptrs;
      for (int64_t l : lens) {
        std::vector<int64_t> d = base;
        d[3] = l;
        ins.push_back(randInts(dt, d, 0, 100));
        bufs.push_back(upload(ins.back()));
        ptrs.push_back(bufs.back()->p);
      }
      ASSERT_ORACLE(ref, oracle("Concat", ins, {{"axis", AI(3)}}));
      Buf dy = alloc(dt, ref[0].dims());
      ASSERT_OK(concat(dataTypeSize(dt), ptrs, lens, base, 3, dy->p, s));
      sync();
      expectExact(download(dy, dt, ref[0].dims()), ref[0], std::string("Concat NHWC ") + dtName(dt));
      std::vector<Buf> outs;
      std::vector<void*> optrs;
      for (const Tensor& t : ins) { outs.push_back(alloc(dt, t.dims())); optrs.push_back(outs.back()->p); }
      ASSERT_OK(split(dataTypeSize(dt), dy->p, ref[0].dims(), 3, lens, optrs, s));
      sync();
      for (size_t i = 0; i < ins.size(); ++i)
        expectExact(download(outs[i], dt, ins[i].dims()), ins[i], std::string("Split NHWC ") + dtName(dt));
    }
  }
}

// biasActivation against the host: y = act(x + bias[channel]) for NCHW (inner = H*W) and NHWC
// (inner = 1) layouts, on the vector path (channels or inner a multiple of 8) and off it.
TEST_F(CudaKernels, BiasActivation) {
  struct C { int64_t outer, channels, inner; };
  for (DataType dt : kFloatTypes) {
    for (const C& c : {C{3, 24, 1}, C{2, 5, 16}, C{4, 7, 3}, C{394, 96, 1}}) {
      for (UnaryOp op : {UnaryOp::kGelu, UnaryOp::kSilu, UnaryOp::kIdentity}) {
        Tensor x = randT(dt, {c.outer, c.channels, c.inner});
        Tensor b = randT(dt, {c.channels});
        Tensor want(DataType::kFloat32, {c.outer, c.channels, c.inner});
        Tensor xf = x.cast(DataType::kFloat32), bf = b.cast(DataType::kFloat32);
        for (int64_t i = 0; i < want.numel(); ++i) {
          const float v = xf.data<float>()[i] + bf.data<float>()[(i / c.inner) % c.channels];
          want.data<float>()[i] = op == UnaryOp::kGelu   ? 0.5f * v * (1.f + std::erf(v * 0.70710678f))
                                  : op == UnaryOp::kSilu ? v / (1.f + std::exp(-v))
                                                         : v;
        }
        Buf dx = upload(x), db = upload(b), dy = alloc(dt, x.dims());
        ASSERT_OK(biasActivation(dt, dx->p, db->p, dy->p, c.outer, c.channels, c.inner, op, {}, s));
        sync();
        expectClose(download(dy, dt, x.dims()).cast(DataType::kFloat32), want, tolFor(dt), tolFor(dt),
                    std::string("biasActivation ") + dtName(dt) + " " + unaryOpName(op) + " " +
                        std::to_string(c.outer) + "x" + std::to_string(c.channels) + "x" + std::to_string(c.inner));
      }
    }
  }
}

// ONNX Slice parameters -> normalized start and count per axis (what a backend computes).
void normalizeSlice(const std::vector<int64_t>& dims, const std::vector<int64_t>& starts,
                    const std::vector<int64_t>& ends, const std::vector<int64_t>& axes,
                    const std::vector<int64_t>& steps, std::vector<int64_t>* st,
                    std::vector<int64_t>* sp, std::vector<int64_t>* od) {
  size_t r = dims.size();
  st->assign(r, 0);
  sp->assign(r, 1);
  *od = dims;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t a = axes[i] < 0 ? axes[i] + r : axes[i], d = dims[a];
    int64_t b = starts[i], e = ends[i], k = steps[i];
    if (b < 0) b += d;
    if (e < 0) e += d;
    if (k > 0) { b = std::clamp<int64_t>(b, 0, d); e = std::clamp<int64_t>(e, 0, d); }
    else { b = std::clamp<int64_t>(b, 0, d - 1); e = std::clamp<int64_t>(e, -1, d - 1); }
    int64_t n = k > 0 ? (e - b + k - 1) / k : (b - e + (-k) - 1) / (-k);
    (*od)[a] = std::max<int64_t>(0, n);
    (*st)[a] = (*od)[a] > 0 ? b : 0;
    (*sp)[a] = k;
  }
}

TEST_F(CudaKernels, Slice) {
  struct C { std::vector<int64_t> dims, starts, ends, axes, steps; };
  std::vector<C> cases = {
      {{5, 7, 9}, {1, 2}, {4, 100}, {0, 2}, {1, 3}},
      {{5, 7, 9}, {-1, 6}, {-100, 0}, {1, 0}, {-2, -1}},
      {{4, 6}, {2}, {2}, {1}, {1}},  // empty
      {{2, 3, 4, 5, 6}, {0, 1, 1}, {2, 3, 5}, {1, 3, 4}, {2, 1, 2}},
      {{2, 4, 6, 32}, {8}, {24}, {3}, {1}},  // NHWC channel slice: 16-byte units where aligned
      {{2, 4, 6, 32}, {3}, {19}, {3}, {1}},  // misaligned start: element copies
  };
  for (DataType dt : {DataType::kFloat32, DataType::kFloat16, DataType::kInt64}) {
    for (const auto& c : cases) {
      Tensor x = randInts(dt, c.dims, -100, 100);
      ASSERT_ORACLE(ref, oracle("Slice", {x, i64(c.starts), i64(c.ends), i64(c.axes), i64(c.steps)}));
      std::vector<int64_t> st, sp, od;
      normalizeSlice(c.dims, c.starts, c.ends, c.axes, c.steps, &st, &sp, &od);
      Buf dx = upload(x), dy = alloc(dt, od);
      ASSERT_OK(slice(dataTypeSize(dt), dx->p, c.dims, st, sp, dy->p, od, s));
      sync();
      expectExact(download(dy, dt, od), ref[0], "Slice " + dimsToString(c.dims));
    }
  }
}

TEST_F(CudaKernels, Gather) {
  for (DataType dt : {DataType::kFloat32, DataType::kFloat16, DataType::kInt64}) {
    for (DataType it : {DataType::kInt64, DataType::kInt32}) {
      for (int axis : {0, 1, 2}) {
        std::vector<int64_t> dims = {4, 6, 5};
        Tensor x = randInts(dt, dims, -100, 100);
        Tensor idx = Tensor::fromVector<int64_t>({0, -1, 3, 2, -2, 1}, {2, 3}).cast(it);
        ASSERT_ORACLE(ref, oracle("Gather", {x, idx}, {{"axis", AI(axis)}}));
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < axis; ++i) outer *= dims[i];
        for (int i = axis + 1; i < 3; ++i) inner *= dims[i];
        Buf dx = upload(x), di = upload(idx), dy = alloc(dt, ref[0].dims());
        ASSERT_OK(gather(dataTypeSize(dt), dx->p, outer, dims[axis], inner, it, di->p, idx.numel(),
                         dy->p, nullptr, s));
        sync();
        expectExact(download(dy, dt, ref[0].dims()), ref[0], "Gather axis " + std::to_string(axis));
      }
    }
  }
  // An out-of-range index raises the error flag instead of reading out of bounds.
  Tensor x = randT(DataType::kFloat32, {3, 4});
  Tensor idx = i64({1, 7});
  Buf dx = upload(x), di = upload(idx), dy = alloc(DataType::kFloat32, {2, 4}), flag = alloc(DataType::kInt32, {1});
  cudaMemset(flag->p, 0, 4);
  ASSERT_OK(gather(4, dx->p, 1, 3, 4, DataType::kInt64, di->p, 2, dy->p, static_cast<int*>(flag->p), s));
  sync();
  int h = 0;
  cudaMemcpy(&h, flag->p, 4, cudaMemcpyDeviceToHost);
  EXPECT_EQ(h, 1);
}

TEST_F(CudaKernels, Pad) {
  struct C { PadMode mode; const char* name; std::vector<int64_t> dims, pads; };
  std::vector<C> cases = {
      {PadMode::kConstant, "constant", {2, 3, 5, 7}, {0, 0, 1, 2, 0, 0, 3, 1}},
      {PadMode::kConstant, "constant", {4, 6}, {-1, 2, 1, -3}},
      {PadMode::kReflect, "reflect", {2, 3, 5, 7}, {0, 0, 2, 3, 0, 0, 4, 1}},
      {PadMode::kEdge, "edge", {2, 3, 5, 7}, {0, 1, 2, 3, 1, 0, 4, 1}},
      {PadMode::kWrap, "wrap", {3, 5}, {1, 2, 2, 4}},
  };
  for (DataType dt : kFloatTypes) {
    for (const auto& c : cases) {
      Tensor x = randT(dt, c.dims);
      Tensor cv = Tensor::scalar<float>(1.5f).cast(dt);
      ASSERT_ORACLE(ref, oracle("Pad", {x, i64(c.pads), cv}, {{"mode", AS(c.name)}}));
      Buf dx = upload(x), dy = alloc(dt, ref[0].dims());
      ASSERT_OK(pad(dt, dx->p, c.dims, c.pads, c.mode, 1.5, dy->p, s));
      sync();
      expectExact(download(dy, dt, ref[0].dims()), ref[0], std::string("Pad ") + c.name + " " + dtName(dt));
    }
  }
}

// ------------------------------------------------------------------ reductions
TEST_F(CudaKernels, Reduce) {
  struct C { ReduceOp op; const char* onnx; float lo, hi; };
  std::vector<C> ops = {{ReduceOp::kSum, "ReduceSum", -2, 2},      {ReduceOp::kMean, "ReduceMean", -2, 2},
                        {ReduceOp::kMax, "ReduceMax", -2, 2},      {ReduceOp::kMin, "ReduceMin", -2, 2},
                        {ReduceOp::kProd, "ReduceProd", 0.9f, 1.1f}, {ReduceOp::kL1, "ReduceL1", -2, 2},
                        {ReduceOp::kL2, "ReduceL2", -2, 2},        {ReduceOp::kSumSquare, "ReduceSumSquare", -2, 2},
                        {ReduceOp::kLogSum, "ReduceLogSum", 0.1f, 2}, {ReduceOp::kLogSumExp, "ReduceLogSumExp", -3, 3}};
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> cases = {
      {{2, 3, 5, 7}, {1}}, {{2, 3, 5, 7}, {2, 3}}, {{2, 3, 5, 7}, {0, 2}}, {{4, 1000}, {1}},
      {{3, 1, 129}, {0, 1, 2}}, {{0, 5}, {1}}, {{6, 1, 4}, {1}}, {{2, 50, 3}, {1}},
      // Contiguous rows read in 16/8-byte units (GlobalAveragePool over NCHW planes; an odd unit count).
      {{2, 3, 16, 16}, {2, 3}}, {{2, 3, 14, 14}, {2, 3}}, {{3, 520}, {1}},
      // 16 lanes per row (7x7 planes), a block per row (128x128 planes: 2,048+ units).
      {{2, 5, 7, 7}, {2, 3}}, {{1, 3, 128, 128}, {2, 3}}};
  for (DataType dt : kFloatTypes) {
    for (const auto& c : ops) {
      for (const auto& [dims, axes] : cases) {
        Tensor x = randT(dt, dims, c.lo, c.hi);
        ASSERT_ORACLE(ref, oracle(c.onnx, {x, i64(axes)}, {{"keepdims", AI(1)}}));
        Buf dx = upload(x), dy = alloc(dt, ref[0].dims());
        ASSERT_OK(reduce(c.op, dt, dx->p, dims, axes, dy->p, s));
        sync();
        double tol = dt == DataType::kFloat16 ? 1e-2 : 2e-5;
        expectClose(download(dy, dt, ref[0].dims()), ref[0], tol, tol,
                    std::string(c.onnx) + " " + dtName(dt) + " " + dimsToString(dims) + " axes " + dimsToString(axes));
      }
    }
  }
}

TEST_F(CudaKernels, ArgMaxArgMin) {
  for (DataType dt : kFloatTypes) {
    for (bool is_max : {true, false}) {
      for (int last : {0, 1}) {
        std::vector<int64_t> dims = {3, 11, 4};
        Tensor x = randInts(dt, dims, -3, 3);  // ties
        ASSERT_ORACLE(ref, oracle(is_max ? "ArgMax" : "ArgMin", {x},
                                  {{"axis", AI(1)}, {"keepdims", AI(1)}, {"select_last_index", AI(last)}}));
        Buf dx = upload(x), dy = alloc(DataType::kInt64, {3, 1, 4});
        ASSERT_OK(argReduce(is_max, last, dt, dx->p, 3, 11, 4, static_cast<int64_t*>(dy->p), s));
        sync();
        expectExact(download(dy, DataType::kInt64, {3, 1, 4}), ref[0], "ArgMax/Min");
      }
    }
  }
}

TEST_F(CudaKernels, TopK) {
  struct C { std::vector<int64_t> dims; int axis; int64_t k; bool largest; bool ties; };
  std::vector<C> cases = {{{3, 50, 4}, 1, 5, true, false}, {{2, 1000}, 1, 10, true, false},
                          {{2, 1000}, 1, 7, false, false}, {{5, 33}, 1, 33, true, true},
                          {{4, 9}, 0, 2, false, true}};
  for (DataType dt : kFloatTypes) {
    for (const auto& c : cases) {
      Tensor x = c.ties ? randInts(dt, c.dims, -4, 4) : randT(dt, c.dims);
      ASSERT_ORACLE(ref, oracle("TopK", {x, i64({c.k})},
                                {{"axis", AI(c.axis)}, {"largest", AI(c.largest)}, {"sorted", AI(1)}}, 2));
      int64_t outer = 1, inner = 1;
      for (int i = 0; i < c.axis; ++i) outer *= c.dims[i];
      for (size_t i = c.axis + 1; i < c.dims.size(); ++i) inner *= c.dims[i];
      Buf dx = upload(x), dv = alloc(dt, ref[0].dims()), di = alloc(DataType::kInt64, ref[1].dims());
      ASSERT_OK(topK(dt, dx->p, outer, c.dims[c.axis], inner, c.k, c.largest, dv->p,
                     static_cast<int64_t*>(di->p), s));
      sync();
      expectExact(download(dv, dt, ref[0].dims()), ref[0], "TopK values " + dimsToString(c.dims));
      expectExact(download(di, DataType::kInt64, ref[1].dims()), ref[1], "TopK indices " + dimsToString(c.dims));
    }
  }
}

TEST_F(CudaKernels, Softmax) {
  std::vector<std::pair<std::vector<int64_t>, int>> cases = {
      {{4, 1000}, 1}, {{2, 3, 7}, 2}, {{2, 5, 3, 3}, 1}, {{3, 33}, 0}, {{2, 0, 3}, 2}, {{1, 12, 197, 197}, 3}};
  for (DataType dt : kFloatTypes) {
    for (bool log : {false, true}) {
      for (const auto& [dims, axis] : cases) {
        Tensor x = randT(dt, dims, -5, 5);
        ASSERT_ORACLE(ref, oracle(log ? "LogSoftmax" : "Softmax", {x}, {{"axis", AI(axis)}}));
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < axis; ++i) outer *= dims[i];
        for (size_t i = axis + 1; i < dims.size(); ++i) inner *= dims[i];
        Buf dx = upload(x), dy = alloc(dt, dims);
        ASSERT_OK(softmax(dt, dx->p, outer, dims[axis], inner, log, dy->p, s));
        sync();
        double tol = dt == DataType::kFloat16 ? 1e-2 : 1e-5;
        expectClose(download(dy, dt, dims), ref[0], tol, tol,
                    std::string(log ? "LogSoftmax " : "Softmax ") + dtName(dt) + " " + dimsToString(dims));
      }
    }
  }
}

// ------------------------------------------------------------------ normalization
TEST_F(CudaKernels, LayerNorm) {
  std::vector<std::pair<std::vector<int64_t>, int>> cases = {{{4, 7, 33}, -1}, {{2, 5, 768}, -1}, {{3, 7, 9}, 1}, {{0, 8}, -1}};
  for (DataType dt : kFloatTypes) {
    for (const auto& [dims, axis] : cases) {
      for (bool with_bias : {true, false}) {
        int a = axis < 0 ? axis + static_cast<int>(dims.size()) : axis;
        std::vector<int64_t> pd(dims.begin() + a, dims.end());
        int64_t rows = 1, cols = 1;
        for (int i = 0; i < a; ++i) rows *= dims[i];
        for (int64_t d : pd) cols *= d;
        Tensor x = randT(dt, dims), sc = randT(dt, pd, 0.5f, 1.5f), b = randT(dt, pd);
        std::vector<Tensor> ins = {x, sc};
        if (with_bias) ins.push_back(b);
        ASSERT_ORACLE(ref, oracle("LayerNormalization", ins, {{"axis", AI(axis)}, {"epsilon", AF(1e-5f)}}));
        Buf dx = upload(x), ds = upload(sc), db = upload(b), dy = alloc(dt, dims);
        ASSERT_OK(layerNorm(dt, dx->p, ds->p, with_bias ? db->p : nullptr, dy->p, rows, cols, 1e-5f,
                            nullptr, nullptr, s));
        sync();
        double tol = dt == DataType::kFloat16 ? 1e-2 : 2e-5;
        expectClose(download(dy, dt, dims), ref[0], tol, tol, "LayerNorm " + dimsToString(dims));
      }
    }
  }
}

TEST_F(CudaKernels, BatchNormInference) {
  for (DataType dt : kFloatTypes) {
    std::vector<int64_t> dims = {2, 5, 7, 9};
    Tensor x = randT(dt, dims), sc = randT(dt, {5}), b = randT(dt, {5}), m = randT(dt, {5}),
           v = randT(dt, {5}, 0.2f, 2.f);
    ASSERT_ORACLE(ref, oracle("BatchNormalization", {x, sc, b, m, v}, {{"epsilon", AF(1e-3f)}}));
    Buf dx = upload(x), ds = upload(sc), db = upload(b), dm = upload(m), dv = upload(v), dy = alloc(dt, dims);
    ASSERT_OK(batchNormInference(dt, dx->p, ds->p, db->p, dm->p, dv->p, dy->p, 2, 5, 63, 1e-3f, s));
    sync();
    expectClose(download(dy, dt, dims), ref[0], tolFor(dt), tolFor(dt), "BatchNorm NCHW");
    // NHWC: same numbers, channels last.
    Tensor xh = hostTranspose(x, {0, 2, 3, 1});
    Buf dxh = upload(xh), dyh = alloc(dt, xh.dims());
    ASSERT_OK(batchNormInference(dt, dxh->p, ds->p, db->p, dm->p, dv->p, dyh->p, 2 * 63, 5, 1, 1e-3f, s));
    sync();
    expectClose(download(dyh, dt, xh.dims()), hostTranspose(ref[0], {0, 2, 3, 1}), tolFor(dt), tolFor(dt), "BatchNorm NHWC");
  }
}

TEST_F(CudaKernels, InstanceAndGroupNorm) {
  for (DataType dt : kFloatTypes) {
    std::vector<int64_t> dims = {2, 6, 5, 7};
    Tensor x = randT(dt, dims), sc = randT(dt, {6}, 0.5f, 1.5f), b = randT(dt, {6});
    double tol = dt == DataType::kFloat16 ? 1e-2 : 2e-5;
    {
      ASSERT_ORACLE(ref, oracle("InstanceNormalization", {x, sc, b}, {{"epsilon", AF(1e-5f)}}));
      Buf dx = upload(x), ds = upload(sc), db = upload(b), dy = alloc(dt, dims);
      ASSERT_OK(groupNorm(dt, dx->p, ds->p, db->p, dy->p, 2, 6, 35, 6, 1e-5f, s));
      sync();
      expectClose(download(dy, dt, dims), ref[0], tol, tol, "InstanceNorm");
    }
    {
      // GroupNormalization (opset 21): scale and bias per channel.
      ASSERT_ORACLE(ref, oracle("GroupNormalization", {x, sc, b}, {{"epsilon", AF(1e-5f)}, {"num_groups", AI(3)}}));
      Buf dx = upload(x), ds = upload(sc), db = upload(b), dy = alloc(dt, dims);
      ASSERT_OK(groupNorm(dt, dx->p, ds->p, db->p, dy->p, 2, 6, 35, 3, 1e-5f, s));
      sync();
      expectClose(download(dy, dt, dims), ref[0], tol, tol, "GroupNorm");
    }
  }
}

// ------------------------------------------------------------------ pooling
TEST_F(CudaKernels, Pooling) {
  struct C { std::vector<int64_t> dims, k, st, pads, dil; int ceil; int include_pad; };
  std::vector<C> cases = {
      {{2, 3, 11, 13}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0, 0},
      {{2, 3, 11, 13}, {3, 2}, {2, 3}, {1, 0, 1, 1}, {1, 1}, 1, 0},
      {{1, 4, 9, 9}, {3, 3}, {1, 1}, {2, 2, 2, 2}, {2, 2}, 0, 1},
      {{2, 3, 17}, {5}, {2}, {2, 2}, {1}, 0, 1},
      {{1, 2, 5, 6, 7}, {2, 3, 2}, {2, 1, 2}, {0, 1, 1, 0, 1, 1}, {1, 1, 1}, 1, 0},
      {{2, 8, 20, 20}, {5, 5}, {1, 1}, {2, 2, 2, 2}, {1, 1}, 0, 0},  // YOLO SPPF
  };
  for (DataType dt : kFloatTypes) {
    for (const auto& c : cases) {
      for (bool is_max : {true, false}) {
        if (!is_max && c.dil[0] != 1) continue;  // AveragePool dilations: newer opsets only
        Tensor x = randT(dt, c.dims);
        Attrs at = {{"kernel_shape", AIs(c.k)}, {"strides", AIs(c.st)}, {"pads", AIs(c.pads)}, {"ceil_mode", AI(c.ceil)}};
        if (is_max) at["dilations"] = AIs(c.dil);
        else at["count_include_pad"] = AI(c.include_pad);
        ASSERT_ORACLE(ref, oracle(is_max ? "MaxPool" : "AveragePool", {x}, at));
        int sr = static_cast<int>(c.k.size());
        PoolParams p;
        p.spatial_rank = sr;
        p.n = c.dims[0];
        p.c = c.dims[1];
        for (int i = 0; i < sr; ++i) {
          p.in[i] = c.dims[2 + i];
          p.out[i] = ref[0].dims()[2 + i];
          p.kernel[i] = c.k[i];
          p.stride[i] = c.st[i];
          p.dilation[i] = c.dil[i];
          p.pad_begin[i] = c.pads[i];
          p.pad_end[i] = c.pads[sr + i];
        }
        p.count_include_pad = c.include_pad;
        for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
          p.layout = layout;
          std::vector<int64_t> to_last(c.dims.size());  // NC... -> N...C
          to_last[0] = 0;
          for (size_t i = 1; i + 1 < c.dims.size(); ++i) to_last[i] = i + 1;
          to_last.back() = 1;
          Tensor xin = layout == Layout::kNCHW ? x : hostTranspose(x, to_last);
          Tensor want = layout == Layout::kNCHW ? ref[0] : hostTranspose(ref[0], to_last);
          Buf dx = upload(xin), dy = alloc(dt, want.dims());
          ASSERT_OK(is_max ? maxPool(dt, dx->p, dy->p, p, s) : averagePool(dt, dx->p, dy->p, p, s));
          sync();
          expectClose(download(dy, dt, want.dims()), want, tolFor(dt), tolFor(dt),
                      std::string(is_max ? "MaxPool " : "AveragePool ") + dtName(dt) + " " +
                          dimsToString(c.dims) + (layout == Layout::kNHWC ? " NHWC" : " NCHW"));
        }
      }
    }
    // GlobalAveragePool = mean over the spatial axes.
    Tensor x = randT(dt, {2, 7, 9, 11});
    ASSERT_ORACLE(ref, oracle("GlobalAveragePool", {x}));
    Buf dx = upload(x), dy = alloc(dt, {2, 7, 1, 1});
    ASSERT_OK(reduce(ReduceOp::kMean, dt, dx->p, {2, 7, 9, 11}, {2, 3}, dy->p, s));
    sync();
    expectClose(download(dy, dt, {2, 7, 1, 1}), ref[0], tolFor(dt), tolFor(dt), "GlobalAveragePool");
  }
}

// ------------------------------------------------------------------ resize
TEST_F(CudaKernels, Resize) {
  struct C {
    ResizeMode mode;
    const char* mode_s;
    CoordTransform coord;
    const char* coord_s;
    NearestMode nearest;
    const char* nearest_s;
    std::vector<int64_t> dims;
    std::vector<float> scales;  // empty: use sizes
    std::vector<int64_t> sizes;
  };
  std::vector<C> cases = {
      {ResizeMode::kNearest, "nearest", CoordTransform::kAsymmetric, "asymmetric", NearestMode::kFloor, "floor", {1, 3, 5, 7}, {1, 1, 2, 2}, {}},
      {ResizeMode::kNearest, "nearest", CoordTransform::kHalfPixel, "half_pixel", NearestMode::kRoundPreferCeil, "round_prefer_ceil", {2, 3, 5, 7}, {1, 1, 2, 2}, {}},
      {ResizeMode::kNearest, "nearest", CoordTransform::kHalfPixel, "half_pixel", NearestMode::kRoundPreferFloor, "round_prefer_floor", {1, 2, 9, 8}, {}, {1, 2, 4, 3}},
      // NHWC nearest upsampling: whole pixels (16 channels) copied as units.
      {ResizeMode::kNearest, "nearest", CoordTransform::kAsymmetric, "asymmetric", NearestMode::kFloor, "floor", {2, 5, 7, 16}, {1, 2, 2, 1}, {}},
      {ResizeMode::kNearest, "nearest", CoordTransform::kHalfPixel, "half_pixel", NearestMode::kRoundPreferFloor, "round_prefer_floor", {1, 4, 3, 6}, {}, {1, 9, 5, 6}},
      {ResizeMode::kLinear, "linear", CoordTransform::kHalfPixel, "half_pixel", NearestMode::kRoundPreferFloor, "round_prefer_floor", {1, 3, 5, 7}, {1, 1, 2, 2}, {}},
      {ResizeMode::kLinear, "linear", CoordTransform::kAlignCorners, "align_corners", NearestMode::kRoundPreferFloor, "round_prefer_floor", {2, 2, 5, 6}, {}, {2, 2, 9, 4}},
      {ResizeMode::kLinear, "linear", CoordTransform::kPytorchHalfPixel, "pytorch_half_pixel", NearestMode::kRoundPreferFloor, "round_prefer_floor", {1, 2, 6, 5}, {}, {1, 2, 1, 11}},
      {ResizeMode::kLinear, "linear", CoordTransform::kAsymmetric, "asymmetric", NearestMode::kRoundPreferFloor, "round_prefer_floor", {1, 2, 6, 5}, {1, 1, 1.7f, 0.6f}, {}},
  };
  for (DataType dt : kFloatTypes) {
    for (const auto& c : cases) {
      Tensor x = randT(dt, c.dims);
      std::vector<Tensor> ins = {x, Tensor(), c.scales.empty() ? Tensor() : f32s(c.scales),
                                 c.sizes.empty() ? Tensor() : i64(c.sizes)};
      Attrs at = {{"mode", AS(c.mode_s)}, {"coordinate_transformation_mode", AS(c.coord_s)},
                  {"nearest_mode", AS(c.nearest_s)}};
      ASSERT_ORACLE(ref, oracle("Resize", ins, at));
      ResizeParams p;
      p.mode = c.mode;
      p.coord = c.coord;
      p.nearest = c.nearest;
      p.scales = c.scales;  // empty: derived from sizes
      Buf dx = upload(x), dy = alloc(dt, ref[0].dims());
      ASSERT_OK(resize(dt, dx->p, c.dims, dy->p, ref[0].dims(), p, s));
      sync();
      expectClose(download(dy, dt, ref[0].dims()), ref[0], tolFor(dt), tolFor(dt),
                  std::string("Resize ") + c.mode_s + " " + c.coord_s + " " + dtName(dt));
    }
  }
}

// Nearest Resize is a gather of whole elements: integer tensors too (NCHW and NHWC).
TEST_F(CudaKernels, ResizeNearestIntegers) {
  for (DataType dt : {DataType::kInt64, DataType::kInt32, DataType::kUInt8}) {
    for (const auto& [dims, scales] : std::vector<std::pair<std::vector<int64_t>, std::vector<float>>>{
             {{1, 3, 5, 7}, {1, 1, 2, 2}}, {{2, 5, 7, 16}, {1, 2, 2, 1}}}) {
      Tensor x = randInts(dt, dims, 0, 100);
      ASSERT_ORACLE(ref, oracle("Resize", {x, Tensor(), f32s(scales)},
                                {{"mode", AS("nearest")}, {"coordinate_transformation_mode", AS("asymmetric")},
                                 {"nearest_mode", AS("floor")}}));
      ResizeParams p;
      p.mode = ResizeMode::kNearest;
      p.coord = CoordTransform::kAsymmetric;
      p.nearest = NearestMode::kFloor;
      p.scales = scales;
      Buf dx = upload(x), dy = alloc(dt, ref[0].dims());
      ASSERT_OK(resize(dt, dx->p, dims, dy->p, ref[0].dims(), p, s));
      sync();
      expectExact(download(dy, dt, ref[0].dims()), ref[0], std::string("Resize nearest ") + dtName(dt) + " " + dimsToString(dims));
    }
  }
}

// ------------------------------------------------------------------ convolution (cuDNN)
TEST_F(CudaKernels, ConvCudnn) {
  auto handle = CudnnHandle::create();
  ASSERT_TRUE(handle.ok()) << handle.status().toString();
  struct C {
    std::vector<int64_t> x;  // N, C, spatial...
    int64_t k;
    std::vector<int64_t> kernel, pad, stride, dil;
    int64_t groups;
    bool bias;
    UnaryOp act;
  };
  std::vector<C> cases = {
      {{2, 3, 17, 19}, 8, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 1, true, UnaryOp::kRelu},
      {{1, 16, 15, 15}, 32, {3, 3}, {1, 1}, {2, 2}, {1, 1}, 1, true, UnaryOp::kSigmoid},
      {{2, 8, 13, 11}, 8, {3, 3}, {2, 2}, {1, 1}, {2, 2}, 1, false, UnaryOp::kIdentity},
      {{2, 8, 14, 14}, 12, {3, 3}, {1, 1}, {1, 1}, {1, 1}, 4, true, UnaryOp::kIdentity},
      {{2, 16, 14, 14}, 16, {5, 5}, {2, 2}, {2, 2}, {1, 1}, 16, true, UnaryOp::kHardSwish},  // depthwise
      {{1, 32, 7, 7}, 64, {1, 1}, {0, 0}, {1, 1}, {1, 1}, 1, true, UnaryOp::kSilu},
      {{2, 4, 29}, 6, {5}, {2}, {2}, {1}, 1, true, UnaryOp::kRelu},  // 1-D
      {{1, 4, 5, 6, 7}, 8, {3, 3, 3}, {1, 1, 1}, {1, 1, 1}, {1, 1, 1}, 1, false, UnaryOp::kIdentity},  // 3-D
  };
  for (DataType dt : kFloatTypes) {
    for (const auto& c : cases) {
      int sr = static_cast<int>(c.kernel.size());
      int64_t cin = c.x[1];
      std::vector<int64_t> wd = {c.k, cin / c.groups};
      wd.insert(wd.end(), c.kernel.begin(), c.kernel.end());
      Tensor x = randT(dt, c.x, -1, 1), w = randT(dt, wd, -1, 1), b = randT(dt, {c.k}, -1, 1);
      std::vector<int64_t> pads = c.pad;
      pads.insert(pads.end(), c.pad.begin(), c.pad.end());
      Attrs at = {{"kernel_shape", AIs(c.kernel)}, {"pads", AIs(pads)}, {"strides", AIs(c.stride)},
                  {"dilations", AIs(c.dil)}, {"group", AI(c.groups)}};
      std::vector<Tensor> ins = {x, w};
      if (c.bias) ins.push_back(b);
      ASSERT_ORACLE(conv_ref, oracle("Conv", ins, at));
      Tensor want = conv_ref[0];
      if (c.act == UnaryOp::kRelu) { ASSERT_ORACLE(r, oracle("Relu", {want})); want = r[0]; }
      if (c.act == UnaryOp::kSigmoid) { ASSERT_ORACLE(r, oracle("Sigmoid", {want})); want = r[0]; }
      if (c.act == UnaryOp::kHardSwish) { ASSERT_ORACLE(r, oracle("HardSwish", {want})); want = r[0]; }
      if (c.act == UnaryOp::kSilu) {
        ASSERT_ORACLE(sg, oracle("Sigmoid", {want}));
        ASSERT_ORACLE(r, oracle("Mul", {want, sg[0]}));
        want = r[0];
      }
      double scale = 0;
      for (int64_t i = 0; i < want.numel(); ++i) scale = std::max(scale, std::fabs(want.getDouble(i)));
      double atol = (dt == DataType::kFloat16 ? 2e-2 : 2e-3) * std::max(1.0, scale);
      double rtol = dt == DataType::kFloat16 ? 2e-2 : 2e-3;

      for (Layout layout : {Layout::kNCHW, Layout::kNHWC}) {
        ConvDesc d;
        d.dtype = dt;
        d.layout = layout;
        d.spatial_rank = sr;
        d.n = c.x[0];
        d.c = cin;
        d.k = c.k;
        for (int i = 0; i < sr; ++i) {
          d.in[i] = c.x[2 + i];
          d.kernel[i] = c.kernel[i];
          d.pad[i] = c.pad[i];
          d.stride[i] = c.stride[i];
          d.dilation[i] = c.dil[i];
        }
        d.groups = c.groups;
        d.has_bias = c.bias;
        d.activation = c.act;
        d.name = "Conv case " + dimsToString(c.x);
        auto conv = CudnnConv::create((*handle)->get(), d);
        ASSERT_TRUE(conv.ok()) << conv.status().toString();
        std::vector<int64_t> to_last = {0};  // NC... -> N...C (and KC.. -> K..C)
        for (int i = 0; i < sr; ++i) to_last.push_back(i + 2);
        to_last.push_back(1);
        bool nhwc = layout == Layout::kNHWC;
        Tensor xin = nhwc ? hostTranspose(x, to_last) : x;
        Tensor win = nhwc ? hostTranspose(w, to_last) : w;  // KCRS -> KRSC
        Tensor expect = nhwc ? hostTranspose(want, to_last) : want;
        ASSERT_EQ((*conv)->outputDims(), expect.dims());
        auto algos = (*conv)->candidates(size_t(256) << 20);
        ASSERT_TRUE(algos.ok()) << algos.status().toString();
        Buf dx = upload(xin), dw = upload(win), db = upload(b);
        // Every candidate must compute the same function: the builder may pick any of them.
        for (const ConvAlgo& a : *algos) {
          Buf dy = alloc(dt, expect.dims());
          Buf ws = std::make_unique<DevBuf>(a.workspace);
          ASSERT_OK((*conv)->run(a, dx->p, dw->p, c.bias ? db->p : nullptr, dy->p, ws->p, a.workspace, s));
          sync();
          expectClose(download(dy, dt, expect.dims()), expect, atol, rtol,
                      std::string("Conv ") + dtName(dt) + (nhwc ? " NHWC " : " NCHW ") +
                          dimsToString(c.x) + " g" + std::to_string(c.groups) + " " + a.toString());
        }
      }
    }
  }
  // Bad descriptors are errors.
  ConvDesc bad;
  bad.n = 1; bad.c = 3; bad.k = 4; bad.groups = 2; bad.in[0] = bad.in[1] = 5;
  auto r = CudnnConv::create((*handle)->get(), bad);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << r.status().toString();
}

// ------------------------------------------------------------------ GEMM (cuBLASLt)
TEST_F(CudaKernels, GemmCublasLt) {
  auto handle = CublasLtHandle::create();
  ASSERT_TRUE(handle.ok()) << handle.status().toString();
  const size_t kWs = size_t(32) << 20;
  Buf ws = std::make_unique<DevBuf>(kWs);
  auto tolerance = [](DataType dt, const Tensor& want, double* atol, double* rtol) {
    double scale = 0;
    for (int64_t i = 0; i < want.numel(); ++i) scale = std::max(scale, std::fabs(want.getDouble(i)));
    *atol = (dt == DataType::kFloat16 ? 2e-2 : 2e-3) * std::max(1.0, scale);
    *rtol = dt == DataType::kFloat16 ? 2e-2 : 2e-3;
  };
  for (DataType dt : kFloatTypes) {
    // ONNX Gemm: transA/transB, alpha, beta, C as bias [n] (epilogue) or full [m,n].
    struct G { int64_t m, n, k; int ta, tb; float alpha, beta; bool c_full; GemmEpilogue epi; };
    std::vector<G> gemms = {{17, 33, 29, 0, 0, 1.f, 1.f, false, GemmEpilogue::kNone},
                            {64, 48, 80, 1, 0, 0.5f, 1.f, false, GemmEpilogue::kRelu},
                            {5, 1000, 256, 0, 1, 1.f, 1.f, false, GemmEpilogue::kNone},
                            {31, 7, 13, 1, 1, 1.5f, 0.25f, true, GemmEpilogue::kNone},
                            {8, 24, 40, 0, 1, 1.f, 1.f, false, GemmEpilogue::kGelu}};
    for (const auto& g : gemms) {
      Tensor a = randT(dt, g.ta ? std::vector<int64_t>{g.k, g.m} : std::vector<int64_t>{g.m, g.k}, -1, 1);
      Tensor b = randT(dt, g.tb ? std::vector<int64_t>{g.n, g.k} : std::vector<int64_t>{g.k, g.n}, -1, 1);
      Tensor c = randT(dt, g.c_full ? std::vector<int64_t>{g.m, g.n} : std::vector<int64_t>{g.n}, -1, 1);
      ASSERT_ORACLE(ref, oracle("Gemm", {a, b, c},
                                {{"transA", AI(g.ta)}, {"transB", AI(g.tb)}, {"alpha", AF(g.alpha)}, {"beta", AF(g.beta)}}));
      Tensor want = ref[0];
      if (g.epi == GemmEpilogue::kRelu) { ASSERT_ORACLE(r, oracle("Relu", {want})); want = r[0]; }
      if (g.epi == GemmEpilogue::kGelu) {
        ASSERT_ORACLE(r, oracle("Gelu", {want}, {{"approximate", AS("tanh")}}));
        want = r[0];
      }
      GemmDesc d;
      d.dtype = dt;
      d.trans_a = g.ta;
      d.trans_b = g.tb;
      d.m = g.m; d.n = g.n; d.k = g.k;
      d.has_bias = !g.c_full;
      d.epilogue = g.epi;
      d.name = "Gemm " + std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k);
      auto gemm = CublasLtGemm::create((*handle)->get(), d);
      ASSERT_TRUE(gemm.ok()) << gemm.status().toString();
      auto algos = (*gemm)->candidates(8, kWs);
      ASSERT_TRUE(algos.ok()) << algos.status().toString();
      Buf da = upload(a), dbb = upload(b), dc = upload(c);
      double atol, rtol;
      tolerance(dt, want, &atol, &rtol);
      for (const GemmAlgo& al : *algos) {
        Buf dy = alloc(dt, want.dims());
        if (g.c_full) {
          // Full C: copied into D, then D = alpha*AB + beta*D.
          cudaMemcpy(dy->p, dc->p, c.nbytes(), cudaMemcpyDeviceToDevice);
          ASSERT_OK((*gemm)->run(al, da->p, dbb->p, dy->p, dy->p, nullptr, g.alpha, g.beta, ws->p, kWs, s));
        } else {
          ASSERT_OK((*gemm)->run(al, da->p, dbb->p, nullptr, dy->p, dc->p, g.alpha, 0.f, ws->p, kWs, s));
        }
        sync();
        expectClose(download(dy, dt, want.dims()), want, atol, rtol, d.name + " " + dtName(dt) + " " + al.toString());
      }
    }
    // MatMul: batched, broadcast B (folded into M), broadcast A (stride 0).
    struct M { std::vector<int64_t> a, b; };
    std::vector<M> mms = {{{5, 7}, {7, 9}}, {{3, 5, 7}, {3, 7, 9}}, {{3, 5, 7}, {7, 9}}, {{5, 7}, {4, 7, 9}},
                          {{2, 12, 197, 64}, {2, 12, 64, 197}}, {{0, 4}, {4, 3}}};
    for (const auto& mm : mms) {
      Tensor a = randT(dt, mm.a, -1, 1), b = randT(dt, mm.b, -1, 1);
      ASSERT_ORACLE(ref, oracle("MatMul", {a, b}));
      int64_t m = mm.a[mm.a.size() - 2], k = mm.a.back(), n = mm.b.back();
      int64_t ba = numElements(mm.a) / std::max<int64_t>(1, m * k), bb = numElements(mm.b) / (k * n);
      if (m * k == 0) ba = 1;
      GemmDesc d;
      d.dtype = dt;
      d.m = m; d.n = n; d.k = k;
      d.batch = std::max(ba, bb);
      d.stride_a = ba == 1 && d.batch > 1 ? 0 : m * k;
      d.stride_b = bb == 1 && d.batch > 1 ? 0 : k * n;
      d.stride_c = m * n;
      d.name = "MatMul " + dimsToString(mm.a) + " x " + dimsToString(mm.b);
      auto gemm = CublasLtGemm::create((*handle)->get(), d);
      ASSERT_TRUE(gemm.ok()) << gemm.status().toString();
      auto algos = (*gemm)->candidates(4, kWs);
      ASSERT_TRUE(algos.ok()) << algos.status().toString();
      Buf da = upload(a), dbb = upload(b), dy = alloc(dt, ref[0].dims());
      ASSERT_OK((*gemm)->run((*algos)[0], da->p, dbb->p, nullptr, dy->p, nullptr, 1.f, 0.f, ws->p, kWs, s));
      sync();
      double atol, rtol;
      tolerance(dt, ref[0], &atol, &rtol);
      expectClose(download(dy, dt, ref[0].dims()), ref[0], atol, rtol, d.name + " " + dtName(dt));
    }
  }
}

// ------------------------------------------------------------------ throughput (informational)
// Times the bandwidth-bound kernels against a device-to-device copy of the same bytes, and the
// cuDNN / cuBLASLt paths in TFLOP/s with the fastest of their candidates (the autotuning API in
// use). Median of 20 event-timed runs after warm-up. Fails only on errors, not on speed.
double timeMs(const std::function<Status()>& f, int iters = 20) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(f().ok());
  std::vector<float> ts;
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(a);
    Status st = f();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    EXPECT_TRUE(st.ok()) << st.toString();
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    ts.push_back(ms);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

TEST_F(CudaKernels, Throughput) {
  const DataType h = DataType::kFloat16;
  std::vector<int64_t> act = {32, 256, 56, 56};  // a ResNet-50 stage-1 activation, batch 32
  int64_t n = numElements(act);
  size_t bytes = n * 2;
  Buf x = upload(randT(h, act)), y = alloc(h, act), z = upload(randT(h, act));
  Buf bias = upload(randT(h, {256})), chan = upload(randT(h, {1, 256, 1, 1}));
  auto report = [&](const char* what, double ms, double moved) {
    std::printf("[perf] %-44s %8.3f ms %8.1f GB/s\n", what, ms, moved / ms / 1e6);
  };
  report("memcpy D2D f16 [32,256,56,56]", timeMs([&] {
           return cudaMemcpyAsync(y->p, x->p, bytes, cudaMemcpyDeviceToDevice) == cudaSuccess
                      ? Status::Ok() : Status(StatusCode::kDeviceError, "memcpy");
         }), 2.0 * bytes);
  report("unary Relu f16", timeMs([&] { return unary(UnaryOp::kRelu, h, x->p, y->p, n, {}, s); }), 2.0 * bytes);
  report("unary Silu f16", timeMs([&] { return unary(UnaryOp::kSilu, h, x->p, y->p, n, {}, s); }), 2.0 * bytes);
  report("binary Add f16 same shape", timeMs([&] {
           return binary(BinaryOp::kAdd, h, x->p, act, z->p, act, y->p, act, s);
         }), 3.0 * bytes);
  report("binary Mul f16 [N,C,H,W]x[1,C,1,1]", timeMs([&] {
           return binary(BinaryOp::kMul, h, x->p, act, chan->p, {1, 256, 1, 1}, y->p, act, s);
         }), 2.0 * bytes);
  report("binary Mul f16 [N,C,H,W]x[N,C,1,1] (SE)", timeMs([&] {
           return binary(BinaryOp::kMul, h, x->p, act, z->p, {32, 256, 1, 1}, y->p, act, s);
         }), 2.0 * bytes);
  report("binary Mul f16 NHWC [N,HW,C]x[N,1,C] (SE)", timeMs([&] {
           return binary(BinaryOp::kMul, h, x->p, {32, 3136, 256}, z->p, {32, 1, 256}, y->p, {32, 3136, 256}, s);
         }), 2.0 * bytes);
  report("biasActivation Silu f16 NCHW", timeMs([&] {
           return biasActivation(h, x->p, bias->p, y->p, 32, 256, 56 * 56, UnaryOp::kSilu, {}, s);
         }), 2.0 * bytes);
  report("biasActivation Silu f16 NHWC", timeMs([&] {
           return biasActivation(h, x->p, bias->p, y->p, 32 * 56 * 56, 256, 1, UnaryOp::kSilu, {}, s);
         }), 2.0 * bytes);
  report("transpose NCHW->NHWC f16", timeMs([&] { return transpose(2, x->p, act, {0, 2, 3, 1}, y->p, s); }), 2.0 * bytes);
  report("transpose RGB NCHW->NHWC f32 [8,3,640,640]", timeMs([&] {
           return transpose(4, x->p, {8, 3, 640, 640}, {0, 2, 3, 1}, y->p, s);
         }), 2.0 * 8 * 3 * 640 * 640 * 4);
  report("transpose [64,197,768]->[197,64,768] f16", timeMs([&] {
           return transpose(2, x->p, {64, 197, 768}, {1, 0, 2}, y->p, s);
         }), 2.0 * 64 * 197 * 768 * 2);
  report("concat NHWC f16 [32,56,56,{64,64}] axis 3", timeMs([&] {
           return concat(2, {x->p, z->p}, {64, 64}, {32, 56, 56, 0}, 3, y->p, s);
         }), 2.0 * 32 * 56 * 56 * 128 * 2);
  report("slice NHWC f16 [32,56,56,256] -> [...,64:192]", timeMs([&] {
           return slice(2, x->p, {32, 56, 56, 256}, {0, 0, 0, 64}, {1, 1, 1, 1}, y->p, {32, 56, 56, 128}, s);
         }), 2.0 * 32 * 56 * 56 * 128 * 2);
  report("biasActivation Gelu f16 [4096, 3072] (ViT fc1 rows)", timeMs([&] {
           return biasActivation(h, x->p, bias->p, y->p, 4096 * 12, 256, 1, UnaryOp::kGelu, {}, s);
         }), 2.0 * 4096 * 3072 * 2);
  report("transpose NHWC->NCHW f16", timeMs([&] { return transpose(2, x->p, {32, 56, 56, 256}, {0, 3, 1, 2}, y->p, s); }), 2.0 * bytes);
  report("reduce mean HW f16 (GlobalAveragePool)", timeMs([&] { return reduce(ReduceOp::kMean, h, x->p, act, {2, 3}, y->p, s); }), 1.0 * bytes);
  report("reduce sum over C f16 (axis 1)", timeMs([&] { return reduce(ReduceOp::kSum, h, x->p, act, {1}, y->p, s); }), 1.0 * bytes);
  report("softmax f16 [32*12*197, 197] (ViT attention)", timeMs([&] { return softmax(h, x->p, 32 * 12 * 197, 197, 1, false, y->p, s); }), 2.0 * 32 * 12 * 197 * 197 * 2);
  Buf ln_scale = upload(randT(h, {768}));
  report("layerNorm f16 [64*197, 768]", timeMs([&] {
           return layerNorm(h, x->p, ln_scale->p, ln_scale->p, y->p, 64 * 197, 768, 1e-5f, nullptr, nullptr, s);
         }), 2.0 * 64 * 197 * 768 * 2);
  {
    PoolParams p;
    p.n = 32; p.c = 256; p.in[0] = p.in[1] = 56; p.out[0] = p.out[1] = 28;
    p.kernel[0] = p.kernel[1] = 3; p.stride[0] = p.stride[1] = 2; p.pad_begin[0] = p.pad_begin[1] = 1;
    p.pad_end[0] = p.pad_end[1] = 1;
    report("maxPool 3x3/2 f16 NCHW", timeMs([&] { return maxPool(h, x->p, y->p, p, s); }), 1.25 * bytes);
    PoolParams q;  // YOLO SPPF: 5x5/1 pad 2 on [64,20,20,128] NHWC
    q.n = 64; q.c = 128; q.in[0] = q.in[1] = 20; q.out[0] = q.out[1] = 20;
    q.kernel[0] = q.kernel[1] = 5; q.stride[0] = q.stride[1] = 1;
    q.pad_begin[0] = q.pad_begin[1] = q.pad_end[0] = q.pad_end[1] = 2;
    q.layout = Layout::kNHWC;
    report("maxPool 5x5/1 f16 NHWC [64,20,20,128] (SPPF)", timeMs([&] { return maxPool(h, x->p, y->p, q, s); }),
           2.0 * 64 * 20 * 20 * 128 * 2);
  }
  {
    ResizeParams p;
    p.mode = ResizeMode::kNearest;
    p.coord = CoordTransform::kAsymmetric;
    p.nearest = NearestMode::kFloor;
    p.scales = {1, 1, 2, 2};
    std::vector<int64_t> in = {8, 256, 40, 40}, out = {8, 256, 80, 80};
    report("resize nearest x2 f16 [8,256,40,40]", timeMs([&] { return resize(h, x->p, in, y->p, out, p, s); }),
           2.0 * (numElements(in) + numElements(out)));
    p.scales = {1, 2, 2, 1};
    std::vector<int64_t> inh = {8, 40, 40, 256}, outh = {8, 80, 80, 256};
    report("resize nearest x2 f16 NHWC [8,40,40,256]", timeMs([&] { return resize(h, x->p, inh, y->p, outh, p, s); }),
           2.0 * (numElements(inh) + numElements(outh)));
  }

  // cuDNN: ResNet-50 3x3 conv 64->64 at 56x56, batch 32, FP16 NHWC and NCHW; FP32 (TF32) NCHW.
  auto cud = CudnnHandle::create();
  ASSERT_TRUE(cud.ok()) << cud.status().toString();
  Buf ws = std::make_unique<DevBuf>(size_t(256) << 20);
  for (auto [dt, layout] : {std::pair{h, Layout::kNHWC}, {h, Layout::kNCHW}, {DataType::kFloat32, Layout::kNCHW}}) {
    ConvDesc d;
    d.dtype = dt;
    d.layout = layout;
    d.n = 32; d.c = 64; d.k = 64;
    d.in[0] = d.in[1] = 56;
    d.kernel[0] = d.kernel[1] = 3;
    d.pad[0] = d.pad[1] = 1;
    d.has_bias = true;
    d.activation = UnaryOp::kRelu;
    auto conv = CudnnConv::create((*cud)->get(), d);
    ASSERT_TRUE(conv.ok()) << conv.status().toString();
    auto algos = (*conv)->candidates(size_t(256) << 20);
    ASSERT_TRUE(algos.ok()) << algos.status().toString();
    size_t xe = 32 * 64 * 56 * 56;
    Buf cx = upload(randT(dt, {static_cast<int64_t>(xe)})), cw = upload(randT(dt, {64 * 64 * 9})),
        cb = upload(randT(dt, {64})), cy = alloc(dt, {static_cast<int64_t>(xe)});
    double best = 1e30;
    std::string best_algo;
    for (const ConvAlgo& a : *algos) {
      double ms = timeMs([&] { return (*conv)->run(a, cx->p, cw->p, cb->p, cy->p, ws->p, size_t(256) << 20, s); }, 10);
      if (ms < best) { best = ms; best_algo = a.toString(); }
    }
    double flop = 2.0 * 32 * 64 * 56 * 56 * 64 * 9;
    std::printf("[perf] conv3x3 64->64 56x56 b32 +bias+relu %s %s: %zu candidates, best %.3f ms = %.1f TFLOP/s (%s, fused=%d)\n",
                dataTypeName(dt), layout == Layout::kNHWC ? "NHWC" : "NCHW", algos->size(), best,
                flop / best / 1e9, best_algo.c_str(), (*conv)->fusedActivation());
  }
  // cuBLASLt: 4096^3 GEMM FP16 and TF32; ViT-B MLP GEMM [64*197,768]x[768,3072] FP16 + bias + GELU.
  auto lt = CublasLtHandle::create();
  ASSERT_TRUE(lt.ok()) << lt.status().toString();
  struct G { DataType dt; int64_t m, n, k; bool bias; GemmEpilogue epi; const char* what; };
  for (const G& g : {G{h, 4096, 4096, 4096, false, GemmEpilogue::kNone, "4096^3"},
                     G{DataType::kFloat32, 4096, 4096, 4096, false, GemmEpilogue::kNone, "4096^3 (TF32)"},
                     G{h, 64 * 197, 3072, 768, true, GemmEpilogue::kGelu, "ViT MLP fc1 +bias+gelu"}}) {
    GemmDesc d;
    d.dtype = g.dt;
    d.m = g.m; d.n = g.n; d.k = g.k;
    d.has_bias = g.bias;
    d.epilogue = g.epi;
    auto gemm = CublasLtGemm::create((*lt)->get(), d);
    ASSERT_TRUE(gemm.ok()) << gemm.status().toString();
    auto algos = (*gemm)->candidates(8, size_t(64) << 20);
    ASSERT_TRUE(algos.ok()) << algos.status().toString();
    Buf a = upload(randT(g.dt, {g.m * g.k})), b = upload(randT(g.dt, {g.k * g.n})),
        bb = upload(randT(g.dt, {g.n})), c = alloc(g.dt, {g.m * g.n});
    double best = 1e30;
    for (const GemmAlgo& al : *algos)
      best = std::min(best, timeMs([&] {
        return (*gemm)->run(al, a->p, b->p, nullptr, c->p, g.bias ? bb->p : nullptr, 1.f, 0.f, ws->p, size_t(64) << 20, s);
      }, 10));
    std::printf("[perf] gemm %s %s: %zu candidates, best %.3f ms = %.1f TFLOP/s\n", g.what,
                dataTypeName(g.dt), algos->size(), best, 2.0 * g.m * g.n * g.k / best / 1e9);
  }
}

// The harness itself: an element a kernel does not write keeps its poison and fails the check.
TEST_F(CudaKernels, PoisonCatchesUnwrittenOutput) {
  Tensor x = randT(DataType::kFloat32, {257});
  ASSERT_ORACLE(ref, oracle("Relu", {x}));
  Buf dx = upload(x), dy = alloc(DataType::kFloat32, {257});
  ASSERT_OK(unary(UnaryOp::kRelu, DataType::kFloat32, dx->p, dy->p, 256, {}, s));  // one short
  sync();
  CompareResult c = compareTensors(download(dy, DataType::kFloat32, {257}), ref[0], 1e-5, 1e-5);
  EXPECT_TRUE(c.mismatches > 0 || c.nan_mismatch) << c.toString();
}

// ------------------------------------------------------------------ capture safety
// The whole kernel sequence of a small block records into a CUDA graph and replays correctly.
TEST_F(CudaKernels, CudaGraphCapture) {
  std::vector<int64_t> dims = {2, 8, 9, 9};
  Tensor x = randT(DataType::kFloat32, dims);
  ASSERT_ORACLE(r1, oracle("Sigmoid", {x}));
  ASSERT_ORACLE(r2, oracle("Mul", {x, r1[0]}));
  ASSERT_ORACLE(r3, oracle("ReduceMean", {r2[0], i64({2, 3})}, {{"keepdims", AI(1)}}));
  cudaStream_t st;
  ASSERT_EQ(cudaStreamCreate(&st), cudaSuccess);
  Buf dx = upload(x), ds = alloc(DataType::kFloat32, dims), dm = alloc(DataType::kFloat32, dims),
      dy = alloc(DataType::kFloat32, {2, 8, 1, 1});
  cudaGraph_t graph;
  ASSERT_EQ(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal), cudaSuccess);
  Status s1 = unary(UnaryOp::kSigmoid, DataType::kFloat32, dx->p, ds->p, x.numel(), {}, st);
  Status s2 = binary(BinaryOp::kMul, DataType::kFloat32, dx->p, dims, ds->p, dims, dm->p, dims, st);
  Status s3 = reduce(ReduceOp::kMean, DataType::kFloat32, dm->p, dims, {2, 3}, dy->p, st);
  ASSERT_EQ(cudaStreamEndCapture(st, &graph), cudaSuccess);
  ASSERT_OK(s1);
  ASSERT_OK(s2);
  ASSERT_OK(s3);
  cudaGraphExec_t exec;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cudaGraphLaunch(exec, st), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(st), cudaSuccess);
  expectClose(download(dy, DataType::kFloat32, {2, 8, 1, 1}), r3[0], 1e-5, 1e-5, "captured graph");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(st);
}

TEST_F(CudaKernels, DeviceInfo) {
  std::string d = deviceDescription();
  std::printf("[device] %s\n", d.c_str());
  EXPECT_NE(d.find("sm_"), std::string::npos);
}

// Prints each test's largest errors so the report can quote them.
class StatsPrinter : public ::testing::EmptyTestEventListener {
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    for (const auto& [name, s] : stats())
      std::printf("[errors] %-44s comparisons=%4d max_abs=%.3g max_rel=%.3g max_l2rel=%.3g\n",
                  name.c_str(), s.compared, s.max_abs, s.max_rel, s.max_l2rel);
  }
};
struct RegisterPrinter {
  RegisterPrinter() { ::testing::UnitTest::GetInstance()->listeners().Append(new StatsPrinter); }
} register_printer;

}  // namespace
}  // namespace ramjet::cuda
