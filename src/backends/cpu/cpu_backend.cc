// The CPU backend: each node runs through its reference kernel (src/ops registry), reading and
// writing the runtime's planned memory, so `--device cpu` engines share every code path of the
// builder, plan file and runtime with the GPU ones and are testable anywhere.
#include <cstdlib>
#include <cstring>

#include "backends/backend.h"
#include "backends/cpu/fast_kernels.h"
#include "ops/op_registry.h"

namespace ramjet::backend {
namespace {

// A Tensor viewing memory it does not own (arena slots, mmap'ed weights).
Tensor view(void* data, DataType dt, const std::vector<int64_t>& dims) {
  return Tensor(dt, dims, std::shared_ptr<uint8_t>(std::shared_ptr<uint8_t>(), static_cast<uint8_t*>(data)));
}

class ReferenceKernel final : public Kernel {
 public:
  using Fn = Status (*)(ops::KernelContext&);
  // fn: the reference kernel, or a KernelContext-style variant of it (ops::fastQConv).
  ReferenceKernel(const Node& node, const ops::OpSchema* schema, Fn fn = nullptr)
      : node_(node), schema_(schema), fn_(fn ? fn : schema->reference) {}

  Status run(const RunArgs& args) override {
    std::vector<Tensor> in_views(args.inputs.size());
    std::vector<const Tensor*> in(args.inputs.size(), nullptr);
    for (size_t i = 0; i < args.inputs.size(); ++i) {
      const TensorRef& r = args.inputs[i];
      if (r.host) {
        in[i] = r.host;
      } else if (r.data || (r.dtype != DataType::kUndefined && r.numel() == 0)) {
        in_views[i] = view(r.data, r.dtype, r.dims);
        in[i] = &in_views[i];
      }
    }
    ops::KernelContext ctx(node_, in, node_.outputs.size());
    for (size_t o = 0; o < args.outputs.size() && o < node_.outputs.size(); ++o) {
      const TensorRef& r = args.outputs[o];
      if (!node_.outputs[o] || !r.data) continue;
      // Reference kernels may rely on zero-filled outputs (fresh Tensors are zeroed).
      std::memset(r.data, 0, r.nbytes());
      ctx.outputs[o] = view(r.data, r.dtype, r.dims);
    }
    RJ_RETURN_IF_ERROR(fn_(ctx));
    for (size_t o = 0; o < node_.outputs.size(); ++o) {
      if (!node_.outputs[o]) continue;
      const Tensor& t = ctx.outputs[o];
      if (!t.defined())
        return makeError(StatusCode::kInternal, node_.describe(), ": kernel produced no output ", o);
      const TensorRef* r = o < args.outputs.size() ? &args.outputs[o] : nullptr;
      if (r && r->data) {
        if (t.raw() == r->data) continue;
        // The kernel returned its own tensor (Identity shares its input; some allocate): copy it
        // into the planned slot after checking it is what shape inference promised.
        if (t.dtype() != r->dtype || t.dims() != r->dims)
          return makeError(StatusCode::kInternal, node_.describe(), ": output ", o, " is ",
                           t.type().toString(), " but the plan expected ",
                           TensorType{r->dtype, Shape::fromDims(r->dims)}.toString());
        if (t.nbytes()) std::memmove(r->data, t.raw(), t.nbytes());
      } else {
        if (!args.produced)
          return makeError(StatusCode::kInternal, node_.describe(), ": output ", o, " has no memory");
        if (args.produced->size() < node_.outputs.size()) args.produced->resize(node_.outputs.size());
        (*args.produced)[o] = t;
      }
    }
    return Status::Ok();
  }

