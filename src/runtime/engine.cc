// Engine (a loaded plan: graph, kernels, weights on the device) and ExecutionContext (input
// shapes, tensor addresses, one activation arena, per-signature layouts and recordings).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>

#include "backends/backend.h"
#include "ops/op_registry.h"
#include "plan/plan_format.h"
#include "ramjet/engine.h"
#include "runtime/multi_profile.h"
#include "runtime/program.h"

namespace ramjet {

const char* severityName(Severity s) {
  switch (s) {
    case Severity::kError: return "error";
    case Severity::kWarning: return "warning";
    case Severity::kInfo: return "info";
    case Severity::kVerbose: return "verbose";
  }
  return "?";
}

void StderrLogger::log(Severity s, const std::string& m) {
  if (static_cast<int>(s) > static_cast<int>(max_)) return;
  std::cerr << "[ramjet " << severityName(s) << "] " << m << "\n";
}

const char* deviceKindName(DeviceKind d) { return d == DeviceKind::kCuda ? "cuda" : "cpu"; }
const char* precisionName(Precision p) {
  switch (p) {
    case Precision::kFP16: return "fp16";
    case Precision::kBF16: return "bf16";
    case Precision::kINT8: return "int8";
    case Precision::kFP8: return "fp8";
    default: return "fp32";
  }
}

std::string PlanInfo::toString() const {
  std::ostringstream os;
  os << "plan format " << format_version << ", ramjet " << ramjet_version << ", device " << deviceKindName(device);
  if (device == DeviceKind::kCuda)
    os << " (" << gpu_name << ", sm_" << cc_major << cc_minor << ", CUDA runtime " << cuda_runtime_version
       << ", cuDNN " << cudnn_version << ", cuBLASLt " << cublas_version << ")";
  os << ", " << precisionName(precision) << "\n";
  os << "nodes " << num_nodes << ", weights " << weight_bytes << " bytes, file " << file_bytes << " bytes\n";
  for (const auto& p : profiles)
    os << "profile " << p.input << ": min " << dimsToString(p.min) << " opt " << dimsToString(p.opt) << " max "
       << dimsToString(p.max) << "\n";
  os << "arena " << memory.arena_bytes << " bytes (sum of tensors " << memory.sum_tensor_bytes << ", peak live "
     << memory.peak_live_bytes << "), workspace " << memory.workspace_bytes << "\ntactics:";
  for (const auto& [k, v] : tactics) os << " " << k << "x" << v;
  os << "\n";
  return os.str();
}

namespace {

using backend::Backend;
using backend::Placement;
using Copy = backend::Backend::Copy;

class EngineImpl;

class ContextImpl final : public ExecutionContext {
 public:
  explicit ContextImpl(EngineImpl* e);
  ~ContextImpl() override;
  Status setInputShape(const std::string& name, const std::vector<int64_t>& dims) override;
  Result<std::vector<int64_t>> tensorShape(const std::string& name) override;
  Status setTensorAddress(const std::string& name, void* address) override;
  Status enqueue(void* stream) override;
  Result<std::vector<Tensor>> infer(const std::map<std::string, Tensor>& inputs) override;
  Timing lastTiming() const override { return timing_; }
  Result<std::vector<KernelTiming>> profile(void* stream, int iterations) override;

 private:
  struct Instance {
    runtime::Resolved resolved;
    runtime::ActivationLayout layout;
    size_t workspace = 0;
    std::vector<backend::RunArgs> args;  // per position; rebuilt when addresses change
    std::vector<void*> args_for;         // bound addresses + arena the args were built with
    std::unique_ptr<backend::Recording> recording;
  };
  Result<Instance*> instance();
  Status buildArgs(Instance& inst);
  Result<std::vector<Tensor>> runDynamic(const std::map<std::string, Tensor>& inputs);
  Status stagedCpuRun(size_t pos, const backend::RunArgs& a, void* stream);

  EngineImpl* e_;
  std::vector<std::vector<int64_t>> input_dims_;
  std::vector<bool> input_set_;
  std::vector<void*> in_addr_, out_addr_;
  std::map<std::vector<int64_t>, std::unique_ptr<Instance>> instances_;
  void* arena_ = nullptr;
  size_t arena_bytes_ = 0;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  void* stream_ = nullptr;  // for infer()
  bool stream_made_ = false;
  std::vector<void*> io_bufs_;  // device buffers of infer(), per input then output
  std::vector<size_t> io_sizes_;
  Timing timing_;
  const Instance* last_upload_inst_ = nullptr;
  const void* last_upload_arena_ = nullptr;
  std::vector<double>* profile_ms_ = nullptr;  // per position while profile() runs
};

class EngineImpl final : public Engine {
 public:
  std::unique_ptr<Backend> dev;
  std::unique_ptr<Backend> cpu;
  std::shared_ptr<void> keepalive;
  plan::PlanContents pc;
  runtime::Program prog;
  std::vector<std::unique_ptr<backend::Kernel>> kernels;      // per position
  std::vector<std::unique_ptr<backend::Kernel>> cpu_kernels;  // per position: dynamic runs (CPU engines)
  std::vector<void*> const_ptr;                               // per value: constant on the device
  void* weights = nullptr;
  std::vector<TensorInfo> in_info, out_info;
  PlanInfo info_;
  bool has_fallback = false;
  Logger* logger = nullptr;

  ~EngineImpl() override {
    kernels.clear();
    if (weights) dev->release(weights);
  }

