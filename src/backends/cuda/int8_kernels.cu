// INT8 device kernels: (de)quantization with an optional NCHW<->NHWC transpose through shared
// memory tiles, int8 NHWC im2col (4 channels per thread), and the GEMM epilogue (per-channel
// rescale, bias, activation, int8 residual, requantization). Formulas: precision/int8_math.h.
#include "backends/cuda/int8_kernels.h"
#include "backends/cuda/kernels/common.cuh"

namespace ramjet::cuda {
namespace {

constexpr int kTile = 32;

template <typename T>
__global__ void quantizeFlat(const T* x, int8_t* y, int64_t n, float scale) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = int8::quantizeInt8(toF(x[i]), scale);
}

// x [n][c][hw] -> y [n][hw][c]
template <typename T>
__global__ void quantizeNhwc(const T* x, int8_t* y, int c, int hw, float scale) {
  __shared__ int8_t tile[kTile][kTile + 1];
  const int64_t base = static_cast<int64_t>(blockIdx.z) * c * hw;
  const int s0 = blockIdx.x * kTile, c0 = blockIdx.y * kTile;
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    int ch = c0 + i, s = s0 + threadIdx.x;
    if (ch < c && s < hw) tile[i][threadIdx.x] = int8::quantizeInt8(toF(x[base + static_cast<int64_t>(ch) * hw + s]), scale);
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    int s = s0 + i, ch = c0 + threadIdx.x;
    if (ch < c && s < hw) y[base + static_cast<int64_t>(s) * c + ch] = tile[threadIdx.x][i];
  }
}

template <typename T>
__global__ void dequantizeFlat(const int8_t* q, T* y, int64_t n, float scale) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = fromF<T>(int8::dequantizeInt8(q[i], scale));
}

// q [n][hw][c] -> y [n][c][hw]
template <typename T>
__global__ void dequantizeNhwc(const int8_t* q, T* y, int c, int hw, float scale) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t base = static_cast<int64_t>(blockIdx.z) * c * hw;
  const int s0 = blockIdx.x * kTile, c0 = blockIdx.y * kTile;
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    int s = s0 + i, ch = c0 + threadIdx.x;
    if (ch < c && s < hw) tile[i][threadIdx.x] = int8::dequantizeInt8(q[base + static_cast<int64_t>(s) * c + ch], scale);
  }
  __syncthreads();
  for (int i = threadIdx.y; i < kTile; i += blockDim.y) {
    int ch = c0 + i, s = s0 + threadIdx.x;
    if (ch < c && s < hw) y[base + static_cast<int64_t>(ch) * hw + s] = fromF<T>(tile[threadIdx.x][i]);
  }
}

__global__ void im2colKernel(const int8_t* __restrict__ x, Im2colInt8 p, int64_t m0, int64_t rows,
                             int32_t* __restrict__ col) {
  const int64_t c4n = p.c / 4, per_row = p.r * p.s * c4n, total = rows * per_row;
  const int64_t ohw = p.oh * p.ow;
  RJ_GRID_STRIDE_LOOP(i, total) {
    const int64_t row = i / per_row, rem = i - row * per_row;
    const int64_t rs = rem / c4n, c4 = rem - rs * c4n;
    const int64_t r = rs / p.s, s = rs - r * p.s;
    const int64_t m = m0 + row, n = m / ohw, pix = m - n * ohw, oy = pix / p.ow, ox = pix - oy * p.ow;
    const int64_t iy = oy * p.stride[0] - p.pad[0] + r * p.dil[0];
    const int64_t ix = ox * p.stride[1] - p.pad[1] + s * p.dil[1];
    int32_t v = 0;
    if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w)
      v = reinterpret_cast<const int32_t*>(x + ((n * p.h + iy) * p.w + ix) * p.c)[c4];
    col[i] = v;
  }
}

template <typename T>
__global__ void epilogueKernel(const int32_t* __restrict__ acc, int64_t m0, int64_t rows, int64_t k,
                               const float* __restrict__ mul, const float* __restrict__ bias,
                               const int8_t* __restrict__ res, int8::EpilogueParams p, void* y, bool nchw,
                               int64_t hw) {
  const int64_t k4n = k / 4, total = rows * k4n;
  RJ_GRID_STRIDE_LOOP(i, total) {
    const int64_t row = i / k4n, k0 = (i - row * k4n) * 4, m = m0 + row;
    const int4 a = reinterpret_cast<const int4*>(acc)[i];
    const int32_t av[4] = {a.x, a.y, a.z, a.w};
    char4 rv = make_char4(0, 0, 0, 0);
    if (res) rv = reinterpret_cast<const char4*>(res + m * k)[k0 / 4];
    const int8_t rr[4] = {rv.x, rv.y, rv.z, rv.w};
    float v[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = int8::epilogue(av[j], mul[k0 + j], bias[k0 + j], res != nullptr, rr[j], p);
    if (p.out_scale > 0.f) {
      char4 o = make_char4(int8::quantizeInt8(v[0], p.out_scale), int8::quantizeInt8(v[1], p.out_scale),
                           int8::quantizeInt8(v[2], p.out_scale), int8::quantizeInt8(v[3], p.out_scale));
      reinterpret_cast<char4*>(static_cast<int8_t*>(y) + m * k)[k0 / 4] = o;
    } else if (nchw) {
      const int64_t n = m / hw, s = m - n * hw;
#pragma unroll
      for (int j = 0; j < 4; ++j) static_cast<T*>(y)[(n * k + k0 + j) * hw + s] = fromF<T>(v[j]);
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) static_cast<T*>(y)[m * k + k0 + j] = fromF<T>(v[j]);
    }
  }
}

