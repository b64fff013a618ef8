// GPU tests of the transformer family (src/backends/cuda/transformer_ops.cc): Attention,
// MultiHeadAttention, FusedGemm, FusedElementwise (NVRTC and the interpreter fallback) and the
// warp LayerNorm, each as a one-node graph built into a CUDA engine without CPU fallback and
// compared with the CPU reference interpreter on the same (for FP16: half-rounded) inputs; then
// the whole ViT-B/16 (RAMJET_ZOO_DIR or models/zoo) built FP16 vs the CPU FP32 reference.
// FP8: the device E4M3 conversion is bit-exact with precision::floatToE4m3 (every code, the
// rounding boundaries, saturation); Fp8Gemm against its CPU reference in both accumulation
// modes; ViT-B/16 built --fp8 vs the CPU FP32 reference.
// RAMJET_ATTENTION_ALGO=simt|wmma|mma forces one attention kernel; each is run here.
// Tolerances: FP32 1e-4 abs / 1e-4 rel (TF32 GEMMs: 2e-2 / 1e-2), FP16 3e-2 / 2e-2.
// Without a CUDA device every test is skipped.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "backends/cpu/reference/interpreter.h"
#include "backends/cuda/cuda_ops.h"
#include "backends/cuda/fp8_kernels.h"
#include "precision/calibrator.h"
#include "precision/fp8_math.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

std::mt19937& rng() {
  static std::mt19937 g(777);
  return g;
}
Tensor randF(std::vector<int64_t> dims, float lo = -1.f, float hi = 1.f) {
  Tensor t(DataType::kFloat32, dims);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng());
  return t;
}

struct In {
  Tensor t;
  bool constant = false;
};
In data(Tensor t) { return {std::move(t), false}; }
In cst(Tensor t) { return {std::move(t), true}; }
using Attrs = std::map<std::string, Attribute>;
struct Case {
  std::string op;
  std::vector<In> ins;
  Attrs attrs;
  double atol = 1e-4, rtol = 1e-4;
  bool fp32 = true, fp16 = true;
};

void runCase(const Case& c, const std::string& tag = "") {
  for (Precision prec : {Precision::kFP32, Precision::kFP16}) {
    const bool half = prec == Precision::kFP16;
    if ((half && !c.fp16) || (!half && !c.fp32)) continue;
    Graph g;
    g.name = "xfmr_" + c.op;
    std::map<std::string, Tensor> feeds;
    std::vector<Value*> ins;
    std::string what = c.op + tag;
    for (size_t i = 0; i < c.ins.size(); ++i) {
      const In& in = c.ins[i];
      if (!in.t.defined()) {
        ins.push_back(nullptr);
        continue;
      }
      Tensor t = in.t;
      if (half && t.dtype() == DataType::kFloat32) t = t.cast(DataType::kFloat16).cast(DataType::kFloat32);
      Value* v = g.addValue("in" + std::to_string(i));
      v->type = t.type();
      if (in.constant) {
        v->constant = std::make_shared<Tensor>(t);
      } else {
        v->is_graph_input = true;
        g.inputs.push_back(v);
        feeds[v->name] = t;
        what += " " + dimsToString(t.dims());
      }
      ins.push_back(v);
    }
    what += half ? " fp16" : " fp32";
    Value* out = g.addValue("out");
    out->is_graph_output = true;
    g.outputs.push_back(out);
    Node* n = g.addNode(c.op, c.op + "_node", ins, {out});
    n->attrs = c.attrs;
    ASSERT_TRUE(g.inferShapes().ok()) << what;
    auto want = reference::run(g, feeds);
    ASSERT_TRUE(want.ok()) << what << " reference: " << want.status().toString();
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.precision = prec;
    opt.allow_cpu_fallback = false;
    opt.optimize = false;
    auto plan = build(g, opt);
    ASSERT_TRUE(plan.ok()) << what << " build: " << plan.status().toString();
    auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(e.ok()) << what << " load: " << e.status().toString();
    auto ctx = (*e)->createContext();
    ASSERT_TRUE(ctx.ok());
    for (int rep = 0; rep < 3; ++rep) {  // the third run replays a CUDA graph
      auto got = (*ctx)->infer(feeds);
      ASSERT_TRUE(got.ok()) << what << " run: " << got.status().toString();
      const double atol = half ? std::max(c.atol, 3e-2) : c.atol, rtol = half ? std::max(c.rtol, 2e-2) : c.rtol;
      CompareResult r = compareTensors((*got)[0], (*want)[0], atol, rtol);
      if (rep == 0) std::printf("[xfmr-gpu] %-70s %s\n", what.c_str(), r.toString().c_str());
      EXPECT_TRUE(r.shape_match && r.mismatches == 0 && !r.nan_mismatch && r.cosine > 0.999)
          << what << ": " << r.toString() << "\n got " << (*got)[0].summary() << "\n want " << (*want)[0].summary();
    }
  }
}

class TransformerGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::deviceAvailable()) GTEST_SKIP() << "no CUDA device: GPU tests skipped";
    ASSERT_TRUE(registerCudaBackend().ok());
  }
};

Attribute AI(int64_t v) { return Attribute::fromInt(v); }
Attribute AF(float v) { return Attribute::fromFloat(v); }
Attribute AS(const std::string& s) { return Attribute::fromString(s); }
Attribute AIs(std::vector<int64_t> v) { return Attribute::fromInts(std::move(v)); }
Attribute AFs(std::vector<float> v) { return Attribute::fromFloats(std::move(v)); }

void forEachAlgo(const std::function<void(const std::string&)>& f) {
  for (const char* algo : {"simt", "wmma", "mma"}) {
    setenv("RAMJET_ATTENTION_ALGO", algo, 1);
    f(std::string(" [") + algo + "]");
  }
  unsetenv("RAMJET_ATTENTION_ALGO");
}

}  // namespace

TEST_F(TransformerGpu, AttentionShapesAndMasks) {
  forEachAlgo([](const std::string& tag) {
    runCase({"Attention", {data(randF({2, 3, 197, 64})), data(randF({2, 3, 197, 64})), data(randF({2, 3, 197, 64}))},
             {{"scale", AF(0.125f)}}}, tag);
    runCase({"Attention", {data(randF({7, 45, 32})), data(randF({7, 61, 32})), data(randF({7, 61, 32}))}}, tag);
    runCase({"Attention", {data(randF({2, 2, 33, 128})), data(randF({2, 2, 70, 128})), data(randF({2, 2, 70, 128}))}},
            tag);
    runCase({"Attention", {data(randF({1, 5, 33, 40})), data(randF({1, 5, 17, 40})), data(randF({1, 5, 17, 24}))}},
            tag);
    runCase({"Attention",
             {data(randF({2, 4, 19, 64})), data(randF({2, 4, 23, 64})), data(randF({2, 4, 23, 64})),
              data(randF({19, 23}, -3.f, 0.f))}},
            tag);
    Tensor bm(DataType::kBool, {2, 1, 1, 23});
    for (int64_t i = 0; i < bm.numel(); ++i) bm.data<bool>()[i] = (i % 5) != 3;
    runCase({"Attention",
             {data(randF({2, 4, 19, 64})), data(randF({2, 4, 23, 64})), data(randF({2, 4, 23, 64})), data(bm)}},
            tag);
    runCase({"Attention",  // mask needing expansion: [4,1,23] against batch dims [2,4]
             {data(randF({2, 4, 19, 16})), data(randF({2, 4, 23, 16})), data(randF({2, 4, 23, 16})),
              data(randF({4, 1, 23}))}},
            tag);
  });
}

TEST_F(TransformerGpu, MultiHeadAttentionPacked) {
  forEachAlgo([](const std::string& tag) {
    // torch nn.MultiheadAttention: packed QKV [S, B, 3*H*D].
    Tensor qkv = randF({197, 2, 3 * 768});
    runCase({"MultiHeadAttention", {data(qkv), data(qkv), data(qkv)},
             {{"layout", AS("sbh")}, {"num_heads", AI(12)}, {"head_size", AI(64)}, {"q_offset", AI(0)},
              {"k_offset", AI(768)}, {"v_offset", AI(1536)}, {"scale", AF(0.125f)}}},
            tag);
    Tensor q = randF({3, 50, 4 * 32}), kv = randF({3, 29, 2 * 4 * 32});
    runCase({"MultiHeadAttention", {data(q), data(kv), data(kv)},
             {{"layout", AS("bsh")}, {"num_heads", AI(4)}, {"head_size", AI(32)}, {"k_offset", AI(0)},
              {"v_offset", AI(128)}}},
            tag);
  });
}