  Status init(const LoadOptions& opts) {
    logger = opts.logger;
    const plan::BuildMeta& m = pc.meta;
    RJ_ASSIGN_OR_RETURN(dev, backend::createBackend(m.device, opts.device_index));
    cpu = backend::createCpuBackend();
    if (m.device == DeviceKind::kCuda) {
      const backend::DeviceInfo& here = dev->device();
      const backend::DeviceInfo& built = m.device_info;
      if (here.name != built.name || here.cc_major != built.cc_major || here.cc_minor != built.cc_minor)
        return makeError(StatusCode::kInvalidPlan, "the plan was built for ", built.name, " (sm_", built.cc_major,
                         built.cc_minor, ") but this GPU is ", here.name, " (sm_", here.cc_major, here.cc_minor,
                         "): rebuild the plan on this GPU");
      if (here.cudnn_version / 10000 != built.cudnn_version / 10000 ||
          here.cublas_version / 10000 != built.cublas_version / 10000)
        return makeError(StatusCode::kInvalidPlan, "the plan was built with cuDNN ", built.cudnn_version,
                         " / cuBLASLt ", built.cublas_version, " but this process has cuDNN ", here.cudnn_version,
                         " / cuBLASLt ", here.cublas_version, ": rebuild the plan");
      if (here.cuda_runtime_version != built.cuda_runtime_version || here.cudnn_version != built.cudnn_version)
        log(Severity::kWarning, "plan built with CUDA runtime " + std::to_string(built.cuda_runtime_version) +
                                    ", cuDNN " + std::to_string(built.cudnn_version) + "; running with " +
                                    std::to_string(here.cuda_runtime_version) + ", " +
                                    std::to_string(here.cudnn_version));
    }
    if (m.ramjet_version != RAMJET_VERSION)
      log(Severity::kWarning, "plan written by ramjet " + m.ramjet_version + ", loaded by " + RAMJET_VERSION);

    const Graph& g = *pc.graph;
    std::vector<const Node*> order;
    std::vector<Placement> placement;
    for (const auto& ex : pc.exec) {
      order.push_back(g.nodes()[ex.node_index].get());
      placement.push_back(ex.placement);
    }
    RJ_ASSIGN_OR_RETURN(prog, runtime::Program::make(g, order, placement));
    for (size_t pos = 0; pos < order.size(); ++pos) {
      const Node& n = *order[pos];
      if (placement[pos] == Placement::kAlias) {
        if (!backend::isAliasOp(n.op_type) || n.inputs.empty() || !n.inputs[0] || n.outputs.size() != 1 || !n.outputs[0])
          return makeError(StatusCode::kInvalidPlan, n.describe(), " cannot be an alias");
      }
      if (placement[pos] == Placement::kHost) {
        bool shape_op = n.op_type == "Shape" || n.op_type == "Size";
        if (shape_op && (n.inputs.size() != 1 || !n.inputs[0] || n.outputs.size() != 1 || !n.outputs[0]))
          return makeError(StatusCode::kInvalidPlan, n.describe(), " has the wrong arity");
      }
    }
    // Pointers of constants on the device: one upload into one buffer (CPU: used in place).
    const_ptr.assign(prog.values.size(), nullptr);
    if (m.device == DeviceKind::kCpu) {
      for (size_t i = 0; i < prog.values.size(); ++i)
        if (prog.values[i]->constant) const_ptr[i] = prog.values[i]->constant->raw();
    } else {
      std::vector<size_t> off(prog.values.size(), 0);
      size_t total = 0;
      for (size_t pos = 0; pos < order.size(); ++pos) {
        if (placement[pos] != Placement::kDevice) continue;
        for (const Value* v : order[pos]->inputs) {
          if (!v || !v->constant) continue;
          int i = prog.indexOf(v);
          if (const_ptr[i]) continue;
          const_ptr[i] = reinterpret_cast<void*>(1);  // mark
          off[i] = total;
          total += (v->constant->nbytes() + 255) / 256 * 256;
        }
      }
      if (total) {
        RJ_ASSIGN_OR_RETURN(weights, dev->allocate(total));
        for (size_t i = 0; i < prog.values.size(); ++i) {
          if (!const_ptr[i]) continue;
          const Tensor& t = *prog.values[i]->constant;
          const_ptr[i] = static_cast<uint8_t*>(weights) + off[i];
          if (t.nbytes()) RJ_RETURN_IF_ERROR(dev->copy(const_ptr[i], t.raw(), t.nbytes(), Copy::kHostToDevice, nullptr));
        }
        RJ_RETURN_IF_ERROR(dev->synchronize(nullptr));
      }
    }
    kernels.resize(order.size());
    for (size_t pos = 0; pos < order.size(); ++pos) {
      const Node& n = *order[pos];
      if (placement[pos] != Placement::kDevice && placement[pos] != Placement::kCpuFallback) continue;
      Backend& be = placement[pos] == Placement::kDevice ? *dev : *cpu;
      has_fallback |= placement[pos] == Placement::kCpuFallback;
      RJ_ASSIGN_OR_RETURN(kernels[pos], be.createKernel(n, pc.exec[pos].tactic));
      std::vector<const Tensor*> consts;
      for (const Value* v : n.inputs) consts.push_back(v && v->constant ? v->constant.get() : nullptr);
      Status st = kernels[pos]->prepare(consts);
      if (!st.ok()) return st.withContext("preparing " + n.describe());
    }
    if (m.device == DeviceKind::kCpu) {
      cpu_kernels.resize(order.size());
      for (size_t pos = 0; pos < order.size(); ++pos) {
        if (cpu->supports(*order[pos], {}, {}).ok()) {
          RJ_ASSIGN_OR_RETURN(cpu_kernels[pos], cpu->createKernel(*order[pos], backend::Tactic{"cpu.reference", 0}));
        }
      }
    }
    for (const Value* v : g.inputs) in_info.push_back(TensorInfo{v->name, v->type.dtype, v->type.shape});
    for (const Value* v : g.outputs) out_info.push_back(TensorInfo{v->name, v->type.dtype, v->type.shape});

    info_.format_version = plan::kFormatVersion;
    info_.ramjet_version = m.ramjet_version;
    info_.device = m.device;
    info_.precision = m.precision;
    info_.gpu_name = m.device == DeviceKind::kCuda ? m.device_info.name : "";
    info_.cc_major = m.device_info.cc_major;
    info_.cc_minor = m.device_info.cc_minor;
    info_.cuda_runtime_version = m.device_info.cuda_runtime_version;
    info_.cudnn_version = m.device_info.cudnn_version;
    info_.cublas_version = m.device_info.cublas_version;
    info_.profiles = m.profiles;
    info_.num_nodes = order.size();
    info_.weight_bytes = pc.weight_bytes;
    info_.file_bytes = pc.file_bytes;
    info_.memory = pc.memory.report;
    for (const auto& ex : pc.exec) ++info_.tactics[ex.tactic.name];
    return Status::Ok();
  }

