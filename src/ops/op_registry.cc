#include "ops/op_registry.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>

namespace ramjet::ops {

const std::vector<OpSchema>& allOps() {
  static const std::vector<OpSchema> kOps = {
#define RJ_OP(Name, min_in, max_in, min_out, max_out) \
  OpSchema{#Name, min_in, max_in, min_out, max_out, &infer##Name, &ref##Name},
#include "ops/ops.def"
#undef RJ_OP
  };
  return kOps;
}

const OpSchema* findOp(const std::string& op_type) {
  static const std::unordered_map<std::string, const OpSchema*> kIndex = [] {
    std::unordered_map<std::string, const OpSchema*> m;
    for (const auto& s : allOps()) m[s.name] = &s;
    return m;
  }();
  auto it = kIndex.find(op_type);
  return it == kIndex.end() ? nullptr : it->second;
}

Dim InferContext::newSymbol(const std::string& hint) const {
  static std::atomic<int64_t> counter{0};
  return Dim::symbolic(hint + "_" + std::to_string(counter++));
}

Status normalizeAxis(int64_t* axis, int64_t rank, const Node& node) {
  if (*axis < -rank || *axis >= std::max<int64_t>(rank, 1) || (rank == 0 && *axis != 0 && *axis != -1))
    return makeError(StatusCode::kInvalidModel, node.describe(), ": axis ", *axis,
                     " is out of range for rank ", rank);
  if (*axis < 0) *axis += rank;
  return Status::Ok();
}

Result<Shape> broadcastShapes(const std::vector<Shape>& shapes, const Node& node) {
  size_t rank = 0;
  for (const auto& s : shapes) {
    if (!s.rank_known) return Shape::unknownRank();
    rank = std::max(rank, s.rank());
  }
  Shape out;
  out.dims.resize(rank, Dim(1));
  for (const auto& s : shapes) {
    size_t off = rank - s.rank();
    for (size_t i = 0; i < s.rank(); ++i) {
      const Dim& d = s.dims[i];
      Dim& o = out.dims[off + i];
      if (d.known() && d.value == 1) continue;
      if (o.known() && o.value == 1) { o = d; continue; }
      if (d == o) continue;
      if (d.known() && o.known())
        return makeError(StatusCode::kInvalidModel, node.describe(), ": cannot broadcast dim ",
                         o.value, " with ", d.value);
      if (d.known()) o = d;  // symbolic vs known: the known one wins (the symbol must equal it or be 1)
    }
  }
  return out;
}

Result<std::vector<int64_t>> broadcastDims(const std::vector<std::vector<int64_t>>& dims, const Node& node) {
  size_t rank = 0;
  for (const auto& d : dims) rank = std::max(rank, d.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& d : dims) {
    size_t off = rank - d.size();
    for (size_t i = 0; i < d.size(); ++i) {
      int64_t& o = out[off + i];
      if (d[i] == o || d[i] == 1) continue;
      if (o == 1) { o = d[i]; continue; }
      return makeError(StatusCode::kInvalidArgument, node.describe(), ": cannot broadcast ",
                       dimsToString(d), " to ", dimsToString(out));
    }
  }
  return out;
}

std::vector<int64_t> stridesOf(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

}  // namespace ramjet::ops