TEST_F(TransformerGpu, FusedGemmEpilogues) {
  for (const char* act : {"none", "relu", "gelu", "gelu_tanh"}) {
    runCase({"FusedGemm", {data(randF({2, 197, 96})), cst(randF({96, 200})), cst(randF({200}))},
             {{"activation", AS(act)}}, 2e-2, 1e-2});
  }
  runCase({"FusedGemm", {data(randF({2, 37, 64})), cst(randF({48, 64})), cst(randF({48})), data(randF({2, 37, 48}))},
           {{"trans_b", AI(1)}, {"alpha", AF(0.5f)}}, 2e-2, 1e-2});
  runCase({"FusedGemm", {data(randF({5, 64})), cst(randF({64, 24})), In{}, data(randF({5, 24}))},
           {{"activation", AS("relu")}}, 2e-2, 1e-2});
}

TEST_F(TransformerGpu, FusedElementwiseNvrtcAndFallback) {
  // (x + b) -> Gelu -> * y -> Clip ; x [4,7,33], b [33], y [4,1,33]; then Sigmoid(x)*x + 0.5.
  Case c{"FusedElementwise",
         {data(randF({4, 7, 33}, -3.f, 3.f)), data(randF({33})), data(randF({4, 1, 33}))},
         {{"ops", AS("Add,Gelu,Mul,Clip")},
          {"args", AIs({0, 1, 3, -1, 4, 2, 5, -1})},
          {"params", AFs({0, 0, 0, 0, 0, 0, -0.5f, 0.75f})}},
         1e-5, 1e-4};
  Case d{"FusedElementwise",
         {data(randF({3, 1000}, -4.f, 4.f)), data(randF({1}))},
         {{"ops", AS("Sigmoid,Mul,Add,Tanh,HardSwish")}, {"args", AIs({0, -1, 2, 0, 3, 1, 4, -1, 5, -1})}},
         1e-5, 1e-4};
  for (const char* nv : {"0", "1"}) {
    setenv("RAMJET_DISABLE_NVRTC", nv, 1);
    const std::string tag = std::string(" [nvrtc ") + (nv[0] == '0' ? "on]" : "off]");
    runCase(c, tag);
    runCase(d, tag);
  }
  unsetenv("RAMJET_DISABLE_NVRTC");
}

TEST_F(TransformerGpu, LayerNormWarp) {
  for (std::vector<int64_t> dims : {std::vector<int64_t>{2, 197, 768}, {5, 1024}, {3, 100}, {4, 2048}}) {
    const int64_t c = dims.back();
    runCase({"LayerNormalization", {data(randF(dims, -2.f, 3.f)), cst(randF({c})), cst(randF({c}))},
             {{"axis", AI(-1)}, {"epsilon", AF(1e-6f)}}});
  }
}

TEST_F(TransformerGpu, AddLayerNorm) {
  for (std::vector<int64_t> dims : {std::vector<int64_t>{2, 197, 768}, {3, 100}}) {
    const int64_t c = dims.back();
    runCase({"AddLayerNorm", {data(randF(dims, -2.f, 3.f)), data(randF(dims)), cst(randF({c})), cst(randF({c}))},
             {{"axis", AI(-1)}, {"epsilon", AF(1e-6f)}}});
  }
}

namespace {

// Builds `g` with `opt` (CUDA), loads it and runs `feeds` once; `report` gets the precision report.
Result<std::vector<Tensor>> buildAndRunCuda(const Graph& g, BuildOptions opt, const std::map<std::string, Tensor>& feeds,
                                            std::string* report = nullptr) {
  opt.device = DeviceKind::kCuda;
  RJ_ASSIGN_OR_RETURN(Plan plan, build(g, opt));
  if (report) *report = plan.report().precision;
  RJ_ASSIGN_OR_RETURN(auto e, Engine::loadFromMemory(plan.bytes().data(), plan.bytes().size()));
  RJ_ASSIGN_OR_RETURN(auto ctx, e->createContext());
  return ctx->infer(feeds);
}

}  // namespace

