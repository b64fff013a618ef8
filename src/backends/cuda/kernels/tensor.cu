// Data movement and spatial ops: Transpose, Concat/Split, Slice, Gather, Pad, pooling, Resize.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cuda/kernels/common.cuh"

namespace ramjet::cuda {
namespace {

template <typename E>
__global__ void stridedCopyKernel(const E* in, E* out, int64_t n, int r, Dims8 dims, Idx8 st) {
  RJ_GRID_STRIDE_LOOP(i, n) out[i] = in[offsetOf(i, r, dims, st)];
}

// Copy units wider than an element (data movement reads and writes whole 16-byte vectors where
// the innermost dim is contiguous on both sides).
template <typename F>
bool visitUnit(size_t n, F&& f) {
  switch (n) {
    case 16: f(DevTag<uint4>{}); return true;
    default: return visitElemSize(n, f);
  }
}

// The widest copy unit (16, 8, 4 or 2 bytes, at least `es`) dividing every byte count or address
// in `values`; `es` when none does. The one alignment rule of the data-movement kernels.
size_t widestUnit(size_t es, std::initializer_list<uint64_t> values, const std::vector<int64_t>& counts = {},
                  size_t count_es = 0) {
  for (size_t u : {size_t{16}, size_t{8}, size_t{4}, size_t{2}}) {
    if (u <= es) break;
    bool ok = true;
    for (uint64_t v : values) ok = ok && v % u == 0;
    for (int64_t c : counts) ok = ok && (static_cast<uint64_t>(c) * count_es) % u == 0;
    if (ok) return u;
  }
  return es;
}

// A strided gather out[i] = in[base + offset(i)] over out dims `dims` with input strides `st`
// (elements), re-expressed in the widest unit (<= 16 bytes) that keeps every access aligned:
// the innermost dim must be contiguous in the input (stride 1) and its length, the other
// strides, the base and both pointers divisible by the unit.
struct WideCopy {
  size_t unit;
  std::vector<int64_t> dims, st;
  int64_t base;
};
WideCopy widenCopy(size_t es, const void* in, const void* out, std::vector<int64_t> dims, std::vector<int64_t> st,
                   int64_t base) {
  WideCopy w{es, dims, st, base};
  if (dims.empty() || st.back() != 1) return w;
  std::vector<int64_t> counts(st.begin(), st.end() - 1);  // outer strides, in elements
  counts.push_back(dims.back());
  counts.push_back(base);
  const size_t unit = widestUnit(es, {reinterpret_cast<uintptr_t>(in), reinterpret_cast<uintptr_t>(out)}, counts, es);
  if (unit == es) return w;
  const int64_t v = static_cast<int64_t>(unit / es);
  w.unit = unit;
  w.dims.back() = dims.back() / v;
  for (size_t i = 0; i + 1 < st.size(); ++i) w.st[i] = st[i] / v;
  w.base = base / v;
  return w;
}

Status launchStridedCopy(const char* what, size_t es, const void* in, void* out, std::vector<int64_t> dims,
                         std::vector<int64_t> st, int64_t base, cudaStream_t stream) {
  std::vector<std::vector<int64_t>> sts = {st};
  mergeBroadcastDims(&dims, &sts);
  if (dims.empty()) {
    dims = {1};
    sts = {{1}};
  }
  WideCopy w = widenCopy(es, in, out, dims, sts[0], base);
  const int64_t n = product(w.dims);
  if (n == 0) return Status::Ok();
  const int r = static_cast<int>(w.dims.size());
  bool ok = visitUnit(w.unit, [&](auto tag) {
    using E = typename decltype(tag)::type;
    stridedCopyKernel<E><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(in) + w.base, static_cast<E*>(out),
                                                              n, r, toDims8(w.dims), toIdx8(w.st, 0));
  });
  if (!ok) return makeError(StatusCode::kUnsupported, what, ": element size ", es);
  RJ_CUDA_CHECK_LAUNCH(what);
  return Status::Ok();
}

// [B, R, C] -> [B, C, R] with few rows (R <= 4, e.g. NCHW -> NHWC of an RGB image): one thread
// per column reads R coalesced rows and writes its R outputs back to back.
template <typename E>
__global__ void transposeFewRowsKernel(const E* in, E* out, int64_t B, int R, int64_t C, bool small, FastDiv fc) {
  RJ_GRID_STRIDE_LOOP(i, B * C) {
    int64_t rem = i;
    const int64_t c = divmod(rem, C, fc, small), b = rem;
    const E* src = in + b * R * C + c;
    E* dst = out + (b * C + c) * R;
    for (int r = 0; r < R; ++r) dst[r] = src[r * C];
  }
}

// [B, R, C] -> [B, C, R] through a padded 32x32 shared tile (coalesced both ways).
template <typename E>
__global__ void transpose021Kernel(const E* in, E* out, int64_t R, int64_t C) {
  __shared__ E tile[32][33];
  int64_t b = blockIdx.z;
  int64_t r0 = (int64_t)blockIdx.y * 32, c0 = (int64_t)blockIdx.x * 32;
  const E* src = in + b * R * C;
  E* dst = out + b * R * C;
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    int64_t r = r0 + j, c = c0 + threadIdx.x;
    if (r < R && c < C) tile[j][threadIdx.x] = src[r * C + c];
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 32; j += blockDim.y) {
    int64_t c = c0 + j, r = r0 + threadIdx.x;
    if (r < R && c < C) dst[c * R + r] = tile[threadIdx.x][j];
  }
}

