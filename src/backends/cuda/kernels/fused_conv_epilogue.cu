// Epilogue of a fused convolution when cuDNN has no single engine for the whole pattern:
// y = act(y + bias[c] + z) in one pass over the convolution's output (instead of separate
// bias, Add and activation kernels). NCHW ([outer=N, C, inner=HW]) or NHWC ([outer=N*HW, C,
// inner=1]); 16-byte vectors where a vector never straddles channels unpredictably. Also the
// project's own convolution tactics, the same epilogue fused: depthwise (NHWC; NCHW as an 8-wide
// row tile or a generic kernel) and the direct 3x3 kernel for few input channels.
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
                                float a, float b, bool small, FastDiv fcv, FastDiv fow, FastDiv foh) {
  const int64_t cv_count = p.c / V;
  const int64_t total = p.n * p.oh * p.ow * cv_count;
  RJ_GRID_STRIDE_LOOP(i, total) {
    int64_t r = i;
    const int64_t cv = divmod(r, cv_count, fcv, small);
    const int64_t ow = divmod(r, p.ow, fow, small);
    const int64_t oh = divmod(r, p.oh, foh, small);
    const int64_t n = r;
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

// N consecutive elements of a row starting at column iw0 (may start left of 0 or run past
// wd): zero outside [0, wd).
template <typename T, int N>
__device__ __forceinline__ void loadRowBounded(const T* row, int iw0, int wd, float* v) {
#pragma unroll
  for (int j = 0; j < N; ++j) {
    const int iw = iw0 + j;
    v[j] = (iw >= 0 && iw < wd) ? toF(__ldg(row + iw)) : 0.f;
  }
}

// NCHW depthwise, any window: one thread per output element, consecutive threads along the
// output row (coalesced loads; the window's rows are shared through L1). The 3x3/5x5 windows at
// horizontal stride 1 or 2 with the "same" padding take depthwiseNchwTileKernel below.
template <typename T>
__global__ void depthwiseNchwKernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                    const T* __restrict__ z, T* __restrict__ y, DepthwiseParams p, UnaryOp op,
                                    float a, float b, bool small, FastDiv fow, FastDiv foh, FastDiv fc) {
  const int64_t total = p.n * p.c * p.oh * p.ow;
  const int kh_n = static_cast<int>(p.kh), kw_n = static_cast<int>(p.kw);
  const int dh = static_cast<int>(p.dh), dw = static_cast<int>(p.dw);
  const int h = static_cast<int>(p.h), wd = static_cast<int>(p.w);
  RJ_GRID_STRIDE_LOOP(i, total) {
    int64_t rem = i;
    const int ow = static_cast<int>(divmod(rem, p.ow, fow, small));
    const int oh = static_cast<int>(divmod(rem, p.oh, foh, small));
    const int64_t plane = rem;  // n * C + c
    int64_t cr = plane;
    const int64_t c = divmod(cr, p.c, fc, small);
    const T* xp = x + plane * p.h * p.w;
    const T* wp = w + c * kh_n * kw_n;
    const int ih0 = oh * static_cast<int>(p.sh) - static_cast<int>(p.ph);
    const int iw0 = ow * static_cast<int>(p.sw) - static_cast<int>(p.pw);
    float acc = 0.f;
    for (int kh = 0; kh < kh_n; ++kh) {
      const int ih = ih0 + kh * dh;
      if (ih < 0 || ih >= h) continue;
      for (int kw = 0; kw < kw_n; ++kw) {
        const int iw = iw0 + kw * dw;
        if (iw < 0 || iw >= wd) continue;
        acc += toF(__ldg(xp + ih * wd + iw)) * toF(__ldg(wp + kh * kw_n + kw));
      }
    }
    if (bias) acc += toF(bias[c]);
    if (z) acc += toF(z[i]);
    y[i] = fromF<T>(epilogueAct(op, acc, a, b));
  }
}

// N elements of T through 16-byte loads/stores (N * sizeof(T) a multiple of 16; the pointer
// 16-byte aligned), converted to/from float.
template <typename T, int N>
__device__ __forceinline__ void loadVecF(const T* src, float* dst) {
  constexpr int PER = 16 / sizeof(T);
  static_assert(N % PER == 0, "whole 16-byte vectors");
#pragma unroll
  for (int i = 0; i < N / PER; ++i) {
    const uint4 raw = __ldg(reinterpret_cast<const uint4*>(src) + i);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int j = 0; j < PER; ++j) dst[i * PER + j] = toF(e[j]);
  }
}
template <typename T, int N>
__device__ __forceinline__ void storeVecF(T* dst, const float* src) {
  constexpr int PER = 16 / sizeof(T);
  static_assert(N % PER == 0, "whole 16-byte vectors");
#pragma unroll
  for (int i = 0; i < N / PER; ++i) {
    uint4 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int j = 0; j < PER; ++j) e[j] = fromF<T>(src[i * PER + j]);
    reinterpret_cast<uint4*>(dst)[i] = raw;
  }
}

