// CUDA handlers of ramjet's INT8 ops (registered through cuda_op_table.h):
//   Int8Quantize / Int8Dequantize: own kernels (int8_kernels.cu), NCHW<->NHWC fused.
//   QConv: int8 NHWC im2col (skipped for 1x1/stride-1/no-pad) + cuBLASLt IMMA GEMM with int32
//          accumulation + own epilogue kernel (rescale, bias, activation, residual, requantize).
//   QGemm: the same GEMM + epilogue without im2col.
//   QuantizeLinear / DequantizeLinear (ONNX, unfused in QDQ models): per-tensor int8, zero point 0.
// Rows are processed in chunks so the im2col and int32 accumulator buffers stay within a
// bounded workspace at any batch size.
#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_op_table.h"
#include "backends/cuda/int8_cudnn_conv.h"
#include "backends/cuda/int8_kernels.h"

namespace ramjet::cuda {
namespace {

using backend::Kernel;
using backend::RunArgs;
using backend::Tactic;
using backend::TensorRef;

cudaStream_t S(const RunArgs& a) { return static_cast<cudaStream_t>(a.stream); }
size_t align256(size_t b) { return (b + 255) / 256 * 256; }

int8::EpilogueParams epilogueParams(const Node& n) {
  int8::EpilogueParams p;
  p.act = static_cast<int32_t>(n.attrInt("activation", 0));
  p.alpha = n.attrFloat("alpha", 0.f);
  p.beta = n.attrFloat("beta", 0.f);
  p.act_after_residual = n.attrInt("act_after_residual", 1) != 0;
  p.res_scale = n.attrFloat("res_scale", 0.f);
  p.out_scale = n.attrFloat("out_scale", 0.f);
  return p;
}

// D[rows, n] (int32, row-major) = X[rows, k] (int8) * W[n, k]^T, as column-major
// D^T[n, rows] = W (k x n, transposed) * X^T (k x rows): cuBLASLt's "TN" IMMA form.
class Int8Gemm {
 public:
  static Result<std::unique_ptr<Int8Gemm>> create(cublasLtHandle_t h, int64_t rows, int64_t n, int64_t k,
                                                  size_t max_ws, const std::string& who) {
    std::unique_ptr<Int8Gemm> g(new Int8Gemm());
    g->h_ = h;
    RJ_CUBLAS_CHECK(cublasLtMatmulDescCreate(&g->op_, CUBLAS_COMPUTE_32I, CUDA_R_32I));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op_, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(g->op_, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    RJ_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->a_, CUDA_R_8I, k, n, k));
    RJ_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->b_, CUDA_R_8I, k, rows, k));
    RJ_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&g->c_, CUDA_R_32I, n, rows, n));
    cublasLtMatmulPreference_t pref = nullptr;
    RJ_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &max_ws, sizeof max_ws);
    cublasLtMatmulHeuristicResult_t res[4] = {};
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h, g->op_, g->a_, g->b_, g->c_, g->c_, pref, 4, res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found == 0)
      return makeError(StatusCode::kUnsupported, who, ": cuBLASLt has no int8 GEMM for rows=", rows, " n=", n,
                       " k=", k, " (", cublasLtGetStatusString(st), ")");
    g->algo_ = res[0].algo;
    g->ws_ = res[0].workspaceSize;
    return g;
  }
  ~Int8Gemm() {
    if (a_) cublasLtMatrixLayoutDestroy(a_);
    if (b_) cublasLtMatrixLayoutDestroy(b_);
    if (c_) cublasLtMatrixLayoutDestroy(c_);
    if (op_) cublasLtMatmulDescDestroy(op_);
  }
  size_t workspace() const { return ws_; }
  Status run(const int8_t* x, const int8_t* w, int32_t* d, void* ws, size_t ws_bytes, cudaStream_t s) const {
    const int32_t alpha = 1, beta = 0;
    RJ_CUBLAS_CHECK(cublasLtMatmul(h_, op_, &alpha, w, a_, x, b_, &beta, d, c_, d, c_, &algo_, ws,
                                   std::min(ws_bytes, ws_), s));
    return Status::Ok();
  }

 private:
  Int8Gemm() = default;
  cublasLtHandle_t h_ = nullptr;
  cublasLtMatmulDesc_t op_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  size_t ws_ = 0;
};

