// The transformer family of the CUDA backend (registered through cuda_op_table.h):
//   Attention            fused flash-style kernel (tensor cores for fp16), masks, any batch dims
//   MultiHeadAttention   the same kernel reading packed QKV projections through strides
//   FusedGemm            cuBLASLt with BIAS / RELU_BIAS / GELU_BIAS epilogues, residual as C
//   FusedElementwise     one NVRTC-compiled kernel per program (interpreter kernel fallback)
//   LayerNormalization   one warp per row with 16-byte loads (block kernel otherwise)
//   AddLayerNorm         residual Add + LayerNorm in the same warp kernel, the sum written too
//   SoftmaxWeightedSum   YOLOv8 DFL: softmax over the bins and the expectation in one pass
// Per-shape state (cuBLASLt plans, NVRTC kernels) is made on the host the first time a shape is
// seen (workspaceBytes() and the first, uncaptured run), cached under a lock.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/fp8_kernels.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_op_table.h"
#include "backends/cuda/cuda_ops.h"
#include "backends/cuda/nvrtc_elementwise.h"
#include "backends/cuda/transformer_kernels.h"
#include "ops/elementwise_program.h"
#include "ops/op_registry.h"

namespace ramjet::cuda {
namespace {

using backend::Kernel;
using backend::RunArgs;
using backend::Tactic;
using backend::TensorRef;

cudaStream_t S(const RunArgs& a) { return static_cast<cudaStream_t>(a.stream); }
bool isF(DataType d) { return d == DataType::kFloat32 || d == DataType::kFloat16; }
template <typename... Args>
Status no(const Node& n, Args&&... why) {
  return makeError(StatusCode::kUnsupported, n.describe(), ": ", why...);
}
Result<std::unique_ptr<Kernel>> mk(Kernel* k) { return Result<std::unique_ptr<Kernel>>(std::unique_ptr<Kernel>(k)); }

AttnAlgo algoOf(const Tactic& t) {
  // RAMJET_ATTENTION_ALGO=simt|wmma|mma forces one kernel (tests run each).
  if (const char* f = std::getenv("RAMJET_ATTENTION_ALGO")) {
    if (std::string(f) == "simt") return AttnAlgo::kSimt;
    if (std::string(f) == "wmma") return AttnAlgo::kTensorCore;
    if (std::string(f) == "mma") return AttnAlgo::kMma;
  }
  return t.id == 1 ? AttnAlgo::kTensorCore : t.id == 2 ? AttnAlgo::kSimt : t.id == 3 ? AttnAlgo::kMma : AttnAlgo::kAuto;
}

std::vector<Tactic> attnTactics(DataType dt, int64_t d, int64_t dv, bool mask) {
  AttnParams p;
  p.d = d;
  p.dv = dv;
  p.mask = mask ? reinterpret_cast<void*>(1) : nullptr;
  if (attentionTensorCoreEligible(dt, p))
    return {Tactic{"cuda.attention.mma", 3}, Tactic{"cuda.attention.wmma", 1}, Tactic{"cuda.attention.simt", 2}};
  return {Tactic{"cuda.attention.simt", 2}};
}

// ---------------------------------------------------------------- Attention
class AttentionKernel final : public Kernel {
 public:
  AttentionKernel(const Node& n, const Tactic& t) : n_(n), algo_(algoOf(t)) {}
  struct Setup {
    AttnParams p;
    AttnView q, k, v, o;
    bool expand_mask = false;
    std::vector<int64_t> full_mask;
  };
  Result<Setup> setup(const RunArgs& a) const {
    Setup s;
    const auto& qd = a.inputs[0].dims;
    const auto& kd = a.inputs[1].dims;
    const auto& vd = a.inputs[2].dims;
    const size_t r = qd.size();
    if (r < 2 || kd.size() != r || vd.size() != r) return no(n_, "Q, K, V ranks differ or < 2");
    int64_t batch = 1;
    for (size_t i = 0; i + 2 < r; ++i) {
      if (kd[i] != qd[i] || vd[i] != qd[i]) return no(n_, "batch dims differ");
      batch *= qd[i];
    }
    AttnParams& p = s.p;
    p.batch = batch;
    p.heads = 1;
    p.sq = qd[r - 2];
    p.d = qd[r - 1];
    p.sk = kd[r - 2];
    p.dv = vd[r - 1];
    if (kd[r - 1] != p.d || vd[r - 2] != p.sk) return no(n_, "Q/K/V inner dims do not fit");
    p.scale = n_.hasAttr("scale") ? n_.attrFloat("scale", 1.f) : 1.f / std::sqrt(static_cast<float>(p.d));
    s.q = {a.inputs[0].data, p.sq * p.d, 0, p.d};
    s.k = {a.inputs[1].data, p.sk * p.d, 0, p.d};
    s.v = {a.inputs[2].data, p.sk * p.dv, 0, p.dv};
    s.o = {a.outputs[0].data, p.sq * p.dv, 0, p.dv};
    // Present mask: known by its type (workspaceBytes is asked with no data pointers).
    if (a.inputs.size() > 3 && (a.inputs[3].data || a.inputs[3].dtype != DataType::kUndefined)) {
      const TensorRef& m = a.inputs[3];
      p.mask = m.data;
      p.mask_bool = m.dtype == DataType::kBool;
      std::vector<int64_t> md = m.dims;
      if (md.size() > r) return no(n_, "mask rank ", md.size(), " > ", r);
      md.insert(md.begin(), r - md.size(), 1);
      bool lead_ones = true, lead_full = true;
      for (size_t i = 0; i + 2 < r; ++i) {
        lead_ones &= md[i] == 1;
        lead_full &= md[i] == qd[i];
      }
      if (md[r - 1] == p.sk && (md[r - 2] == p.sq || md[r - 2] == 1) && (lead_ones || lead_full)) {
        p.mask_sq = md[r - 2] == 1 ? 0 : p.sk;
        p.mask_sb = lead_ones ? 0 : md[r - 2] * p.sk;
      } else {
        s.expand_mask = true;
        s.full_mask = qd;
        s.full_mask[r - 1] = p.sk;
        p.mask_sq = p.sk;
        p.mask_sb = p.sq * p.sk;
      }
    }
    return s;
  }
  size_t workspaceBytes(const RunArgs& a) const override {
    auto s = setup(a);
    if (!s.ok() || !s->expand_mask) return 0;
    return static_cast<size_t>(numElements(s->full_mask)) * dataTypeSize(a.inputs[3].dtype);
  }
  Status run(const RunArgs& a) override {
    RJ_ASSIGN_OR_RETURN(Setup s, setup(a));
    if (a.outputs[0].numel() == 0) return Status::Ok();
    if (s.expand_mask) {
      const size_t need = static_cast<size_t>(numElements(s.full_mask)) * dataTypeSize(a.inputs[3].dtype);
      if (a.workspace_bytes < need) return makeError(StatusCode::kInvalidArgument, n_.describe(), ": mask workspace too small");
      RJ_RETURN_IF_ERROR(broadcastCopy(dataTypeSize(a.inputs[3].dtype), a.inputs[3].data, a.inputs[3].dims,
                                       a.workspace, s.full_mask, S(a)));
      s.p.mask = a.workspace;
    }
    AttnAlgo algo = algo_;
    if ((algo == AttnAlgo::kTensorCore || algo == AttnAlgo::kMma) && !attentionTensorCoreEligible(a.inputs[0].dtype, s.p))
      algo = AttnAlgo::kSimt;
    return attention(a.inputs[0].dtype, s.q, s.k, s.v, s.o, s.p, algo, S(a));
  }

