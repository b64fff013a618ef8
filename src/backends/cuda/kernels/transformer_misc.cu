// FusedElementwise interpreted on the device (the fallback when NVRTC is unavailable or fails)
// and a LayerNorm with one warp per row and 16-byte loads for transformer hidden sizes.
#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/transformer_kernels.h"

namespace ramjet::cuda {
namespace {

RJ_EW_APPLY_BODY(__device__ __forceinline__)

constexpr int kMaxEwIn = 8, kMaxEwCode = 64;

struct EwDevProgram {
  int n_in = 0, n_code = 0, rank = 0;
  int op[kMaxEwCode], a[kMaxEwCode], b[kMaxEwCode];
  float p0[kMaxEwCode], p1[kMaxEwCode];
  int64_t dims[kMaxRank];
  int64_t strides[kMaxEwIn][kMaxRank];
  const void* in[kMaxEwIn];
};

template <typename T>
__global__ void ewInterp(const EwDevProgram p, T* out, int64_t n) {
  float regs[kMaxEwCode + kMaxEwIn];
  RJ_GRID_STRIDE_LOOP(e, n) {
    for (int i = 0; i < p.n_in; ++i) {
      int64_t rem = e, off = 0;
      for (int d = p.rank - 1; d >= 0; --d) {
        const int64_t q = rem / p.dims[d];
        off += (rem - q * p.dims[d]) * p.strides[i][d];
        rem = q;
      }
      regs[i] = toF(static_cast<const T*>(p.in[i])[off]);
    }
    for (int j = 0; j < p.n_code; ++j) {
      const float x = p.a[j] >= 0 ? regs[p.a[j]] : 0.f, y = p.b[j] >= 0 ? regs[p.b[j]] : 0.f;
      regs[p.n_in + j] = rjEwApply(p.op[j], x, y, p.p0[j], p.p1[j]);
    }
    out[e] = fromF<T>(regs[p.n_in + p.n_code - 1]);
  }
}

// ---- LayerNorm, one warp per row. V = elements per 16-byte vector, NV = max vectors per lane.
template <typename T, int V, int NV>
__global__ void layerNormWarpKernel(const T* __restrict__ x, const T* __restrict__ res, const T* __restrict__ scale,
                                    const T* __restrict__ bias, T* __restrict__ y, T* __restrict__ sum_out,
                                    int64_t rows, int cols, float eps) {
  const int lane = threadIdx.x & 31;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + (threadIdx.x >> 5);
  if (row >= rows) return;
  const int nvec = cols / V;
  float v[NV][V];
  float s = 0.f;
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int vi = i * 32 + lane;
    if (vi < nvec) {
      const int64_t off = row * cols + static_cast<int64_t>(vi) * V;
      uint4 raw = *reinterpret_cast<const uint4*>(x + off);
      const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int t = 0; t < V; ++t) v[i][t] = toF(e[t]);
      if (res) {
        uint4 rr = *reinterpret_cast<const uint4*>(res + off);
        const T* re = reinterpret_cast<const T*>(&rr);
#pragma unroll
        for (int t = 0; t < V; ++t) v[i][t] += toF(re[t]);
        if (sum_out) {
          uint4 w;
          T* we = reinterpret_cast<T*>(&w);
#pragma unroll
          for (int t = 0; t < V; ++t) we[t] = fromF<T>(v[i][t]);
          *reinterpret_cast<uint4*>(sum_out + off) = w;
        }
      }
#pragma unroll
      for (int t = 0; t < V; ++t) s += v[i][t];
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const float mean = s / cols;
  float q = 0.f;
#pragma unroll
  for (int i = 0; i < NV; ++i)
    if (i * 32 + lane < nvec)
#pragma unroll
      for (int t = 0; t < V; ++t) {
        const float d = v[i][t] - mean;
        q += d * d;
      }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) q += __shfl_xor_sync(0xffffffffu, q, o);
  const float inv = rsqrtf(q / cols + eps);
#pragma unroll
  for (int i = 0; i < NV; ++i) {
    const int vi = i * 32 + lane;
    if (vi < nvec) {
      const int c0 = vi * V;
      uint4 sc = *reinterpret_cast<const uint4*>(scale + c0);
      uint4 bi = make_uint4(0, 0, 0, 0);
      if (bias) bi = *reinterpret_cast<const uint4*>(bias + c0);
      const T* se = reinterpret_cast<const T*>(&sc);
      const T* be = reinterpret_cast<const T*>(&bi);
      uint4 w;
      T* we = reinterpret_cast<T*>(&w);
#pragma unroll
      for (int t = 0; t < V; ++t) we[t] = fromF<T>((v[i][t] - mean) * inv * toF(se[t]) + (bias ? toF(be[t]) : 0.f));
      *reinterpret_cast<uint4*>(y + row * cols + c0) = w;
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// One thread per (outer, inner) position: K strided loads (coalesced across threads along the
// inner dim), max, then exponentials and the weighted sum in FP32.
template <typename T>
__global__ void softmaxWeightedSumKernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y,
                                         int64_t outer, int k, int64_t inner, bool small, FastDiv fi) {
  RJ_GRID_STRIDE_LOOP(idx, outer * inner) {
    int64_t rem = idx;
    const int64_t i = divmod(rem, inner, fi, small), o = rem;
    const T* p = x + o * k * inner + i;
    float m = -INFINITY;
    for (int j = 0; j < k; ++j) m = fmaxf(m, toF(p[j * inner]));
    float den = 0.f, num = 0.f;
    for (int j = 0; j < k; ++j) {
      const float e = __expf(toF(p[j * inner]) - m);
      den += e;
      num += e * toF(w[j]);
    }
    y[idx] = fromF<T>(num / den);
  }
}

}  // namespace

Status fusedElementwiseInterpreted(DataType dt, const ops::EwProgram& prog, const std::vector<const void*>& inputs,
                                   const std::vector<std::vector<int64_t>>& in_dims, void* out,
                                   const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  if (inputs.size() > static_cast<size_t>(kMaxEwIn) || prog.code.size() > static_cast<size_t>(kMaxEwCode) ||
      out_dims.size() > static_cast<size_t>(kMaxRank) || inputs.size() != in_dims.size() ||
      prog.num_inputs != static_cast<int32_t>(inputs.size()) || prog.code.empty())
    return makeError(StatusCode::kUnsupported, "FusedElementwise: ", inputs.size(), " inputs, ", prog.code.size(),
                     " instructions, rank ", out_dims.size(), " (at most 8, 64, 8)");
  EwDevProgram p;
  p.n_in = static_cast<int>(inputs.size());
  p.n_code = static_cast<int>(prog.code.size());
  p.rank = static_cast<int>(out_dims.size());
  for (int j = 0; j < p.n_code; ++j) {
    const auto& in = prog.code[static_cast<size_t>(j)];
    p.op[j] = static_cast<int>(in.op);
    p.a[j] = in.a;
    p.b[j] = in.b;
    p.p0[j] = in.p0;
    p.p1[j] = in.p1;
  }
  for (int d = 0; d < p.rank; ++d) p.dims[d] = out_dims[static_cast<size_t>(d)];
  for (int i = 0; i < p.n_in; ++i) {
    if (in_dims[static_cast<size_t>(i)].size() > out_dims.size())
      return makeError(StatusCode::kInvalidArgument, "FusedElementwise: input ", i, " has a higher rank than the output");
    const auto st = broadcastStrides(in_dims[static_cast<size_t>(i)], out_dims);
    for (int d = 0; d < p.rank; ++d) p.strides[i][d] = st[static_cast<size_t>(d)];
    p.in[i] = inputs[static_cast<size_t>(i)];
  }
  const int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  bool ok = visitFloatDev(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    ewInterp<T><<<gridFor(n), kThreads, 0, stream>>>(p, static_cast<T*>(out), n);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "FusedElementwise: element type ", dataTypeName(dt));
  RJ_CUDA_CHECK_LAUNCH("FusedElementwise (interpreted)");
  return Status::Ok();
}

Status layerNormWarp(DataType dt, const void* x, const void* residual, const void* scale, const void* bias, void* y,
                     void* sum_out, int64_t rows, int64_t cols, float epsilon, cudaStream_t stream) {
  const int v = dt == DataType::kFloat16 ? 8 : 4;
  const bool al = aligned16(x) && aligned16(scale) && aligned16(y) && (!bias || aligned16(bias)) &&
                  (!residual || aligned16(residual)) && (!sum_out || aligned16(sum_out));
  if ((dt != DataType::kFloat16 && dt != DataType::kFloat32) || cols <= 0 || cols % v != 0 ||
      cols > 32 * 8 * v || !al || !scale)
    return makeError(StatusCode::kUnsupported, "LayerNormalization (warp kernel): ", dataTypeName(dt), " cols=", cols);
  if (rows == 0) return Status::Ok();
  constexpr int kWarpsPerBlock = 4;
  const unsigned grid = static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock);
  const int nvec = static_cast<int>(cols / v);
  const int c = static_cast<int>(cols);
  auto go = [&](auto tag, auto nv) {
    using T = typename decltype(tag)::type;
    constexpr int V = sizeof(uint4) / sizeof(T);
    layerNormWarpKernel<T, V, decltype(nv)::value><<<grid, kWarpsPerBlock * 32, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(residual), static_cast<const T*>(scale),
        static_cast<const T*>(bias), static_cast<T*>(y), static_cast<T*>(sum_out), rows, c, epsilon);
  };
  auto pick = [&](auto tag) {
    if (nvec <= 32) go(tag, std::integral_constant<int, 1>{});
    else if (nvec <= 64) go(tag, std::integral_constant<int, 2>{});
    else if (nvec <= 128) go(tag, std::integral_constant<int, 4>{});
    else go(tag, std::integral_constant<int, 8>{});
  };
  if (dt == DataType::kFloat16) pick(DevTag<__half>{});
  else pick(DevTag<float>{});
  RJ_CUDA_CHECK_LAUNCH("LayerNormalization (warp kernel)");
  return Status::Ok();
}