constexpr size_t kChunkBytes = size_t{64} << 20;   // im2col / accumulator chunk budget
constexpr size_t kLtWorkspace = size_t{32} << 20;

// QConv and QGemm: rows x kred int8 "A" (im2col'd or direct) times w [n, kred].
class QGemmKernel final : public Kernel {
 public:
  QGemmKernel(const Node& node, Handles* h, bool conv) : node_(node), h_(h), conv_(conv), p_(epilogueParams(node)) {}

  struct Plan {
    int64_t M = 0, N = 0, Kred = 0, chunk = 0, hw = 1;
    bool direct = true;  // A is the input itself (no im2col)
    Im2colInt8 geo;
    std::unique_ptr<Int8Gemm> full, tail;
    size_t col_bytes = 0, acc_bytes = 0, lt_bytes = 0;
    size_t workspace() const { return align256(col_bytes) + align256(acc_bytes) + lt_bytes; }
  };

  Result<Plan*> plan(const RunArgs& a) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = a.inputs[0].dims;
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second.get();
    auto p = std::make_unique<Plan>();
    const auto& xd = a.inputs[0].dims;
    const auto& wd = a.inputs[1].dims;
    p->N = wd[0];
    if (conv_) {
      if (xd.size() != 4 || wd.size() != 4) return makeError(StatusCode::kInvalidArgument, node_.describe(), ": ranks");
      auto st = node_.attrInts("strides"), pads = node_.attrInts("pads"), dil = node_.attrInts("dilations");
      Im2colInt8& g = p->geo;
      g.n = xd[0], g.h = xd[1], g.w = xd[2], g.c = xd[3], g.r = wd[1], g.s = wd[2];
      for (int i = 0; i < 2; ++i) {
        g.stride[i] = st.size() == 2 ? st[i] : 1;
        g.pad[i] = pads.size() == 4 ? pads[i] : 0;
        g.dil[i] = dil.size() == 2 ? dil[i] : 1;
      }
      const int64_t pb = pads.size() == 4 ? pads[2] : 0, pr = pads.size() == 4 ? pads[3] : 0;
      g.oh = (g.h + g.pad[0] + pb - g.dil[0] * (g.r - 1) - 1) / g.stride[0] + 1;
      g.ow = (g.w + g.pad[1] + pr - g.dil[1] * (g.s - 1) - 1) / g.stride[1] + 1;
      p->M = g.n * g.oh * g.ow;
      p->hw = g.oh * g.ow;
      p->Kred = g.r * g.s * g.c;
      p->direct = g.r == 1 && g.s == 1 && g.stride[0] == 1 && g.stride[1] == 1 && g.pad[0] == 0 && g.pad[1] == 0 &&
                  pb == 0 && pr == 0;
    } else {
      p->Kred = xd.back();
      p->M = numElements(xd) / std::max<int64_t>(p->Kred, 1);
    }
    if (p->Kred % 4 != 0 || p->N % 4 != 0)
      return makeError(StatusCode::kUnsupported, node_.describe(), ": int8 GEMM needs K and N multiples of 4");
    // Rows per chunk: both buffers within kChunkBytes, a multiple of 32 rows.
    int64_t by_acc = static_cast<int64_t>(kChunkBytes / (static_cast<size_t>(p->N) * 4));
    int64_t by_col = p->direct ? by_acc : static_cast<int64_t>(kChunkBytes / static_cast<size_t>(p->Kred));
    int64_t chunk = std::max<int64_t>(32, std::min(by_acc, by_col) / 32 * 32);
    p->chunk = std::min(chunk, p->M);
    if (p->M > 0) {
      RJ_ASSIGN_OR_RETURN(p->full, Int8Gemm::create(h_->lt->get(), p->chunk, p->N, p->Kred, kLtWorkspace, node_.describe()));
      const int64_t tail = p->M % p->chunk;
      if (tail) {
        RJ_ASSIGN_OR_RETURN(p->tail, Int8Gemm::create(h_->lt->get(), tail, p->N, p->Kred, kLtWorkspace, node_.describe()));
      }
    }
    p->col_bytes = p->direct ? 0 : static_cast<size_t>(p->chunk * p->Kred);
    p->acc_bytes = static_cast<size_t>(p->chunk * p->N) * 4;
    // The full cuBLASLt budget, not this shape's heuristic need: the runtime's workspace is sized
    // at the profile's max shapes, and a smaller shape's algorithm may want more.
    p->lt_bytes = kLtWorkspace;
    Plan* raw = p.get();
    cache_[key] = std::move(p);
    return raw;
  }

  size_t workspaceBytes(const RunArgs& a) const override {
    auto p = plan(a);
    return p.ok() ? (*p)->workspace() : 0;
  }

  Status run(const RunArgs& a) override {
    RJ_ASSIGN_OR_RETURN(Plan * p, plan(a));
    if (p->M == 0) return Status::Ok();
    if (a.workspace_bytes < p->workspace())
      return makeError(StatusCode::kInternal, node_.describe(), ": workspace ", a.workspace_bytes, " < ", p->workspace());
    auto* ws = static_cast<uint8_t*>(a.workspace);
    int8_t* col = reinterpret_cast<int8_t*>(ws);
    int32_t* acc = reinterpret_cast<int32_t*>(ws + align256(p->col_bytes));
    void* lt = ws + align256(p->col_bytes) + align256(p->acc_bytes);
    const int8_t* x = static_cast<const int8_t*>(a.inputs[0].data);
    const int8_t* w = static_cast<const int8_t*>(a.inputs[1].data);
    const float* bias = static_cast<const float*>(a.inputs[2].data);
    const float* mul = static_cast<const float*>(a.inputs[3].data);
    const int8_t* res = a.inputs.size() > 4 ? static_cast<const int8_t*>(a.inputs[4].data) : nullptr;
    const bool nchw = conv_ && p_.out_scale <= 0.f && node_.attrInt("out_nchw", 0) != 0;
    for (int64_t m0 = 0; m0 < p->M; m0 += p->chunk) {
      const int64_t rows = std::min(p->chunk, p->M - m0);
      const Int8Gemm& gemm = rows == p->chunk ? *p->full : *p->tail;
      const int8_t* A = x + m0 * p->Kred;
      if (!p->direct) {
        RJ_RETURN_IF_ERROR(im2colInt8(x, p->geo, m0, rows, col, S(a)));
        A = col;
      }
      RJ_RETURN_IF_ERROR(gemm.run(A, w, acc, lt, p->lt_bytes, S(a)));
      RJ_RETURN_IF_ERROR(int8Epilogue(acc, m0, rows, p->N, mul, bias, res, p_, a.outputs[0].dtype, a.outputs[0].data,
                                      nchw, p->hw, S(a)));
    }
    return Status::Ok();
  }

 private:
  const Node& node_;
  Handles* h_;
  bool conv_;
  int8::EpilogueParams p_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, std::unique_ptr<Plan>> cache_;
};