 private:
  const Node& n_;
  AttnAlgo algo_;
};

// ---------------------------------------------------------------- MultiHeadAttention
class MhaKernel final : public Kernel {
 public:
  MhaKernel(const Node& n, const Tactic& t) : n_(n), algo_(algoOf(t)) {}
  Status run(const RunArgs& a) override {
    const bool sbh = n_.attrString("layout", "sbh") == "sbh";
    AttnParams p;
    p.heads = n_.attrInt("num_heads", 0);
    p.d = n_.attrInt("head_size", 0);
    p.dv = n_.attrInt("v_head_size", p.d);
    const auto& qd = a.inputs[0].dims;
    const auto& kd = a.inputs[1].dims;
    if (qd.size() != 3 || kd.size() != 3 || a.inputs[2].dims.size() != 3) return no(n_, "inputs must be 3-D");
    p.batch = qd[sbh ? 1 : 0];
    p.sq = qd[sbh ? 0 : 1];
    p.sk = kd[sbh ? 0 : 1];
    p.scale = n_.hasAttr("scale") ? n_.attrFloat("scale", 1.f) : 1.f / std::sqrt(static_cast<float>(p.d));
    const int64_t offs[4] = {n_.attrInt("q_offset", 0), n_.attrInt("k_offset", 0), n_.attrInt("v_offset", 0), 0};
    const int64_t hs[4] = {p.d, p.d, p.dv, p.dv};
    AttnView views[4];
    for (int i = 0; i < 4; ++i) {
      const TensorRef& t = i < 3 ? a.inputs[static_cast<size_t>(i)] : a.outputs[0];
      const int64_t w = t.dims[2], s = t.dims[sbh ? 0 : 1], b = t.dims[sbh ? 1 : 0];
      if (b != p.batch) return no(n_, "batch dims differ");
      if (offs[i] + p.heads * hs[i] > w) return no(n_, "input ", i, " columns out of range");
      const char* base = static_cast<const char*>(t.data) + offs[i] * dataTypeSize(t.dtype);
      views[i] = sbh ? AttnView{base, w, hs[i], b * w} : AttnView{base, s * w, hs[i], w};
    }
    if (a.outputs[0].numel() == 0) return Status::Ok();
    AttnAlgo algo = algo_;
    if ((algo == AttnAlgo::kTensorCore || algo == AttnAlgo::kMma) && !attentionTensorCoreEligible(a.inputs[0].dtype, p))
      algo = AttnAlgo::kSimt;
    return attention(a.inputs[0].dtype, views[0], views[1], views[2], views[3], p, algo, S(a));
  }