// NCHW depthwise, KSxKS window with the "same" horizontal padding KS/2 (unit dilation),
// horizontal stride SW: each thread computes R = 8 consecutive outputs of a row. The middle
// 8*SW inputs of each window row come in 16-byte loads (when the row is 16-byte aligned and the
// segment lies inside it), the KS/2 left and the remaining right inputs one by one; the window
// weights are loaded once. Output (and residual) rows move in 16-byte vectors where aligned.
template <typename T, int KS, int SW>
__global__ void depthwiseNchwTileKernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ bias,
                                        const T* __restrict__ z, T* __restrict__ y, DepthwiseParams p, UnaryOp op,
                                        float a, float b, bool small, FastDiv fowb, FastDiv foh, FastDiv fc,
                                        bool vec_in, bool vec_out) {
  constexpr int R = 8, PW = KS / 2, MID = R * SW, IN = (R - 1) * SW + KS, RIGHT = IN - PW - MID;
  const int64_t owb_n = (p.ow + R - 1) / R;
  const int64_t total = p.n * p.c * p.oh * owb_n;
  const int h = static_cast<int>(p.h), wd = static_cast<int>(p.w), ow_n = static_cast<int>(p.ow);
  RJ_GRID_STRIDE_LOOP(i, total) {
    int64_t rem = i;
    const int owb = static_cast<int>(divmod(rem, owb_n, fowb, small));
    const int oh = static_cast<int>(divmod(rem, p.oh, foh, small));
    const int64_t plane = rem;  // n * C + c
    int64_t cr = plane;
    const int64_t c = divmod(cr, p.c, fc, small);
    const T* xp = x + plane * p.h * p.w;
    const int ow0 = owb * R;
    const int mid0 = ow0 * SW;  // first input column of the middle segment
    const bool fast = vec_in && mid0 + MID <= wd;
    const int ih0 = oh * static_cast<int>(p.sh) - static_cast<int>(p.ph);
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = 0.f;
    // No branch per window row (rows outside the image read a clamped row with zero weights), so
    // the unrolled loop can issue every row's loads before the first FMA.
#pragma unroll
    for (int kh = 0; kh < KS; ++kh) {
      const int ih = ih0 + kh;
      const bool in_rows = ih >= 0 && ih < h;
      const T* row = xp + static_cast<int64_t>(min(max(ih, 0), h - 1)) * wd;
      float v[IN];
      if (fast) {
#pragma unroll
        for (int j = 0; j < PW; ++j) {
          const int iw = mid0 - PW + j;
          v[j] = iw >= 0 ? toF(__ldg(row + iw)) : 0.f;
        }
        loadVecF<T, MID>(row + mid0, v + PW);
#pragma unroll
        for (int j = 0; j < RIGHT; ++j) {
          const int iw = mid0 + MID + j;
          v[PW + MID + j] = iw < wd ? toF(__ldg(row + iw)) : 0.f;
        }
      } else {
        loadRowBounded<T, IN>(row, mid0 - PW, wd, v);
      }
      float wr[KS];
#pragma unroll
      for (int kw = 0; kw < KS; ++kw) wr[kw] = in_rows ? toF(__ldg(w + (c * KS + kh) * KS + kw)) : 0.f;
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int kw = 0; kw < KS; ++kw) acc[r] += v[r * SW + kw] * wr[kw];
    }
    const float bv = bias ? toF(bias[c]) : 0.f;
    const int64_t o = (plane * p.oh + oh) * p.ow + ow0;
    if (vec_out && ow0 + R <= ow_n) {
      float zv[R];
      if (z) loadVecF<T, R>(z + o, zv);
#pragma unroll
      for (int r = 0; r < R; ++r) acc[r] = epilogueAct(op, acc[r] + bv + (z ? zv[r] : 0.f), a, b);
      if constexpr (R * sizeof(T) % 16 == 0) storeVecF<T, R>(y + o, acc);
    } else {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        if (ow0 + r >= ow_n) break;
        float v = acc[r] + bv;
        if (z) v += toF(z[o + r]);
        y[o + r] = fromF<T>(epilogueAct(op, v, a, b));
      }
    }
  }
}

