// Detection pipeline kernels (issue #8): letterbox pre-processing and YOLO post-processing.
// See src/vision/gpu_kernels.h for the contract. Float arithmetic uses the _rn intrinsics so
// nvcc cannot contract a*b+c into an FMA: results then equal the CPU code's bit for bit.
#include <cub/device/device_segmented_radix_sort.cuh>

#include "backends/cuda/kernels/common.cuh"
#include "vision/gpu_kernels.h"

namespace ramjet::vision::gpu {

using ramjet::cuda::fromF;
using ramjet::cuda::toF;

namespace {

#define RJ_VCHECK(call)                                                                          \
  do {                                                                                           \
    cudaError_t e_ = (call);                                                                     \
    if (e_ != cudaSuccess)                                                                       \
      return makeError(StatusCode::kDeviceError, #call, " failed: ", cudaGetErrorString(e_), " (", \
                       __FILE__, ":", __LINE__, ")");                                            \
  } while (0)

Status launched(const char* what) {
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    return makeError(StatusCode::kDeviceError, what, " launch failed: ", cudaGetErrorString(e));
  return Status::Ok();
}

__device__ __forceinline__ float lerp(float a, float b, float w) { return __fadd_rn(a, __fmul_rn(__fsub_rn(b, a), w)); }

struct Tap {
  int i0, i1;
  float w1;
};
__device__ __forceinline__ Tap tapFor(int o, int in_n, float scale) {
  float src = __fsub_rn(__fdiv_rn(__fadd_rn(float(o), 0.5f), scale), 0.5f);
  src = fminf(fmaxf(src, 0.f), float(in_n - 1));
  Tap t;
  t.i0 = int(src);
  t.i1 = min(t.i0 + 1, in_n - 1);
  t.w1 = __fsub_rn(src, float(t.i0));
  return t;
}

template <typename T>
__global__ void letterboxKernel(const FrameDesc* __restrict__ descs, int W, int H, NormParams norm, T* __restrict__ out) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x, y = blockIdx.y * blockDim.y + threadIdx.y, b = blockIdx.z;
  if (x >= W || y >= H) return;
  const FrameDesc& d = descs[b];
  const size_t plane = size_t(W) * H;
  T* o = out + size_t(b) * 3 * plane + size_t(y) * W + x;
  const int rx = x - d.pad_x, ry = y - d.pad_y;
  if (rx < 0 || rx >= d.rw || ry < 0 || ry >= d.rh) {
#pragma unroll
    for (int c = 0; c < 3; ++c) o[c * plane] = fromF<T>(__fadd_rn(__fmul_rn(float(norm.pad_value), norm.mul[c]), norm.add[c]));
    return;
  }
  const Tap tx = tapFor(rx, d.width, d.scale_x), ty = tapFor(ry, d.height, d.scale_y);
  const uint8_t* r0 = d.data + size_t(ty.i0) * d.pitch;
  const uint8_t* r1 = d.data + size_t(ty.i1) * d.pitch;
#pragma unroll
  for (int c = 0; c < 3; ++c) {
    const int sc = d.src_c[c];
    // CPU: top = a + float(b - a) * w1 (integer difference first).
    int a = r0[tx.i0 * 3 + sc], bb = r0[tx.i1 * 3 + sc], cc = r1[tx.i0 * 3 + sc], dd = r1[tx.i1 * 3 + sc];
    float top = __fadd_rn(float(a), __fmul_rn(float(bb - a), tx.w1));
    float bot = __fadd_rn(float(cc), __fmul_rn(float(dd - cc), tx.w1));
    float v = lerp(top, bot, ty.w1);
    o[c * plane] = fromF<T>(__fadd_rn(__fmul_rn(v, norm.mul[c]), norm.add[c]));
  }
}

// ---------------------------------------------------------------- post-processing

struct Scratch {
  float *scores_in, *scores_out;
  int *idx_in, *idx_out, *count, *offsets;
  Box* boxes;
  unsigned long long* mask;
  void* sort_tmp;
  size_t sort_bytes;
  int A, kmax, words;
};

size_t align256(size_t v) { return (v + 255) & ~size_t(255); }

size_t sortTempBytes(int n, int A) {
  size_t bytes = 0;
  cub::DeviceSegmentedRadixSort::SortPairsDescending(nullptr, bytes, (const float*)nullptr, (float*)nullptr,
                                                     (const int*)nullptr, (int*)nullptr, n * A, n,
                                                     (const int*)nullptr, (const int*)nullptr);
  return bytes;
}

// Lays the scratch regions out; with base == nullptr only sizes them.
size_t layout(const PostParams& p, char* base, Scratch* s) {
  const int A = candidatesPerImage(p), n = p.n;
  const int kmax = std::max(1, std::min(A, p.max_candidates > 0 ? p.max_candidates : A));
  const int words = (kmax + 63) / 64;
  size_t off = 0;
  auto take = [&](size_t bytes) {
    char* ptr = base ? base + off : nullptr;
    off += align256(bytes);
    return ptr;
  };
  const size_t na = size_t(n) * A;
  s->scores_in = reinterpret_cast<float*>(take(na * 4));
  s->scores_out = reinterpret_cast<float*>(take(na * 4));
  s->idx_in = reinterpret_cast<int*>(take(na * 4));
  s->idx_out = reinterpret_cast<int*>(take(na * 4));
  s->count = reinterpret_cast<int*>(take(size_t(n) * 4));
  s->offsets = reinterpret_cast<int*>(take(size_t(n + 1) * 4));
  s->boxes = reinterpret_cast<Box*>(take(na * sizeof(Box)));
  // NMS is not needed for end-to-end outputs: no mask.
  s->mask = reinterpret_cast<unsigned long long*>(
      take(p.format == RawFormat::kE2E ? 8 : size_t(n) * kmax * words * 8));
  s->sort_bytes = sortTempBytes(n, A);
  s->sort_tmp = take(s->sort_bytes);
  s->A = A;
  s->kmax = kmax;
  s->words = words;
  return off;
}

__device__ __forceinline__ bool wantedClass(const uint8_t* wanted, int size, int c) {
  return !wanted || (c >= 0 && c < size && wanted[c]);
}

__device__ __forceinline__ bool finiteBox(const Box& b) {
  return isfinite(b.x1) && isfinite(b.y1) && isfinite(b.x2) && isfinite(b.y2) && isfinite(b.score);
}

template <typename T>
__global__ void decodeKernel(const T* __restrict__ raw, PostParams p, Scratch s) {
  const int A = s.A;
  const int64_t total = int64_t(p.n) * A;
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < total; t += int64_t(blockDim.x) * gridDim.x) {
    const int n = int(t / A), a = int(t - int64_t(n) * A);
    Box box{0, 0, 0, 0, 0, 0};
    bool ok = false;
    if (p.format == RawFormat::kV8) {
      const int ch = p.d1, C = ch - 4;
      const T* b = raw + size_t(n) * ch * A;
      int best = -1;
      float bs = -INFINITY;
      for (int c = 0; c < C; ++c) {
        float v = toF(b[size_t(4 + c) * A + a]);
        if (v > bs && wantedClass(p.d_wanted, p.wanted_size, c)) bs = v, best = c;
      }
      if (best >= 0 && bs >= p.conf) {
        float cx = toF(b[a]), cy = toF(b[size_t(A) + a]), w = toF(b[size_t(2) * A + a]), h = toF(b[size_t(3) * A + a]);
        float hw = __fdiv_rn(w, 2.f), hh = __fdiv_rn(h, 2.f);
        box = {__fsub_rn(cx, hw), __fsub_rn(cy, hh), __fadd_rn(cx, hw), __fadd_rn(cy, hh), bs, best};
        ok = true;
      }
    } else if (p.format == RawFormat::kV5) {
      const int ch = p.d2, C = ch - 5;
      const T* row = raw + (size_t(n) * A + a) * ch;
      float obj = toF(row[4]);
      if (obj >= p.conf) {
        int best = -1;
        float bs = -INFINITY;
        for (int c = 0; c < C; ++c) {
          float v = toF(row[5 + c]);
          if (v > bs && wantedClass(p.d_wanted, p.wanted_size, c)) bs = v, best = c;
        }
        float score = __fmul_rn(obj, bs);
        if (best >= 0 && score >= p.conf) {
          float cx = toF(row[0]), cy = toF(row[1]), w = toF(row[2]), h = toF(row[3]);
          float hw = __fdiv_rn(w, 2.f), hh = __fdiv_rn(h, 2.f);
          box = {__fsub_rn(cx, hw), __fsub_rn(cy, hh), __fadd_rn(cx, hw), __fadd_rn(cy, hh), score, best};
          ok = true;
        }
      }
    } else {
      const T* row = raw + (size_t(n) * A + a) * 6;
      float score = toF(row[4]), cf = toF(row[5]);
      if (score >= p.conf && isfinite(cf) && cf >= 0) {
        int c = int(lroundf(cf));
        if (wantedClass(p.d_wanted, p.wanted_size, c)) {
          box = {toF(row[0]), toF(row[1]), toF(row[2]), toF(row[3]), score, c};
          ok = true;
        }
      }
    }
    ok = ok && finiteBox(box);
    s.scores_in[t] = ok ? box.score : -INFINITY;
    s.idx_in[t] = a;
    s.boxes[t] = box;
    if (ok) atomicAdd(&s.count[n], 1);
  }
}

