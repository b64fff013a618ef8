// CommonSubexpressionElimination: merges equal small constants, then nodes with the same op,
// attributes and inputs. After constant folding (folded shape constants are often equal) and
// before the pattern passes, which expect x*Sigmoid(x) to read one x, not two copies of it.
#include <cstring>
#include <map>
#include <set>

#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

constexpr int64_t kMaxMergedConstantBytes = 4096;

std::string constantKey(const Tensor& t) {
  std::string k = std::to_string(static_cast<int>(t.dtype())) + dimsToString(t.dims()) + ":";
  k.append(static_cast<const char*>(t.raw()), t.nbytes());
  return k;
}

bool nodeKey(const Node* n, std::string* key) {
  static const std::set<std::string> kNondeterministic = {"RandomNormal",     "RandomUniform",
                                                          "RandomNormalLike", "RandomUniformLike",
                                                          "Multinomial",      "Bernoulli"};
  if (kNondeterministic.count(n->op_type) || n->outputs.empty()) return false;
  std::string k = n->domain + "|" + n->op_type + "|" + std::to_string(n->outputs.size()) + "|";
  for (const Value* v : n->inputs) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%p,", static_cast<const void*>(v));
    k += buf;
  }
  for (const auto& [name, a] : n->attrs) {
    if (a.kind == Attribute::Kind::kGraph) return false;
    k += "|" + name + "=" + std::to_string(static_cast<int>(a.kind)) + ":";
    if (a.kind == Attribute::Kind::kTensor)
      k += constantKey(a.t);
    else if (a.kind == Attribute::Kind::kFloat)
      k.append(reinterpret_cast<const char*>(&a.f), 4);
    else if (a.kind == Attribute::Kind::kFloats)
      k.append(reinterpret_cast<const char*>(a.floats.data()), a.floats.size() * 4);
    else
      k += a.toString();
  }
  *key = std::move(k);
  return true;
}

class CommonSubexpressionElimination final : public Pass {
 public:
  const char* name() const override { return "CommonSubexpressionElimination"; }
  const char* description() const override {
    return "merges duplicate small constants and identical nodes";
  }
  Status run(Graph& g, const PassConfig&, PassStats* stats) override {
    Rewriter rw{g, stats, {}};
    std::map<std::string, Value*> consts;
    std::vector<Value*> values;
    for (const auto& v : g.values()) values.push_back(v.get());
    for (Value* v : values) {
      if (!v->constant || v->consumers.empty() || v->is_graph_output || v->is_graph_input ||
          static_cast<int64_t>(v->constant->nbytes()) > kMaxMergedConstantBytes)
        continue;
      auto [it, fresh] = consts.emplace(constantKey(*v->constant), v);
      if (fresh) continue;
      if (replaceAllUses(g, v, it->second)) ++stats->rewrites;
    }
    std::map<std::string, Node*> seen;
    for (Node* n : nodeList(g)) {
      if (!rw.alive(n)) continue;
      std::string key;
      if (!nodeKey(n, &key)) continue;
      auto [it, fresh] = seen.emplace(key, n);
      if (fresh) continue;
      Node* keep = it->second;
      bool ok = true;
      for (size_t i = 0; i < n->outputs.size(); ++i) {
        Value* v = n->outputs[i];
        if (v && (v->is_graph_output || !keep->outputs[i])) ok = false;
      }
      if (!ok) continue;
      for (size_t i = 0; i < n->outputs.size(); ++i)
        if (n->outputs[i] && !replaceAllUses(g, n->outputs[i], keep->outputs[i])) ok = false;
      if (!ok) continue;  // a subgraph reads it by name; leave the node in place
      rw.remove(n);
      ++stats->rewrites;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createCommonSubexpressionElimination() {
  return std::make_unique<CommonSubexpressionElimination>();
}

}  // namespace ramjet::passes
