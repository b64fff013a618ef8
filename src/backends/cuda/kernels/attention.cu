// Fused attention (flash-attention style: online softmax, FP32 statistics and accumulation,
// nothing of size Sq x Sk in global memory) over strided [batch, heads, seq, dim] views, so
// packed QKV projections and head-split layouts are read in place.
//  * attnWmma: FP16 tensor cores (WMMA 16x16x16, FP32 accumulate), 64 queries x 64 keys per
//    step, 4 warps of 16 query rows; scores, probabilities and the running output live in
//    shared memory between the two products. d == dv in {32, 64, 128}, no mask.
//  * attnSimt: any d, dv <= 128, f32/f16, masks; one warp per 4 query rows, K/V tiles of 32 keys
//    in shared memory as float, lane j scores key j, each lane owns dv/32 output columns.
#include <mma.h>

#include <cmath>
#include <mutex>

#include "backends/cuda/kernels/common.cuh"
#include "backends/cuda/transformer_kernels.h"

namespace ramjet::cuda {
namespace {

using namespace nvcuda;

// ------------------------------------------------------------------ SIMT kernel
constexpr int kSimtWarps = 4, kSimtRows = 4, kSimtTile = 32;

template <typename T, int DPL>
__global__ void __launch_bounds__(kSimtWarps * 32)
attnSimt(const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v, T* __restrict__ o,
         AttnView qv, AttnView kv, AttnView vv, AttnView ov, AttnParams p) {
  constexpr int DM = DPL * 32;
  __shared__ float ks[kSimtTile][DM + 1];
  __shared__ float vs[kSimtTile][DM];
  __shared__ float qs[kSimtWarps][kSimtRows][DM];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * (kSimtWarps * kSimtRows) + warp * kSimtRows;
  const int d = static_cast<int>(p.d), dv = static_cast<int>(p.dv);
  const T* qb = q + b * qv.stride_b + h * qv.stride_h;
  const T* kb = k + b * kv.stride_b + h * kv.stride_h;
  const T* vb = v + b * vv.stride_b + h * vv.stride_h;
  for (int r = 0; r < kSimtRows; ++r)
    for (int c = lane; c < DM; c += 32) {
      const int64_t row = row0 + r;
      qs[warp][r][c] = (row < p.sq && c < d) ? toF(qb[row * qv.stride_s + c]) * p.scale : 0.f;
    }
  float m[kSimtRows], l[kSimtRows], acc[kSimtRows][DPL];
#pragma unroll
  for (int r = 0; r < kSimtRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.f;
#pragma unroll
    for (int i = 0; i < DPL; ++i) acc[r][i] = 0.f;
  }
  for (int64_t t0 = 0; t0 < p.sk; t0 += kSimtTile) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < kSimtTile * DM; idx += blockDim.x) {
      const int j = idx / DM, c = idx % DM;
      const bool in = t0 + j < p.sk;
      ks[j][c] = in && c < d ? toF(kb[(t0 + j) * kv.stride_s + c]) : 0.f;
      vs[j][c] = in && c < dv ? toF(vb[(t0 + j) * vv.stride_s + c]) : 0.f;
    }
    __syncthreads();
    const int64_t j = t0 + lane;
    const int nj = static_cast<int>(p.sk - t0 < kSimtTile ? p.sk - t0 : kSimtTile);
#pragma unroll
    for (int r = 0; r < kSimtRows; ++r) {
      const int64_t row = row0 + r;
      float s = 0.f;
      for (int c = 0; c < d; ++c) s += qs[warp][r][c] * ks[lane][c];
      if (j >= p.sk) {
        s = -INFINITY;
      } else if (p.mask && row < p.sq) {
        const int64_t mo = b * p.mask_sb + h * p.mask_sh + row * p.mask_sq + j;
        if (p.mask_bool)
          s = static_cast<const unsigned char*>(p.mask)[mo] ? s : -INFINITY;
        else
          s += toF(static_cast<const T*>(p.mask)[mo]);
      }
      float tmax = s;
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, off));
      const float mn = fmaxf(m[r], tmax);
      const float pj = mn == -INFINITY ? 0.f : expf(s - mn);
      const float corr = m[r] == -INFINITY ? 0.f : expf(m[r] - mn);
      float ps = pj;
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, off);
      l[r] = l[r] * corr + ps;
      m[r] = mn;
