// Device kernels of ramjet's INT8 ops (launch wrappers; kernels in int8_kernels.cu). Arithmetic
// is the shared src/precision/int8_math.h, so results match the CPU reference exactly (SiLU:
// within 1 LSB). All asynchronous on `stream`, capture-safe.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "precision/int8_math.h"
#include "ramjet/status.h"
#include "ramjet/types.h"

namespace ramjet::cuda {

// y int8 = quantize(x / scale); x f32/f16. nhwc: x is NCHW [n, c, hw] and y is NHWC.
Status int8Quantize(DataType xt, const void* x, int8_t* y, int64_t n, int64_t c, int64_t hw, bool nhwc,
                    float scale, cudaStream_t stream);
// y float (f32/f16) = q * scale. nhwc: q is NHWC [n, hw, c] and y is NCHW.
Status int8Dequantize(const int8_t* q, DataType yt, void* y, int64_t n, int64_t c, int64_t hw, bool nhwc,
                      float scale, cudaStream_t stream);

struct Im2colInt8 {
  int64_t n = 0, h = 0, w = 0, c = 0;  // NHWC input
  int64_t r = 1, s = 1, oh = 0, ow = 0;
  int64_t stride[2] = {1, 1}, pad[2] = {0, 0}, dil[2] = {1, 1};  // pad: top, left
};
// col[m - m0, (r*S + s)*C + c] for output rows m in [m0, m0 + rows); zeros where padded. C % 4 == 0.
Status im2colInt8(const int8_t* x, const Im2colInt8& p, int64_t m0, int64_t rows, int8_t* col, cudaStream_t stream);

// Epilogue over acc [rows, k] (int32) for output rows m0..m0+rows of an [M, k] result:
// v = epilogue(acc, mul[k], bias[k], residual[m, k]); int8 output (p.out_scale > 0) or float
// (yt f32/f16), row-major [M, k], or NCHW [M / hw, k, hw] when nchw.
Status int8Epilogue(const int32_t* acc, int64_t m0, int64_t rows, int64_t k, const float* mul, const float* bias,
                    const int8_t* residual, const int8::EpilogueParams& p, DataType yt, void* y, bool nchw,
                    int64_t hw, cudaStream_t stream);

}  // namespace ramjet::cuda
