// libFuzzer target for the ONNX importer: importOnnxFromMemory + inferShapes on arbitrary bytes,
// and for small graphs a reference-interpreter run on random non-zero inputs. Any crash, sanitizer
// report or error without a message is a bug.
//
// The run is skipped (not a finding) when it could legitimately take unbounded time or memory:
// graphs with Loop/Scan bodies (a trip count of 2^62 is valid ONNX), big inputs or values, or
// too many nodes. Each node's elapsed time is checked so a slow run is abandoned.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "core/dispatch.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

constexpr int64_t kMaxElements = 1 << 16;  // per value
constexpr size_t kMaxNodes = 64;
constexpr auto kTimeCap = std::chrono::milliseconds(200);

struct TimeUp {};

bool small(const TensorType& t) {
  if (!t.shape.rank_known || !t.shape.fullyKnown()) return true;  // decided at run time
  int64_t n = 1;
  for (const Dim& d : t.shape.dims) {
    if (d.value > kMaxElements) return false;
    n *= d.value;
    if (n > kMaxElements) return false;
  }
  return true;
}

bool hasBody(const Graph& g) {
  for (const auto& n : g.nodes())
    for (const auto& [k, a] : n->attrs)
      if (a.kind == Attribute::Kind::kGraph && n->op_type != "If") return true;
  return false;
}

// Random non-zero values of the input's type; symbolic dims become 2.
bool makeInput(const Value* v, std::mt19937& rng, Tensor* out) {
  if (!v->type.shape.rank_known || !isSupportedDataType(v->type.dtype) || v->type.dtype == DataType::kString)
    return false;
  std::vector<int64_t> dims;
  for (const Dim& d : v->type.shape.dims) dims.push_back(d.known() ? d.value : 2);
  if (numElements(dims) > kMaxElements) return false;
  Tensor t(v->type.dtype, dims);
  visitType(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      int r = static_cast<int>(rng() % 7) + 1;  // 1..7, never zero
      if constexpr (std::is_same_v<T, bool>) p[i] = true;
      else if constexpr (std::is_unsigned_v<T>) p[i] = static_cast<T>(r);
      else p[i] = static_cast<T>(static_cast<float>(rng() % 2 ? r : -r) * 0.5f);
    }
  });
  *out = std::move(t);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ImportOptions opts;  // no external_data_dir: external data must be refused, never read
  auto g = importOnnxFromMemory(data, size, opts);
  if (!g.ok()) {
    if (g.status().message().empty()) std::abort();
    return 0;
  }
  Status st = g->inferShapes();  // idempotent after import
  if (!st.ok() && st.message().empty()) std::abort();
  (void)g->dump();
  if (!st.ok() || g->nodes().size() > kMaxNodes || hasBody(*g)) return 0;
  for (const auto& v : g->values())
    if (!small(v->type)) return 0;
  std::mt19937 rng(static_cast<uint32_t>(size));
  std::map<std::string, Tensor> inputs;
  for (const Value* v : g->inputs) {
    Tensor t;
    if (!makeInput(v, rng, &t)) return 0;
    inputs[v->name] = std::move(t);
  }
  reference::RunOptions ro;
  auto start = std::chrono::steady_clock::now();
  ro.on_node = [&](const Node&, const std::vector<Tensor>& outs) {
    for (const Tensor& t : outs)
      if (t.numel() > kMaxElements) throw TimeUp{};  // later nodes could only grow it
    if (std::chrono::steady_clock::now() - start > kTimeCap) throw TimeUp{};
  };
  try {
    auto r = reference::run(*g, inputs, ro);
    if (!r.ok() && r.status().message().empty()) std::abort();
  } catch (const TimeUp&) {
  }
  return 0;
}
