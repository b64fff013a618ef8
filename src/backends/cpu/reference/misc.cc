// Reference kernels for Dropout (inference), Det, the signal windows and MelWeightMatrix.
#include <cmath>
#include <numbers>

#include "core/dispatch.h"
#include "ops/misc_shapes.h"
#include "ops/op_registry.h"

namespace ramjet::ops {

Status refDropout(KernelContext& ctx) {
  bool training = ctx.hasInput(2) && ctx.input(2).numel() > 0 && ctx.input(2).getInt(0) != 0;
  double ratio = ctx.hasInput(1) && ctx.input(1).numel() > 0 ? ctx.input(1).getDouble(0) : 0.5;
  if (training && ratio != 0)
    return ctx.unsupported("training-mode Dropout (ratio ", ratio, ") is random; only inference is supported");
  ctx.outputs[0] = ctx.input(0);  // identity: tensors are immutable once produced
  if (ctx.hasOutput(1)) {
    Tensor& mask = ctx.output(1);
    if (!mask.defined()) mask = Tensor(ctx.node.attrInt("mask_same_type", 0) ? ctx.input(0).dtype() : DataType::kBool, ctx.input(0).dims());
    visitType(mask.dtype(), [&](auto tag) {
      using T = typename decltype(tag)::type;
      T* p = mask.data<T>();
      for (int64_t i = 0; i < mask.numel(); ++i) p[i] = static_cast<T>(1.0f);
    });
  }
  return Status::Ok();
}

Status refDet(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2 || x.dim(-1) != x.dim(-2)) return ctx.error("X must be [..., M, M], got ", dimsToString(x.dims()));
  const int64_t M = x.dim(-1);
  const int64_t batch = M ? x.numel() / (M * M) : numElements(std::vector<int64_t>(x.dims().begin(), x.dims().end() - 2));
  Tensor& y = ctx.output(0);
  std::vector<double> a(static_cast<size_t>(M * M));
  bool ok = visitFloatType(y.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* py = y.data<T>();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < M * M; ++i) a[i] = x.getDouble(b * M * M + i);
      // LU with partial pivoting.
      double det = 1;
      for (int64_t k = 0; k < M; ++k) {
        int64_t p = k;
        for (int64_t i = k + 1; i < M; ++i)
          if (std::abs(a[i * M + k]) > std::abs(a[p * M + k])) p = i;
        if (a[p * M + k] == 0) { det = 0; break; }
        if (p != k) {
          for (int64_t j = 0; j < M; ++j) std::swap(a[k * M + j], a[p * M + j]);
          det = -det;
        }
        det *= a[k * M + k];
        for (int64_t i = k + 1; i < M; ++i) {
          double f = a[i * M + k] / a[k * M + k];
          for (int64_t j = k; j < M; ++j) a[i * M + j] -= f * a[k * M + j];
        }
      }
      py[b] = static_cast<T>(det);
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(y.dtype()));
  return Status::Ok();
}

namespace {

// w[n] = a0 - a1 cos(2 pi n / N') + a2 cos(4 pi n / N'), N' = size (periodic) or size - 1.
Status windowKernel(KernelContext& ctx, double a0, double a1, double a2) {
  RJ_ASSIGN_OR_RETURN(int64_t size, misc::scalarIntInput(ctx.input(0), ctx.node, "size"));
  if (size < 0) return ctx.error("size must be >= 0, got ", size);
  if (size > (int64_t{1} << 31)) return ctx.error("size ", size, " is too large");
  const bool periodic = ctx.node.attrInt("periodic", 1) != 0;
  Tensor& out = ctx.output(0);
  if (!out.defined() || out.numel() != size) {
    DataType dt = DataType::kFloat32;
    dataTypeFromOnnx(static_cast<int32_t>(ctx.node.attrInt("output_datatype", 1)), &dt);
    ctx.allocOutput(0, dt, {size});
  }
  const double denom = periodic ? static_cast<double>(size) : static_cast<double>(size - 1);
  visitNumericType(ctx.output(0).dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = ctx.output(0).data<T>();
    for (int64_t n = 0; n < size; ++n) {
      double x = 2 * std::numbers::pi * static_cast<double>(n) / denom;
      p[n] = static_cast<T>(a0 - a1 * std::cos(x) + a2 * std::cos(2 * x));
    }
  });
  return Status::Ok();
}

}  // namespace

