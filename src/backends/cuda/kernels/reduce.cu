// Reductions over arbitrary axes, ArgMax/ArgMin, TopK (small k) and Softmax/LogSoftmax.
#include <cmath>
#include <type_traits>

#include "backends/cuda/kernels/common.cuh"

namespace ramjet::cuda {
namespace {

// Accumulator: (a, b) where b is only used by LogSumExp (a = running max, b = scaled sum).
struct RAcc {
  float a, b;
};

__device__ __forceinline__ RAcc rInit(ReduceOp op) {
  switch (op) {
    case ReduceOp::kMax: return {-INFINITY, 0.f};
    case ReduceOp::kMin: return {INFINITY, 0.f};
    case ReduceOp::kProd: return {1.f, 0.f};
    case ReduceOp::kLogSumExp: return {-INFINITY, 0.f};
    default: return {0.f, 0.f};
  }
}
__device__ __forceinline__ RAcc lseCombine(RAcc x, RAcc y) {
  float m = fmaxf(x.a, y.a);
  if (m == -INFINITY) return {m, 0.f};
  return {m, x.b * expf(x.a - m) + y.b * expf(y.a - m)};
}
__device__ __forceinline__ RAcc rAdd(ReduceOp op, RAcc acc, float v) {
  switch (op) {
    case ReduceOp::kMax: return {(v != v || acc.a != acc.a) ? NAN : fmaxf(acc.a, v), 0.f};
    case ReduceOp::kMin: return {(v != v || acc.a != acc.a) ? NAN : fminf(acc.a, v), 0.f};
    case ReduceOp::kProd: return {acc.a * v, 0.f};
    case ReduceOp::kL1: return {acc.a + fabsf(v), 0.f};
    case ReduceOp::kL2:
    case ReduceOp::kSumSquare: return {acc.a + v * v, 0.f};
    case ReduceOp::kLogSumExp: return lseCombine(acc, RAcc{v, 1.f});
    default: return {acc.a + v, 0.f};
  }
}
__device__ __forceinline__ RAcc rCombine(ReduceOp op, RAcc x, RAcc y) {
  switch (op) {
    case ReduceOp::kMax: return {(x.a != x.a || y.a != y.a) ? NAN : fmaxf(x.a, y.a), 0.f};
    case ReduceOp::kMin: return {(x.a != x.a || y.a != y.a) ? NAN : fminf(x.a, y.a), 0.f};
    case ReduceOp::kProd: return {x.a * y.a, 0.f};
    case ReduceOp::kLogSumExp: return lseCombine(x, y);
    default: return {x.a + y.a, 0.f};
  }
}
__device__ __forceinline__ float rFinal(ReduceOp op, RAcc acc, int64_t count) {
  switch (op) {
    case ReduceOp::kMean: return acc.a / static_cast<float>(count);
    case ReduceOp::kL2: return sqrtf(acc.a);
    case ReduceOp::kLogSum: return logf(acc.a);
    case ReduceOp::kLogSumExp: return acc.a == -INFINITY ? -INFINITY : acc.a + logf(acc.b);
    default: return acc.a;
  }
}

template <int B> struct RUnit;
template <> struct RUnit<16> { using type = uint4; };
template <> struct RUnit<8> { using type = uint2; };
template <> struct RUnit<4> { using type = uint32_t; };
template <> struct RUnit<2> { using type = uint16_t; };

// Adds units first, first + step, ... (< nu) of a contiguous row read as UB-byte units, two
// loads in flight.
template <typename T, int UB>
__device__ __forceinline__ RAcc addUnits(ReduceOp op, RAcc acc, const T* row, int64_t nu, int64_t first,
                                         int64_t step) {
  using U = typename RUnit<UB>::type;
  constexpr int V = UB / sizeof(T);
  const U* bu = reinterpret_cast<const U*>(row);
  auto add = [&](const U& raw) {
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int k = 0; k < V; ++k) acc = rAdd(op, acc, toF(e[k]));
  };
  int64_t j = first;
  for (; j + step < nu; j += 2 * step) {
    const U u0 = __ldg(bu + j), u1 = __ldg(bu + j + step);
    add(u0);
    add(u1);
  }
  for (; j < nu; j += step) add(__ldg(bu + j));
  return acc;
}

// G lanes per output (32 / G outputs per warp; G = 8/16 for short rows such as 7x7 planes,
// where a whole warp per row idled most lanes). kContig: the reduced run is one contiguous row
// whose start and length are multiples of UB bytes (GlobalAveragePool over NCHW planes), read in
// UB-byte units, two in flight per lane; otherwise elements through the reduced dims' strides.
template <typename T, int UB, int G, bool kContig>
__global__ void reduceWarpKernel(ReduceOp op, const T* x, T* y, int64_t n_out, int kr, Dims8 kdims,
                                 Idx8 kst, int rr, Dims8 rdims, Idx8 rst, int64_t rcount) {
  constexpr int PER = 32 / G;
  const int lane = threadIdx.x & 31, sub = lane % G;
  const int64_t warp = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) >> 5;
  const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
  for (int64_t o0 = warp * PER; o0 < n_out; o0 += nwarps * PER) {
    const int64_t o = o0 + lane / G;
    const bool valid = o < n_out;
    RAcc acc = rInit(op);
    if (valid) {
      const T* base = x + offsetOf(o, kr, kdims, kst);
      if constexpr (kContig) {
        acc = addUnits<T, UB>(op, acc, base, rcount / (UB / static_cast<int>(sizeof(T))), sub, G);
      } else {
        for (int64_t j = sub; j < rcount; j += G) acc = rAdd(op, acc, toF(base[offsetOf(j, rr, rdims, rst)]));
      }
    }
#pragma unroll
    for (int s = G / 2; s > 0; s >>= 1) {
      RAcc other{__shfl_xor_sync(0xffffffffu, acc.a, s), __shfl_xor_sync(0xffffffffu, acc.b, s)};
      acc = rCombine(op, acc, other);
    }
    if (valid && sub == 0) y[o] = fromF<T>(rFinal(op, acc, rcount));
  }
}