  void log(Severity s, const std::string& msg) const {
    if (logger) logger->log(s, msg);
  }

  Result<std::unique_ptr<ExecutionContext>> createContext() override {
    return std::unique_ptr<ExecutionContext>(new ContextImpl(this));
  }
  const std::vector<TensorInfo>& inputs() const override { return in_info; }
  const std::vector<TensorInfo>& outputs() const override { return out_info; }
  const PlanInfo& info() const override { return info_; }
  Result<void*> allocate(size_t bytes) override { return dev->allocate(bytes); }
  void release(void* p) override { dev->release(p); }
  Result<void*> allocateHost(size_t bytes) override { return dev->allocateHost(bytes); }
  void releaseHost(void* p) override { dev->releaseHost(p); }
  Status copyToDevice(void* dst, const void* src, size_t bytes, void* stream) override {
    return dev->copy(dst, src, bytes, Copy::kHostToDevice, stream);
  }
  Status copyToHost(void* dst, const void* src, size_t bytes, void* stream) override {
    return dev->copy(dst, src, bytes, Copy::kDeviceToHost, stream);
  }
  Status synchronize(void* stream) override { return dev->synchronize(stream); }
  Result<void*> createStream() override { return dev->createStream(); }
  void destroyStream(void* stream) override { dev->destroyStream(stream); }