 private:
  const Node& n_;
  AttnAlgo algo_;
};

// ---------------------------------------------------------------- FusedGemm
// FusedGemm, and Fp8Gemm (fp8_ = true): the same cuBLASLt call with E4M3 operands; A is
// quantized into the workspace first (per-tensor x_scale) unless it arrives as E4M3 codes, W
// arrives as E4M3 codes [N, K], and alpha carries both scales. An E4M3 output (out_scale) is
// converted by cuBLASLt's epilogue (D scale 1/out_scale, a device float the kernel owns); where
// cuBLASLt offers no algorithm for that, or an erf GELU needs a pass of its own, the GEMM writes
// FP16 into the workspace and a quantization pass follows.
// Tactic id: cuBLASLt candidate (id % 4); Fp8Gemm ids >= 4 use Hopper's fast FP8 accumulation.
class FusedGemmKernel final : public Kernel {
 public:
  FusedGemmKernel(const Node& n, Handles* h, const Tactic& t)
      : n_(n), h_(h), tactic_(t.id), tuned_(t.tuned_dims), fp8_(n.op_type == "Fp8Gemm") {}
  ~FusedGemmKernel() override {
    if (d_scale_) cudaFree(d_scale_);
  }
  struct Entry {
    std::unique_ptr<CublasLtGemm> gemm;  // result in the output's float type (or FP16 for codes)
    GemmAlgo algo;
    std::unique_ptr<CublasLtGemm> gemm8;  // Fp8Gemm with E4M3 output: cuBLASLt converts itself
    GemmAlgo algo8;
    bool post = false;  // bias + activation by a separate kernel after the GEMM
    UnaryOp post_act = UnaryOp::kIdentity;
    int64_t rows = 0, n = 0;
    size_t qbytes = 0;  // Fp8Gemm: the quantized A at the start of the workspace (256-aligned)
    size_t obytes = 0;  // E4M3 output without gemm8: the FP16 result next in the workspace
    size_t bytes() const { return qbytes + obytes + std::max(algo.workspace, algo8.workspace); }
  };
  size_t workspaceBytes(const RunArgs& a) const override {
    auto e = entry(a);
    return e.ok() ? (*e)->bytes() : 0;
  }
  Status run(const RunArgs& a) override {
    RJ_ASSIGN_OR_RETURN(Entry * e, entry(a));
    if (a.outputs[0].numel() == 0) return Status::Ok();
    const bool has_bias = a.inputs.size() > 2 && a.inputs[2].data;
    const bool has_res = a.inputs.size() > 3 && a.inputs[3].data;
    const void* bias = has_bias && !e->post ? a.inputs[2].data : nullptr;
    const void* x = a.inputs[0].data;
    uint8_t* ws = static_cast<uint8_t*>(a.workspace);
    float alpha = n_.attrFloat("alpha", 1.f);
    if (fp8_) {
      if (a.workspace_bytes < e->bytes()) return no(n_, "workspace too small");
      const float xs = n_.attrFloat("x_scale", 1.f);
      if (a.inputs[0].dtype != DataType::kUInt8) {
        RJ_RETURN_IF_ERROR(fp8QuantizeE4m3(a.inputs[0].dtype, x, ws, a.inputs[0].numel(), 1.f / xs, S(a)));
        x = ws;
      }
      alpha *= xs;  // the CPU reference's order: (alpha * x_scale) * w_scale
      alpha *= n_.attrFloat("w_scale", 1.f);
    }
    const void* res = has_res ? a.inputs[3].data : nullptr;
    uint8_t* rest = ws + e->qbytes + e->obytes;
    const size_t rest_bytes = a.workspace_bytes - e->qbytes - e->obytes;
    if (e->gemm8) {
      // C must not alias the E4M3 D (other type): without a residual it is the FP16 scratch, unread (beta 0).
      const void* c = res ? res : static_cast<const void*>(ws + e->qbytes);
      return e->gemm8->run(e->algo8, x, a.inputs[1].data, c, a.outputs[0].data, bias, alpha, has_res ? 1.f : 0.f, rest,
                           rest_bytes, S(a));
    }
    const bool codes_out = a.outputs[0].dtype == DataType::kUInt8;
    if (codes_out && !e->obytes) return no(n_, "E4M3 output without room for the FP16 result");
    void* dst = codes_out ? static_cast<void*>(ws + e->qbytes) : a.outputs[0].data;
    const DataType dst_dt = codes_out ? DataType::kFloat16 : a.outputs[0].dtype;
    RJ_RETURN_IF_ERROR(e->gemm->run(e->algo, x, a.inputs[1].data, res, dst, bias, alpha, has_res ? 1.f : 0.f, rest,
                                    rest_bytes, S(a)));
    if (e->post)
      RJ_RETURN_IF_ERROR(biasActivation(dst_dt, dst, has_bias ? a.inputs[2].data : nullptr, dst, e->rows, e->n, 1,
                                        e->post_act, UnaryParams{}, S(a)));
    if (codes_out)
      return fp8QuantizeE4m3(DataType::kFloat16, dst, static_cast<uint8_t*>(a.outputs[0].data), e->rows * e->n,
                             1.f / n_.attrFloat("out_scale", 1.f), S(a));
    return Status::Ok();
  }
  Result<Entry*> entry(const RunArgs& a) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& key = a.inputs[0].dims;
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second.get();
    auto e = std::make_unique<Entry>();
    const auto& ad = a.inputs[0].dims;
    const auto& bd = a.inputs[1].dims;
    if (ad.size() < 2 || bd.size() != 2) return no(n_, "A rank < 2 or B not 2-D");
    const bool tb = fp8_ || n_.attrInt("trans_b", 0) != 0;
    const bool codes_out = fp8_ && a.outputs[0].dtype == DataType::kUInt8;
    GemmDesc d;
    d.dtype = !fp8_ ? a.inputs[0].dtype : codes_out ? DataType::kFloat16 : a.outputs[0].dtype;
    d.fp8_inputs = fp8_;
    d.fast_accum = fp8_ && tactic_ >= 4;
    d.trans_b = tb;
    d.k = ad.back();
    d.n = tb ? bd[0] : bd[1];
    d.m = numElements(ad) / std::max<int64_t>(d.k, 1);
    if (d.k == 0) return no(n_, "K = 0");
    d.name = n_.describe();
    if (fp8_ && a.inputs[0].dtype != DataType::kUInt8) e->qbytes = static_cast<size_t>((d.m * d.k + 255) / 256 * 256);
    const bool has_bias = a.inputs.size() > 2 && a.inputs[2].data;
    const std::string act = n_.attrString("activation", "none");
    e->rows = d.m;
    e->n = d.n;
    // erf GELU has no cuBLASLt epilogue (GELU there is the tanh form): bias + erf GELU after.
    e->post = act == "gelu";
    e->post_act = act == "gelu" ? UnaryOp::kGelu : act == "relu" ? UnaryOp::kRelu
                : act == "gelu_tanh" ? UnaryOp::kGeluTanh : UnaryOp::kIdentity;
    const size_t pick_id = tuned_.empty() || tuned_ == ad ? static_cast<size_t>(std::max(tactic_, 0) % 4) : 0;
    auto make = [&](bool post, bool e4m3_out, std::unique_ptr<CublasLtGemm>* gemm, GemmAlgo* algo) -> Status {
      GemmDesc g = d;
      g.has_bias = has_bias && !post;
      g.epilogue = post ? GemmEpilogue::kNone : act == "relu" ? GemmEpilogue::kRelu
                 : act == "gelu_tanh" ? GemmEpilogue::kGelu : GemmEpilogue::kNone;
      g.fp8_output = e4m3_out;
      g.d_scale = e4m3_out ? d_scale_ : nullptr;
      RJ_ASSIGN_OR_RETURN(*gemm, CublasLtGemm::create(h_->lt->get(), g));
      RJ_ASSIGN_OR_RETURN(auto cands, (*gemm)->candidates(4, size_t{64} << 20));
      if (cands.empty()) return no(n_, "cuBLASLt has no algorithm");
      *algo = cands[std::min<size_t>(pick_id, cands.size() - 1)];
      return Status::Ok();
    };
    Status st = make(e->post, false, &e->gemm, &e->algo);
    if (!st.ok() && !e->post) {
      e->post = true;  // the epilogue was refused: plain GEMM + bias/activation kernel
      st = make(true, false, &e->gemm, &e->algo);
    }
    RJ_RETURN_IF_ERROR(st);
    if (codes_out) {
      e->obytes = static_cast<size_t>((d.m * d.n * 2 + 255) / 256 * 256);  // the fallback's FP16 result
      if (!e->post) {
        if (!d_scale_) {
          const float inv = 1.f / n_.attrFloat("out_scale", 1.f);
          if (cudaMalloc(reinterpret_cast<void**>(&d_scale_), sizeof(float)) != cudaSuccess || !d_scale_ ||
              cudaMemcpy(d_scale_, &inv, sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) {
            cudaGetLastError();
            return no(n_, "cannot place the output scale on the device");
          }
        }
        if (!make(false, true, &e->gemm8, &e->algo8).ok()) e->gemm8.reset();  // FP16 + quantization instead
      }
    }
    Entry* raw = e.get();
    cache_[key] = std::move(e);
    return raw;
  }