// PV consecutive elements along a row: 16-, 8-byte or element loads/stores.
template <typename T, int PV>
__device__ __forceinline__ void loadPix(const T* src, float* dst) {
  if constexpr (PV * sizeof(T) == 16) {
    loadVecF<T, PV>(src, dst);
  } else if constexpr (PV == 4 && sizeof(T) == 2) {
    const uint2 raw = __ldg(reinterpret_cast<const uint2*>(src));
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) dst[j] = toF(e[j]);
  } else {
#pragma unroll
    for (int j = 0; j < PV; ++j) dst[j] = toF(__ldg(src + j));
  }
}
template <typename T, int PV>
__device__ __forceinline__ void storePix(T* dst, const float* src) {
  if constexpr (PV * sizeof(T) == 16) {
    storeVecF<T, PV>(dst, src);
  } else if constexpr (PV == 4 && sizeof(T) == 2) {
    uint2 raw;
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int j = 0; j < 4; ++j) e[j] = fromF<T>(src[j]);
    *reinterpret_cast<uint2*>(dst) = raw;
  } else {
#pragma unroll
    for (int j = 0; j < PV; ++j) dst[j] = fromF<T>(src[j]);
  }
}

constexpr int kDirectCo = kDirectOutChannels;

// N packed FP32 weights (one tap of N output channels), warp-uniform 16-byte loads. The packed
// weights are FP32 whatever the activations' type: converting FP16 weights per thread and step
// made the FP16 kernel conversion-bound.
template <int N>
__device__ __forceinline__ void loadW(const float* src, float* dst) {
#pragma unroll
  for (int i = 0; i < N / 4; ++i) {
    const float4 v = __ldg(reinterpret_cast<const float4*>(src) + i);
    dst[4 * i] = v.x, dst[4 * i + 1] = v.y, dst[4 * i + 2] = v.z, dst[4 * i + 3] = v.w;
  }
}

