// cuBLASLt GEMM. Row-major D[m,n] = op(A) op(B) is computed as the column-major product
// D^T[n,m] = op(B)^T op(A)^T, so B is cuBLASLt's first operand and bias[n] is the per-row
// bias of cuBLASLt's epilogue.
#include "backends/cuda/cublaslt_gemm.h"

#include <cublasLt.h>

#include <cstring>
#include <sstream>

#include "backends/cuda/cuda_check.h"

namespace ramjet::cuda {

Result<std::unique_ptr<CublasLtHandle>> CublasLtHandle::create() {
  std::unique_ptr<CublasLtHandle> h(new CublasLtHandle());
  RJ_CUBLAS_CHECK(cublasLtCreate(&h->h_));
  return h;
}
CublasLtHandle::~CublasLtHandle() {
  if (h_) cublasLtDestroy(h_);
}
size_t CublasLtHandle::version() { return cublasLtGetVersion(); }

std::string GemmAlgo::toString() const {
  std::ostringstream os;
  os << "cublaslt_algo=" << std::hex;
  for (int i = 0; i < 8; ++i) os << (i ? ":" : "") << data[i];
  os << std::dec << " ws=" << workspace << " waves=" << waves;
  return os.str();
}

struct CublasLtGemm::Impl {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;  // cuBLASLt's A (our B), B (our A), C/D
  cublasLtMatrixLayout_t dl = nullptr;                             // D when its type differs from C's (FP8 output)
  cublasLtMatrixLayout_t dlay() const { return dl ? dl : c; }
  int64_t m = 0, n = 0, k = 0, batch = 1, sa = 0, sb = 0, sc = 0;
  bool loop_batches = false;  // cuBLASLt refused the strided batch: one launch per batch
  size_t esize = 4, ab_esize = 4;  // bytes per element of C/D and of A/B
  cudaDataType_t ab_type = CUDA_R_32F, cd_type = CUDA_R_32F;
  Status makeLayouts(const GemmDesc& d, bool batched);
  ~Impl() { destroyLayouts(); if (op) cublasLtMatmulDescDestroy(op); }
  void destroyLayouts() {
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (dl) cublasLtMatrixLayoutDestroy(dl);
    a = b = c = dl = nullptr;
  }
};

CublasLtGemm::~CublasLtGemm() = default;

Result<std::unique_ptr<CublasLtGemm>> CublasLtGemm::create(cublasLtHandle_t handle, const GemmDesc& d) {
  const std::string who = d.name.empty() ? std::string("MatMul") : d.name;
  if (d.fp8_inputs) {
    if (d.dtype != DataType::kFloat16 && d.dtype != DataType::kBFloat16)
      return makeError(StatusCode::kUnsupported, who, ": FP8 GEMM with a ", dataTypeName(d.dtype), " result");
    if (!d.trans_b || d.trans_a)
      return makeError(StatusCode::kUnsupported, who, ": FP8 GEMM needs A [m,k] and B [n,k] (K-contiguous operands)");
    if (d.fp8_output && (!d.d_scale || d.batch != 1))
      return makeError(StatusCode::kInvalidArgument, who, ": FP8 output needs a device scale and batch 1");
  } else if (d.fp8_output) {
    return makeError(StatusCode::kUnsupported, who, ": FP8 output needs FP8 inputs");
  } else if (d.dtype != DataType::kFloat32 && d.dtype != DataType::kFloat16) {
    return makeError(StatusCode::kUnsupported, who, ": cuBLASLt GEMM of ", dataTypeName(d.dtype));
  }
  if (d.m < 0 || d.n < 0 || d.k < 0 || d.batch < 0)
    return makeError(StatusCode::kInvalidArgument, who, ": negative GEMM size m=", d.m, " n=", d.n,
                     " k=", d.k, " batch=", d.batch);
  std::unique_ptr<CublasLtGemm> g(new CublasLtGemm());
  g->desc_ = d;
  g->impl_ = std::make_unique<Impl>();
  Impl& im = *g->impl_;
  im.handle = handle;
  im.m = d.m; im.n = d.n; im.k = d.k; im.batch = d.batch;
  im.sa = d.stride_a < 0 ? d.m * d.k : d.stride_a;
  im.sb = d.stride_b < 0 ? d.k * d.n : d.stride_b;
  im.sc = d.stride_c < 0 ? d.m * d.n : d.stride_c;
  im.esize = dataTypeSize(d.dtype);
  im.ab_esize = d.fp8_inputs ? 1 : im.esize;
  im.cd_type = d.dtype == DataType::kFloat16 ? CUDA_R_16F : d.dtype == DataType::kBFloat16 ? CUDA_R_16BF : CUDA_R_32F;
  im.ab_type = d.fp8_inputs ? CUDA_R_8F_E4M3 : im.cd_type;
  // [B,M,K] x [K,N] with a shared B: fold the batch into M (one big GEMM).
  if (im.batch > 1 && im.sb == 0 && !d.trans_a && im.sa == im.m * im.k && im.sc == im.m * im.n) {
    im.m *= im.batch;
    im.batch = 1;
  }
  if (im.m == 0 || im.n == 0) return g;
  const cudaDataType_t dt = im.cd_type;
  cublasComputeType_t ct = (d.dtype == DataType::kFloat32 && d.allow_tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                                          : CUBLAS_COMPUTE_32F;
  RJ_CUBLAS_CHECK(cublasLtMatmulDescCreate(&im.op, ct, CUDA_R_32F));
  cublasOperation_t opA = d.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt A = our B
  cublasOperation_t opB = d.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt B = our A
  RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(im.op, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
  RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(im.op, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (d.has_bias)
    epi = d.epilogue == GemmEpilogue::kRelu ? CUBLASLT_EPILOGUE_RELU_BIAS
        : d.epilogue == GemmEpilogue::kGelu ? CUBLASLT_EPILOGUE_GELU_BIAS
                                            : CUBLASLT_EPILOGUE_BIAS;
  else
    epi = d.epilogue == GemmEpilogue::kRelu ? CUBLASLT_EPILOGUE_RELU
        : d.epilogue == GemmEpilogue::kGelu ? CUBLASLT_EPILOGUE_GELU
                                            : CUBLASLT_EPILOGUE_DEFAULT;
  RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(im.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  if (d.fp8_inputs) {
    const int8_t fast = d.fast_accum ? 1 : 0;
    RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(im.op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof(fast)));
    if (d.fp8_output)
      RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(im.op, CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, &d.d_scale, sizeof(d.d_scale)));
  }
  if (d.has_bias) {
    RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(im.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &dt, sizeof(dt)));
  }
  RJ_RETURN_IF_ERROR(im.makeLayouts(d, true));
  return g;
}

Status CublasLtGemm::Impl::makeLayouts(const GemmDesc& d, bool batched) {
  Impl* im = this;
  im->destroyLayouts();
  // cuBLASLt A (our B): opN -> n x k, ld n; opT -> k x n, ld k.
  uint64_t ar = d.trans_b ? im->k : im->n, ac = d.trans_b ? im->n : im->k;
  uint64_t br = d.trans_a ? im->m : im->k, bc = d.trans_a ? im->k : im->m;
  RJ_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&im->a, im->ab_type, ar, ac, static_cast<int64_t>(ar)));
  RJ_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&im->b, im->ab_type, br, bc, static_cast<int64_t>(br)));
  RJ_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&im->c, im->cd_type, im->n, im->m, im->n));
  if (d.fp8_output) RJ_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&im->dl, CUDA_R_8F_E4M3, im->n, im->m, im->n));
  if (batched && im->batch > 1) {
    int32_t bc32 = static_cast<int32_t>(im->batch);
    for (auto* l : {im->a, im->b, im->c})
      RJ_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc32, sizeof(bc32)));
    int64_t s_a = im->sb, s_b = im->sa, s_c = im->sc;  // swapped roles
    RJ_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(im->a, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s_a, sizeof(s_a)));
    RJ_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(im->b, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s_b, sizeof(s_b)));
    RJ_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(im->c, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &s_c, sizeof(s_c)));
  }
  return Status::Ok();
}