// The 2-byte version moves 64x64 tiles in 32-bit words (two elements per access on both the
// read and the write side): the FP16 NCHW <-> NHWC boundaries of a network.
__global__ void transpose021Half2Kernel(const uint16_t* in, uint16_t* out, int64_t R, int64_t C) {
  __shared__ uint16_t tile[64][66];
  const int64_t b = blockIdx.z, r0 = (int64_t)blockIdx.y * 64, c0 = (int64_t)blockIdx.x * 64;
  const uint16_t* src = in + b * R * C;
  uint16_t* dst = out + b * R * C;
  const int tx = threadIdx.x;
  const bool cvec = (C & 1) == 0, rvec = (R & 1) == 0;
  for (int j = threadIdx.y; j < 64; j += blockDim.y) {
    const int64_t r = r0 + j, c = c0 + 2 * tx;
    if (r >= R) continue;
    if (cvec && c + 1 < C) {
      const uint32_t w = *reinterpret_cast<const uint32_t*>(src + r * C + c);
      tile[j][2 * tx] = static_cast<uint16_t>(w & 0xffffu);
      tile[j][2 * tx + 1] = static_cast<uint16_t>(w >> 16);
    } else {
      if (c < C) tile[j][2 * tx] = src[r * C + c];
      if (c + 1 < C) tile[j][2 * tx + 1] = src[r * C + c + 1];
    }
  }
  __syncthreads();
  for (int j = threadIdx.y; j < 64; j += blockDim.y) {
    const int64_t c = c0 + j, r = r0 + 2 * tx;
    if (c >= C) continue;
    if (rvec && r + 1 < R) {
      const uint32_t w = static_cast<uint32_t>(tile[2 * tx][j]) | (static_cast<uint32_t>(tile[2 * tx + 1][j]) << 16);
      *reinterpret_cast<uint32_t*>(dst + c * R + r) = w;
    } else {
      if (r < R) dst[c * R + r] = tile[2 * tx][j];
      if (r + 1 < R) dst[c * R + r + 1] = tile[2 * tx + 1][j];
    }
  }
}

template <typename E>
__global__ void gatherKernel(const E* in, int64_t outer, int64_t axis_len, int64_t inner,
                             const void* idx, bool idx64, int64_t n_idx, E* out, int* err) {
  int64_t n = outer * n_idx * inner;
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t in_i = i % inner;
    int64_t t = i / inner;
    int64_t j = t % n_idx, o = t / n_idx;
    int64_t k = idx64 ? static_cast<const int64_t*>(idx)[j] : static_cast<const int32_t*>(idx)[j];
    if (k < 0) k += axis_len;
    if (k < 0 || k >= axis_len) {
      if (err) *err = 1;
      E z;
      memset(&z, 0, sizeof(E));
      out[i] = z;
    } else {
      out[i] = in[(o * axis_len + k) * inner + in_i];
    }
  }
}

template <typename E>
__global__ void padKernel(const E* in, E* out, int64_t n, int r, Dims8 out_dims, Idx8 in_dims,
                          Idx8 in_st, Idx8 begin, int mode, E value) {
  RJ_GRID_STRIDE_LOOP(i, n) {
    int64_t rem = i, off = 0;
    bool outside = false;
    for (int d = r - 1; d >= 0; --d) {
      int64_t c = divmod(rem, out_dims.v[d], out_dims.f[d], out_dims.small) - begin.v[d];
      int64_t len = in_dims.v[d];
      if (c < 0 || c >= len) {
        if (mode == 0 || len == 0) { outside = true; break; }
        if (mode == 1) {  // reflect (without repeating the edge)
          if (len == 1) c = 0;
          else {
            int64_t period = 2 * (len - 1);
            c = ((c % period) + period) % period;
            if (c >= len) c = period - c;
          }
        } else if (mode == 2) {  // edge
          c = c < 0 ? 0 : len - 1;
        } else {  // wrap
          c = ((c % len) + len) % len;
        }
      }
      off += c * in_st.v[d];
    }
    out[i] = outside ? value : in[off];
  }
}

struct PoolDev {
  int64_t n, c, in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
  FastDiv fc, fout[3];
  bool include_pad, nhwc, small;
};

