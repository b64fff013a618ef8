// Kernels of the "more ops" family (see more_ops.h). Simple grid-stride kernels: these ops are
// rarely on a model's hot path, so clarity wins over tuning; each is checked against the CPU
// reference in tests/gpu/test_more_ops_gpu.cc.
#include <cuda_fp16.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/more_ops.h"

namespace ramjet::cuda::more {
namespace {

// ---------------------------------------------------------------- elementwise
template <typename T>
__global__ void unaryKernel(Unary op, const T* x, T* y, int64_t n, float a, float b) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    float v = toF(x[i]), r = v;
    switch (op) {
      case Unary::kTan: r = tanf(v); break;
      case Unary::kAsin: r = asinf(v); break;
      case Unary::kAcos: r = acosf(v); break;
      case Unary::kAtan: r = atanf(v); break;
      case Unary::kSinh: r = sinhf(v); break;
      case Unary::kCosh: r = coshf(v); break;
      case Unary::kAsinh: r = asinhf(v); break;
      case Unary::kAcosh: r = acoshf(v); break;
      case Unary::kAtanh: r = atanhf(v); break;
      case Unary::kSoftsign: r = v / (1.f + fabsf(v)); break;
      case Unary::kCelu: r = fmaxf(0.f, v) + fminf(0.f, a * expm1f(v / a)); break;
      case Unary::kThresholdedRelu: r = v > a ? v : 0.f; break;
      case Unary::kShrink: r = v < -b ? v + a : (v > b ? v - a : 0.f); break;
    }
    y[i] = fromF<T>(r);
  }
}

template <typename T>
__global__ void scaleKernel(const T* x, T* y, int64_t n, float s) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = fromF<T>(toF(x[i]) * s);
}

template <typename T>
__global__ void clipIntKernel(const T* x, T* y, int64_t n, T lo, T hi) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    T v = x[i];
    y[i] = v < lo ? lo : (v > hi ? hi : v);
  }
}

template <typename T>
__global__ void isNanInfKernel(const T* x, bool* y, int64_t n, bool is_inf, bool pos, bool neg) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    float v = toF(x[i]);
    y[i] = is_inf ? (isinf(v) && ((v > 0 && pos) || (v < 0 && neg))) : isnan(v);
  }
}

template <typename T>
__global__ void notKernel(const T* x, T* y, int64_t n, bool logical) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = logical ? static_cast<T>(!x[i]) : static_cast<T>(~x[i]);
}

template <typename T>
__global__ void intBinaryKernel(IntBinary op, const T* a, const T* b, T* out, int64_t n, int r,
                                Dims8 od, Idx8 sa, Idx8 sb) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    T x = a[offsetOf(i, r, od, sa)], s = b[offsetOf(i, r, od, sb)];
    T v = 0;
    const int bits = sizeof(T) * 8;
    switch (op) {
      // Shifting by the type's width or more is undefined in C++; ONNX (numpy) gives 0.
      case IntBinary::kShiftLeft: v = static_cast<uint64_t>(s) >= static_cast<uint64_t>(bits) ? T(0) : T(x << s); break;
      case IntBinary::kShiftRight: v = static_cast<uint64_t>(s) >= static_cast<uint64_t>(bits) ? T(0) : T(x >> s); break;
      case IntBinary::kBitAnd: v = x & s; break;
      case IntBinary::kBitOr: v = x | s; break;
      case IntBinary::kBitXor: v = x ^ s; break;
    }
    out[i] = v;
  }
}

// ---------------------------------------------------------------- fills
template <typename E>
__global__ void fillKernel(E* y, int64_t n, E v) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = v;
}

template <typename T>
__global__ void rangeKernel(T* y, int64_t n, double start, double delta) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = static_cast<T>(start + static_cast<double>(i) * delta);
}
__global__ void rangeHalfKernel(__half* y, int64_t n, float start, float delta) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = __float2half_rn(start + static_cast<float>(i) * delta);
}

