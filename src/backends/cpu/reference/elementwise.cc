// Reference kernels for elementwise ops: one generic unary map and one broadcasting binary map,
// each driven by a small lambda. Values are computed in the element type's accumulation type
// (float for f16/bf16); integer arithmetic wraps (two's complement) instead of being undefined.
#include <atomic>
#include <cmath>
#include <limits>
#include <type_traits>

#include "backends/cpu/reference/broadcast.h"
#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

using reference::forEachBroadcastRow;

enum : unsigned { kF = 1, kS = 2, kU = 4, kB = 8, kI = kS | kU, kNum = kF | kI, kAny = kNum | kB };

template <typename T>
constexpr unsigned classOfT() {
  if constexpr (std::is_same_v<T, bool>) return kB;
  else if constexpr (std::is_same_v<T, Half> || std::is_same_v<T, BFloat16> || std::is_floating_point_v<T>) return kF;
  else if constexpr (std::is_signed_v<T>) return kS;
  else return kU;
}

// Calls f(TypeTag<T>) when dt's class is in C (other types are not even instantiated).
template <unsigned C, typename F>
bool visitClass(DataType dt, F&& f) {
  bool hit = false;
  visitType(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr ((classOfT<T>() & C) != 0) {
      hit = true;
      f(tag);
    }
  });
  return hit;
}

template <typename T>
using Acc = typename AccType<T>::type;
// For float math that the spec also allows on integers (Erf, Shrink): integers go through double.
template <typename T>
using MathT = std::conditional_t<std::is_integral_v<T>, double, Acc<T>>;

// Unsigned type wide enough that x*y does not promote to (overflowing) signed int.
template <typename V>
using WrapT = std::conditional_t<(sizeof(V) < 4), uint32_t, std::make_unsigned_t<V>>;

template <typename V>
V wrapNeg(V x) {
  if constexpr (std::is_integral_v<V>) return static_cast<V>(WrapT<V>(0) - static_cast<WrapT<V>>(x));
  else return -x;
}

Status badType(KernelContext& ctx, DataType dt) {
  return ctx.unsupported("element type ", dataTypeName(dt), " is not supported by ", ctx.node.op_type);
}

// The preallocated output when it matches, else a fresh one (shapes inference could not pin).
Tensor& outputFor(KernelContext& ctx, DataType dt, const std::vector<int64_t>& dims) {
  Tensor& o = ctx.output(0);
  if (!o.defined() || o.dtype() != dt || o.dims() != dims) return ctx.allocOutput(0, dt, dims);
  return o;
}

// ---- generic maps ----
// Large maps are split over the reference backend's thread pool (parallelRange; not OpenMP,
// whose spinning barriers stall on a loaded machine); the lambdas are pure (Div and Mod only
// raise an atomic flag).
constexpr int64_t kParallelMin = 65536;

// out[i] = f(Cmp(in[i])) converted to Tout; `in` and `out` may be the same tensor.
template <typename Tin, typename Tout, typename Cmp, typename F>
void mapUnary(const Tensor& in, Tensor& out, F f) {
  const Tin* p = in.data<Tin>();
  Tout* q = out.data<Tout>();
  auto run = [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) q[i] = static_cast<Tout>(f(static_cast<Cmp>(p[i])));
  };
  const int64_t n = in.numel();
  if (n > kParallelMin) reference::parallelRange(n, kParallelMin / 2, run);
  else run(0, n);
}

