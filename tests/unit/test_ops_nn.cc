// NN-family ops (shape functions + reference kernels) against naive direct-loop computations on
// random small shapes (odd sizes, groups, dilations, padding), plus error cases.
#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <random>

#include "backends/cpu/reference/gemm.h"
#include "backends/cpu/reference/interpreter.h"
#include "ramjet/graph.h"
#include "ramjet/tensor.h"

using namespace ramjet;

namespace {

using Attrs = std::map<std::string, Attribute>;

struct OneNode {
  Graph g;
  std::vector<Value*> outs;
  std::map<std::string, Tensor> feeds;
};

// One-node graph: every defined input is a runtime input (a default Tensor = omitted input).
Result<std::vector<Tensor>> runOp(const std::string& op, const std::vector<Tensor>& inputs,
                                  const Attrs& attrs = {}, size_t n_out = 1) {
  OneNode m;
  std::vector<Value*> ins;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      ins.push_back(nullptr);
      continue;
    }
    Value* v = m.g.addValue("in" + std::to_string(i));
    v->type = inputs[i].type();
    v->is_graph_input = true;
    m.g.inputs.push_back(v);
    m.feeds[v->name] = inputs[i];
    ins.push_back(v);
  }
  for (size_t i = 0; i < n_out; ++i) m.outs.push_back(m.g.addValue("out" + std::to_string(i)));
  Node* n = m.g.addNode(op, op + "_0", ins, m.outs);
  n->attrs = attrs;
  m.g.outputs = m.outs;
  for (Value* v : m.outs) v->is_graph_output = true;
  RJ_RETURN_IF_ERROR(m.g.verify());
  RJ_RETURN_IF_ERROR(m.g.inferShapes());
  return reference::run(m.g, m.feeds);
}

std::mt19937& rng() {
  static std::mt19937 r(1234);
  return r;
}

Tensor randomTensor(std::vector<int64_t> dims, DataType dt = DataType::kFloat32) {
  Tensor t(DataType::kFloat64, std::move(dims));
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<double>()[i] = u(rng());
  return dt == DataType::kFloat64 ? t : t.cast(dt);
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.getDouble(i);
  return v;
}

void expectClose(const Tensor& got, const std::vector<int64_t>& dims,
                 const std::vector<double>& want, double tol = 1e-4, const std::string& what = "") {
  ASSERT_EQ(got.dims(), dims) << what;
  ASSERT_EQ(static_cast<size_t>(got.numel()), want.size()) << what;
  int bad = 0;
  for (int64_t i = 0; i < got.numel() && bad < 5; ++i) {
    const double g = got.getDouble(i), w = want[i];
    if (!(std::fabs(g - w) <= tol * (1 + std::fabs(w)))) {
      ADD_FAILURE() << what << " element " << i << ": got " << g << " want " << w;
      ++bad;
    }
  }
}

Attribute ints(std::vector<int64_t> v) {
  return Attribute::fromInts(std::move(v));
}
Attribute i64(int64_t v) {
  return Attribute::fromInt(v);
}
Attribute f32(float v) {
  return Attribute::fromFloat(v);
}
Attribute str(std::string s) {
  return Attribute::fromString(std::move(s));
}

// Iterates a multi-index over dims.
bool next(std::vector<int64_t>& idx, const std::vector<int64_t>& dims) {
  for (int d = static_cast<int>(dims.size()) - 1; d >= 0; --d) {
    if (++idx[d] < dims[d]) return true;
    idx[d] = 0;
  }
  return false;
}

int64_t flat(const std::vector<int64_t>& idx, const std::vector<int64_t>& dims) {
  int64_t f = 0;
  for (size_t d = 0; d < dims.size(); ++d) f = f * dims[d] + idx[d];
  return f;
}

// ---------------------------------------------------------------- Conv
struct ConvCase {
  std::vector<int64_t> x, w;  // X [N, C, D...], W [M, C/group, k...]
  int64_t group;
  std::vector<int64_t> strides, dilations, pads;
  bool bias;
};

std::vector<double> naiveConv(const Tensor& x, const Tensor& w, const Tensor* b, const ConvCase& cc,
                              std::vector<int64_t>* out_dims) {
  const size_t nd = cc.x.size() - 2;
  const int64_t N = cc.x[0], C = cc.x[1], M = cc.w[0], group = cc.group, Cg = C / group,
                Mg = M / group;
  std::vector<int64_t> out;
  for (size_t d = 0; d < nd; ++d) {
    const int64_t dk = (cc.w[d + 2] - 1) * cc.dilations[d] + 1;
    out.push_back((cc.x[d + 2] + cc.pads[d] + cc.pads[d + nd] - dk) / cc.strides[d] + 1);
  }
  *out_dims = {N, M};
  out_dims->insert(out_dims->end(), out.begin(), out.end());
  std::vector<double> xv = values(x), wv = values(w),
                      y(static_cast<size_t>(numElements(*out_dims)), 0);
  std::vector<int64_t> kd(cc.w.begin() + 2, cc.w.end()), in(cc.x.begin() + 2, cc.x.end());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t g = m / Mg;
      std::vector<int64_t> o(nd, 0);
      do {
        double s = b ? b->getDouble(m) : 0.0;
        for (int64_t c = 0; c < Cg; ++c) {
          std::vector<int64_t> k(nd, 0);
          do {
            std::vector<int64_t> p(nd);
            bool ok = true;
            for (size_t d = 0; d < nd; ++d) {
              p[d] = o[d] * cc.strides[d] - cc.pads[d] + k[d] * cc.dilations[d];
              ok &= p[d] >= 0 && p[d] < in[d];
            }
            if (!ok) continue;
            const int64_t xi = ((n * C + g * Cg + c) * numElements(in)) + flat(p, in);
            const int64_t wi = ((m * Cg + c) * numElements(kd)) + flat(k, kd);
            s += xv[xi] * wv[wi];
          } while (next(k, kd));
        }
        y[(n * M + m) * numElements(out) + flat(o, out)] = s;
      } while (next(o, out));
    }
  return y;
}