// One block per output for long contiguous rows (GlobalAveragePool over 112x112 planes: a warp
// per row left too few loads in flight), UB-byte units, two in flight per thread.
template <typename T, int UB>
__global__ void reduceBlockKernel(ReduceOp op, const T* x, T* y, int64_t n_out, int kr, Dims8 kdims, Idx8 kst,
                                  int64_t rcount) {
  constexpr int W = kThreads / 32;
  __shared__ RAcc part[W];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  const int64_t nu = rcount / (UB / static_cast<int>(sizeof(T)));
  for (int64_t o = blockIdx.x; o < n_out; o += gridDim.x) {
    RAcc acc = addUnits<T, UB>(op, rInit(op), x + offsetOf(o, kr, kdims, kst), nu, threadIdx.x, kThreads);
#pragma unroll
    for (int s = 16; s > 0; s >>= 1) {
      RAcc other{__shfl_xor_sync(0xffffffffu, acc.a, s), __shfl_xor_sync(0xffffffffu, acc.b, s)};
      acc = rCombine(op, acc, other);
    }
    if (lane == 0) part[wid] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
      RAcc t = part[0];
      for (int w = 1; w < W; ++w) t = rCombine(op, t, part[w]);
      y[o] = fromF<T>(rFinal(op, t, rcount));
    }
    __syncthreads();
  }
}

// One thread per output; neighbouring outputs read neighbouring inputs (innermost dim kept).
template <typename T>
__global__ void reduceThreadKernel(ReduceOp op, const T* x, T* y, int64_t n_out, int kr,
                                   Dims8 kdims, Idx8 kst, int rr, Dims8 rdims, Idx8 rst,
                                   int64_t rcount) {
  RJ_GRID_STRIDE_LOOP(o, n_out) {
    const T* base = x + offsetOf(o, kr, kdims, kst);
    RAcc acc = rInit(op);
    for (int64_t j = 0; j < rcount; ++j) acc = rAdd(op, acc, toF(base[offsetOf(j, rr, rdims, rst)]));
    y[o] = fromF<T>(rFinal(op, acc, rcount));
  }
}