// Direct KSxKS convolution (unit dilation, one group, horizontal stride SW) for few input
// channels, NCHW: the first layer of MobileNet/EfficientNet (3 -> 16/32 channels, 3x3, stride 2),
// where cuDNN ran at a fraction of memory speed. Each thread computes CO = 8 output channels at
// PV = 4 consecutive outputs of a row; per (input channel, window row) it loads the row segment
// once and the 8 weights of each tap with warp-uniform 16-byte loads (FP32 weights prepacked
// [ceil(M/8)][C][KS][KS][8], zero-padded). Blocks are ordered channel-group fastest.
template <typename T, int KS, int SW>
__global__ void __launch_bounds__(kThreads, 2) directConvNchwKernel(
    const T* __restrict__ x, const float* __restrict__ wp, const T* __restrict__ bias, const T* __restrict__ z,
    T* __restrict__ y, DirectConvParams p, UnaryOp op, float a, float b, bool small, FastDiv fowb, FastDiv foh,
    FastDiv fcog, bool vec_out) {
  constexpr int CO = kDirectCo, PV = 4, IN = (PV - 1) * SW + KS;
  const int64_t owb_n = (p.ow + PV - 1) / PV;
  const int64_t total = p.n * p.oh * owb_n;
  const int64_t xblocks = (total + kThreads - 1) / kThreads;
  const int64_t ncog = (p.m + CO - 1) / CO;
  const int h = static_cast<int>(p.h), wd = static_cast<int>(p.w);
  for (int64_t blk = blockIdx.x; blk < xblocks * ncog; blk += gridDim.x) {
    int64_t br = blk;
    const int64_t cog = divmod(br, ncog, fcog, small);
    const int64_t i = br * kThreads + threadIdx.x;
    if (i >= total) continue;
    int64_t r = i;
    const int owb = static_cast<int>(divmod(r, owb_n, fowb, small));
    const int oh = static_cast<int>(divmod(r, p.oh, foh, small));
    const int64_t n = r;
    const int ow0 = owb * PV;
    const int ih0 = oh * static_cast<int>(p.sh) - static_cast<int>(p.ph);
    const int iw0 = ow0 * SW - static_cast<int>(p.pw);
    const float* wg = wp + cog * p.c * KS * KS * CO;
    float acc[CO][PV];
#pragma unroll
    for (int j = 0; j < CO; ++j)
#pragma unroll
      for (int q = 0; q < PV; ++q) acc[j][q] = 0.f;
    for (int64_t ci = 0; ci < p.c; ++ci) {
      const T* xp = x + (n * p.c + ci) * p.h * p.w;
#pragma unroll
      for (int kh = 0; kh < KS; ++kh) {
        const int ih = ih0 + kh;
        if (ih < 0 || ih >= h) continue;
        const T* row = xp + static_cast<int64_t>(ih) * wd;
        float v[IN];
        loadRowBounded<T, IN>(row, iw0, wd, v);
#pragma unroll
        for (int kw = 0; kw < KS; ++kw) {
          float wv[CO];
          loadW<CO>(wg + ((ci * KS + kh) * KS + kw) * CO, wv);
#pragma unroll
          for (int j = 0; j < CO; ++j)
#pragma unroll
            for (int q = 0; q < PV; ++q) acc[j][q] += wv[j] * v[q * SW + kw];
        }
      }
    }
    const bool full = vec_out && ow0 + PV <= p.ow;
#pragma unroll
    for (int j = 0; j < CO; ++j) {
      const int64_t co = cog * CO + j;
      if (co >= p.m) break;
      const int64_t o = ((n * p.m + co) * p.oh + oh) * p.ow + ow0;
      const float bv = bias ? toF(bias[co]) : 0.f;
      if (full) {
        float zv[PV], out[PV];
        if (z) loadPix<T, PV>(z + o, zv);
#pragma unroll
        for (int q = 0; q < PV; ++q) out[q] = epilogueAct(op, acc[j][q] + bv + (z ? zv[q] : 0.f), a, b);
        storePix<T, PV>(y + o, out);
      } else {
#pragma unroll
        for (int q = 0; q < PV; ++q) {
          if (ow0 + q >= p.ow) break;
          float v = acc[j][q] + bv;
          if (z) v += toF(z[o + q]);
          y[o + q] = fromF<T>(epilogueAct(op, v, a, b));
        }
      }
    }
  }
}

template <typename T, int V>
void launchDepthwise(const void* x, const void* w, const void* bias, const void* z, void* y,
                     const DepthwiseParams& p, UnaryOp act, const UnaryParams& ap, cudaStream_t stream) {
  const int64_t total = p.n * p.oh * p.ow * (p.c / V);
  depthwiseKernel<T, V><<<gridFor(total), kThreads, 0, stream>>>(
      static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias), static_cast<const T*>(z),
      static_cast<T*>(y), p, act, ap.alpha, ap.beta, fastIndex(p.n * p.h * p.w * p.c) && fastIndex(total * V),
      makeFastDiv(p.c / V), makeFastDiv(p.ow), makeFastDiv(p.oh));
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