// ---------------------------------------------------------------- indexing
template <typename I>
__device__ __forceinline__ int64_t loadIndex(const void* p, int64_t i) {
  return static_cast<int64_t>(static_cast<const I*>(p)[i]);
}

// Decomposes linear i over `dims` (rank r) into coordinates.
__device__ __forceinline__ void coordsOf(int64_t i, int r, const Idx8& dims, int64_t* c) {
  for (int d = r - 1; d >= 0; --d) {
    c[d] = i % dims.v[d];
    i /= dims.v[d];
  }
}

template <typename E>
__global__ void gatherElementsKernel(const E* data, const void* idx, bool idx64, E* out, int64_t n,
                                     int r, Idx8 idx_dims, Idx8 data_strides, int axis,
                                     int64_t axis_len) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t c[kMaxRank];
    coordsOf(i, r, idx_dims, c);
    int64_t k = idx64 ? loadIndex<int64_t>(idx, i) : loadIndex<int32_t>(idx, i);
    if (k < 0) k += axis_len;
    if (k < 0 || k >= axis_len) {
      out[i] = E{};
      continue;
    }
    c[axis] = k;
    int64_t off = 0;
    for (int d = 0; d < r; ++d) off += c[d] * data_strides.v[d];
    out[i] = data[off];
  }
}

template <typename T>
__device__ __forceinline__ void applyReduction(T* dst, T v, ScatterReduction red) {
  (void)red;
  *dst = v;
}
__device__ __forceinline__ void applyReductionF(float* dst, float v, ScatterReduction red) {
  switch (red) {
    case ScatterReduction::kNone: *dst = v; break;
    case ScatterReduction::kAdd: atomicAdd(dst, v); break;
    case ScatterReduction::kMax: {
      // Ordered-int trick: for non-negative floats int order matches, for negative reversed.
      if (v >= 0) atomicMax(reinterpret_cast<int*>(dst), __float_as_int(v));
      else atomicMin(reinterpret_cast<unsigned*>(dst), __float_as_uint(v));
      break;
    }
    case ScatterReduction::kMin: {
      if (v >= 0) atomicMin(reinterpret_cast<int*>(dst), __float_as_int(v));
      else atomicMax(reinterpret_cast<unsigned*>(dst), __float_as_uint(v));
      break;
    }
    case ScatterReduction::kMul: break;  // refused on the host
  }
}

template <typename E, bool F32>
__global__ void scatterElementsKernel(const E* upd, const void* idx, bool idx64, E* out, int64_t n,
                                      int r, Idx8 idx_dims, Idx8 data_strides, int axis,
                                      int64_t axis_len, ScatterReduction red) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t c[kMaxRank];
    coordsOf(i, r, idx_dims, c);
    int64_t k = idx64 ? loadIndex<int64_t>(idx, i) : loadIndex<int32_t>(idx, i);
    if (k < 0) k += axis_len;
    if (k < 0 || k >= axis_len) continue;
    c[axis] = k;
    int64_t off = 0;
    for (int d = 0; d < r; ++d) off += c[d] * data_strides.v[d];
    if constexpr (F32)
      applyReductionF(reinterpret_cast<float*>(out) + off, reinterpret_cast<const float*>(upd)[i], red);
    else
      applyReduction(out + off, upd[i], red);
  }
}

// One thread per output element: tuple t = i / slice, element e = i % slice.
template <typename E>
__global__ void gatherNDKernel(const E* data, const int64_t* idx, E* out, int64_t n, int64_t slice,
                               int64_t tuples_per_batch, int64_t batch_stride, int last, int b,
                               Idx8 data_dims, Idx8 data_strides) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t t = i / slice, e = i - t * slice;
    int64_t bi = t / tuples_per_batch;
    int64_t at = bi * batch_stride;
    bool ok = true;
    for (int j = 0; j < last; ++j) {
      int64_t k = idx[t * last + j], len = data_dims.v[b + j];
      if (k < 0) k += len;
      if (k < 0 || k >= len) ok = false;
      at += k * data_strides.v[b + j];
    }
    out[i] = ok ? data[at + e] : E{};
  }
}