TEST(NnConv, MatchesNaiveOnRandomShapes) {
  const std::vector<ConvCase> cases = {
      {{1, 3, 7, 9}, {5, 3, 3, 3}, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, true},
      {{2, 6, 11, 8}, {4, 3, 3, 2}, 2, {2, 1}, {2, 1}, {2, 0, 1, 3}, true},
      {{1, 4, 9, 9}, {4, 1, 3, 3}, 4, {1, 2}, {1, 1}, {1, 1, 1, 1}, false},  // depthwise
      {{1, 5, 13}, {7, 5, 4}, 1, {3}, {2}, {2, 1}, true},                    // 1-D
      {{1, 2, 5, 6, 7}, {3, 2, 2, 3, 2}, 1, {1, 2, 1}, {1, 1, 2}, {0, 1, 1, 1, 0, 0}, true},  // 3-D
      {{1, 16, 12, 12}, {20, 16, 1, 1}, 1, {1, 1}, {1, 1}, {0, 0, 0, 0}, true},  // pointwise path
      {{1, 33, 17, 19}, {70, 33, 3, 3}, 1, {1, 1}, {1, 1}, {1, 1, 1, 1}, true},  // K > one k block
  };
  for (const ConvCase& cc : cases) {
    Tensor x = randomTensor(cc.x), w = randomTensor(cc.w), b = randomTensor({cc.w[0]});
    Attrs a{{"group", i64(cc.group)},
            {"strides", ints(cc.strides)},
            {"dilations", ints(cc.dilations)},
            {"pads", ints(cc.pads)}};
    auto out = runOp("Conv", cc.bias ? std::vector<Tensor>{x, w, b} : std::vector<Tensor>{x, w}, a);
    ASSERT_TRUE(out.ok()) << out.status().toString();
    std::vector<int64_t> od;
    std::vector<double> want = naiveConv(x, w, cc.bias ? &b : nullptr, cc, &od);
    expectClose((*out)[0], od, want, 1e-4,
                "conv " + dimsToString(cc.x) + " * " + dimsToString(cc.w));
  }
}

TEST(NnConv, AutoPadSameAndDoubleAndHalf) {
  Tensor x = randomTensor({1, 2, 7, 8}), w = randomTensor({3, 2, 3, 4});
  for (const char* mode : {"SAME_UPPER", "SAME_LOWER"}) {
    auto out = runOp("Conv", {x, w}, {{"auto_pad", str(mode)}, {"strides", ints({2, 3})}});
    ASSERT_TRUE(out.ok()) << out.status().toString();
    // out = ceil(in / stride); total pad = (out-1)*s + k - in, the odd pixel at the end (UPPER)
    // or the beginning (LOWER).
    const int64_t oh = 4, ow = 3, th = (oh - 1) * 2 + 3 - 7, tw = (ow - 1) * 3 + 4 - 8;
    const bool upper = std::string(mode) == "SAME_UPPER";
    ConvCase cc{{1, 2, 7, 8},
                {3, 2, 3, 4},
                1,
                {2, 3},
                {1, 1},
                {upper ? th / 2 : th - th / 2, upper ? tw / 2 : tw - tw / 2,
                 upper ? th - th / 2 : th / 2, upper ? tw - tw / 2 : tw / 2},
                false};
    std::vector<int64_t> od;
    std::vector<double> want = naiveConv(x, w, nullptr, cc, &od);
    expectClose((*out)[0], od, want, 1e-4, mode);
  }
  // f64 and f16 go through the same kernel (double GEMM / float conversion).
  ConvCase cc{{1, 3, 6, 5}, {2, 3, 3, 3}, 1, {1, 1}, {1, 1}, {1, 0, 1, 2}, false};
  Tensor xd = randomTensor(cc.x, DataType::kFloat64), wd = randomTensor(cc.w, DataType::kFloat64);
  std::vector<int64_t> od;
  std::vector<double> want = naiveConv(xd, wd, nullptr, cc, &od);
  auto outd = runOp("Conv", {xd, wd}, {{"pads", ints(cc.pads)}});
  ASSERT_TRUE(outd.ok()) << outd.status().toString();
  EXPECT_EQ((*outd)[0].dtype(), DataType::kFloat64);
  expectClose((*outd)[0], od, want, 1e-12, "f64");
  auto outh = runOp("Conv", {xd.cast(DataType::kFloat16), wd.cast(DataType::kFloat16)},
                    {{"pads", ints(cc.pads)}});
  ASSERT_TRUE(outh.ok()) << outh.status().toString();
  EXPECT_EQ((*outh)[0].dtype(), DataType::kFloat16);
  expectClose((*outh)[0], od, want, 2e-2, "f16");
}

TEST(NnConv, Errors) {
  Tensor x = randomTensor({1, 4, 5, 5});
  // Channel mismatch: W expects 3 input channels.
  auto r = runOp("Conv", {x, randomTensor({2, 3, 3, 3})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("channels"), std::string::npos) << r.status().toString();
  EXPECT_NE(r.status().message().find("Conv_0"), std::string::npos) << r.status().toString();
  // kernel_shape disagreeing with W.
  r = runOp("Conv", {x, randomTensor({2, 4, 3, 3})}, {{"kernel_shape", ints({5, 5})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("kernel_shape"), std::string::npos) << r.status().toString();
  // Kernel larger than the padded input.
  r = runOp("Conv", {x, randomTensor({2, 4, 7, 7})});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("larger"), std::string::npos) << r.status().toString();
  // Output channels not divisible by group; wrong pads count; bad bias.
  EXPECT_FALSE(runOp("Conv", {x, randomTensor({3, 2, 3, 3})}, {{"group", i64(2)}}).ok());
  EXPECT_FALSE(runOp("Conv", {x, randomTensor({2, 4, 3, 3})}, {{"pads", ints({1, 1})}}).ok());
  EXPECT_FALSE(runOp("Conv", {x, randomTensor({2, 4, 3, 3}), randomTensor({3})}).ok());
  EXPECT_FALSE(runOp("Conv", {x, randomTensor({2, 4, 3, 3})}, {{"auto_pad", str("BOGUS")}}).ok());
  EXPECT_FALSE(runOp("Conv", {x, randomTensor({2, 4, 3, 3})}, {{"strides", ints({0, 1})}}).ok());
}

// ---------------------------------------------------------------- ConvTranspose
TEST(NnConvTranspose, MatchesNaiveScatter) {
  struct Case {
    std::vector<int64_t> x, w;
    int64_t group;
    std::vector<int64_t> strides, dilations, pads, out_pad;
  };
  const std::vector<Case> cases = {
      {{1, 3, 4, 5}, {3, 2, 3, 3}, 1, {2, 2}, {1, 1}, {1, 0, 1, 1}, {1, 0}},
      {{2, 4, 3, 3}, {4, 3, 2, 3}, 2, {1, 3}, {2, 1}, {0, 1, 1, 0}, {0, 2}},
      {{1, 2, 6}, {2, 3, 4}, 1, {3}, {1}, {2, 1}, {1}},
  };
  for (const Case& c : cases) {
    Tensor x = randomTensor(c.x), w = randomTensor(c.w);
    const size_t nd = c.x.size() - 2;
    const int64_t N = c.x[0], C = c.x[1], Mg = c.w[1], M = Mg * c.group, Cg = C / c.group;
    Tensor b = randomTensor({M});
    std::vector<int64_t> in(c.x.begin() + 2, c.x.end()), kd(c.w.begin() + 2, c.w.end()), out;
    for (size_t d = 0; d < nd; ++d)
      out.push_back(c.strides[d] * (in[d] - 1) + c.out_pad[d] + (kd[d] - 1) * c.dilations[d] + 1 -
                    c.pads[d] - c.pads[d + nd]);
    std::vector<int64_t> od = {N, M};
    od.insert(od.end(), out.begin(), out.end());
    std::vector<double> want(static_cast<size_t>(numElements(od)), 0), xv = values(x),
                                                                       wv = values(w);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t i = 0; i < numElements(out); ++i)
          want[(n * M + m) * numElements(out) + i] = b.getDouble(m);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t ci = 0; ci < C; ++ci) {
        const int64_t g = ci / Cg;
        std::vector<int64_t> i(nd, 0);
        do {
          std::vector<int64_t> k(nd, 0);
          do {
            std::vector<int64_t> p(nd);
            bool ok = true;
            for (size_t d = 0; d < nd; ++d) {
              p[d] = i[d] * c.strides[d] - c.pads[d] + k[d] * c.dilations[d];
              ok &= p[d] >= 0 && p[d] < out[d];
            }
            if (!ok) continue;
            for (int64_t mg = 0; mg < Mg; ++mg) {
              const int64_t m = g * Mg + mg;
              want[(n * M + m) * numElements(out) + flat(p, out)] +=
                  xv[(n * C + ci) * numElements(in) + flat(i, in)] *
                  wv[(ci * Mg + mg) * numElements(kd) + flat(k, kd)];
            }
          } while (next(k, kd));
        } while (next(i, in));
      }
    auto r = runOp("ConvTranspose", {x, w, b},
                   {{"group", i64(c.group)},
                    {"strides", ints(c.strides)},
                    {"dilations", ints(c.dilations)},
                    {"pads", ints(c.pads)},
                    {"output_padding", ints(c.out_pad)}});
    ASSERT_TRUE(r.ok()) << r.status().toString();
    expectClose((*r)[0], od, want, 1e-4, "convT " + dimsToString(c.x));
  }
  // output_shape with SAME_UPPER: output = requested size.
  auto r = runOp("ConvTranspose", {randomTensor({1, 1, 3, 3}), randomTensor({1, 2, 3, 3})},
                 {{"strides", ints({2, 2})}, {"auto_pad", str("SAME_UPPER")}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{1, 2, 6, 6}));
  EXPECT_FALSE(
      runOp("ConvTranspose", {randomTensor({1, 2, 3, 3}), randomTensor({3, 2, 3, 3})}).ok());
}

