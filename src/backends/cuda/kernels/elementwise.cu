// Elementwise kernels: unary activations, casts, broadcasting binary ops, Where, bias+activation,
// broadcast copy (Expand) and Tile.
#include <cmath>

#include "backends/cuda/kernels/common.cuh"

namespace ramjet::cuda {
namespace {

__device__ __forceinline__ float softplusf(float x) {
  // log(1 + e^x) without overflow.
  return x > 20.f ? x : log1pf(expf(x));
}

// Uniform runtime switch: every thread of a launch takes the same branch.
__device__ __forceinline__ float applyUnary(UnaryOp op, float x, float a, float b) {
  switch (op) {
    case UnaryOp::kRelu: return x > 0.f ? x : 0.f;
    case UnaryOp::kSigmoid: return 1.f / (1.f + expf(-x));
    case UnaryOp::kTanh: return tanhf(x);
    case UnaryOp::kHardSigmoid: return fminf(1.f, fmaxf(0.f, a * x + b));
    case UnaryOp::kHardSwish: return x * fminf(1.f, fmaxf(0.f, x * (1.f / 6.f) + 0.5f));
    case UnaryOp::kGelu: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
    case UnaryOp::kGeluTanh:
      return 0.5f * x * (1.f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case UnaryOp::kErf: return erff(x);
    case UnaryOp::kExp: return expf(x);
    case UnaryOp::kLog: return logf(x);
    case UnaryOp::kSqrt: return sqrtf(x);
    case UnaryOp::kReciprocal: return 1.f / x;
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return fabsf(x);
    case UnaryOp::kClip: return fminf(fmaxf(x, a), b);
    case UnaryOp::kLeakyRelu: return x >= 0.f ? x : a * x;
    case UnaryOp::kElu: return x >= 0.f ? x : a * (expf(x) - 1.f);
    case UnaryOp::kSelu: return x > 0.f ? b * x : b * (a * expf(x) - a);
    case UnaryOp::kMish: return x * tanhf(softplusf(x));
    case UnaryOp::kSoftplus: return softplusf(x);
    case UnaryOp::kSilu: return x / (1.f + expf(-x));
    case UnaryOp::kFloor: return floorf(x);
    case UnaryOp::kCeil: return ceilf(x);
    case UnaryOp::kRound: return rintf(x);
    case UnaryOp::kSin: return sinf(x);
    case UnaryOp::kCos: return cosf(x);
    case UnaryOp::kSign: return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
    case UnaryOp::kIdentity: return x;
  }
  return x;
}

template <typename T>
__device__ __forceinline__ T unaryInt(UnaryOp op, T x) {
  switch (op) {
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return x < 0 ? -x : x;
    case UnaryOp::kSign: return x > 0 ? 1 : (x < 0 ? -1 : 0);
    case UnaryOp::kRelu: return x > 0 ? x : 0;
    default: return x;
  }
}

// 16-byte vector path: each thread handles V elements; the tail is scalar.
template <typename T>
__global__ void unaryKernel(UnaryOp op, const T* __restrict__ x, T* __restrict__ y, int64_t n,
                            float a, float b) {
  constexpr int V = 16 / sizeof(T);
  int64_t nv = n / V;
  const uint4* xv = reinterpret_cast<const uint4*>(x);
  uint4* yv = reinterpret_cast<uint4*>(y);
  RJ_GRID_STRIDE_LOOP(i, nv) {
    uint4 raw = xv[i];
    T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
    for (int j = 0; j < V; ++j) e[j] = fromF<T>(applyUnary(op, toF(e[j]), a, b));
    yv[i] = raw;
  }
  for (int64_t i = nv * V + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)blockDim.x * gridDim.x)
    y[i] = fromF<T>(applyUnary(op, toF(x[i]), a, b));
}

template <typename T>
__global__ void unaryScalarKernel(UnaryOp op, const T* x, T* y, int64_t n, float a, float b) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = fromF<T>(applyUnary(op, toF(x[i]), a, b));
}

template <typename T>
__global__ void unaryIntKernel(UnaryOp op, const T* x, T* y, int64_t n) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = unaryInt(op, x[i]);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// ---- cast
template <typename T> struct DevVal {
  __device__ static float f(T v) { return static_cast<float>(v); }
};
template <typename From, typename To>
__device__ __forceinline__ To castOne(From v) {
  if constexpr (std::is_same_v<To, bool>) {
    if constexpr (std::is_same_v<From, __half>) return __half2float(v) != 0.f;
    else return v != From(0);
  } else if constexpr (std::is_same_v<From, __half>) {
    if constexpr (std::is_same_v<To, __half>) return v;
    else return static_cast<To>(__half2float(v));
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half_rn(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}
template <typename From, typename To>
__global__ void castKernel(const From* x, To* y, int64_t n) {
  RJ_GRID_STRIDE_LOOP(i, n) y[i] = castOne<From, To>(x[i]);
}

template <typename F>
bool visitCastType(DataType dt, F&& f) {
  switch (dt) {
    case DataType::kFloat32: f(DevTag<float>{}); return true;
    case DataType::kFloat16: f(DevTag<__half>{}); return true;
    case DataType::kInt32: f(DevTag<int32_t>{}); return true;
    case DataType::kInt64: f(DevTag<int64_t>{}); return true;
    case DataType::kInt8: f(DevTag<int8_t>{}); return true;
    case DataType::kUInt8: f(DevTag<uint8_t>{}); return true;
    case DataType::kBool: f(DevTag<bool>{}); return true;
    default: return false;
  }
}

// ---- binary
template <typename T>
__device__ __forceinline__ T binArith(BinaryOp op, T a, T b) {
  if constexpr (std::is_same_v<T, float>) {
    switch (op) {
      case BinaryOp::kAdd: return a + b;
      case BinaryOp::kSub: return a - b;
      case BinaryOp::kMul: return a * b;
      case BinaryOp::kDiv: return a / b;
      case BinaryOp::kPow: return powf(a, b);
      case BinaryOp::kMax: return (a != a || b != b) ? a + b : fmaxf(a, b);
      case BinaryOp::kMin: return (a != a || b != b) ? a + b : fminf(a, b);
      case BinaryOp::kMod: return fmodf(a, b);
      case BinaryOp::kPRelu: return a >= 0.f ? a : a * b;
      default: return a;
    }
  } else {
    switch (op) {
      case BinaryOp::kAdd: return a + b;
      case BinaryOp::kSub: return a - b;
      case BinaryOp::kMul: return a * b;
      case BinaryOp::kDiv: return b == 0 ? T(0) : a / b;
      case BinaryOp::kPow: {
        if (b < 0) return a == 1 ? T(1) : (a == -1 ? ((b & 1) ? T(-1) : T(1)) : T(0));
        T r = 1, base = a;
        for (T e = b; e > 0; e >>= 1) {
          if (e & 1) r *= base;
          base *= base;
        }
        return r;
      }
      case BinaryOp::kMax: return a > b ? a : b;
      case BinaryOp::kMin: return a < b ? a : b;
      case BinaryOp::kMod: {
        if (b == 0) return T(0);
        T r = a % b;
        if (r != 0 && ((r < 0) != (b < 0))) r += b;
        return r;
      }
      case BinaryOp::kPRelu: return a >= 0 ? a : a * b;
      default: return a;
    }
  }
}
template <typename A>
__device__ __forceinline__ bool binCmp(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::kEqual: return a == b;
    case BinaryOp::kLess: return a < b;
    case BinaryOp::kLessOrEqual: return a <= b;
    case BinaryOp::kGreater: return a > b;
    case BinaryOp::kGreaterOrEqual: return a >= b;
    default: return false;
  }
}

template <typename T> struct Acc { using type = T; };
template <> struct Acc<__half> { using type = float; };

template <typename T, bool kCmp>
__device__ __forceinline__ void binOne(BinaryOp op, T a, T b, void* out, int64_t i) {
  using A = typename Acc<T>::type;
  A x, y;
  if constexpr (std::is_same_v<T, __half>) { x = __half2float(a); y = __half2float(b); }
  else { x = a; y = b; }
  if constexpr (kCmp) {
    static_cast<bool*>(out)[i] = binCmp<A>(op, x, y);
  } else {
    A r = binArith<A>(op, x, y);
    if constexpr (std::is_same_v<T, __half>) static_cast<__half*>(out)[i] = __float2half_rn(r);
    else static_cast<T*>(out)[i] = r;
  }
}

template <typename T, bool kCmp>
__global__ void binarySameKernel(BinaryOp op, const T* a, const T* b, void* out, int64_t n) {
  RJ_GRID_STRIDE_LOOP(i, n) binOne<T, kCmp>(op, a[i], b[i], out, i);
}
// Same-shape float arithmetic with 16-byte loads (pointers 16-byte aligned; tail scalar).
template <typename T>
__global__ void binarySameVecKernel(BinaryOp op, const T* a, const T* b, T* out, int64_t n) {
  constexpr int V = 16 / sizeof(T);
  int64_t nv = n / V;
  RJ_GRID_STRIDE_LOOP(i, nv) {
    uint4 ra = reinterpret_cast<const uint4*>(a)[i], rb = reinterpret_cast<const uint4*>(b)[i];
    T* ea = reinterpret_cast<T*>(&ra);
    const T* eb = reinterpret_cast<const T*>(&rb);
#pragma unroll
    for (int j = 0; j < V; ++j) ea[j] = fromF<T>(binArith<float>(op, toF(ea[j]), toF(eb[j])));
    reinterpret_cast<uint4*>(out)[i] = ra;
  }
  for (int64_t i = nv * V + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)blockDim.x * gridDim.x)
    out[i] = fromF<T>(binArith<float>(op, toF(a[i]), toF(b[i])));
}

template <typename T, bool kCmp>
__global__ void binaryBcastKernel(BinaryOp op, const T* a, const T* b, void* out, int64_t n, int r,
                                  Dims8 dims, Idx8 sa, Idx8 sb) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    binOne<T, kCmp>(op, a[offsetOf(i, r, dims, sa)], b[offsetOf(i, r, dims, sb)], out, i);
  }
}