// out = f(a, b) with numpy broadcasting; `a` may be `out` itself when it has out's shape.
template <typename Ta, typename Tb, typename To, typename Ca, typename Cb, typename F>
void mapBinary(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const Ta* pa = a.data<Ta>();
  const Tb* pb = b.data<Tb>();
  To* po = out.data<To>();
  auto g = [&f](Ta u, Tb v) { return static_cast<To>(f(static_cast<Ca>(u), static_cast<Cb>(v))); };
  forEachBroadcastRow<2>({&a.dims(), &b.dims()}, out.dims(),
                         [&](const int64_t* off, int64_t o, int64_t n, const int64_t* s) {
    const Ta* x = pa + off[0];
    const Tb* y = pb + off[1];
    To* z = po + o;
    if (s[0] == 1 && s[1] == 1) {
      for (int64_t i = 0; i < n; ++i) z[i] = g(x[i], y[i]);
    } else if (s[0] == 1 && s[1] == 0) {
      const Tb v = y[0];
      for (int64_t i = 0; i < n; ++i) z[i] = g(x[i], v);
    } else if (s[0] == 0 && s[1] == 1) {
      const Ta u = x[0];
      for (int64_t i = 0; i < n; ++i) z[i] = g(u, y[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) z[i] = g(x[i * s[0]], y[i * s[1]]);
    }
  }, kParallelMin);
}

// ---- op shapes ----

// Same-type unary op over the classes in C; kMath computes integers in double.
template <unsigned C, bool kMath = false, typename F>
Status unaryOp(KernelContext& ctx, F f) {
  const Tensor& x = ctx.input(0);
  Tensor& out = outputFor(ctx, x.dtype(), x.dims());
  bool ok = visitClass<C>(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    mapUnary<T, T, std::conditional_t<kMath, MathT<T>, Acc<T>>>(x, out, f);
  });
  return ok ? Status::Ok() : badType(ctx, x.dtype());
}

// Floating-point predicate -> bool tensor.
template <typename F>
Status floatPredicate(KernelContext& ctx, F f) {
  const Tensor& x = ctx.input(0);
  Tensor& out = outputFor(ctx, DataType::kBool, x.dims());
  bool ok = visitClass<kF>(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    mapUnary<T, bool, Acc<T>>(x, out, f);
  });
  return ok ? Status::Ok() : badType(ctx, x.dtype());
}

// Two inputs of one type in C; output of that type, or bool for comparisons.
template <unsigned C, bool kBoolOut = false, typename F>
Status binaryOp(KernelContext& ctx, F f) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype())
    return ctx.error("input types differ: ", dataTypeName(a.dtype()), " vs ", dataTypeName(b.dtype()));
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> dims, broadcastDims({a.dims(), b.dims()}, ctx.node));
  Tensor& out = outputFor(ctx, kBoolOut ? DataType::kBool : a.dtype(), dims);
  bool ok = visitClass<C>(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    mapBinary<T, T, std::conditional_t<kBoolOut, bool, T>, Acc<T>, Acc<T>>(a, b, out, f);
  });
  return ok ? Status::Ok() : badType(ctx, a.dtype());
}

// Any number of same-type inputs folded left with f; kMean divides by the count at the end.
template <unsigned C, bool kMean = false, typename F>
Status variadicOp(KernelContext& ctx, F f) {
  const size_t n = ctx.inputs.size();
  if (n == 0) return ctx.error("needs at least one input");
  std::vector<std::vector<int64_t>> all;
  for (size_t i = 0; i < n; ++i) {
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
    if (ctx.input(i).dtype() != ctx.input(0).dtype())
      return ctx.error("input ", i, " is ", dataTypeName(ctx.input(i).dtype()), " but input 0 is ",
                       dataTypeName(ctx.input(0).dtype()));
    all.push_back(ctx.input(i).dims());
  }
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> dims, broadcastDims(all, ctx.node));
  const DataType dt = ctx.input(0).dtype();
  Tensor& out = outputFor(ctx, dt, dims);
  bool ok = visitClass<C>(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = Acc<T>;
    if (n == 1) {
      mapBinary<T, T, T, A, A>(ctx.input(0), ctx.input(0), out, [](A x, A) { return x; });
    } else {
      mapBinary<T, T, T, A, A>(ctx.input(0), ctx.input(1), out, f);
      for (size_t i = 2; i < n; ++i) mapBinary<T, T, T, A, A>(out, ctx.input(i), out, f);
    }
    if constexpr (kMean) {
      const A count = static_cast<A>(n);
      mapUnary<T, T, A>(out, out, [count](A x) { return x / count; });
    }
  });
  return ok ? Status::Ok() : badType(ctx, dt);
}

}  // namespace

Status refIdentity(KernelContext& ctx) {
  ctx.outputs[0] = ctx.input(0);  // shares storage: tensors are immutable once produced
  return Status::Ok();
}

// ---- unary math ----