class QuantizeKernel final : public Kernel {
 public:
  QuantizeKernel(const Node& n, bool quantize) : n_(n), q_(quantize) {}
  Status run(const RunArgs& a) override {
    const float scale = n_.attrFloat("scale", 0.f);
    const bool nhwc = n_.attrInt("nhwc", 0) != 0;
    const auto& d = q_ ? a.inputs[0].dims : a.outputs[0].dims;  // the NCHW side
    int64_t n = 1, c = 1, hw = numElements(d);
    if (nhwc) {
      if (d.size() != 4) return makeError(StatusCode::kInvalidArgument, n_.describe(), ": nhwc needs rank 4");
      n = d[0], c = d[1], hw = d[2] * d[3];
    }
    if (q_)
      return int8Quantize(a.inputs[0].dtype, a.inputs[0].data, static_cast<int8_t*>(a.outputs[0].data), n, c, hw, nhwc,
                          scale, S(a));
    return int8Dequantize(static_cast<const int8_t*>(a.inputs[0].data), a.outputs[0].dtype, a.outputs[0].data, n, c, hw,
                          nhwc, scale, S(a));
  }

 private:
  const Node& n_;
  bool q_;
};

// ONNX QuantizeLinear / DequantizeLinear left unfused (QDQ models): per-tensor int8 with zero
// point 0, the scale a constant read on the host. Same formulas as Int8Quantize/Dequantize.
class OnnxQdqKernel final : public Kernel {
 public:
  OnnxQdqKernel(const Node& n, bool quantize) : n_(n), q_(quantize) {}
  Status run(const RunArgs& a) override {
    if (!a.inputs[1].host || a.inputs[1].host->numel() != 1)
      return makeError(StatusCode::kUnsupported, n_.describe(), ": scale must be a constant scalar");
    const float scale = static_cast<float>(a.inputs[1].host->getDouble(0));
    const int64_t n = a.outputs[0].numel();
    if (q_)
      return int8Quantize(a.inputs[0].dtype, a.inputs[0].data, static_cast<int8_t*>(a.outputs[0].data), 1, 1, n, false,
                          scale, S(a));
    return int8Dequantize(static_cast<const int8_t*>(a.inputs[0].data), a.outputs[0].dtype, a.outputs[0].data, 1, 1, n,
                          false, scale, S(a));
  }

