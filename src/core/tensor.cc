#include "ramjet/tensor.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/dispatch.h"

namespace ramjet {
namespace {

std::shared_ptr<uint8_t> allocStorage(size_t bytes) {
  size_t n = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, n);
  RJ_CHECK(p != nullptr);
  std::memset(p, 0, n);
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

}  // namespace

Tensor::Tensor(DataType dtype, std::vector<int64_t> dims) : dtype_(dtype), dims_(std::move(dims)) {
  for (auto d : dims_) RJ_CHECK(d >= 0);
  numel_ = numElements(dims_);
  storage_ = allocStorage(nbytes());
}

Tensor::Tensor(DataType dtype, std::vector<int64_t> dims, std::shared_ptr<uint8_t> storage)
    : dtype_(dtype), dims_(std::move(dims)), storage_(std::move(storage)) {
  numel_ = numElements(dims_);
}

Tensor Tensor::reshaped(std::vector<int64_t> dims) const {
  RJ_CHECK(numElements(dims) == numel_);
  return Tensor(dtype_, std::move(dims), storage_);
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, dims_);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

double Tensor::getDouble(int64_t i) const {
  double v = 0;
  visitType(dtype_, [&](auto tag) {
    using T = typename decltype(tag)::type;
    v = static_cast<double>(static_cast<typename AccType<T>::type>(data<T>()[i]));
  });
  return v;
}

int64_t Tensor::getInt(int64_t i) const {
  int64_t v = 0;
  visitType(dtype_, [&](auto tag) {
    using T = typename decltype(tag)::type;
    v = static_cast<int64_t>(static_cast<typename AccType<T>::type>(data<T>()[i]));
  });
  return v;
}

std::vector<int64_t> Tensor::toInt64Vector() const {
  std::vector<int64_t> out(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) out[i] = getInt(i);
  return out;
}

Tensor Tensor::cast(DataType to) const {
  Tensor out(to, dims_);
  visitType(dtype_, [&](auto tin) {
    using Tin = typename decltype(tin)::type;
    using Ain = typename AccType<Tin>::type;
    const Tin* src = data<Tin>();
    visitType(to, [&](auto tout) {
      using Tout = typename decltype(tout)::type;
      using Aout = typename AccType<Tout>::type;
      Tout* dst = out.data<Tout>();
      for (int64_t i = 0; i < numel_; ++i) {
        Ain v = static_cast<Ain>(src[i]);
        if constexpr (std::is_same_v<Tout, bool>) {
          dst[i] = v != Ain(0);
        } else if constexpr (std::is_floating_point_v<Ain> && std::is_integral_v<Aout>) {
          // NaN/inf/out-of-range float -> int is undefined in C++; pin it down.
          double d = static_cast<double>(v);
          if (std::isnan(d)) dst[i] = Tout(0);
          else if (d >= static_cast<double>(std::numeric_limits<Aout>::max())) dst[i] = std::numeric_limits<Aout>::max();
          else if (d <= static_cast<double>(std::numeric_limits<Aout>::lowest())) dst[i] = std::numeric_limits<Aout>::lowest();
          else dst[i] = static_cast<Tout>(static_cast<Aout>(d));
        } else {
          dst[i] = static_cast<Tout>(static_cast<Aout>(v));
        }
      }
    });
  });
  return out;
}

std::string Tensor::summary() const {
  std::ostringstream os;
  os << dataTypeName(dtype_) << dimsToString(dims_);
  if (numel_ > 0 && dtype_ != DataType::kString) {
    double mn = std::numeric_limits<double>::infinity(), mx = -mn, sum = 0;
    int64_t nans = 0;
    for (int64_t i = 0; i < numel_; ++i) {
      double v = getDouble(i);
      if (std::isnan(v)) { ++nans; continue; }
      mn = std::min(mn, v);
      mx = std::max(mx, v);
      sum += v;
    }
    os << " min=" << mn << " max=" << mx << " mean=" << sum / std::max<int64_t>(1, numel_ - nans);
    if (nans) os << " nan=" << nans;
  }
  return os.str();
}

std::string CompareResult::toString() const {
  std::ostringstream os;
  if (!dtype_match) os << "dtype mismatch; ";
  if (!shape_match) os << "shape mismatch; ";
  os << "max_abs=" << max_abs << " max_rel=" << max_rel << " cosine=" << cosine
     << " mismatches=" << mismatches;
  if (nan_mismatch) os << " (NaN mismatch)";
  return os.str();
}

CompareResult compareTensors(const Tensor& got, const Tensor& ref, double atol, double rtol) {
  CompareResult r;
  r.dtype_match = got.dtype() == ref.dtype();
  r.shape_match = got.dims() == ref.dims();
  if (!r.shape_match) {
    r.mismatches = std::max<int64_t>(1, ref.numel());
    r.cosine = 0;
    return r;
  }
  double dot = 0, ng = 0, nr = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    double g = got.getDouble(i), e = ref.getDouble(i);
    if (std::isnan(e) || std::isnan(g)) {
      if (std::isnan(e) != std::isnan(g)) { r.nan_mismatch = true; ++r.mismatches; }
      continue;
    }
    if (std::isinf(e) || std::isinf(g)) {
      if (g != e) { ++r.mismatches; r.max_abs = std::numeric_limits<double>::infinity(); }
      continue;
    }
    double d = std::fabs(g - e);
    r.max_abs = std::max(r.max_abs, d);
    if (std::fabs(e) > 0) r.max_rel = std::max(r.max_rel, d / std::fabs(e));
    if (d > atol + rtol * std::fabs(e)) ++r.mismatches;
    dot += g * e;
    ng += g * g;
    nr += e * e;
  }
  r.cosine = (ng > 0 && nr > 0) ? dot / std::sqrt(ng * nr) : (ng == nr ? 1.0 : 0.0);
  return r;
}

}  // namespace ramjet