#pragma unroll
      for (int i = 0; i < DPL; ++i) acc[r][i] *= corr;
      for (int jj = 0; jj < nj; ++jj) {
        const float w = __shfl_sync(0xffffffffu, pj, jj);
#pragma unroll
        for (int i = 0; i < DPL; ++i) acc[r][i] += w * vs[jj][lane + 32 * i];
      }
    }
  }
  T* ob = o + b * ov.stride_b + h * ov.stride_h;
#pragma unroll
  for (int r = 0; r < kSimtRows; ++r) {
    const int64_t row = row0 + r;
    if (row >= p.sq) continue;
#pragma unroll
    for (int i = 0; i < DPL; ++i) {
      const int c = lane + 32 * i;
      if (c < dv) ob[row * ov.stride_s + c] = fromF<T>(acc[r][i] / l[r]);  // l == 0: all masked -> NaN
    }
  }
}

// ------------------------------------------------------------------ tensor-core kernel
constexpr int kTcRows = 64, kTcKeys = 64, kTcWarps = 4;

template <int D>
struct TcSmem {
  static constexpr int kHalfPitch = D + 8, kSPitch = kTcKeys + 4, kPPitch = kTcKeys + 8, kOPitch = D + 4;
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + sizeof(__half) * kTcRows * kHalfPitch;
  static constexpr size_t kV = kK + sizeof(__half) * kTcKeys * kHalfPitch;
  static constexpr size_t kS = kV + sizeof(__half) * kTcKeys * kHalfPitch;
  static constexpr size_t kP = kS + sizeof(float) * kTcRows * kSPitch;
  static constexpr size_t kO = kP + sizeof(__half) * kTcRows * kPPitch;
  static constexpr size_t kBytes = kO + sizeof(float) * kTcRows * kOPitch;
};

// rows x D halves from a strided view into shared memory (pitch D+8), zero beyond `valid` rows.
template <int D>
__device__ __forceinline__ void loadTile(__half* dst, const __half* src, int64_t stride_s, int64_t valid, bool vec) {
  constexpr int P = D + 8, V = D / 8;
  if (vec) {
    for (int idx = threadIdx.x; idx < 64 * V; idx += blockDim.x) {
      const int r = idx / V, c = (idx % V) * 8;
      uint4 val = make_uint4(0, 0, 0, 0);
      if (r < valid) val = *reinterpret_cast<const uint4*>(src + r * stride_s + c);
      *reinterpret_cast<uint4*>(dst + r * P + c) = val;
    }
  } else {
    for (int idx = threadIdx.x; idx < 64 * D; idx += blockDim.x) {
      const int r = idx / D, c = idx % D;
      dst[r * P + c] = r < valid ? src[r * stride_s + c] : __float2half(0.f);
    }
  }
}

