// GEMM / batched MatMul through cuBLASLt, row-major from the caller's point of view:
//   D[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b]  (+ bias[n] per column, then activation)
// A is [m,k] ([k,m] when trans_a), B is [k,n] ([n,k] when trans_b), C and D are [m,n]; all
// dense row-major. batch > 1 uses strided batches; a stride of 0 broadcasts that operand
// (e.g. MatMul [B,M,K] x [K,N]). FP32 (optionally TF32) or FP16 with FP32 accumulation, or E4M3
// operands with an FP16/BF16 result (GemmDesc::fp8_inputs).
// Workspace is always passed by the caller (capture-safe); candidates are exposed for
// autotuning and their opaque algo bytes can be stored in a plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cuda_ops.h"

struct cublasLtContext;
typedef struct cublasLtContext* cublasLtHandle_t;

namespace ramjet::cuda {

class CublasLtHandle {
 public:
  static Result<std::unique_ptr<CublasLtHandle>> create();
  ~CublasLtHandle();
  cublasLtHandle_t get() const { return h_; }
  static size_t version();  // cublasLtGetVersion()

 private:
  CublasLtHandle() = default;
  cublasLtHandle_t h_ = nullptr;
};

enum class GemmEpilogue { kNone, kRelu, kGelu /* tanh approximation, as cuBLASLt */ };

struct GemmDesc {
  DataType dtype = DataType::kFloat32;  // A, B, C, D and bias (kFloat32 or kFloat16)
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t batch = 1;
  int64_t stride_a = -1, stride_b = -1, stride_c = -1;  // elements; -1 = dense (m*k, k*n, m*n)
  bool has_bias = false;                 // bias[n] added to every row
  GemmEpilogue epilogue = GemmEpilogue::kNone;
  bool allow_tf32 = true;
  // FP8: A and B hold E4M3 codes (1 byte each), dtype is C/D/bias (kFloat16 or kBFloat16); needs
  // trans_b && !trans_a (cuBLASLt's "TN", K-contiguous operands) and sm_89+. fast_accum: Hopper's
  // faster, less precise FP8 accumulation (CUBLASLT_MATMUL_DESC_FAST_ACCUM).
  bool fp8_inputs = false;
  bool fast_accum = false;
  // With fp8_inputs: D holds E4M3 codes of d_scale * result (C and bias stay `dtype`);
  // d_scale is a device pointer to one float (cuBLASLt reads it at run time).
  bool fp8_output = false;
  const float* d_scale = nullptr;
  std::string name;
};

// A candidate algorithm: cuBLASLt's opaque cublasLtMatmulAlgo_t (64 bytes) + its workspace.
struct GemmAlgo {
  uint64_t data[8] = {};
  size_t workspace = 0;
  float waves = 0;
  std::string toString() const;
};

class CublasLtGemm {
 public:
  static Result<std::unique_ptr<CublasLtGemm>> create(cublasLtHandle_t handle, const GemmDesc& d);
  ~CublasLtGemm();
  const GemmDesc& desc() const { return desc_; }
  // Up to `max_count` heuristic candidates needing at most `max_workspace` bytes; best first.
  Result<std::vector<GemmAlgo>> candidates(int max_count, size_t max_workspace) const;
  // D = alpha*op(A)op(B) + beta*C (+bias, epilogue). C may be null when beta == 0; C may equal D.
  Status run(const GemmAlgo& algo, const void* a, const void* b, const void* c, void* d,
             const void* bias, float alpha, float beta, void* workspace, size_t workspace_bytes,
             cudaStream_t stream) const;

 private:
  CublasLtGemm() = default;
  struct Impl;
  GemmDesc desc_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ramjet::cuda
