// Data-movement helpers for the tensor-family reference kernels: element copies by byte size
// (dtype-agnostic) and an N-d strided copy that serves Transpose, Slice, Expand, DepthToSpace.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "ops/op_registry.h"

namespace ramjet::reference {

// Copies the tensor described by (src + offset, dims, strides in elements; strides may be 0 or
// negative) into dense row-major dst.
inline void stridedCopy(const uint8_t* src, int64_t offset, const std::vector<int64_t>& dims,
                        const std::vector<int64_t>& strides, uint8_t* dst, size_t esize) {
  int64_t n = numElements(dims);
  if (n == 0) return;
  size_t r = dims.size();
  if (r == 0) {
    std::memcpy(dst, src + offset * esize, esize);
    return;
  }
  int64_t inner = dims[r - 1], istride = strides[r - 1];
  std::vector<int64_t> idx(r, 0);
  int64_t off = offset;
  for (int64_t o = 0; o < n; o += inner) {
    const uint8_t* s = src + off * esize;
    if (istride == 1) {
      std::memcpy(dst, s, inner * esize);
      dst += inner * esize;
    } else {
      switch (esize) {
        case 1: for (int64_t k = 0; k < inner; ++k) *dst++ = s[k * istride]; break;
        case 2:
          for (int64_t k = 0; k < inner; ++k, dst += 2) std::memcpy(dst, s + k * istride * 2, 2);
          break;
        case 4:
          for (int64_t k = 0; k < inner; ++k, dst += 4) std::memcpy(dst, s + k * istride * 4, 4);
          break;
        case 8:
          for (int64_t k = 0; k < inner; ++k, dst += 8) std::memcpy(dst, s + k * istride * 8, 8);
          break;
        default:
          for (int64_t k = 0; k < inner; ++k, dst += esize) std::memcpy(dst, s + k * istride * esize, esize);
      }
    }
    // Advance the counter over the outer dims.
    for (int i = static_cast<int>(r) - 2; i >= 0; --i) {
      if (++idx[i] < dims[i]) {
        off += strides[i];
        break;
      }
      off -= strides[i] * (dims[i] - 1);
      idx[i] = 0;
    }
  }
}

// Output of `in` permuted: out dim i = in dim perm[i].
inline void permuteCopy(const Tensor& in, const std::vector<int64_t>& in_dims, const std::vector<int64_t>& perm,
                        Tensor& out) {
  std::vector<int64_t> is = ops::stridesOf(in_dims), od, os;
  for (int64_t p : perm) {
    od.push_back(in_dims[p]);
    os.push_back(is[p]);
  }
  stridedCopy(static_cast<const uint8_t*>(in.raw()), 0, od, os, static_cast<uint8_t*>(out.raw()),
              dataTypeSize(in.dtype()));
}

}  // namespace ramjet::reference