template <typename T, bool kMax>
__global__ void poolKernel(const T* x, T* y, PoolDev p, int64_t total) {
  int64_t in_sp = p.in[0] * p.in[1] * p.in[2];
  RJ_GRID_STRIDE_LOOP(i, total) {
    int64_t rem = i, c = 0, o[3];
    if (p.nhwc) c = divmod(rem, p.c, p.fc, p.small);
    o[2] = divmod(rem, p.out[2], p.fout[2], p.small);
    o[1] = divmod(rem, p.out[1], p.fout[1], p.small);
    o[0] = divmod(rem, p.out[0], p.fout[0], p.small);
    if (!p.nhwc) c = divmod(rem, p.c, p.fc, p.small);
    int64_t nn = rem;
    int64_t base, cstride;
    if (p.nhwc) { base = nn * in_sp * p.c + c; cstride = p.c; }
    else { base = (nn * p.c + c) * in_sp; cstride = 1; }
    float acc = kMax ? -INFINITY : 0.f;
    int64_t count = 0, padded_count = 0;
    int64_t st0 = o[0] * p.s[0] - p.pb[0], st1 = o[1] * p.s[1] - p.pb[1], st2 = o[2] * p.s[2] - p.pb[2];
    for (int64_t a = 0; a < p.k[0]; ++a) {
      int64_t i0 = st0 + a * p.d[0];
      bool in0 = i0 >= 0 && i0 < p.in[0], pad0 = i0 >= -p.pb[0] && i0 < p.in[0] + p.pe[0];
      for (int64_t b = 0; b < p.k[1]; ++b) {
        int64_t i1 = st1 + b * p.d[1];
        bool in1 = i1 >= 0 && i1 < p.in[1], pad1 = i1 >= -p.pb[1] && i1 < p.in[1] + p.pe[1];
        for (int64_t e = 0; e < p.k[2]; ++e) {
          int64_t i2 = st2 + e * p.d[2];
          bool in2 = i2 >= 0 && i2 < p.in[2], pad2 = i2 >= -p.pb[2] && i2 < p.in[2] + p.pe[2];
          if (pad0 && pad1 && pad2) ++padded_count;
          if (!(in0 && in1 && in2)) continue;
          float v = toF(x[base + ((i0 * p.in[1] + i1) * p.in[2] + i2) * cstride]);
          if (kMax) acc = (v > acc || v != v) ? v : acc;
          else acc += v;
          ++count;
        }
      }
    }
    if (!kMax) {
      int64_t div = p.include_pad ? padded_count : count;
      acc = div > 0 ? acc / static_cast<float>(div) : 0.f;
    }
    y[i] = fromF<T>(acc);
  }
}

// NHWC pooling over V consecutive channels per thread (16-byte loads and stores): the same
// window arithmetic as poolKernel, amortised over V channels.
template <typename T, int V>
struct alignas(16) VecT {
  T v[V];
};

template <typename T, bool kMax, int V>
__global__ void poolNhwcVecKernel(const T* x, T* y, PoolDev p, int64_t total) {
  using Vec = VecT<T, V>;
  const int64_t in_sp = p.in[0] * p.in[1] * p.in[2], cv = p.c / V;
  RJ_GRID_STRIDE_LOOP(i, total) {
    int64_t rem = i, o[3];
    const int64_t c = divmod(rem, cv, p.fc, p.small) * V;
    o[2] = divmod(rem, p.out[2], p.fout[2], p.small);
    o[1] = divmod(rem, p.out[1], p.fout[1], p.small);
    o[0] = divmod(rem, p.out[0], p.fout[0], p.small);
    const int64_t base = rem * in_sp * p.c + c;
    float acc[V];
#pragma unroll
    for (int j = 0; j < V; ++j) acc[j] = kMax ? -INFINITY : 0.f;
    int64_t count = 0, padded_count = 0;
    const int64_t st0 = o[0] * p.s[0] - p.pb[0], st1 = o[1] * p.s[1] - p.pb[1], st2 = o[2] * p.s[2] - p.pb[2];
    for (int64_t a = 0; a < p.k[0]; ++a) {
      const int64_t i0 = st0 + a * p.d[0];
      const bool in0 = i0 >= 0 && i0 < p.in[0], pad0 = i0 >= -p.pb[0] && i0 < p.in[0] + p.pe[0];
      for (int64_t b = 0; b < p.k[1]; ++b) {
        const int64_t i1 = st1 + b * p.d[1];
        const bool in1 = i1 >= 0 && i1 < p.in[1], pad1 = i1 >= -p.pb[1] && i1 < p.in[1] + p.pe[1];
        for (int64_t e = 0; e < p.k[2]; ++e) {
          const int64_t i2 = st2 + e * p.d[2];
          const bool in2 = i2 >= 0 && i2 < p.in[2], pad2 = i2 >= -p.pb[2] && i2 < p.in[2] + p.pe[2];
          if (pad0 && pad1 && pad2) ++padded_count;
          if (!(in0 && in1 && in2)) continue;
          const Vec val = *reinterpret_cast<const Vec*>(x + base + ((i0 * p.in[1] + i1) * p.in[2] + i2) * p.c);
#pragma unroll
          for (int j = 0; j < V; ++j) {
            const float v = toF(val.v[j]);
            if (kMax) acc[j] = (v > acc[j] || v != v) ? v : acc[j];
            else acc[j] += v;
          }
          ++count;
        }
      }
    }
    Vec out;
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float r = acc[j];
      if (!kMax) {
        const int64_t div = p.include_pad ? padded_count : count;
        r = div > 0 ? r / static_cast<float>(div) : 0.f;
      }
      out.v[j] = fromF<T>(r);
    }
    *reinterpret_cast<Vec*>(y + i * V) = out;
  }
}

struct ResizeDev {
  int r;
  int64_t in[kMaxRank], out[kMaxRank], in_st[kMaxRank];
  float scale[kMaxRank];
  FastDiv fout[kMaxRank];
  int lin[4];
  int nlin;
  int mode, coord, nearest;
  bool small;
};

