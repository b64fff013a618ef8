// The shared cache-blocked GEMM, and the Gemm / MatMul / MatMulInteger reference kernels.
#include "backends/cpu/reference/gemm.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backends/cpu/reference/broadcast.h"
#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::reference {
namespace {

// Register tile: MR rows x NR columns of C live in 12 vector registers during the k loop.
template <typename T>
struct Tile;
template <>
struct Tile<float> {
  typedef float V __attribute__((vector_size(32)));
  static constexpr int kMR = 6, kNR = 16, kVL = 8;
};
template <>
struct Tile<double> {
  typedef double V __attribute__((vector_size(32)));
  static constexpr int kMR = 6, kNR = 8, kVL = 4;
};

// AVX-512 float tile: 8 rows x 48 columns = 24 of the 32 zmm registers; 8 rows keep the waste
// small for the 16..64-channel convolutions of small CNNs (M = output channels).
struct Tile512F {
  typedef float V __attribute__((vector_size(64)));
  static constexpr int kMR = 8, kNR = 48, kVL = 16;
};

constexpr int64_t kKC = 256;   // k block: an A strip (MR x KC) + B panel (KC x NR) stay in L1/L2
constexpr int64_t kNC = 2048;  // n block: the packed B block (KC x NC) stays in L2/L3

// C[mr x nr] += a (packed MR x kc, k-major) * b (packed kc x NR, k-major); with `store`,
// C = a * b (C's old contents are not read: no zero-fill pass over C first).
template <typename T, typename Tl = Tile<T>>
[[gnu::always_inline]] inline void microKernel(int64_t kc, const T* a, const T* b, T* c,
                                               int64_t ldc, int mr, int nr, bool store) {
  using V = typename Tl::V;
  constexpr int MR = Tl::kMR, NR = Tl::kNR, VL = Tl::kVL, NV = NR / VL;
  V acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = V{};
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) std::memcpy(&bv[v], b + k * NR + v * VL, sizeof(V));
    for (int i = 0; i < MR; ++i) {
      T ai = a[k * MR + i];
      for (int v = 0; v < NV; ++v) acc[i][v] += ai * bv[v];
    }
  }
  if (mr == MR && nr == NR) {
    for (int i = 0; i < MR; ++i)
      for (int v = 0; v < NV; ++v) {
        V cv = acc[i][v];
        if (!store) {
          V old;
          std::memcpy(&old, c + i * ldc + v * VL, sizeof(V));
          cv += old;
        }
        std::memcpy(c + i * ldc + v * VL, &cv, sizeof(V));
      }
    return;
  }
  T tmp[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) std::memcpy(&tmp[i][v * VL], &acc[i][v], sizeof(V));
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) c[i * ldc + j] = store ? tmp[i][j] : c[i * ldc + j] + tmp[i][j];
}

// The same micro-kernel compiled twice: for AVX2+FMA and for the baseline ISA. Dispatch is by
// CPU feature at run time (not target_clones' "arch=" which matches CPU models only), so the
// default -O3 build still gets 256-bit FMA in the hot loop on any x86-64 of the last decade.
#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
__attribute__((target("avx2,fma"))) void microKernelF_avx2(int64_t kc, const float* a,
                                                           const float* b, float* c, int64_t ldc,
                                                           int mr, int nr, bool store) {
  microKernel<float>(kc, a, b, c, ldc, mr, nr, store);
}
__attribute__((target("avx2,fma"))) void microKernelD_avx2(int64_t kc, const double* a,
                                                           const double* b, double* c, int64_t ldc,
                                                           int mr, int nr, bool store) {
  microKernel<double>(kc, a, b, c, ldc, mr, nr, store);
}
__attribute__((target("avx512f,fma"))) void microKernelF_avx512(int64_t kc, const float* a,
                                                               const float* b, float* c,
                                                               int64_t ldc, int mr, int nr, bool store) {
  microKernel<float, Tile512F>(kc, a, b, c, ldc, mr, nr, store);
}
void microKernelF_base(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr,
                       int nr, bool store) {
  microKernel<float>(kc, a, b, c, ldc, mr, nr, store);
}
void microKernelD_base(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, int mr,
                       int nr, bool store) {
  microKernel<double>(kc, a, b, c, ldc, mr, nr, store);
}
#pragma GCC pop_options

}  // namespace