template <typename E, bool F32>
__global__ void scatterNDKernel(const E* upd, const int64_t* idx, E* out, int64_t n, int64_t slice,
                                int last, Idx8 data_dims, Idx8 data_strides, ScatterReduction red) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t t = i / slice, e = i - t * slice;
    int64_t at = 0;
    bool ok = true;
    for (int j = 0; j < last; ++j) {
      int64_t k = idx[t * last + j], len = data_dims.v[j];
      if (k < 0) k += len;
      if (k < 0 || k >= len) ok = false;
      at += k * data_strides.v[j];
    }
    if (!ok) continue;
    if constexpr (F32)
      applyReductionF(reinterpret_cast<float*>(out) + at + e, reinterpret_cast<const float*>(upd)[i], red);
    else
      applyReduction(out + at + e, upd[i], red);
  }
}

// ---------------------------------------------------------------- scans / masks
template <typename T, typename A>
__global__ void cumSumKernel(const T* x, T* y, int64_t lines, int64_t len, int64_t inner, bool excl,
                             bool rev) {
  RJ_GRID_STRIDE_LOOP(l, lines) {
    int64_t o = l / inner, in = l - o * inner;
    A acc = 0;
    for (int64_t k = 0; k < len; ++k) {
      int64_t kk = rev ? len - 1 - k : k;
      int64_t at = (o * len + kk) * inner + in;
      A v;
      if constexpr (sizeof(T) == 2) v = __half2float(x[at]);
      else v = static_cast<A>(x[at]);
      if (excl) {
        if constexpr (sizeof(T) == 2) y[at] = __float2half_rn(acc);
        else y[at] = static_cast<T>(acc);
        acc += v;
      } else {
        acc += v;
        if constexpr (sizeof(T) == 2) y[at] = __float2half_rn(acc);
        else y[at] = static_cast<T>(acc);
      }
    }
  }
}

template <typename E>
__global__ void triluKernel(const E* x, E* y, int64_t n, int64_t rows, int64_t cols, int64_t k,
                            bool upper) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t j = i % cols, r = (i / cols) % rows;
    bool keep = upper ? (j - r >= k) : (j - r <= k);
    y[i] = keep ? x[i] : E{};
  }
}

template <typename I, typename E>
__global__ void oneHotKernel(const I* idx, int64_t n, int64_t depth, int64_t inner, const E* values,
                             E* out) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t in = i % inner, d = (i / inner) % depth, o = i / (inner * depth);
    int64_t k;
    if constexpr (sizeof(I) == 2) k = static_cast<int64_t>(__half2float(idx[o * inner + in]));
    else k = static_cast<int64_t>(idx[o * inner + in]);
    if (k < 0) k += depth;
    out[i] = k == d ? values[1] : values[0];
  }
}

template <typename T>
__global__ void hardmaxKernel(const T* x, T* y, int64_t lines, int64_t len, int64_t inner) {
  RJ_GRID_STRIDE_LOOP(l, lines) {
    int64_t o = l / inner, in = l - o * inner;
    const T* p = x + o * len * inner + in;
    T* q = y + o * len * inner + in;
    int64_t best = 0;
    float bv = toF(p[0]);
    for (int64_t k = 1; k < len; ++k) {
      float v = toF(p[k * inner]);
      if (v > bv) bv = v, best = k;
    }
    for (int64_t k = 0; k < len; ++k) q[k * inner] = fromF<T>(k == best ? 1.f : 0.f);
  }
}