__device__ __forceinline__ float srcCoord(int coord, int64_t x, float scale, int64_t in_len,
                                          int64_t out_len) {
  float xf = static_cast<float>(x);
  switch (coord) {
    case 0: return (xf + 0.5f) / scale - 0.5f;                                  // half_pixel
    case 1: return xf / scale;                                                  // asymmetric
    case 2: return out_len == 1 ? 0.f : xf * (in_len - 1) / float(out_len - 1); // align_corners
    case 3: return out_len > 1 ? (xf + 0.5f) / scale - 0.5f : 0.f;              // pytorch_half_pixel
    default: {                                                                  // half_pixel_symmetric
      float adj = static_cast<float>(out_len) / (scale * static_cast<float>(in_len));
      float center = static_cast<float>(in_len) * 0.5f;
      float offset = center * (1.f - adj);
      return offset + (xf + 0.5f) / scale - 0.5f;
    }
  }
}

__device__ __forceinline__ int64_t nearestIndex(int nearest, float x, int64_t in_len) {
  float f = floorf(x);
  int64_t v;
  switch (nearest) {
    case 0: v = (x - f == 0.5f) ? (int64_t)f : (int64_t)rintf(x); break;      // round_prefer_floor
    case 1: v = (x - f == 0.5f) ? (int64_t)f + 1 : (int64_t)rintf(x); break;  // round_prefer_ceil
    case 2: v = (int64_t)f; break;                                            // floor
    default: v = (int64_t)ceilf(x); break;                                    // ceil
  }
  return v < 0 ? 0 : (v >= in_len ? in_len - 1 : v);
}

// Linear Resize (nearest runs as resizeNearestKernel, a gather of whole units).
template <typename T>
__global__ void resizeKernel(const T* x, T* y, ResizeDev p, int64_t total) {
  RJ_GRID_STRIDE_LOOP(i, total) {
    int64_t rem = i, base = 0;
    int64_t i0[4] = {0, 0, 0, 0}, i1[4] = {0, 0, 0, 0};
    float w[4] = {0.f, 0.f, 0.f, 0.f};
    int li = p.nlin - 1;
    for (int d = p.r - 1; d >= 0; --d) {
      int64_t o = divmod(rem, p.out[d], p.fout[d], p.small);
      bool is_lin = li >= 0 && p.lin[li] == d;
      if (is_lin) {
        float xs = srcCoord(p.coord, o, p.scale[d], p.in[d], p.out[d]);
        xs = fminf(fmaxf(xs, 0.f), static_cast<float>(p.in[d] - 1));
        int64_t a = static_cast<int64_t>(floorf(xs));
        int64_t b = a + 1 < p.in[d] ? a + 1 : a;
        i0[li] = a * p.in_st[d];
        i1[li] = b * p.in_st[d];
        w[li] = xs - static_cast<float>(a);
        --li;
      } else {
        base += o * p.in_st[d];
      }
    }
    float acc = 0.f;
    int corners = 1 << p.nlin;
    for (int m = 0; m < corners; ++m) {
      float wt = 1.f;
      int64_t off = base;
      for (int k = 0; k < p.nlin; ++k) {
        bool hi = (m >> k) & 1;
        wt *= hi ? w[k] : 1.f - w[k];
        off += hi ? i1[k] : i0[k];
      }
      if (wt != 0.f) acc += wt * toF(x[off]);
    }
    y[i] = fromF<T>(acc);
  }
}

// Nearest-neighbour Resize as a gather of whole units (the innermost dim, unscaled, copied in
// 16-byte pieces: an NHWC upsample moves each pixel's channels at once).
template <typename E>
__global__ void resizeNearestKernel(const E* x, E* y, ResizeDev p, int64_t total) {
  RJ_GRID_STRIDE_LOOP(i, total) {
    int64_t rem = i, base = 0;
    for (int d = p.r - 1; d >= 0; --d) {
      const int64_t o = divmod(rem, p.out[d], p.fout[d], p.small);
      if (p.in[d] == p.out[d] && p.scale[d] == 1.f) base += o * p.in_st[d];
      else base += nearestIndex(p.nearest, srcCoord(p.coord, o, p.scale[d], p.in[d], p.out[d]), p.in[d]) * p.in_st[d];
    }
    y[i] = x[base];
  }
}

}  // namespace

