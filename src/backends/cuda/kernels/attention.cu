// Fused attention (flash-attention style: online softmax, FP32 statistics and accumulation,
// nothing of size Sq x Sk in global memory) over strided [batch, heads, seq, dim] views, so
// packed QKV projections and head-split layouts are read in place.
//  * attnWmma: FP16 tensor cores (WMMA 16x16x16, FP32 accumulate), 64 queries x 64 keys per
//    step, 4 warps of 16 query rows; scores, probabilities and the running output live in
//    shared memory between the two products. d == dv in {32, 64, 128}, no mask.
//  * attnMma: FP16 tensor cores through mma.sync m16n8k16 (sm_80+), flash-attention-2 layout:
//    scores, probabilities and the output stay in registers, K/V double-buffered by cp.async.
//    Same eligibility as attnWmma; the builder times the three kernels.
//  * attnSimt: any d, dv <= 128, f32/f16, masks; one warp per 4 query rows, K/V tiles of 32 keys
//    in shared memory as float, lane j scores key j, each lane owns dv/32 output columns.
#include <mma.h>

#include <cmath>
#include <mutex>
#include <set>
#include <utility>

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

// Q, K and V rows readable as 16-byte vectors (every pointer and stride a multiple of 8 halves).
bool vectorViews(const AttnView& q, const AttnView& k, const AttnView& v) {
  auto al = [](const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; };
  return al(q.data) && al(k.data) && al(v.data) && q.stride_s % 8 == 0 && k.stride_s % 8 == 0 && v.stride_s % 8 == 0 &&
         q.stride_b % 8 == 0 && k.stride_b % 8 == 0 && v.stride_b % 8 == 0 && q.stride_h % 8 == 0 &&
         k.stride_h % 8 == 0 && v.stride_h % 8 == 0;
}

// Raises `kernel`'s dynamic shared memory limit to `bytes` once per device (the attribute belongs
// to the device's context: a server running contexts on several GPUs needs it on each).
template <typename K>
Status allowDynamicSmem(K kernel, size_t bytes, const char* what) {
  static std::mutex mu;
  static std::set<std::pair<int, const void*>> done;  // (device, kernel)
  int dev = 0;
  RJ_CUDA_CHECK(cudaGetDevice(&dev));
  const auto key = std::make_pair(dev, reinterpret_cast<const void*>(kernel));
  std::lock_guard<std::mutex> lock(mu);
  if (done.count(key)) return Status::Ok();
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (err != cudaSuccess) return cudaError(err, what, __FILE__, __LINE__);
  done.insert(key);
  return Status::Ok();
}

template <int D>
Status launchWmma(const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o, const AttnParams& p,
                  cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(allowDynamicSmem(attnWmma<D>, TcSmem<D>::kBytes, "cudaFuncSetAttribute(attnWmma)"));
  const bool vec = vectorViews(q, k, v);
  dim3 grid(static_cast<unsigned>((p.sq + kTcRows - 1) / kTcRows), static_cast<unsigned>(p.batch * p.heads));
  attnWmma<D><<<grid, kTcWarps * 32, TcSmem<D>::kBytes, stream>>>(
      static_cast<const __half*>(q.data), static_cast<const __half*>(k.data), static_cast<const __half*>(v.data),
      static_cast<__half*>(const_cast<void*>(o.data)), q, k, v, o, p, vec);
  RJ_CUDA_CHECK_LAUNCH("Attention (tensor cores)");
  return Status::Ok();
}

// ------------------------------------------------------------------ mma.sync kernel (sm_80+)
// Flash-attention-2 style: 4 warps x 16 query rows, 64 keys per step, K/V tiles double-buffered
// through cp.async. Scores, probabilities and the output accumulator stay in registers in the
// mma.m16n8k16 fragment layouts (a score C-fragment pair is the A-fragment of P·V), so shared
// memory only carries Q, K and V. Softmax in the exp2 domain, FP32 statistics and accumulation.
constexpr int kMmaRows = 64, kMmaKeys = 64, kMmaWarps = 4;

template <int D, int STAGES>
struct MmaSmem {
  static constexpr int kPitch = D + 8;  // halves; +16 bytes keeps ldmatrix rows on distinct banks
  static constexpr size_t kTile = sizeof(__half) * kMmaKeys * kPitch;
  static constexpr size_t kQ = 0;
  static constexpr size_t kK = kQ + kTile;
  static constexpr size_t kV = kK + STAGES * kTile;
  static constexpr size_t kBytes = kV + STAGES * kTile;
};

__device__ __forceinline__ uint32_t smemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void ldsm4(uint32_t (&r)[4], const void* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p)));
#endif
}