dim3 tileGrid(int64_t n, int64_t c, int64_t hw) {
  return dim3(static_cast<unsigned>((hw + kTile - 1) / kTile), static_cast<unsigned>((c + kTile - 1) / kTile),
              static_cast<unsigned>(n));
}

}  // namespace

Status int8Quantize(DataType xt, const void* x, int8_t* y, int64_t n, int64_t c, int64_t hw, bool nhwc, float scale,
                    cudaStream_t stream) {
  const int64_t total = n * c * hw;
  if (total == 0) return Status::Ok();
  if (xt != DataType::kFloat32 && xt != DataType::kFloat16)
    return makeError(StatusCode::kUnsupported, "int8 quantize of ", dataTypeName(xt));
  if (nhwc && (n > 65535 || c > 65535 * kTile)) return makeError(StatusCode::kUnsupported, "int8 quantize: batch > 65535");
  if (xt == DataType::kFloat32) {
    if (nhwc) quantizeNhwc<float><<<tileGrid(n, c, hw), dim3(kTile, 8), 0, stream>>>(static_cast<const float*>(x), y, c, hw, scale);
    else quantizeFlat<float><<<gridFor(total), kThreads, 0, stream>>>(static_cast<const float*>(x), y, total, scale);
  } else {
    if (nhwc) quantizeNhwc<__half><<<tileGrid(n, c, hw), dim3(kTile, 8), 0, stream>>>(static_cast<const __half*>(x), y, c, hw, scale);
    else quantizeFlat<__half><<<gridFor(total), kThreads, 0, stream>>>(static_cast<const __half*>(x), y, total, scale);
  }
  RJ_CUDA_CHECK_LAUNCH("int8Quantize");
  return Status::Ok();
}

Status int8Dequantize(const int8_t* q, DataType yt, void* y, int64_t n, int64_t c, int64_t hw, bool nhwc, float scale,
                      cudaStream_t stream) {
  const int64_t total = n * c * hw;
  if (total == 0) return Status::Ok();
  if (yt != DataType::kFloat32 && yt != DataType::kFloat16)
    return makeError(StatusCode::kUnsupported, "int8 dequantize to ", dataTypeName(yt));
  if (nhwc && n > 65535) return makeError(StatusCode::kUnsupported, "int8 dequantize: batch > 65535");
  if (yt == DataType::kFloat32) {
    if (nhwc) dequantizeNhwc<float><<<tileGrid(n, c, hw), dim3(kTile, 8), 0, stream>>>(q, static_cast<float*>(y), c, hw, scale);
    else dequantizeFlat<float><<<gridFor(total), kThreads, 0, stream>>>(q, static_cast<float*>(y), total, scale);
  } else {
    if (nhwc) dequantizeNhwc<__half><<<tileGrid(n, c, hw), dim3(kTile, 8), 0, stream>>>(q, static_cast<__half*>(y), c, hw, scale);
    else dequantizeFlat<__half><<<gridFor(total), kThreads, 0, stream>>>(q, static_cast<__half*>(y), total, scale);
  }
  RJ_CUDA_CHECK_LAUNCH("int8Dequantize");
  return Status::Ok();
}

Status im2colInt8(const int8_t* x, const Im2colInt8& p, int64_t m0, int64_t rows, int8_t* col, cudaStream_t stream) {
  if (p.c % 4 != 0) return makeError(StatusCode::kUnsupported, "int8 im2col needs channels % 4 == 0, got ", p.c);
  const int64_t total = rows * p.r * p.s * (p.c / 4);
  if (total == 0) return Status::Ok();
  im2colKernel<<<gridFor(total), kThreads, 0, stream>>>(x, p, m0, rows, reinterpret_cast<int32_t*>(col));
  RJ_CUDA_CHECK_LAUNCH("im2colInt8");
  return Status::Ok();
}

Status int8Epilogue(const int32_t* acc, int64_t m0, int64_t rows, int64_t k, const float* mul, const float* bias,
                    const int8_t* residual, const int8::EpilogueParams& p, DataType yt, void* y, bool nchw, int64_t hw,
                    cudaStream_t stream) {
  if (k % 4 != 0) return makeError(StatusCode::kUnsupported, "int8 epilogue needs channels % 4 == 0, got ", k);
  const int64_t total = rows * (k / 4);
  if (total == 0) return Status::Ok();
  if (p.out_scale > 0.f || yt == DataType::kFloat32)
    epilogueKernel<float><<<gridFor(total), kThreads, 0, stream>>>(acc, m0, rows, k, mul, bias, residual, p, y, nchw, hw);
  else if (yt == DataType::kFloat16)
    epilogueKernel<__half><<<gridFor(total), kThreads, 0, stream>>>(acc, m0, rows, k, mul, bias, residual, p, y, nchw, hw);
  else
    return makeError(StatusCode::kUnsupported, "int8 epilogue to ", dataTypeName(yt));
  RJ_CUDA_CHECK_LAUNCH("int8Epilogue");
  return Status::Ok();
}

}  // namespace ramjet::cuda