 private:
  const Node& n_;
  bool q_;
};

// Ok for per-tensor symmetric int8 Q/DQ (what OnnxQdqKernel runs).
Status onnxQdqSupported(const Node& n, bool quantize, const std::vector<TensorType>& in, const std::vector<TensorType>& out) {
  auto no = [&](const char* why) { return makeError(StatusCode::kUnsupported, n.describe(), ": ", why); };
  if (n.inputs.size() < 2 || !n.inputs[1] || !n.inputs[1]->constant || n.inputs[1]->constant->numel() != 1 ||
      n.inputs[1]->constant->dtype() != DataType::kFloat32)
    return no("only a constant scalar float32 scale (per-tensor) runs on CUDA");
  if (n.hasInput(2)) {
    const Value* zp = n.inputs[2];
    if (!zp->constant || zp->constant->dtype() != DataType::kInt8 || zp->constant->numel() != 1 || zp->constant->getInt(0) != 0)
      return no("only int8 with zero point 0 runs on CUDA");
  } else if (quantize) {
    return no("QuantizeLinear without a zero point outputs uint8, which has no CUDA kernel");
  }
  if (quantize && (out[0].dtype != DataType::kInt8 || (in[0].dtype != DataType::kFloat32 && in[0].dtype != DataType::kFloat16)))
    return no("f32/f16 -> int8 only");
  if (!quantize && (in[0].dtype != DataType::kInt8 || (out[0].dtype != DataType::kFloat32 && out[0].dtype != DataType::kFloat16)))
    return no("int8 -> f32/f16 only");
  return Status::Ok();
}

Status noSupport(const Node& n, const std::string& why) {
  return makeError(StatusCode::kUnsupported, n.describe(), ": ", why);
}

bool f16or32(DataType d) { return d == DataType::kFloat32 || d == DataType::kFloat16; }

}  // namespace