__device__ __forceinline__ void ldsm4t(uint32_t (&r)[4], const void* p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smemAddr(p)));
#endif
}

// c += a(16x16, row) · b(16x8, col), f16 in, f32 accumulate.
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

__device__ __forceinline__ void cpAsync16(void* dst, const void* src, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  // src-size 0 zero-fills the 16 bytes (rows past the end of the sequence).
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
#endif
}
__device__ __forceinline__ void cpAsyncCommit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N>
__device__ __forceinline__ void cpAsyncWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

__device__ __forceinline__ uint32_t packHalf2(float lo, float hi) {
  __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&h);
}

// 64 rows x D halves of a strided view into shared memory; rows >= valid are zero. vec: 16-byte
// cp.async (asynchronous, the caller commits and waits); else plain element copies.
template <int D>
__device__ __forceinline__ void mmaLoadTile(__half* dst, const __half* src, int64_t stride_s, int64_t valid,
                                            bool vec) {
  constexpr int P = D + 8, V = D / 8;
  if (vec) {
    for (int idx = threadIdx.x; idx < kMmaKeys * V; idx += blockDim.x) {
      const int r = idx / V, c = (idx % V) * 8;
      const bool in = r < valid;
      cpAsync16(dst + r * P + c, in ? src + r * stride_s + c : src, in);
    }
  } else {
    for (int idx = threadIdx.x; idx < kMmaKeys * D; idx += blockDim.x) {
      const int r = idx / D, c = idx % D;
      dst[r * P + c] = r < valid ? src[r * stride_s + c] : __float2half(0.f);
    }
  }
}

template <int D, int STAGES>
__global__ void __launch_bounds__(kMmaWarps * 32)
attnMma(const __half* __restrict__ q, const __half* __restrict__ k, const __half* __restrict__ v,
        __half* __restrict__ o, AttnView qv, AttnView kv, AttnView vv, AttnView ov, AttnParams p, bool vec) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using L = MmaSmem<D, STAGES>;
  constexpr int P = L::kPitch, KC = D / 16, NT = kMmaKeys / 8, DT = D / 8;
  extern __shared__ __align__(128) unsigned char smem[];
  __half* qs = reinterpret_cast<__half*>(smem + L::kQ);
  __half* ks = reinterpret_cast<__half*>(smem + L::kK);
  __half* vs = reinterpret_cast<__half*>(smem + L::kV);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, tig = lane & 3;
  const int64_t bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int64_t q0 = static_cast<int64_t>(blockIdx.x) * kMmaRows;
  const __half* qb = q + b * qv.stride_b + h * qv.stride_h + q0 * qv.stride_s;
  const __half* kb = k + b * kv.stride_b + h * kv.stride_h;
  const __half* vb = v + b * vv.stride_b + h * vv.stride_h;
  const int64_t ntiles = (p.sk + kMmaKeys - 1) / kMmaKeys;

  mmaLoadTile<D>(qs, qb, qv.stride_s, p.sq - q0, vec);
  if (STAGES == 2) {
    mmaLoadTile<D>(ks, kb, kv.stride_s, p.sk, vec);
    mmaLoadTile<D>(vs, vb, vv.stride_s, p.sk, vec);
  }
  cpAsyncCommit();
  cpAsyncWait<0>();
  __syncthreads();
  // This warp's Q rows as A fragments, one per 16 columns of D.
  uint32_t qf[KC][4];
#pragma unroll
  for (int kc = 0; kc < KC; ++kc) ldsm4(qf[kc], qs + (warp * 16 + (lane & 15)) * P + kc * 16 + (lane >> 4) * 8);

  const bool active = q0 + warp * 16 < p.sq;
  const float sl2 = p.scale * 1.4426950408889634f;  // scores in the exp2 domain
  float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.f, l1 = 0.f;  // rows g and g + 8
  float acc[DT][4];