Status transpose(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
                 const std::vector<int64_t>& perm, void* out, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("Transpose", in_dims));
  int rank = static_cast<int>(in_dims.size());
  if (static_cast<int>(perm.size()) != rank)
    return makeError(StatusCode::kInvalidArgument, "Transpose: perm has ", perm.size(),
                     " entries for rank ", rank);
  std::vector<bool> seen(rank, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p])
      return makeError(StatusCode::kInvalidArgument, "Transpose: perm is not a permutation of 0..", rank - 1);
    seen[p] = true;
  }
  int64_t n = product(in_dims);
  if (n == 0) return Status::Ok();
  // Drop size-1 dims, then merge input dims that stay adjacent and in order in the output.
  std::vector<int> keep_map(rank, -1);
  std::vector<int64_t> d1;
  for (int i = 0; i < rank; ++i)
    if (in_dims[i] != 1) { keep_map[i] = static_cast<int>(d1.size()); d1.push_back(in_dims[i]); }
  std::vector<int> p1;
  for (int64_t p : perm)
    if (keep_map[p] >= 0) p1.push_back(keep_map[p]);
  // Groups: runs in p1 of consecutive input dims.
  std::vector<std::vector<int>> groups;  // in output order, each a run of input dims
  for (int p : p1) {
    if (!groups.empty() && groups.back().back() + 1 == p) groups.back().push_back(p);
    else groups.push_back({p});
  }
  // Merged input dims are the groups sorted by their first input dim.
  std::vector<int> order(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) order[g] = static_cast<int>(g);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return groups[a][0] < groups[b][0]; });
  std::vector<int64_t> md(groups.size());       // merged input dims
  std::vector<int> mperm(groups.size());        // output position g takes merged input dim
  for (size_t k = 0; k < order.size(); ++k) {
    int64_t sz = 1;
    for (int p : groups[order[k]]) sz *= d1[p];
    md[k] = sz;
    mperm[order[k]] = static_cast<int>(k);
  }
  int r = static_cast<int>(md.size());
  bool ok;
  if (r <= 1) {
    RJ_CUDA_CHECK(cudaMemcpyAsync(out, in, n * elem_size, cudaMemcpyDeviceToDevice, stream));
    return Status::Ok();
  }
  bool is021 = (r == 2 && mperm[0] == 1) || (r == 3 && mperm[0] == 0 && mperm[1] == 2 && mperm[2] == 1);
  if (is021) {
    int64_t B = r == 3 ? md[0] : 1, R = md[r - 2], C = md[r - 1];
    if (R <= 4) {  // few rows: the 32x32 tile would leave most of each block idle
      const bool small = fastIndex(B * C * R);
      ok = visitElemSize(elem_size, [&](auto tag) {
        using E = typename decltype(tag)::type;
        transposeFewRowsKernel<E><<<gridFor(B * C), kThreads, 0, stream>>>(
            static_cast<const E*>(in), static_cast<E*>(out), B, static_cast<int>(R), C, small, makeFastDiv(C));
      });
      if (!ok) return makeError(StatusCode::kUnsupported, "Transpose: element size ", elem_size);
      RJ_CUDA_CHECK_LAUNCH("Transpose");
      return Status::Ok();
    }
  }
  if (is021 && elem_size == 2 && (r == 2 || md[0] <= 65535) && (reinterpret_cast<uintptr_t>(in) & 3) == 0 &&
      (reinterpret_cast<uintptr_t>(out) & 3) == 0) {
    int64_t B = r == 3 ? md[0] : 1, R = md[r - 2], C = md[r - 1];
    if ((R + 63) / 64 <= 65535) {
      dim3 grid(static_cast<unsigned>((C + 63) / 64), static_cast<unsigned>((R + 63) / 64), static_cast<unsigned>(B));
      transpose021Half2Kernel<<<grid, dim3(32, 8), 0, stream>>>(static_cast<const uint16_t*>(in),
                                                               static_cast<uint16_t*>(out), R, C);
      RJ_CUDA_CHECK_LAUNCH("Transpose");
      return Status::Ok();
    }
  }
  if (is021 && (r == 2 || md[0] <= 65535)) {
    int64_t B = r == 3 ? md[0] : 1, R = md[r - 2], C = md[r - 1];
    dim3 grid(static_cast<unsigned>((C + 31) / 32), static_cast<unsigned>((R + 31) / 32),
              static_cast<unsigned>(B));
    if ((R + 31) / 32 <= 65535) {
      ok = visitElemSize(elem_size, [&](auto tag) {
        using E = typename decltype(tag)::type;
        transpose021Kernel<E><<<grid, dim3(32, 8), 0, stream>>>(static_cast<const E*>(in),
                                                                 static_cast<E*>(out), R, C);
      });
      if (!ok) return makeError(StatusCode::kUnsupported, "Transpose: element size ", elem_size);
      RJ_CUDA_CHECK_LAUNCH("Transpose");
      return Status::Ok();
    }
  }
  std::vector<int64_t> in_st(r), out_dims(r), st(r);
  int64_t s = 1;
  for (int i = r - 1; i >= 0; --i) { in_st[i] = s; s *= md[i]; }
  for (int i = 0; i < r; ++i) { out_dims[i] = md[mperm[i]]; st[i] = in_st[mperm[i]]; }
  // The innermost dim staying innermost ([S, B, D] <-> [B, S, D]) copies 16-byte units.
  return launchStridedCopy("Transpose", elem_size, in, out, out_dims, st, 0, stream);
}

// rows x width units from src (pitch spitch) to dst (pitch dpitch), pitches in units.
template <typename E>
__global__ void copy2DKernel(const E* src, int64_t spitch, E* dst, int64_t dpitch, int64_t width, int64_t rows,
                             bool small, FastDiv fw) {
  RJ_GRID_STRIDE_LOOP(i, rows * width) {
    int64_t rem = i;
    const int64_t c = divmod(rem, width, fw, small);
    dst[rem * dpitch + c] = src[rem * spitch + c];
  }
}

// cudaMemcpy2DAsync moves narrow rows (an NHWC channel concat: 64-256 bytes per pixel) at a
// fraction of the bandwidth; a kernel copying the widest aligned unit runs at memory speed.
Status copy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t rows, cudaStream_t stream) {
  const size_t unit = widestUnit(1, {width, dpitch, spitch, reinterpret_cast<uintptr_t>(dst), reinterpret_cast<uintptr_t>(src)});
  const int64_t w = static_cast<int64_t>(width / unit), n = w * static_cast<int64_t>(rows);
  const bool small = fastIndex(n);
  bool ok = visitUnit(unit, [&](auto tag) {
    using E = typename decltype(tag)::type;
    copy2DKernel<E><<<gridFor(n), kThreads, 0, stream>>>(static_cast<const E*>(src), static_cast<int64_t>(spitch / unit),
                                                         static_cast<E*>(dst), static_cast<int64_t>(dpitch / unit), w,
                                                         static_cast<int64_t>(rows), small, makeFastDiv(w));
  });
  if (!ok) return makeError(StatusCode::kInternal, "copy2D: unit ", unit);
  RJ_CUDA_CHECK_LAUNCH("Concat/Split");
  return Status::Ok();
}

