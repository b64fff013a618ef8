// LayerNormalization, BatchNormalization (inference), GroupNorm / InstanceNorm.
// Statistics are computed in float in two passes (mean, then centred variance) for accuracy.
#include <cmath>

#include "backends/cuda/kernels/common.cuh"

namespace ramjet::cuda {
namespace {

// Mean and 1/sqrt(var+eps) of a contiguous span, block-wide.
template <typename T>
__device__ __forceinline__ void spanStats(const T* p, int64_t len, float eps, float* smem,
                                          float* mean_out, float* inv_out) {
  float s = 0.f;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) s += toF(p[j]);
  float mean = blockReduce(s, SumOp{}, 0.f, smem) / static_cast<float>(len);
  float q = 0.f;
  for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
    float d = toF(p[j]) - mean;
    q += d * d;
  }
  float var = blockReduce(q, SumOp{}, 0.f, smem) / static_cast<float>(len);
  *mean_out = mean;
  *inv_out = rsqrtf(var + eps);
}

template <typename T>
__global__ void layerNormKernel(const T* x, const T* scale, const T* bias, T* y, int64_t rows,
                                int64_t cols, float eps, float* mean_out, float* inv_out) {
  __shared__ float smem[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* p = x + r * cols;
    T* q = y + r * cols;
    float mean, inv;
    spanStats(p, cols, eps, smem, &mean, &inv);
    for (int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      float v = (toF(p[j]) - mean) * inv * toF(scale[j]);
      if (bias) v += toF(bias[j]);
      q[j] = fromF<T>(v);
    }
    if (threadIdx.x == 0) {
      if (mean_out) mean_out[r] = mean;
      if (inv_out) inv_out[r] = inv;
    }
  }
}

template <typename T>
__global__ void batchNormKernel(const T* x, const T* scale, const T* bias, const T* mean,
                                const T* var, T* y, int64_t n, int64_t channels, int64_t inner,
                                float eps) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t c = (i / inner) % channels;
    float inv = rsqrtf(toF(var[c]) + eps);
    y[i] = fromF<T>((toF(x[i]) - toF(mean[c])) * inv * toF(scale[c]) + toF(bias[c]));
  }
}

template <typename T>
__global__ void groupNormKernel(const T* x, const T* scale, const T* bias, T* y, int64_t ngroups,
                                int64_t channels, int64_t spatial, int64_t groups, float eps) {
  __shared__ float smem[32];
  int64_t cpg = channels / groups;
  int64_t len = cpg * spatial;
  for (int64_t b = blockIdx.x; b < ngroups; b += gridDim.x) {
    int64_t g = b % groups;
    const T* p = x + b * len;
    T* q = y + b * len;
    float mean, inv;
    spanStats(p, len, eps, smem, &mean, &inv);
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      int64_t c = g * cpg + j / spatial;
      float v = (toF(p[j]) - mean) * inv;
      float sc = scale ? toF(scale[c]) : 1.f, bi = bias ? toF(bias[c]) : 0.f;
      q[j] = fromF<T>(v * sc + bi);
    }
  }
}

unsigned rowBlocks(int64_t rows) { return static_cast<unsigned>(rows < 65535 * 16 ? rows : 65535 * 16); }
int rowThreads(int64_t len) { return len >= 2048 ? 512 : len >= 256 ? 256 : len >= 64 ? 64 : 32; }

}  // namespace

Status layerNorm(DataType dtype, const void* x, const void* scale, const void* bias, void* y,
                 int64_t rows, int64_t cols, float epsilon, float* mean, float* inv_std,
                 cudaStream_t stream) {
  if (rows < 0 || cols < 0) return makeError(StatusCode::kInvalidArgument, "LayerNormalization: negative size");
  if (rows == 0) return Status::Ok();
  if (cols == 0) return makeError(StatusCode::kInvalidArgument, "LayerNormalization: normalized size is 0");
  if (!scale) return makeError(StatusCode::kInvalidArgument, "LayerNormalization: scale is required");
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    layerNormKernel<T><<<rowBlocks(rows), rowThreads(cols), 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(scale), static_cast<const T*>(bias),
        static_cast<T*>(y), rows, cols, epsilon, mean, inv_std);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "LayerNormalization: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("LayerNormalization");
  return Status::Ok();
}

Status batchNormInference(DataType dtype, const void* x, const void* scale, const void* bias,
                          const void* mean, const void* var, void* y, int64_t outer,
                          int64_t channels, int64_t inner, float epsilon, cudaStream_t stream) {
  int64_t n = outer * channels * inner;
  if (n == 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    batchNormKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(scale), static_cast<const T*>(bias),
        static_cast<const T*>(mean), static_cast<const T*>(var), static_cast<T*>(y), n, channels,
        inner, epsilon);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "BatchNormalization: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("BatchNormalization");
  return Status::Ok();
}

Status groupNorm(DataType dtype, const void* x, const void* scale, const void* bias, void* y,
                 int64_t n, int64_t channels, int64_t spatial, int64_t groups, float epsilon,
                 cudaStream_t stream) {
  if (groups <= 0 || channels % groups != 0)
    return makeError(StatusCode::kInvalidArgument, "GroupNormalization: ", channels,
                     " channels do not split into ", groups, " groups");
  if (n * channels * spatial == 0) return Status::Ok();
  int64_t ngroups = n * groups;
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    groupNormKernel<T><<<rowBlocks(ngroups), rowThreads(channels / groups * spatial), 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(scale), static_cast<const T*>(bias),
        static_cast<T*>(y), ngroups, channels, spatial, groups, epsilon);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "GroupNormalization: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("GroupNormalization");
  return Status::Ok();
}

}  // namespace ramjet::cuda