__global__ void offsetsKernel(int* offsets, int n, int A) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) offsets[i] = i * A;
}

// The CPU's iou(): the same operations in the same order.
__device__ __forceinline__ float iouOf(const Box& a, const Box& b) {
  float iw = __fsub_rn(fminf(a.x2, b.x2), fmaxf(a.x1, b.x1));
  float ih = __fsub_rn(fminf(a.y2, b.y2), fmaxf(a.y1, b.y1));
  if (iw <= 0 || ih <= 0) return 0.f;
  float inter = __fmul_rn(iw, ih);
  float aa = __fmul_rn(fmaxf(0.f, __fsub_rn(a.x2, a.x1)), fmaxf(0.f, __fsub_rn(a.y2, a.y1)));
  float ab = __fmul_rn(fmaxf(0.f, __fsub_rn(b.x2, b.x1)), fmaxf(0.f, __fsub_rn(b.y2, b.y1)));
  float ua = __fsub_rn(__fadd_rn(aa, ab), inter);
  return ua > 0 ? __fdiv_rn(inter, ua) : 0.f;
}

__device__ __forceinline__ const Box& sortedBox(const Scratch& s, int n, int i) {
  return s.boxes[size_t(n) * s.A + s.idx_out[size_t(n) * s.A + i]];
}