template <typename T>
__global__ void lpNormKernel(const T* x, T* y, int64_t lines, int64_t len, int64_t inner, int p) {
  RJ_GRID_STRIDE_LOOP(l, lines) {
    int64_t o = l / inner, in = l - o * inner;
    const T* px = x + o * len * inner + in;
    T* py = y + o * len * inner + in;
    float s = 0;
    for (int64_t k = 0; k < len; ++k) {
      float v = toF(px[k * inner]);
      s += p == 1 ? fabsf(v) : v * v;
    }
    float norm = p == 1 ? s : sqrtf(s);
    for (int64_t k = 0; k < len; ++k) py[k * inner] = fromF<T>(norm == 0.f ? 0.f : toF(px[k * inner]) / norm);
  }
}

// Integer dtype dispatch (signed and unsigned of every width).
template <typename F>
bool visitIntDev(DataType dt, F&& f) {
  switch (dt) {
    case DataType::kInt8: f(DevTag<int8_t>{}); return true;
    case DataType::kUInt8: f(DevTag<uint8_t>{}); return true;
    case DataType::kInt16: f(DevTag<int16_t>{}); return true;
    case DataType::kUInt16: f(DevTag<uint16_t>{}); return true;
    case DataType::kInt32: f(DevTag<int32_t>{}); return true;
    case DataType::kUInt32: f(DevTag<uint32_t>{}); return true;
    case DataType::kInt64: f(DevTag<int64_t>{}); return true;
    case DataType::kUInt64: f(DevTag<uint64_t>{}); return true;
    default: return false;
  }
}

std::vector<int64_t> stridesOf(const std::vector<int64_t>& d) {
  std::vector<int64_t> s(d.size());
  int64_t a = 1;
  for (int i = static_cast<int>(d.size()) - 1; i >= 0; --i) {
    s[i] = a;
    a *= d[i];
  }
  return s;
}

Status unsupportedType(const char* what, DataType dt) {
  return makeError(StatusCode::kUnsupported, what, ": element type ", dataTypeName(dt));
}

}  // namespace

Status unary(Unary op, DataType dtype, const void* x, void* y, int64_t n, float alpha, float beta,
             cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    unaryKernel<T><<<gridFor(n), kThreads, 0, stream>>>(op, static_cast<const T*>(x), static_cast<T*>(y), n, alpha, beta);
  });
  if (!ok) return unsupportedType("unary", dtype);
  RJ_CUDA_CHECK_LAUNCH("more::unary");
  return Status::Ok();
}

Status scale(DataType dtype, const void* x, void* y, int64_t n, float s, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    scaleKernel<T><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n, s);
  });
  if (!ok) return unsupportedType("scale", dtype);
  RJ_CUDA_CHECK_LAUNCH("more::scale");
  return Status::Ok();
}

Status clipInt(DataType dtype, const void* x, void* y, int64_t n, int64_t lo, int64_t hi,
               cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  bool ok = visitIntDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Bounds saturate to T's range (an absent bound arrives as the int64 extreme; a plain cast
    // would wrap it, e.g. INT64_MAX -> -1 for int32). uint64: a negative hi means "no bound".
    using L = std::numeric_limits<T>;
    T tlo, thi;
    if constexpr (std::is_unsigned_v<T>) {
      tlo = lo <= 0 ? T(0) : (static_cast<uint64_t>(lo) >= static_cast<uint64_t>(L::max()) ? L::max() : static_cast<T>(lo));
      thi = hi < 0 ? (sizeof(T) == 8 ? L::max() : T(0))
                   : (static_cast<uint64_t>(hi) >= static_cast<uint64_t>(L::max()) ? L::max() : static_cast<T>(hi));
    } else {
      tlo = lo <= static_cast<int64_t>(L::min()) ? L::min() : lo >= static_cast<int64_t>(L::max()) ? L::max() : static_cast<T>(lo);
      thi = hi <= static_cast<int64_t>(L::min()) ? L::min() : hi >= static_cast<int64_t>(L::max()) ? L::max() : static_cast<T>(hi);
    }
    clipIntKernel<T><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n, tlo, thi);
  });
  if (!ok) return unsupportedType("Clip", dtype);
  RJ_CUDA_CHECK_LAUNCH("Clip(int)");
  return Status::Ok();
}