Status refAbs(KernelContext& ctx) {
  return unaryOp<kNum>(ctx, [](auto x) {
    using V = decltype(x);
    if constexpr (std::is_unsigned_v<V>) return x;
    else if constexpr (std::is_integral_v<V>) return x < 0 ? wrapNeg(x) : x;
    else return std::abs(x);
  });
}
Status refNeg(KernelContext& ctx) { return unaryOp<kF | kS>(ctx, [](auto x) { return wrapNeg(x); }); }
Status refSign(KernelContext& ctx) {
  return unaryOp<kNum>(ctx, [](auto x) {
    using V = decltype(x);
    if constexpr (std::is_unsigned_v<V>) return V(x > 0 ? 1 : 0);
    else return x > 0 ? V(1) : (x < 0 ? V(-1) : x);  // keeps 0 and NaN
  });
}

#define RJ_FLOAT_UNARY(Name, expr) \
  Status ref##Name(KernelContext& ctx) { return unaryOp<kF>(ctx, [](auto x) { return expr; }); }
RJ_FLOAT_UNARY(Sqrt, std::sqrt(x))
RJ_FLOAT_UNARY(Exp, std::exp(x))
RJ_FLOAT_UNARY(Log, std::log(x))
RJ_FLOAT_UNARY(Reciprocal, decltype(x)(1) / x)
RJ_FLOAT_UNARY(Floor, std::floor(x))
RJ_FLOAT_UNARY(Ceil, std::ceil(x))
RJ_FLOAT_UNARY(Round, std::nearbyint(x))  // default rounding mode: half to even, as ONNX wants
RJ_FLOAT_UNARY(Sin, std::sin(x))
RJ_FLOAT_UNARY(Cos, std::cos(x))
RJ_FLOAT_UNARY(Tan, std::tan(x))
RJ_FLOAT_UNARY(Asin, std::asin(x))
RJ_FLOAT_UNARY(Acos, std::acos(x))
RJ_FLOAT_UNARY(Atan, std::atan(x))
RJ_FLOAT_UNARY(Sinh, std::sinh(x))
RJ_FLOAT_UNARY(Cosh, std::cosh(x))
RJ_FLOAT_UNARY(Asinh, std::asinh(x))
RJ_FLOAT_UNARY(Acosh, std::acosh(x))
RJ_FLOAT_UNARY(Atanh, std::atanh(x))
RJ_FLOAT_UNARY(Tanh, std::tanh(x))
RJ_FLOAT_UNARY(Softsign, x / (decltype(x)(1) + std::abs(x)))
#undef RJ_FLOAT_UNARY

Status refErf(KernelContext& ctx) {
  return unaryOp<kNum, true>(ctx, [](auto x) { return std::erf(x); });
}
Status refIsNaN(KernelContext& ctx) {
  return floatPredicate(ctx, [](auto x) { return std::isnan(x); });
}
Status refIsInf(KernelContext& ctx) {
  const bool neg = ctx.node.attrInt("detect_negative", 1) != 0;
  const bool pos = ctx.node.attrInt("detect_positive", 1) != 0;
  return floatPredicate(ctx, [=](auto x) { return std::isinf(x) && (x > 0 ? pos : neg); });
}
Status refNot(KernelContext& ctx) { return unaryOp<kB>(ctx, [](bool x) { return !x; }); }
Status refBitwiseNot(KernelContext& ctx) { return unaryOp<kI>(ctx, [](auto x) { return ~x; }); }

// ---- activations ----

Status refRelu(KernelContext& ctx) {
  return unaryOp<kF | kS>(ctx, [](auto x) { return x > 0 ? x : decltype(x)(0); });
}
Status refLeakyRelu(KernelContext& ctx) {
  const float alpha = ctx.node.attrFloat("alpha", 0.01f);
  return unaryOp<kF>(ctx, [=](auto x) { return x >= 0 ? x : decltype(x)(alpha) * x; });
}
Status refElu(KernelContext& ctx) {
  const float alpha = ctx.node.attrFloat("alpha", 1.f);
  return unaryOp<kF>(ctx, [=](auto x) { return x >= 0 ? x : decltype(x)(alpha) * std::expm1(x); });
}
Status refSelu(KernelContext& ctx) {
  const float alpha = ctx.node.attrFloat("alpha", 1.67326319217681884765625f);
  const float gamma = ctx.node.attrFloat("gamma", 1.05070102214813232421875f);
  return unaryOp<kF>(ctx, [=](auto x) {
    using V = decltype(x);
    return V(gamma) * (x > 0 ? x : V(alpha) * std::expm1(x));
  });
}
Status refCelu(KernelContext& ctx) {
  const float alpha = ctx.node.attrFloat("alpha", 1.f);
  if (alpha == 0.f) return ctx.error("attribute alpha must not be 0");
  return unaryOp<kF>(ctx, [=](auto x) {
    using V = decltype(x);
    return x > 0 ? x : V(alpha) * std::expm1(x / V(alpha));
  });
}
Status refSigmoid(KernelContext& ctx) {
  return unaryOp<kF>(ctx, [](auto x) {
    using V = decltype(x);
    if (x >= 0) return V(1) / (V(1) + std::exp(-x));
    V e = std::exp(x);  // no overflow for very negative x
    return e / (V(1) + e);
  });
}
Status refHardSigmoid(KernelContext& ctx) {
  const float alpha = ctx.node.attrFloat("alpha", 0.2f), beta = ctx.node.attrFloat("beta", 0.5f);
  return unaryOp<kF>(ctx, [=](auto x) {
    using V = decltype(x);
    return std::max(V(0), std::min(V(1), V(alpha) * x + V(beta)));
  });
}
Status refHardSwish(KernelContext& ctx) {
  return unaryOp<kF>(ctx, [](auto x) {
    using V = decltype(x);
    return x * std::max(V(0), std::min(V(1), x / V(6) + V(0.5)));
  });
}