// Broadcast float arithmetic over units of V values of the innermost dim (16, 8 or 4 bytes: the
// widest that divides the row and its alignment), where each operand is contiguous (stride 1: V
// values loaded at once) or broadcast (stride 0: one value for all V); squeeze-excite scaling
// [N,C,H,W] x [N,C,1,1] (HW = 196 or 784 rows take 8/16-byte units) and NHWC [N,HW,C] x [N,1,C].
// dims: the innermost dim counted in units; strides in elements (the innermost one times V).
template <int B> struct UnitOf;
template <> struct UnitOf<16> { using type = uint4; };
template <> struct UnitOf<8> { using type = uint2; };
template <> struct UnitOf<4> { using type = uint32_t; };

template <typename T, int V, bool kA1, bool kB1>
__global__ void binaryBcastVecKernel(BinaryOp op, const T* a, const T* b, T* out, int64_t nv, int r, Dims8 dims,
                                     Idx8 sa, Idx8 sb) {
  using U = typename UnitOf<V * sizeof(T)>::type;
  RJ_GRID_STRIDE_LOOP(i, nv) {
    const int64_t oa = offsetOf(i, r, dims, sa), ob = offsetOf(i, r, dims, sb);
    alignas(16) T ea[V], eb[V], eo[V];
    if constexpr (kA1) {
      *reinterpret_cast<U*>(ea) = *reinterpret_cast<const U*>(a + oa);
    } else {
      const T v = a[oa];
#pragma unroll
      for (int j = 0; j < V; ++j) ea[j] = v;
    }
    if constexpr (kB1) {
      *reinterpret_cast<U*>(eb) = *reinterpret_cast<const U*>(b + ob);
    } else {
      const T v = b[ob];
#pragma unroll
      for (int j = 0; j < V; ++j) eb[j] = v;
    }
#pragma unroll
    for (int j = 0; j < V; ++j) eo[j] = fromF<T>(binArith<float>(op, toF(ea[j]), toF(eb[j])));
    reinterpret_cast<U*>(out)[i] = *reinterpret_cast<const U*>(eo);
  }
}

