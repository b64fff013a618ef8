// Kernel library for the "more ops" family (kernels/more_ops.cu): the long tail of ONNX
// inference ops that real exported models use (gather/scatter variants, CumSum, Trilu,
// OneHot, Hardmax, LpNormalization, extra unary math, integer Clip, bit ops, fills).
// Same contract as cuda_ops.h: raw device pointers, dense row-major dims, asynchronous on
// `stream`, capture-safe (no allocation, no host sync), Status on bad arguments, empty
// tensors launch nothing, 16-bit floats computed in float.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "ramjet/status.h"
#include "ramjet/types.h"

namespace ramjet::cuda::more {

// ---------------------------------------------------------------- elementwise (f32/f16)
enum class Unary {
  kTan, kAsin, kAcos, kAtan, kSinh, kCosh, kAsinh, kAcosh, kAtanh, kSoftsign,
  kCelu,             // alpha
  kThresholdedRelu,  // alpha
  kShrink,           // alpha = bias, beta = lambd
};
Status unary(Unary op, DataType dtype, const void* x, void* y, int64_t n, float alpha, float beta,
             cudaStream_t stream);
// y = x * s (Mean of Sum); f32/f16.
Status scale(DataType dtype, const void* x, void* y, int64_t n, float s, cudaStream_t stream);
// y = clamp(x, lo, hi) for integer types (i8, u8, i16, u16, i32, u32, i64, u64).
Status clipInt(DataType dtype, const void* x, void* y, int64_t n, int64_t lo, int64_t hi,
               cudaStream_t stream);
// IsNaN (is_inf false) or IsInf (with the sign filters) of f32/f16 -> bool.
Status isNanInf(DataType dtype, const void* x, bool* y, int64_t n, bool is_inf, bool detect_pos,
                bool detect_neg, cudaStream_t stream);
// Not (bool) / BitwiseNot (integers).
Status logicalNot(DataType dtype, const void* x, void* y, int64_t n, cudaStream_t stream);
enum class IntBinary { kShiftLeft, kShiftRight, kBitAnd, kBitOr, kBitXor };
// Broadcasting integer binary op (dims right-aligned against out_dims, rank <= 8).
Status intBinary(IntBinary op, DataType dtype, const void* a, const std::vector<int64_t>& a_dims,
                 const void* b, const std::vector<int64_t>& b_dims, void* out,
                 const std::vector<int64_t>& out_dims, cudaStream_t stream);

// ---------------------------------------------------------------- fills
// n elements of `elem_size` bytes, each set to the bytes at `value` (host memory).
Status fill(size_t elem_size, const void* value, void* y, int64_t n, cudaStream_t stream);
// y[i] = start + i * delta in dtype (f32, f16, i16, i32, i64).
Status range(DataType dtype, double start, double delta, void* y, int64_t n, cudaStream_t stream);

// ---------------------------------------------------------------- indexing (any dtype by size)
// GatherElements: out[idx dims] with the axis coordinate taken from indices (i32/i64, negative
// from the end). An out-of-range index writes zero bytes.
Status gatherElements(size_t elem_size, const void* data, const std::vector<int64_t>& data_dims,
                      DataType index_dtype, const void* indices,
                      const std::vector<int64_t>& index_dims, int axis, void* out,
                      cudaStream_t stream);
enum class ScatterReduction { kNone, kAdd, kMul, kMax, kMin };
// ScatterElements: out = data, then out[... idx ...] (op)= updates. kNone: any dtype; the
// reductions: f32 only (atomics; kMul unsupported). out may alias data.
Status scatterElements(DataType dtype, const void* data, const std::vector<int64_t>& data_dims,
                       DataType index_dtype, const void* indices,
                       const std::vector<int64_t>& index_dims, const void* updates, int axis,
                       ScatterReduction red, void* out, cudaStream_t stream);
// GatherND with batch_dims; indices int64 [..., k].
Status gatherND(size_t elem_size, const void* data, const std::vector<int64_t>& data_dims,
                const int64_t* indices, const std::vector<int64_t>& index_dims, int batch_dims,
                void* out, cudaStream_t stream);
// ScatterND: out = data, then out[idx] (op)= update slices; same dtype rules as
// scatterElements.
Status scatterND(DataType dtype, const void* data, const std::vector<int64_t>& data_dims,
                 const int64_t* indices, const std::vector<int64_t>& index_dims,
                 const void* updates, ScatterReduction red, void* out, cudaStream_t stream);

// ---------------------------------------------------------------- scans and masks
// CumSum along the middle dim of x[outer, len, inner]; f32, f16, i32, i64.
Status cumSum(DataType dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
              bool exclusive, bool reverse, cudaStream_t stream);
// Trilu on x[batch, rows, cols]: keeps j - i >= k (upper) or j - i <= k (lower), zeros elsewhere.
Status trilu(size_t elem_size, const void* x, void* y, int64_t batch, int64_t rows, int64_t cols,
             int64_t k, bool upper, cudaStream_t stream);
// OneHot: indices [outer, inner] (any numeric dtype, cast to integer; negative + depth) ->
// out [outer, depth, inner] of values' element size; values = device [off, on].
Status oneHot(DataType index_dtype, const void* indices, int64_t outer, int64_t inner,
              int64_t depth, size_t elem_size, const void* values, void* out, cudaStream_t stream);

// ---------------------------------------------------------------- row ops on x[outer, len, inner]
// Hardmax: 1 at the first maximum along len, 0 elsewhere.
Status hardmax(DataType dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
               cudaStream_t stream);
// LpNormalization: x / ||x||_p along len (p = 1 or 2; a zero norm gives 0).
Status lpNormalize(DataType dtype, const void* x, void* y, int64_t outer, int64_t len,
                   int64_t inner, int p, cudaStream_t stream);

}  // namespace ramjet::cuda::more
