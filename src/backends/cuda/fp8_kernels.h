// FP8 (E4M3) device helpers for the Fp8Gemm op (src/backends/cuda/fp8_ops.cc).
#pragma once

#include <cstdint>

#include "backends/cuda/cuda_ops.h"

namespace ramjet::cuda {

// q[i] = e4m3(x[i] * inv_scale), round to nearest even, saturating to +-448 (CUDA's
// __NV_SATFINITE; bit-exact with precision::floatToE4m3 of the same float product). x is
// f32 or f16; 16-byte vectors when n and the pointers allow.
Status fp8QuantizeE4m3(DataType dt, const void* x, uint8_t* q, int64_t n, float inv_scale, cudaStream_t stream);

// Sets each of out[i] to the E4M3 value of code i (i < 256), decoded on the device; for tests.
Status fp8DecodeAll(float* out, cudaStream_t stream);

}  // namespace ramjet::cuda
