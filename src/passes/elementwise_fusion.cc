// ElementwiseFusion: maximal trees of float elementwise ops (unary math, Add/Sub/Mul/Div/Pow/
// Max/Min with broadcast operands, Clip with constant bounds) whose intermediate values have no
// other use -> one FusedElementwise node carrying the expression program
// (src/ops/elementwise_program.h). The CUDA backend compiles each program with NVRTC into one
// kernel. Last in level 4: the specific fusions (GELU, SiLU, LayerNorm, attention, GEMM
// epilogues, conv epilogues) must take their patterns first; a tree of one op is left alone.
#include <algorithm>
#include <cmath>
#include <map>

#include "ops/elementwise_program.h"
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

using ops::EwInstr;
using ops::EwOp;
using ops::EwProgram;

constexpr size_t kMaxInputs = 8;  // the CUDA fallback kernel's operand table
constexpr size_t kMaxCode = 64;

// The instruction for node n (params filled), or false when n is not fusible. `data` gets the
// inputs that are operands (Clip's bounds become params).
bool instrFor(const Node* n, EwInstr* in, std::vector<Value*>* data) {
  if (!n->domain.empty() || n->outputs.size() != 1 || !n->outputs[0]) return false;
  const Value* y = n->outputs[0];
  const DataType dt = y->type.dtype;
  if (!isFloatType(dt) || dt == DataType::kFloat64 || !y->type.shape.rank_known) return false;
  const std::string& op = n->op_type;
  data->clear();
  if (op == "Clip") {
    double lo = -INFINITY, hi = INFINITY;
    if (n->inputs.size() > 1 && n->inputs[1] && !scalarValue(n->inputs[1], &lo)) return false;
    if (n->inputs.size() > 2 && n->inputs[2] && !scalarValue(n->inputs[2], &hi)) return false;
    in->op = EwOp::kClip;
    in->p0 = static_cast<float>(lo);
    in->p1 = static_cast<float>(hi);
    data->push_back(n->inputs[0]);
  } else if (op == "Gelu") {
    const std::string ap = n->attrString("approximate", "none");
    if (ap != "none" && ap != "tanh") return false;
    in->op = ap == "tanh" ? EwOp::kGeluTanh : EwOp::kGelu;
    data->push_back(n->inputs[0]);
  } else {
    if (!ops::ewOpFromName(op, &in->op) || in->op == EwOp::kGeluTanh) return false;
    const size_t arity = static_cast<size_t>(ops::ewArity(in->op));
    if (n->inputs.size() != arity) return false;
    if (in->op == EwOp::kHardSigmoid) {
      in->p0 = n->attrFloat("alpha", 0.2f);
      in->p1 = n->attrFloat("beta", 0.5f);
    } else if (in->op == EwOp::kLeakyRelu) {
      in->p0 = n->attrFloat("alpha", 0.01f);
    } else if (in->op == EwOp::kElu) {
      in->p0 = n->attrFloat("alpha", 1.f);
    }
    for (Value* v : n->inputs) data->push_back(v);
  }
  for (const Value* v : *data)
    if (!v || v->type.dtype != dt || !v->type.shape.rank_known) return false;
  return true;
}

class ElementwiseFusion final : public Pass {
 public:
  const char* name() const override { return "ElementwiseFusion"; }
  const char* description() const override {
    return "trees of elementwise/broadcast ops -> FusedElementwise (one NVRTC kernel)";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    // A device lowering: only for a target that asked for it (the builder sets can_emit).
    if (!cfg.can_emit || !cfg.canEmit("FusedElementwise")) return Status::Ok();
    RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topoOrder());
    std::map<const Node*, size_t> pos;
    for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = i;
    std::set<const Node*> taken;
    const std::set<std::string> outer = outerScopeNames(g);
    Rewriter rw{g, stats, {}};
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* root = *it;
      EwInstr ins;
      std::vector<Value*> data;
      if (taken.count(root) || !instrFor(root, &ins, &data)) continue;
      // Grow the tree backwards through producers used only here.
      std::vector<Node*> group = {root}, stack = {root};
      while (!stack.empty()) {
        Node* m = stack.back();
        stack.pop_back();
        EwInstr mi;
        std::vector<Value*> md;
        instrFor(m, &mi, &md);
        for (Value* v : md) {
          Node* p = v->producer;
          if (!p || taken.count(p) || std::count(group.begin(), group.end(), p) || soleConsumer(v) != m ||
              outer.count(v->name) || group.size() >= kMaxCode)
            continue;
          EwInstr pi;
          std::vector<Value*> pd;
          if (!instrFor(p, &pi, &pd) || v->type.dtype != root->outputs[0]->type.dtype) continue;
          group.push_back(p);
          stack.push_back(p);
        }
      }
      if (group.size() < 2) continue;
      std::sort(group.begin(), group.end(), [&](const Node* a, const Node* b) { return pos[a] < pos[b]; });
      // External inputs first (deduplicated), then the program.
      std::vector<Value*> inputs;
      std::map<const Value*, int32_t> result_of;
      for (Node* m : group) {
        EwInstr mi;
        std::vector<Value*> md;
        instrFor(m, &mi, &md);
        for (Value* v : md) {
          const bool internal = v->producer && std::count(group.begin(), group.end(), v->producer);
          if (!internal && std::find(inputs.begin(), inputs.end(), v) == inputs.end()) inputs.push_back(v);
        }
      }
      if (inputs.size() > kMaxInputs) continue;
      EwProgram prog;
      prog.num_inputs = static_cast<int32_t>(inputs.size());
      for (Node* m : group) {
        EwInstr mi;
        std::vector<Value*> md;
        instrFor(m, &mi, &md);
        int32_t codes[2] = {-1, -1};
        for (size_t k = 0; k < md.size(); ++k) {
          auto r = result_of.find(md[k]);
          codes[k] = r != result_of.end()
                         ? r->second
                         : static_cast<int32_t>(std::find(inputs.begin(), inputs.end(), md[k]) - inputs.begin());
        }
        mi.a = codes[0];
        mi.b = codes[1];
        result_of[m->outputs[0]] = prog.num_inputs + static_cast<int32_t>(prog.code.size());
        prog.code.push_back(mi);
      }
      for (Node* m : group) taken.insert(m);
      Node* f = rw.replace(root, "FusedElementwise", inputs);
      ops::ewProgramToNode(prog, f);
      stats->rewrites += static_cast<int64_t>(group.size()) - 1;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createElementwiseFusion() { return std::make_unique<ElementwiseFusion>(); }

}  // namespace ramjet::passes