 private:
  const Node& n_;
  Handles* h_;
  int32_t tactic_;
  std::vector<int64_t> tuned_;
  const bool fp8_;
  mutable float* d_scale_ = nullptr;  // E4M3 output: 1 / out_scale on the device
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, std::unique_ptr<Entry>> cache_;
};

// ---------------------------------------------------------------- FusedElementwise
class FusedElementwiseKernel final : public Kernel {
 public:
  FusedElementwiseKernel(const Node& n, ops::EwProgram p, bool nvrtc) : n_(n), prog_(std::move(p)), nvrtc_(nvrtc) {}
  size_t workspaceBytes(const RunArgs& a) const override {
    (void)kernelFor(a);  // compile on the host, before any capture
    return 0;
  }
  Status run(const RunArgs& a) override {
    if (a.outputs[0].numel() == 0) return Status::Ok();
    std::vector<const void*> ins;
    std::vector<std::vector<int64_t>> dims;
    for (const auto& t : a.inputs) {
      ins.push_back(t.data);
      dims.push_back(t.dims);
    }
    if (const EwCompiledKernel* k = kernelFor(a)) {
      Status st = k->launch(ins, dims, a.outputs[0].data, a.outputs[0].dims, S(a));
      if (st.ok()) return st;
      // A launch the runtime refuses (first, uncaptured run): interpret from now on, never fail.
      cudaGetLastError();
      std::fprintf(stderr, "ramjet: %s: NVRTC kernel launch failed (%s); using the interpreter kernel\n",
                   n_.describe().c_str(), st.message().c_str());
      std::lock_guard<std::mutex> lock(mu_);
      nvrtc_ = false;
    }
    return fusedElementwiseInterpreted(a.outputs[0].dtype, prog_, ins, dims, a.outputs[0].data, a.outputs[0].dims, S(a));
  }
  // The NVRTC kernel for these shapes' operand kinds, or null (fallback to the interpreter).
  const EwCompiledKernel* kernelFor(const RunArgs& a) const {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!nvrtc_) return nullptr;
    }
    std::vector<std::vector<int64_t>> dims;
    for (const auto& t : a.inputs) dims.push_back(t.dims);
    EwKernelKey key;
    key.program = prog_;
    key.dtype = a.outputs[0].dtype;
    key.kinds = ewOperandKinds(dims, a.outputs[0].dims);
    key.rank = static_cast<int>(a.outputs[0].dims.size());
    std::string sig;
    for (auto k : key.kinds) sig += static_cast<char>('0' + static_cast<int>(k));
    sig += "/" + std::to_string(key.rank) + "/" + std::to_string(static_cast<int>(key.dtype));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = kernels_.find(sig);
    if (it != kernels_.end()) return it->second;
    auto k = EwCompiledKernel::get(key);
    if (!k.ok() && !warned_) {
      warned_ = true;
      std::fprintf(stderr, "ramjet: %s: NVRTC kernel unavailable (%s); using the interpreter kernel\n",
                   n_.describe().c_str(), k.status().message().c_str());
    }
    kernels_[sig] = k.ok() ? *k : nullptr;
    return kernels_[sig];
  }