  int inputIndex(const std::string& name) const {
    for (size_t i = 0; i < in_info.size(); ++i)
      if (in_info[i].name == name) return static_cast<int>(i);
    return -1;
  }
  int outputIndex(const std::string& name) const {
    for (size_t i = 0; i < out_info.size(); ++i)
      if (out_info[i].name == name) return static_cast<int>(i);
    return -1;
  }
  std::string ioNames() const {
    std::string s = "inputs:";
    for (const auto& t : in_info) s += " " + t.name;
    s += "; outputs:";
    for (const auto& t : out_info) s += " " + t.name;
    return s;
  }
};

ContextImpl::ContextImpl(EngineImpl* e) : e_(e) {
  const Graph& g = *e->pc.graph;
  input_dims_.resize(g.inputs.size());
  input_set_.assign(g.inputs.size(), false);
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const Shape& s = g.inputs[i]->type.shape;
    if (s.rank_known && s.fullyKnown()) {
      input_dims_[i] = s.concrete();
      input_set_[i] = true;
    }
    for (const auto& p : e->pc.meta.profiles)
      if (p.input == g.inputs[i]->name) {
        input_dims_[i] = p.opt;
        input_set_[i] = true;
      }
  }
  in_addr_.assign(g.inputs.size(), nullptr);
  out_addr_.assign(g.outputs.size(), nullptr);
}

ContextImpl::~ContextImpl() {
  Backend& be = *e_->dev;
  if (stream_) be.synchronize(stream_).ok();
  else be.synchronize(nullptr).ok();
  instances_.clear();  // recordings first
  if (arena_) be.release(arena_);
  if (workspace_) be.release(workspace_);
  for (void* p : io_bufs_)
    if (p) be.release(p);
  if (stream_made_) be.destroyStream(stream_);
}

Status ContextImpl::setInputShape(const std::string& name, const std::vector<int64_t>& dims) {
  int i = e_->inputIndex(name);
  if (i < 0) return makeError(StatusCode::kNotFound, "setInputShape: the engine has no input '", name, "' (",
                              e_->ioNames(), ")");
  const Value* v = e_->pc.graph->inputs[i];
  const Shape& s = v->type.shape;
  if (s.rank_known && s.rank() != dims.size())
    return makeError(StatusCode::kInvalidArgument, "input '", name, "' has shape ", s.toString(), ", got ",
                     dimsToString(dims));
  for (size_t k = 0; k < dims.size(); ++k)
    if (dims[k] < 0) return makeError(StatusCode::kInvalidArgument, "input '", name, "': negative dim in ", dimsToString(dims));
  for (const auto& p : e_->pc.meta.profiles) {
    if (p.input != name) continue;
    if (p.max.size() != dims.size())
      return makeError(StatusCode::kInvalidArgument, "input '", name, "': ", dimsToString(dims),
                       " does not have the profile's rank ", p.max.size());
    for (size_t k = 0; k < dims.size(); ++k)
      if (dims[k] < p.min[k] || dims[k] > p.max[k])
        return makeError(StatusCode::kInvalidArgument, "input '", name, "': ", dimsToString(dims),
                         " is outside the plan's profile (dim ", k, " must be in ", p.min[k], "..", p.max[k],
                         "; min ", dimsToString(p.min), ", max ", dimsToString(p.max), "): rebuild with a wider profile");
  }
  if (s.rank_known)
    for (size_t k = 0; k < dims.size(); ++k)
      if (s.dims[k].known() && s.dims[k].value != dims[k])
        return makeError(StatusCode::kInvalidArgument, "input '", name, "' has shape ", s.toString(), ", got ",
                         dimsToString(dims), " (dim ", k, " is fixed)");
  input_dims_[i] = dims;
  input_set_[i] = true;
  return Status::Ok();
}

Result<ContextImpl::Instance*> ContextImpl::instance() {
  std::vector<int64_t> key;
  for (size_t i = 0; i < input_dims_.size(); ++i) {
    if (!input_set_[i])
      return makeError(StatusCode::kInvalidArgument, "input '", e_->pc.graph->inputs[i]->name,
                       "' has symbolic dims: call setInputShape first");
    key.push_back(static_cast<int64_t>(input_dims_[i].size()));
    key.insert(key.end(), input_dims_[i].begin(), input_dims_[i].end());
  }
  auto it = instances_.find(key);
  if (it != instances_.end()) return it->second.get();
  auto inst = std::make_unique<Instance>();
  RJ_ASSIGN_OR_RETURN(inst->resolved, runtime::resolveShapes(e_->prog, input_dims_));
  if (!inst->resolved.dynamic) {
    RJ_ASSIGN_OR_RETURN(inst->layout, runtime::layoutActivations(
        e_->prog, inst->resolved, [this](size_t pos, size_t i) {
          return e_->prog.placement[pos] == Placement::kDevice && e_->dev->readsOnHost(*e_->prog.order[pos], i);
        }));
    // Workspace for these shapes.
    RJ_RETURN_IF_ERROR(buildArgs(*inst));
    for (size_t pos = 0; pos < e_->prog.order.size(); ++pos)
      if (e_->kernels[pos]) inst->workspace = std::max(inst->workspace, e_->kernels[pos]->workspaceBytes(inst->args[pos]));
    Backend& be = *e_->dev;
    bool grow_arena = inst->layout.report.arena_bytes > arena_bytes_;
    bool grow_ws = inst->workspace > workspace_bytes_;
    if (grow_arena || grow_ws) {
      // New memory changes addresses baked into every recording: drop them (outside capture).
      RJ_RETURN_IF_ERROR(be.synchronize(stream_));
      RJ_RETURN_IF_ERROR(be.synchronize(nullptr));
      for (auto& [k, other] : instances_) {
        other->recording.reset();
        other->args_for.clear();
      }
      if (grow_arena) {
        if (arena_) be.release(arena_);
        arena_ = nullptr;
        arena_bytes_ = 0;
        size_t want = std::max(inst->layout.report.arena_bytes, e_->pc.memory.report.arena_bytes);
        auto a = be.allocate(want);
        if (!a.ok()) {
          // The old arena is gone: drop the instances built on it, so a later call (when memory
          // is back) re-plans instead of running on a null arena.
          instances_.clear();
          last_upload_inst_ = nullptr;
          return a.status();
        }
        arena_ = *a;
        arena_bytes_ = want;
      }
      if (grow_ws) {
        if (workspace_) be.release(workspace_);
        workspace_ = nullptr;
        workspace_bytes_ = 0;
        auto w = be.allocate(inst->workspace);
        if (!w.ok()) {
          instances_.clear();
          last_upload_inst_ = nullptr;
          return w.status();
        }
        workspace_ = *w;
        workspace_bytes_ = inst->workspace;
      }
    }
    inst->args_for.clear();
  }
  Instance* raw = inst.get();
  instances_[key] = std::move(inst);
  return raw;
}

Status ContextImpl::buildArgs(Instance& inst) {
  const runtime::Program& p = e_->prog;
  const Graph& g = *p.graph;
  std::vector<void*> addr(p.values.size(), nullptr);
  for (size_t i = 0; i < g.inputs.size(); ++i) addr[p.indexOf(g.inputs[i])] = in_addr_[i];
  for (size_t i = 0; i < g.outputs.size(); ++i)
    if (!g.outputs[i]->is_graph_input && !g.outputs[i]->constant) addr[p.indexOf(g.outputs[i])] = out_addr_[i];
  for (size_t i = 0; i < p.values.size(); ++i) {
    if (e_->const_ptr[i]) addr[i] = e_->const_ptr[i];
    if (inst.layout.offset.size() > i && inst.layout.offset[i] >= 0 && arena_)
      addr[i] = static_cast<uint8_t*>(arena_) + inst.layout.offset[i];
  }
  inst.args.assign(p.order.size(), backend::RunArgs{});
  for (size_t pos = 0; pos < p.order.size(); ++pos) {
    const Node& n = *p.order[pos];
    backend::RunArgs& a = inst.args[pos];
    for (const Value* v : n.inputs) {
      backend::TensorRef r;
      if (v) {
        int i = p.indexOf(v);
        const runtime::ValueSlot& s = inst.resolved.values[i];
        r.data = addr[i];
        r.dtype = s.dtype;
        r.dims = s.dims;
        r.host = s.host.get();
      }
      a.inputs.push_back(std::move(r));
    }
    for (const Value* v : n.outputs) {
      backend::TensorRef r;
      if (v) {
        int i = p.indexOf(v);
        const runtime::ValueSlot& s = inst.resolved.values[i];
        r.data = addr[i];
        r.dtype = s.dtype;
        r.dims = s.dims;
      }
      a.outputs.push_back(std::move(r));
    }
    a.workspace = workspace_;
    a.workspace_bytes = workspace_bytes_;
  }
  return Status::Ok();
}

Status ContextImpl::setTensorAddress(const std::string& name, void* address) {
  int i = e_->inputIndex(name);
  if (i >= 0) {
    in_addr_[i] = address;
    return Status::Ok();
  }
  int o = e_->outputIndex(name);
  if (o >= 0) {
    out_addr_[o] = address;
    return Status::Ok();
  }
  return makeError(StatusCode::kNotFound, "setTensorAddress: the engine has no tensor '", name, "' (", e_->ioNames(), ")");
}

Result<std::vector<int64_t>> ContextImpl::tensorShape(const std::string& name) {
  int i = e_->inputIndex(name);
  if (i >= 0 && input_set_[i]) return input_dims_[i];
  RJ_ASSIGN_OR_RETURN(Instance * inst, instance());
  const Value* v = e_->pc.graph->findValue(name);
  if (!v || (!v->is_graph_input && !v->is_graph_output))
    return makeError(StatusCode::kNotFound, "the engine has no tensor '", name, "' (", e_->ioNames(), ")");
  const runtime::ValueSlot& s = inst->resolved.values[e_->prog.indexOf(v)];
  if (!s.known)
    return makeError(StatusCode::kUnsupported, "the shape of '", name, "' depends on the data (",
                     inst->resolved.dynamic_reason, "): use infer()");
  return s.dims;
}

Status ContextImpl::stagedCpuRun(size_t pos, const backend::RunArgs& a, void* stream) {
  // A CPU-fallback node inside a device engine: copy its inputs to the host, run, copy back.
  Backend& be = *e_->dev;
  backend::RunArgs h = a;
  std::vector<std::vector<uint8_t>> bufs(a.inputs.size() + a.outputs.size());
  for (size_t i = 0; i < a.inputs.size(); ++i) {
    if (!a.inputs[i].data || a.inputs[i].host) continue;
    bufs[i].resize(a.inputs[i].nbytes() + 1);
    RJ_RETURN_IF_ERROR(be.copy(bufs[i].data(), a.inputs[i].data, a.inputs[i].nbytes(), Copy::kDeviceToHost, stream));
    h.inputs[i].data = bufs[i].data();
  }
  for (size_t o = 0; o < a.outputs.size(); ++o) {
    if (!a.outputs[o].data) continue;
    auto& b = bufs[a.inputs.size() + o];
    b.resize(a.outputs[o].nbytes() + 1);
    h.outputs[o].data = b.data();
  }
  RJ_RETURN_IF_ERROR(be.synchronize(stream));
  h.stream = nullptr;
  h.workspace = nullptr;
  h.workspace_bytes = 0;
  RJ_RETURN_IF_ERROR(e_->kernels[pos]->run(h));
  for (size_t o = 0; o < a.outputs.size(); ++o)
    if (a.outputs[o].data)
      RJ_RETURN_IF_ERROR(be.copy(a.outputs[o].data, h.outputs[o].data, a.outputs[o].nbytes(), Copy::kHostToDevice, stream));
  return be.synchronize(stream);
}

Status ContextImpl::enqueue(void* stream) {
  RJ_ASSIGN_OR_RETURN(Instance * inst, instance());
  if (inst->resolved.dynamic)
    return makeError(StatusCode::kUnsupported, "this signature has data-dependent shapes (",
                     inst->resolved.dynamic_reason, "): use infer(), which sizes the outputs after running");
  const Graph& g = *e_->pc.graph;
  const runtime::Program& p = e_->prog;
  for (size_t i = 0; i < g.inputs.size(); ++i)
    if (!in_addr_[i] && numElements(input_dims_[i]) > 0)
      return makeError(StatusCode::kInvalidArgument, "input '", g.inputs[i]->name, "' has no address: call setTensorAddress");
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    const auto& s = inst->resolved.values[p.indexOf(g.outputs[o])];
    if (!out_addr_[o] && numElements(s.dims) > 0)
      return makeError(StatusCode::kInvalidArgument, "output '", g.outputs[o]->name, "' has no address: call setTensorAddress");
  }
  std::vector<void*> snapshot = in_addr_;
  snapshot.insert(snapshot.end(), out_addr_.begin(), out_addr_.end());
  snapshot.push_back(arena_);
  snapshot.push_back(workspace_);
  bool changed = snapshot != inst->args_for;
  if (changed) {
    RJ_RETURN_IF_ERROR(buildArgs(*inst));
    inst->args_for = snapshot;
  }
  Backend& be = *e_->dev;
  // Host values that device kernels read (shape arithmetic results): uploaded outside capture.
  bool need_upload = last_upload_inst_ != inst || last_upload_arena_ != arena_;
  last_upload_inst_ = inst;
  last_upload_arena_ = arena_;
  for (size_t i = 0; i < p.values.size() && need_upload; ++i) {
    if (!inst->layout.upload[i]) continue;
    const Tensor& t = *inst->resolved.values[i].host;
    if (t.nbytes())
      RJ_RETURN_IF_ERROR(be.copy(static_cast<uint8_t*>(arena_) + inst->layout.offset[i], t.raw(), t.nbytes(),
                                 Copy::kHostToDevice, stream));
  }
  auto launches = [&](void* s) -> Status {
    for (size_t pos = 0; pos < p.order.size(); ++pos) {
      Placement pl = p.placement[pos];
      if (pl == Placement::kHost || pl == Placement::kAlias) continue;
      backend::RunArgs& a = inst->args[pos];
      a.stream = s;
      // The kernel runs on the stream it is handed: the profiler's timeMs captures it into a
      // CUDA graph on a stream of its own (launching on `s` instead timed an empty graph).
      auto run = [&](void* x) -> Status {
        a.stream = x;
        return pl == Placement::kCpuFallback && e_->pc.meta.device != DeviceKind::kCpu ? stagedCpuRun(pos, a, x)
                                                                                        : e_->kernels[pos]->run(a);
      };
      Status st;
      if (profile_ms_) {
        // One replay between two events; timeMs' warm-up call is skipped (profile() ran the
        // whole program once already).
        bool warm = true;
        auto t = be.timeMs([&](void* x) -> Status {
          if (warm) return warm = false, Status::Ok();
          return run(x);
        }, 1, s);
        st = t.status();
        if (t.ok()) (*profile_ms_)[pos] = *t;
      } else {
        st = run(s);
      }
      if (!st.ok()) return st.withContext("running " + p.order[pos]->describe());
    }
    return Status::Ok();
  };
  if (e_->has_fallback || profile_ms_) {
    RJ_RETURN_IF_ERROR(launches(stream));
  } else {
    RJ_RETURN_IF_ERROR(be.execute(&inst->recording, changed, launches, stream));
  }
  // Outputs no kernel writes: constants, graph inputs passed through, host values.
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    const Value* v = g.outputs[o];
    int i = p.indexOf(v);
    const runtime::ValueSlot& s = inst->resolved.values[i];
    size_t nb = static_cast<size_t>(numElements(s.dims)) * dataTypeSize(s.dtype);
    if (!nb) continue;
    if (v->is_graph_input) {
      for (size_t k = 0; k < g.inputs.size(); ++k)
        if (g.inputs[k] == v) RJ_RETURN_IF_ERROR(be.copy(out_addr_[o], in_addr_[k], nb, Copy::kDeviceToDevice, stream));
    } else if (e_->const_ptr[i] && e_->pc.meta.device != DeviceKind::kCpu) {
      RJ_RETURN_IF_ERROR(be.copy(out_addr_[o], e_->const_ptr[i], nb, Copy::kDeviceToDevice, stream));
    } else if (s.host) {
      bool produced_on_host = v->constant != nullptr;
      for (size_t pos = 0; pos < p.order.size(); ++pos)
        if (p.placement[pos] == Placement::kHost)
          for (const Value* out : p.order[pos]->outputs) produced_on_host |= out == v;
      if (produced_on_host) RJ_RETURN_IF_ERROR(be.copy(out_addr_[o], s.host->raw(), nb, Copy::kHostToDevice, stream));
    }
  }
  return Status::Ok();
}