template <typename V>
static V softplus(V x) {  // log(1 + exp(x)) without overflow
  return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
Status refSoftplus(KernelContext& ctx) { return unaryOp<kF>(ctx, [](auto x) { return softplus(x); }); }
Status refMish(KernelContext& ctx) {
  return unaryOp<kF>(ctx, [](auto x) { return x * std::tanh(softplus(x)); });
}
Status refThresholdedRelu(KernelContext& ctx) {
  const float alpha = ctx.node.attrFloat("alpha", 1.f);
  return unaryOp<kF>(ctx, [=](auto x) { return x > decltype(x)(alpha) ? x : decltype(x)(0); });
}
Status refShrink(KernelContext& ctx) {
  const double lambd = ctx.node.attrFloat("lambd", 0.5f), bias = ctx.node.attrFloat("bias", 0.f);
  return unaryOp<kNum, true>(ctx, [=](auto x) {
    using V = decltype(x);
    return x < V(-lambd) ? x + V(bias) : (x > V(lambd) ? x - V(bias) : V(0));
  });
}
Status refGelu(KernelContext& ctx) {
  std::string approx = ctx.node.attrString("approximate", "none");
  if (approx == "tanh")
    return unaryOp<kF>(ctx, [](auto x) {
      using V = decltype(x);
      const V k = V(0.7978845608028654);  // sqrt(2/pi)
      return V(0.5) * x * (V(1) + std::tanh(k * (x + V(0.044715) * x * x * x)));
    });
  if (approx != "none") return ctx.error("attribute approximate must be 'none' or 'tanh', got '", approx, "'");
  return unaryOp<kF>(ctx, [](auto x) {
    using V = decltype(x);
    return V(0.5) * x * (V(1) + std::erf(x * V(0.7071067811865476)));
  });
}
Status refPRelu(KernelContext& ctx) {
  return binaryOp<kNum>(ctx, [](auto x, auto slope) {
    using V = decltype(x);
    if constexpr (std::is_unsigned_v<V>) return x;
    else return x < 0 ? V(slope * x) : x;
  });
}

// min/max are optional scalars of any numeric type (see inferClip); absent bounds don't clip.
Status refClip(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  for (size_t i = 1; i < 3; ++i)
    if (ctx.hasInput(i) && ctx.input(i).numel() != 1)
      return ctx.error(i == 1 ? "min" : "max", " must be a scalar, got shape ", dimsToString(ctx.input(i).dims()));
  Tensor& out = outputFor(ctx, x.dtype(), x.dims());
  bool ok = visitClass<kNum>(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    using A = Acc<T>;
    auto bound = [&](size_t i, A def) -> A {
      if (!ctx.hasInput(i)) return def;
      if constexpr (std::is_integral_v<A>) {  // clamp to A's range instead of wrapping
        int64_t v = ctx.input(i).getInt(0);
        if constexpr (std::is_unsigned_v<A>) {
          if (v < 0) return A(0);
          if (static_cast<uint64_t>(v) > std::numeric_limits<A>::max()) return std::numeric_limits<A>::max();
        } else {
          if (v < std::numeric_limits<A>::lowest()) return std::numeric_limits<A>::lowest();
          if (v > std::numeric_limits<A>::max()) return std::numeric_limits<A>::max();
        }
        return static_cast<A>(v);
      } else {
        return static_cast<A>(ctx.input(i).getDouble(0));
      }
    };
    A lo, hi;
    if constexpr (std::is_integral_v<A>) {
      lo = bound(1, std::numeric_limits<A>::lowest());
      hi = bound(2, std::numeric_limits<A>::max());
    } else {
      lo = bound(1, -std::numeric_limits<A>::infinity());
      hi = bound(2, std::numeric_limits<A>::infinity());
    }
    // max wins when min > max (ONNX: "all values become max"); NaN passes through.
    mapUnary<T, T, A>(x, out, [lo, hi](A v) {
      v = v < lo ? lo : v;
      return v > hi ? hi : v;
    });
  });
  return ok ? Status::Ok() : badType(ctx, x.dtype());
}