Status isNanInf(DataType dtype, const void* x, bool* y, int64_t n, bool is_inf, bool detect_pos,
                bool detect_neg, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    isNanInfKernel<T><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const T*>(x), y, n, is_inf, detect_pos, detect_neg);
  });
  if (!ok) return unsupportedType(is_inf ? "IsInf" : "IsNaN", dtype);
  RJ_CUDA_CHECK_LAUNCH(is_inf ? "IsInf" : "IsNaN");
  return Status::Ok();
}

Status logicalNot(DataType dtype, const void* x, void* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  if (dtype == DataType::kBool) {
    notKernel<uint8_t><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const uint8_t*>(x), static_cast<uint8_t*>(y), n, true);
  } else {
    bool ok = visitIntDev(dtype, [&](auto tag) {
      using T = typename decltype(tag)::type;
      notKernel<T><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), n, false);
    });
    if (!ok) return unsupportedType("Not", dtype);
  }
  RJ_CUDA_CHECK_LAUNCH("Not");
  return Status::Ok();
}

Status intBinary(IntBinary op, DataType dtype, const void* a, const std::vector<int64_t>& a_dims,
                 const void* b, const std::vector<int64_t>& b_dims, void* out,
                 const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("integer binary op", out_dims));
  if (a_dims.size() > out_dims.size() || b_dims.size() > out_dims.size())
    return makeError(StatusCode::kInvalidArgument, "integer binary op: operand rank exceeds the output's");
  int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  std::vector<int64_t> od = out_dims;
  std::vector<std::vector<int64_t>> st = {broadcastStrides(a_dims, out_dims), broadcastStrides(b_dims, out_dims)};
  mergeBroadcastDims(&od, &st);
  int r = static_cast<int>(od.size());
  bool ok = visitIntDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    intBinaryKernel<T><<<gridFor(n), kThreads, 0, stream>>>(op, static_cast<const T*>(a), static_cast<const T*>(b),
                                                            static_cast<T*>(out), n, r, toDims8(od),
                                                            toIdx8(st[0], 0), toIdx8(st[1], 0));
  });
  if (!ok) return unsupportedType("integer binary op", dtype);
  RJ_CUDA_CHECK_LAUNCH("integer binary op");
  return Status::Ok();
}

Status fill(size_t elem_size, const void* value, void* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    E v;
    std::memcpy(&v, value, sizeof(E));
    fillKernel<E><<<gridFor(n), kThreads, 0, stream>>>(static_cast<E*>(y), n, v);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "fill: element size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("fill");
  return Status::Ok();
}

Status range(DataType dtype, double start, double delta, void* y, int64_t n, cudaStream_t stream) {
  if (n <= 0) return Status::Ok();
  switch (dtype) {
    case DataType::kFloat32: rangeKernel<float><<<gridFor(n), kThreads, 0, stream>>>(static_cast<float*>(y), n, start, delta); break;
    case DataType::kFloat64: rangeKernel<double><<<gridFor(n), kThreads, 0, stream>>>(static_cast<double*>(y), n, start, delta); break;
    case DataType::kFloat16: rangeHalfKernel<<<gridFor(n), kThreads, 0, stream>>>(static_cast<__half*>(y), n, static_cast<float>(start), static_cast<float>(delta)); break;
    case DataType::kInt16: rangeKernel<int16_t><<<gridFor(n), kThreads, 0, stream>>>(static_cast<int16_t*>(y), n, start, delta); break;
    case DataType::kInt32: rangeKernel<int32_t><<<gridFor(n), kThreads, 0, stream>>>(static_cast<int32_t*>(y), n, start, delta); break;
    case DataType::kInt64: rangeKernel<int64_t><<<gridFor(n), kThreads, 0, stream>>>(static_cast<int64_t*>(y), n, start, delta); break;
    default: return unsupportedType("Range", dtype);
  }
  RJ_CUDA_CHECK_LAUNCH("Range");
  return Status::Ok();
}