Result<std::vector<ExecutionContext::KernelTiming>> ContextImpl::profile(void* stream, int iterations) {
  if (iterations < 1) return makeError(StatusCode::kInvalidArgument, "profile: iterations must be >= 1, got ", iterations);
  Backend& be = *e_->dev;
  RJ_RETURN_IF_ERROR(enqueue(stream));  // untimed: lazy library state, uploads
  RJ_RETURN_IF_ERROR(be.synchronize(stream));
  const runtime::Program& p = e_->prog;
  std::vector<std::vector<double>> samples(p.order.size());
  std::vector<double> ms(p.order.size());
  for (int it = 0; it < iterations; ++it) {
    std::fill(ms.begin(), ms.end(), -1.0);
    profile_ms_ = &ms;
    Status st = enqueue(stream);
    profile_ms_ = nullptr;
    RJ_RETURN_IF_ERROR(st);
    for (size_t pos = 0; pos < ms.size(); ++pos)
      if (ms[pos] >= 0) samples[pos].push_back(ms[pos]);
  }
  RJ_RETURN_IF_ERROR(be.synchronize(stream));
  std::vector<KernelTiming> out;
  for (size_t pos = 0; pos < p.order.size(); ++pos) {
    std::vector<double>& v = samples[pos];
    if (v.empty()) continue;
    std::sort(v.begin(), v.end());
    const Node& n = *p.order[pos];
    KernelTiming k;
    k.position = pos;
    k.node = n.name;
    k.op_type = n.op_type;
    k.tactic = e_->pc.exec[pos].tactic.name + "#" + std::to_string(e_->pc.exec[pos].tactic.id);
    k.placement = p.placement[pos] == Placement::kCpuFallback ? "cpu-fallback" : "device";
    auto f = n.attrs.find("fused_from");
    if (f != n.attrs.end()) k.fused_from = f->second.strings;
    k.min_ms = v.front();
    k.median_ms = v[v.size() / 2];
    double sum = 0;
    for (double x : v) sum += x;
    k.mean_ms = sum / v.size();
    out.push_back(std::move(k));
  }
  return out;
}