TEST_F(TransformerGpu, VitFp16AndFp8MatchCpuFp32) {
  const char* dir = std::getenv("RAMJET_ZOO_DIR");
  const std::string path = std::string(dir ? dir : "models/zoo") + "/vit_b_16.onnx";
  auto g = importOnnx(path);
  if (!g.ok()) GTEST_SKIP() << path << " not available: " << g.status().toString();
  Tensor x = randF({1, 3, 224, 224});
  std::map<std::string, Tensor> feeds{{g->inputs[0]->name, x}};
  auto want = reference::run(*g, feeds);
  ASSERT_TRUE(want.ok()) << want.status().toString();
  for (const char* disabled : {"", "GemmEpilogueFusion,AttentionLayoutFold,AddLayerNormFusion,ElementwiseFusion"}) {
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.precision = Precision::kFP16;
    opt.disabled_passes = {};
    if (*disabled) opt.disabled_passes = {"GemmEpilogueFusion", "AttentionLayoutFold", "AddLayerNormFusion", "ElementwiseFusion"};
    auto got = buildAndRunCuda(*g, opt, feeds);
    ASSERT_TRUE(got.ok()) << got.status().toString();
    CompareResult r = compareTensors((*got)[0], (*want)[0], 5e-2, 5e-2);
    std::printf("[xfmr-gpu] vit_b_16 fp16 (%s) vs cpu fp32: %s\n", *disabled ? "xfmr passes off" : "xfmr passes on",
                r.toString().c_str());
    EXPECT_GT(r.cosine, 0.999) << r.toString();
  }
  // FP8: E4M3 GEMMs (calibrated on random data), FP16 elsewhere.
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  opt.precision = Precision::kFP8;
  opt.calibration_method = "minmax";
  auto calib = precision::makeRandomCalibrator(*g, 2, 4321);
  opt.calibrator = calib.get();
  std::string rep;
  auto got = buildAndRunCuda(*g, opt, feeds, &rep);
  ASSERT_TRUE(got.ok()) << got.status().toString();
  std::printf("[xfmr-gpu] vit_b_16 fp8 build: %s\n", rep.substr(0, rep.find('\n')).c_str());
  EXPECT_NE(rep.find("48 fp8 GEMMs"), std::string::npos) << rep;  // 12 blocks x (QKV, out, fc1, fc2)
  EXPECT_NE(rep.find("12 passing E4M3 outputs on"), std::string::npos) << rep;  // fc1 -> fc2
  CompareResult r8 = compareTensors((*got)[0], (*want)[0], 5e-2, 5e-2);
  std::printf("[xfmr-gpu] vit_b_16 fp8 vs cpu fp32: %s\n", r8.toString().c_str());
  // (The CPU FP8 build of this random-weight ViT gives cosine 0.994 against FP32: E4M3's 3
  // mantissa bits over 48 GEMMs; FP16 elsewhere adds little.)
  EXPECT_GT(r8.cosine, 0.98) << r8.toString();
}

namespace {

// Device quantization of `x` with inverse scale `inv` (vector path when n % 8 == 0).
std::vector<uint8_t> deviceQuantize(const std::vector<float>& x, float inv) {
  float* dx = nullptr;
  uint8_t* dq = nullptr;
  EXPECT_EQ(cudaMalloc(&dx, x.size() * 4), cudaSuccess);
  EXPECT_EQ(cudaMalloc(&dq, x.size() + 16), cudaSuccess);
  cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
  Status st = cuda::fp8QuantizeE4m3(DataType::kFloat32, dx, dq, static_cast<int64_t>(x.size()), inv, nullptr);
  EXPECT_TRUE(st.ok()) << st.toString();
  std::vector<uint8_t> q(x.size());
  cudaMemcpy(q.data(), dq, q.size(), cudaMemcpyDeviceToHost);
  cudaFree(dx);
  cudaFree(dq);
  return q;
}

}  // namespace