Status gatherElements(size_t elem_size, const void* data, const std::vector<int64_t>& data_dims,
                      DataType index_dtype, const void* indices,
                      const std::vector<int64_t>& index_dims, int axis, void* out,
                      cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("GatherElements", data_dims));
  RJ_RETURN_IF_ERROR(checkDims("GatherElements", index_dims));
  int r = static_cast<int>(data_dims.size());
  if (static_cast<int>(index_dims.size()) != r || axis < 0 || axis >= r)
    return makeError(StatusCode::kInvalidArgument, "GatherElements: indices rank ", index_dims.size(), ", data rank ", r,
                     ", axis ", axis);
  if (index_dtype != DataType::kInt32 && index_dtype != DataType::kInt64) return unsupportedType("GatherElements indices", index_dtype);
  int64_t n = product(index_dims);
  if (n == 0) return Status::Ok();
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    gatherElementsKernel<E><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const E*>(data), indices, index_dtype == DataType::kInt64, static_cast<E*>(out), n, r,
        toIdx8(index_dims), toIdx8(stridesOf(data_dims), 0), axis, data_dims[axis]);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "GatherElements: element size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("GatherElements");
  return Status::Ok();
}

Status scatterElements(DataType dtype, const void* data, const std::vector<int64_t>& data_dims,
                       DataType index_dtype, const void* indices,
                       const std::vector<int64_t>& index_dims, const void* updates, int axis,
                       ScatterReduction red, void* out, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("ScatterElements", data_dims));
  RJ_RETURN_IF_ERROR(checkDims("ScatterElements", index_dims));
  int r = static_cast<int>(data_dims.size());
  if (static_cast<int>(index_dims.size()) != r || axis < 0 || axis >= r)
    return makeError(StatusCode::kInvalidArgument, "ScatterElements: indices rank ", index_dims.size(), ", data rank ", r);
  if (index_dtype != DataType::kInt32 && index_dtype != DataType::kInt64) return unsupportedType("ScatterElements indices", index_dtype);
  const bool f32 = dtype == DataType::kFloat32;
  if (red == ScatterReduction::kMul || (red != ScatterReduction::kNone && !f32))
    return makeError(StatusCode::kUnsupported, "ScatterElements: this reduction for ", dataTypeName(dtype));
  size_t nb = static_cast<size_t>(product(data_dims)) * dataTypeSize(dtype);
  if (nb && out != data) RJ_CUDA_CHECK(cudaMemcpyAsync(out, data, nb, cudaMemcpyDeviceToDevice, stream));
  int64_t n = product(index_dims);
  if (n == 0) return Status::Ok();
  bool ok = visitElemSize(dataTypeSize(dtype), [&](auto tag) {
    using E = typename decltype(tag)::type;
    auto args = [&](auto kernel) {
      kernel<<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(updates), indices,
                                                  index_dtype == DataType::kInt64, static_cast<E*>(out), n, r,
                                                  toIdx8(index_dims), toIdx8(stridesOf(data_dims), 0), axis,
                                                  data_dims[axis], red);
    };
    if (f32) args(scatterElementsKernel<E, true>);
    else args(scatterElementsKernel<E, false>);
  });
  if (!ok) return unsupportedType("ScatterElements", dtype);
  RJ_CUDA_CHECK_LAUNCH("ScatterElements");
  return Status::Ok();
}