// ---------------------------------------------------------------- Gemm / MatMul
TEST(NnGemm, SharedGemmMatchesNaive) {
  // Sizes straddle the register tile (6x16), the k block (256) and the threading threshold.
  for (auto [M, N, K] : std::vector<std::array<int64_t, 3>>{
           {1, 1, 1}, {7, 17, 5}, {70, 300, 600}, {301, 45, 260}, {2, 300, 700}, {1, 1000, 1100},
           // Per-thread column chunks wider than the n block (2048): with the AVX-512 tile
           // (NR = 48, which does not divide 2048) a panel straddled two blocks and was added twice.
           {20, 40000, 30}}) {
    for (int t = 0; t < 4; ++t) {
      const bool ta = t & 1, tb = t & 2;
      std::vector<float> a(M * K), b(K * N), c(M * N);
      std::uniform_real_distribution<float> u(-1, 1);
      for (auto& v : a) v = u(rng());
      for (auto& v : b) v = u(rng());
      for (auto& v : c) v = u(rng());
      std::vector<float> c0 = c;
      reference::gemm(ta, tb, M, N, K, 0.5f, a.data(), ta ? M : K, b.data(), tb ? K : N, -2.f,
                      c.data(), N);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k)
            s += double(ta ? a[k * M + i] : a[i * K + k]) * (tb ? b[j * K + k] : b[k * N + j]);
          const double want = 0.5 * s - 2.0 * c0[i * N + j];
          ASSERT_NEAR(c[i * N + j], want, 1e-3 * (1 + std::fabs(want)))
              << M << "x" << N << "x" << K << " t" << t;
        }
    }
  }
}

TEST(NnGemm, OpWithBroadcastC) {
  Tensor a = randomTensor({5, 7}), b = randomTensor({9, 5}), c = randomTensor({9});
  auto r =
      runOp("Gemm", {a, b, c},
            {{"transA", i64(1)}, {"transB", i64(1)}, {"alpha", f32(1.5f)}, {"beta", f32(0.25f)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  std::vector<double> want(7 * 9);
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 9; ++j) {
      double s = 0;
      for (int k = 0; k < 5; ++k) s += a.getDouble(k * 7 + i) * b.getDouble(j * 5 + k);
      want[i * 9 + j] = 1.5 * s + 0.25 * c.getDouble(j);
    }
  expectClose((*r)[0], {7, 9}, want);
  auto bad = runOp("Gemm", {randomTensor({3, 4}), randomTensor({5, 6})});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("inner dims"), std::string::npos);
  EXPECT_FALSE(runOp("Gemm", {randomTensor({3, 4}), randomTensor({4, 6}), randomTensor({4})}).ok());
}

TEST(NnMatMul, BatchedBroadcastAndVectors) {
  auto naive = [](const Tensor& a, const Tensor& b, int64_t B, int64_t M, int64_t K, int64_t N,
                  bool bcast_b) {
    std::vector<double> y(B * M * N, 0);
    for (int64_t bi = 0; bi < B; ++bi)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j)
          for (int64_t k = 0; k < K; ++k)
            y[(bi * M + i) * N + j] += a.getDouble((bi * M + i) * K + k) *
                                       b.getDouble(((bcast_b ? 0 : bi) * K + k) * N + j);
    return y;
  };
  Tensor a = randomTensor({2, 3, 5, 7}), b = randomTensor({7, 4});
  auto r = runOp("MatMul", {a, b});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  expectClose((*r)[0], {2, 3, 5, 4}, naive(a, b, 6, 5, 7, 4, true));
  Tensor bb = randomTensor({2, 3, 7, 4});
  r = runOp("MatMul", {a, bb});
  ASSERT_TRUE(r.ok());
  expectClose((*r)[0], {2, 3, 5, 4}, naive(a, bb, 6, 5, 7, 4, false));
  // [1,3,5,7] x [2,1,7,4] broadcasts to [2,3,5,4].
  Tensor a1 = randomTensor({1, 3, 5, 7}), b1 = randomTensor({2, 1, 7, 4});
  r = runOp("MatMul", {a1, b1});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ((*r)[0].dims(), (std::vector<int64_t>{2, 3, 5, 4}));
  for (int64_t p = 0; p < 2; ++p)
    for (int64_t q = 0; q < 3; ++q)
      for (int64_t i = 0; i < 5; ++i)
        for (int64_t j = 0; j < 4; ++j) {
          double s = 0;
          for (int64_t k = 0; k < 7; ++k)
            s += a1.getDouble((q * 5 + i) * 7 + k) * b1.getDouble((p * 7 + k) * 4 + j);
          EXPECT_NEAR((*r)[0].getDouble(((p * 3 + q) * 5 + i) * 4 + j), s, 1e-4);
        }
  // 1-D operands: [7] x [2,7,4] -> [2,4]; [5,7] x [7] -> [5]; [7] x [7] -> [].
  Tensor v = randomTensor({7});
  r = runOp("MatMul", {v, randomTensor({2, 7, 4})});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{2, 4}));
  Tensor m = randomTensor({5, 7});
  r = runOp("MatMul", {m, v});
  ASSERT_TRUE(r.ok());
  std::vector<double> mv(5, 0);
  for (int i = 0; i < 5; ++i)
    for (int k = 0; k < 7; ++k) mv[i] += m.getDouble(i * 7 + k) * v.getDouble(k);
  expectClose((*r)[0], {5}, mv);
  r = runOp("MatMul", {v, v});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].rank(), 0u);
  // Integer and f64 paths.
  Tensor ia = Tensor::fromVector<int32_t>({1, 2, 3, 4, 5, 6}, {2, 3}),
         ib = Tensor::fromVector<int32_t>({1, 0, 2, 1, 0, 3}, {3, 2});
  r = runOp("MatMul", {ia, ib});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)[0].toInt64Vector(), (std::vector<int64_t>{5, 11, 14, 23}));
  EXPECT_FALSE(runOp("MatMul", {randomTensor({2, 3}), randomTensor({4, 2})}).ok());
  EXPECT_FALSE(runOp("MatMul", {randomTensor({2, 2, 3}), randomTensor({3, 3, 2})}).ok());
}

