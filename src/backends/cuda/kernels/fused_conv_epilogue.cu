// Epilogue of a fused convolution when cuDNN has no single engine for the whole pattern:
// y = act(y + bias[c] + z) in one pass over the convolution's output (instead of separate
// bias, Add and activation kernels). NCHW ([outer=N, C, inner=HW]) or NHWC ([outer=N*HW, C,
// inner=1]); 16-byte vectors where a vector never straddles channels unpredictably.
#include <cmath>

#include "backends/cuda/cudnn_fused_conv.h"
#include "backends/cuda/kernels/common.cuh"

namespace ramjet::cuda {
namespace {

inline bool isAligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

__device__ __forceinline__ float epilogueAct(UnaryOp op, float x, float a, float b) {
  switch (op) {
    case UnaryOp::kRelu: return x > 0.f ? x : 0.f;
    case UnaryOp::kLeakyRelu: return x >= 0.f ? x : a * x;
    case UnaryOp::kSigmoid: return 1.f / (1.f + expf(-x));
    case UnaryOp::kTanh: return tanhf(x);
    case UnaryOp::kSilu: return x / (1.f + expf(-x));
    case UnaryOp::kHardSwish: return x * fminf(1.f, fmaxf(0.f, x * (1.f / 6.f) + 0.5f));
    case UnaryOp::kHardSigmoid: return fminf(1.f, fmaxf(0.f, a * x + b));
    case UnaryOp::kClip: return fminf(fmaxf(x, a), b);
    case UnaryOp::kMish: return x * tanhf(x > 20.f ? x : log1pf(expf(x)));
    case UnaryOp::kGelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    default: return x;
  }
}

template <typename T>
__global__ void epilogueKernel(const T* x, const T* bias, const T* z, T* y, int64_t n,
                               int64_t channels, int64_t inner, UnaryOp op, float a, float b) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    float v = toF(x[i]);
    if (bias) v += toF(bias[(i / inner) % channels]);
    if (z) v += toF(z[i]);
    y[i] = fromF<T>(epilogueAct(op, v, a, b));
  }
}

template <typename T>
__global__ void epilogueVecKernel(const T* x, const T* bias, const T* z, T* y, int64_t n,
                                  int64_t channels, int64_t inner, UnaryOp op, float a, float b) {
  constexpr int V = 16 / sizeof(T);
  const int64_t nv = n / V;
  RJ_GRID_STRIDE_LOOP(i, nv) {
    uint4 raw = reinterpret_cast<const uint4*>(x)[i];
    uint4 zraw = z ? reinterpret_cast<const uint4*>(z)[i] : uint4{0, 0, 0, 0};
    T* e = reinterpret_cast<T*>(&raw);
    const T* ze = reinterpret_cast<const T*>(&zraw);
    const int64_t c0 = (i * V / inner) % channels;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float v = toF(e[j]);
      if (bias) v += toF(bias[inner == 1 ? (c0 + j) % channels : c0]);
      if (z) v += toF(ze[j]);
      e[j] = fromF<T>(epilogueAct(op, v, a, b));
    }
    reinterpret_cast<uint4*>(y)[i] = raw;
  }
}

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