bool cpuHasAvx2Fma() {
  static const bool kHave = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return kHave;
}

bool cpuHasAvx512() {
  static const bool kHave = [] {
    __builtin_cpu_init();
    const char* off = std::getenv("RAMJET_NO_AVX512");
    return !(off && off[0] == '1') && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
  }();
  return kHave;
}

namespace {

// The AVX-512 tile's micro-kernel, used by the gemmSerial instance packed for Tile512F.
struct Micro512 {
  static void call(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr, int nr, bool store) {
    microKernelF_avx512(kc, a, b, c, ldc, mr, nr, store);
  }
};

inline void callMicro(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int mr,
                      int nr, bool store) {
  if (cpuHasAvx2Fma())
    microKernelF_avx2(kc, a, b, c, ldc, mr, nr, store);
  else
    microKernelF_base(kc, a, b, c, ldc, mr, nr, store);
}
inline void callMicro(int64_t kc, const double* a, const double* b, double* c, int64_t ldc, int mr,
                      int nr, bool store) {
  if (cpuHasAvx2Fma())
    microKernelD_avx2(kc, a, b, c, ldc, mr, nr, store);
  else
    microKernelD_base(kc, a, b, c, ldc, mr, nr, store);
}

// Helper threads for parallelFor: started on first use, parked on a condition variable.
class WorkPool {
 public:
  static WorkPool& instance() {
    static WorkPool* pool = new WorkPool();  // never destroyed: workers may outlive main()
    return *pool;
  }
  int threads() const { return static_cast<int>(workers_) + 1; }

  void run(int64_t n, const std::function<void(int64_t)>& fn) {
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n = n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = job;
      ++generation_;
    }
    cv_.notify_all();
    work(*job);
    // Only chunks a helper already claimed are waited for.
    while (job->done.load(std::memory_order_acquire) < n) std::this_thread::yield();
  }

 private:
  struct Job {
    const std::function<void(int64_t)>* fn = nullptr;
    int64_t n = 0;
    std::atomic<int64_t> next{0}, done{0};
  };

  WorkPool() {
    int want = 1;
#ifdef _OPENMP
    want = omp_get_max_threads();  // honours OMP_NUM_THREADS
#else
    want = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#endif
    workers_ = static_cast<size_t>(std::max(0, want - 1));
    for (size_t i = 0; i < workers_; ++i) std::thread([this] { loop(); }).detach();
  }

  static void work(Job& j) {
    for (int64_t i; (i = j.next.fetch_add(1, std::memory_order_relaxed)) < j.n;) {
      (*j.fn)(i);
      j.done.fetch_add(1, std::memory_order_release);
    }
  }

  void loop() {
    uint64_t seen = 0;
    while (true) {
      std::shared_ptr<Job> j;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        j = job_;
      }
      if (j) work(*j);  // a stale job has no chunks left: the fn pointer is never touched
    }
  }

  size_t workers_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<Job> job_;
  uint64_t generation_ = 0;
};

// One or two rows of C (fully connected layers and RNN steps at batch 1): a 6-row register tile
// would waste most of its work and packing B would cost as much as the product itself.
template <typename T>
void gemmSmallM(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc) {
  std::vector<T> arow(static_cast<size_t>(K));
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t k = 0; k < K; ++k) arow[k] = alpha * (transA ? A[k * lda + i] : A[i * lda + k]);
    T* c = C + i * ldc;
    if (!transB) {
      for (int64_t k = 0; k < K; ++k) {
        const T av = arow[k];
        const T* b = B + k * ldb;
        for (int64_t j = 0; j < N; ++j) c[j] += av * b[j];
      }
    } else {
      for (int64_t j = 0; j < N; ++j) {
        const T* b = B + j * ldb;
        T acc[8] = {};
        int64_t k = 0;
        for (; k + 8 <= K; k += 8)
          for (int l = 0; l < 8; ++l) acc[l] += arow[k + l] * b[k + l];
        T sum = 0;
        for (; k < K; ++k) sum += arow[k] * b[k];
        for (int l = 0; l < 8; ++l) sum += acc[l];
        c[j] += sum;
      }
    }
  }
}