__global__ void logicKernel(BinaryOp op, const uint8_t* a, const uint8_t* b, uint8_t* out,
                            int64_t n, int r, Dims8 dims, Idx8 sa, Idx8 sb) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    bool x = a[offsetOf(i, r, dims, sa)] != 0, y = b[offsetOf(i, r, dims, sb)] != 0;
    out[i] = op == BinaryOp::kAnd ? (x && y) : op == BinaryOp::kOr ? (x || y) : (x != y);
  }
}

template <typename E>
__global__ void whereKernel(const uint8_t* c, const E* x, const E* y, E* out, int64_t n, int r,
                            Dims8 dims, Idx8 sc, Idx8 sx, Idx8 sy) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    out[i] = c[offsetOf(i, r, dims, sc)] ? x[offsetOf(i, r, dims, sx)] : y[offsetOf(i, r, dims, sy)];
  }
}

template <typename T>
__global__ void biasActKernel(const T* x, const T* bias, T* y, int64_t n, int64_t channels,
                              int64_t inner, UnaryOp op, float a, float b) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    float v = toF(x[i]);
    if (bias) v += toF(bias[(i / inner) % channels]);
    y[i] = fromF<T>(applyUnary(op, v, a, b));
  }
}

// 16-byte vectors; each element still finds its own channel (works for NCHW and NHWC).
// kOp >= 0: the activation fixed at compile time (the common epilogues: no per-element switch).
template <typename T, int kOp>
__global__ void biasActVecKernel(const T* x, const T* bias, T* y, int64_t n, int64_t channels,
                                 int64_t inner, UnaryOp op_rt, float a, float b, bool small, FastDiv f_inner,
                                 FastDiv f_ch, FastDiv f_chv) {
  constexpr int V = 16 / sizeof(T);
  const UnaryOp op = kOp >= 0 ? static_cast<UnaryOp>(kOp) : op_rt;
  int64_t nv = n / V;
  RJ_GRID_STRIDE_LOOP(i, nv) {
    uint4 raw = reinterpret_cast<const uint4*>(x)[i];
    T* e = reinterpret_cast<T*>(&raw);
    // The vector's first channel; 32-bit multiply-shift division when indices fit (64-bit
    // division is emulated and dominated this memory-bound kernel).
    int64_t c0;
    if (inner == 1) {  // channels % V == 0: the vector is channels c0 .. c0 + V - 1
      int64_t rem = i;
      c0 = divmod(rem, channels / V, f_chv, small) * V;
    } else {  // inner % V == 0: one channel for the whole vector
      int64_t rem = i * V;
      divmod(rem, inner, f_inner, small);
      c0 = divmod(rem, channels, f_ch, small);
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float v = toF(e[j]);
      if (bias) v += toF(bias[inner == 1 ? c0 + j : c0]);
      e[j] = fromF<T>(applyUnary(op, v, a, b));
    }
    reinterpret_cast<uint4*>(y)[i] = raw;
  }
}