Result<std::vector<Tensor>> ContextImpl::runDynamic(const std::map<std::string, Tensor>& inputs) {
  // Data-dependent shapes (CPU engines): node by node on owned host tensors, shapes inferred
  // from the actual values, as the reference interpreter does.
  const runtime::Program& p = e_->prog;
  const Graph& g = *p.graph;
  std::vector<std::shared_ptr<const Tensor>> vals(p.values.size());
  for (size_t i = 0; i < p.values.size(); ++i)
    if (p.values[i]->constant) vals[i] = std::shared_ptr<const Tensor>(p.values[i]->constant, p.values[i]->constant.get());
  for (const Value* v : g.inputs) vals[p.indexOf(v)] = std::make_shared<Tensor>(inputs.at(v->name));
  for (size_t pos = 0; pos < p.order.size(); ++pos) {
    const Node& n = *p.order[pos];
    const ops::OpSchema* schema = ops::findOp(n.op_type);
    std::vector<TensorType> in_t;
    std::vector<const Tensor*> in_v;
    backend::RunArgs a;
    for (const Value* v : n.inputs) {
      backend::TensorRef r;
      if (v) {
        const Tensor* t = vals[p.indexOf(v)].get();
        if (!t) return makeError(StatusCode::kInternal, n.describe(), ": input '", v->name, "' has no value");
        in_t.push_back(t->type());
        in_v.push_back(t);
        r.dtype = t->dtype();
        r.dims = t->dims();
        r.host = t;
      } else {
        in_t.emplace_back();
        in_v.push_back(nullptr);
      }
      a.inputs.push_back(r);
    }
    ops::InferContext ictx(n, in_t, in_v);
    Status st = schema->infer(ictx);
    if (!st.ok()) return Status(StatusCode::kInvalidArgument, st.message());
    std::vector<Tensor> outs(n.outputs.size());
    for (size_t o = 0; o < n.outputs.size(); ++o) {
      backend::TensorRef r;
      const TensorType& t = ictx.outputs()[o];
      if (n.outputs[o] && t.dtype != DataType::kUndefined && t.shape.fullyKnown()) {
        outs[o] = Tensor(t.dtype, t.shape.concrete());
        r.data = outs[o].raw();
        r.dtype = t.dtype;
        r.dims = outs[o].dims();
        if (!r.data) r.data = &outs;  // empty tensor: any non-null address
      }
      a.outputs.push_back(r);
    }
    std::vector<Tensor> produced;
    a.produced = &produced;
    if (!e_->cpu_kernels[pos]) return makeError(StatusCode::kUnsupported, n.describe(), ": no CPU kernel");
    st = e_->cpu_kernels[pos]->run(a);
    if (!st.ok()) return st.withContext("running " + n.describe());
    for (size_t o = 0; o < n.outputs.size(); ++o) {
      if (!n.outputs[o]) continue;
      if (!a.outputs[o].data) {
        if (o >= produced.size() || !produced[o].defined())
          return makeError(StatusCode::kInternal, n.describe(), ": output ", o, " was not produced");
        outs[o] = produced[o];
      }
      vals[p.indexOf(n.outputs[o])] = std::make_shared<Tensor>(std::move(outs[o]));
    }
  }
  std::vector<Tensor> result;
  for (const Value* v : g.outputs) result.push_back(vals[p.indexOf(v)]->clone());
  return result;
}

