// Calls a generic lambda with a tag for the C++ type of a DataType:
//   visitType(t.dtype(), [&](auto tag) { using T = typename decltype(tag)::type; ... });
#pragma once

#include <cstdint>

#include "ramjet/types.h"

namespace ramjet {

template <typename T>
struct TypeTag {
  using type = T;
};

// Returns false (without calling f) for undefined/string types.
template <typename F>
bool visitType(DataType dt, F&& f) {
  switch (dt) {
    case DataType::kFloat32: f(TypeTag<float>{}); return true;
    case DataType::kFloat64: f(TypeTag<double>{}); return true;
    case DataType::kFloat16: f(TypeTag<Half>{}); return true;
    case DataType::kBFloat16: f(TypeTag<BFloat16>{}); return true;
    case DataType::kInt8: f(TypeTag<int8_t>{}); return true;
    case DataType::kUInt8: f(TypeTag<uint8_t>{}); return true;
    case DataType::kInt16: f(TypeTag<int16_t>{}); return true;
    case DataType::kUInt16: f(TypeTag<uint16_t>{}); return true;
    case DataType::kInt32: f(TypeTag<int32_t>{}); return true;
    case DataType::kUInt32: f(TypeTag<uint32_t>{}); return true;
    case DataType::kInt64: f(TypeTag<int64_t>{}); return true;
    case DataType::kUInt64: f(TypeTag<uint64_t>{}); return true;
    case DataType::kBool: f(TypeTag<bool>{}); return true;
    default: return false;
  }
}

// Only the floating types (f32, f64, f16, bf16).
template <typename F>
bool visitFloatType(DataType dt, F&& f) {
  switch (dt) {
    case DataType::kFloat32: f(TypeTag<float>{}); return true;
    case DataType::kFloat64: f(TypeTag<double>{}); return true;
    case DataType::kFloat16: f(TypeTag<Half>{}); return true;
    case DataType::kBFloat16: f(TypeTag<BFloat16>{}); return true;
    default: return false;
  }
}

// Numeric types (everything but bool).
template <typename F>
bool visitNumericType(DataType dt, F&& f) {
  if (dt == DataType::kBool) return false;
  return visitType(dt, std::forward<F>(f));
}

// Compute type for arithmetic on T: float for the 16-bit floats, T otherwise.
template <typename T> struct AccType { using type = T; };
template <> struct AccType<Half> { using type = float; };
template <> struct AccType<BFloat16> { using type = float; };

}  // namespace ramjet