template <typename T>
__global__ void argReduceKernel(bool is_max, bool last, const T* x, int64_t outer, int64_t len,
                                int64_t inner, int64_t* y) {
  RJ_GRID_STRIDE_LOOP(i, outer * inner) {
    int64_t o = i / inner, in = i - o * inner;
    const T* p = x + o * len * inner + in;
    float best = toF(p[0]);
    int64_t bi = 0;
    for (int64_t j = 1; j < len; ++j) {
      float v = toF(p[j * inner]);
      bool better = is_max ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
      if (better) { best = v; bi = j; }
    }
    y[i] = bi;
  }
}

// Ordering for TopK: "a before b".
__device__ __forceinline__ bool before(bool largest, float av, int64_t ai, float bv, int64_t bi) {
  if (av != bv) return largest ? av > bv : av < bv;
  return ai < bi;
}

// One block per row; k rounds, each picking the best element after the previous pick.
template <typename T>
__global__ void topKKernel(const T* x, int64_t outer, int64_t len, int64_t inner, int64_t k,
                           bool largest, T* values, int64_t* indices) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  int64_t row = blockIdx.x;
  int64_t o = row / inner, in = row - o * inner;
  const T* p = x + o * len * inner + in;
  float pv = 0.f;
  int64_t pi = -1;
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int64_t r = 0; r < k; ++r) {
    float bv = 0.f;
    int64_t bi = -1;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      float v = toF(p[j * inner]);
      if (v != v) v = largest ? INFINITY : -INFINITY;  // NaN sorts first, like numpy's largest
      if (pi >= 0 && !before(largest, pv, pi, v, j)) continue;
      if (bi < 0 || before(largest, v, j, bv, bi)) { bv = v; bi = j; }
    }
    for (int s = 16; s > 0; s >>= 1) {
      float ov = __shfl_xor_sync(0xffffffffu, bv, s);
      int64_t oi = __shfl_xor_sync(0xffffffffu, bi, s);
      if (oi >= 0 && (bi < 0 || before(largest, ov, oi, bv, bi))) { bv = ov; bi = oi; }
    }
    __syncthreads();
    if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
    __syncthreads();
    if (threadIdx.x == 0) {
      int nw = blockDim.x >> 5;
      for (int w = 1; w < nw; ++w)
        if (si[w] >= 0 && (bi < 0 || before(largest, sv[w], si[w], bv, bi))) { bv = sv[w]; bi = si[w]; }
      int64_t out = (o * k + r) * inner + in;
      values[out] = bi >= 0 ? p[bi * inner] : fromF<T>(NAN);
      indices[out] = bi;
      sv[0] = bv;
      si[0] = bi;
    }
    __syncthreads();
    pv = sv[0];
    pi = si[0];
  }
}

template <typename T>
__global__ void softmaxRowKernel(const T* x, T* y, int64_t rows, int64_t len, bool log) {
  __shared__ float smem[32];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* p = x + row * len;
    T* q = y + row * len;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) m = fmaxf(m, toF(p[j]));
    m = blockReduce(m, MaxOp{}, -INFINITY, smem);
    float s = 0.f;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) s += expf(toF(p[j]) - m);
    s = blockReduce(s, SumOp{}, 0.f, smem);
    float ls = logf(s), inv = 1.f / s;
    for (int64_t j = threadIdx.x; j < len; j += blockDim.x) {
      float v = toF(p[j]) - m;
      q[j] = fromF<T>(log ? v - ls : expf(v) * inv);
    }
  }
}

