// Helpers shared by the tensor-family shape functions (src/ops/tensor*.cc) and reference kernels
// (src/backends/cpu/reference/{tensor,gather,reduce,resize}.cc).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "ops/op_registry.h"

namespace ramjet::ops {

// Shape values are only propagated for small integer tensors: enough for shape subgraphs,
// cheap enough to carry on every type.
constexpr int64_t kMaxShapeValueElems = 64;

// Elements of integer input i when known at inference time: from its constant value or from a
// propagated TensorType::shape_value. nullopt when unknown (or when any element is symbolic).
std::optional<std::vector<int64_t>> knownInts(const InferContext& ctx, size_t i);
// The same, allowing symbolic elements (e.g. the "batch" of Shape(x)).
std::optional<std::vector<Dim>> knownDims(const InferContext& ctx, size_t i);
// Records the elements of output `out` (ignored unless small and integer- or bool-typed).
void setShapeValue(InferContext& ctx, size_t out, std::vector<Dim> v);
// After any op's shape function: evaluates the output value of the elementwise ops that shape
// subgraphs use (Cast, Add, Sub, Mul, Div, Equal, Where, ...) on known input values, with
// symbols where certain. Called by Graph::inferShapes (src/ops/tensor_shape_values.cc).
void propagateShapeValues(InferContext& ctx);

// Product of dims: a number when all are known, the one symbol when the rest multiply to 1,
// else a fresh symbol.
Dim dimProduct(const InferContext& ctx, const std::vector<Dim>& dims);
// A fresh symbol named after the node.
Dim freshDim(const InferContext& ctx);
// Symbols may carry an integer factor: "batch*12" is 12 times "batch" (from Mul in a shape
// subgraph or Flatten). splitSymbol("batch*12") == {"batch", 12}; scaledSymbol inverts it.
std::pair<std::string, int64_t> splitSymbol(const std::string& sym);
Dim scaledSymbol(const std::string& base, int64_t factor);

// Integer input i of a kernel as int64 values (shape, axes, pads, repeats...).
std::vector<int64_t> inputInts(const KernelContext& ctx, size_t i);
// Kernels of shape-determined ops rely on the interpreter having preallocated output i.
Status requireOutput(KernelContext& ctx, size_t i);
// normalizeAxis that also rejects any axis for a rank-0 tensor (callers index dims with it).
Status checkAxis(int64_t* axis, int64_t rank, const Node& node);
// Normalizes and validates an axes list (duplicates rejected); sorted ascending.
Status normalizeAxes(std::vector<int64_t>* axes, int64_t rank, const Node& node);

// Integer-like element read/write used by index-heavy kernels.
bool isIndexType(DataType dt);

// Ops whose index inputs may be int32 or int64.
inline int64_t readIndex(const Tensor& t, int64_t i) { return t.getInt(i); }

}  // namespace ramjet::ops

namespace ramjet::ops {

// ---- parameter helpers shared by shape functions and kernels (defined in src/ops/tensor*.cc)
Result<std::vector<int64_t>> splitSizes(const Node& node, int64_t dim, size_t n_out,
                                        const std::vector<int64_t>* split);
void sliceAxis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t* out_start, int64_t* out_len);
struct SliceParams {
  std::vector<int64_t> start, step, len;  // per input axis
};
Result<SliceParams> sliceParams(const Node& node, const std::vector<int64_t>& dims, const std::vector<int64_t>& starts,
                                const std::vector<int64_t>& ends, const std::vector<int64_t>* axes,
                                const std::vector<int64_t>* steps);
Result<std::vector<int64_t>> padsForRank(const Node& node, const std::vector<int64_t>& pads,
                                         const std::vector<int64_t>* axes, int64_t rank);
Result<int64_t> rangeCount(const Node& node, double start, double limit, double delta);

struct ReduceAxes {
  bool noop = false;          // noop_with_empty_axes with no axes: output = input
  bool keepdims = true;
  std::vector<bool> reduced;  // per input axis
};
Result<ReduceAxes> reduceAxesFor(const Node& node, int64_t rank, const std::vector<int64_t>* axes);

}  // namespace ramjet::ops

namespace ramjet::ops {

// Resize: output dims and per-axis scale/roi for a concrete input (src/ops/tensor_resize.cc).
struct ResizePlan {
  std::vector<int64_t> out_dims;
  std::vector<double> scale;             // per axis: output/input in the coordinate transform
  std::vector<double> roi_start, roi_end;  // per axis, for tf_crop_and_resize (0 and 1 otherwise)
};
// `scales`/`sizes` empty when absent; `roi` empty when absent.
Result<ResizePlan> resizePlan(const Node& node, const std::vector<int64_t>& in_dims, const std::vector<double>& roi,
                              const std::vector<double>& scales, const std::vector<int64_t>& sizes);
// Nearest-mode Resize as per-axis source indices (output index -> input index) exactly as the
// reference kernel picks them (src/backends/cpu/reference/resize.cc); kUnsupported for other
// modes, tf_crop_and_resize or antialias. Used by the CPU backend's fast Resize.
Result<std::vector<std::vector<int64_t>>> nearestResizeIndices(const Node& node, const std::vector<int64_t>& in_dims,
                                                               const std::vector<double>& scales,
                                                               const std::vector<int64_t>& sizes,
                                                               std::vector<int64_t>* out_dims);

}  // namespace ramjet::ops