Status softmaxWeightedSum(DataType dt, const void* x, const void* w, void* y, int64_t outer, int64_t k,
                          int64_t inner, cudaStream_t stream) {
  if (outer < 0 || k < 1 || inner < 0 || k > (int64_t{1} << 20))
    return makeError(StatusCode::kInvalidArgument, "SoftmaxWeightedSum: bad sizes outer=", outer, " k=", k,
                     " inner=", inner);
  const int64_t n = outer * inner;
  if (n == 0) return Status::Ok();
  const bool small = fastIndex(n * k);
  if (dt == DataType::kFloat32)
    softmaxWeightedSumKernel<float><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const float*>(x), static_cast<const float*>(w), static_cast<float*>(y), outer, static_cast<int>(k), inner, small,
        makeFastDiv(inner));
  else if (dt == DataType::kFloat16)
    softmaxWeightedSumKernel<__half><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const __half*>(x), static_cast<const __half*>(w), static_cast<__half*>(y), outer, static_cast<int>(k), inner, small,
        makeFastDiv(inner));
  else
    return makeError(StatusCode::kUnsupported, "SoftmaxWeightedSum: element type ", dataTypeName(dt));
  RJ_CUDA_CHECK_LAUNCH("SoftmaxWeightedSum");
  return Status::Ok();
}

}  // namespace ramjet::cuda