TEST_F(TransformerGpu, Fp8ConversionIsBitExact) {
  float* d = nullptr;
  ASSERT_EQ(cudaMalloc(&d, 256 * 4), cudaSuccess);
  ASSERT_TRUE(cuda::fp8DecodeAll(d, nullptr).ok());
  std::vector<float> dec(256);
  cudaMemcpy(dec.data(), d, 256 * 4, cudaMemcpyDeviceToHost);
  cudaFree(d);
  for (int c = 0; c < 256; ++c) {
    const float want = precision::e4m3ToFloat(static_cast<uint8_t>(c));
    if (std::isnan(want)) EXPECT_TRUE(std::isnan(dec[c])) << c;
    else EXPECT_EQ(dec[c], want) << "code " << c;
  }
  // Every code's value, the midpoints between neighbours and the floats either side of them,
  // out-of-range values, random values; scaled by 1 and by an awkward inverse scale.
  std::vector<float> x;
  for (int c = 0; c < 0x7F; ++c) {
    const float v = precision::e4m3ToFloat(static_cast<uint8_t>(c));
    x.push_back(v);
    x.push_back(-v);
    if (c < 0x7E) {
      const float mid = 0.5f * (v + precision::e4m3ToFloat(static_cast<uint8_t>(c + 1)));
      for (float m : {mid, std::nextafter(mid, 0.f), std::nextafter(mid, 1e9f)}) x.push_back(m), x.push_back(-m);
    }
  }
  for (float v : {449.f, 463.9f, 464.f, 465.f, 1e6f, INFINITY, -INFINITY, 1e-30f, -1e-30f}) x.push_back(v);
  std::uniform_real_distribution<float> u(-600.f, 600.f);
  while (x.size() % 8 != 0 || x.size() < 4096) x.push_back(u(rng()) * (x.size() % 3 == 0 ? 1e-3f : 1.f));
  for (float inv : {1.f, 1.f / 0.37f}) {
    for (size_t n : {x.size(), x.size() - 3}) {  // vector and scalar paths
      std::vector<float> xs(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(n));
      std::vector<uint8_t> q = deviceQuantize(xs, inv);
      size_t bad = 0;
      for (size_t i = 0; i < n; ++i) {
        const uint8_t want = precision::floatToE4m3(xs[i] * inv);
        if (q[i] != want && bad++ < 5)
          ADD_FAILURE() << "x=" << xs[i] << " inv=" << inv << ": device " << int(q[i]) << ", host " << int(want);
      }
      std::printf("[xfmr-gpu] fp8 quantize n=%zu inv=%g: %zu of %zu codes differ from the host conversion\n", n, inv, bad, n);
    }
  }
}

TEST_F(TransformerGpu, Fp8GemmMatchesCpuReference) {
  // Weights as the lowering makes them: E4M3 codes of W / w_scale, |W| <= 0.05.
  auto codes = [](int64_t n, int64_t k) {
    Tensor w(DataType::kUInt8, {n, k});
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<uint8_t>()[i] = precision::floatToE4m3(u(rng()) * 448.f);
    return w;
  };
  const float ws = 0.05f / 448.f, xs = 1.f / 448.f;  // inputs in [-1, 1] use the whole E4M3 range
  for (const char* accum : {"precise", "fast"}) {
    setenv("RAMJET_FP8_ACCUM", accum, 1);
    const std::string tag = std::string(" [") + accum + "]";
    for (const char* act : {"none", "relu", "gelu", "gelu_tanh"}) {
      Case c{"Fp8Gemm", {data(randF({2, 197, 768})), cst(codes(256, 768)), cst(randF({256}))},
             {{"activation", AS(act)}, {"x_scale", AF(xs)}, {"w_scale", AF(ws)}}, 3e-2, 2e-2};
      c.fp32 = false;  // FP8 GEMMs take FP16 activations
      runCase(c, tag);
    }
    Case r{"Fp8Gemm", {data(randF({64, 3072}, -2.f, 2.f)), cst(codes(768, 3072)), cst(randF({768})), data(randF({64, 768}))},
           {{"x_scale", AF(2.f / 448.f)}, {"w_scale", AF(ws)}, {"alpha", AF(0.5f)}}, 3e-2, 2e-2};
    r.fp32 = false;
    runCase(r, tag + " residual");
    Case o{"Fp8Gemm", {data(randF({3, 5, 64}, -8.f, 8.f)), cst(codes(32, 64))},  // saturating inputs, odd M
           {{"x_scale", AF(xs)}, {"w_scale", AF(ws)}}, 3e-2, 2e-2};
    o.fp32 = false;
    runCase(o, tag + " saturating");
  }
  unsetenv("RAMJET_FP8_ACCUM");
}