// Single-threaded blocked GEMM on one block of C (C already scaled by beta).
struct MicroDefault {
  template <typename T>
  static void call(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, int mr, int nr, bool store) {
    callMicro(kc, a, b, c, ldc, mr, nr, store);
  }
};

// B given as a matrix: packs B[pc:pc+kc, j0:j0+nr] into dst, k-major rows of NR (zero padded).
template <typename T>
struct MatrixB {
  const T* B;
  int64_t ldb;
  bool trans;
  void pack(int64_t pc, int64_t kc, int64_t j0, int64_t nr, int NR, T* dst) const {
    for (int64_t k = 0; k < kc; ++k) {
      T* d = dst + k * NR;
      if (!trans) {
        const T* src = B + (pc + k) * ldb + j0;
        for (int64_t j = 0; j < nr; ++j) d[j] = src[j];
      } else {
        for (int64_t j = 0; j < nr; ++j) d[j] = B[(j0 + j) * ldb + pc + k];
      }
      for (int64_t j = nr; j < NR; ++j) d[j] = T(0);
    }
  }
};

// C += alpha A B, or C = alpha A B with `overwrite` (C is then never read: the first k block
// stores instead of accumulating). B's columns n_off .. n_off + N - 1 come from the packer bp
// (a matrix, or convolution windows gathered straight from the input: no im2col buffer).
template <typename T, typename Tl = Tile<T>, typename Micro = MicroDefault, typename BP = MatrixB<T>>
void gemmSerial(bool transA, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const BP& bp,
                int64_t n_off, T* C, int64_t ldc, bool overwrite) {
  constexpr int MR = Tl::kMR, NR = Tl::kNR;
  // Column blocks hold whole panels (a panel straddling two blocks was computed twice when NR
  // did not divide kNC: the AVX-512 tile's NR = 48).
  constexpr int64_t NC = kNC / NR * NR;
  if (M <= 0 || N <= 0 || K <= 0) return;
  const int64_t m_strips = (M + MR - 1) / MR;
  std::vector<T> a_pack(static_cast<size_t>(m_strips * MR * std::min(K, kKC)));
  std::vector<T> b_pack(
      static_cast<size_t>(((std::min(N, NC) + NR - 1) / NR) * NR * std::min(K, kKC)));
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    const int64_t n_panels = (nc + NR - 1) / NR;
    for (int64_t pc = 0; pc < K; pc += kKC) {
      const int64_t kc = std::min(kKC, K - pc);
      // Pack B[pc:pc+kc, jc:jc+nc] into k-major panels of NR columns (zero padded).
      for (int64_t p = 0; p < n_panels; ++p) {
        const int64_t j0 = jc + p * NR, nr = std::min<int64_t>(NR, jc + nc - j0);
        bp.pack(pc, kc, n_off + j0, nr, NR, b_pack.data() + p * NR * kc);
      }
      // Pack alpha * A[:, pc:pc+kc] into k-major strips of MR rows (zero padded).
      for (int64_t st = 0; st < m_strips; ++st) {
        T* dst = a_pack.data() + st * MR * kc;
        const int64_t i0 = st * MR, mr = std::min<int64_t>(MR, M - i0);
        for (int64_t k = 0; k < kc; ++k) {
          T* d = dst + k * MR;
          if (!transA) {
            for (int64_t i = 0; i < mr; ++i) d[i] = alpha * A[(i0 + i) * lda + pc + k];
          } else {
            const T* src = A + (pc + k) * lda + i0;
            for (int64_t i = 0; i < mr; ++i) d[i] = alpha * src[i];
          }
          for (int64_t i = mr; i < MR; ++i) d[i] = T(0);
        }
      }
      // Consecutive tiles share a B panel (hot in L1) and stream the A strips from L2.
      for (int64_t p = 0; p < n_panels; ++p) {
        for (int64_t st = 0; st < m_strips; ++st) {
          const int64_t i0 = st * MR, j0 = jc + p * NR;
          Micro::call(kc, a_pack.data() + st * MR * kc, b_pack.data() + p * NR * kc,
                      C + i0 * ldc + j0, ldc, static_cast<int>(std::min<int64_t>(MR, M - i0)),
                      static_cast<int>(std::min<int64_t>(NR, jc + nc - j0)), overwrite && pc == 0);
        }
      }
    }
  }
}