// Block (row tile r, image n), 64 threads: bit j of mask[n][i][w] says box i (sorted order)
// suppresses box j = 64 w + bit (j > i, same class unless agnostic, IoU above the threshold).
__global__ void nmsMaskKernel(PostParams p, Scratch s) {
  const int r = blockIdx.x, n = blockIdx.y;
  const int K = min(s.count[n], s.kmax);
  if (r * 64 >= K) return;
  const int i = r * 64 + threadIdx.x;
  const int words_k = (K + 63) / 64;
  __shared__ Box cols[64];
  Box me{};
  if (i < K) me = sortedBox(s, n, i);
  for (int w = r; w < words_k; ++w) {
    const int j0 = w * 64;
    __syncthreads();
    if (j0 + int(threadIdx.x) < K) cols[threadIdx.x] = sortedBox(s, n, j0 + threadIdx.x);
    __syncthreads();
    if (i >= K) continue;
    unsigned long long bits = 0;
    const int jn = min(64, K - j0);
    for (int k = 0; k < jn; ++k) {
      const int j = j0 + k;
      if (j <= i) continue;
      if (!p.agnostic && cols[k].cls != me.cls) continue;
      if (iouOf(me, cols[k]) > p.iou) bits |= 1ULL << k;
    }
    s.mask[(size_t(n) * s.kmax + i) * s.words + w] = bits;
  }
}

__device__ __forceinline__ float toFrame(float v, float pad, float scale, float size) {
  return fminf(fmaxf(__fdiv_rn(__fsub_rn(v, pad), scale), 0.f), size);
}

// One block per image: the greedy pass over the sorted candidates.
__global__ void nmsReduceKernel(PostParams p, Scratch s, Box* out, int* out_count) {
  extern __shared__ unsigned long long removed[];
  const int n = blockIdx.x;
  const int K = min(s.count[n], s.kmax);
  const int words_k = (K + 63) / 64;
  for (int w = threadIdx.x; w < words_k; w += blockDim.x) removed[w] = 0;
  __syncthreads();
  const bool nms = p.format != RawFormat::kE2E;
  int kept = 0;
  for (int i = 0; i < K && kept < p.max_det; ++i) {
    if ((removed[i >> 6] >> (i & 63)) & 1ULL) continue;
    if (threadIdx.x == 0) {
      Box b = sortedBox(s, n, i);
      if (p.d_place) {
        const Placement pl = p.d_place[n];
        b.x1 = toFrame(b.x1, pl.pad_x, pl.scale_x, pl.frame_w);
        b.x2 = toFrame(b.x2, pl.pad_x, pl.scale_x, pl.frame_w);
        b.y1 = toFrame(b.y1, pl.pad_y, pl.scale_y, pl.frame_h);
        b.y2 = toFrame(b.y2, pl.pad_y, pl.scale_y, pl.frame_h);
      }
      out[size_t(n) * p.max_det + kept] = b;
    }
    ++kept;
    if (nms) {
      // Bit i of row i is never set, so threads still reading word i>>6 above see no change.
      const unsigned long long* row = s.mask + (size_t(n) * s.kmax + i) * s.words;
      for (int w = (i >> 6) + threadIdx.x; w < words_k; w += blockDim.x) removed[w] |= row[w];
      __syncthreads();
    }
  }
  if (threadIdx.x == 0) out_count[n] = kept;
}

}  // namespace