Status depthwiseConvNchw(DataType dtype, const void* x, const void* w, const void* bias, const void* z,
                         void* y, const DepthwiseParams& p, UnaryOp act, const UnaryParams& ap,
                         cudaStream_t stream) {
  const int64_t total = p.n * p.c * p.oh * p.ow;
  if (total == 0) return Status::Ok();
  if (p.kh < 1 || p.kw < 1 || p.sh < 1 || p.sw < 1 || p.dh < 1 || p.dw < 1 || p.c < 1 ||
      p.h * p.w >= (int64_t{1} << 31))
    return makeError(StatusCode::kInvalidArgument, "depthwiseConvNchw: bad geometry");
  const bool small = fastIndex(total) && fastIndex(p.n * p.c * p.h * p.w);
  const FastDiv fow = makeFastDiv(p.ow), foh = makeFastDiv(p.oh), fc = makeFastDiv(p.c);
  const bool unit = p.kh == p.kw && p.dh == 1 && p.dw == 1;
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using I3 = std::integral_constant<int, 3>;
    using I5 = std::integral_constant<int, 5>;
    using S1 = std::integral_constant<int, 1>;
    using S2 = std::integral_constant<int, 2>;
    // The 8-wide tile kernel for the "same" horizontal padding; 16-byte vectors where rows align.
    const bool vec_in = isAligned16(x) && (p.w * sizeof(T)) % 16 == 0;
    const bool vec_out = isAligned16(y) && (!z || isAligned16(z)) && (p.ow * sizeof(T)) % 16 == 0;
    auto tile = [&](auto ks, auto sw) {
      constexpr int KS = decltype(ks)::value, SW = decltype(sw)::value;
      const int64_t owb_n = (p.ow + 7) / 8, rows = p.n * p.c * p.oh * owb_n;
      depthwiseNchwTileKernel<T, KS, SW><<<gridFor(rows), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias), static_cast<const T*>(z),
          static_cast<T*>(y), p, act, ap.alpha, ap.beta, small, makeFastDiv(owb_n), foh, fc, vec_in, vec_out);
    };
    const bool same = unit && p.pw == p.kw / 2;
    if (same && p.kh == 3 && p.sw == 1) tile(I3{}, S1{});
    else if (same && p.kh == 3 && p.sw == 2) tile(I3{}, S2{});
    else if (same && p.kh == 5 && p.sw == 1) tile(I5{}, S1{});
    else if (same && p.kh == 5 && p.sw == 2) tile(I5{}, S2{});
    else
      depthwiseNchwKernel<T><<<gridFor(total), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(bias), static_cast<const T*>(z),
          static_cast<T*>(y), p, act, ap.alpha, ap.beta, small, fow, foh, fc);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "depthwiseConvNchw: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("depthwiseConvNchw");
  return Status::Ok();
}

Status directConvNchw(DataType dtype, const void* x, const void* w_packed, const void* bias, const void* z,
                      void* y, const DirectConvParams& p, UnaryOp act, const UnaryParams& ap,
                      cudaStream_t stream) {
  const int64_t total_out = p.n * p.m * p.oh * p.ow;
  if (total_out == 0) return Status::Ok();
  if (p.c < 1 || p.m < 1 || p.sh < 1 || p.h < 1 || p.w < 1 || p.h * p.w >= (int64_t{1} << 31))
    return makeError(StatusCode::kInvalidArgument, "directConvNchw: bad geometry");
  if (!directConvSupported(p.k, p.sw)) return makeError(StatusCode::kUnsupported, "directConvNchw: window ", p.k, "x",
                                                        p.k, " stride ", p.sw);
  const int64_t ncog = (p.m + kDirectCo - 1) / kDirectCo;
  const int64_t owb_n = (p.ow + 3) / 4, total = p.n * p.oh * owb_n;
  const int64_t blocks = ((total + kThreads - 1) / kThreads) * ncog;
  const bool small = fastIndex(p.n * p.c * p.h * p.w) && fastIndex(total_out) && fastIndex(blocks) &&
                     fastIndex(total);
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto aligned = [&](const void* q) { return !q || reinterpret_cast<uintptr_t>(q) % (4 * sizeof(T)) == 0; };
    const bool vec_out = p.ow % 4 == 0 && aligned(y) && aligned(z);
    auto launch = [&](auto ks, auto sw) {
      constexpr int KS = decltype(ks)::value, SW = decltype(sw)::value;
      directConvNchwKernel<T, KS, SW><<<gridFor(blocks * kThreads), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const float*>(w_packed), static_cast<const T*>(bias),
          static_cast<const T*>(z), static_cast<T*>(y), p, act, ap.alpha, ap.beta, small, makeFastDiv(owb_n),
          makeFastDiv(p.oh), makeFastDiv(ncog), vec_out);
    };
    using I3 = std::integral_constant<int, 3>;
    using S1 = std::integral_constant<int, 1>;
    using S2 = std::integral_constant<int, 2>;
    if (p.sw == 1) launch(I3{}, S1{});
    else launch(I3{}, S2{});
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "directConvNchw: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("directConvNchw");
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