static Status concatSplit(bool is_concat, size_t es, const std::vector<int64_t>& dims, int axis,
                          const std::vector<int64_t>& lens, char* whole,
                          const std::vector<char*>& parts, cudaStream_t stream) {
  const char* name = is_concat ? "Concat" : "Split";
  RJ_RETURN_IF_ERROR(checkDims(name, dims));
  if (axis < 0 || axis >= static_cast<int>(dims.size()))
    return makeError(StatusCode::kInvalidArgument, name, ": axis ", axis, " out of range for rank ", dims.size());
  if (lens.size() != parts.size())
    return makeError(StatusCode::kInvalidArgument, name, ": ", lens.size(), " lengths for ", parts.size(), " tensors");
  int64_t outer = 1, inner = 1, total = 0;
  for (int i = 0; i < axis; ++i) outer *= dims[i];
  for (size_t i = axis + 1; i < dims.size(); ++i) inner *= dims[i];
  for (int64_t l : lens) {
    if (l < 0) return makeError(StatusCode::kInvalidArgument, name, ": negative length");
    total += l;
  }
  size_t row = static_cast<size_t>(total * inner) * es;
  size_t off = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    size_t w = static_cast<size_t>(lens[i] * inner) * es;
    if (w > 0 && outer > 0) {
      char* dst = is_concat ? whole + off : parts[i];
      const char* src = is_concat ? parts[i] : whole + off;
      size_t dpitch = is_concat ? row : w, spitch = is_concat ? w : row;
      if (outer == 1)
        RJ_CUDA_CHECK(cudaMemcpyAsync(dst, src, w, cudaMemcpyDeviceToDevice, stream));
      else
        RJ_RETURN_IF_ERROR(copy2D(dst, dpitch, src, spitch, w, static_cast<size_t>(outer), stream));
    }
    off += w;
  }
  return Status::Ok();
}

Status concat(size_t elem_size, const std::vector<const void*>& inputs,
              const std::vector<int64_t>& lens, const std::vector<int64_t>& dims_except_axis,
              int axis, void* out, cudaStream_t stream) {
  std::vector<char*> parts;
  for (const void* p : inputs) parts.push_back(static_cast<char*>(const_cast<void*>(p)));
  return concatSplit(true, elem_size, dims_except_axis, axis, lens, static_cast<char*>(out), parts, stream);
}

Status split(size_t elem_size, const void* in, const std::vector<int64_t>& dims_except_axis,
             int axis, const std::vector<int64_t>& lens, const std::vector<void*>& outputs,
             cudaStream_t stream) {
  std::vector<char*> parts;
  for (void* p : outputs) parts.push_back(static_cast<char*>(p));
  return concatSplit(false, elem_size, dims_except_axis, axis, lens,
                     static_cast<char*>(const_cast<void*>(in)), parts, stream);
}

Status slice(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
             const std::vector<int64_t>& starts, const std::vector<int64_t>& steps, void* out,
             const std::vector<int64_t>& out_dims, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("Slice", in_dims));
  int r = static_cast<int>(in_dims.size());
  if (static_cast<int>(starts.size()) != r || static_cast<int>(steps.size()) != r ||
      static_cast<int>(out_dims.size()) != r)
    return makeError(StatusCode::kInvalidArgument, "Slice: starts/steps/output rank must equal input rank ", r);
  int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  std::vector<int64_t> in_st(r), st(r);
  int64_t s = 1, base = 0;
  for (int i = r - 1; i >= 0; --i) { in_st[i] = s; s *= in_dims[i]; }
  for (int i = 0; i < r; ++i) {
    if (steps[i] == 0) return makeError(StatusCode::kInvalidArgument, "Slice: step 0 on axis ", i);
    int64_t last = starts[i] + (out_dims[i] - 1) * steps[i];
    if (starts[i] < 0 || starts[i] >= in_dims[i] || last < 0 || last >= in_dims[i])
      return makeError(StatusCode::kInvalidArgument, "Slice: axis ", i, " range start ", starts[i],
                       " step ", steps[i], " count ", out_dims[i], " leaves [0, ", in_dims[i], ")");
    base += starts[i] * in_st[i];
    st[i] = steps[i] * in_st[i];
  }
  return launchStridedCopy("Slice", elem_size, in, out, out_dims, st, base, stream);
}

Status gather(size_t elem_size, const void* in, int64_t outer, int64_t axis_len, int64_t inner,
              DataType index_dtype, const void* indices, int64_t n_indices, void* out,
              int* error_flag, cudaStream_t stream) {
  if (index_dtype != DataType::kInt64 && index_dtype != DataType::kInt32)
    return makeError(StatusCode::kInvalidArgument, "Gather: indices must be int32 or int64, got ",
                     dataTypeName(index_dtype));
  int64_t n = outer * n_indices * inner;
  if (n == 0) return Status::Ok();
  bool ok = visitElemSize(elem_size, [&](auto tag) {
    using E = typename decltype(tag)::type;
    gatherKernel<E><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const E*>(in), outer, axis_len, inner, indices,
        index_dtype == DataType::kInt64, n_indices, static_cast<E*>(out), error_flag);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "Gather: element size ", elem_size);
  RJ_CUDA_CHECK_LAUNCH("Gather");
  return Status::Ok();
}

