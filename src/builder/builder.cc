// build(): graph -> plan. Stages, in order (each a plain function below):
//   1. profiles: symbolic input dims get min/opt/max; a profile with min == max specializes the
//      graph to static shapes (so Shape() folds away).
//   2. precision lowering (src/precision/lowering.h): FP16/BF16 with per-layer FP32 fallback,
//      INT8 (QConv/QGemm), per-layer overrides; Casts at precision boundaries.
//   3. constant folding: nodes whose inputs are all constant (and Shape/Size of static shapes)
//      run once here on the CPU reference; dead nodes and constants are dropped.
//   4. placement: shape arithmetic on symbolic dims -> host; Reshape & co. -> alias where legal;
//      everything else -> the device backend (or CPU fallback when allowed), with one clear error
//      listing every node the backend cannot run.
//   5. tactics: the backend's candidates per node, timed on the device when there are several
//      (timing cache consulted first).
//   6. memory plan at the profiles' max shapes; 7. encode the plan.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "backends/backend.h"
#include "builder/conv_layout.h"
#include "precision/accuracy_budget.h"
#include "builder/timing_cache.h"
#include "precision/calibrator.h"
#include "ops/op_registry.h"
#include "passes/pass_manager.h"
#include "plan/plan_format.h"
#include "precision/lowering.h"
#include "ramjet/engine.h"
#include "runtime/program.h"

namespace ramjet {

using backend::Placement;

namespace {

class BuildLog {
 public:
  explicit BuildLog(Logger* l) : l_(l) {}
  template <typename... Args>
  void operator()(Severity s, Args&&... parts) const {
    if (!l_) return;
    std::ostringstream os;
    (os << ... << parts);
    l_->log(s, os.str());
  }