// Threads split C into independent column (or row) chunks claimed from a shared counter, so a
// descheduled helper thread (this machine is shared) never holds the caller up: the caller
// runs every chunk nobody else has claimed.
// bp: B's packer; matB(n0, n1, &transB, &ldb, &own) gives B's columns n0..n1-1 as a matrix (for
// the one- and two-row path, which does not pack B).
template <typename T, typename Tl = Tile<T>, typename Micro = MicroDefault, typename BP = MatrixB<T>,
          typename MatB>
void gemmImpl(bool transA, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda, const BP& bp,
              const MatB& matB, T beta, T* C, int64_t ldc) {
  constexpr int MR = Tl::kMR, NR = Tl::kNR;
  if (M <= 0 || N <= 0) return;
  const bool scale_only = K <= 0 || alpha == T(0);
  const int threads =
      !scale_only && static_cast<double>(M) * N * K > 96.0 * 96 * 96 ? parallelism() : 1;
  const bool split_n = N >= M;
  const int64_t unit = split_n ? NR : MR, extent = split_n ? N : M;
  const int64_t units = (extent + unit - 1) / unit;
  // Chunks of >= 64 columns / 48 rows keep the per-chunk repacking of the other operand small.
  const int64_t min_units = split_n ? 4 : 8;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(4 * threads, units / min_units));
  auto block = [&](int64_t chunk) {
    const int64_t u0 = units * chunk / chunks, u1 = units * (chunk + 1) / chunks;
    const int64_t b0 = std::min(extent, u0 * unit), b1 = std::min(extent, u1 * unit);
    if (b1 <= b0) return;
    const int64_t m0 = split_n ? 0 : b0, m1 = split_n ? M : b1;
    const int64_t n0 = split_n ? b0 : 0, n1 = split_n ? b1 : N;
    // beta == 0 through the packed path: the first k block stores, C is never cleared first.
    const bool packed = !scale_only && m1 - m0 > 2;
    const T* a = transA ? A + m0 : A + m0 * lda;
    if (packed && beta == T(0)) {
      gemmSerial<T, Tl, Micro, BP>(transA, m1 - m0, n1 - n0, K, alpha, a, lda, bp, n0, C + m0 * ldc + n0, ldc,
                                   /*overwrite=*/true);
      return;
    }
    for (int64_t i = m0; i < m1; ++i) {
      T* c = C + i * ldc;
      if (beta == T(0))
        std::fill(c + n0, c + n1, T(0));
      else if (beta != T(1))
        for (int64_t j = n0; j < n1; ++j) c[j] *= beta;
    }
    if (scale_only) return;
    if (m1 - m0 <= 2) {
      bool transB = false;
      int64_t ldb = 0;
      std::vector<T> own;
      const T* b = matB(n0, n1, &transB, &ldb, &own);
      gemmSmallM(transA, transB, m1 - m0, n1 - n0, K, alpha, a, lda, b, ldb, C + m0 * ldc + n0, ldc);
    } else {
      gemmSerial<T, Tl, Micro, BP>(transA, m1 - m0, n1 - n0, K, alpha, a, lda, bp, n0, C + m0 * ldc + n0, ldc,
                                   /*overwrite=*/false);
    }
  };
  if (threads == 1 || chunks == 1) {
    for (int64_t c = 0; c < chunks; ++c) block(c);
    return;
  }
  parallelFor(chunks, block);
}

}  // namespace

int parallelism() {
  return WorkPool::instance().threads();
}

void parallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (n == 1 || parallelism() == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  WorkPool::instance().run(n, fn);
}