// ---- binary arithmetic ----

Status refAdd(KernelContext& ctx) {
  return binaryOp<kNum>(ctx, [](auto x, auto y) {
    using V = decltype(x);
    if constexpr (std::is_integral_v<V>) return V(WrapT<V>(x) + WrapT<V>(y));
    else return x + y;
  });
}
Status refSub(KernelContext& ctx) {
  return binaryOp<kNum>(ctx, [](auto x, auto y) {
    using V = decltype(x);
    if constexpr (std::is_integral_v<V>) return V(WrapT<V>(x) - WrapT<V>(y));
    else return x - y;
  });
}
Status refMul(KernelContext& ctx) {
  return binaryOp<kNum>(ctx, [](auto x, auto y) {
    using V = decltype(x);
    if constexpr (std::is_integral_v<V>) return V(WrapT<V>(x) * WrapT<V>(y));
    else return x * y;
  });
}
// Integers truncate toward zero like C; division by zero is an error, not a crash.
Status refDiv(KernelContext& ctx) {
  std::atomic<bool> div0{false};
  Status st = binaryOp<kNum>(ctx, [&div0](auto x, auto y) {
    using V = decltype(x);
    if constexpr (std::is_integral_v<V>) {
      if (y == 0) {
        div0.store(true, std::memory_order_relaxed);
        return V(0);
      }
      if constexpr (std::is_signed_v<V>)
        if (y == V(-1)) return wrapNeg(x);  // INT_MIN / -1 would trap
      return V(x / y);
    } else {
      return x / y;
    }
  });
  if (st.ok() && div0.load()) return ctx.error("integer division by zero");
  return st;
}
// fmod=1: sign of the dividend (C fmod / %); fmod=0: sign of the divisor (Python %).
Status refMod(KernelContext& ctx) {
  const bool c_style = ctx.node.attrInt("fmod", 0) != 0;
  std::atomic<bool> div0{false};
  Status st = binaryOp<kNum>(ctx, [&div0, c_style](auto x, auto y) {
    using V = decltype(x);
    V r;
    if constexpr (std::is_integral_v<V>) {
      if (y == 0) {
        div0.store(true, std::memory_order_relaxed);
        return V(0);
      }
      if constexpr (std::is_signed_v<V>)
        if (y == V(-1)) return V(0);
      r = V(x % y);
    } else {
      r = std::fmod(x, y);
    }
    if constexpr (!std::is_unsigned_v<V>)
      if (!c_style && r != 0 && ((r < 0) != (y < 0))) r = V(r + y);
    return r;
  });
  if (st.ok() && div0.load()) return ctx.error("integer modulo by zero");
  return st;
}

// Integer power by squaring (wrapping like repeated multiplication); negative exponents give
// the truncated reciprocal: 1 for base 1, +-1 for base -1, 0 otherwise.
template <typename X, typename E>
static X ipow(X x, E e) {
  if constexpr (std::is_signed_v<E>) {
    if (e < 0) {
      if (x == 1) return X(1);
      if constexpr (std::is_signed_v<X>)
        if (x == -1) return (e & 1) ? X(-1) : X(1);
      return X(0);
    }
  }
  uint64_t r = 1, b = static_cast<uint64_t>(x), k = static_cast<uint64_t>(e);
  for (; k; k >>= 1, b *= b)
    if (k & 1) r *= b;
  return static_cast<X>(r);
}

