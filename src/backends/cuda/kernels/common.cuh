// Shared device helpers for the project kernels: type conversion through float, broadcast /
// strided index math with fixed-size arrays (rank <= 8), launch geometry, dtype dispatch.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_ops.h"

namespace ramjet::cuda {

template <typename T> __device__ __forceinline__ float toF(T v) { return static_cast<float>(v); }
template <> __device__ __forceinline__ float toF<__half>(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T fromF(float v) { return static_cast<T>(v); }
template <> __device__ __forceinline__ __half fromF<__half>(float v) { return __float2half_rn(v); }

// Dims/strides passed by value to kernels.
struct Idx8 {
  int64_t v[kMaxRank];
};

constexpr int kThreads = 256;
inline unsigned gridFor(int64_t n, int threads = kThreads, int64_t cap = 65535LL * 32) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > cap) b = cap;
  return static_cast<unsigned>(b);
}

#define RJ_GRID_STRIDE_LOOP(i, n)                                                       \
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n);            \
       i += (int64_t)blockDim.x * gridDim.x)

// Right-aligns in_dims against out_dims (rank r) and returns broadcast strides (0 where the
// input dim is 1 or missing).
inline std::vector<int64_t> broadcastStrides(const std::vector<int64_t>& in_dims,
                                             const std::vector<int64_t>& out_dims) {
  size_t r = out_dims.size();
  std::vector<int64_t> st(r, 0);
  int64_t s = 1;
  for (int i = static_cast<int>(in_dims.size()) - 1; i >= 0; --i) {
    size_t o = r - in_dims.size() + i;
    st[o] = in_dims[i] == 1 ? 0 : s;
    s *= in_dims[i];
  }
  return st;
}

// Merges adjacent output dims where every operand's strides are contiguous across the pair
// (or both zero), shrinking rank for the index math. strides[k] are per-operand strides.
void mergeBroadcastDims(std::vector<int64_t>* out_dims, std::vector<std::vector<int64_t>>* strides);

// Host: checks dims are non-negative and rank <= 8.
Status checkDims(const char* what, const std::vector<int64_t>& dims);
int64_t product(const std::vector<int64_t>& dims);

// Maps a linear index over `dims` (rank r, row-major) to an offset with `strides`.
__device__ __forceinline__ int64_t offsetOf(int64_t i, int r, const Idx8& dims, const Idx8& st) {
  int64_t off = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d < r) {
      int64_t q = i / dims.v[d];
      off += (i - q * dims.v[d]) * st.v[d];
      i = q;
    }
  }
  return off;
}

inline Idx8 toIdx8(const std::vector<int64_t>& v, int64_t fill = 1) {
  Idx8 r;
  for (int i = 0; i < kMaxRank; ++i) r.v[i] = i < static_cast<int>(v.size()) ? v[i] : fill;
  return r;
}

// Calls f(TypeTag<T>) with T = float or __half; false for other dtypes.
template <typename T> struct DevTag { using type = T; };
template <typename F>
bool visitFloatDev(DataType dt, F&& f) {
  switch (dt) {
    case DataType::kFloat32: f(DevTag<float>{}); return true;
    case DataType::kFloat16: f(DevTag<__half>{}); return true;
    default: return false;
  }
}

// Opaque element of a given size, for dtype-agnostic data movement.
template <int N> struct alignas(N) Bytes { unsigned char b[N]; };
template <typename F>
bool visitElemSize(size_t n, F&& f) {
  switch (n) {
    case 1: f(DevTag<uint8_t>{}); return true;
    case 2: f(DevTag<uint16_t>{}); return true;
    case 4: f(DevTag<uint32_t>{}); return true;
    case 8: f(DevTag<uint64_t>{}); return true;
    default: return false;
  }
}

}  // namespace ramjet::cuda

namespace ramjet::cuda {

template <typename T, typename Op>
__device__ __forceinline__ T warpReduce(T v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Reduces v over the whole block (blockDim.x a multiple of 32, <= 1024); every thread gets the
// result. `smem` needs 32 slots. Contains __syncthreads: call from all threads.
template <typename T, typename Op>
__device__ __forceinline__ T blockReduce(T v, Op op, T identity, T* smem) {
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = warpReduce(v, op);
  __syncthreads();  // smem may still be read by a previous call
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  int nw = (blockDim.x + 31) >> 5;
  T r = lane < nw ? smem[lane] : identity;
  return warpReduce(r, op);
}

struct SumOp { __device__ float operator()(float a, float b) const { return a + b; } };
struct MaxOp { __device__ float operator()(float a, float b) const { return fmaxf(a, b); } };

}  // namespace ramjet::cuda