template <int D>
__global__ void __launch_bounds__(kTcWarps * 32)
attnWmma(const __half* __restrict__ q, const __half* __restrict__ k, const __half* __restrict__ v,
         __half* __restrict__ o, AttnView qv, AttnView kv, AttnView vv, AttnView ov, AttnParams p, bool vec) {
  using L = TcSmem<D>;
  extern __shared__ __align__(128) unsigned char smem[];
  __half* qs = reinterpret_cast<__half*>(smem + L::kQ);
  __half* ks = reinterpret_cast<__half*>(smem + L::kK);
  __half* vs = reinterpret_cast<__half*>(smem + L::kV);
  float* ss = reinterpret_cast<float*>(smem + L::kS);
  __half* ps = reinterpret_cast<__half*>(smem + L::kP);
  float* os = reinterpret_cast<float*>(smem + L::kO);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kTcRows;
  const __half* qb = q + b * qv.stride_b + h * qv.stride_h + q0 * qv.stride_s;
  const __half* kb = k + b * kv.stride_b + h * kv.stride_h;
  const __half* vb = v + b * vv.stride_b + h * vv.stride_h;
  loadTile<D>(qs, qb, qv.stride_s, p.sq - q0, vec);
  for (int idx = threadIdx.x; idx < kTcRows * L::kOPitch; idx += blockDim.x) os[idx] = 0.f;
  // Lane pair (2r, 2r+1) owns row r of this warp's 16: half = which 32 score columns / D/2 outputs.
  const int r = lane >> 1, half = lane & 1;
  float m = -INFINITY, l = 0.f;
  float* srow = ss + (warp * 16 + r) * L::kSPitch;
  __half* prow = ps + (warp * 16 + r) * L::kPPitch;
  float* orow = os + (warp * 16 + r) * L::kOPitch;
  for (int64_t t0 = 0; t0 < p.sk; t0 += kTcKeys) {
    __syncthreads();
    loadTile<D>(ks, kb + t0 * kv.stride_s, kv.stride_s, p.sk - t0, vec);
    loadTile<D>(vs, vb + t0 * vv.stride_s, vv.stride_s, p.sk - t0, vec);
    __syncthreads();
    // S = Q·Kᵀ for this warp's 16 rows x 64 keys.
#pragma unroll
    for (int j = 0; j < kTcKeys / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      wmma::fill_fragment(c, 0.f);
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> bf;
        wmma::load_matrix_sync(a, qs + (warp * 16) * L::kHalfPitch + kk * 16, L::kHalfPitch);
        wmma::load_matrix_sync(bf, ks + (j * 16) * L::kHalfPitch + kk * 16, L::kHalfPitch);
        wmma::mma_sync(c, a, bf, c);
      }
      wmma::store_matrix_sync(ss + (warp * 16) * L::kSPitch + j * 16, c, L::kSPitch, wmma::mem_row_major);
    }
    __syncwarp();
    // Online softmax of row r over this tile.
    float tmax = -INFINITY;
    for (int c = half * 32; c < half * 32 + 32; ++c) {
      const float s = t0 + c < p.sk ? srow[c] * p.scale : -INFINITY;
      srow[c] = s;
      tmax = fmaxf(tmax, s);
    }
    tmax = fmaxf(tmax, __shfl_xor_sync(0xffffffffu, tmax, 1));
    const float mn = fmaxf(m, tmax);
    const float corr = m == -INFINITY ? 0.f : expf(m - mn);
    float sum = 0.f;
    for (int c = half * 32; c < half * 32 + 32; ++c) {
      const float e = mn == -INFINITY ? 0.f : expf(srow[c] - mn);
      const __half eh = __float2half_rn(e);
      prow[c] = eh;
      sum += __half2float(eh);  // the normaliser sums what the product will use
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * corr + sum;
    m = mn;
    for (int c = half * (D / 2); c < half * (D / 2) + D / 2; ++c) orow[c] *= corr;
    __syncwarp();
    // O += P·V.
#pragma unroll
    for (int j = 0; j < D / 16; ++j) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> c;
      wmma::load_matrix_sync(c, os + (warp * 16) * L::kOPitch + j * 16, L::kOPitch, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTcKeys / 16; ++kk) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> bf;
        wmma::load_matrix_sync(a, ps + (warp * 16) * L::kPPitch + kk * 16, L::kPPitch);
        wmma::load_matrix_sync(bf, vs + (kk * 16) * L::kHalfPitch + j * 16, L::kHalfPitch);
        wmma::mma_sync(c, a, bf, c);
      }
      wmma::store_matrix_sync(os + (warp * 16) * L::kOPitch + j * 16, c, L::kOPitch, wmma::mem_row_major);
    }
    __syncwarp();
  }
  const int64_t row = q0 + warp * 16 + r;
  if (row < p.sq) {
    __half* orow_g = o + b * ov.stride_b + h * ov.stride_h + row * ov.stride_s;
    const float inv = 1.f / l;
    for (int c = half * (D / 2); c < half * (D / 2) + D / 2; ++c) orow_g[c] = __float2half_rn(orow[c] * inv);
  }
}