 private:
  const Node& n_;
  ops::EwProgram prog_;
  mutable std::mutex mu_;
  bool nvrtc_;  // guarded by mu_ once running
  mutable bool warned_ = false;
  mutable std::map<std::string, const EwCompiledKernel*> kernels_;
};

// ---------------------------------------------------------------- LayerNormalization
class LayerNormFastKernel final : public Kernel {
 public:
  explicit LayerNormFastKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    int64_t axis = n_.attrInt("axis", -1);
    RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n_));
    int64_t rows = 1, cols = 1;
    for (int64_t i = 0; i < axis; ++i) rows *= d[static_cast<size_t>(i)];
    for (size_t i = static_cast<size_t>(axis); i < d.size(); ++i) cols *= d[i];
    const void* bias = a.inputs.size() > 2 ? a.inputs[2].data : nullptr;
    if (a.inputs[1].numel() != cols || (bias && a.inputs[2].numel() != cols))
      return no(n_, "broadcast scale/bias");
    const float eps = n_.attrFloat("epsilon", 1e-5f);
    const bool stats = (a.outputs.size() > 1 && a.outputs[1].data) || (a.outputs.size() > 2 && a.outputs[2].data);
    if (!stats && !std::getenv("RAMJET_NO_FAST_LAYERNORM")) {
      Status s = layerNormWarp(a.inputs[0].dtype, a.inputs[0].data, nullptr, a.inputs[1].data, bias, a.outputs[0].data,
                               nullptr, rows, cols, eps, S(a));
      if (s.code() != StatusCode::kUnsupported) return s;
    }
    float* mean = a.outputs.size() > 1 ? static_cast<float*>(a.outputs[1].data) : nullptr;
    float* inv = a.outputs.size() > 2 ? static_cast<float*>(a.outputs[2].data) : nullptr;
    return layerNorm(a.inputs[0].dtype, a.inputs[0].data, a.inputs[1].data, bias, a.outputs[0].data, rows, cols, eps,
                     mean, inv, S(a));
  }

 private:
  const Node& n_;
};

