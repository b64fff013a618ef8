#include "passes/pass_manager.h"

#include <cstdlib>
#include <iomanip>
#include <map>
#include <sstream>

namespace ramjet::passes {

// The order, and why:
//  level 1 (cleanup): Identity/Dropout removal first so every later pattern sees producers
//    directly; constant folding next (shape subgraphs become constants, which the reshape
//    and pattern passes need as constant operands); CSE after folding so equal constants and
//    the duplicated Shape->Gather chains exporters emit merge; reshape chains once their shape
//    operands are constant; DCE last to drop what the others orphaned.
//  level 2 (algebraic folds into weights): Conv+BN before Conv+Mul/Add (BN folds exactly into
//    the conv; a remaining standalone BN then becomes Mul+Add, which may itself fold into a
//    preceding conv's weights if the conv had other users... it is only decomposed when no
//    conv can absorb it); MatMul+Add -> Gemm after the bias-style folds.
//  level 3 (pattern recognition of exporter decompositions): GELU before SiLU/HardSwish/Mish
//    because their tails are all "x * f(x)" Muls and GELU's is the most specific; LayerNorm
//    and attention last since they consume the largest subgraphs. DCE removes the matched
//    remains.
//  level 4 (kernel fusion for the device): GEMM epilogues (bias/residual/activation into
//    cuBLASLt) once GELU and attention are recognised; attention head-split layout folding once
//    AttentionFusion's Transposes merged. DCE removes the absorbed nodes.
//  level 5: generic elementwise trees -> FusedElementwise (NVRTC), last so every specific fusion
//    above (GEMM and conv epilogues, residual Adds into FusedConv) has had its chance.
//  level 4, first: Conv [+ residual Add] + activation -> FusedConv once the activations are
//    single nodes (level 3) and before generic elementwise fusion could absorb them; then
//    NhwcLayout (only when the backend prefers channels-last), so it moves whole fused
//    convolutions and sinks the transposes through what is left between them.
// The whole sequence repeats until a round changes nothing (a fold can expose a pattern and a
// fused node can make a reshape chain foldable).
PassManager PassManager::createDefault() {
  PassManager pm;
  pm.addPass(1, createIdentityElimination());
  pm.addPass(1, createConstantFolding());
  pm.addPass(1, createCommonSubexpressionElimination());
  pm.addPass(1, createReshapeChainSimplification());
  pm.addPass(1, createDeadCodeElimination());
  pm.addPass(2, createConvBnFold());
  pm.addPass(2, createConvScaleBiasFold());
  pm.addPass(2, createBatchNormToMulAdd());
  pm.addPass(2, createPatchifyConvToGemm());
  pm.addPass(2, createMatMulAddToGemm());
  pm.addPass(2, createDeadCodeElimination());
  pm.addPass(3, createGeluFusion());
  pm.addPass(3, createSiluFusion());
  pm.addPass(3, createHardSwishFusion());
  pm.addPass(3, createMishFusion());
  pm.addPass(3, createLayerNormFusion());
  pm.addPass(3, createAttentionFusion());
  pm.addPass(3, createSoftmaxWeightedSumFusion());
  pm.addPass(3, createDeadCodeElimination());
  pm.addPass(4, createGemmEpilogueFusion());
  pm.addPass(4, createAttentionLayoutFold());
  pm.addPass(4, createAttentionBatchFirst());
  pm.addPass(4, createAddLayerNormFusion());
  pm.addPass(4, createDeadCodeElimination());
  pm.addPass(4, createConvActivationFusion());
  pm.addPass(4, createNhwcLayout());
  pm.addPass(4, createDeadCodeElimination());
  pm.addPass(5, createElementwiseFusion());
  pm.addPass(5, createDeadCodeElimination());
  return pm;
}

void PassManager::addPass(int level, std::unique_ptr<Pass> pass) {
  passes_.push_back(Entry{level, std::move(pass)});
}

std::vector<std::string> PassManager::passNames() const {
  std::vector<std::string> names;
  for (const auto& e : passes_) {
    bool seen = false;
    for (const auto& n : names) seen |= n == e.pass->name();
    if (!seen) names.push_back(e.pass->name());
  }
  return names;
}

std::string PassManager::listPasses() const {
  std::ostringstream os;
  for (const auto& e : passes_)
    os << "  level " << e.level << "  " << std::left << std::setw(32) << e.pass->name()
       << e.pass->description() << "\n";
  return os.str();
}

std::set<std::string> parsePassList(const std::string& list) {
  std::set<std::string> out;
  std::string cur;
  for (char c : list + ",") {
    if (c == ',') {
      while (!cur.empty() && cur.back() == ' ') cur.pop_back();
      size_t b = cur.find_first_not_of(' ');
      if (b != std::string::npos) out.insert(cur.substr(b));
      cur.clear();
    } else {
      cur += c;
    }
  }
  return out;
}

std::string PassReport::toString() const {
  std::ostringstream os;
  os << "nodes: " << nodes_before << " -> " << nodes_after << "\n";
  os << std::left << std::setw(34) << "pass" << std::right << std::setw(6) << "level"
     << std::setw(6) << "runs" << std::setw(9) << "removed" << std::setw(7) << "added"
     << std::setw(10) << "rewrites"
     << "\n";
  for (const auto& e : passes) {
    os << std::left << std::setw(34) << e.name << std::right << std::setw(6) << e.level;
    if (e.disabled) {
      os << "  (disabled)\n";
      continue;
    }
    os << std::setw(6) << e.runs << std::setw(9) << e.stats.nodes_removed << std::setw(7)
       << e.stats.nodes_added << std::setw(10) << e.stats.rewrites << "\n";
  }
  return os.str();
}

Status PassManager::run(Graph& g, const PassOptions& opts, PassReport* report) const {
  std::set<std::string> disabled = opts.disabled;
  if (opts.use_env) {
    if (const char* env = std::getenv("RAMJET_DISABLE_PASSES")) {
      for (const auto& n : parsePassList(env)) disabled.insert(n);
    }
  }
  const auto names = passNames();
  bool all_off = disabled.count("all") != 0;
  for (const auto& d : disabled) {
    bool known = d == "all";
    for (const auto& n : names) known |= n == d;
    if (!known) {
      std::string list;
      for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
      return makeError(
          StatusCode::kInvalidArgument, "unknown pass '", d,
          "' in the disabled list (RAMJET_DISABLE_PASSES or --disable); passes: ", list);
    }
  }
  PassReport local;
  PassReport& rep = report ? *report : local;
  rep = PassReport{};
  rep.nodes_before = g.nodes().size();
  std::map<std::pair<int, std::string>, size_t> slot;
  for (const auto& e : passes_) {
    auto key = std::make_pair(e.level, std::string(e.pass->name()));
    if (slot.count(key)) continue;
    slot[key] = rep.passes.size();
    PassReportEntry r;
    r.name = e.pass->name();
    r.level = e.level;
    r.disabled = all_off || disabled.count(r.name) != 0;
    rep.passes.push_back(r);
  }
  // Shapes let passes check ranks and broadcast legality; a graph whose shapes cannot be
  // inferred is still optimized, but type-dependent rewrites will not fire where types are unknown.
  const bool shapes_ok = g.inferShapes().ok();

  std::vector<int> levels;
  for (const auto& e : passes_)
    if (levels.empty() || levels.back() != e.level) levels.push_back(e.level);
  for (int round = 0; round < opts.max_iterations; ++round) {
    bool round_changed = false;
    for (int level : levels) {
      for (int it = 0; it < opts.max_iterations; ++it) {
        bool changed = false;
        for (const auto& e : passes_) {
          if (e.level != level) continue;
          PassReportEntry& r = rep.passes[slot[{e.level, e.pass->name()}]];
          if (r.disabled) continue;
          PassStats st;
          Status s = e.pass->run(g, opts.config, &st);
          if (!s.ok()) return s.withContext(std::string("pass ") + e.pass->name());
          ++r.runs;
          r.stats += st;
          if (!st.changed()) continue;
          changed = true;
          if (opts.verify) {
            Status v = g.verify();
            if (!v.ok())
              return Status(StatusCode::kInternal, std::string("pass ") + e.pass->name() +
                                                       " left an invalid graph: " + v.message());
          }
          Status sh = g.inferShapes();
          if (!sh.ok() && shapes_ok && opts.verify)
            return Status(StatusCode::kInternal, std::string("pass ") + e.pass->name() +
                                                     " broke shape inference: " + sh.message());
        }
        if (!changed) break;
        round_changed = true;
      }
    }
    if (!round_changed) break;
  }
  rep.nodes_after = g.nodes().size();
  return Status::Ok();
}

Status optimizeGraph(Graph& g, const PassOptions& opts, PassReport* report) {
  static const PassManager pm = PassManager::createDefault();
  return pm.run(g, opts, report);
}

}  // namespace ramjet::passes