// Two chained FP8 GEMMs (fc1 -> fc2 as the --fp8 lowering makes them): the first writes E4M3
// codes, the second reads them; against the CPU reference. With the tanh GELU cuBLASLt converts
// in its epilogue; with an erf GELU (a pass of its own) fc1 writes FP16 and quantizes after.
TEST_F(TransformerGpu, Fp8ChainPassesCodes) {
  auto codes = [](int64_t n, int64_t k) {
    Tensor w(DataType::kUInt8, {n, k});
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < w.numel(); ++i) w.data<uint8_t>()[i] = precision::floatToE4m3(u(rng()) * 448.f);
    return w;
  };
  for (const char* accum : {"precise", "fast"})
  for (const char* act : {"gelu_tanh", "gelu"}) {
    setenv("RAMJET_FP8_ACCUM", accum, 1);
    Graph g;
    g.name = "fp8_chain";
    Value* x = g.addValue("x");
    x->type = TensorType{DataType::kFloat32, Shape(std::vector<Dim>{Dim(2), Dim(197), Dim(256)})};
    x->is_graph_input = true;
    g.inputs.push_back(x);
    auto cst = [&](const std::string& name, Tensor t) {
      Value* v = g.addValue(name);
      v->type = t.type();
      v->constant = std::make_shared<Tensor>(std::move(t));
      return v;
    };
    Value* h = g.addValue("h");
    Value* y = g.addValue("y");
    y->is_graph_output = true;
    g.outputs.push_back(y);
    Node* n1 = g.addNode("Fp8Gemm", "fc1", {x, cst("w1", codes(1024, 256)), cst("b1", randF({1024}))}, {h});
    n1->attrs = {{"x_scale", AF(1.f / 448.f)}, {"w_scale", AF(0.06f / 448.f)}, {"activation", AS(act)},
                 {"out_scale", AF(1.5f / 448.f)}};
    Node* n2 = g.addNode("Fp8Gemm", "fc2", {h, cst("w2", codes(256, 1024))}, {y});
    n2->attrs = {{"x_scale", AF(1.5f / 448.f)}, {"w_scale", AF(0.03f / 448.f)},
                 {"to", AI(static_cast<int64_t>(DataType::kFloat16))}};
    ASSERT_TRUE(g.inferShapes().ok());
    ASSERT_EQ(h->type.dtype, DataType::kUInt8);
    Tensor in = randF({2, 197, 256}).cast(DataType::kFloat16).cast(DataType::kFloat32);
    std::map<std::string, Tensor> feeds{{"x", in}};
    auto want = reference::run(g, feeds);
    ASSERT_TRUE(want.ok()) << want.status().toString();
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.precision = Precision::kFP16;
    opt.allow_cpu_fallback = false;
    opt.optimize = false;
    auto plan = build(g, opt);
    ASSERT_TRUE(plan.ok()) << plan.status().toString();
    auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(e.ok()) << e.status().toString();
    auto ctx = (*e)->createContext();
    ASSERT_TRUE(ctx.ok());
    for (int rep = 0; rep < 3; ++rep) {
      auto got = (*ctx)->infer(feeds);
      ASSERT_TRUE(got.ok()) << got.status().toString();
      CompareResult r = compareTensors((*got)[0], (*want)[0].cast(DataType::kFloat32), 5e-2, 5e-2);
      if (rep == 0) std::printf("[xfmr-gpu] Fp8Gemm chain [%s, %s] fc1 E4M3 out -> fc2: %s\n", accum, act, r.toString().c_str());
      EXPECT_GT(r.cosine, 0.999) << r.toString();
      EXPECT_LT(r.max_abs, 0.1) << r.toString();
    }
  }
  unsetenv("RAMJET_FP8_ACCUM");
}