void registerInt8Ops(CudaOpTable& t) {
  CudaOpHandler q;
  q.supports = [](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) {
    return f16or32(in[0].dtype) ? Status::Ok() : noSupport(n, "input must be f32/f16");
  };
  q.tactics = [](const Node&, const std::vector<TensorType>&, const std::vector<TensorType>&, Handles&) {
    return std::vector<Tactic>{Tactic{"cuda.int8.quantize", 0}};
  };
  q.create = [](const Node& n, const Tactic&, Handles&) -> Result<std::unique_ptr<Kernel>> {
    return std::unique_ptr<Kernel>(new QuantizeKernel(n, true));
  };
  t.add("Int8Quantize", q);
  CudaOpHandler dq;
  dq.supports = [](const Node& n, const std::vector<TensorType>&, const std::vector<TensorType>& out) {
    return f16or32(out[0].dtype) ? Status::Ok() : noSupport(n, "output must be f32/f16");
  };
  dq.tactics = q.tactics;
  dq.create = [](const Node& n, const Tactic&, Handles&) -> Result<std::unique_ptr<Kernel>> {
    return std::unique_ptr<Kernel>(new QuantizeKernel(n, false));
  };
  t.add("Int8Dequantize", dq);
  for (bool quantize : {true, false}) {
    CudaOpHandler h;
    h.supports = [quantize](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out) {
      return onnxQdqSupported(n, quantize, in, out);
    };
    h.create = [quantize](const Node& n, const Tactic&, Handles&) -> Result<std::unique_ptr<Kernel>> {
      return std::unique_ptr<Kernel>(new OnnxQdqKernel(n, quantize));
    };
    h.reads_on_host = [](const Node&, size_t i) { return i >= 1; };
    t.add(quantize ? "QuantizeLinear" : "DequantizeLinear", h);
  }
  for (const char* op : {"QConv", "QGemm"}) {
    const bool conv = std::string(op) == "QConv";
    CudaOpHandler g;
    g.supports = [conv](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out) {
      if (in[0].dtype != DataType::kInt8 || in[1].dtype != DataType::kInt8) return noSupport(n, "x and w must be int8");
      if (out[0].dtype != DataType::kInt8 && !f16or32(out[0].dtype)) return noSupport(n, "output must be int8/f16/f32");
      if (!n.inputs[1] || !n.inputs[1]->constant) return noSupport(n, "weights must be constant");
      const Tensor& w = *n.inputs[1]->constant;
      if (w.dim(0) % 4 != 0 || w.dim(-1) % 4 != 0) return noSupport(n, "channels must be multiples of 4");
      (void)conv;
      return Status::Ok();
    };
    // QConv: cuDNN's fused int8 graph engines and the im2col + IMMA path, timed against each
    // other; RAMJET_INT8_CONV_TACTIC=cudnn|cublaslt keeps one (tests check both).
    g.tactics = [conv](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out, Handles& h) {
      const Tactic lt{std::string("cuda.int8.") + (conv ? "conv" : "gemm") + ".cublaslt", 0};
      if (!conv) return std::vector<Tactic>{lt};
      const char* env = std::getenv("RAMJET_INT8_CONV_TACTIC");
      const std::string force = env ? env : "";
      std::vector<Tactic> t;
      if (force != "cublaslt") t = int8ConvCudnnTactics(n, in, out, h);
      if (force != "cudnn" || t.empty()) t.push_back(lt);
      return t;
    };
    g.create = [conv](const Node& n, const Tactic& t, Handles& h) -> Result<std::unique_ptr<Kernel>> {
      std::unique_ptr<Kernel> k(new QGemmKernel(n, &h, conv));
      if (conv && t.name == kInt8ConvCudnnTactic) return makeInt8ConvCudnnKernel(n, t, &h, std::move(k));
      return k;
    };
    t.add(op, g);
  }
}

}  // namespace ramjet::cuda