TEST(NnMatMul, IntegerWithZeroPoints) {
  Tensor a = Tensor::fromVector<uint8_t>({10, 20, 30, 40, 50, 60}, {2, 3});
  Tensor b = Tensor::fromVector<int8_t>({1, -2, 3, 4, -5, 6}, {3, 2});
  Tensor az = Tensor::fromVector<uint8_t>({5, 7}, {2});  // per row
  Tensor bz = Tensor::fromVector<int8_t>({1}, {1});
  auto r = runOp("MatMulInteger", {a, b, az, bz});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  std::vector<double> want(4, 0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k)
        want[i * 2 + j] +=
            (a.getDouble(i * 3 + k) - az.getDouble(i)) * (b.getDouble(k * 2 + j) - 1);
  EXPECT_EQ((*r)[0].dtype(), DataType::kInt32);
  expectClose((*r)[0], {2, 2}, want, 0);
}

// ---------------------------------------------------------------- pooling
TEST(NnPool, MaxAndAverageMatchNaive) {
  struct Case {
    std::vector<int64_t> x, k, s, d, pads;
    int64_t ceil;
  };
  const std::vector<Case> cases = {
      {{1, 2, 7, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 0},
      {{2, 3, 8, 7}, {2, 3}, {2, 2}, {1, 1}, {0, 1, 1, 0}, 1},
      {{1, 1, 9, 9}, {3, 2}, {1, 2}, {2, 2}, {0, 0, 0, 0}, 1},
      {{1, 2, 11}, {4}, {3}, {1}, {2, 2}, 1},
  };
  for (const Case& c : cases) {
    Tensor x = randomTensor(c.x);
    const size_t nd = c.k.size();
    std::vector<int64_t> in(c.x.begin() + 2, c.x.end()), out;
    for (size_t d = 0; d < nd; ++d) {
      const int64_t dk = (c.k[d] - 1) * c.d[d] + 1, span = in[d] + c.pads[d] + c.pads[d + nd] - dk;
      int64_t o = (c.ceil ? (span + c.s[d] - 1) / c.s[d] : span / c.s[d]) + 1;
      if (c.ceil && (o - 1) * c.s[d] >= in[d] + c.pads[d]) --o;
      out.push_back(o);
    }
    std::vector<int64_t> od = {c.x[0], c.x[1]};
    od.insert(od.end(), out.begin(), out.end());
    const int64_t planes = c.x[0] * c.x[1];
    std::vector<double> mx, avg, avg_pad, idx;
    for (int64_t p = 0; p < planes; ++p) {
      std::vector<int64_t> o(nd, 0);
      do {
        double m = -1e30, s = 0;
        int64_t n = 0, npad = 0, arg = -1;
        std::vector<int64_t> k(nd, 0);
        do {
          bool ok = true, inpad = true;
          std::vector<int64_t> q(nd);
          for (size_t d = 0; d < nd; ++d) {
            q[d] = o[d] * c.s[d] - c.pads[d] + k[d] * c.d[d];
            ok &= q[d] >= 0 && q[d] < in[d];
            inpad &= q[d] >= -c.pads[d] && q[d] < in[d] + c.pads[d + nd];
          }
          npad += inpad;
          if (!ok) continue;
          const int64_t e = p * numElements(in) + flat(q, in);
          const double v = x.getDouble(e);
          if (arg < 0 || v > m) {
            m = v;
            arg = e;
          }
          s += v;
          ++n;
        } while (next(k, c.k));
        mx.push_back(m);
        idx.push_back(static_cast<double>(arg));
        avg.push_back(s / n);
        avg_pad.push_back(s / npad);
      } while (next(o, out));
    }
    Attrs a{{"kernel_shape", ints(c.k)},
            {"strides", ints(c.s)},
            {"dilations", ints(c.d)},
            {"pads", ints(c.pads)},
            {"ceil_mode", i64(c.ceil)}};
    auto r = runOp("MaxPool", {x}, a, 2);
    ASSERT_TRUE(r.ok()) << r.status().toString();
    expectClose((*r)[0], od, mx, 1e-6, "maxpool");
    expectClose((*r)[1], od, idx, 0, "maxpool indices");
    r = runOp("AveragePool", {x}, a);
    ASSERT_TRUE(r.ok()) << r.status().toString();
    expectClose((*r)[0], od, avg, 1e-5, "avgpool");
    a["count_include_pad"] = i64(1);
    r = runOp("AveragePool", {x}, a);
    ASSERT_TRUE(r.ok()) << r.status().toString();
    expectClose((*r)[0], od, avg_pad, 1e-5, "avgpool count_include_pad");
  }
  // Global pools and errors.
  Tensor x = randomTensor({2, 3, 4, 5});
  auto r = runOp("GlobalAveragePool", {x});
  ASSERT_TRUE(r.ok());
  ASSERT_EQ((*r)[0].dims(), (std::vector<int64_t>{2, 3, 1, 1}));
  double s = 0;
  for (int i = 0; i < 20; ++i) s += x.getDouble(20 + i);
  EXPECT_NEAR((*r)[0].getDouble(1), s / 20, 1e-6);
  EXPECT_FALSE(runOp("MaxPool", {x}, {{"kernel_shape", ints({3})}}).ok());     // rank mismatch
  EXPECT_FALSE(runOp("MaxPool", {x}, {{"kernel_shape", ints({6, 6})}}).ok());  // window too big
  EXPECT_FALSE(runOp("AveragePool", {x}, {}).ok());                            // no kernel_shape
  EXPECT_FALSE(runOp("MaxPool", {x}, {{"kernel_shape", ints({0, 2})}}).ok());  // bad kernel size
}

TEST(NnPool, LpPoolUnpoolAndGlobalMax) {
  Tensor x = randomTensor({1, 2, 5, 6});
  // LpPool p=3, 2x2 stride 2, pad 1 at the end of W: (sum |x|^3)^(1/3) over valid taps.
  auto r = runOp("LpPool", {x},
                 {{"kernel_shape", ints({2, 2})},
                  {"strides", ints({2, 2})},
                  {"pads", ints({0, 0, 0, 1})},
                  {"p", i64(3)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  std::vector<double> want;
  for (int c = 0; c < 2; ++c)
    for (int oh = 0; oh < 2; ++oh)
      for (int ow = 0; ow < 3; ++ow) {
        double s = 0;
        for (int kh = 0; kh < 2; ++kh)
          for (int kw = 0; kw < 2; ++kw) {
            const int h = oh * 2 + kh, w = ow * 2 + kw;
            if (w < 6) s += std::pow(std::fabs(x.getDouble((c * 5 + h) * 6 + w)), 3);
          }
        want.push_back(std::cbrt(s));
      }
  expectClose((*r)[0], {1, 2, 2, 3}, want, 1e-5, "lppool");
  // MaxPool indices feed MaxUnpool: every max lands back at its source position.
  Tensor xu = randomTensor({1, 2, 4, 6});
  auto mp = runOp("MaxPool", {xu}, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}}, 2);
  ASSERT_TRUE(mp.ok()) << mp.status().toString();
  auto up = runOp("MaxUnpool", {(*mp)[0], (*mp)[1]},
                  {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}});
  ASSERT_TRUE(up.ok()) << up.status().toString();
  ASSERT_EQ((*up)[0].dims(), (std::vector<int64_t>{1, 2, 4, 6}));
  int nonzero = 0;
  for (int64_t i = 0; i < (*up)[0].numel(); ++i) {
    const double v = (*up)[0].getDouble(i);
    if (v == 0) continue;
    ++nonzero;
    EXPECT_EQ(v, xu.getDouble(i)) << i;
  }
  EXPECT_EQ(nonzero, 12);
  Tensor bad_idx = (*mp)[1].clone();
  bad_idx.data<int64_t>()[0] = 1000;
  EXPECT_FALSE(runOp("MaxUnpool", {(*mp)[0], bad_idx},
                     {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}})
                   .ok());
  r = runOp("GlobalMaxPool", {x});
  ASSERT_TRUE(r.ok());
  double m = -1e30;
  for (int i = 30; i < 60; ++i) m = std::max(m, x.getDouble(i));
  EXPECT_EQ((*r)[0].getDouble(1), m);
}