template <typename E>
__global__ void gatherStridedKernel(const E* in, E* out, int64_t n, int r, Dims8 dims, Idx8 st) {
  RJ_GRID_STRIDE_LOOP(i, n) out[i] = in[offsetOf(i, r, dims, st)];
}

template <typename E>
__global__ void tileKernel(const E* in, E* out, int64_t n, int r, Dims8 out_dims, Dims8 in_dims,
                           Idx8 in_strides) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t rem = i, off = 0;
    for (int d = r - 1; d >= 0; --d) {
      int64_t c = divmod(rem, out_dims.v[d], out_dims.f[d], out_dims.small);
      int64_t q = c;
      off += divmod(q, in_dims.v[d], in_dims.f[d], out_dims.small) * in_strides.v[d];
    }
    out[i] = in[off];
  }
}

}  // namespace

// ------------------------------------------------------------------------------ host side
Status checkDims(const char* what, const std::vector<int64_t>& dims) {
  if (dims.size() > static_cast<size_t>(kMaxRank))
    return makeError(StatusCode::kUnsupported, what, ": rank ", dims.size(),
                     " exceeds the CUDA kernels' limit of ", kMaxRank);
  for (int64_t d : dims)
    if (d < 0) return makeError(StatusCode::kInvalidArgument, what, ": negative dim in ", dimsToString(dims));
  return Status::Ok();
}
int64_t product(const std::vector<int64_t>& dims) {
  int64_t p = 1;
  for (int64_t d : dims) p *= d;
  return p;
}