Result<std::vector<Tensor>> ContextImpl::infer(const std::map<std::string, Tensor>& inputs) {
  const Graph& g = *e_->pc.graph;
  for (const auto& [name, t] : inputs)
    if (e_->inputIndex(name) < 0)
      return makeError(StatusCode::kNotFound, "the engine has no input '", name, "' (", e_->ioNames(), ")");
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const Value* v = g.inputs[i];
    auto it = inputs.find(v->name);
    if (it == inputs.end())
      return makeError(StatusCode::kInvalidArgument, "missing input '", v->name, "' (", v->type.toString(), ")");
    if (it->second.dtype() != v->type.dtype)
      return makeError(StatusCode::kInvalidArgument, "input '", v->name, "' must be ", dataTypeName(v->type.dtype),
                       ", got ", dataTypeName(it->second.dtype()));
    RJ_RETURN_IF_ERROR(setInputShape(v->name, it->second.dims()));
  }
  RJ_ASSIGN_OR_RETURN(Instance * inst, instance());
  timing_ = Timing{};
  if (inst->resolved.dynamic) {
    if (e_->pc.meta.device != DeviceKind::kCpu)
      return makeError(StatusCode::kUnsupported, "data-dependent shapes on ", deviceKindName(e_->pc.meta.device));
    auto t0 = std::chrono::steady_clock::now();
    auto r = runDynamic(inputs);
    timing_.compute_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return r;
  }
  std::vector<Tensor> outs;
  for (const Value* v : g.outputs) {
    const runtime::ValueSlot& s = inst->resolved.values[e_->prog.indexOf(v)];
    outs.emplace_back(s.dtype, s.dims);
  }
  using clock = std::chrono::steady_clock;
  auto ms = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  if (e_->pc.meta.device == DeviceKind::kCpu) {
    for (size_t i = 0; i < g.inputs.size(); ++i)
      in_addr_[i] = const_cast<void*>(inputs.at(g.inputs[i]->name).raw());
    for (size_t o = 0; o < g.outputs.size(); ++o) out_addr_[o] = outs[o].raw();
    auto t0 = clock::now();
    RJ_RETURN_IF_ERROR(enqueue(nullptr));
    timing_.compute_ms = ms(t0, clock::now());
    return outs;
  }
  Backend& be = *e_->dev;
  if (!stream_made_) {
    RJ_ASSIGN_OR_RETURN(stream_, be.createStream());
    stream_made_ = true;
  }
  size_t nio = g.inputs.size() + g.outputs.size();
  io_bufs_.resize(nio, nullptr);
  io_sizes_.resize(nio, 0);
  auto buffer = [&](size_t k, size_t bytes) -> Result<void*> {
    if (io_sizes_[k] < bytes || !io_bufs_[k]) {
      if (io_bufs_[k]) {
        RJ_RETURN_IF_ERROR(be.synchronize(stream_));
        be.release(io_bufs_[k]);
        io_bufs_[k] = nullptr;
      }
      RJ_ASSIGN_OR_RETURN(io_bufs_[k], be.allocate(std::max<size_t>(bytes, 256)));
      io_sizes_[k] = std::max<size_t>(bytes, 256);
    }
    return io_bufs_[k];
  };
  auto t0 = clock::now();
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const Tensor& t = inputs.at(g.inputs[i]->name);
    RJ_ASSIGN_OR_RETURN(in_addr_[i], buffer(i, t.nbytes()));
    if (t.nbytes()) RJ_RETURN_IF_ERROR(be.copy(in_addr_[i], t.raw(), t.nbytes(), Copy::kHostToDevice, stream_));
  }
  for (size_t o = 0; o < g.outputs.size(); ++o) {
    RJ_ASSIGN_OR_RETURN(out_addr_[o], buffer(g.inputs.size() + o, outs[o].nbytes()));
  }
  RJ_RETURN_IF_ERROR(be.synchronize(stream_));
  auto t1 = clock::now();
  RJ_RETURN_IF_ERROR(enqueue(stream_));
  RJ_RETURN_IF_ERROR(be.synchronize(stream_));
  auto t2 = clock::now();
  for (size_t o = 0; o < g.outputs.size(); ++o)
    if (outs[o].nbytes())
      RJ_RETURN_IF_ERROR(be.copy(outs[o].raw(), out_addr_[o], outs[o].nbytes(), Copy::kDeviceToHost, stream_));
  RJ_RETURN_IF_ERROR(be.synchronize(stream_));
  auto t3 = clock::now();
  timing_.h2d_ms = ms(t0, t1);
  timing_.compute_ms = ms(t1, t2);
  timing_.d2h_ms = ms(t2, t3);
  return outs;
}

