#include "ramjet/types.h"

#include <cmath>
#include <sstream>

#include "ramjet/status.h"

namespace ramjet {

const char* dataTypeName(DataType t) {
  switch (t) {
    case DataType::kUndefined: return "undefined";
    case DataType::kFloat32: return "f32";
    case DataType::kUInt8: return "u8";
    case DataType::kInt8: return "i8";
    case DataType::kUInt16: return "u16";
    case DataType::kInt16: return "i16";
    case DataType::kInt32: return "i32";
    case DataType::kInt64: return "i64";
    case DataType::kString: return "string";
    case DataType::kBool: return "bool";
    case DataType::kFloat16: return "f16";
    case DataType::kFloat64: return "f64";
    case DataType::kUInt32: return "u32";
    case DataType::kUInt64: return "u64";
    case DataType::kBFloat16: return "bf16";
  }
  return "unknown";
}

size_t dataTypeSize(DataType t) {
  switch (t) {
    case DataType::kFloat32: case DataType::kInt32: case DataType::kUInt32: return 4;
    case DataType::kUInt8: case DataType::kInt8: case DataType::kBool: return 1;
    case DataType::kUInt16: case DataType::kInt16: case DataType::kFloat16:
    case DataType::kBFloat16: return 2;
    case DataType::kInt64: case DataType::kFloat64: case DataType::kUInt64: return 8;
    default: return 0;
  }
}

bool isFloatType(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat16 || t == DataType::kBFloat16 ||
         t == DataType::kFloat64;
}

bool isIntegerType(DataType t) {
  switch (t) {
    case DataType::kUInt8: case DataType::kInt8: case DataType::kUInt16: case DataType::kInt16:
    case DataType::kInt32: case DataType::kInt64: case DataType::kUInt32: case DataType::kUInt64:
      return true;
    default: return false;
  }
}

bool isSupportedDataType(DataType t) { return dataTypeSize(t) != 0; }

bool dataTypeFromOnnx(int32_t v, DataType* out) {
  switch (v) {
    case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9: case 10: case 11:
    case 12: case 13: case 16:
      *out = static_cast<DataType>(v);
      return true;
    default: return false;
  }
}

uint16_t Half::fromFloat(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mant = x & 0x007fffffu;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff);
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));  // inf/nan
  int32_t e = exp - 127 + 15;
  if (e >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (e <= 0) {  // subnormal or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x00800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half_mant = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (half_mant & 1))) ++half_mant;
    return static_cast<uint16_t>(sign | half_mant);
  }
  uint32_t h = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;  // may carry into exponent: correct
  return static_cast<uint16_t>(h);
}

float Half::toFloat(uint16_t h) {
  uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { ++e; mant <<= 1; } while ((mant & 0x400u) == 0);
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t BFloat16::fromFloat(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((x >> 16) | 0x40);
  uint32_t lsb = (x >> 16) & 1;
  x += 0x7fffu + lsb;
  return static_cast<uint16_t>(x >> 16);
}

bool Shape::fullyKnown() const {
  if (!rank_known) return false;
  for (const auto& d : dims)
    if (!d.known()) return false;
  return true;
}

std::vector<int64_t> Shape::concrete() const {
  RJ_CHECK(fullyKnown());
  std::vector<int64_t> out;
  out.reserve(dims.size());
  for (const auto& d : dims) out.push_back(d.value);
  return out;
}

std::string Shape::toString() const {
  if (!rank_known) return "[?..]";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += dims[i].toString();
  }
  return s + "]";
}

std::string TensorType::toString() const {
  if (kind != TypeKind::kTensor)
    return std::string(kind == TypeKind::kSequence ? "seq(" : "optional(") + (elem ? elem->toString() : "?") + ")";
  return std::string(dataTypeName(dtype)) + shape.toString();
}

int64_t numElements(const std::vector<int64_t>& dims) {
  // A zero dim makes the product 0 even when the others multiply past int64 (a hostile .npy or
  // model shape such as (2^40, 2^40, 0) was signed-overflow UB here): check zeros first, and
  // saturate instead of overflowing (callers size-check products that large anyway).
  for (auto d : dims)
    if (d == 0) return 0;
  int64_t n = 1;
  for (auto d : dims)
    if (__builtin_mul_overflow(n, d, &n)) return INT64_MAX;
  return n;
}

std::string dimsToString(const std::vector<int64_t>& dims) { return Shape::fromDims(dims).toString(); }

}  // namespace ramjet