Result<std::vector<GemmAlgo>> CublasLtGemm::candidates(int max_count, size_t max_workspace) const {
  Impl& im = *impl_;
  const std::string who = desc_.name.empty() ? std::string("MatMul") : desc_.name;
  if (im.m == 0 || im.n == 0) return std::vector<GemmAlgo>{GemmAlgo{}};  // nothing to compute
  if (max_count < 1) max_count = 1;
  cublasLtMatmulPreference_t pref = nullptr;
  RJ_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  uint64_t ws = max_workspace;
  cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
  std::vector<cublasLtMatmulHeuristicResult_t> res(max_count);
  int got = 0;
  auto query = [&]() {
    got = 0;
    return cublasLtMatmulAlgoGetHeuristic(im.handle, im.op, im.a, im.b, im.c, im.dlay(), pref, max_count,
                                          res.data(), &got);
  };
  if (st == CUBLAS_STATUS_SUCCESS) st = query();
  if ((st != CUBLAS_STATUS_SUCCESS || got == 0) && im.batch > 1 && !im.loop_batches) {
    // Some batch strides (0 = broadcast) are refused: fall back to one GEMM per batch.
    Status ls = im.makeLayouts(desc_, false);
    if (!ls.ok()) { cublasLtMatmulPreferenceDestroy(pref); return ls; }
    im.loop_batches = true;
    st = query();
  }
  cublasLtMatmulPreferenceDestroy(pref);
  RJ_CUBLAS_CHECK(st);
  std::vector<GemmAlgo> out;
  for (int i = 0; i < got; ++i) {
    if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
    GemmAlgo a;
    static_assert(sizeof(a.data) == sizeof(res[i].algo), "cublasLtMatmulAlgo_t size changed");
    std::memcpy(a.data, &res[i].algo, sizeof(a.data));
    a.workspace = res[i].workspaceSize;
    a.waves = res[i].wavesCount;
    out.push_back(a);
  }
  if (out.empty())
    return makeError(StatusCode::kUnsupported, who, ": cuBLASLt has no algorithm for m=", desc_.m, " n=",
                     desc_.n, " k=", desc_.k, " batch=", desc_.batch, " within ", max_workspace,
                     " bytes of workspace");
  return out;
}