TEST(NnConv, IntegerWithZeroPoints) {
  Tensor x(DataType::kUInt8, {1, 2, 4, 5}), w(DataType::kInt8, {3, 2, 2, 2});
  std::uniform_int_distribution<int> u(0, 255), s(-128, 127);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<uint8_t>()[i] = static_cast<uint8_t>(u(rng()));
  for (int64_t i = 0; i < w.numel(); ++i) w.data<int8_t>()[i] = static_cast<int8_t>(s(rng()));
  Tensor xz = Tensor::scalar<uint8_t>(100), wz = Tensor::fromVector<int8_t>({1, -2, 3}, {3});
  auto r = runOp("ConvInteger", {x, w, xz, wz}, {{"pads", ints({1, 0, 0, 1})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  // Padding holds the zero point, i.e. contributes 0 after subtraction.
  std::vector<double> want;
  for (int m = 0; m < 3; ++m)
    for (int oh = 0; oh < 4; ++oh)
      for (int ow = 0; ow < 5; ++ow) {
        double acc = 0;
        for (int c = 0; c < 2; ++c)
          for (int kh = 0; kh < 2; ++kh)
            for (int kw = 0; kw < 2; ++kw) {
              const int h = oh - 1 + kh, ww = ow + kw;
              if (h < 0 || h >= 4 || ww >= 5) continue;
              acc += (x.getDouble((c * 4 + h) * 5 + ww) - 100) *
                     (w.getDouble(((m * 2 + c) * 2 + kh) * 2 + kw) - wz.getDouble(m));
            }
        want.push_back(acc);
      }
  EXPECT_EQ((*r)[0].dtype(), DataType::kInt32);
  expectClose((*r)[0], {1, 3, 4, 5}, want, 0, "convinteger");
}

TEST(NnNorm, LrnMvnAndBatchNormTraining) {
  Tensor x = randomTensor({2, 5, 3, 2});
  auto r =
      runOp("LRN", {x},
            {{"size", i64(3)}, {"alpha", f32(0.5f)}, {"beta", f32(0.6f)}, {"bias", f32(1.5f)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  std::vector<double> want(60);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 5; ++c)
      for (int i = 0; i < 6; ++i) {
        double s = 0;
        for (int cc = std::max(0, c - 1); cc <= std::min(4, c + 1); ++cc)
          s += std::pow(x.getDouble((n * 5 + cc) * 6 + i), 2);
        want[(n * 5 + c) * 6 + i] =
            x.getDouble((n * 5 + c) * 6 + i) / std::pow(1.5 + 0.5 / 3 * s, 0.6);
      }
  expectClose((*r)[0], {2, 5, 3, 2}, want, 1e-5, "lrn");
  // MVN over axes {0, 2, 3}: per channel across batch and space.
  r = runOp("MeanVarianceNormalization", {x});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  for (int c = 0; c < 5; ++c) {
    double m = 0, v = 0;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 6; ++i) m += x.getDouble((n * 5 + c) * 6 + i) / 12;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 6; ++i) v += std::pow(x.getDouble((n * 5 + c) * 6 + i) - m, 2) / 12;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 6; ++i) {
        const int e = (n * 5 + c) * 6 + i;
        want[e] = (x.getDouble(e) - m) / (std::sqrt(v) + 1e-9);
      }
  }
  expectClose((*r)[0], {2, 5, 3, 2}, want, 1e-5, "mvn");
  // BatchNormalization training mode: batch statistics, running stats blended by momentum.
  Tensor s = randomTensor({5}), b = randomTensor({5}), mean = randomTensor({5}),
         var = randomTensor({5});
  for (int c = 0; c < 5; ++c) var.data<float>()[c] = std::fabs(var.data<float>()[c]) + 0.1f;
  r = runOp("BatchNormalization", {x, s, b, mean, var},
            {{"training_mode", i64(1)}, {"momentum", f32(0.8f)}}, 3);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  std::vector<double> rm(5), rv(5);
  for (int c = 0; c < 5; ++c) {
    double m = 0, v = 0;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 6; ++i) m += x.getDouble((n * 5 + c) * 6 + i) / 12;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 6; ++i) v += std::pow(x.getDouble((n * 5 + c) * 6 + i) - m, 2) / 12;
    for (int n = 0; n < 2; ++n)
      for (int i = 0; i < 6; ++i) {
        const int e = (n * 5 + c) * 6 + i;
        want[e] = (x.getDouble(e) - m) / std::sqrt(v + 1e-5) * s.getDouble(c) + b.getDouble(c);
      }
    rm[c] = mean.getDouble(c) * 0.8 + m * 0.2;
    rv[c] = var.getDouble(c) * 0.8 + v * 0.2;
  }
  expectClose((*r)[0], {2, 5, 3, 2}, want, 1e-4, "bn training Y");
  expectClose((*r)[1], {5}, rm, 1e-5, "bn running mean");
  expectClose((*r)[2], {5}, rv, 1e-5, "bn running var");
  // Inference mode must not claim the training outputs.
  EXPECT_FALSE(runOp("BatchNormalization", {x, s, b, mean, var}, {}, 3).ok());
}