// One thread per (n, oh, ow, V consecutive channels): loads are V-wide along C (coalesced).
template <typename T, int V>
__global__ void depthwiseKernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                const T* __restrict__ z, T* __restrict__ y, DepthwiseParams p, UnaryOp op,
                                float a, float b) {
  const int64_t cv_count = p.c / V;
  const int64_t total = p.n * p.oh * p.ow * cv_count;
  RJ_GRID_STRIDE_LOOP(i, total) {
    const int64_t cv = i % cv_count;
    int64_t r = i / cv_count;
    const int64_t ow = r % p.ow;
    r /= p.ow;
    const int64_t oh = r % p.oh;
    const int64_t n = r / p.oh;
    const int64_t c0 = cv * V;
    float acc[V];
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] = 0.f;
    for (int64_t kh = 0; kh < p.kh; ++kh) {
      const int64_t ih = oh * p.sh - p.ph + kh * p.dh;
      if (ih < 0 || ih >= p.h) continue;
      for (int64_t kw = 0; kw < p.kw; ++kw) {
        const int64_t iw = ow * p.sw - p.pw + kw * p.dw;
        if (iw < 0 || iw >= p.w) continue;
        const Vec<T, V> xv = *reinterpret_cast<const Vec<T, V>*>(x + ((n * p.h + ih) * p.w + iw) * p.c + c0);
        const Vec<T, V> wv = *reinterpret_cast<const Vec<T, V>*>(w + (kh * p.kw + kw) * p.c + c0);
#pragma unroll
        for (int j = 0; j < V; ++j) acc[j] += toF(xv.v[j]) * toF(wv.v[j]);
      }
    }
    const int64_t o = ((n * p.oh + oh) * p.ow + ow) * p.c + c0;
    Vec<T, V> out;
    Vec<T, V> zv;
    if (z) zv = *reinterpret_cast<const Vec<T, V>*>(z + o);
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float v = acc[j];
      if (bias) v += toF(bias[c0 + j]);
      if (z) v += toF(zv.v[j]);
      out.v[j] = fromF<T>(epilogueAct(op, v, a, b));
    }
    *reinterpret_cast<Vec<T, V>*>(y + o) = out;
  }
}

template <typename T, int V>
void launchDepthwise(const void* x, const void* w, const void* bias, const void* z, void* y,
                     const DepthwiseParams& p, UnaryOp act, const UnaryParams& ap, cudaStream_t stream) {
  const int64_t total = p.n * p.oh * p.ow * (p.c / V);
  depthwiseKernel<T, V><<<gridFor(total), kThreads, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias), static_cast<const T*>(z),
      static_cast<T*>(y), p, act, ap.alpha, ap.beta);
}

}  // namespace

Status depthwiseConvNhwc(DataType dtype, const void* x, const void* w, const void* bias, const void* z,
                         void* y, const DepthwiseParams& p, UnaryOp act, const UnaryParams& ap,
                         cudaStream_t stream) {
  if (p.n * p.oh * p.ow * p.c == 0) return Status::Ok();
  if (p.kh < 1 || p.kw < 1 || p.sh < 1 || p.sw < 1 || p.dh < 1 || p.dw < 1 || p.c < 1)
    return makeError(StatusCode::kInvalidArgument, "depthwiseConvNhwc: bad geometry");
  auto aligned = [&](int bytes) {
    auto ok = [&](const void* q) { return !q || (reinterpret_cast<uintptr_t>(q) % bytes) == 0; };
    return ok(x) && ok(w) && ok(z) && ok(y);
  };
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = 16 / sizeof(T);
    if (p.c % V == 0 && aligned(16)) launchDepthwise<T, V>(x, w, bias, z, y, p, act, ap, stream);
    else if (p.c % 2 == 0 && aligned(2 * sizeof(T))) launchDepthwise<T, 2>(x, w, bias, z, y, p, act, ap, stream);
    else launchDepthwise<T, 1>(x, w, bias, z, y, p, act, ap, stream);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "depthwiseConvNhwc: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("depthwiseConvNhwc");
  return Status::Ok();
}

Status convEpilogue(DataType dtype, const void* x, const void* bias, const void* z, void* y,
                    int64_t outer, int64_t channels, int64_t inner, UnaryOp act,
                    const UnaryParams& p, cudaStream_t stream) {
  const int64_t n = outer * channels * inner;
  if (n == 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = 16 / sizeof(T);
    const bool vec = isAligned16(x) && isAligned16(y) && (!z || isAligned16(z)) && n % V == 0 &&
                     (inner % V == 0 || (inner == 1 && channels % V == 0));
    if (vec)
      epilogueVecKernel<T><<<gridFor(n / V), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<const T*>(z),
          static_cast<T*>(y), n, channels, inner, act, p.alpha, p.beta);
    else
      epilogueKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<const T*>(z),
          static_cast<T*>(y), n, channels, inner, act, p.alpha, p.beta);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "convEpilogue: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("convEpilogue");
  return Status::Ok();
}

}  // namespace ramjet::cuda