Status CublasLtGemm::run(const GemmAlgo& algo, const void* a, const void* b, const void* c, void* d,
                         const void* bias, float alpha, float beta, void* workspace,
                         size_t workspace_bytes, cudaStream_t stream) const {
  const Impl& im = *impl_;
  const std::string who = desc_.name.empty() ? std::string("MatMul") : desc_.name;
  if (im.m == 0 || im.n == 0 || im.batch == 0) return Status::Ok();
  if (workspace_bytes < algo.workspace)
    return makeError(StatusCode::kInvalidArgument, who, ": workspace of ", workspace_bytes,
                     " bytes, algorithm needs ", algo.workspace);
  if (desc_.has_bias && !bias) return makeError(StatusCode::kInvalidArgument, who, ": bias pointer is null");
  if (beta != 0.f && !c) return makeError(StatusCode::kInvalidArgument, who, ": beta != 0 needs C");
  if (!c) c = d;
  if (im.k == 0) {
    // Empty reduction: D = beta*C (+bias, epilogue); cuBLASLt may not accept k=0.
    if (beta == 0.f && !desc_.has_bias && desc_.epilogue == GemmEpilogue::kNone) {
      RJ_CUDA_CHECK(cudaMemsetAsync(d, 0, static_cast<size_t>(im.m * im.n * im.batch) * im.esize, stream));
      return Status::Ok();
    }
    return makeError(StatusCode::kUnsupported, who, ": k=0 with beta/bias/epilogue");
  }
  if (desc_.has_bias)
    RJ_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(im.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  cublasLtMatmulAlgo_t al;
  std::memcpy(&al, algo.data, sizeof(al));
  if (!im.loop_batches) {
    RJ_CUBLAS_CHECK(cublasLtMatmul(im.handle, im.op, &alpha, b, im.a, a, im.b, &beta, c, im.c, d, im.dlay(),
                                   &al, workspace, workspace_bytes, stream));
    return Status::Ok();
  }
  for (int64_t i = 0; i < im.batch; ++i) {
    const char* pa = static_cast<const char*>(a) + i * im.sa * im.ab_esize;
    const char* pb = static_cast<const char*>(b) + i * im.sb * im.ab_esize;
    const char* pc = static_cast<const char*>(c) + i * im.sc * im.esize;
    char* pd = static_cast<char*>(d) + i * im.sc * im.esize;
    RJ_CUBLAS_CHECK(cublasLtMatmul(im.handle, im.op, &alpha, pb, im.a, pa, im.b, &beta, pc, im.c, pd, im.c,
                                   &al, workspace, workspace_bytes, stream));
  }
  return Status::Ok();
}

}  // namespace ramjet::cuda