#pragma unroll
  for (int j = 0; j < DT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;

  for (int64_t t = 0; t < ntiles; ++t) {
    const int st = STAGES == 2 ? static_cast<int>(t & 1) : 0;
    const int64_t t0 = t * kMmaKeys;
    if (STAGES == 2) {
      if (t + 1 < ntiles) {
        const int64_t n0 = t0 + kMmaKeys;
        mmaLoadTile<D>(ks + (st ^ 1) * kMmaKeys * P, kb + n0 * kv.stride_s, kv.stride_s, p.sk - n0, vec);
        mmaLoadTile<D>(vs + (st ^ 1) * kMmaKeys * P, vb + n0 * vv.stride_s, vv.stride_s, p.sk - n0, vec);
      }
      cpAsyncCommit();
      cpAsyncWait<1>();
    } else {
      mmaLoadTile<D>(ks, kb + t0 * kv.stride_s, kv.stride_s, p.sk - t0, vec);
      mmaLoadTile<D>(vs, vb + t0 * vv.stride_s, vv.stride_s, p.sk - t0, vec);
      cpAsyncCommit();
      cpAsyncWait<0>();
    }
    __syncthreads();
    const __half* kt = ks + st * kMmaKeys * P;
    const __half* vt = vs + st * kMmaKeys * P;
    const int64_t left = p.sk - t0;
    if (!active) {  // this warp's rows are all past sq: it only helps load the tiles
      __syncthreads();
      continue;
    }

    // S = Q·Kᵀ: 16 rows x 64 keys per warp, NT fragments of 8 keys; fragments wholly past the
    // last key are skipped (ViT's 197 keys leave 5 in the last tile).
    float s[NT][4];
#pragma unroll
    for (int j = 0; j < NT; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
    for (int kc = 0; kc < KC; ++kc) {
#pragma unroll
      for (int j = 0; j < NT; j += 2) {
        if (j * 8 >= left) break;
        // Keys j*8.. and (j+1)*8.., d columns kc*16 .. +15: b0/b1 of two n-fragments.
        uint32_t bf[4];
        ldsm4(bf, kt + (j * 8 + (lane & 7) + ((lane >> 4) << 3)) * P + kc * 16 + ((lane >> 3) & 1) * 8);
        mma16816(s[j], qf[kc], bf[0], bf[1]);
        mma16816(s[j + 1], qf[kc], bf[2], bf[3]);
      }
    }
    // Online softmax. Thread holds rows g (s[j][0..1]) and g+8 (s[j][2..3]), keys j*8 + 2*tig + {0,1}.
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool in = j * 8 + 2 * tig + e < left;
        s[j][e] = in ? s[j][e] * sl2 : -INFINITY;
        s[j][2 + e] = in ? s[j][2 + e] * sl2 : -INFINITY;
        mx0 = fmaxf(mx0, s[j][e]);
        mx1 = fmaxf(mx1, s[j][2 + e]);
      }
    }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    // Every tile holds at least one valid key, so the new maxima are finite.
    const float mn0 = fmaxf(m0, mx0), mn1 = fmaxf(m1, mx1);
    const float c0 = exp2f(m0 - mn0), c1 = exp2f(m1 - mn1);  // exp2(-inf) = 0 on the first tile
    m0 = mn0;
    m1 = mn1;
    float sum0 = 0.f, sum1 = 0.f;
    uint32_t pf[NT / 2][4];
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const float e0 = exp2f(s[j][0] - mn0), e1 = exp2f(s[j][1] - mn0);
      const float e2 = exp2f(s[j][2] - mn1), e3 = exp2f(s[j][3] - mn1);
      const uint32_t lo = packHalf2(e0, e1), hi = packHalf2(e2, e3);
      // The normaliser sums the rounded probabilities the product uses.
      const float2 flo = __half22float2(*reinterpret_cast<const __half2*>(&lo));
      const float2 fhi = __half22float2(*reinterpret_cast<const __half2*>(&hi));
      sum0 += flo.x + flo.y;
      sum1 += fhi.x + fhi.y;
      // C fragments of key groups 2i and 2i+1 form the A fragment of keys 16i..16i+15.
      pf[j >> 1][(j & 1) * 2 + 0] = lo;
      pf[j >> 1][(j & 1) * 2 + 1] = hi;
    }
    l0 = l0 * c0 + sum0;
    l1 = l1 * c1 + sum1;
#pragma unroll
    for (int j = 0; j < DT; ++j) {
      acc[j][0] *= c0;
      acc[j][1] *= c0;
      acc[j][2] *= c1;
      acc[j][3] *= c1;
    }
    // O += P·V: V tile [64 keys][D] row-major is the row-major B; ldmatrix.trans gives b0/b1.
#pragma unroll
    for (int kc = 0; kc < kMmaKeys / 16; ++kc) {
      if (kc * 16 >= left) break;  // probabilities past the last key are 0
#pragma unroll
      for (int j = 0; j < DT; j += 2) {
        uint32_t bf[4];
        ldsm4t(bf, vt + (kc * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + j * 8 + (lane >> 4) * 8);
        mma16816(acc[j], pf[kc], bf[0], bf[1]);
        mma16816(acc[j + 1], pf[kc], bf[2], bf[3]);
      }
    }
    __syncthreads();  // the next iteration's loads overwrite the stage just read
  }
  if (!active) return;
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
  const float i0 = 1.f / l0, i1 = 1.f / l1;
  __half* ob = o + b * ov.stride_b + h * ov.stride_h;
  const int64_t r0 = q0 + warp * 16 + g, r1 = r0 + 8;
  const bool ovec = vec && (ov.stride_s % 2 == 0) && (ov.stride_b % 2 == 0) && (ov.stride_h % 2 == 0) &&
                    (reinterpret_cast<uintptr_t>(o) & 3) == 0;