 private:
  const Node& node_;
  const ops::OpSchema* schema_;
  Fn fn_;
};

// Reference-kernel variants with bit-identical results (same KernelContext interface).
ReferenceKernel::Fn exactVariant(const Node& node) {
  if (!node.domain.empty() && node.domain != "ai.onnx") return nullptr;
  if (node.op_type == "QConv") return &ops::fastQConv;
  if (node.op_type == "Int8Quantize") return &ops::fastInt8Quantize;
  return nullptr;
}

class CpuBackend final : public Backend {
 public:
  CpuBackend() { info_.name = "cpu"; }
  DeviceKind kind() const override { return DeviceKind::kCpu; }
  const DeviceInfo& device() const override { return info_; }

  Status supports(const Node& node, const std::vector<TensorType>& inputs,
                  const std::vector<TensorType>& outputs) const override {
    if (!node.domain.empty() && node.domain != "ai.onnx")
      return makeError(StatusCode::kUnsupported, node.describe(), ": domain '", node.domain, "' has no kernels");
    if (!ops::findOp(node.op_type)) return makeError(StatusCode::kUnsupported, node.describe(), ": unknown op");
    for (const auto& [k, a] : node.attrs)
      if (a.kind == Attribute::Kind::kGraph)
        return makeError(StatusCode::kUnsupported, node.describe(), ": control flow (subgraph attribute '", k,
                         "') is not supported in engines yet; `ramjet run` interprets it");
    for (const auto& t : inputs)
      if (t.dtype == DataType::kString)
        return makeError(StatusCode::kUnsupported, node.describe(), ": string tensors have no kernels");
    return Status::Ok();
  }
  // Reference kernels read every input that has a host value through it.
  bool readsOnHost(const Node&, size_t) const override { return true; }
  // FusedConv / MaxPool / Softmax in float32 get the fast kernels (src/backends/cpu/fast_kernels.h),
  // everything else its reference kernel. RAMJET_CPU_REFERENCE=1 builds reference-only engines.
  std::vector<Tactic> tactics(const Node& node, const std::vector<TensorType>& in,
                              const std::vector<TensorType>& out) const override {
    const char* ref_only = std::getenv("RAMJET_CPU_REFERENCE");
    if (!(ref_only && ref_only[0] == '1') && (cpufast::applies(node, in, out) || exactVariant(node)))
      return {Tactic{"cpu.fast", 0}};
    return {Tactic{"cpu.reference", 0}};
  }
  Result<std::unique_ptr<Kernel>> createKernel(const Node& node, const Tactic& tactic) override {
    if (tactic.name == "cpu.fast") {
      if (auto fn = exactVariant(node)) return std::unique_ptr<Kernel>(new ReferenceKernel(node, ops::findOp(node.op_type), fn));
      return cpufast::create(node);
    }
    if (tactic.name != "cpu.reference")
      return makeError(StatusCode::kInvalidPlan, node.describe(), ": the CPU backend has no tactic '", tactic.name, "'");
    const ops::OpSchema* s = ops::findOp(node.op_type);
    if (!s) return makeError(StatusCode::kUnsupported, node.describe(), ": unknown op");
    return std::unique_ptr<Kernel>(new ReferenceKernel(node, s));
  }

  Result<void*> allocate(size_t bytes) override {
    void* p = std::aligned_alloc(256, std::max<size_t>(256, (bytes + 255) / 256 * 256));
    if (!p) return makeError(StatusCode::kOutOfMemory, "cannot allocate ", bytes, " bytes of host memory");
    return p;
  }
  void release(void* p) override { std::free(p); }
  Status copy(void* dst, const void* src, size_t bytes, Copy, void*) override {
    if (bytes) std::memmove(dst, src, bytes);
    return Status::Ok();
  }
  Status memset(void* dst, int value, size_t bytes, void*) override {
    if (bytes) std::memset(dst, value, bytes);
    return Status::Ok();
  }
  Status synchronize(void*) override { return Status::Ok(); }

 private:
  DeviceInfo info_;
};

}  // namespace

std::unique_ptr<Backend> createCpuBackend() { return std::make_unique<CpuBackend>(); }

}  // namespace ramjet::backend