Status pad(DataType dtype, const void* in, const std::vector<int64_t>& in_dims,
           const std::vector<int64_t>& pads, PadMode mode, double constant, void* out,
           cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("Pad", in_dims));
  int r = static_cast<int>(in_dims.size());
  if (static_cast<int>(pads.size()) != 2 * r)
    return makeError(StatusCode::kInvalidArgument, "Pad: ", pads.size(), " pads for rank ", r);
  std::vector<int64_t> out_dims(r), begin(r), in_st(r);
  int64_t s = 1;
  for (int i = r - 1; i >= 0; --i) { in_st[i] = s; s *= in_dims[i]; }
  for (int i = 0; i < r; ++i) {
    out_dims[i] = in_dims[i] + pads[i] + pads[i + r];
    begin[i] = pads[i];
    if (out_dims[i] < 0)
      return makeError(StatusCode::kInvalidArgument, "Pad: axis ", i, " would have negative size");
    if (mode != PadMode::kConstant && in_dims[i] == 0 && out_dims[i] > 0)
      return makeError(StatusCode::kInvalidArgument, "Pad: cannot ", mode == PadMode::kReflect ? "reflect" : "extend",
                       " an empty axis ", i);
  }
  int64_t n = product(out_dims);
  if (n == 0) return Status::Ok();
  // The constant, converted to dtype, as raw bytes.
  uint64_t bits = 0;
  switch (dtype) {
    case DataType::kFloat32: { float v = static_cast<float>(constant); std::memcpy(&bits, &v, 4); break; }
    case DataType::kFloat16: { uint16_t h = Half::fromFloat(static_cast<float>(constant)); std::memcpy(&bits, &h, 2); break; }
    case DataType::kFloat64: std::memcpy(&bits, &constant, 8); break;
    case DataType::kInt64: case DataType::kUInt64: { int64_t v = static_cast<int64_t>(constant); std::memcpy(&bits, &v, 8); break; }
    case DataType::kInt32: case DataType::kUInt32: { int32_t v = static_cast<int32_t>(constant); std::memcpy(&bits, &v, 4); break; }
    case DataType::kInt16: case DataType::kUInt16: { int16_t v = static_cast<int16_t>(constant); std::memcpy(&bits, &v, 2); break; }
    case DataType::kInt8: case DataType::kUInt8: case DataType::kBool: { int8_t v = static_cast<int8_t>(constant != 0 && dtype == DataType::kBool ? 1 : constant); std::memcpy(&bits, &v, 1); break; }
    default: return makeError(StatusCode::kUnsupported, "Pad: element type ", dataTypeName(dtype));
  }
  bool ok = visitElemSize(dataTypeSize(dtype), [&](auto tag) {
    using E = typename decltype(tag)::type;
    E v;
    std::memcpy(&v, &bits, sizeof(E));
    padKernel<E><<<gridFor(n), kThreads, 0, stream>>>(
        static_cast<const E*>(in), static_cast<E*>(out), n, r, toDims8(out_dims), toIdx8(in_dims),
        toIdx8(in_st, 0), toIdx8(begin, 0), static_cast<int>(mode), v);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "Pad: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("Pad");
  return Status::Ok();
}

static Status pool(bool is_max, DataType dtype, const void* x, void* y, const PoolParams& p,
                   cudaStream_t stream) {
  const char* name = is_max ? "MaxPool" : "AveragePool";
  if (p.spatial_rank < 1 || p.spatial_rank > 3)
    return makeError(StatusCode::kUnsupported, name, ": ", p.spatial_rank, " spatial dims (1-3 supported)");
  PoolDev d{};
  d.n = p.n; d.c = p.c; d.include_pad = p.count_include_pad; d.nhwc = p.layout == Layout::kNHWC;
  for (int i = 0; i < 3; ++i) {
    bool use = i < p.spatial_rank;
    d.in[i] = use ? p.in[i] : 1; d.out[i] = use ? p.out[i] : 1;
    d.k[i] = use ? p.kernel[i] : 1; d.s[i] = use ? p.stride[i] : 1; d.d[i] = use ? p.dilation[i] : 1;
    d.pb[i] = use ? p.pad_begin[i] : 0; d.pe[i] = use ? p.pad_end[i] : 0;
    if (d.k[i] < 1 || d.s[i] < 1 || d.d[i] < 1 || d.in[i] < 0 || d.out[i] < 0)
      return makeError(StatusCode::kInvalidArgument, name, ": bad kernel/stride/dilation on spatial axis ", i);
  }
  int64_t total = d.n * d.c * d.out[0] * d.out[1] * d.out[2];
  if (total == 0) return Status::Ok();
  d.small = fastIndex(total);
  d.fc = makeFastDiv(d.c);
  for (int i = 0; i < 3; ++i) d.fout[i] = makeFastDiv(d.out[i]);
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int V = 16 / sizeof(T);
    const bool aligned = (reinterpret_cast<uintptr_t>(x) & 15) == 0 && (reinterpret_cast<uintptr_t>(y) & 15) == 0;
    if (d.nhwc && d.c % V == 0 && aligned) {
      PoolDev dv = d;
      dv.fc = makeFastDiv(d.c / V);
      const int64_t tv = total / V;
      if (is_max)
        poolNhwcVecKernel<T, true, V><<<gridFor(tv), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), dv, tv);
      else
        poolNhwcVecKernel<T, false, V><<<gridFor(tv), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), dv, tv);
    } else if (is_max) {
      poolKernel<T, true><<<gridFor(total), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), d, total);
    } else {
      poolKernel<T, false><<<gridFor(total), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), d, total);
    }
  });
  if (!ok) return makeError(StatusCode::kUnsupported, name, ": element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH(name);
  return Status::Ok();
}