// ---------------------------------------------------------------- Softmax family
TEST(NnSoftmax, AxisAndCoerce2d) {
  Tensor x = randomTensor({2, 3, 4});
  for (int64_t axis : {0, 1, 2, -1}) {
    const int64_t ax = axis < 0 ? axis + 3 : axis;
    const std::vector<int64_t> dims = {2, 3, 4};
    std::vector<double> sm(24), lsm(24), hm(24);
    std::vector<int64_t> idx(3, 0);
    do {
      double mx = -1e30, sum = 0;
      int64_t arg = 0;
      std::vector<int64_t> j = idx;
      for (j[ax] = 0; j[ax] < dims[ax]; ++j[ax]) {
        const double v = x.getDouble(flat(j, dims));
        if (v > mx) {
          mx = v;
          arg = j[ax];
        }
      }
      for (j[ax] = 0; j[ax] < dims[ax]; ++j[ax]) sum += std::exp(x.getDouble(flat(j, dims)) - mx);
      const int64_t e = flat(idx, dims);
      sm[e] = std::exp(x.getDouble(e) - mx) / sum;
      lsm[e] = x.getDouble(e) - mx - std::log(sum);
      hm[e] = idx[ax] == arg ? 1 : 0;
    } while (next(idx, dims));
    for (auto [op, want] : std::vector<std::pair<std::string, std::vector<double>*>>{
             {"Softmax", &sm}, {"LogSoftmax", &lsm}, {"Hardmax", &hm}}) {
      auto r = runOp(op, {x}, {{"axis", i64(axis)}});
      ASSERT_TRUE(r.ok()) << r.status().toString();
      expectClose((*r)[0], dims, *want, 1e-5, op + " axis " + std::to_string(axis));
    }
  }
  // coerce_2d (opset < 13): axis 1 of [2,3,4] normalises over the 12 trailing elements.
  auto r = runOp("Softmax", {x}, {{"axis", i64(1)}, {"coerce_2d", i64(1)}});
  ASSERT_TRUE(r.ok());
  double s = 0;
  for (int i = 0; i < 12; ++i) s += (*r)[0].getDouble(i);
  EXPECT_NEAR(s, 1.0, 1e-5);
  EXPECT_FALSE(runOp("Softmax", {x}, {{"axis", i64(3)}}).ok());
}