void mergeBroadcastDims(std::vector<int64_t>* out_dims, std::vector<std::vector<int64_t>>* strides) {
  // Drop size-1 dims, then merge d-1 into d when for every operand st[d-1] == st[d]*dims[d].
  std::vector<int64_t> od;
  std::vector<std::vector<int64_t>> st(strides->size());
  for (size_t d = 0; d < out_dims->size(); ++d) {
    if ((*out_dims)[d] == 1) continue;
    bool merge = !od.empty();
    if (merge)
      for (size_t k = 0; k < strides->size(); ++k)
        if (st[k].back() != (*strides)[k][d] * (*out_dims)[d]) merge = false;
    if (merge) {
      od.back() *= (*out_dims)[d];
      for (size_t k = 0; k < strides->size(); ++k) st[k].back() = (*strides)[k][d];
    } else {
      od.push_back((*out_dims)[d]);
      for (size_t k = 0; k < strides->size(); ++k) st[k].push_back((*strides)[k][d]);
    }
  }
  *out_dims = od;
  *strides = st;
}

Status checkLaunch(const char* what) {
  RJ_CUDA_CHECK_LAUNCH(what);
  return Status::Ok();
}

const char* unaryOpName(UnaryOp op) {
  static const char* names[] = {"Relu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Gelu",
                                "GeluTanh", "Erf", "Exp", "Log", "Sqrt", "Reciprocal", "Neg",
                                "Abs", "Clip", "LeakyRelu", "Elu", "Selu", "Mish", "Softplus",
                                "Silu", "Floor", "Ceil", "Round", "Sin", "Cos", "Sign",
                                "Identity"};
  return names[static_cast<int>(op)];
}
const char* binaryOpName(BinaryOp op) {
  static const char* names[] = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Mod", "Equal",
                                "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or",
                                "Xor", "PRelu"};
  return names[static_cast<int>(op)];
}
bool binaryOpIsComparison(BinaryOp op) {
  return op == BinaryOp::kEqual || op == BinaryOp::kLess || op == BinaryOp::kLessOrEqual ||
         op == BinaryOp::kGreater || op == BinaryOp::kGreaterOrEqual;
}

Status unary(UnaryOp op, DataType dtype, const void* x, void* y, int64_t n, const UnaryParams& p,
             cudaStream_t stream) {
  if (n < 0) return makeError(StatusCode::kInvalidArgument, "unary ", unaryOpName(op), ": negative count");
  if (n == 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (aligned16(x) && aligned16(y))
      unaryKernel<T><<<gridFor(n / (16 / sizeof(T)) + 1), kThreads, 0, stream>>>(
          op, static_cast<const T*>(x), static_cast<T*>(y), n, p.alpha, p.beta);
    else
      unaryScalarKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
          op, static_cast<const T*>(x), static_cast<T*>(y), n, p.alpha, p.beta);
  });
  if (!ok) {
    bool int_op = op == UnaryOp::kNeg || op == UnaryOp::kAbs || op == UnaryOp::kSign ||
                  op == UnaryOp::kRelu || op == UnaryOp::kIdentity;
    if (int_op && dtype == DataType::kInt32)
      unaryIntKernel<int32_t><<<gridFor(n), kThreads, 0, stream>>>(
          op, static_cast<const int32_t*>(x), static_cast<int32_t*>(y), n);
    else if (int_op && dtype == DataType::kInt64)
      unaryIntKernel<int64_t><<<gridFor(n), kThreads, 0, stream>>>(
          op, static_cast<const int64_t*>(x), static_cast<int64_t*>(y), n);
    else
      return makeError(StatusCode::kUnsupported, "unary ", unaryOpName(op), ": element type ",
                       dataTypeName(dtype), " not supported on CUDA");
  }
  RJ_CUDA_CHECK_LAUNCH(unaryOpName(op));
  return Status::Ok();
}

Status cast(DataType from, const void* x, DataType to, void* y, int64_t n, cudaStream_t stream) {
  if (n == 0) return Status::Ok();
  bool inner_ok = true;
  bool ok = visitCastType(from, [&](auto ftag) {
    using F = typename decltype(ftag)::type;
    inner_ok = visitCastType(to, [&](auto ttag) {
      using T = typename decltype(ttag)::type;
      castKernel<F, T><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const F*>(x),
                                                             static_cast<T*>(y), n);
    });
  });
  if (!ok || !inner_ok)
    return makeError(StatusCode::kUnsupported, "Cast from ", dataTypeName(from), " to ",
                     dataTypeName(to), " is not supported on CUDA");
  RJ_CUDA_CHECK_LAUNCH("Cast");
  return Status::Ok();
}