namespace {
// The matrix B's columns n0..n1-1 for the small-M path: a view, no copy.
template <typename T>
auto matrixColumns(const T* B, int64_t ldb, bool transB) {
  return [=](int64_t n0, int64_t, bool* tb, int64_t* ld, std::vector<T>*) {
    *tb = transB;
    *ld = ldb;
    return transB ? B + n0 * ldb : B + n0;
  };
}

// im2col(x) packed on the fly: B[(c, kh, kw), (oh, ow)] = x[c, oh*sh - pt + kh*dh, ow*sw - pl + kw*dw],
// 0 outside the image.
struct Im2colB {
  const float* x;
  Im2colGeometry g;
  void pack(int64_t pc, int64_t kc, int64_t j0, int64_t nr, int NR, float* dst) const {
    const int64_t oh0 = j0 / g.OW, ow0 = j0 % g.OW;
    for (int64_t k = 0; k < kc; ++k) {
      const int64_t r = pc + k, c = r / (g.KH * g.KW), kh = (r / g.KW) % g.KH, kw = r % g.KW;
      const float* plane = x + c * g.H * g.W;
      const int64_t wbase = kw * g.dw - g.pl;
      // Output columns whose input column lies inside the image: lo <= ow <= hi.
      const int64_t lo = wbase >= 0 ? 0 : (-wbase + g.sw - 1) / g.sw;
      const int64_t hi = g.W - 1 - wbase < 0 ? -1 : (g.W - 1 - wbase) / g.sw;
      float* d = dst + k * NR;
      int64_t oh = oh0, ow = ow0, j = 0;
      while (j < nr) {  // runs along one output row
        const int64_t run = std::min(nr - j, g.OW - ow);
        const int64_t ih = oh * g.sh - g.pt + kh * g.dh;
        float* o = d + j;
        const int64_t t0 = std::clamp<int64_t>(lo - ow, 0, run), t1 = std::clamp<int64_t>(hi - ow + 1, t0, run);
        if (ih < 0 || ih >= g.H) {
          std::memset(o, 0, sizeof(float) * run);
        } else {
          if (t0 > 0) std::memset(o, 0, sizeof(float) * t0);
          if (t1 > t0) {  // input columns (ow + t) * sw + wbase for t in [t0, t1): inside the row
            const float* src = plane + ih * g.W + (ow + t0) * g.sw + wbase;
            if (g.sw == 1) {
              std::memcpy(o + t0, src, sizeof(float) * (t1 - t0));
            } else {
              for (int64_t t = t0; t < t1; ++t) o[t] = src[(t - t0) * g.sw];
            }
          }
          if (t1 < run) std::memset(o + t1, 0, sizeof(float) * (run - t1));
        }
        j += run;
        ow = 0;
        ++oh;
      }
      for (int64_t t = nr; t < NR; ++t) d[t] = 0.f;
    }
  }
  // Columns n0..n1-1 materialized, row-major K x (n1 - n0) (the small-M path).
  const float* columns(int64_t n0, int64_t n1, std::vector<float>* own) const {
    const int64_t K = g.C * g.KH * g.KW, n = n1 - n0;
    own->resize(static_cast<size_t>(K * n));
    pack(0, K, n0, n, static_cast<int>(n), own->data());  // one "panel" as wide as the columns
    return own->data();
  }
};
}  // namespace

void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const MatrixB<float> bp{B, ldb, transB};
  if (cpuHasAvx512())
    gemmImpl<float, Tile512F, Micro512>(transA, M, N, K, alpha, A, lda, bp, matrixColumns(B, ldb, transB), beta, C,
                                        ldc);
  else
    gemmImpl<float>(transA, M, N, K, alpha, A, lda, bp, matrixColumns(B, ldb, transB), beta, C, ldc);
}
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  const MatrixB<double> bp{B, ldb, transB};
  gemmImpl<double>(transA, M, N, K, alpha, A, lda, bp, matrixColumns(B, ldb, transB), beta, C, ldc);
}

void gemmIm2col(int64_t M, const float* A, int64_t lda, const float* x, const Im2colGeometry& g, float* C,
                int64_t ldc) {
  const Im2colB bp{x, g};
  const int64_t N = g.OH * g.OW, K = g.C * g.KH * g.KW;
  auto cols = [&bp](int64_t n0, int64_t n1, bool* tb, int64_t* ld, std::vector<float>* own) {
    *tb = false;
    *ld = n1 - n0;
    return bp.columns(n0, n1, own);
  };
  if (cpuHasAvx512())
    gemmImpl<float, Tile512F, Micro512>(false, M, N, K, 1.f, A, lda, bp, cols, 0.f, C, ldc);
  else
    gemmImpl<float>(false, M, N, K, 1.f, A, lda, bp, cols, 0.f, C, ldc);
}

}  // namespace ramjet::reference