// LpNormalization: x / ||x||_p along axis (spec: p-norm with absolute values), 0 for a zero norm.
TEST(NnSoftmax, LpNormalization) {
  Tensor x = Tensor::fromVector<float>({3, 4, 1, -3, 0, 0}, {3, 2});
  auto l2 = runOp("LpNormalization", {x}, {{"axis", i64(-1)}, {"p", i64(2)}});
  ASSERT_TRUE(l2.ok()) << l2.status().toString();
  expectClose((*l2)[0], {3, 2}, {0.6, 0.8, 1 / std::sqrt(10.0), -3 / std::sqrt(10.0), 0, 0}, 1e-6, "p=2 axis -1");
  auto l1 = runOp("LpNormalization", {x}, {{"axis", i64(1)}, {"p", i64(1)}});
  ASSERT_TRUE(l1.ok()) << l1.status().toString();
  expectClose((*l1)[0], {3, 2}, {3 / 7.0, 4 / 7.0, 0.25, -0.75, 0, 0}, 1e-6, "p=1 axis 1");
  auto c0 = runOp("LpNormalization", {x}, {{"axis", i64(0)}, {"p", i64(1)}});  // columns: |3|+|1|+0, |4|+|-3|+0
  ASSERT_TRUE(c0.ok()) << c0.status().toString();
  expectClose((*c0)[0], {3, 2}, {0.75, 4 / 7.0, 0.25, -3 / 7.0, 0, 0}, 1e-6, "p=1 axis 0");
  auto bad = runOp("LpNormalization", {x}, {{"p", i64(3)}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("p must be 1 or 2"), std::string::npos) << bad.status().message();
}

// ---------------------------------------------------------------- normalizations
TEST(NnNorm, LayerBatchInstanceGroup) {
  Tensor x = randomTensor({2, 6, 3, 5});
  // LayerNormalization, axis 2, scale broadcast from [5] over [3,5].
  Tensor sc = randomTensor({5}), bi = randomTensor({3, 5});
  auto r = runOp("LayerNormalization", {x, sc, bi}, {{"axis", i64(2)}, {"epsilon", f32(1e-3f)}}, 3);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  std::vector<double> want(180), means, invs;
  for (int o = 0; o < 12; ++o) {
    double m = 0, v = 0;
    for (int i = 0; i < 15; ++i) m += x.getDouble(o * 15 + i) / 15;
    for (int i = 0; i < 15; ++i) v += std::pow(x.getDouble(o * 15 + i) - m, 2) / 15;
    const double inv = 1 / std::sqrt(v + 1e-3);
    means.push_back(m);
    invs.push_back(inv);
    for (int i = 0; i < 15; ++i)
      want[o * 15 + i] =
          (x.getDouble(o * 15 + i) - m) * inv * sc.getDouble(i % 5) + bi.getDouble(i);
  }
  expectClose((*r)[0], {2, 6, 3, 5}, want, 1e-4, "layernorm");
  expectClose((*r)[1], {2, 6, 1, 1}, means, 1e-5, "layernorm mean");
  expectClose((*r)[2], {2, 6, 1, 1}, invs, 1e-4, "layernorm invstd");
  // BatchNormalization (inference).
  Tensor s = randomTensor({6}), b = randomTensor({6}), mean = randomTensor({6}),
         var = randomTensor({6});
  for (int c = 0; c < 6; ++c) var.data<float>()[c] = std::fabs(var.data<float>()[c]) + 0.1f;
  r = runOp("BatchNormalization", {x, s, b, mean, var}, {{"epsilon", f32(1e-2f)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  for (int i = 0; i < 180; ++i) {
    const int c = (i / 15) % 6;
    want[i] =
        (x.getDouble(i) - mean.getDouble(c)) / std::sqrt(var.getDouble(c) + 1e-2) * s.getDouble(c) +
        b.getDouble(c);
  }
  expectClose((*r)[0], {2, 6, 3, 5}, want, 1e-4, "batchnorm");
  EXPECT_FALSE(
      runOp("BatchNormalization", {x, randomTensor({5}), b, mean, var}).ok());  // channel mismatch
  // InstanceNormalization and GroupNormalization (per channel and, as imported from opset 18,
  // per group) against one naive group statistic.
  auto groupNorm = [&](int64_t G, const Tensor& scale, const Tensor& bias, bool per_group) {
    std::vector<double> y(180);
    const int64_t Cg = 6 / G;
    for (int n = 0; n < 2; ++n)
      for (int64_t g = 0; g < G; ++g) {
        const int64_t base = (n * 6 + g * Cg) * 15, cnt = Cg * 15;
        double m = 0, v = 0;
        for (int64_t i = 0; i < cnt; ++i) m += x.getDouble(base + i) / cnt;
        for (int64_t i = 0; i < cnt; ++i) v += std::pow(x.getDouble(base + i) - m, 2) / cnt;
        for (int64_t i = 0; i < cnt; ++i) {
          const int64_t c = per_group ? g : g * Cg + i / 15;
          y[base + i] = (x.getDouble(base + i) - m) / std::sqrt(v + 1e-5) * scale.getDouble(c) +
                        bias.getDouble(c);
        }
      }
    return y;
  };
  r = runOp("InstanceNormalization", {x, s, b});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  expectClose((*r)[0], {2, 6, 3, 5}, groupNorm(6, s, b, false), 1e-4, "instancenorm");
  r = runOp("GroupNormalization", {x, s, b}, {{"num_groups", i64(3)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  expectClose((*r)[0], {2, 6, 3, 5}, groupNorm(3, s, b, false), 1e-4, "groupnorm per channel");
  Tensor gs = randomTensor({2}), gb = randomTensor({2});
  r = runOp("GroupNormalization", {x, gs, gb},
            {{"num_groups", i64(2)}, {"affine_per_group", i64(1)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  expectClose((*r)[0], {2, 6, 3, 5}, groupNorm(2, gs, gb, true), 1e-4, "groupnorm per group");
  EXPECT_FALSE(runOp("GroupNormalization", {x, s, b}, {{"num_groups", i64(4)}}).ok());  // 6 % 4
}

// ---------------------------------------------------------------- Einsum
TEST(NnEinsum, GemmPathAndGenericLoopAgree) {
  // Float equations take the GEMM fast path where they fit; the same equation on int32 inputs
  // always takes the generic loop. Both must equal a naive sum.
  struct Case {
    std::string eq;
    std::vector<std::vector<int64_t>> shapes;
  };
  const std::vector<Case> cases = {
      {"ij,jk->ik", {{3, 4}, {4, 5}}},
      {"bij,bkj->bki", {{2, 3, 4}, {2, 5, 4}}},
      {"...ij,...jk", {{2, 3, 4}, {2, 4, 3}}},
      {"ij,jk", {{3, 4}, {4, 2}}},
      {"ii->i", {{4, 4}}},
      {"...ii->...i", {{2, 3, 3}}},
      {"ij->", {{3, 5}}},
      {"i,j->ij", {{3}, {4}}},
      {"ijk,k->ji", {{2, 3, 4}, {4}}},
      {"ab,bc,cd->ad", {{2, 3}, {3, 4}, {4, 2}}},
  };
  for (const Case& c : cases) {
    std::vector<Tensor> fin, iin;
    std::uniform_int_distribution<int> u(-3, 3);
    for (const auto& s : c.shapes) {
      Tensor t(DataType::kInt32, s);
      for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = u(rng());
      iin.push_back(t);
      fin.push_back(t.cast(DataType::kFloat32));
    }
    auto rf = runOp("Einsum", fin, {{"equation", str(c.eq)}});
    auto ri = runOp("Einsum", iin, {{"equation", str(c.eq)}});
    ASSERT_TRUE(rf.ok()) << c.eq << ": " << rf.status().toString();
    ASSERT_TRUE(ri.ok()) << c.eq << ": " << ri.status().toString();
    ASSERT_EQ((*rf)[0].dims(), (*ri)[0].dims()) << c.eq;
    expectClose((*rf)[0], (*ri)[0].dims(), values((*ri)[0]), 1e-6, c.eq);
  }
  // Spot values: trace-like and matmul.
  Tensor a = Tensor::fromVector<float>({1, 2, 3, 4}, {2, 2});
  auto r = runOp("Einsum", {a}, {{"equation", str("ii")}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[0].rank(), 0u);
  EXPECT_FLOAT_EQ((*r)[0].data<float>()[0], 5.f);
  r = runOp("Einsum", {a, a}, {{"equation", str("ij,jk->ik")}});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(values((*r)[0]), (std::vector<double>{7, 10, 15, 22}));
  EXPECT_FALSE(runOp("Einsum", {a, a}, {{"equation", str("ij->i")}}).ok());  // 2 inputs, 1 term
  EXPECT_FALSE(runOp("Einsum", {a}, {{"equation", str("ijk->i")}}).ok());    // rank mismatch
  EXPECT_FALSE(runOp("Einsum", {a, randomTensor({3, 2})}, {{"equation", str("ij,jk->ik")}})
                   .ok());  // size mismatch
  EXPECT_FALSE(runOp("Einsum", {a}, {{"equation", str("i$->i")}}).ok());
}

// ---------------------------------------------------------------- RNNs
// Properties that tie the variants together: layout 1 == transposed layout 0; the reverse
// direction == forward on the time-reversed sequence; bidirectional == both stacked;
// sequence_lens stops a batch entry early (zeros after, Y_h = last valid step).
void checkRnnVariants(const std::string& op, int64_t gates) {
  const int64_t S = 5, B = 3, I = 4, H = 3;
  Tensor x = randomTensor({S, B, I});
  Tensor w = randomTensor({1, gates * H, I}), r = randomTensor({1, gates * H, H}),
         b = randomTensor({1, 2 * gates * H});
  Tensor h0 = randomTensor({1, B, H});
  Attrs a{{"hidden_size", i64(H)}};
  if (op == "GRU") a["linear_before_reset"] = i64(1);
  auto fwd = runOp(op, {x, w, r, b, Tensor(), h0}, a, 2);
  ASSERT_TRUE(fwd.ok()) << fwd.status().toString();
  // Layout 1.
  Tensor xt(DataType::kFloat32, {B, S, I}), h0t(DataType::kFloat32, {B, 1, H});
  for (int64_t s = 0; s < S; ++s)
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t i = 0; i < I; ++i)
        xt.data<float>()[(bb * S + s) * I + i] = x.data<float>()[(s * B + bb) * I + i];
  for (int64_t bb = 0; bb < B; ++bb)
    for (int64_t j = 0; j < H; ++j) h0t.data<float>()[bb * H + j] = h0.data<float>()[bb * H + j];
  Attrs a1 = a;
  a1["layout"] = i64(1);
  auto lay = runOp(op, {xt, w, r, b, Tensor(), h0t}, a1, 2);
  ASSERT_TRUE(lay.ok()) << lay.status().toString();
  for (int64_t s = 0; s < S; ++s)
    for (int64_t bb = 0; bb < B; ++bb)
      for (int64_t j = 0; j < H; ++j)
        ASSERT_NEAR((*lay)[0].getDouble((bb * S + s) * H + j),
                    (*fwd)[0].getDouble((s * B + bb) * H + j), 1e-5)
            << op;
  // Reverse == forward on reversed time.
  Tensor xr(DataType::kFloat32, {S, B, I});
  for (int64_t s = 0; s < S; ++s)
    for (int64_t k = 0; k < B * I; ++k)
      xr.data<float>()[s * B * I + k] = x.data<float>()[(S - 1 - s) * B * I + k];
  Attrs ar = a;
  ar["direction"] = str("reverse");
  auto rev = runOp(op, {xr, w, r, b, Tensor(), h0}, ar, 2);
  ASSERT_TRUE(rev.ok()) << rev.status().toString();
  for (int64_t k = 0; k < B * H; ++k)
    ASSERT_NEAR((*rev)[1].getDouble(k), (*fwd)[1].getDouble(k), 1e-5) << op;
  // Bidirectional: direction 0 == forward, direction 1 == reverse of the same input.
  auto revx = runOp(op, {x, w, r, b, Tensor(), h0}, ar, 2);
  ASSERT_TRUE(revx.ok());
  auto stack = [](const Tensor& t0, const Tensor& t1) {
    std::vector<int64_t> d = t0.dims();
    d[0] = 2;
    Tensor t(DataType::kFloat32, d);
    std::copy(t0.data<float>(), t0.data<float>() + t0.numel(), t.data<float>());
    std::copy(t1.data<float>(), t1.data<float>() + t1.numel(), t.data<float>() + t0.numel());
    return t;
  };
  Attrs ab = a;
  ab["direction"] = str("bidirectional");
  auto bi = runOp(op, {x, stack(w, w), stack(r, r), stack(b, b), Tensor(), stack(h0, h0)}, ab, 2);
  ASSERT_TRUE(bi.ok()) << bi.status().toString();
  ASSERT_EQ((*bi)[0].dims(), (std::vector<int64_t>{S, 2, B, H}));
  for (int64_t s = 0; s < S; ++s)
    for (int64_t k = 0; k < B * H; ++k) {
      ASSERT_NEAR((*bi)[0].getDouble((s * 2 + 0) * B * H + k), (*fwd)[0].getDouble(s * B * H + k),
                  1e-5);
      ASSERT_NEAR((*bi)[0].getDouble((s * 2 + 1) * B * H + k), (*revx)[0].getDouble(s * B * H + k),
                  1e-5);
    }
  // sequence_lens: batch 1 stops after 2 steps.
  Tensor lens = Tensor::fromVector<int32_t>({5, 2, 5}, {3});
  auto sl = runOp(op, {x, w, r, b, lens, h0}, a, 2);
  ASSERT_TRUE(sl.ok()) << sl.status().toString();
  for (int64_t j = 0; j < H; ++j) {
    EXPECT_NEAR((*sl)[0].getDouble((1 * B + 1) * H + j), (*fwd)[0].getDouble((1 * B + 1) * H + j),
                1e-5);
    EXPECT_EQ((*sl)[0].getDouble((2 * B + 1) * H + j), 0.0);
    EXPECT_NEAR((*sl)[1].getDouble(1 * H + j), (*fwd)[0].getDouble((1 * B + 1) * H + j), 1e-5);
    EXPECT_NEAR((*sl)[1].getDouble(0 * H + j), (*fwd)[1].getDouble(0 * H + j), 1e-5);
  }
  // Errors: W of the wrong size, unknown activation.
  EXPECT_FALSE(runOp(op, {x, randomTensor({1, gates * H + 1, I}), r}, a, 2).ok());
  Attrs bad = a;
  bad["activations"] = Attribute();
  bad["activations"].kind = Attribute::Kind::kStrings;
  bad["activations"].strings = std::vector<std::string>(op == "LSTM"  ? 3
                                                        : op == "GRU" ? 2
                                                                      : 1,
                                                        "Bogus");
  EXPECT_FALSE(runOp(op, {x, w, r}, bad, 2).ok());
}

TEST(NnRnn, VariantsAgree) {
  checkRnnVariants("RNN", 1);
  checkRnnVariants("GRU", 3);
  checkRnnVariants("LSTM", 4);
}

TEST(NnRnn, SingleStepLstmMatchesEquations) {
  const int64_t I = 2, H = 2;
  Tensor x = randomTensor({1, 1, I}), w = randomTensor({1, 4 * H, I}),
         r = randomTensor({1, 4 * H, H});
  Tensor h0 = randomTensor({1, 1, H}), c0 = randomTensor({1, 1, H}), p = randomTensor({1, 3 * H});
  auto out = runOp("LSTM", {x, w, r, Tensor(), Tensor(), h0, c0, p}, {{"hidden_size", i64(H)}}, 3);
  ASSERT_TRUE(out.ok()) << out.status().toString();
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  auto pre = [&](int gate, int j) {
    double s = 0;
    for (int i = 0; i < I; ++i) s += x.getDouble(i) * w.getDouble((gate * H + j) * I + i);
    for (int k = 0; k < H; ++k) s += h0.getDouble(k) * r.getDouble((gate * H + j) * H + k);
    return s;
  };
  for (int j = 0; j < H; ++j) {
    const double c = c0.getDouble(j);
    const double it = sig(pre(0, j) + p.getDouble(j) * c),
                 ft = sig(pre(2, j) + p.getDouble(2 * H + j) * c);
    const double ct = ft * c + it * std::tanh(pre(3, j));
    const double ot = sig(pre(1, j) + p.getDouble(H + j) * ct);
    EXPECT_NEAR((*out)[2].getDouble(j), ct, 1e-5);
    EXPECT_NEAR((*out)[1].getDouble(j), ot * std::tanh(ct), 1e-5);
  }
}

// ---------------------------------------------------------------- timing (printed, not asserted)
TEST(NnTiming, Conv3x3_64x56x56) {
  Tensor x = randomTensor({1, 64, 56, 56}), w = randomTensor({64, 64, 3, 3}),
         b = randomTensor({64});
  Attrs a{{"pads", ints({1, 1, 1, 1})}};
  auto warm = runOp("Conv", {x, w, b}, a);
  ASSERT_TRUE(warm.ok()) << warm.status().toString();
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto r = runOp("Conv", {x, w, b}, a);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(r.ok());
    best = std::min(best, ms);
  }
  const double gflop = 2.0 * 64 * 64 * 9 * 56 * 56 / 1e9;
  std::printf("[ timing ] Conv 1x64x56x56, 64x3x3, pad 1: best of 5 %.2f ms (%.1f GFLOP/s)\n", best,
              gflop / (best / 1e3));
}

}  // namespace