// Launches binaryBcastVecKernel with units of UB bytes when the merged broadcast fits them;
// false: the caller tries narrower units or falls back.
template <typename T, int UB>
bool bcastVecUnits(BinaryOp op, const T* a, const T* b, T* out, int64_t n, const std::vector<int64_t>& dims,
                   const std::vector<std::vector<int64_t>>& st, cudaStream_t stream) {
  constexpr int V = UB / sizeof(T);
  if constexpr (V < 2) {
    return false;
  } else {
    auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) % UB) == 0; };
    const int r = static_cast<int>(dims.size());
    if (r == 0 || dims.back() % V != 0 || !aligned(out)) return false;
    const int64_t la = st[0].back(), lb = st[1].back();
    if ((la != 0 && la != 1) || (lb != 0 && lb != 1) || (la == 0 && lb == 0)) return false;
    const void* ptrs[2] = {a, b};
    for (int k = 0; k < 2; ++k) {
      if (st[k].back() != 1) continue;
      if (!aligned(ptrs[k])) return false;
      for (int64_t x : st[k])
        if (x != 1 && x % V != 0) return false;
    }
    std::vector<int64_t> dv = dims;
    dv.back() /= V;
    std::vector<int64_t> sa = st[0], sb = st[1];
    sa.back() *= V;
    sb.back() *= V;
    const int64_t nv = n / V;
    const Dims8 d8 = toDims8(dv);
    const Idx8 a8 = toIdx8(sa, 0), b8 = toIdx8(sb, 0);
    if (la == 1 && lb == 1)
      binaryBcastVecKernel<T, V, true, true><<<gridFor(nv), kThreads, 0, stream>>>(op, a, b, out, nv, r, d8, a8, b8);
    else if (la == 1)
      binaryBcastVecKernel<T, V, true, false><<<gridFor(nv), kThreads, 0, stream>>>(op, a, b, out, nv, r, d8, a8, b8);
    else
      binaryBcastVecKernel<T, V, false, true><<<gridFor(nv), kThreads, 0, stream>>>(op, a, b, out, nv, r, d8, a8, b8);
    return true;
  }
}
template <typename T>
bool bcastVec(BinaryOp op, const T* a, const T* b, T* out, int64_t n, const std::vector<int64_t>& dims,
              const std::vector<std::vector<int64_t>>& st, cudaStream_t stream) {
  return bcastVecUnits<T, 16>(op, a, b, out, n, dims, st, stream) ||
         bcastVecUnits<T, 8>(op, a, b, out, n, dims, st, stream) ||
         bcastVecUnits<T, 4>(op, a, b, out, n, dims, st, stream);
}