// Base and exponent may differ in type; the result has the base's type. The exponent is
// converted once to int64 (both integer: exact integer powers) or f64 (mixed) unless it already
// has the base's type.
Status refPow(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (!isFloatType(b.dtype()) && !isIntegerType(b.dtype())) return badType(ctx, b.dtype());
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> dims, broadcastDims({a.dims(), b.dims()}, ctx.node));
  Tensor& out = outputFor(ctx, a.dtype(), dims);
  Tensor e = b;
  if (isIntegerType(a.dtype()) && isIntegerType(b.dtype())) {
    if (b.dtype() != DataType::kInt64) e = b.cast(DataType::kInt64);
  } else if (b.dtype() != a.dtype() && b.dtype() != DataType::kFloat64) {
    e = b.cast(DataType::kFloat64);
  }
  bool ok = visitClass<kNum>(a.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto run = [&](auto etag) {
      using E = typename decltype(etag)::type;
      constexpr bool kInts = std::is_integral_v<T> && std::is_integral_v<E>;
      using Ca = std::conditional_t<kInts, T, MathT<T>>;
      mapBinary<T, E, T, Ca, Acc<E>>(a, e, out, [](auto x, auto y) {
        if constexpr (kInts) return ipow(x, y);
        else return std::pow(x, static_cast<decltype(x)>(y));
      });
    };
    if (e.dtype() == DataType::kInt64) run(TypeTag<int64_t>{});
    else if (e.dtype() == DataType::kFloat64) run(TypeTag<double>{});
    else run(TypeTag<T>{});
  });
  return ok ? Status::Ok() : badType(ctx, a.dtype());
}

Status refBitShift(KernelContext& ctx) {
  std::string dir = ctx.node.attrString("direction", "");
  if (dir != "LEFT" && dir != "RIGHT") return ctx.error("attribute direction must be 'LEFT' or 'RIGHT', got '", dir, "'");
  const bool left = dir == "LEFT";
  return binaryOp<kU>(ctx, [left](auto x, auto y) {
    using V = decltype(x);
    if (y >= sizeof(V) * 8) return V(0);  // C++ leaves over-wide shifts undefined
    return left ? V(x << y) : V(x >> y);
  });
}

// ---- logic and comparison ----

Status refAnd(KernelContext& ctx) { return binaryOp<kB>(ctx, [](bool x, bool y) { return x && y; }); }
Status refOr(KernelContext& ctx) { return binaryOp<kB>(ctx, [](bool x, bool y) { return x || y; }); }
Status refXor(KernelContext& ctx) { return binaryOp<kB>(ctx, [](bool x, bool y) { return x != y; }); }
Status refBitwiseAnd(KernelContext& ctx) { return binaryOp<kI>(ctx, [](auto x, auto y) { return x & y; }); }
Status refBitwiseOr(KernelContext& ctx) { return binaryOp<kI>(ctx, [](auto x, auto y) { return x | y; }); }
Status refBitwiseXor(KernelContext& ctx) { return binaryOp<kI>(ctx, [](auto x, auto y) { return x ^ y; }); }
Status refEqual(KernelContext& ctx) { return binaryOp<kAny, true>(ctx, [](auto x, auto y) { return x == y; }); }
Status refLess(KernelContext& ctx) { return binaryOp<kNum, true>(ctx, [](auto x, auto y) { return x < y; }); }
Status refGreater(KernelContext& ctx) { return binaryOp<kNum, true>(ctx, [](auto x, auto y) { return x > y; }); }
Status refLessOrEqual(KernelContext& ctx) {
  return binaryOp<kNum, true>(ctx, [](auto x, auto y) { return x <= y; });
}
Status refGreaterOrEqual(KernelContext& ctx) {
  return binaryOp<kNum, true>(ctx, [](auto x, auto y) { return x >= y; });
}

// ---- variadic ----

// NaN propagates, as in numpy's maximum/minimum.
Status refMax(KernelContext& ctx) {
  return variadicOp<kNum>(ctx, [](auto x, auto y) {
    if constexpr (!std::is_integral_v<decltype(x)>) {
      if (std::isnan(x)) return x;
      if (std::isnan(y)) return y;
    }
    return x > y ? x : y;
  });
}
Status refMin(KernelContext& ctx) {
  return variadicOp<kNum>(ctx, [](auto x, auto y) {
    if constexpr (!std::is_integral_v<decltype(x)>) {
      if (std::isnan(x)) return x;
      if (std::isnan(y)) return y;
    }
    return x < y ? x : y;
  });
}
Status refSum(KernelContext& ctx) { return variadicOp<kF>(ctx, [](auto x, auto y) { return x + y; }); }
Status refMean(KernelContext& ctx) { return variadicOp<kF, true>(ctx, [](auto x, auto y) { return x + y; }); }