#pragma unroll
  for (int j = 0; j < DT; ++j) {
    const int c = j * 8 + 2 * tig;
    if (r0 < p.sq) {
      __half* dst = ob + r0 * ov.stride_s + c;
      if (ovec) {
        *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(acc[j][0] * i0, acc[j][1] * i0);
      } else {
        dst[0] = __float2half_rn(acc[j][0] * i0);
        dst[1] = __float2half_rn(acc[j][1] * i0);
      }
    }
    if (r1 < p.sq) {
      __half* dst = ob + r1 * ov.stride_s + c;
      if (ovec) {
        *reinterpret_cast<__half2*>(dst) = __floats2half2_rn(acc[j][2] * i1, acc[j][3] * i1);
      } else {
        dst[0] = __float2half_rn(acc[j][2] * i1);
        dst[1] = __float2half_rn(acc[j][3] * i1);
      }
    }
  }
#endif
}

template <int D, int STAGES>
Status launchMmaStages(const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o,
                       const AttnParams& p, bool vec, cudaStream_t stream) {
  using L = MmaSmem<D, STAGES>;
  RJ_RETURN_IF_ERROR(allowDynamicSmem(attnMma<D, STAGES>, L::kBytes, "cudaFuncSetAttribute(attnMma)"));
  dim3 grid(static_cast<unsigned>((p.sq + kMmaRows - 1) / kMmaRows), static_cast<unsigned>(p.batch * p.heads));
  attnMma<D, STAGES><<<grid, kMmaWarps * 32, L::kBytes, stream>>>(
      static_cast<const __half*>(q.data), static_cast<const __half*>(k.data), static_cast<const __half*>(v.data),
      static_cast<__half*>(const_cast<void*>(o.data)), q, k, v, o, p, vec);
  RJ_CUDA_CHECK_LAUNCH("Attention (mma.sync)");
  return Status::Ok();
}

struct DeviceCaps {
  int major = 0, smem_optin = 0;
};
DeviceCaps deviceCaps() {
  // Per device: contexts may run on several GPUs.
  static std::mutex mu;
  static DeviceCaps caps[64];
  static bool known[64] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return {};
  std::lock_guard<std::mutex> lock(mu);
  if (!known[dev]) {
    cudaDeviceGetAttribute(&caps[dev].major, cudaDevAttrComputeCapabilityMajor, dev);
    cudaDeviceGetAttribute(&caps[dev].smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    known[dev] = true;
  }
  return caps[dev];
}

template <int D>
Status launchMma(const AttnView& q, const AttnView& k, const AttnView& v, const AttnView& o, const AttnParams& p,
                 bool vec, cudaStream_t stream) {
  const DeviceCaps c = deviceCaps();
  if (c.major < 8) return makeError(StatusCode::kUnsupported, "Attention: mma.sync kernel needs sm_80 or newer");
  if (static_cast<size_t>(c.smem_optin) >= MmaSmem<D, 2>::kBytes) return launchMmaStages<D, 2>(q, k, v, o, p, vec, stream);
  if (static_cast<size_t>(c.smem_optin) >= MmaSmem<D, 1>::kBytes) return launchMmaStages<D, 1>(q, k, v, o, p, vec, stream);
  return makeError(StatusCode::kUnsupported, "Attention: mma.sync kernel needs ", MmaSmem<D, 1>::kBytes,
                   " bytes of shared memory per block");
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
  if ((algo == AttnAlgo::kTensorCore || algo == AttnAlgo::kMma) && !tc)
    return makeError(StatusCode::kUnsupported, "Attention: tensor-core kernels need fp16, no mask, d == dv in {32,64,128}");
  if (tc && algo != AttnAlgo::kTensorCore) {
    const bool vec = vectorViews(q, k, v);
    Status st = p.d == 32   ? launchMma<32>(q, k, v, o, p, vec, stream)
                : p.d == 64 ? launchMma<64>(q, k, v, o, p, vec, stream)
                            : launchMma<128>(q, k, v, o, p, vec, stream);
    // kAuto on a GPU older than sm_80 goes on to the WMMA kernel.
    if (st.ok() || algo == AttnAlgo::kMma || st.code() != StatusCode::kUnsupported) return st;
  }
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
