// Kernels of the transformer family (transformer_ops.cc): fused attention over strided views,
// the generic FusedElementwise interpreter (the NVRTC fallback) and a row-per-warp LayerNorm.
// Same rules as cuda_ops.h: raw device pointers, asynchronous on `stream`, capture-safe.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "ops/elementwise_program.h"
#include "ramjet/status.h"
#include "ramjet/types.h"

namespace ramjet::cuda {

// A [batch, heads, seq, dim] view of a tensor: element (b, h, s, c) is at
// data + b*stride_b + h*stride_h + s*stride_s + c (element strides; the last dim is contiguous).
struct AttnView {
  const void* data = nullptr;
  int64_t stride_b = 0, stride_h = 0, stride_s = 0;
};

struct AttnParams {
  int64_t batch = 1, heads = 1, sq = 0, sk = 0, d = 0, dv = 0;
  float scale = 1.f;
  // Optional mask (additive of the tensors' type, or bool where false excludes a key): element
  // (b, h, i, j) at mask + b*mask_sb + h*mask_sh + i*mask_sq + j.
  const void* mask = nullptr;
  bool mask_bool = false;
  int64_t mask_sb = 0, mask_sh = 0, mask_sq = 0;
};

// kTensorCore: WMMA kernel; kMma: mma.sync flash-attention-2 kernel (sm_80+); kAuto: kMma where
// the GPU has it, else WMMA, for eligible parameters, else SIMT.
enum class AttnAlgo { kAuto = 0, kTensorCore = 1, kSimt = 2, kMma = 3 };
// True when the tensor-core (WMMA, FP16 in / FP32 accumulate) kernel takes these parameters:
// fp16, no mask, d == dv in {32, 64, 128}.
bool attentionTensorCoreEligible(DataType dt, const AttnParams& p);
// O = softmax(Q·Kᵀ·scale + mask)·V per (b, h), online softmax in FP32 (flash-attention style,
// nothing of size sq*sk is materialised). f32/f16; d, dv <= 128 (kUnsupported above).
Status attention(DataType dt, const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o,
                 const AttnParams& p, AttnAlgo algo, cudaStream_t stream);

// FusedElementwise interpreted on the device (no NVRTC): out[out_dims] = program(inputs broadcast
// to out_dims). At most 8 inputs, 64 instructions, rank 8. f32/f16.
Status fusedElementwiseInterpreted(DataType dt, const ops::EwProgram& prog, const std::vector<const void*>& inputs,
                                   const std::vector<std::vector<int64_t>>& in_dims, void* out,
                                   const std::vector<int64_t>& out_dims, cudaStream_t stream);

// LayerNorm over rows of `cols` with one warp per row, 16-byte loads (fp16 cols % 8 == 0, f32
// cols % 4 == 0, cols <= 4096); kUnsupported otherwise (the caller uses cuda::layerNorm).
// residual (optional, same shape as x): normalises x + residual and, when sum_out is non-null,
// writes x + residual there too.
Status layerNormWarp(DataType dt, const void* x, const void* residual, const void* scale, const void* bias,
                     void* y, void* sum_out, int64_t rows, int64_t cols, float epsilon, cudaStream_t stream);

// y[o, i] = sum_j softmax_j(x[o, :, i]) * w[j] over x [outer, k, inner], w k values of x's type
// (f32/f16); FP32 statistics.
Status softmaxWeightedSum(DataType dt, const void* x, const void* w, void* y, int64_t outer, int64_t k,
                          int64_t inner, cudaStream_t stream);

}  // namespace ramjet::cuda
