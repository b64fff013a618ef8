// FP8 E4M3 quantization of activations (Fp8Gemm's A operand) with the hardware conversion
// (cvt.rn.satfinite.e4m3x2.f32 on sm_89+), and a decode table for the tests.
#include <cuda_fp8.h>

#include "backends/cuda/fp8_kernels.h"
#include "backends/cuda/kernels/common.cuh"

namespace ramjet::cuda {
namespace {

__device__ __forceinline__ uint16_t cvt2(float a, float b) {
  return static_cast<uint16_t>(__nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE, __NV_E4M3));
}

// Eight elements per thread: one 16-byte (f16) or two 16-byte (f32) loads, one 8-byte store.
template <typename T>
__global__ void quantize8(const T* __restrict__ x, uint8_t* __restrict__ q, int64_t n8, float inv) {
  RJ_GRID_STRIDE_LOOP(i, n8) {
    float f[8];
    if constexpr (sizeof(T) == 2) {
      const uint4 raw = reinterpret_cast<const uint4*>(x)[i];
      const __half* h = reinterpret_cast<const __half*>(&raw);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = __half2float(h[j]) * inv;
    } else {
      const float4 a = reinterpret_cast<const float4*>(x)[2 * i], b = reinterpret_cast<const float4*>(x)[2 * i + 1];
      f[0] = a.x * inv; f[1] = a.y * inv; f[2] = a.z * inv; f[3] = a.w * inv;
      f[4] = b.x * inv; f[5] = b.y * inv; f[6] = b.z * inv; f[7] = b.w * inv;
    }
    uint2 out;
    out.x = cvt2(f[0], f[1]) | (static_cast<uint32_t>(cvt2(f[2], f[3])) << 16);
    out.y = cvt2(f[4], f[5]) | (static_cast<uint32_t>(cvt2(f[6], f[7])) << 16);
    reinterpret_cast<uint2*>(q)[i] = out;
  }
}

template <typename T>
__global__ void quantize1(const T* __restrict__ x, uint8_t* __restrict__ q, int64_t n, float inv) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    q[i] = static_cast<uint8_t>(__nv_cvt_float_to_fp8(toF(x[i]) * inv, __NV_SATFINITE, __NV_E4M3));
  }
}

__global__ void decodeAll(float* out) {
  const int i = threadIdx.x;
  __half_raw h = __nv_cvt_fp8_to_halfraw(static_cast<__nv_fp8_storage_t>(i), __NV_E4M3);
  out[i] = __half2float(__half(h));
}

}  // namespace

Status fp8QuantizeE4m3(DataType dt, const void* x, uint8_t* q, int64_t n, float inv_scale, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  if (dt != DataType::kFloat16 && dt != DataType::kFloat32)
    return makeError(StatusCode::kUnsupported, "FP8 quantization of ", dataTypeName(dt));
  const bool vec = n % 8 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && reinterpret_cast<uintptr_t>(q) % 8 == 0;
  if (dt == DataType::kFloat16) {
    if (vec) quantize8<__half><<<gridFor(n / 8), kThreads, 0, stream>>>(static_cast<const __half*>(x), q, n / 8, inv_scale);
    else quantize1<__half><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const __half*>(x), q, n, inv_scale);
  } else {
    if (vec) quantize8<float><<<gridFor(n / 8), kThreads, 0, stream>>>(static_cast<const float*>(x), q, n / 8, inv_scale);
    else quantize1<float><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const float*>(x), q, n, inv_scale);
  }
  RJ_CUDA_CHECK_LAUNCH("FP8 quantize");
  return Status::Ok();
}

Status fp8DecodeAll(float* out, cudaStream_t stream) {
  decodeAll<<<1, 256, 0, stream>>>(out);
  RJ_CUDA_CHECK_LAUNCH("FP8 decode");
  return Status::Ok();
}

}  // namespace ramjet::cuda