Status maxPool(DataType dtype, const void* x, void* y, const PoolParams& p, cudaStream_t stream) {
  return pool(true, dtype, x, y, p, stream);
}
Status averagePool(DataType dtype, const void* x, void* y, const PoolParams& p, cudaStream_t stream) {
  return pool(false, dtype, x, y, p, stream);
}

Status resize(DataType dtype, const void* x, const std::vector<int64_t>& in_dims, void* y,
              const std::vector<int64_t>& out_dims, const ResizeParams& p, cudaStream_t stream) {
  RJ_RETURN_IF_ERROR(checkDims("Resize", in_dims));
  int r = static_cast<int>(in_dims.size());
  if (static_cast<int>(out_dims.size()) != r)
    return makeError(StatusCode::kInvalidArgument, "Resize: output rank ", out_dims.size(), " != input rank ", r);
  if (!p.scales.empty() && static_cast<int>(p.scales.size()) != r)
    return makeError(StatusCode::kInvalidArgument, "Resize: ", p.scales.size(), " scales for rank ", r);
  int64_t total = product(out_dims);
  if (total == 0) return Status::Ok();
  if (product(in_dims) == 0)
    return makeError(StatusCode::kInvalidArgument, "Resize: empty input ", dimsToString(in_dims),
                     " cannot fill output ", dimsToString(out_dims));
  ResizeDev d{};
  d.r = r;
  d.small = fastIndex(total);
  for (int i = 0; i < r; ++i) d.fout[i] = makeFastDiv(out_dims[i]);
  d.mode = p.mode == ResizeMode::kNearest ? 0 : 1;
  d.coord = static_cast<int>(p.coord);
  d.nearest = static_cast<int>(p.nearest);
  int64_t s = 1;
  for (int i = r - 1; i >= 0; --i) { d.in_st[i] = s; s *= in_dims[i]; }
  d.nlin = 0;
  for (int i = 0; i < r; ++i) {
    d.in[i] = in_dims[i];
    d.out[i] = out_dims[i];
    d.scale[i] = p.scales.empty() ? static_cast<float>(out_dims[i]) / static_cast<float>(in_dims[i]) : p.scales[i];
    if (!(d.scale[i] > 0.f))
      return makeError(StatusCode::kInvalidArgument, "Resize: scale ", d.scale[i], " on axis ", i, " must be > 0");
    if (d.mode == 1 && (in_dims[i] != out_dims[i] || d.scale[i] != 1.f)) {
      if (d.nlin == 4)
        return makeError(StatusCode::kUnsupported, "Resize: linear over more than 4 axes");
      d.lin[d.nlin++] = i;
    }
  }
  if (d.mode == 0) {
    // Nearest: a pure gather, for any element type. When the innermost dim is unscaled, copy it
    // in the widest aligned unit (whole NHWC pixels, 16 bytes at a time).
    const size_t es = dataTypeSize(dtype);
    const bool inner_kept = in_dims[r - 1] == out_dims[r - 1] && d.scale[r - 1] == 1.f;
    const size_t unit = inner_kept ? widestUnit(es, {reinterpret_cast<uintptr_t>(x), reinterpret_cast<uintptr_t>(y),
                                                     static_cast<uint64_t>(in_dims[r - 1]) * es})
                                   : es;
    const int64_t v = static_cast<int64_t>(unit / es);
    ResizeDev dn = d;
    dn.in[r - 1] = d.in[r - 1] / v;
    dn.out[r - 1] = d.out[r - 1] / v;
    for (int i = 0; i < r - 1; ++i) dn.in_st[i] = d.in_st[i] / v;
    dn.fout[r - 1] = makeFastDiv(dn.out[r - 1]);
    const int64_t tn = total / v;
    bool ok = visitUnit(unit, [&](auto tag) {
      using E = typename decltype(tag)::type;
      resizeNearestKernel<E><<<gridFor(tn), kThreads, 0, stream>>>(static_cast<const E*>(x), static_cast<E*>(y), dn, tn);
    });
    if (!ok) return makeError(StatusCode::kUnsupported, "Resize: element type ", dataTypeName(dtype));
    RJ_CUDA_CHECK_LAUNCH("Resize");
    return Status::Ok();
  }
  bool ok = visitFloatDev(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    resizeKernel<T><<<gridFor(total), kThreads, 0, stream>>>(static_cast<const T*>(x), static_cast<T*>(y), d, total);
  });
  if (!ok) return makeError(StatusCode::kUnsupported, "Resize: element type ", dataTypeName(dtype));
  RJ_CUDA_CHECK_LAUNCH("Resize");
  return Status::Ok();
}

}  // namespace ramjet::cuda
