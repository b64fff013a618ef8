// The one shared GEMM of the reference backend (Conv via im2col, ConvTranspose, Gemm, MatMul,
// Einsum, RNNs) plus small helpers for computing 16-bit float tensors in float.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/dispatch.h"
#include "ramjet/tensor.h"

namespace ramjet::reference {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is M x K: A is M x K with row
// stride lda, or (transA) K x M with row stride lda. Likewise op(B) is K x N. Cache-blocked and
// packed (BLIS style), register-blocked micro-kernel, OpenMP over tiles. beta == 0 ignores C's
// previous contents (NaNs included).
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, double alpha, const double* A,
          int64_t lda, const double* B, int64_t ldb, double beta, double* C, int64_t ldc);

// A 2-D convolution's im2col matrix, described rather than materialized: rows (c, kh, kw) of one
// group's C channels, columns (oh, ow).
struct Im2colGeometry {
  int64_t C, H, W, KH, KW, OH, OW;
  int64_t sh, sw, pt, pl, dh, dw;
};
// C[M, OH*OW] = A[M, C*KH*KW] * im2col(x) with x [C, H, W]: the GEMM packs the convolution
// windows straight from x (no im2col buffer, one pass less over the largest operand).
void gemmIm2col(int64_t M, const float* A, int64_t lda, const float* x, const Im2colGeometry& g, float* C,
                int64_t ldc);

// CPU features for run-time kernel dispatch (checked once). RAMJET_NO_AVX512=1 turns the
// AVX-512 paths off (the GEMM then uses its AVX2 tile).
bool cpuHasAvx2Fma();
bool cpuHasAvx512();

// Runs fn(0..n-1) on the calling thread plus helper threads (OMP_NUM_THREADS of them in all).
// Chunks are claimed from a shared counter and the caller runs whatever nobody else claimed, so
// a helper that the OS has descheduled (a loaded machine) cannot stall the call the way a
// fork/join barrier does. fn must be safe to call concurrently for different i.
void parallelFor(int64_t n, const std::function<void(int64_t)>& fn);
int parallelism();  // threads parallelFor may use, the caller included

// Splits [0, n) into contiguous ranges of at least `grain` items run by parallelFor:
// fn(begin, end). One range (inline) when n < 2 * grain.
inline void parallelRange(int64_t n, int64_t grain,
                          const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t by_grain = n / (grain > 0 ? grain : 1);
  const int64_t chunks = by_grain < 4 * parallelism() ? by_grain : 4 * parallelism();
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  parallelFor(chunks, [&](int64_t c) { fn(n * c / chunks, n * (c + 1) / chunks); });
}

// Compute type for a float tensor type: double for f64, float for f32/f16/bf16.
template <typename T>
struct GemmType {
  using type = float;
};
template <>
struct GemmType<double> {
  using type = double;
};

// Returns t's data as A*: the tensor's own storage when it already is A, else a converted copy
// kept in `storage`. t must be a float type.
template <typename A>
const A* asCompute(const Tensor& t, std::vector<A>& storage) {
  if (t.dtype() == DataTypeOf<A>::value) return t.data<A>();
  storage.resize(static_cast<size_t>(t.numel()));
  visitType(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) storage[i] = static_cast<A>(static_cast<double>(p[i]));
  });
  return storage.data();
}

// Writes n values of A into t (converting to t's dtype).
template <typename A>
void storeCompute(const A* src, Tensor& t) {
  visitType(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<T>(src[i]);
  });
}

// A buffer to compute an output in: the output's storage when its dtype is A, else scratch
// that flush() converts into the output.
template <typename A>
class ComputeOutput {
 public:
  explicit ComputeOutput(Tensor& out) : out_(out) {
    if (out.dtype() != DataTypeOf<A>::value)
      scratch_.assign(static_cast<size_t>(out.numel()), A(0));
  }
  A* data() { return scratch_.empty() && out_.numel() > 0 ? out_.data<A>() : scratch_.data(); }
  void flush() {
    if (out_.dtype() != DataTypeOf<A>::value) storeCompute(scratch_.data(), out_);
  }

 private:
  Tensor& out_;
  std::vector<A> scratch_;
};

}  // namespace ramjet::reference
