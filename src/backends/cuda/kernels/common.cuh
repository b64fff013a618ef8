// Shared device helpers for the project kernels: type conversion through float, broadcast /
// strided index math with fixed-size arrays (rank <= 8), launch geometry, dtype dispatch.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
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

// Division by a run-time constant with a multiply-high and a shift (Granlund-Montgomery, as in
// PyTorch's IntDivider); valid for dividends and divisors below 2^31. 64-bit integer division
// is emulated in software on the GPU and dominated the index math of the strided kernels.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
};
inline FastDiv makeFastDiv(int64_t d) {
  FastDiv f;
  f.d = static_cast<uint32_t>(d < 1 ? 1 : d);
  uint32_t s = 0;
  while (s < 32 && (uint64_t(1) << s) < f.d) ++s;
  f.s = s;
  f.m = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << s) - f.d)) / f.d + 1);
  return f;
}
__device__ __forceinline__ uint32_t fdiv(uint32_t n, const FastDiv& f) {
  uint32_t t = __umulhi(n, f.m);
  return (t + n) >> f.s;
}
// rem % d, and rem /= d; 32-bit fast path when `small`.
__device__ __forceinline__ int64_t divmod(int64_t& rem, int64_t d, const FastDiv& f, bool small) {
  if (small) {
    uint32_t u = static_cast<uint32_t>(rem), q = fdiv(u, f);
    rem = q;
    return static_cast<int64_t>(u - q * f.d);
  }
  int64_t q = rem / d, r = rem - q * d;
  rem = q;
  return r;
}
constexpr int64_t kSmall = int64_t(1) << 31;
// True when linear indices below n may take the 32-bit path. RAMJET_CUDA_INDEX64=1 forces the
// 64-bit path everywhere (so tests can cover it without 2^31-element tensors).
inline bool fastIndex(int64_t n) {
  static const bool force64 = [] {
    const char* e = std::getenv("RAMJET_CUDA_INDEX64");
    return e && *e && *e != '0';
  }();
  return n < kSmall && !force64;
}

// A shape for linear-index decomposition: dims plus their fast dividers. `small` when every
// linear index over it fits the 32-bit fast path.
struct Dims8 {
  int64_t v[kMaxRank];
  FastDiv f[kMaxRank];
  bool small;
};
inline Dims8 toDims8(const std::vector<int64_t>& dims) {
  Dims8 r;
  int64_t n = 1;
  bool small = true;
  for (int i = 0; i < kMaxRank; ++i) {
    int64_t d = i < static_cast<int>(dims.size()) ? dims[i] : 1;
    r.v[i] = d;
    r.f[i] = makeFastDiv(d);
    if (d >= kSmall) small = false;
    n *= d < 1 ? 1 : d;
    if (n >= kSmall) small = false;
  }
  r.small = small && fastIndex(n);
  return r;
}
__device__ __forceinline__ int64_t offsetOf(int64_t i, int r, const Dims8& dims, const Idx8& st) {
  int64_t off = 0;
  if (dims.small) {
    uint32_t u = static_cast<uint32_t>(i);
#pragma unroll
    for (int d = kMaxRank - 1; d >= 0; --d) {
      if (d < r) {
        uint32_t q = fdiv(u, dims.f[d]);
        off += static_cast<int64_t>(u - q * dims.f[d].d) * st.v[d];
        u = q;
      }
    }
    return off;
  }
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