Status binary(BinaryOp op, DataType dtype, const void* a, const std::vector<int64_t>& a_dims,
              const void* b, const std::vector<int64_t>& b_dims, void* out,
              const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  const char* name = binaryOpName(op);
  RJ_RETURN_IF_ERROR(checkDims(name, out_dims));
  if (a_dims.size() > out_dims.size() || b_dims.size() > out_dims.size())
    return makeError(StatusCode::kInvalidArgument, name, ": input rank exceeds output rank ",
                     dimsToString(out_dims));
  for (int k = 0; k < 2; ++k) {
    const auto& in = k == 0 ? a_dims : b_dims;
    for (size_t i = 0; i < in.size(); ++i) {
      int64_t o = out_dims[out_dims.size() - in.size() + i];
      if (in[i] != o && in[i] != 1)
        return makeError(StatusCode::kInvalidArgument, name, ": input ", dimsToString(in),
                         " does not broadcast to ", dimsToString(out_dims));
    }
  }
  int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  std::vector<int64_t> dims = out_dims;
  std::vector<std::vector<int64_t>> st = {broadcastStrides(a_dims, out_dims),
                                          broadcastStrides(b_dims, out_dims)};
  mergeBroadcastDims(&dims, &st);
  int r = static_cast<int>(dims.size());
  bool same = r <= 1 && (r == 0 || (st[0][0] == 1 && st[1][0] == 1));
  if (r == 0) st = {{}, {}};
  Dims8 di = toDims8(dims);
  Idx8 sa = toIdx8(st[0], 0), sb = toIdx8(st[1], 0);

  if (op == BinaryOp::kAnd || op == BinaryOp::kOr || op == BinaryOp::kXor) {
    if (dtype != DataType::kBool)
      return makeError(StatusCode::kInvalidArgument, name, ": needs bool inputs, got ", dataTypeName(dtype));
    logicKernel<<<gridFor(n), kThreads, 0, stream>>>(op, static_cast<const uint8_t*>(a),
                                                      static_cast<const uint8_t*>(b),
                                                      static_cast<uint8_t*>(out), n, r, di, sa, sb);
    RJ_CUDA_CHECK_LAUNCH(name);
    return Status::Ok();
  }
  bool cmp = binaryOpIsComparison(op);
  auto launch = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = static_cast<const T*>(a);
    const T* pb = static_cast<const T*>(b);
    if (cmp) {
      if (same) binarySameKernel<T, true><<<gridFor(n), kThreads, 0, stream>>>(op, pa, pb, out, n);
      else binaryBcastKernel<T, true><<<gridFor(n), kThreads, 0, stream>>>(op, pa, pb, out, n, r, di, sa, sb);
    } else if constexpr (std::is_same_v<T, float> || std::is_same_v<T, __half>) {
      if (same && aligned16(a) && aligned16(b) && aligned16(out))
        binarySameVecKernel<T><<<gridFor(n / (16 / sizeof(T)) + 1), kThreads, 0, stream>>>(
            op, pa, pb, static_cast<T*>(out), n);
      else if (same) binarySameKernel<T, false><<<gridFor(n), kThreads, 0, stream>>>(op, pa, pb, out, n);
      else if (!bcastVec<T>(op, pa, pb, static_cast<T*>(out), n, dims, st, stream))
        binaryBcastKernel<T, false><<<gridFor(n), kThreads, 0, stream>>>(op, pa, pb, out, n, r, di, sa, sb);
    } else {
      if (same) binarySameKernel<T, false><<<gridFor(n), kThreads, 0, stream>>>(op, pa, pb, out, n);
      else binaryBcastKernel<T, false><<<gridFor(n), kThreads, 0, stream>>>(op, pa, pb, out, n, r, di, sa, sb);
    }
  };
  switch (dtype) {
    case DataType::kFloat32: launch(DevTag<float>{}); break;
    case DataType::kFloat16: launch(DevTag<__half>{}); break;
    case DataType::kInt32: launch(DevTag<int32_t>{}); break;
    case DataType::kInt64: launch(DevTag<int64_t>{}); break;
    default:
      return makeError(StatusCode::kUnsupported, name, ": element type ", dataTypeName(dtype),
                       " not supported on CUDA");
  }
  RJ_CUDA_CHECK_LAUNCH(name);
  return Status::Ok();
}

Status where(DataType dtype, const void* cond, const std::vector<int64_t>& cond_dims,
             const void* x, const std::vector<int64_t>& x_dims, const void* y,
             const std::vector<int64_t>& y_dims, void* out, const std::vector<int64_t>& out_dims,
             cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("Where", out_dims));
  for (const auto* in : {&cond_dims, &x_dims, &y_dims}) {
    if (in->size() > out_dims.size())
      return makeError(StatusCode::kInvalidArgument, "Where: input rank exceeds output rank");
    for (size_t i = 0; i < in->size(); ++i) {
      int64_t o = out_dims[out_dims.size() - in->size() + i];
      if ((*in)[i] != o && (*in)[i] != 1)
        return makeError(StatusCode::kInvalidArgument, "Where: input ", dimsToString(*in),
                         " does not broadcast to ", dimsToString(out_dims));
    }
  }
  int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  std::vector<int64_t> dims = out_dims;
  std::vector<std::vector<int64_t>> st = {broadcastStrides(cond_dims, out_dims),
                                          broadcastStrides(x_dims, out_dims),
                                          broadcastStrides(y_dims, out_dims)};
  mergeBroadcastDims(&dims, &st);
  int r = static_cast<int>(dims.size());
  if (r == 0) st = {{}, {}, {}};
  bool ok = visitElemSize(dataTypeSize(dtype), [&](auto tag) {
    using E = typename decltype(tag)::type;
    whereKernel<E><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const uint8_t*>(cond), static_cast<const E*>(x), static_cast<const E*>(y),
        static_cast<E*>(out), n, r, toDims8(dims), toIdx8(st[0], 0), toIdx8(st[1], 0),
        toIdx8(st[2], 0));
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "Where: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("Where");
  return Status::Ok();
}

