// Broadcasting iteration helpers for reference kernels.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/op_registry.h"

namespace ramjet::reference {

// For an output of `out_dims`, gives for each output element the element index in an input of
// `in_dims` (numpy broadcasting, in_dims right-aligned).
class BroadcastIndexer {
 public:
  BroadcastIndexer(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims) {
    size_t rank = out_dims.size();
    strides_.assign(rank, 0);
    out_dims_ = out_dims;
    std::vector<int64_t> in_strides = ops::stridesOf(in_dims);
    size_t off = rank - in_dims.size();
    for (size_t i = 0; i < in_dims.size(); ++i) strides_[off + i] = in_dims[i] == 1 ? 0 : in_strides[i];
    same_ = in_dims == out_dims;
  }
  // Maps linear output index -> linear input index.
  int64_t operator()(int64_t out_index) const {
    if (same_) return out_index;
    int64_t in = 0;
    for (int i = static_cast<int>(out_dims_.size()) - 1; i >= 0; --i) {
      int64_t d = out_dims_[i];
      in += (out_index % d) * strides_[i];
      out_index /= d;
    }
    return in;
  }

 private:
  std::vector<int64_t> out_dims_, strides_;
  bool same_ = false;
};

}  // namespace ramjet::reference