namespace ramjet::ops {

using reference::BroadcastIndexer;
using reference::ComputeOutput;

// Y = alpha * op(A) * op(B) + beta * C, C unidirectionally broadcast to [M, N].
Status refGemm(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  Tensor& y = ctx.output(0);
  const bool ta = ctx.node.attrInt("transA", 0) != 0, tb = ctx.node.attrInt("transB", 0) != 0;
  const float alpha = ctx.node.attrFloat("alpha", 1.f), beta = ctx.node.attrFloat("beta", 1.f);
  const int64_t M = ta ? a.dim(1) : a.dim(0), K = ta ? a.dim(0) : a.dim(1);
  const int64_t N = tb ? b.dim(0) : b.dim(1);
  Status st = Status::Ok();
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) {
      st = ctx.unsupported("element type bool");
    } else if constexpr (std::is_integral_v<T>) {
      // Integer Gemm: exact, naive.
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* py = y.data<T>();
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          T s = 0;
          for (int64_t k = 0; k < K; ++k)
            s += (ta ? pa[k * M + i] : pa[i * K + k]) * (tb ? pb[j * K + k] : pb[k * N + j]);
          py[i * N + j] = static_cast<T>(static_cast<T>(alpha) * s);
        }
      if (ctx.hasInput(2) && beta != 0.f) {
        const Tensor& c = ctx.input(2);
        BroadcastIndexer ic(c.dims(), {M, N});
        const T* pc = c.data<T>();
        for (int64_t i = 0; i < M * N; ++i)
          py[i] += static_cast<T>(static_cast<T>(beta) * pc[ic(i)]);
      }
    } else {
      using A = typename reference::GemmType<T>::type;
      std::vector<A> sa, sb;
      const A* pa = reference::asCompute<A>(a, sa);
      const A* pb = reference::asCompute<A>(b, sb);
      ComputeOutput<A> out(y);
      A* py = out.data();
      A b_eff = 0;
      if (ctx.hasInput(2) && beta != 0.f) {
        const Tensor& c = ctx.input(2);
        std::vector<A> sc;
        const A* pc = reference::asCompute<A>(c, sc);
        BroadcastIndexer ic(c.dims(), {M, N});
        for (int64_t i = 0; i < M * N; ++i) py[i] = pc[ic(i)];
        b_eff = static_cast<A>(beta);
      }
      reference::gemm(ta, tb, M, N, K, static_cast<A>(alpha), pa, ta ? M : K, pb, tb ? K : N, b_eff,
                      py, N);
      out.flush();
    }
  };
  if (!visitType(a.dtype(), run)) return ctx.unsupported("element type ", dataTypeName(a.dtype()));
  return st;
}

namespace {

// Batch iteration for numpy matmul: A [..., M, K] x B [..., K, N] -> Y [..., M, N].
struct MatMulPlan {
  int64_t M = 1, N = 1, K = 1, batch = 1;
  std::vector<int64_t> a_off, b_off;  // per output batch: element offsets of the A / B matrices
};

Result<MatMulPlan> planMatMul(const Node& node, std::vector<int64_t> ad, std::vector<int64_t> bd) {
  MatMulPlan p;
  if (ad.empty() || bd.empty())
    return makeError(StatusCode::kInvalidArgument, node.describe(),
                     ": MatMul operands must not be scalars");
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  p.M = ad[ad.size() - 2];
  p.K = ad.back();
  p.N = bd.back();
  if (bd[bd.size() - 2] != p.K)
    return makeError(StatusCode::kInvalidArgument, node.describe(), ": inner dims differ: A ",
                     dimsToString(ad), " vs B ", dimsToString(bd));
  std::vector<int64_t> ab(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> ob, broadcastDims({ab, bb}, node));
  p.batch = numElements(ob);
  BroadcastIndexer ia(ab, ob), ib(bb, ob);
  for (int64_t i = 0; i < p.batch; ++i) {
    p.a_off.push_back(ia(i) * p.M * p.K);
    p.b_off.push_back(ib(i) * p.K * p.N);
  }
  return p;
}

}  // namespace