Status letterbox(const FrameDesc* d_descs, int n, int out_w, int out_h, bool fp16, const NormParams& norm,
                 void* out, cudaStream_t stream) {
  if (n <= 0 || out_w <= 0 || out_h <= 0) return Status::Ok();
  dim3 block(32, 8), grid((out_w + 31) / 32, (out_h + 7) / 8, n);
  if (n > 65535) return makeError(StatusCode::kInvalidArgument, "letterbox: batch ", n, " above 65535");
  if (fp16)
    letterboxKernel<__half><<<grid, block, 0, stream>>>(d_descs, out_w, out_h, norm, static_cast<__half*>(out));
  else
    letterboxKernel<float><<<grid, block, 0, stream>>>(d_descs, out_w, out_h, norm, static_cast<float*>(out));
  return launched("letterbox");
}

int candidatesPerImage(const PostParams& p) { return p.format == RawFormat::kV8 ? p.d2 : p.d1; }

size_t postprocessScratchBytes(const PostParams& p) {
  Scratch s;
  return layout(p, nullptr, &s);
}

Status postprocess(const void* d_raw, const PostParams& p, const PostBuffers& b, cudaStream_t stream) {
  if (p.n <= 0) return Status::Ok();
  const int A = candidatesPerImage(p);
  bool ok = p.d1 > 0 && p.d2 > 0 && p.max_det > 0;
  if (p.format == RawFormat::kV8) ok = ok && p.d1 >= 5;
  if (p.format == RawFormat::kV5) ok = ok && p.d2 >= 6;
  if (p.format == RawFormat::kE2E) ok = ok && p.d2 == 6;
  if (!ok || int64_t(p.n) * A >= (int64_t(1) << 31))
    return makeError(StatusCode::kInvalidArgument, "postprocess: output [", p.n, ", ", p.d1, ", ", p.d2,
                     "] does not fit format ", int(p.format), " (or max_det ", p.max_det, " < 1)");
  Scratch s;
  size_t need = layout(p, static_cast<char*>(b.scratch), &s);
  if (need > b.scratch_bytes)
    return makeError(StatusCode::kInvalidArgument, "postprocess: scratch of ", b.scratch_bytes, " bytes, need ", need);
  RJ_VCHECK(cudaMemsetAsync(s.count, 0, sizeof(int) * p.n, stream));
  offsetsKernel<<<(p.n + 1 + 255) / 256, 256, 0, stream>>>(s.offsets, p.n, A);
  const int64_t total = int64_t(p.n) * A;
  unsigned grid = unsigned(std::min<int64_t>((total + 255) / 256, 65535LL * 16));
  if (p.fp16)
    decodeKernel<__half><<<grid, 256, 0, stream>>>(static_cast<const __half*>(d_raw), p, s);
  else
    decodeKernel<float><<<grid, 256, 0, stream>>>(static_cast<const float*>(d_raw), p, s);
  RJ_RETURN_IF_ERROR(launched("yolo decode"));
  size_t tmp = s.sort_bytes;
  RJ_VCHECK(cub::DeviceSegmentedRadixSort::SortPairsDescending(s.sort_tmp, tmp, s.scores_in, s.scores_out, s.idx_in,
                                                               s.idx_out, int(total), p.n, s.offsets, s.offsets + 1,
                                                               0, 32, stream));
  if (p.format != RawFormat::kE2E) {
    nmsMaskKernel<<<dim3(s.words, p.n), 64, 0, stream>>>(p, s);
    RJ_RETURN_IF_ERROR(launched("nms mask"));
  }
  nmsReduceKernel<<<p.n, 128, size_t(s.words) * 8, stream>>>(p, s, b.d_out, b.d_count);
  return launched("nms reduce");
}

}  // namespace ramjet::vision::gpu