 private:
  Logger* l_;
};

bool hasSymbolicDims(const Value* v) {
  if (!v->type.shape.rank_known) return true;
  for (const Dim& d : v->type.shape.dims)
    if (!d.known()) return true;
  return false;
}

// Fills in profiles for every input with symbolic dims and validates the given ones.
Status resolveProfiles(const Graph& g, const BuildOptions& opt, std::vector<ShapeProfile>* out, const BuildLog& log) {
  std::map<std::string, ShapeProfile> given;
  for (const auto& p : opt.profiles) {
    const Value* v = g.findValue(p.input);
    if (!v || !v->is_graph_input) {
      std::string names;
      for (const Value* in : g.inputs) names += (names.empty() ? "" : ", ") + in->name;
      return makeError(StatusCode::kInvalidArgument, "shape profile names '", p.input,
                       "', which is not a model input (inputs: ", names, ")");
    }
    if (given.count(p.input)) return makeError(StatusCode::kInvalidArgument, "two shape profiles for input '", p.input, "'");
    given[p.input] = p;
  }
  for (const Value* v : g.inputs) {
    const Shape& s = v->type.shape;
    auto it = given.find(v->name);
    if (!s.rank_known && it == given.end())
      return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' has unknown rank: give its shape (--shapes)");
    if (it == given.end()) {
      if (!hasSymbolicDims(v)) continue;
      ShapeProfile p;
      p.input = v->name;
      for (const Dim& d : s.dims) p.min.push_back(d.known() ? d.value : 1);
      // An image model whose metadata states its size (YOLO exporters write "imgsz": 640 or
      // [640, 640]): symbolic H/W of its only [N, 3, H, W] input default to that.
      auto md = g.metadata.find("imgsz");
      if (md != g.metadata.end() && g.inputs.size() == 1 && s.rank() == 4) {
        std::vector<int64_t> hw;
        std::string t = md->second;
        for (char& c : t)
          if (!std::isdigit(static_cast<unsigned char>(c))) c = ' ';
        std::istringstream is(t);
        for (int64_t x; is >> x && hw.size() < 3;) hw.push_back(x);
        if (hw.size() == 1) hw.push_back(hw[0]);
        if (hw.size() == 2 && hw[0] > 0 && hw[0] <= 16384 && hw[1] > 0 && hw[1] <= 16384) {
          if (!s.dims[2].known()) p.min[2] = hw[0];
          if (!s.dims[3].known()) p.min[3] = hw[1];
        }
      }
      p.opt = p.max = p.min;
      log(Severity::kWarning, "input '", v->name, "' has symbolic dims ", s.toString(), "; building for ",
          dimsToString(p.min), " (give --shapes or a profile for other sizes)");
      out->push_back(p);
      continue;
    }
    ShapeProfile p = it->second;
    if (p.opt.empty()) p.opt = p.max.empty() ? p.min : p.max;
    if (p.min.empty()) p.min = p.opt;
    if (p.max.empty()) p.max = p.opt;
    size_t rank = s.rank_known ? s.rank() : p.opt.size();
    for (const auto* d : {&p.min, &p.opt, &p.max})
      if (d->size() != rank)
        return makeError(StatusCode::kInvalidArgument, "profile for input '", v->name, "': ", dimsToString(*d),
                         " has rank ", d->size(), " but the input is ", s.toString());
    for (size_t k = 0; k < rank; ++k) {
      if (p.min[k] < 0 || p.min[k] > p.opt[k] || p.opt[k] > p.max[k])
        return makeError(StatusCode::kInvalidArgument, "profile for input '", v->name, "': dim ", k,
                         " needs 0 <= min <= opt <= max, got ", p.min[k], "/", p.opt[k], "/", p.max[k]);
      if (s.rank_known && s.dims[k].known() && (p.min[k] != s.dims[k].value || p.max[k] != s.dims[k].value))
        return makeError(StatusCode::kInvalidArgument, "profile for input '", v->name, "': dim ", k, " is fixed at ",
                         s.dims[k].value, " in the model, the profile asks for ", p.min[k], "..", p.max[k]);
    }
    out->push_back(p);
  }
  return Status::Ok();
}

// Every input dim whose profile has min == max becomes static, also when other dims of that
// input vary (a detector built for 320x320 at batch 1..32: H and W fold, so its anchor grid's
// Shape -> Range subgraph becomes constants). A symbol fixed this way is substituted in every
// input that names it, unless some profile lets that symbol vary or fixes it to another value.
void specializeStaticInputs(Graph& g, const std::vector<ShapeProfile>& profiles) {
  std::map<std::string, int64_t> fixed;
  std::set<std::string> varies;
  for (const auto& p : profiles) {
    Value* v = g.findValue(p.input);
    if (!v || p.min.size() != v->type.shape.rank() || p.max.size() != p.min.size()) continue;
    for (size_t i = 0; i < p.min.size(); ++i) {
      Dim& d = v->type.shape.dims[i];
      if (p.min[i] != p.max[i]) {
        if (!d.known()) varies.insert(d.symbol);
        continue;
      }
      if (!d.known() && !d.symbol.empty()) {
        auto [it, fresh] = fixed.emplace(d.symbol, p.min[i]);
        if (!fresh && it->second != p.min[i]) varies.insert(d.symbol);
      }
      d = Dim(p.min[i]);
    }
  }
  for (Value* v : g.inputs)
    for (Dim& d : v->type.shape.dims)
      if (!d.known() && !d.symbol.empty() && fixed.count(d.symbol) && !varies.count(d.symbol))
        d = Dim(fixed.at(d.symbol));
}

// ---- constant folding ----
bool isRandomOp(const std::string& op) {
  return op.rfind("Random", 0) == 0 || op == "Multinomial" || op == "Bernoulli";
}

Result<size_t> foldConstants(Graph& g, const BuildLog& log) {
  RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topoOrder());
  size_t folded = 0;
  for (Node* n : order) {
    if (isRandomOp(n->op_type)) continue;
    bool subgraph = false;
    for (const auto& [k, a] : n->attrs) subgraph |= a.kind == Attribute::Kind::kGraph;
    if (subgraph) continue;
    const ops::OpSchema* schema = ops::findOp(n->op_type);
    if (!schema) continue;
    std::vector<Tensor> outs;
    if ((n->op_type == "Shape" || n->op_type == "Size") && n->inputs.size() == 1 && n->inputs[0] &&
        n->inputs[0]->type.shape.fullyKnown() && n->inputs[0]->type.shape.rank_known) {
      RJ_ASSIGN_OR_RETURN(Tensor t, runtime::evalShapeOp(*n, n->inputs[0]->type.shape.concrete()));
      outs.push_back(std::move(t));
    } else {
      bool all_const = true;
      std::vector<const Tensor*> in;
      std::vector<TensorType> in_types;
      for (Value* v : n->inputs) {
        if (v && !v->constant) all_const = false;
        in.push_back(v ? v->constant.get() : nullptr);
        in_types.push_back(v && v->constant ? v->constant->type() : TensorType{});
      }
      if (!all_const) continue;
      ops::InferContext ictx(*n, in_types, in);
      Status st = schema->infer(ictx);
      if (!st.ok()) return st;
      ops::KernelContext kctx(*n, in, n->outputs.size());
      for (size_t i = 0; i < n->outputs.size(); ++i) {
        const TensorType& t = ictx.outputs()[i];
        if (n->outputs[i] && t.shape.fullyKnown() && t.dtype != DataType::kUndefined)
          kctx.outputs[i] = Tensor(t.dtype, t.shape.concrete());
      }
      st = schema->reference(kctx);
      if (!st.ok()) return st.withContext("constant folding");
      outs = std::move(kctx.outputs);
    }
    bool ok = true;
    for (size_t i = 0; i < n->outputs.size(); ++i)
      if (n->outputs[i] && (i >= outs.size() || !outs[i].defined())) ok = false;
    if (!ok) continue;
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      Value* v = n->outputs[i];
      if (!v) continue;
      // Tensors that share storage with another constant are copied: plan weights are per value.
      v->constant = std::make_shared<Tensor>(outs[i].clone());
      v->type = v->constant->type();
    }
    log(Severity::kVerbose, "folded ", n->describe());
    g.removeNode(n);
    ++folded;
  }
  return folded;
}

// Removes nodes none of whose outputs is used, repeatedly; returns how many.
size_t removeDeadNodes(Graph& g) {
  size_t removed = 0;
  for (bool again = true; again;) {
    again = false;
    std::vector<Node*> dead;
    for (const auto& n : g.nodes()) {
      bool used = false;
      for (Value* v : n->outputs)
        if (v && (!v->consumers.empty() || v->is_graph_output)) used = true;
      if (!used) dead.push_back(n.get());
    }
    for (Node* n : dead) g.removeNode(n);
    removed += dead.size();
    again = !dead.empty();
  }
  return removed;
}