template <int D>
Status launchWmma(const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o, const AttnParams& p,
                  cudaStream_t stream) {
  static std::once_flag once;
  static cudaError_t attr_err = cudaSuccess;
  std::call_once(once, [] {
    attr_err = cudaFuncSetAttribute(attnWmma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    static_cast<int>(TcSmem<D>::kBytes));
  });
  if (attr_err != cudaSuccess) return cudaError(attr_err, "cudaFuncSetAttribute(attnWmma)", __FILE__, __LINE__);
  auto al = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  const bool vec = al(q.data) && al(k.data) && al(v.data) && q.stride_s % 8 == 0 && k.stride_s % 8 == 0 &&
                   v.stride_s % 8 == 0 && q.stride_b % 8 == 0 && k.stride_b % 8 == 0 && v.stride_b % 8 == 0 &&
                   q.stride_h % 8 == 0 && k.stride_h % 8 == 0 && v.stride_h % 8 == 0;
  dim3 grid(static_cast<unsigned>((p.sq + kTcRows - 1) / kTcRows), static_cast<unsigned>(p.batch * p.heads));
  attnWmma<D><<<grid, kTcWarps * 32, TcSmem<D>::kBytes, stream>>>(
      static_cast<const __half*>(q.data), static_cast<const __half*>(k.data), static_cast<const __half*>(v.data),
      static_cast<__half*>(const_cast<void*>(o.data)), q, k, v, o, p, vec);
  RJ_CUDA_CHECK_LAUNCH("Attention (tensor cores)");
  return Status::Ok();
}

template <typename T, int DPL>
Status launchSimt(const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o, const AttnParams& p,
                  cudaStream_t stream) {
  dim3 grid(static_cast<unsigned>((p.sq + kSimtWarps * kSimtRows - 1) / (kSimtWarps * kSimtRows)),
            static_cast<unsigned>(p.batch * p.heads));
  attnSimt<T, DPL><<<grid, kSimtWarps * 32, 0, stream>>>(
      static_cast<const T*>(q.data), static_cast<const T*>(k.data), static_cast<const T*>(v.data),
      static_cast<T*>(const_cast<void*>(o.data)), q, k, v, o, p);
  RJ_CUDA_CHECK_LAUNCH("Attention");
  return Status::Ok();
}

template <typename T>
Status simtFor(const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o, const AttnParams& p,
               cudaStream_t stream) {
  const int64_t dm = p.d > p.dv ? p.d : p.dv;
  if (dm <= 32) return launchSimt<T, 1>(q, k, v, o, p, stream);
  if (dm <= 64) return launchSimt<T, 2>(q, k, v, o, p, stream);
  return launchSimt<T, 4>(q, k, v, o, p, stream);
}

}  // namespace

bool attentionTensorCoreEligible(DataType dt, const AttnParams& p) {
  return dt == DataType::kFloat16 && !p.mask && p.d == p.dv && (p.d == 32 || p.d == 64 || p.d == 128);
}

Status attention(DataType dt, const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o,
                 const AttnParams& p, AttnAlgo algo, cudaStream_t stream) {
  if (p.batch < 0 || p.heads < 0 || p.sq < 0 || p.sk < 0 || p.d <= 0 || p.dv <= 0)
    return makeError(StatusCode::kInvalidArgument, "Attention: bad sizes batch=", p.batch, " heads=", p.heads,
                     " sq=", p.sq, " sk=", p.sk, " d=", p.d, " dv=", p.dv);
  if (p.d > 128 || p.dv > 128)
    return makeError(StatusCode::kUnsupported, "Attention: head size ", p.d, "/", p.dv, " > 128");
  if (p.batch * p.heads > 65535)
    return makeError(StatusCode::kUnsupported, "Attention: batch*heads = ", p.batch * p.heads, " > 65535");
  if (p.batch == 0 || p.heads == 0 || p.sq == 0) return Status::Ok();
  if (p.sk == 0) return makeError(StatusCode::kUnsupported, "Attention: no keys (sk = 0)");
  const bool tc = algo != AttnAlgo::kSimt && attentionTensorCoreEligible(dt, p);
  if (algo == AttnAlgo::kTensorCore && !tc)
    return makeError(StatusCode::kUnsupported, "Attention: tensor-core kernel needs fp16, no mask, d == dv in {32,64,128}");
  if (tc) {
    if (p.d == 32) return launchWmma<32>(q, k, v, o, p, stream);
    if (p.d == 64) return launchWmma<64>(q, k, v, o, p, stream);
    return launchWmma<128>(q, k, v, o, p, stream);
  }
  if (dt == DataType::kFloat32) return simtFor<float>(q, k, v, o, p, stream);
  if (dt == DataType::kFloat16) return simtFor<__half>(q, k, v, o, p, stream);
  return makeError(StatusCode::kUnsupported, "Attention: element type ", dataTypeName(dt));
}

}  // namespace ramjet::cuda