template <typename T>
__global__ void softmaxStridedKernel(const T* x, T* y, int64_t outer, int64_t len, int64_t inner,
                                     bool log) {
  RJ_GRID_STRIDE_LOOP(i, outer * inner) {
    int64_t o = i / inner, in = i - o * inner;
    const T* p = x + o * len * inner + in;
    T* q = y + o * len * inner + in;
    float m = -INFINITY;
    for (int64_t j = 0; j < len; ++j) m = fmaxf(m, toF(p[j * inner]));
    float s = 0.f;
    for (int64_t j = 0; j < len; ++j) s += expf(toF(p[j * inner]) - m);
    float ls = logf(s), inv = 1.f / s;
    for (int64_t j = 0; j < len; ++j) {
      float v = toF(p[j * inner]) - m;
      q[j * inner] = fromF<T>(log ? v - ls : expf(v) * inv);
    }
  }
}

}  // namespace

const char* reduceOpName(ReduceOp op) {
  static const char* names[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin",
                                "ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare",
                                "ReduceLogSum", "ReduceLogSumExp"};
  return names[static_cast<int>(op)];
}

Status reduce(ReduceOp op, DataType dtype, const void* x, const std::vector<int64_t>& dims,
              const std::vector<int64_t>& axes, void* y, cudaStream_t stream) {
  const char* name = reduceOpName(op);
  RJ_RETURN_IF_ERROR(checkDims(name, dims));
  int rank = static_cast<int>(dims.size());
  std::vector<bool> red(rank, false);
  for (int64_t a : axes) {
    if (a < 0 || a >= rank)
      return makeError(StatusCode::kInvalidArgument, name, ": axis ", a, " out of range for rank ", rank);
    red[a] = true;
  }
  // Strides of x, then split into kept and reduced groups, merging contiguous neighbours.
  std::vector<int64_t> st(rank);
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; --i) { st[i] = s; s *= dims[i]; }
  std::vector<int64_t> kd, ks, rd, rs;
  int last_kind = -1;  // kind of the last kept entry pushed (0 kept, 1 reduced)
  for (int i = 0; i < rank; ++i) {
    if (dims[i] == 1) continue;
    auto& d = red[i] ? rd : kd;
    auto& t = red[i] ? rs : ks;
    int kind = red[i] ? 1 : 0;
    if (last_kind == kind && !d.empty() && t.back() == st[i] * dims[i]) {
      d.back() *= dims[i];
      t.back() = st[i];
    } else {
      d.push_back(dims[i]);
      t.push_back(st[i]);
    }
    last_kind = kind;
  }
  int64_t n_out = product(kd), rcount = product(rd);
  for (int i = 0; i < rank; ++i)
    if (dims[i] == 0 && !red[i]) n_out = 0;
  if (n_out == 0) return Status::Ok();
  bool inner_reduced = !rs.empty() && rs.back() == 1;
  int kr = static_cast<int>(kd.size()), rr = static_cast<int>(rd.size());
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = static_cast<const T*>(x);
    T* py = static_cast<T*>(y);
    // One contiguous reduced run per output (each output's run starts at a combination of the
    // kept strides): read it in the widest units its alignment allows.
    const bool contig = rr == 1 && rs[0] == 1 && rcount >= 16;
    auto unitFits = [&](int ub) {
      if (!contig) return false;
      if ((reinterpret_cast<uintptr_t>(x) % ub) != 0 || (rcount * static_cast<int64_t>(sizeof(T))) % ub != 0)
        return false;
      for (int64_t k : ks)
        if ((k * static_cast<int64_t>(sizeof(T))) % ub != 0) return false;
      return true;
    };
    const Dims8 kd8 = toDims8(kd), rd8 = toDims8(rd);
    const Idx8 ks8 = toIdx8(ks, 0), rs8 = toIdx8(rs, 0);
    auto contigLaunch = [&](auto ub_tag) {
      constexpr int UB = decltype(ub_tag)::value;
      const int64_t nu = rcount / (UB / static_cast<int64_t>(sizeof(T)));
      if (nu >= 2048) {
        reduceBlockKernel<T, UB><<<gridFor(n_out * kThreads), kThreads, 0, stream>>>(op, px, py, n_out, kr, kd8, ks8,
                                                                                    rcount);
        return;
      }
      auto warps = [&](auto g_tag) {
        constexpr int G = decltype(g_tag)::value;
        reduceWarpKernel<T, UB, G, true><<<gridFor((n_out + 32 / G - 1) / (32 / G) * 32), kThreads, 0, stream>>>(
            op, px, py, n_out, kr, kd8, ks8, rr, rd8, rs8, rcount);
      };
      if (nu <= 24) warps(std::integral_constant<int, 8>{});
      else if (nu <= 64) warps(std::integral_constant<int, 16>{});
      else warps(std::integral_constant<int, 32>{});
    };
    if (contig && unitFits(16)) contigLaunch(std::integral_constant<int, 16>{});
    else if (contig && unitFits(8)) contigLaunch(std::integral_constant<int, 8>{});
    else if (contig) contigLaunch(std::integral_constant<int, static_cast<int>(sizeof(T))>{});
    else if (inner_reduced && rcount >= 32)
      reduceWarpKernel<T, static_cast<int>(sizeof(T)), 32, false><<<gridFor(n_out * 32), kThreads, 0, stream>>>(
          op, px, py, n_out, kr, kd8, ks8, rr, rd8, rs8, rcount);
    else
      reduceThreadKernel<T><<<gridFor(n_out), kThreads, 0, stream>>>(
          op, px, py, n_out, kr, toDims8(kd), toIdx8(ks, 0), rr, toDims8(rd), toIdx8(rs, 0), rcount);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, name, ": element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH(name);
  return Status::Ok();
}