std::string typesKey(const std::vector<TensorType>& ts) {
  std::string s;
  for (const auto& t : ts) s += t.toString() + ";";
  return s;
}

std::string attrsKey(const Node& n) {
  std::string s;
  for (const auto& [k, a] : n.attrs)
    if (k != "fused_from") s += k + "=" + a.toString() + ";";  // provenance, not semantics
  return s;
}

}  // namespace

std::string BuildReport::toString() const {
  std::ostringstream os;
  os << "nodes: " << nodes_in << " in, " << nodes_after_passes << " after graph passes, " << nodes_folded << " folded, " << nodes_removed << " dead, " << nodes_out
     << " in the plan (" << host_nodes << " host shape nodes, " << fallback_nodes << " on CPU fallback)\n";
  if (optimization_profiles > 1)
    os << "optimization profiles: " << optimization_profiles << " (one engine each; the lines below are profile 0's)\n";
  os << "weights: " << weight_bytes << " bytes\n";
  if (!precision.empty()) os << "precision: " << precision;
  os << "tactics:";
  for (const auto& [k, v] : tactics) os << " " << k << "x" << v;
  os << "\ntimed " << tactics_timed << " nodes (" << timing_cache_hits << " timing-cache hits)\n";
  if (!layout.empty()) os << "conv layout: " << layout << "\n";
  auto mb = [](size_t b) { return static_cast<double>(b) / (1 << 20); };
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "activations: arena %.2f MiB, sum of tensors %.2f MiB, peak live %.2f MiB (arena/peak %.3f), "
                "%zu tensors, %zu aliases, workspace %.2f MiB\n",
                mb(memory.arena_bytes), mb(memory.sum_tensor_bytes), mb(memory.peak_live_bytes),
                memory.peak_live_bytes ? static_cast<double>(memory.arena_bytes) / memory.peak_live_bytes : 1.0,
                memory.num_tensors, memory.num_aliases, mb(memory.workspace_bytes));
  os << buf << "build time: " << build_ms << " ms\n";
  return os.str();
}

Status Plan::save(const std::string& path) const {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return makeError(StatusCode::kIoError, "cannot write plan '", tmp, "': ", std::strerror(errno));
  // Keep the first failure's errno (EFBIG/ENOSPC/EIO) for the message.
  errno = 0;
  int err = 0;
  size_t w = bytes_.empty() ? 0 : std::fwrite(bytes_.data(), 1, bytes_.size(), f);
  if (w != bytes_.size()) err = errno ? errno : EIO;
  if (!err && std::fflush(f) != 0) err = errno ? errno : EIO;
  if (!err && ::fsync(::fileno(f)) != 0) err = errno;
  if (std::fclose(f) != 0 && !err) err = errno ? errno : EIO;
  if (err) {
    std::remove(tmp.c_str());
    return makeError(StatusCode::kIoError, "writing plan '", tmp, "' failed: ", std::strerror(err),
                     "; '", path, "' was left as it was");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    return makeError(StatusCode::kIoError, "cannot rename '", tmp, "' to '", path, "': ", std::strerror(e));
  }
  return Status::Ok();
}