// ---------------------------------------------------------------- SoftmaxWeightedSum
class SoftmaxWeightedSumKernel final : public Kernel {
 public:
  explicit SoftmaxWeightedSumKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    int64_t axis = n_.attrInt("axis", 1);
    RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n_));
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= d[static_cast<size_t>(i)];
    for (size_t i = static_cast<size_t>(axis) + 1; i < d.size(); ++i) inner *= d[i];
    const int64_t k = d[static_cast<size_t>(axis)];
    if (a.inputs[1].numel() != k) return no(n_, "W has ", a.inputs[1].numel(), " weights for an axis of ", k);
    return softmaxWeightedSum(a.inputs[0].dtype, a.inputs[0].data, a.inputs[1].data, a.outputs[0].data, outer, k,
                              inner, S(a));
  }

 private:
  const Node& n_;
};

// AddLayerNorm: y = LayerNorm(x + r), s = x + r, one warp per row; unfused fallback (binary Add
// into s, or the workspace when s is not wanted, then the block LayerNorm) for other sizes.
class AddLayerNormKernel final : public Kernel {
 public:
  explicit AddLayerNormKernel(const Node& n) : n_(n) {}
  size_t workspaceBytes(const RunArgs& a) const override {
    const bool has_s = a.outputs.size() > 1 && a.outputs[1].data;
    return has_s ? 0 : a.inputs[0].nbytes();
  }
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    if (d.empty() || a.inputs[1].dims != d) return no(n_, "X and R must have the same shape");
    const int64_t cols = d.back(), rows = cols ? numElements(d) / cols : 0;
    const void* bias = a.inputs.size() > 3 ? a.inputs[3].data : nullptr;
    if (a.inputs[2].numel() != cols || (bias && a.inputs[3].numel() != cols)) return no(n_, "scale/bias size");
    void* s = a.outputs.size() > 1 ? a.outputs[1].data : nullptr;
    const float eps = n_.attrFloat("epsilon", 1e-5f);
    const DataType dt = a.inputs[0].dtype;
    Status st = layerNormWarp(dt, a.inputs[0].data, a.inputs[1].data, a.inputs[2].data, bias, a.outputs[0].data, s,
                              rows, cols, eps, S(a));
    if (st.code() != StatusCode::kUnsupported) return st;
    void* sum = s ? s : a.workspace;
    if (!sum || (!s && a.workspace_bytes < a.inputs[0].nbytes())) return no(n_, "no room for the sum");
    RJ_RETURN_IF_ERROR(binary(BinaryOp::kAdd, dt, a.inputs[0].data, d, a.inputs[1].data, d, sum, d, S(a)));
    return layerNorm(dt, sum, a.inputs[2].data, bias, a.outputs[0].data, rows, cols, eps, nullptr, nullptr, S(a));
  }

 private:
  const Node& n_;
};

