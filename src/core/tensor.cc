#include "ramjet/tensor.h"

#include <algorithm>
#include <charconv>
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

std::shared_ptr<uint8_t> allocStorage(size_t bytes, bool zero = true) {
  size_t n = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, n);
  RJ_CHECK(p != nullptr);
  if (zero) std::memset(p, 0, n);
  return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

}  // namespace

Tensor::Tensor(DataType dtype, std::vector<int64_t> dims) : dtype_(dtype), dims_(std::move(dims)) {
  for (auto d : dims_) RJ_CHECK(d >= 0);
  numel_ = numElements(dims_);
  storage_ = allocStorage(nbytes());
  if (dtype_ == DataType::kString) strings_ = std::make_shared<std::vector<std::string>>(numel_);
}

Tensor Tensor::uninitialized(DataType dtype, std::vector<int64_t> dims) {
  if (dtype == DataType::kString) return Tensor(dtype, std::move(dims));  // strings need constructing
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  for (auto d : t.dims_) RJ_CHECK(d >= 0);
  t.numel_ = numElements(t.dims_);
  t.storage_ = allocStorage(t.nbytes(), /*zero=*/false);
  return t;
}

Tensor Tensor::sequence(TensorType elem_type, std::vector<Tensor> elements) {
  Tensor t;
  t.kind_ = TypeKind::kSequence;
  t.dtype_ = elem_type.dtype;
  t.value_type_ = std::make_shared<const TensorType>(TensorType::sequenceOf(std::move(elem_type)));
  t.elements_ = std::make_shared<const std::vector<Tensor>>(std::move(elements));
  return t;
}

Tensor Tensor::optional(Tensor value) {
  Tensor t = optionalNone(value.isTensor() ? TensorType(value.dtype(), Shape::unknownRank()) : value.type());
  t.elements_ = std::make_shared<const std::vector<Tensor>>(std::vector<Tensor>{std::move(value)});
  return t;
}

Tensor Tensor::optionalNone(TensorType elem_type) {
  Tensor t;
  t.kind_ = TypeKind::kOptional;
  t.dtype_ = elem_type.dtype;
  t.value_type_ = std::make_shared<const TensorType>(TensorType::optionalOf(std::move(elem_type)));
  return t;
}

const std::vector<Tensor>& Tensor::elements() const {
  static const std::vector<Tensor> kNone;
  return elements_ ? *elements_ : kNone;
}

Tensor::Tensor(DataType dtype, std::vector<int64_t> dims, std::shared_ptr<uint8_t> storage)
    : dtype_(dtype), dims_(std::move(dims)), storage_(std::move(storage)) {
  numel_ = numElements(dims_);
}

Tensor Tensor::reshaped(std::vector<int64_t> dims) const {
  RJ_CHECK(numElements(dims) == numel_);
  Tensor t(dtype_, std::move(dims), storage_);
  t.strings_ = strings_;
  return t;
}

Tensor Tensor::clone() const {
  if (!isTensor()) return *this;  // sequences/optionals are immutable; elements share storage
  Tensor t(dtype_, dims_);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  if (strings_ && t.strings_) *t.strings_ = *strings_;
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
  if (dtype_ == DataType::kString || to == DataType::kString) {
    // ONNX Cast to/from string: numbers print in their shortest round-trip form (like numpy's
    // str of the element), strings parse like strtod ("NaN", "INF", "-inf", "1e3").
    if (dtype_ == to) return clone();
    if (to == DataType::kString) {
      std::string* dst = out.strings();
      for (int64_t i = 0; i < numel_; ++i) {
        char buf[64];
        std::to_chars_result r{};
        visitType(dtype_, [&](auto tag) {
          using T = typename decltype(tag)::type;
          using A = typename AccType<T>::type;
          A v = static_cast<A>(data<T>()[i]);
          if constexpr (std::is_same_v<T, bool>) r = std::to_chars(buf, buf + sizeof(buf), v ? 1 : 0);
          else if constexpr (std::is_floating_point_v<A>) {
            if (std::isnan(v)) { std::strcpy(buf, "NaN"); r.ptr = buf + 3; }
            else if (std::isinf(v)) { std::strcpy(buf, v > 0 ? "INF" : "-INF"); r.ptr = buf + (v > 0 ? 3 : 4); }
            else r = std::to_chars(buf, buf + sizeof(buf), v);
          } else r = std::to_chars(buf, buf + sizeof(buf), v);
        });
        dst[i].assign(buf, r.ptr ? r.ptr : buf);
      }
      return out;
    }
    const std::string* src = strings();
    Tensor d(DataType::kFloat64, dims_);
    double* dv = d.data<double>();
    for (int64_t i = 0; i < numel_; ++i) dv[i] = src ? std::strtod(src[i].c_str(), nullptr) : 0.0;
    return to == DataType::kFloat64 ? d : d.cast(to);
  }
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
  if (!isTensor()) {
    os << type().toString() << " with " << elements().size() << " element(s)";
    return os.str();
  }
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
  if (got.dtype() == DataType::kString || ref.dtype() == DataType::kString) {
    // Strings compare exactly; a string against a number is a dtype mismatch, all elements off.
    const std::string* g = got.strings();
    const std::string* e = ref.strings();
    for (int64_t i = 0; i < ref.numel(); ++i)
      if (!g || !e || g[i] != e[i]) ++r.mismatches;
    r.cosine = r.mismatches ? 0 : 1;
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