namespace {

Result<Plan> buildOnce(const Graph& input, const BuildOptions& opt, bool nhwc) {
  auto t0 = std::chrono::steady_clock::now();
  BuildLog log(opt.logger);
  BuildReport report;
  auto progress = [&](size_t done, size_t total, const std::string& stage) {
    if (opt.progress) opt.progress(done, total, stage);
  };
  RJ_ASSIGN_OR_RETURN(std::unique_ptr<backend::Backend> dev, backend::createBackend(opt.device, opt.device_index));
  std::unique_ptr<backend::Backend> cpu = backend::createCpuBackend();
  log(Severity::kInfo, "building for ", deviceKindName(opt.device), " (", dev->device().name, "), ",
      precisionName(opt.precision));

  progress(0, 1, "copy graph");
  RJ_ASSIGN_OR_RETURN(std::unique_ptr<Graph> g, plan::cloneGraph(input));
  report.nodes_in = g->nodes().size();
  for (const Value* v : g->inputs)
    if (v->constant) return makeError(StatusCode::kInvalidModel, "input '", v->name, "' is also an initializer");

  std::vector<ShapeProfile> profiles;
  RJ_RETURN_IF_ERROR(resolveProfiles(*g, opt, &profiles, log));
  specializeStaticInputs(*g, profiles);
  RJ_RETURN_IF_ERROR(g->inferShapes());

  // The graph passes with the build's disabled list, layout and explain settings; `int8_pending`:
  // INT8 lowering still to come, which fuses Conv/Gemm + activation + residual itself (into
  // QConv/QGemm), so the passes must leave those patterns unfused.
  const backend::Backend* devp = dev.get();
  auto runPasses = [&](bool int8_pending, const char* what) -> Result<passes::PassReport> {
    passes::PassOptions po;
    for (const std::string& d : opt.disabled_passes) po.disabled.insert(d);
    po.config.can_emit = [devp, int8_pending](const std::string& op) {
      return !(int8_pending && (op == "FusedConv" || op == "FusedGemm" || op == "PoolNhwc" || op == "FusedElementwise")) &&
             devp->hasKernelFor(op);
    };
    po.config.prefer_nhwc = nhwc;
    po.config.explain = opt.explain;
    passes::PassReport pr;
    Status st = passes::PassManager::createDefault().run(*g, po, &pr);
    if (!st.ok()) return makeError(st.code(), what, ": ", st.message());
    RJ_RETURN_IF_ERROR(g->inferShapes());
    return pr;
  };
  if (opt.optimize) {
    progress(0, 1, "optimize graph");
    RJ_ASSIGN_OR_RETURN(passes::PassReport pr, runPasses(opt.precision == Precision::kINT8, "graph optimizer"));
    report.passes = pr.toString();
    log(Severity::kVerbose, "graph optimizer: ", pr.nodes_before, " -> ", pr.nodes_after, " nodes\n", report.passes);
  }
  report.nodes_after_passes = g->nodes().size();

  {
    progress(0, 1, "precision");
    precision::LoweringEnv env;
    env.logger = opt.logger;
    env.supports = [devp](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out) {
      return devp->supports(n, in, out);
    };
    RJ_ASSIGN_OR_RETURN(precision::LoweringReport pr, precision::lowerPrecision(*g, input, opt, env));
    if (opt.precision != Precision::kFP32 || !opt.precision_overrides.empty()) report.precision = pr.toString();
    report.int8_layers = pr.int8_layers;
  }
  // INT8 builds ran the passes without FusedConv/PoolNhwc/FusedElementwise so the lowering could
  // see plain Conv + activation + Add patterns; the layers it left in FP16/FP32 (a stem
  // convolution with 3 input channels, its pooling, heads) get those fusions and the
  // channels-last layout now. The passes leave the INT8 ops alone.
  if (opt.optimize && opt.precision == Precision::kINT8 && !report.int8_layers.empty()) {
    progress(0, 1, "optimize higher-precision layers");
    RJ_ASSIGN_OR_RETURN(passes::PassReport pr, runPasses(false, "graph optimizer (after INT8 lowering)"));
    report.passes += "after INT8 lowering:\n" + pr.toString();
  }
  if (opt.fold_constants) {
    progress(0, 1, "fold constants");
    for (int round = 0; round < 4; ++round) {
      RJ_ASSIGN_OR_RETURN(size_t f, foldConstants(*g, log));
      report.nodes_folded += f;
      report.nodes_removed += removeDeadNodes(*g);
      RJ_RETURN_IF_ERROR(g->inferShapes());
      if (f == 0) break;
    }
  } else {
    report.nodes_removed += removeDeadNodes(*g);
  }
  RJ_RETURN_IF_ERROR(g->verify());

  // ---- placement ----
  RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g->topoOrder());
  std::set<const Value*> host_values;
  for (const auto& v : g->values())
    if (v->constant) host_values.insert(v.get());
  std::vector<Placement> placement(order.size(), Placement::kDevice);
  std::vector<std::string> unsupported;
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const Node& n = *order[pos];
    progress(pos, order.size(), "placement");
    bool shape_op = (n.op_type == "Shape" || n.op_type == "Size") && n.inputs.size() == 1 && n.inputs[0] &&
                    n.inputs[0]->type.shape.rank_known;
    bool host_inputs = !n.inputs.empty();
    for (const Value* v : n.inputs)
      if (v && !host_values.count(v)) host_inputs = false;
    bool small_int = true;
    for (const Value* v : n.outputs)
      if (v && (isFloatType(v->type.dtype) || !v->type.shape.rank_known || v->type.shape.rank() > 1)) small_int = false;
    if (shape_op || (host_inputs && small_int && !isRandomOp(n.op_type))) {
      placement[pos] = Placement::kHost;
      for (const Value* v : n.outputs)
        if (v) host_values.insert(v);
      ++report.host_nodes;
      continue;
    }
    std::vector<TensorType> in_t, out_t;
    for (const Value* v : n.inputs) in_t.push_back(v ? v->type : TensorType{});
    for (const Value* v : n.outputs) out_t.push_back(v ? v->type : TensorType{});
    Status s = dev->supports(n, in_t, out_t);
    if (s.ok()) continue;
    if (opt.allow_cpu_fallback && dev->kind() != DeviceKind::kCpu && cpu->supports(n, in_t, out_t).ok()) {
      placement[pos] = Placement::kCpuFallback;
      ++report.fallback_nodes;
      log(Severity::kWarning, "CPU fallback: ", s.message());
      continue;
    }
    unsupported.push_back(s.message());
  }
  if (!unsupported.empty()) {
    std::string msg = std::to_string(unsupported.size()) + " node(s) cannot run on " + deviceKindName(opt.device) +
                      (opt.device != DeviceKind::kCpu ? " (allow CPU fallback to run them on the host)" : "") + ":";
    for (size_t i = 0; i < unsupported.size() && i < 40; ++i) msg += "\n  " + unsupported[i];
    if (unsupported.size() > 40) msg += "\n  ... and " + std::to_string(unsupported.size() - 40) + " more";
    return Status(StatusCode::kUnsupported, msg);
  }
  // Aliases: the input lives in the arena (produced by a kernel or another alias) and the output
  // is not handed to the user.
  {
    std::set<const Value*> arena_values;
    for (size_t pos = 0; pos < order.size(); ++pos) {
      const Node& n = *order[pos];
      if (placement[pos] == Placement::kHost) continue;
      if (backend::isAliasOp(n.op_type) && n.inputs.size() >= 1 && n.inputs[0] && n.outputs.size() == 1 &&
          n.outputs[0] && !n.outputs[0]->is_graph_output && arena_values.count(n.inputs[0]) &&
          n.inputs[0]->type.dtype == n.outputs[0]->type.dtype)
        placement[pos] = Placement::kAlias;
      for (const Value* v : n.outputs)
        if (v && !v->is_graph_output) arena_values.insert(v);
    }
  }

  std::vector<const Node*> corder(order.begin(), order.end());
  RJ_ASSIGN_OR_RETURN(runtime::Program prog, runtime::Program::make(*g, corder, placement));
  auto dimsFor = [&](bool max) {
    std::vector<std::vector<int64_t>> dims;
    for (const Value* v : g->inputs) {
      const ShapeProfile* p = nullptr;
      for (const auto& q : profiles)
        if (q.input == v->name) p = &q;
      dims.push_back(p ? (max ? p->max : p->opt) : v->type.shape.concrete());
    }
    return dims;
  };
  RJ_ASSIGN_OR_RETURN(runtime::Resolved at_max, runtime::resolveShapes(prog, dimsFor(true)));
  RJ_ASSIGN_OR_RETURN(runtime::Resolved at_opt, runtime::resolveShapes(prog, dimsFor(false)));
  if (at_max.dynamic && opt.device != DeviceKind::kCpu)
    return makeError(StatusCode::kUnsupported, "the graph has data-dependent shapes, which ",
                     deviceKindName(opt.device), " engines do not support yet: ", at_max.dynamic_reason);

  // ---- tactics ----
  builder::TimingCache cache;
  if (!opt.timing_cache_path.empty()) {
    Status st = cache.load(opt.timing_cache_path);
    if (!st.ok()) log(Severity::kWarning, st.message(), " (starting an empty timing cache)");
  }
  std::vector<plan::NodeExec> exec(order.size());
  std::map<const Node*, uint32_t> node_index;
  for (size_t i = 0; i < g->nodes().size(); ++i) node_index[g->nodes()[i].get()] = static_cast<uint32_t>(i);
  size_t max_ws = 0;
  for (size_t pos = 0; pos < order.size(); ++pos) {
    const Node& n = *order[pos];
    progress(pos, order.size(), "tactics");
    plan::NodeExec& e = exec[pos];
    e.node_index = node_index.at(&n);
    e.placement = placement[pos];
    if (placement[pos] == Placement::kHost || placement[pos] == Placement::kAlias) {
      e.tactic.name = placement[pos] == Placement::kHost ? "host.reference" : "alias";
      ++report.tactics[e.tactic.name];
      continue;
    }
    backend::Backend& be = placement[pos] == Placement::kCpuFallback ? *cpu : *dev;
    std::vector<TensorType> in_t, out_t;
    backend::RunArgs args;
    for (const Value* v : n.inputs) {
      backend::TensorRef r;
      if (v) {
        const auto& s = at_opt.values[prog.indexOf(v)];
        in_t.push_back(TensorType{s.dtype, Shape::fromDims(s.dims)});
        r.dtype = s.dtype;
        r.dims = s.dims;
        r.host = s.host.get();
      } else {
        in_t.emplace_back();
      }
      args.inputs.push_back(r);
    }
    for (const Value* v : n.outputs) {
      backend::TensorRef r;
      if (v) {
        const auto& s = at_opt.values[prog.indexOf(v)];
        out_t.push_back(TensorType{s.dtype, Shape::fromDims(s.dims)});
        r.dtype = s.dtype;
        r.dims = s.dims;
      } else {
        out_t.emplace_back();
      }
      args.outputs.push_back(r);
    }
    std::vector<backend::Tactic> cands = be.tactics(n, in_t, out_t);
    if (cands.empty()) return makeError(StatusCode::kUnsupported, n.describe(), ": the backend offers no kernel");
    backend::Tactic chosen = cands[0];
    if (cands.size() > 1 && !at_opt.dynamic) {
      std::string key = be.device().name + "|" + n.op_type + "|" + typesKey(in_t) + "|" + attrsKey(n);
      if (const auto* hit = cache.find(key)) {
        for (const auto& c : cands)
          if (c.name == hit->tactic.name && c.id == hit->tactic.id) chosen = c, e.time_ms = hit->ms;
        ++report.timing_cache_hits;
      } else {
        // Time every candidate on device buffers of the opt shapes (weights are the real ones).
        std::vector<void*> bufs;
        auto freeAll = [&] {
          be.synchronize(nullptr).ok();
          for (void* p : bufs) be.release(p);
        };
        Status st;
        std::vector<const Tensor*> consts;
        for (size_t i = 0; i < n.inputs.size() && st.ok(); ++i) {
          const Value* v = n.inputs[i];
          consts.push_back(v && v->constant ? v->constant.get() : nullptr);
          if (!v) continue;
          auto p = be.allocate(std::max<size_t>(args.inputs[i].nbytes(), 1));
          if (!p.ok()) { st = p.status(); break; }
          bufs.push_back(*p);
          args.inputs[i].data = *p;
          const Tensor* host = args.inputs[i].host;
          if (host && host->nbytes()) st = be.copy(*p, host->raw(), host->nbytes(), backend::Backend::Copy::kHostToDevice, nullptr);
          else st = be.memset(*p, 0, args.inputs[i].nbytes(), nullptr);
        }
        for (size_t i = 0; i < n.outputs.size() && st.ok(); ++i) {
          if (!n.outputs[i]) continue;
          auto p = be.allocate(std::max<size_t>(args.outputs[i].nbytes(), 1));
          if (!p.ok()) { st = p.status(); break; }
          bufs.push_back(*p);
          args.outputs[i].data = *p;
        }
        double best = 1e30;
        for (const auto& c : cands) {
          if (!st.ok()) break;
          auto k = be.createKernel(n, c);
          if (!k.ok()) continue;
          if (!(*k)->prepare(consts).ok()) continue;
          size_t ws = (*k)->workspaceBytes(args);
          if (ws > opt.max_workspace_bytes) continue;
          void* wsp = nullptr;
          if (ws) {
            auto p = be.allocate(ws);
            if (!p.ok()) continue;
            wsp = *p;
          }
          backend::RunArgs a = args;
          a.workspace = wsp;
          a.workspace_bytes = ws;
          auto ms = be.timeMs([&](void* s) { a.stream = s; return (*k)->run(a); }, opt.timing_iterations, nullptr);
          if (wsp) { be.synchronize(nullptr).ok(); be.release(wsp); }
          log(Severity::kVerbose, n.describe(), ": ", c.name, "#", c.id, " ",
              ms.ok() ? std::to_string(*ms) + " ms" : ms.status().message());
          if (ms.ok() && *ms < best) best = *ms, chosen = c;
        }
        freeAll();
        RJ_RETURN_IF_ERROR(st);
        if (best < 1e30) {
          e.time_ms = best;
          cache.put(key, chosen, best);
        }
        ++report.tactics_timed;
      }
    }
    if (cands.size() > 1 && !at_opt.dynamic && !n.inputs.empty() && n.inputs[0])
      chosen.tuned_dims = at_opt.values[prog.indexOf(n.inputs[0])].dims;
    e.tactic = chosen;
    ++report.tactics[chosen.name];
    // Workspace at the max shapes.
    if (!at_max.dynamic) {
      auto k = be.createKernel(n, chosen);
      if (!k.ok()) return k.status();
      backend::RunArgs amax;
      for (const Value* v : n.inputs) {
        backend::TensorRef r;
        if (v) {
          const auto& s = at_max.values[prog.indexOf(v)];
          r.dtype = s.dtype, r.dims = s.dims, r.host = s.host.get();
        }
        amax.inputs.push_back(r);
      }
      for (const Value* v : n.outputs) {
        backend::TensorRef r;
        if (v) {
          const auto& s = at_max.values[prog.indexOf(v)];
          r.dtype = s.dtype, r.dims = s.dims;
        }
        amax.outputs.push_back(r);
      }
      max_ws = std::max(max_ws, (*k)->workspaceBytes(amax));
    }
  }
  if (!opt.timing_cache_path.empty() && report.tactics_timed > 0) {
    Status st = cache.save(opt.timing_cache_path);
    if (!st.ok()) log(Severity::kWarning, st.message());
  }

  // ---- memory plan at max shapes ----
  plan::PlanContents pc;
  pc.memory.value_offsets.assign(prog.values.size(), -1);
  if (!at_max.dynamic) {
    RJ_ASSIGN_OR_RETURN(runtime::ActivationLayout layout, runtime::layoutActivations(
        prog, at_max, [&](size_t pos, size_t i) {
          return placement[pos] == Placement::kDevice && dev->readsOnHost(*order[pos], i);
        }));
    RJ_RETURN_IF_ERROR(builder::verifyMemoryPlan(layout.requests, layout.plan));
    report.memory = layout.report;
    pc.memory.value_offsets = layout.offset;
  } else {
    log(Severity::kInfo, "data-dependent shapes (", at_max.dynamic_reason, "): memory is allocated per run");
  }
  report.memory.workspace_bytes = max_ws;
  pc.memory.report = report.memory;

  pc.meta.ramjet_version = RAMJET_VERSION;
  pc.meta.device = opt.device;
  pc.meta.precision = opt.precision;
  pc.meta.device_info = dev->device();
  pc.meta.profiles = profiles;
  pc.meta.allow_cpu_fallback = opt.allow_cpu_fallback;
  // No wall-clock time in the plan, so a rebuild with the same timing cache gives the same bytes;
  // SOURCE_DATE_EPOCH (the reproducible-builds convention) stamps one when wanted.
  if (const char* sde = std::getenv("SOURCE_DATE_EPOCH")) pc.meta.created_unix = std::atoll(sde);
  pc.exec = std::move(exec);
  report.nodes_out = order.size();
  report.weight_bytes = g->weightBytes();
  pc.graph = std::move(g);
  progress(1, 1, "encode");
  std::vector<uint8_t> bytes = plan::encode(pc);
  report.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  log(Severity::kInfo, "plan: ", bytes.size(), " bytes\n", report.toString());
  return Plan(std::move(bytes), std::move(report));
}