Status biasActivation(DataType dtype, const void* x, const void* bias, void* y, int64_t outer,
                      int64_t channels, int64_t inner, UnaryOp act, const UnaryParams& p,
                      cudaStream_t stream) {
  int64_t n = outer * channels * inner;
  if (n == 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = 16 / sizeof(T);
    // Vector path when a vector never straddles two channels (NCHW: inner % V == 0) or is a
    // run of consecutive channels (NHWC: inner == 1, channels % V == 0).
    bool vec = aligned16(x) && aligned16(y) && n % V == 0 &&
               (inner % V == 0 || (inner == 1 && channels % V == 0));
    auto launchVec = [&](auto op_tag) {
      constexpr int kOp = decltype(op_tag)::value;
      biasActVecKernel<T, kOp><<<gridFor(n / V), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<T*>(y), n, channels,
          inner, act, p.alpha, p.beta, fastIndex(n), makeFastDiv(inner), makeFastDiv(channels),
          makeFastDiv(channels / V));
    };
    if (vec) {
      switch (act) {
        case UnaryOp::kGelu: launchVec(std::integral_constant<int, static_cast<int>(UnaryOp::kGelu)>{}); break;
        case UnaryOp::kSilu: launchVec(std::integral_constant<int, static_cast<int>(UnaryOp::kSilu)>{}); break;
        case UnaryOp::kRelu: launchVec(std::integral_constant<int, static_cast<int>(UnaryOp::kRelu)>{}); break;
        case UnaryOp::kIdentity: launchVec(std::integral_constant<int, static_cast<int>(UnaryOp::kIdentity)>{}); break;
        default: launchVec(std::integral_constant<int, -1>{}); break;
      }
    } else {
      biasActKernel<T><<<gridFor(n), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<const T*>(bias), static_cast<T*>(y), n, channels,
          inner, act, p.alpha, p.beta);
    }
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "biasActivation: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("biasActivation");
  return Status::Ok();
}

Status broadcastCopy(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
                     void* out, const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("Expand", out_dims));
  if (in_dims.size() > out_dims.size())
    return makeError(StatusCode::kInvalidArgument, "Expand: input ", dimsToString(in_dims),
                     " has higher rank than output ", dimsToString(out_dims));
  for (size_t i = 0; i < in_dims.size(); ++i) {
    int64_t o = out_dims[out_dims.size() - in_dims.size() + i];
    if (in_dims[i] != o && in_dims[i] != 1)
      return makeError(StatusCode::kInvalidArgument, "Expand: input ", dimsToString(in_dims),
                       " does not broadcast to ", dimsToString(out_dims));
  }
  int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  std::vector<int64_t> dims = out_dims;
  std::vector<std::vector<int64_t>> st = {broadcastStrides(in_dims, out_dims)};
  mergeBroadcastDims(&dims, &st);
  int r = static_cast<int>(dims.size());
  if (r == 0) st = {{}};
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    gatherStridedKernel<E><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const E*>(in), static_cast<E*>(out), n, r, toDims8(dims), toIdx8(st[0], 0));
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "Expand: element size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("Expand");
  return Status::Ok();
}

Status tile(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
            const std::vector<int64_t>& repeats, void* out, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("Tile", in_dims));
  if (repeats.size() != in_dims.size())
    return makeError(StatusCode::kInvalidArgument, "Tile: ", repeats.size(),
                     " repeats for an input of rank ", in_dims.size());
  std::vector<int64_t> out_dims(in_dims.size());
  for (size_t i = 0; i < in_dims.size(); ++i) {
    if (repeats[i] < 0) return makeError(StatusCode::kInvalidArgument, "Tile: negative repeat");
    out_dims[i] = in_dims[i] * repeats[i];
  }
  int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  int r = static_cast<int>(in_dims.size());
  std::vector<int64_t> st(r);
  int64_t s = 1;
  for (int i = r - 1; i >= 0; --i) { st[i] = s; s *= in_dims[i]; }
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    tileKernel<E><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(in),
                                                        static_cast<E*>(out), n, r,
                                                        toDims8(out_dims), toDims8(in_dims),
                                                        toIdx8(st, 0));
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "Tile: element size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("Tile");
  return Status::Ok();
}

}  // namespace ramjet::cuda