// ---- selection and conversion ----

Status refWhere(KernelContext& ctx) {
  const Tensor& c = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& y = ctx.input(2);
  if (c.dtype() != DataType::kBool) return ctx.error("condition must be bool, got ", dataTypeName(c.dtype()));
  if (x.dtype() != y.dtype())
    return ctx.error("X and Y types differ: ", dataTypeName(x.dtype()), " vs ", dataTypeName(y.dtype()));
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> dims, broadcastDims({c.dims(), x.dims(), y.dims()}, ctx.node));
  Tensor& out = outputFor(ctx, x.dtype(), dims);
  bool ok = visitType(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const bool* pc = c.data<bool>();
    const T* px = x.data<T>();
    const T* py = y.data<T>();
    T* po = out.data<T>();
    forEachBroadcastRow<3>({&c.dims(), &x.dims(), &y.dims()}, dims,
                           [&](const int64_t* off, int64_t o, int64_t n, const int64_t* s) {
      const bool* cc = pc + off[0];
      const T* xx = px + off[1];
      const T* yy = py + off[2];
      for (int64_t i = 0; i < n; ++i) po[o + i] = cc[i * s[0]] ? xx[i * s[1]] : yy[i * s[2]];
    }, kParallelMin);
  });
  return ok ? Status::Ok() : badType(ctx, x.dtype());
}

static Status castTo(KernelContext& ctx, DataType to) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() == to) {
    ctx.outputs[0] = x;  // shares storage (strings too)
    return Status::Ok();
  }
  if (x.dtype() == DataType::kString || to == DataType::kString) {  // number <-> text: Tensor::cast
    ctx.outputs[0] = x.dtype() == to ? x : x.cast(to);
    return Status::Ok();
  }
  if (dataTypeSize(x.dtype()) == 0 || !isSupportedDataType(x.dtype()))
    return ctx.unsupported("cannot cast from ", dataTypeName(x.dtype()));
  if (dataTypeSize(to) == 0 || !isSupportedDataType(to)) return ctx.unsupported("cannot cast to ", dataTypeName(to));
  // Float -> integer is undefined out of range in ONNX; onnxruntime and numpy (on x86) truncate
  // toward zero and wrap modulo 2^bits (-5.3 -> u8 251), so do that within int64's range, map
  // NaN to 0 and saturate beyond. Every other pair (incl. anything -> bool as "!= 0", f16/bf16
  // rounding to nearest even) is Tensor::cast.
  bool done = false;
  visitClass<kF>(x.dtype(), [&](auto ftag) {
    using Tf = typename decltype(ftag)::type;
    done = visitClass<kI>(to, [&](auto itag) {
      using Ti = typename decltype(itag)::type;
      Tensor& out = outputFor(ctx, to, x.dims());
      mapUnary<Tf, Ti, double>(x, out, [](double v) -> Ti {
        constexpr double k2p63 = 9223372036854775808.0;
        if (std::isnan(v)) return Ti(0);
        if (v > -k2p63 && v < k2p63) return static_cast<Ti>(static_cast<int64_t>(v));  // C++20: modular
        if constexpr (std::is_same_v<Ti, uint64_t>)
          if (v >= k2p63 && v < 2 * k2p63) return static_cast<uint64_t>(v);
        return v < 0 ? std::numeric_limits<Ti>::lowest() : std::numeric_limits<Ti>::max();
      });
    });
  });
  if (!done) ctx.outputs[0] = x.cast(to);
  return Status::Ok();
}

Status refCast(KernelContext& ctx) {
  DataType to;
  if (!dataTypeFromOnnx(static_cast<int32_t>(ctx.node.attrInt("to", 0)), &to))
    return ctx.error("attribute 'to' is missing or not a known ONNX type");
  return castTo(ctx, to);
}
Status refCastLike(KernelContext& ctx) { return castTo(ctx, ctx.input(1).dtype()); }

}  // namespace ramjet::ops
