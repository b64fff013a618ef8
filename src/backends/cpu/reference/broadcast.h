// Broadcasting iteration helpers for reference kernels.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "backends/cpu/reference/gemm.h"  // parallelRange: the reference backend's thread pool
#include "ops/op_registry.h"

namespace ramjet::reference {

// For an output of `out_dims`, gives for each output element the element index in an input of
// `in_dims` (numpy broadcasting, in_dims right-aligned). Simple but does a div/mod per dim per
// element: hot loops should use forEachBroadcastRow instead.
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

// Walks a dense output of `out_dims` with N inputs broadcast to it (numpy rules; each input's
// dims must already be known to broadcast) one contiguous piece of an output row at a time:
//   row(const int64_t* in_offsets, int64_t out_offset, int64_t n, const int64_t* in_strides)
// where input k's elements for the piece are at in_offsets[k] + j * in_strides[k], j < n, and
// in_strides[k] is 0 (broadcast) or the input's stride along the row. Dims of size 1 are dropped
// and adjacent dims that are contiguous for every operand are merged first, so same-shape and
// scalar operands give a single row, and per-channel operands give rows as long as a channel
// plane; there is no div/mod per element. Outputs of more than `parallel_min` elements are
// split into contiguous ranges (of at least parallel_min / 2 elements, starting anywhere in a
// row) run concurrently by parallelRange, so `row` must only write its own piece.
template <size_t N, typename F>
void forEachBroadcastRow(const std::array<const std::vector<int64_t>*, N>& in_dims,
                         const std::vector<int64_t>& out_dims, F&& row, int64_t parallel_min = 65536) {
  const size_t rank = out_dims.size();
  for (int64_t d : out_dims)
    if (d == 0) return;
  std::array<std::vector<int64_t>, N> full;  // per-input strides aligned to the output, 0 = broadcast
  for (size_t k = 0; k < N; ++k) {
    const std::vector<int64_t>& d = *in_dims[k];
    full[k].assign(rank, 0);
    size_t off = rank - d.size();
    int64_t s = 1;
    for (size_t i = d.size(); i-- > 0;) {
      full[k][off + i] = d[i] == 1 ? 0 : s;
      s *= d[i];
    }
  }
  std::vector<int64_t> dims;  // collapsed, innermost last
  std::array<std::vector<int64_t>, N> st;
  for (size_t i = 0; i < rank; ++i) {
    if (out_dims[i] == 1) continue;
    bool merge = !dims.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = st[k].back() == full[k][i] * out_dims[i];
    if (merge) {
      dims.back() *= out_dims[i];
      for (size_t k = 0; k < N; ++k) st[k].back() = full[k][i];
    } else {
      dims.push_back(out_dims[i]);
      for (size_t k = 0; k < N; ++k) st[k].push_back(full[k][i]);
    }
  }
  if (dims.empty()) {
    dims.push_back(1);
    for (size_t k = 0; k < N; ++k) st[k].push_back(0);
  }
  const size_t r = dims.size();
  const int64_t n = dims[r - 1];
  std::array<int64_t, N> inner{};
  for (size_t k = 0; k < N; ++k) inner[k] = st[k][r - 1];
  int64_t total = n;
  for (size_t i = 0; i + 1 < r; ++i) total *= dims[i];

  // Output elements [begin, end): one div/mod walk to find the start, then an odometer.
  auto runRange = [&](int64_t begin, int64_t end) {
    if (begin >= end) return;
    std::vector<int64_t> idx(r, 0);
    std::array<int64_t, N> base{}, off{};  // input offsets of the current row's start
    int64_t q = begin / n, col = begin % n;
    for (size_t d = r - 1; d-- > 0;) {
      idx[d] = q % dims[d];
      q /= dims[d];
      for (size_t k = 0; k < N; ++k) base[k] += idx[d] * st[k][d];
    }
    for (int64_t pos = begin; pos < end; col = 0) {
      const int64_t len = std::min(n - col, end - pos);
      for (size_t k = 0; k < N; ++k) off[k] = base[k] + col * inner[k];
      row(off.data(), pos, len, inner.data());
      pos += len;
      for (size_t d = r - 1; d-- > 0;) {
        if (++idx[d] < dims[d]) {
          for (size_t k = 0; k < N; ++k) base[k] += st[k][d];
          break;
        }
        idx[d] = 0;
        for (size_t k = 0; k < N; ++k) base[k] -= st[k][d] * (dims[d] - 1);
      }
    }
  };
  if (total > parallel_min) {
    parallelRange(total, std::max<int64_t>(parallel_min / 2, 1), runRange);
    return;
  }
  runRange(0, total);
}

}  // namespace ramjet::reference