Status refMatMul(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  Tensor& y = ctx.output(0);
  RJ_ASSIGN_OR_RETURN(MatMulPlan p, planMatMul(ctx.node, a.dims(), b.dims()));
  Status st = Status::Ok();
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) {
      st = ctx.unsupported("element type bool");
    } else if constexpr (std::is_integral_v<T>) {
      const T* pa = a.data<T>();
      const T* pb = b.data<T>();
      T* py = y.data<T>();
      for (int64_t bi = 0; bi < p.batch; ++bi) {
        const T* A = pa + p.a_off[bi];
        const T* B = pb + p.b_off[bi];
        T* Y = py + bi * p.M * p.N;
        for (int64_t i = 0; i < p.M * p.N; ++i) Y[i] = 0;
        for (int64_t i = 0; i < p.M; ++i)
          for (int64_t k = 0; k < p.K; ++k) {
            T av = A[i * p.K + k];
            for (int64_t j = 0; j < p.N; ++j) Y[i * p.N + j] += av * B[k * p.N + j];
          }
      }
    } else {
      using A = typename reference::GemmType<T>::type;
      std::vector<A> sa, sb;
      const A* pa = reference::asCompute<A>(a, sa);
      const A* pb = reference::asCompute<A>(b, sb);
      ComputeOutput<A> out(y);
      A* py = out.data();
      for (int64_t bi = 0; bi < p.batch; ++bi)
        reference::gemm(false, false, p.M, p.N, p.K, A(1), pa + p.a_off[bi], p.K, pb + p.b_off[bi],
                        p.N, A(0), py + bi * p.M * p.N, p.N);
      out.flush();
    }
  };
  if (!visitType(a.dtype(), run)) return ctx.unsupported("element type ", dataTypeName(a.dtype()));
  return st;
}

// int8/uint8 matmul with zero points, int32 accumulation. a_zero_point is a scalar or per row
// of A ([M]); b_zero_point a scalar or per column of B ([N]).
Status refMatMulInteger(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  Tensor& y = ctx.output(0);
  RJ_ASSIGN_OR_RETURN(MatMulPlan p, planMatMul(ctx.node, a.dims(), b.dims()));
  auto zeroPoints = [&](size_t idx, int64_t n, const char* what,
                        std::vector<int32_t>* zp) -> Status {
    zp->assign(static_cast<size_t>(n), 0);
    if (!ctx.hasInput(idx)) return Status::Ok();
    const Tensor& z = ctx.input(idx);
    if (z.numel() == 1) {
      std::fill(zp->begin(), zp->end(), static_cast<int32_t>(z.getInt(0)));
    } else if (z.numel() == n) {
      for (int64_t i = 0; i < n; ++i) (*zp)[i] = static_cast<int32_t>(z.getInt(i));
    } else {
      return ctx.error(what, " has ", z.numel(), " elements; expected 1 or ", n);
    }
    return Status::Ok();
  };
  std::vector<int32_t> za, zb;
  RJ_RETURN_IF_ERROR(zeroPoints(2, p.M, "a_zero_point", &za));
  RJ_RETURN_IF_ERROR(zeroPoints(3, p.N, "b_zero_point", &zb));
  std::vector<int32_t> av(static_cast<size_t>(a.numel())), bv(static_cast<size_t>(b.numel()));
  for (int64_t i = 0; i < a.numel(); ++i) av[i] = static_cast<int32_t>(a.getInt(i));
  for (int64_t i = 0; i < b.numel(); ++i) bv[i] = static_cast<int32_t>(b.getInt(i));
  int32_t* py = y.data<int32_t>();
  for (int64_t bi = 0; bi < p.batch; ++bi) {
    const int32_t* A = av.data() + p.a_off[bi];
    const int32_t* B = bv.data() + p.b_off[bi];
    int32_t* Y = py + bi * p.M * p.N;
    for (int64_t i = 0; i < p.M * p.N; ++i) Y[i] = 0;
    for (int64_t i = 0; i < p.M; ++i)
      for (int64_t k = 0; k < p.K; ++k) {
        int32_t x = A[i * p.K + k] - za[i];
        for (int64_t j = 0; j < p.N; ++j) Y[i * p.N + j] += x * (B[k * p.N + j] - zb[j]);
      }
  }
  return Status::Ok();
}

}  // namespace ramjet::ops