// Median GPU compute time (enqueue to synchronize, inputs already on the device) of one run
// at the profiles' opt shapes, or min shapes with at_min, on zero inputs, after warm-up.
Result<double> timeAtProfileShapes(const Plan& p, bool at_min, int iterations) {
  RJ_ASSIGN_OR_RETURN(auto engine, Engine::loadFromMemory(p.bytes().data(), p.bytes().size()));
  RJ_ASSIGN_OR_RETURN(auto ctx, engine->createContext());
  std::map<std::string, Tensor> feeds;
  for (const TensorInfo& t : engine->inputs()) {
    const ShapeProfile* prof = nullptr;
    for (const auto& q : engine->info().profiles)
      if (q.input == t.name) prof = &q;
    const std::vector<int64_t>* pd = prof ? (at_min ? &prof->min : &prof->opt) : nullptr;
    std::vector<int64_t> dims;
    for (size_t k = 0; k < t.shape.rank(); ++k)
      dims.push_back(t.shape.dims[k].known() ? t.shape.dims[k].value : pd && k < pd->size() ? (*pd)[k] : 1);
    feeds.emplace(t.name, Tensor(t.dtype, dims));
  }
  std::vector<double> ms;
  for (int i = 0; i < iterations + 3; ++i) {
    RJ_ASSIGN_OR_RETURN(auto out, ctx->infer(feeds));
    if (i >= 3) ms.push_back(ctx->lastTiming().compute_ms);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

bool profilesHaveRange(const std::vector<ShapeProfile>& ps) {
  for (const auto& p : ps)
    if (p.min != p.opt) return true;
  return false;
}

}  // namespace

namespace builder {

bool preferNhwc(double nchw_opt_ms, double nhwc_opt_ms, double nchw_min_ms, double nhwc_min_ms) {
  const double r_opt = nhwc_opt_ms / std::max(nchw_opt_ms, 1e-9), r_min = nhwc_min_ms / std::max(nchw_min_ms, 1e-9);
  return std::sqrt(r_opt * r_min) < 0.97 && std::max(r_opt, r_min) < 1.10;
}

bool nhwcLayoutDisabled(const std::vector<std::string>& disabled_passes, const char* env) {
  std::set<std::string> off(disabled_passes.begin(), disabled_passes.end());
  if (env)
    for (const auto& n : passes::parsePassList(env)) off.insert(n);
  return off.count("NhwcLayout") > 0 || off.count("all") > 0;
}

}  // namespace builder

namespace {

Result<Plan> buildChoosingLayout(const Graph& input, const BuildOptions& opt) {
  using L = BuildOptions::ConvLayout;
  L layout = opt.conv_layout;
  if (const char* e = std::getenv("RAMJET_NHWC")) layout = e[0] == '1' ? L::kNhwc : e[0] == '0' ? L::kNchw : layout;
  size_t convs = 0;
  for (const auto& n : input.nodes()) convs += n->op_type == "Conv";
  // INT8: the quantized convolutions are NHWC in any case; the layout applies to the layers left
  // in FP16 (stem, pooling, heads) between the int8 boundaries. An explicit nhwc layout applies to
  // INT8 CPU builds too (tests compare both layouts there).
  const bool int8 = opt.precision == Precision::kINT8;
  const bool eligible = (opt.device == DeviceKind::kCuda || (int8 && layout == L::kNhwc)) &&
                        (opt.precision == Precision::kFP16 || opt.precision == Precision::kFP8 || int8) && opt.optimize &&
                        !builder::nhwcLayoutDisabled(opt.disabled_passes, std::getenv("RAMJET_DISABLE_PASSES")) &&
                        convs > 0;
  if (!eligible || layout == L::kNchw) return buildOnce(input, opt, false);
  // INT8 auto: channels-last without timing both (that would calibrate twice); the layers
  // concerned are few and the int8 boundaries take the layout changes for free.
  if (layout == L::kNhwc || int8) return buildOnce(input, opt, true);
  // kAuto: a layout only pays off (or hurts) when convolutions carry the model.
  if (convs < 8) return buildOnce(input, opt, false);

  auto t0 = std::chrono::steady_clock::now();
  auto log = [&](Severity s, const std::string& m) {
    if (opt.logger) opt.logger->log(s, m);
  };
  std::ostringstream key;
  key << "layout|" << precision::graphHash(input) << "|" << precisionName(opt.precision);
  for (const auto& p : opt.profiles) {
    key << "|" << p.input;
    for (const auto* v : {&p.min, &p.opt, &p.max})
      for (int64_t d : *v) key << ":" << d;
  }
  for (const auto& o : opt.precision_overrides) key << "|" << o;
  for (const auto& d : opt.disabled_passes) key << "|-" << d;
  builder::TimingCache cache;
  if (!opt.timing_cache_path.empty()) (void)cache.load(opt.timing_cache_path);
  // The device name is part of every tactic key; take it from the backend.
  RJ_ASSIGN_OR_RETURN(std::unique_ptr<backend::Backend> dev, backend::createBackend(opt.device, opt.device_index));
  const std::string k = dev->device().name + "|" + key.str();
  dev.reset();
  if (const auto* hit = cache.find(k)) {
    const bool nhwc = hit->tactic.name == "nhwc";
    RJ_ASSIGN_OR_RETURN(Plan p, buildOnce(input, opt, nhwc));
    BuildReport r = p.report();
    r.layout = std::string(nhwc ? "NHWC" : "NCHW") + " (from the timing cache)";
    return Plan(p.bytes(), std::move(r));
  }
  RJ_ASSIGN_OR_RETURN(Plan nchw, buildOnce(input, opt, false));
  RJ_ASSIGN_OR_RETURN(Plan nhwc, buildOnce(input, opt, true));
  if (opt.progress) opt.progress(0, 1, "layout timing");
  // GPU compute time at the opt shapes and, for a range profile, at the min shapes too: a
  // layout that wins at batch 64 can lose 3x at batch 1 (depthwise / squeeze-excite nets).
  RJ_ASSIGN_OR_RETURN(double c_opt, timeAtProfileShapes(nchw, false, 20));
  RJ_ASSIGN_OR_RETURN(double h_opt, timeAtProfileShapes(nhwc, false, 20));
  double c_min = c_opt, h_min = h_opt;
  const bool range = profilesHaveRange(opt.profiles);
  if (range) {
    RJ_ASSIGN_OR_RETURN(c_min, timeAtProfileShapes(nchw, true, 20));
    RJ_ASSIGN_OR_RETURN(h_min, timeAtProfileShapes(nhwc, true, 20));
  }
  const bool pick_nhwc = builder::preferNhwc(c_opt, h_opt, c_min, h_min);
  char buf[256];
  if (range)
    std::snprintf(buf, sizeof buf,
                  "%s (GPU ms at opt shapes: NHWC %.3f, NCHW %.3f; at min shapes: NHWC %.3f, NCHW %.3f)",
                  pick_nhwc ? "NHWC" : "NCHW", h_opt, c_opt, h_min, c_min);
  else
    std::snprintf(buf, sizeof buf, "%s (GPU ms at the build shapes: NHWC %.3f, NCHW %.3f)", pick_nhwc ? "NHWC" : "NCHW",
                  h_opt, c_opt);
  log(Severity::kInfo, std::string("conv layout: ") + buf);
  if (!opt.timing_cache_path.empty()) {
    builder::TimingCache merged;  // the two builds saved their tactic timings: keep them
    (void)merged.load(opt.timing_cache_path);
    merged.put(k, backend::Tactic(pick_nhwc ? "nhwc" : "nchw", 0), pick_nhwc ? h_opt : c_opt);
    Status st = merged.save(opt.timing_cache_path);
    if (!st.ok()) log(Severity::kWarning, st.message());
  }
  Plan& chosen = pick_nhwc ? nhwc : nchw;
  BuildReport r = chosen.report();
  r.layout = buf;
  r.tactics_timed += (pick_nhwc ? nchw : nhwc).report().tactics_timed;
  r.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return Plan(chosen.bytes(), std::move(r));
}

}  // namespace

Result<Plan> build(const Graph& input, const BuildOptions& opt) {
  if (opt.extra_profiles.size() + 1 > plan::kMaxProfiles)
    return makeError(StatusCode::kInvalidArgument, opt.extra_profiles.size() + 1, " optimization profiles; at most ",
                     plan::kMaxProfiles);
  auto t0 = std::chrono::steady_clock::now();
  BuildOptions o = opt;
  std::string budget_report;
  if (opt.accuracy_budget != 0) {
    // INT8 with an accuracy budget: choose the layers that stay FP16 on the CPU backend first
    // (src/precision/accuracy_budget.h; once, whatever the number of profiles), then build with
    // those overrides and the activation ranges the search used (no second calibration).
    RJ_ASSIGN_OR_RETURN(precision::AccuracyBudgetResult ab, precision::searchAccuracyBudget(input, opt));
    budget_report = ab.toString();
    if (opt.logger) opt.logger->log(Severity::kInfo, budget_report);
    o.accuracy_budget = 0;
    for (auto& s : ab.overrides()) o.precision_overrides.push_back(std::move(s));
    o.activation_amax = ab.table.amax;
    o.calibrator = nullptr;
    o.calibration_cache_path.clear();  // already read or written by the search
  }
  o.extra_profiles.clear();
  std::vector<std::vector<uint8_t>> parts;
  BuildReport report;
  // One complete plan per optimization profile; several go into one container (plan_format.h).
  for (size_t i = 0; i <= opt.extra_profiles.size(); ++i) {
    o.profiles = i == 0 ? opt.profiles : opt.extra_profiles[i - 1];
    if (opt.logger && !opt.extra_profiles.empty())
      opt.logger->log(Severity::kInfo, "building optimization profile " + std::to_string(i));
    auto p = buildChoosingLayout(input, o);
    if (!p.ok())
      return opt.extra_profiles.empty() ? p.status() : p.status().withContext("optimization profile " + std::to_string(i));
    if (i == 0) report = p->report();
    parts.push_back(p->bytes());
  }
  report.optimization_profiles = parts.size();
  report.accuracy_budget = budget_report;
  if (parts.size() == 1 && budget_report.empty()) return Plan(std::move(parts[0]), std::move(report));
  report.build_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return Plan(parts.size() == 1 ? std::move(parts[0]) : plan::encodeMultiProfile(parts), std::move(report));
}

}  // namespace ramjet