Status refHannWindow(KernelContext& ctx) { return windowKernel(ctx, 0.5, 0.5, 0.0); }
Status refHammingWindow(KernelContext& ctx) { return windowKernel(ctx, 25.0 / 46.0, 21.0 / 46.0, 0.0); }
Status refBlackmanWindow(KernelContext& ctx) { return windowKernel(ctx, 0.42, 0.5, 0.08); }

Status refMelWeightMatrix(KernelContext& ctx) {
  RJ_ASSIGN_OR_RETURN(int64_t mels, misc::scalarIntInput(ctx.input(0), ctx.node, "num_mel_bins"));
  RJ_ASSIGN_OR_RETURN(int64_t dft, misc::scalarIntInput(ctx.input(1), ctx.node, "dft_length"));
  RJ_ASSIGN_OR_RETURN(int64_t rate, misc::scalarIntInput(ctx.input(2), ctx.node, "sample_rate"));
  const double lo = ctx.input(3).getDouble(0), hi = ctx.input(4).getDouble(0);
  if (mels < 1 || dft < 1 || rate < 1 || mels > (1 << 20) || dft > (1 << 24))
    return ctx.error("num_mel_bins, dft_length and sample_rate must be positive (and sane), got ", mels, ", ", dft, ", ", rate);
  if (!(lo >= 0 && hi > lo)) return ctx.error("need 0 <= lower_edge_hertz < upper_edge_hertz, got ", lo, ", ", hi);
  const int64_t bins = dft / 2 + 1;
  // Same arithmetic as the ONNX reference implementation.
  const double lmel = 2595 * std::log1p(lo / 700) / std::log(10.0), hmel = 2595 * std::log1p(hi / 700) / std::log(10.0);
  const double step = (hmel - lmel) / static_cast<double>(mels + 2);
  std::vector<int64_t> f(static_cast<size_t>(mels + 2));
  for (int64_t i = 0; i < mels + 2; ++i) {
    double hz = 700 * std::expm1((i * step + lmel) / 2595 * std::log(10.0));
    f[i] = static_cast<int64_t>(std::floor(static_cast<double>(dft + 1) * hz / static_cast<double>(rate)));
  }
  std::vector<double> w(static_cast<size_t>(bins * mels), 0.0);
  auto at = [&](int64_t j, int64_t i) -> double* {
    return (j >= 0 && j < bins) ? &w[j * mels + i] : nullptr;
  };
  for (int64_t i = 0; i < mels; ++i) {
    int64_t l = f[i], c = f[i + 1], h = f[i + 2];
    if (c - l == 0) {
      if (double* p = at(c, i)) *p = 1;
    } else {
      for (int64_t j = l; j <= c; ++j)
        if (double* p = at(j, i)) *p = static_cast<double>(j - l) / static_cast<double>(c - l);
    }
    if (h - c > 0)
      for (int64_t j = c; j < h; ++j)
        if (double* p = at(j, i)) *p = static_cast<double>(h - j) / static_cast<double>(h - c);
  }
  Tensor& out = ctx.output(0);
  if (!out.defined() || out.dims() != std::vector<int64_t>{bins, mels}) {
    DataType dt = DataType::kFloat32;
    dataTypeFromOnnx(static_cast<int32_t>(ctx.node.attrInt("output_datatype", 1)), &dt);
    ctx.allocOutput(0, dt, {bins, mels});
  }
  visitFloatType(ctx.output(0).dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = ctx.output(0).data<T>();
    for (size_t i = 0; i < w.size(); ++i) p[i] = static_cast<T>(w[i]);
  });
  return Status::Ok();
}

}  // namespace ramjet::ops