Status argReduce(bool is_max, bool select_last_index, DataType dtype, const void* x,
                 int64_t outer, int64_t axis_len, int64_t inner, int64_t* y, cudaStream_t stream) {
  const char* name = is_max ? "ArgMax" : "ArgMin";
  if (outer * inner == 0) return Status::Ok();
  if (axis_len <= 0)
    return makeError(StatusCode::kInvalidArgument, name, ": reduced axis is empty");
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    argReduceKernel<T><<<gridFor(outer * inner), kThreads, 0, stream>>>(
        is_max, select_last_index, static_cast<const T*>(x), outer, axis_len, inner, y);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, name, ": element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH(name);
  return Status::Ok();
}

Status topK(DataType dtype, const void* x, int64_t outer, int64_t axis_len, int64_t inner,
            int64_t k, bool largest, void* values, int64_t* indices, cudaStream_t stream) {
  if (k < 0 || k > axis_len)
    return makeError(StatusCode::kInvalidArgument, "TopK: k=", k, " outside [0, ", axis_len, "]");
  int64_t rows = outer * inner;
  if (rows == 0 || k == 0) return Status::Ok();
  if (rows > 0x7fffffffLL) return makeError(StatusCode::kUnsupported, "TopK: too many rows");
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    topKKernel<T><<<static_cast<unsigned>(rows), 256, 0, stream>>>(
        static_cast<const T*>(x), outer, axis_len, inner, k, largest, static_cast<T*>(values),
        indices);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "TopK: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("TopK");
  return Status::Ok();
}

Status softmax(DataType dtype, const void* x, int64_t outer, int64_t axis_len, int64_t inner,
               bool log, void* y, cudaStream_t stream) {
  const char* name = log ? "LogSoftmax" : "Softmax";
  if (outer * axis_len * inner == 0) return Status::Ok();
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (inner == 1) {
      int threads = axis_len >= 1024 ? 512 : axis_len >= 256 ? 256 : axis_len >= 64 ? 64 : 32;
      unsigned blocks = static_cast<unsigned>(outer < 65535 * 16 ? outer : 65535 * 16);
      softmaxRowKernel<T><<<blocks, threads, 0, stream>>>(static_cast<const T*>(x),
                                                          static_cast<T*>(y), outer, axis_len, log);
    } else {
      softmaxStridedKernel<T><<<gridFor(outer * inner), kThreads, 0, stream>>>(
          static_cast<const T*>(x), static_cast<T*>(y), outer, axis_len, inner, log);
    }
  });
  if (!ok) return makeError(StatusCode::kUnsupported, name, ": element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH(name);
  return Status::Ok();
}

}  // namespace ramjet::cuda
