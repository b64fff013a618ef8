// The op registry: one table built from ops.def. Each op has a shape/type inference function
// (src/ops/<family>.cc) and a reference kernel (src/backends/cpu/reference/<family>.cc).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ramjet/graph.h"
#include "ramjet/status.h"
#include "ramjet/tensor.h"

namespace ramjet::ops {

// What shape inference sees of one node. Input values are known for constants at import time
// and for every input when the reference interpreter runs (so one function serves both).
class InferContext {
 public:
  InferContext(const Node& node, std::vector<TensorType> in_types,
               std::vector<const Tensor*> in_values)
      : node_(node), in_types_(std::move(in_types)), in_values_(std::move(in_values)),
        out_types_(node.outputs.size()) {}

  const Node& node() const { return node_; }
  size_t numInputs() const { return in_types_.size(); }
  size_t numOutputs() const { return out_types_.size(); }
  bool hasInput(size_t i) const {
    return i < in_types_.size() && in_types_[i].dtype != DataType::kUndefined;
  }
  const TensorType& input(size_t i) const { return in_types_[i]; }
  const Shape& shape(size_t i) const { return in_types_[i].shape; }
  DataType dtype(size_t i) const { return in_types_[i].dtype; }
  // Constant value of input i, or null when it is only known at run time.
  const Tensor* value(size_t i) const { return i < in_values_.size() ? in_values_[i] : nullptr; }
  void setOutput(size_t i, DataType dt, Shape shape) { out_types_[i] = TensorType{dt, std::move(shape)}; }
  std::vector<TensorType>& outputs() { return out_types_; }
  // A fresh symbol for a data-dependent dim ("NonZero_3:0").
  Dim newSymbol(const std::string& hint) const;

  template <typename... Args>
  Status error(Args&&... parts) const {
    return makeError(StatusCode::kInvalidModel, node_.describe(), ": ", parts...);
  }

 private:
  const Node& node_;
  std::vector<TensorType> in_types_;
  std::vector<const Tensor*> in_values_;
  std::vector<TensorType> out_types_;
};

// Runs a subgraph (If/Loop/Scan bodies) in the scope of the current node; provided by the
// interpreter. Outer-scope names resolve to the caller's values.
class SubgraphRunner {
 public:
  virtual ~SubgraphRunner() = default;
  virtual Result<std::vector<Tensor>> run(const Graph& body, const std::vector<Tensor>& inputs) = 0;
};

// What a reference kernel sees. Outputs whose shape inference gave a concrete shape are
// preallocated; others (data-dependent shapes) are allocated by the kernel via allocOutput.
class KernelContext {
 public:
  const Node& node;
  std::vector<const Tensor*> inputs;  // null for omitted optional inputs
  std::vector<Tensor> outputs;
  SubgraphRunner* subgraphs = nullptr;

  KernelContext(const Node& n, std::vector<const Tensor*> in, size_t n_out)
      : node(n), inputs(std::move(in)), outputs(n_out) {}
  bool hasInput(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  const Tensor& input(size_t i) const { return *inputs[i]; }
  bool hasOutput(size_t i) const { return node.hasOutput(i); }
  Tensor& output(size_t i) { return outputs[i]; }
  Tensor& allocOutput(size_t i, DataType dt, std::vector<int64_t> dims) {
    outputs[i] = Tensor(dt, std::move(dims));
    return outputs[i];
  }
  template <typename... Args>
  Status error(Args&&... parts) const {
    return makeError(StatusCode::kInvalidArgument, node.describe(), ": ", parts...);
  }
  template <typename... Args>
  Status unsupported(Args&&... parts) const {
    return makeError(StatusCode::kUnsupported, node.describe(), ": ", parts...);
  }
};

using InferFn = Status (*)(InferContext&);
using KernelFn = Status (*)(KernelContext&);

struct OpSchema {
  const char* name;
  int min_inputs, max_inputs;    // max -1: variadic
  int min_outputs, max_outputs;
  InferFn infer;
  KernelFn reference;
};

// Lookup by canonical op name (ai.onnx domain); null when ramjet does not know the op.
const OpSchema* findOp(const std::string& op_type);
const std::vector<OpSchema>& allOps();

// Declarations of every op's functions, generated from the one list.
#define RJ_OP(Name, min_in, max_in, min_out, max_out) \
  Status infer##Name(InferContext& ctx);              \
  Status ref##Name(KernelContext& ctx);
#include "ops/ops.def"
#undef RJ_OP

// Faster CPU variants with the reference's exact results (the CPU backend's "cpu.fast").
Status fastQConv(KernelContext& ctx);         // int8.cc: im2col + chunked float GEMM, bit-identical
Status fastInt8Quantize(KernelContext& ctx);  // int8.cc: parallel, tiled NCHW -> NHWC

// ---- helpers shared by shape functions and kernels ----
// Normalizes a possibly negative axis for a tensor of `rank`; error if out of range.
Status normalizeAxis(int64_t* axis, int64_t rank, const Node& node);
// Numpy-style broadcast of symbolic shapes; error when incompatible.
Result<Shape> broadcastShapes(const std::vector<Shape>& shapes, const Node& node);
// Same for concrete dims.
Result<std::vector<int64_t>> broadcastDims(const std::vector<std::vector<int64_t>>& dims,
                                           const Node& node);
// Row-major strides for dims.
std::vector<int64_t> stridesOf(const std::vector<int64_t>& dims);

}  // namespace ramjet::ops