Result<std::unique_ptr<Engine>> finishLoad(const uint8_t* data, size_t size, std::shared_ptr<void> keep,
                                           const std::string& what, const LoadOptions& opts) {
  if (plan::isMultiProfile(data, size)) {
    RJ_ASSIGN_OR_RETURN(auto parts, plan::decodeMultiProfile(data, size, what));
    std::vector<std::unique_ptr<Engine>> engines;
    for (size_t i = 0; i < parts.size(); ++i) {
      if (plan::isMultiProfile(data + parts[i].first, parts[i].second))
        return makeError(StatusCode::kInvalidPlan, what, ": profile ", i, " is itself a multi-profile container");
      RJ_ASSIGN_OR_RETURN(auto e, finishLoad(data + parts[i].first, parts[i].second, keep,
                                             what + " (optimization profile " + std::to_string(i) + ")", opts));
      auto names = [](const std::vector<TensorInfo>& v) {
        std::vector<std::string> n;
        for (const auto& t : v) n.push_back(t.name + ":" + dataTypeName(t.dtype));
        return n;
      };
      if (!engines.empty() && (names(e->inputs()) != names(engines[0]->inputs()) ||
                               names(e->outputs()) != names(engines[0]->outputs()) ||
                               e->info().device != engines[0]->info().device))
        return makeError(StatusCode::kInvalidPlan, what, ": optimization profile ", i,
                         " has other inputs, outputs (names, types) or device than profile 0");
      engines.push_back(std::move(e));
    }
    return runtime::makeMultiProfileEngine(std::move(engines));
  }
  auto e = std::make_unique<EngineImpl>();
  RJ_ASSIGN_OR_RETURN(e->pc, plan::decode(data, size, keep, what));
  e->keepalive = std::move(keep);
  Status st = e->init(opts);
  if (!st.ok()) return st.code() == StatusCode::kInvalidPlan ? st.withContext(what) : st;
  return std::unique_ptr<Engine>(std::move(e));
}

}  // namespace

Result<std::unique_ptr<Engine>> Engine::load(const std::string& path, const LoadOptions& opts) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return makeError(StatusCode::kNotFound, "cannot open plan '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return makeError(StatusCode::kIoError, "plan '", path, "' is not a regular file");
  }
  size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return makeError(StatusCode::kInvalidPlan, "plan '", path, "': the file is empty");
  }
  // Private writable mapping: tensors view it in place; nothing is written back.
  void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) return makeError(StatusCode::kIoError, "cannot map plan '", path, "': ", std::strerror(errno));
  std::shared_ptr<void> keep(m, [size](void* p) { ::munmap(p, size); });
  return finishLoad(static_cast<const uint8_t*>(m), size, keep, "plan '" + path + "'", opts);
}

Result<std::unique_ptr<Engine>> Engine::loadFromMemory(const void* data, size_t size, const LoadOptions& opts) {
  // Copy into 64-byte aligned storage so weights keep their alignment.
  void* buf = std::aligned_alloc(64, std::max<size_t>(64, (size + 63) / 64 * 64));
  if (!buf) return Status(StatusCode::kOutOfMemory, "cannot allocate a plan buffer");
  if (size) std::memcpy(buf, data, size);
  std::shared_ptr<void> keep(buf, [](void* p) { std::free(p); });
  return finishLoad(static_cast<const uint8_t*>(buf), size, keep, "plan in memory", opts);
}

}  // namespace ramjet