Status gatherND(size_t elem_size, const void* data, const std::vector<int64_t>& data_dims,
                const int64_t* indices, const std::vector<int64_t>& index_dims, int batch_dims,
                void* out, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("GatherND", data_dims));
  int q = static_cast<int>(index_dims.size()), r = static_cast<int>(data_dims.size());
  if (q < 1 || batch_dims < 0 || batch_dims >= q || batch_dims > r)
    return makeError(StatusCode::kInvalidArgument, "GatherND: indices rank ", q, ", batch_dims ", batch_dims);
  int last = static_cast<int>(index_dims[q - 1]);
  if (last < 0 || batch_dims + last > r)
    return makeError(StatusCode::kInvalidArgument, "GatherND: index tuples of ", last, " for data rank ", r);
  int64_t batch = 1, tuples = 1, slice = 1;
  for (int i = 0; i < batch_dims; ++i) batch *= data_dims[i];
  for (int i = batch_dims; i < q - 1; ++i) tuples *= index_dims[i];
  for (int i = batch_dims + last; i < r; ++i) slice *= data_dims[i];
  std::vector<int64_t> ds = stridesOf(data_dims);
  int64_t batch_stride = batch_dims > 0 ? ds[batch_dims - 1] : 0;
  int64_t n = batch * tuples * slice;
  if (n == 0) return Status::Ok();
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    gatherNDKernel<E><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(data), indices, static_cast<E*>(out), n,
                                                           slice, tuples, batch_stride, last, batch_dims,
                                                           toIdx8(data_dims), toIdx8(ds, 0));
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "GatherND: element size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("GatherND");
  return Status::Ok();
}

Status scatterND(DataType dtype, const void* data, const std::vector<int64_t>& data_dims,
                 const int64_t* indices, const std::vector<int64_t>& index_dims,
                 const void* updates, ScatterReduction red, void* out, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("ScatterND", data_dims));
  int q = static_cast<int>(index_dims.size()), r = static_cast<int>(data_dims.size());
  if (q < 1) return makeError(StatusCode::kInvalidArgument, "ScatterND: indices must have rank >= 1");
  int last = static_cast<int>(index_dims[q - 1]);
  if (last < 0 || last > r) return makeError(StatusCode::kInvalidArgument, "ScatterND: index tuples of ", last, " for rank ", r);
  const bool f32 = dtype == DataType::kFloat32;
  if (red == ScatterReduction::kMul || (red != ScatterReduction::kNone && !f32))
    return makeError(StatusCode::kUnsupported, "ScatterND: this reduction for ", dataTypeName(dtype));
  size_t nb = static_cast<size_t>(product(data_dims)) * dataTypeSize(dtype);
  if (nb && out != data) RJ_CUDA_CHECK(cudaMemcpyAsync(out, data, nb, cudaMemcpyDeviceToDevice, stream));
  int64_t tuples = 1, slice = 1;
  for (int i = 0; i < q - 1; ++i) tuples *= index_dims[i];
  for (int i = last; i < r; ++i) slice *= data_dims[i];
  int64_t n = tuples * slice;
  if (n == 0) return Status::Ok();
  std::vector<int64_t> ds = stridesOf(data_dims);
  bool ok = visitElemSize(dataTypeSize(dtype), [&](auto tag) {
    using E = typename decltype(tag)::type;
    if (f32)
      scatterNDKernel<E, true><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(updates), indices,
                                                                    static_cast<E*>(out), n, slice, last,
                                                                    toIdx8(data_dims), toIdx8(ds, 0), red);
    else
      scatterNDKernel<E, false><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(updates), indices,
                                                                     static_cast<E*>(out), n, slice, last,
                                                                     toIdx8(data_dims), toIdx8(ds, 0), red);
  });
  if (!ok) return unsupportedType("ScatterND", dtype);
  RJ_CUDA_CHECK_LAUNCH("ScatterND");
  return Status::Ok();
}