int64_t knownDim(const TensorType& t, int i) {
  const Shape& s = t.shape;
  if (!s.rank_known || s.rank() == 0) return -1;
  const size_t k = i < 0 ? s.rank() + static_cast<size_t>(i) : static_cast<size_t>(i);
  return k < s.rank() && s.dims[k].known() ? s.dims[k].value : -1;
}

}  // namespace

void registerTransformerOps(CudaOpTable& t) {
  t.add("Attention",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
           if (in.size() < 3 || !isF(in[0].dtype)) return no(n, "Q must be f32/f16");
           if (in[1].dtype != in[0].dtype || in[2].dtype != in[0].dtype) return no(n, "Q, K, V types differ");
           if (in.size() > 3 && in[3].dtype != DataType::kUndefined && in[3].dtype != DataType::kBool &&
               in[3].dtype != in[0].dtype)
             return no(n, "mask type ", dataTypeName(in[3].dtype));
           if (knownDim(in[0], -1) > 128 || knownDim(in[2], -1) > 128) return no(n, "head size > 128");
           return Status::Ok();
         },
         [](const Node&, const std::vector<TensorType>& in, const std::vector<TensorType>&, Handles&) {
           const bool mask = in.size() > 3 && in[3].dtype != DataType::kUndefined;
           return attnTactics(in[0].dtype, knownDim(in[0], -1), knownDim(in[2], -1), mask);
         },
         [](const Node& n, const Tactic& t, Handles&) { return mk(new AttentionKernel(n, t)); }, nullptr});
  t.add("MultiHeadAttention",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
           if (in.size() != 3 || !isF(in[0].dtype)) return no(n, "Q must be f32/f16");
           if (in[1].dtype != in[0].dtype || in[2].dtype != in[0].dtype) return no(n, "Q, K, V types differ");
           const int64_t d = n.attrInt("head_size", 0), dv = n.attrInt("v_head_size", d);
           if (d <= 0 || dv <= 0 || d > 128 || dv > 128) return no(n, "head size ", d, "/", dv, " not in 1..128");
           return Status::Ok();
         },
         [](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&, Handles&) {
           const int64_t d = n.attrInt("head_size", 0);
           return attnTactics(in[0].dtype, d, n.attrInt("v_head_size", d), false);
         },
         [](const Node& n, const Tactic& t, Handles&) { return mk(new MhaKernel(n, t)); }, nullptr});
  t.add("FusedGemm",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
           if (!isF(in[0].dtype)) return no(n, dataTypeName(in[0].dtype), " matrix multiply");
           for (size_t i = 1; i < in.size(); ++i)
             if (in[i].dtype != DataType::kUndefined && in[i].dtype != in[0].dtype) return no(n, "mixed input types");
           return Status::Ok();
         },
         [](const Node&, const std::vector<TensorType>&, const std::vector<TensorType>&, Handles&) {
           return std::vector<Tactic>{{"cuda.fused_gemm.cublaslt", 0}, {"cuda.fused_gemm.cublaslt", 1},
                                      {"cuda.fused_gemm.cublaslt", 2}};
         },
         [](const Node& n, const Tactic& t, Handles& h) { return mk(new FusedGemmKernel(n, &h, t)); }, nullptr});
  t.add("Fp8Gemm",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out) -> Status {
           const bool codes_in = in[0].dtype == DataType::kUInt8;
           const DataType ft = codes_in ? static_cast<DataType>(n.attrInt("to", 0)) : in[0].dtype;
           if (ft != DataType::kFloat16) return no(n, dataTypeName(ft), " A (FP8 GEMMs take f16 or E4M3 codes)");
           if (in[1].dtype != DataType::kUInt8) return no(n, "W must hold E4M3 codes (uint8)");
           for (size_t i = 2; i < in.size(); ++i)
             if (in[i].dtype != DataType::kUndefined && in[i].dtype != ft) return no(n, "mixed input types");
           const bool codes_out = n.attrFloat("out_scale", 0.f) > 0.f;
           if (!out.empty() && out[0].dtype != DataType::kFloat16 && !(codes_out && out[0].dtype == DataType::kUInt8))
             return no(n, "output must be f16 (or E4M3 codes with out_scale)");
           const int64_t k = knownDim(in[1], 1), nn = knownDim(in[1], 0);
           if (k < 0 || nn < 0 || k % 16 != 0 || nn % 16 != 0)
             return no(n, "K and N must be known multiples of 16 (cuBLASLt FP8), got K=", k, " N=", nn);
           return Status::Ok();
         },
         [](const Node&, const std::vector<TensorType>&, const std::vector<TensorType>&, Handles&) {
           // RAMJET_FP8_ACCUM=precise|fast limits the candidates to one accumulation mode (both are
           // timed otherwise; "fast" is Hopper's FP8 fast accumulation).
           const char* e = std::getenv("RAMJET_FP8_ACCUM");
           const std::string acc = e ? e : "";
           if (!acc.empty() && acc != "precise" && acc != "fast")
             std::fprintf(stderr, "ramjet: RAMJET_FP8_ACCUM='%s' is neither 'precise' nor 'fast'; timing both\n", acc.c_str());
           const bool both = acc != "precise" && acc != "fast";
           std::vector<Tactic> t;
           for (int id : {0, 1, 4, 5})
             if (both || (acc == "fast") == (id >= 4)) t.push_back({"cuda.fp8_gemm.cublaslt", id});
           return t;
         },
         [](const Node& n, const Tactic& t, Handles& h) { return mk(new FusedGemmKernel(n, &h, t)); }, nullptr});
  t.add("FusedElementwise",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
           if (in.empty() || !isF(in[0].dtype)) return no(n, "inputs must be f32/f16");
           if (in.size() > 8) return no(n, in.size(), " inputs (at most 8)");
           for (const auto& t : in)
             if (t.dtype != in[0].dtype) return no(n, "mixed input types");
           auto p = ops::ewProgramFromNode(n, in.size());
           if (!p.ok()) return p.status();
           return Status::Ok();
         },
         [](const Node&, const std::vector<TensorType>&, const std::vector<TensorType>&, Handles&) {
           return std::vector<Tactic>{{"cuda.fused_elementwise.nvrtc", 0}};
         },
         [](const Node& n, const Tactic&, Handles&) -> Result<std::unique_ptr<Kernel>> {
           RJ_ASSIGN_OR_RETURN(ops::EwProgram p, ops::ewProgramFromNode(n, n.inputs.size()));
           const char* off = std::getenv("RAMJET_DISABLE_NVRTC");
           return mk(new FusedElementwiseKernel(n, std::move(p), !(off && std::string(off) == "1")));
         },
         nullptr});
  t.add("AddLayerNorm",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
           if (in.size() < 3 || !isF(in[0].dtype)) return no(n, "X must be f32/f16");
           for (size_t i = 1; i < in.size(); ++i)
             if (in[i].dtype != DataType::kUndefined && in[i].dtype != in[0].dtype) return no(n, "mixed input types");
           return Status::Ok();
         },
         nullptr, [](const Node& n, const Tactic&, Handles&) { return mk(new AddLayerNormKernel(n)); }, nullptr});
  t.add("SoftmaxWeightedSum",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
           if (in.size() != 2 || !isF(in[0].dtype)) return no(n, "X must be f32/f16");
           if (in[1].dtype != in[0].dtype) return no(n, "W and X types differ");
           return Status::Ok();
         },
         nullptr, [](const Node& n, const Tactic&, Handles&) { return mk(new SoftmaxWeightedSumKernel(n)); }, nullptr});
  t.add("LayerNormalization",
        {[](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
           if (in.empty() || !isF(in[0].dtype)) return no(n, "input must be f32/f16");
           return Status::Ok();
         },
         nullptr, [](const Node& n, const Tactic&, Handles&) { return mk(new LayerNormFastKernel(n)); }, nullptr});
}

}  // namespace ramjet::cuda
