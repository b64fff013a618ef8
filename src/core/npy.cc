// NumPy .npy reader/writer. Every field of the header is validated: the file is user input.
#include <cstring>
#include <fstream>
#include <sstream>

#include "ramjet/tensor.h"

namespace ramjet {
namespace {

Status npyError(const std::string& what, const std::string& why) {
  return makeError(StatusCode::kInvalidArgument, "'", what, "' is not a valid .npy file: ", why);
}

bool descrToType(const std::string& d, DataType* t) {
  static const struct { const char* s; DataType t; } kMap[] = {
      {"<f4", DataType::kFloat32}, {"<f8", DataType::kFloat64}, {"<f2", DataType::kFloat16},
      {"|i1", DataType::kInt8},    {"|u1", DataType::kUInt8},   {"<i2", DataType::kInt16},
      {"<u2", DataType::kUInt16},  {"<i4", DataType::kInt32},   {"<u4", DataType::kUInt32},
      {"<i8", DataType::kInt64},   {"<u8", DataType::kUInt64},  {"|b1", DataType::kBool},
  };
  for (const auto& m : kMap)
    if (d == m.s) { *t = m.t; return true; }
  return false;
}

const char* typeToDescr(DataType t) {
  switch (t) {
    case DataType::kFloat32: return "<f4";
    case DataType::kFloat64: return "<f8";
    case DataType::kFloat16: return "<f2";
    case DataType::kInt8: return "|i1";
    case DataType::kUInt8: return "|u1";
    case DataType::kInt16: return "<i2";
    case DataType::kUInt16: return "<u2";
    case DataType::kInt32: return "<i4";
    case DataType::kUInt32: return "<u4";
    case DataType::kInt64: return "<i8";
    case DataType::kUInt64: return "<u8";
    case DataType::kBool: return "|b1";
    default: return nullptr;
  }
}

// Extracts the value text after 'key': in the header dict.
bool findField(const std::string& h, const std::string& key, std::string* out) {
  auto p = h.find("'" + key + "'");
  if (p == std::string::npos) return false;
  p = h.find(':', p);
  if (p == std::string::npos) return false;
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  if (p >= h.size()) return false;
  if (h[p] == '\'') {
    auto e = h.find('\'', p + 1);
    if (e == std::string::npos) return false;
    *out = h.substr(p + 1, e - p - 1);
  } else if (h[p] == '(') {
    auto e = h.find(')', p);
    if (e == std::string::npos) return false;
    *out = h.substr(p + 1, e - p - 1);
  } else {
    auto e = h.find_first_of(",}", p);
    if (e == std::string::npos) return false;
    *out = h.substr(p, e - p);
  }
  return true;
}

}  // namespace

Result<Tensor> parseNpy(const uint8_t* data, size_t size, const std::string& what) {
  static const uint8_t kMagic[] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
  if (size < 10 || std::memcmp(data, kMagic, 6) != 0) return npyError(what, "missing the \\x93NUMPY magic");
  uint8_t major = data[6];
  size_t header_len, off;
  if (major == 1) {
    header_len = data[8] | (data[9] << 8);
    off = 10;
  } else if (major == 2 || major == 3) {
    if (size < 12) return npyError(what, "truncated header");
    header_len = static_cast<size_t>(data[8]) | (static_cast<size_t>(data[9]) << 8) |
                 (static_cast<size_t>(data[10]) << 16) | (static_cast<size_t>(data[11]) << 24);
    off = 12;
  } else {
    return npyError(what, "unsupported format version " + std::to_string(major));
  }
  if (header_len > size - off) return npyError(what, "header length runs past the end of the file");
  std::string h(reinterpret_cast<const char*>(data + off), header_len);
  std::string descr, fortran, shape_s;
  if (!findField(h, "descr", &descr) || !findField(h, "fortran_order", &fortran) ||
      !findField(h, "shape", &shape_s))
    return npyError(what, "header lacks descr, fortran_order or shape");
  DataType dt;
  if (!descrToType(descr, &dt))
    return npyError(what, "dtype '" + descr + "' is not supported (little-endian numeric or bool)");
  if (fortran.find("True") != std::string::npos)
    return npyError(what, "Fortran-ordered arrays are not supported; save with np.ascontiguousarray");
  std::vector<int64_t> dims;
  std::stringstream ss(shape_s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t a = item.find_first_not_of(" \t\n");
    if (a == std::string::npos) continue;
    item = item.substr(a);
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (end == item.c_str() || v < 0 || v > (1LL << 40)) return npyError(what, "bad shape '(" + shape_s + ")'");
    dims.push_back(v);
  }
  size_t body = size - off - header_len;
  // Overflow-checked size: a shape such as (2^32, 2^32, 2^32, 2^32) wraps even 128-bit
  // arithmetic to 0 (found by npy_fuzzer), so every step is checked; a zero dim means no data.
  uint64_t need = dataTypeSize(dt);
  bool has_zero = false;
  for (auto d : dims) has_zero |= d == 0;
  if (has_zero) need = 0;
  for (auto d : dims)
    if (!has_zero && __builtin_mul_overflow(need, static_cast<uint64_t>(d), &need))
      return npyError(what, "shape " + dimsToString(dims) + " is too large to address");
  if (need > body)
    return npyError(what, "data is truncated: shape " + dimsToString(dims) + " of " + descr +
                              " needs " + std::to_string(need) + " bytes, file has " +
                              std::to_string(body));
  Tensor t(dt, dims);
  if (t.nbytes()) std::memcpy(t.raw(), data + off + header_len, t.nbytes());
  // A bool byte other than 0/1 is not a valid C++ bool (UB when read; found by npy_fuzzer under
  // UBSan): keep NumPy's meaning, nonzero is True.
  if (dt == DataType::kBool)
    for (auto* b = static_cast<uint8_t*>(t.raw()), *e = b + t.nbytes(); b != e; ++b) *b = *b != 0;
  return t;
}

Result<Tensor> readNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "cannot open .npy file '", path, "'");
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parseNpy(buf.data(), buf.size(), path);
}

Status writeNpy(const std::string& path, const Tensor& t) {
  const char* descr = typeToDescr(t.dtype());
  if (!descr) return makeError(StatusCode::kUnsupported, "cannot write ", dataTypeName(t.dtype()), " to .npy");
  std::string shape = "(";
  for (size_t i = 0; i < t.rank(); ++i) shape += std::to_string(t.dims()[i]) + (t.rank() == 1 || i + 1 < t.rank() ? "," : "");
  shape += ")";
  std::string h = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + h.size() + 1;
  h.append((64 - total % 64) % 64, ' ');
  h += '\n';
  std::ofstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kIoError, "cannot write '", path, "'");
  const char magic[] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  f.write(magic, 8);
  uint16_t len = static_cast<uint16_t>(h.size());
  char lb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  f.write(lb, 2);
  f.write(h.data(), static_cast<std::streamsize>(h.size()));
  f.write(static_cast<const char*>(t.raw()), static_cast<std::streamsize>(t.nbytes()));
  if (!f) return makeError(StatusCode::kIoError, "short write to '", path, "'");
  return Status::Ok();
}

}  // namespace ramjet