Status cumSum(DataType dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
              bool exclusive, bool reverse, cudaStream_t stream) {
  int64_t lines = outer * inner;
  if (lines == 0 || len == 0) return Status::Ok();
  switch (dtype) {
    case DataType::kFloat32:
      cumSumKernel<float, double><<<gridFor(lines), kThreads, 0, stream>>>(static_cast<const float*>(x), static_cast<float*>(y), lines, len, inner, exclusive, reverse);
      break;
    case DataType::kFloat16:
      cumSumKernel<__half, float><<<gridFor(lines), kThreads, 0, stream>>>(static_cast<const __half*>(x), static_cast<__half*>(y), lines, len, inner, exclusive, reverse);
      break;
    case DataType::kInt32:
      cumSumKernel<int32_t, int64_t><<<gridFor(lines), kThreads, 0, stream>>>(static_cast<const int32_t*>(x), static_cast<int32_t*>(y), lines, len, inner, exclusive, reverse);
      break;
    case DataType::kInt64:
      cumSumKernel<int64_t, int64_t><<<gridFor(lines), kThreads, 0, stream>>>(static_cast<const int64_t*>(x), static_cast<int64_t*>(y), lines, len, inner, exclusive, reverse);
      break;
    default: return unsupportedType("CumSum", dtype);
  }
  RJ_CUDA_CHECK_LAUNCH("CumSum");
  return Status::Ok();
}

Status trilu(size_t elem_size, const void* x, void* y, int64_t batch, int64_t rows, int64_t cols,
             int64_t k, bool upper, cudaStream_t stream) {
  int64_t n = batch * rows * cols;
  if (n == 0) return Status::Ok();
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    triluKernel<E><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(x), static_cast<E*>(y), n, rows, cols, k, upper);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "Trilu: element size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("Trilu");
  return Status::Ok();
}

Status oneHot(DataType index_dtype, const void* indices, int64_t outer, int64_t inner,
              int64_t depth, size_t elem_size, const void* values, void* out, cudaStream_t stream) {
  int64_t n = outer * depth * inner;
  if (n == 0) return Status::Ok();
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    auto go = [&](auto itag) {
      using I = typename decltype(itag)::type;
      oneHotKernel<I, E><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const I*>(indices), n, depth, inner,
                                                              static_cast<const E*>(values), static_cast<E*>(out));
    };
    switch (index_dtype) {
      case DataType::kInt64: go(DevTag<int64_t>{}); break;
      case DataType::kInt32: go(DevTag<int32_t>{}); break;
      case DataType::kFloat32: go(DevTag<float>{}); break;
      case DataType::kFloat16: go(DevTag<__half>{}); break;
      default: break;
    }
  });
  if (!ok || (index_dtype != DataType::kInt64 && index_dtype != DataType::kInt32 &&
              index_dtype != DataType::kFloat32 && index_dtype != DataType::kFloat16))
    return makeError(StatusCode::kUnsupported, "OneHot: indices ", dataTypeName(index_dtype), ", value size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("OneHot");
  return Status::Ok();
}

Status hardmax(DataType dtype, const void* x, void* y, int64_t outer, int64_t len, int64_t inner,
               cudaStream_t stream) {
  int64_t lines = outer * inner;
  if (lines == 0 || len == 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    hardmaxKernel<T><<<gridFor(lines), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), lines, len, inner);
  });
  if (!ok) return unsupportedType("Hardmax", dtype);
  RJ_CUDA_CHECK_LAUNCH("Hardmax");
  return Status::Ok();
}

Status lpNormalize(DataType dtype, const void* x, void* y, int64_t outer, int64_t len,
                   int64_t inner, int p, cudaStream_t stream) {
  if (p != 1 && p != 2) return makeError(StatusCode::kInvalidArgument, "LpNormalization: p must be 1 or 2, got ", p);
  int64_t lines = outer * inner;
  if (lines == 0 || len == 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    lpNormKernel<T><<<gridFor(lines), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), lines, len, inner, p);
  });
  if (!ok) return unsupportedType("LpNormalization", dtype);
  RJ_CUDA_CHECK_LAUNCH("LpNormalization");
  return Status::Ok();
}

}  // namespace ramjet::cuda::more
