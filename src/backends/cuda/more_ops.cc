// The "more ops" family of the CUDA backend: the long tail of ONNX inference ops, registered
// through the extension table (cuda_op_table.h). Each op is a supports() check plus a small
// kernel that translates attributes and host-known inputs (K, pads, repeats, axes...) into a
// call of the kernel library (cuda_ops.h for kernels that already existed, more_ops.h for the
// new ones). Inputs read on the host must be constants or shape arithmetic the builder
// evaluates on the host; a value computed on the device there is refused with the reason.
//
// Not here (and why): NonZero/Unique/NonMaxSuppression/Compress have data-dependent output
// shapes, which CUDA engines cannot run yet (the builder refuses the graph); Einsum, GridSample,
// RoiAlign, ConvTranspose, MeanVarianceNormalization: CPU fallback for now.
#include "backends/cuda/more_ops.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstring>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_op_table.h"
#include "backends/cuda/cuda_ops.h"
#include "ops/op_registry.h"

namespace ramjet::cuda {
namespace {

using backend::Kernel;
using backend::RunArgs;
using backend::Tactic;
using backend::TensorRef;
using Types = std::vector<TensorType>;
using RunFn = std::function<Status(const Node&, const RunArgs&)>;

cudaStream_t S(const RunArgs& a) { return static_cast<cudaStream_t>(a.stream); }
bool isF(DataType d) { return d == DataType::kFloat32 || d == DataType::kFloat16; }
bool isInt(DataType d) { return isIntegerType(d); }

template <typename... A>
Status no(const Node& n, A&&... why) {
  return makeError(StatusCode::kUnsupported, n.describe(), ": ", std::forward<A>(why)...);
}

// A kernel that is one function of (node, args): these ops keep no per-shape state.
class FnKernel final : public Kernel {
 public:
  FnKernel(const Node& n, RunFn fn) : n_(n), fn_(std::move(fn)) {}
  Status run(const RunArgs& a) override { return fn_(n_, a); }

 private:
  const Node& n_;
  RunFn fn_;
};

bool present(const RunArgs& a, size_t i) { return i < a.inputs.size() && a.inputs[i].dtype != DataType::kUndefined; }

// Integer values of input i, which must be known on the host.
Result<std::vector<int64_t>> hostInts(const Node& n, const RunArgs& a, size_t i, const char* what) {
  if (!present(a, i)) return std::vector<int64_t>{};
  if (!a.inputs[i].host)
    return no(n, what, " must be a constant or computed from shapes (it is computed on the device here)");
  if (!isIntegerType(a.inputs[i].host->dtype()))
    return makeError(StatusCode::kInvalidArgument, n.describe(), ": ", what, " must be integers, got ",
                     dataTypeName(a.inputs[i].host->dtype()));
  return a.inputs[i].host->toInt64Vector();
}
Result<double> hostScalar(const Node& n, const RunArgs& a, size_t i, const char* what, double def) {
  if (!present(a, i)) return def;
  if (!a.inputs[i].host) return no(n, what, " must be a constant");
  if (a.inputs[i].host->numel() < 1) return def;
  return a.inputs[i].host->getDouble(0);
}

// Host-read inputs may not be graph inputs (their values are only on the device).
Status hostInputsKnown(const Node& n, std::initializer_list<size_t> idx) {
  for (size_t i : idx)
    if (i < n.inputs.size() && n.inputs[i] && n.inputs[i]->is_graph_input)
      return no(n, "input ", i, " ('", n.inputs[i]->name, "') is read on the host and must be a constant, not a graph input");
  return Status::Ok();
}

// outer / axis length / inner around `axis` of dims.
void splitAt(const std::vector<int64_t>& d, int64_t axis, int64_t* outer, int64_t* len, int64_t* inner) {
  *outer = 1;
  *inner = 1;
  for (int64_t i = 0; i < axis; ++i) *outer *= d[i];
  *len = d.empty() ? 1 : d[axis];
  for (size_t i = axis + 1; i < d.size(); ++i) *inner *= d[i];
}

Status copyAsync(const RunArgs& a, const TensorRef& in, const TensorRef& out) {
  if (out.nbytes() && in.data != out.data)
    RJ_CUDA_CHECK(cudaMemcpyAsync(out.data, in.data, out.nbytes(), cudaMemcpyDeviceToDevice, S(a)));
  return Status::Ok();
}

using SupportFn = std::function<Status(const Node&, const Types&, const Types&)>;
CudaOpHandler handler(SupportFn sup, RunFn run, std::vector<size_t> host_inputs = {}) {
  CudaOpHandler h;
  h.supports = [sup, host_inputs](const Node& n, const Types& in, const Types& out) -> Status {
    for (size_t i : host_inputs) RJ_RETURN_IF_ERROR(hostInputsKnown(n, {i}));
    return sup(n, in, out);
  };
  h.create = [run](const Node& n, const Tactic&, Handles&) -> Result<std::unique_ptr<Kernel>> {
    return std::unique_ptr<Kernel>(new FnKernel(n, run));
  };
  h.reads_on_host = [host_inputs](const Node&, size_t i) {
    for (size_t k : host_inputs)
      if (k == i) return true;
    return false;
  };
  return h;
}

DataType dt0(const Types& in) { return in.empty() ? DataType::kUndefined : in[0].dtype; }
SupportFn floatOnly() {
  return [](const Node& n, const Types& in, const Types&) {
    return isF(dt0(in)) ? Status::Ok() : no(n, dataTypeName(dt0(in)), " input (f32/f16 only)");
  };
}
SupportFn anyType() {
  return [](const Node&, const Types&, const Types&) { return Status::Ok(); };
}

// ---------------------------------------------------------------- registrations
void addElementwise(CudaOpTable& t) {
  const std::pair<const char*, more::Unary> unaries[] = {
      {"Tan", more::Unary::kTan},       {"Asin", more::Unary::kAsin},   {"Acos", more::Unary::kAcos},
      {"Atan", more::Unary::kAtan},     {"Sinh", more::Unary::kSinh},   {"Cosh", more::Unary::kCosh},
      {"Asinh", more::Unary::kAsinh},   {"Acosh", more::Unary::kAcosh}, {"Atanh", more::Unary::kAtanh},
      {"Softsign", more::Unary::kSoftsign}, {"Celu", more::Unary::kCelu},
      {"ThresholdedRelu", more::Unary::kThresholdedRelu}, {"Shrink", more::Unary::kShrink}};
  for (const auto& [name, op] : unaries) {
    more::Unary u = op;
    t.add(name, handler(floatOnly(), [u](const Node& n, const RunArgs& a) {
            float alpha = 0, beta = 0;
            if (u == more::Unary::kCelu) alpha = n.attrFloat("alpha", 1.f);
            if (u == more::Unary::kThresholdedRelu) alpha = n.attrFloat("alpha", 1.f);
            if (u == more::Unary::kShrink) alpha = n.attrFloat("bias", 0.f), beta = n.attrFloat("lambd", 0.5f);
            return more::unary(u, a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, a.outputs[0].numel(), alpha,
                               beta, S(a));
          }));
  }
  t.add("IsNaN", handler(floatOnly(), [](const Node&, const RunArgs& a) {
          return more::isNanInf(a.inputs[0].dtype, a.inputs[0].data, static_cast<bool*>(a.outputs[0].data),
                                a.outputs[0].numel(), false, false, false, S(a));
        }));
  t.add("IsInf", handler(floatOnly(), [](const Node& n, const RunArgs& a) {
          return more::isNanInf(a.inputs[0].dtype, a.inputs[0].data, static_cast<bool*>(a.outputs[0].data),
                                a.outputs[0].numel(), true, n.attrInt("detect_positive", 1) != 0,
                                n.attrInt("detect_negative", 1) != 0, S(a));
        }));
  auto notOp = [](const Node&, const RunArgs& a) {
    return more::logicalNot(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, a.outputs[0].numel(), S(a));
  };
  t.add("Not", handler(anyType(), notOp));
  t.add("BitwiseNot", handler([](const Node& n, const Types& in, const Types&) {
          return isInt(dt0(in)) ? Status::Ok() : no(n, dataTypeName(dt0(in)), " input");
        }, notOp));
  const std::pair<const char*, more::IntBinary> ints[] = {{"BitwiseAnd", more::IntBinary::kBitAnd},
                                                          {"BitwiseOr", more::IntBinary::kBitOr},
                                                          {"BitwiseXor", more::IntBinary::kBitXor},
                                                          {"BitShift", more::IntBinary::kShiftLeft}};
  for (const auto& [name, op] : ints) {
    more::IntBinary b = op;
    t.add(name, handler([](const Node& n, const Types& in, const Types&) {
            if (!isInt(dt0(in))) return no(n, dataTypeName(dt0(in)), " input (integers only)");
            if (in.size() == 2 && in[1].dtype != in[0].dtype) return no(n, "mixed input types");
            return Status::Ok();
          }, [b](const Node& n, const RunArgs& a) {
            more::IntBinary op = b;
            if (op == more::IntBinary::kShiftLeft && n.attrString("direction", "LEFT") == "RIGHT")
              op = more::IntBinary::kShiftRight;
            return more::intBinary(op, a.inputs[0].dtype, a.inputs[0].data, a.inputs[0].dims, a.inputs[1].data,
                                   a.inputs[1].dims, a.outputs[0].data, a.outputs[0].dims, S(a));
          }));
  }
  // Clip: floats through the built-in unary kernel, integers through clipInt (the built-in
  // table had floats only). Bounds are read on the host.
  t.add("Clip", handler([](const Node& n, const Types& in, const Types&) {
          return isF(dt0(in)) || isInt(dt0(in)) ? Status::Ok() : no(n, dataTypeName(dt0(in)), " input");
        }, [](const Node& n, const RunArgs& a) -> Status {
          DataType dt = a.inputs[0].dtype;
          if (isF(dt)) {
            UnaryParams p;
            RJ_ASSIGN_OR_RETURN(double lo, hostScalar(n, a, 1, "min", -INFINITY));
            RJ_ASSIGN_OR_RETURN(double hi, hostScalar(n, a, 2, "max", INFINITY));
            p.alpha = static_cast<float>(lo);
            p.beta = static_cast<float>(hi);
            return unary(UnaryOp::kClip, dt, a.inputs[0].data, a.outputs[0].data, a.outputs[0].numel(), p, S(a));
          }
          int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
          RJ_ASSIGN_OR_RETURN(auto lv, hostInts(n, a, 1, "min"));
          RJ_ASSIGN_OR_RETURN(auto hv, hostInts(n, a, 2, "max"));
          if (!lv.empty()) lo = lv[0];
          if (!hv.empty()) hi = hv[0];
          // Unsigned types: a bound outside the type's range clamps to it.
          if (dt == DataType::kUInt8 || dt == DataType::kUInt16 || dt == DataType::kUInt32 || dt == DataType::kUInt64)
            lo = std::max<int64_t>(lo, 0);
          if (dt == DataType::kUInt64 && hv.empty()) hi = -1;  // all bits: the largest uint64
          return more::clipInt(dt, a.inputs[0].data, a.outputs[0].data, a.outputs[0].numel(), lo, hi, S(a));
        }, {1, 2}));
  // Variadic Sum/Mean/Max/Min (the built-in binary kernel takes exactly two inputs).
  const std::pair<const char*, BinaryOp> variadic[] = {
      {"Sum", BinaryOp::kAdd}, {"Mean", BinaryOp::kAdd}, {"Max", BinaryOp::kMax}, {"Min", BinaryOp::kMin}};
  for (const auto& [name, op] : variadic) {
    BinaryOp b = op;
    bool mean = std::string(name) == "Mean";
    t.add(name, handler([mean](const Node& n, const Types& in, const Types&) {
            for (const auto& x : in)
              if (x.dtype != dt0(in)) return no(n, "mixed input types");
            DataType d = dt0(in);
            if (mean && !isF(d)) return no(n, dataTypeName(d), " input");
            if (!isF(d) && d != DataType::kInt32 && d != DataType::kInt64) return no(n, dataTypeName(d), " input");
            return Status::Ok();
          }, [b, mean](const Node&, const RunArgs& a) -> Status {
            const TensorRef& o = a.outputs[0];
            if (o.numel() == 0) return Status::Ok();
            if (a.inputs.size() == 1) {
              if (a.inputs[0].dims == o.dims) RJ_RETURN_IF_ERROR(copyAsync(a, a.inputs[0], o));
              else RJ_RETURN_IF_ERROR(broadcastCopy(dataTypeSize(o.dtype), a.inputs[0].data, a.inputs[0].dims, o.data, o.dims, S(a)));
            } else {
              RJ_RETURN_IF_ERROR(binary(b, o.dtype, a.inputs[0].data, a.inputs[0].dims, a.inputs[1].data,
                                        a.inputs[1].dims, o.data, o.dims, S(a)));
              // out has the final dims, so out (op)= in_k reads and writes the same element.
              for (size_t k = 2; k < a.inputs.size(); ++k)
                RJ_RETURN_IF_ERROR(binary(b, o.dtype, o.data, o.dims, a.inputs[k].data, a.inputs[k].dims, o.data, o.dims, S(a)));
            }
            if (mean) return more::scale(o.dtype, o.data, o.data, o.numel(), 1.f / static_cast<float>(a.inputs.size()), S(a));
            return Status::Ok();
          }));
  }
}

ReduceOp reduceOpOf(const std::string& op) {
  if (op == "ReduceProd") return ReduceOp::kProd;
  if (op == "ReduceL1") return ReduceOp::kL1;
  if (op == "ReduceL2") return ReduceOp::kL2;
  if (op == "ReduceSumSquare") return ReduceOp::kSumSquare;
  if (op == "ReduceLogSum") return ReduceOp::kLogSum;
  return ReduceOp::kLogSumExp;
}

void addReductions(CudaOpTable& t) {
  for (const char* name : {"ReduceProd", "ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"}) {
    ReduceOp op = reduceOpOf(name);
    t.add(name, handler(floatOnly(), [op](const Node& n, const RunArgs& a) -> Status {
            const auto& d = a.inputs[0].dims;
            const int64_t r = static_cast<int64_t>(d.size());
            std::vector<int64_t> axes;
            if (present(a, 1)) {
              RJ_ASSIGN_OR_RETURN(axes, hostInts(n, a, 1, "axes"));
            } else if (n.hasAttr("axes")) {
              axes = n.attrInts("axes");
            }
            if (axes.empty() && !n.attrInt("noop_with_empty_axes", 0))
              for (int64_t i = 0; i < r; ++i) axes.push_back(i);
            for (auto& x : axes) RJ_RETURN_IF_ERROR(ops::normalizeAxis(&x, r, n));
            if (a.outputs[0].numel() == 0) return Status::Ok();
            return reduce(op, a.inputs[0].dtype, a.inputs[0].data, d, axes, a.outputs[0].data, S(a));
          }, {1}));
  }
  for (const char* name : {"ArgMax", "ArgMin"}) {
    bool is_max = std::string(name) == "ArgMax";
    t.add(name, handler(floatOnly(), [is_max](const Node& n, const RunArgs& a) -> Status {
            const auto& d = a.inputs[0].dims;
            int64_t axis = n.attrInt("axis", 0);
            RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n));
            int64_t outer, len, inner;
            splitAt(d, axis, &outer, &len, &inner);
            if (a.outputs[0].numel() == 0) return Status::Ok();
            return argReduce(is_max, n.attrInt("select_last_index", 0) != 0, a.inputs[0].dtype, a.inputs[0].data,
                             outer, len, inner, static_cast<int64_t*>(a.outputs[0].data), S(a));
          }));
  }
  t.add("TopK", handler(floatOnly(), [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          int64_t axis = n.attrInt("axis", -1);
          RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n));
          RJ_ASSIGN_OR_RETURN(auto kv, hostInts(n, a, 1, "K"));
          if (kv.size() != 1) return makeError(StatusCode::kInvalidArgument, n.describe(), ": K must hold one value");
          int64_t outer, len, inner;
          splitAt(d, axis, &outer, &len, &inner);
          void* idx = a.outputs.size() > 1 ? a.outputs[1].data : nullptr;
          if (!idx || !a.outputs[0].data)
            return no(n, "TopK with an omitted output");
          return topK(a.inputs[0].dtype, a.inputs[0].data, outer, len, inner, kv[0], n.attrInt("largest", 1) != 0,
                      a.outputs[0].data, static_cast<int64_t*>(idx), S(a));
        }, {1}));
  t.add("Hardmax", handler(floatOnly(), [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          int64_t axis = n.attrInt("axis", -1);
          RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n));
          int64_t outer, len, inner;
          splitAt(d, axis, &outer, &len, &inner);
          if (n.attrInt("coerce_2d", 0)) {
            len *= inner;
            inner = 1;
          }
          return more::hardmax(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, outer, len, inner, S(a));
        }));
  t.add("LpNormalization", handler(floatOnly(), [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          int64_t axis = n.attrInt("axis", -1);
          RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n));
          int64_t outer, len, inner;
          splitAt(d, axis, &outer, &len, &inner);
          return more::lpNormalize(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, outer, len, inner,
                                   static_cast<int>(n.attrInt("p", 2)), S(a));
        }));
  t.add("CumSum", handler([](const Node& n, const Types& in, const Types&) {
          DataType d = dt0(in);
          return isF(d) || d == DataType::kInt32 || d == DataType::kInt64 ? Status::Ok() : no(n, dataTypeName(d), " input");
        }, [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          RJ_ASSIGN_OR_RETURN(auto av, hostInts(n, a, 1, "axis"));
          if (av.size() != 1) return makeError(StatusCode::kInvalidArgument, n.describe(), ": axis must hold one value");
          int64_t axis = av[0];
          RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n));
          int64_t outer, len, inner;
          splitAt(d, axis, &outer, &len, &inner);
          return more::cumSum(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, outer, len, inner,
                              n.attrInt("exclusive", 0) != 0, n.attrInt("reverse", 0) != 0, S(a));
        }, {1}));
}

void addNormalizations(CudaOpTable& t) {
  t.add("InstanceNormalization", handler(floatOnly(), [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          if (d.size() < 2) return makeError(StatusCode::kInvalidArgument, n.describe(), ": input rank < 2");
          int64_t c = d[1], sp = 1;
          for (size_t i = 2; i < d.size(); ++i) sp *= d[i];
          if (a.inputs[1].numel() != c || a.inputs[2].numel() != c)
            return makeError(StatusCode::kInvalidArgument, n.describe(), ": scale/bias must have ", c, " elements");
          return groupNorm(a.inputs[0].dtype, a.inputs[0].data, a.inputs[1].data, a.inputs[2].data, a.outputs[0].data,
                           d[0], c, sp, c, n.attrFloat("epsilon", 1e-5f), S(a));
        }));
  t.add("GroupNormalization", handler([](const Node& n, const Types& in, const Types& out) -> Status {
          if (!isF(dt0(in))) return no(n, dataTypeName(dt0(in)), " input");
          if (n.attrInt("affine_per_group", 0)) return no(n, "per-group scale/bias (opset 18 form)");
          if (n.attrInt("stash_type", 1) != 1) return no(n, "stash_type other than float");
          return Status::Ok();
        }, [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          if (d.size() < 2) return makeError(StatusCode::kInvalidArgument, n.describe(), ": input rank < 2");
          int64_t c = d[1], sp = 1;
          for (size_t i = 2; i < d.size(); ++i) sp *= d[i];
          if (a.inputs[1].numel() != c || a.inputs[2].numel() != c)
            return makeError(StatusCode::kInvalidArgument, n.describe(), ": scale/bias must have ", c, " elements");
          return groupNorm(a.inputs[0].dtype, a.inputs[0].data, a.inputs[1].data, a.inputs[2].data, a.outputs[0].data,
                           d[0], c, sp, n.attrInt("num_groups", 0), n.attrFloat("epsilon", 1e-5f), S(a));
        }));
}

void addTensorOps(CudaOpTable& t) {
  t.add("Pad", handler(anyType(), [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          const int64_t r = static_cast<int64_t>(d.size());
          RJ_ASSIGN_OR_RETURN(auto pv, hostInts(n, a, 1, "pads"));
          RJ_ASSIGN_OR_RETURN(double cv, hostScalar(n, a, 2, "constant_value", 0.0));
          RJ_ASSIGN_OR_RETURN(auto axes, hostInts(n, a, 3, "axes"));
          std::vector<int64_t> pads(2 * r, 0);
          if (axes.empty()) {
            if (static_cast<int64_t>(pv.size()) != 2 * r)
              return makeError(StatusCode::kInvalidArgument, n.describe(), ": ", pv.size(), " pads for rank ", r);
            pads = pv;
          } else {
            if (pv.size() != 2 * axes.size())
              return makeError(StatusCode::kInvalidArgument, n.describe(), ": ", pv.size(), " pads for ", axes.size(), " axes");
            for (size_t i = 0; i < axes.size(); ++i) {
              int64_t ax = axes[i];
              RJ_RETURN_IF_ERROR(ops::normalizeAxis(&ax, r, n));
              pads[ax] = pv[i];
              pads[ax + r] = pv[i + axes.size()];
            }
          }
          std::string m = n.attrString("mode", "constant");
          PadMode mode = m == "reflect" ? PadMode::kReflect : m == "edge" ? PadMode::kEdge : m == "wrap" ? PadMode::kWrap : PadMode::kConstant;
          if (a.outputs[0].numel() == 0) return Status::Ok();
          return pad(a.inputs[0].dtype, a.inputs[0].data, d, pads, mode, cv, a.outputs[0].data, S(a));
        }, {1, 2, 3}));
  t.add("Tile", handler(anyType(), [](const Node& n, const RunArgs& a) -> Status {
          RJ_ASSIGN_OR_RETURN(auto reps, hostInts(n, a, 1, "repeats"));
          if (reps.size() != a.inputs[0].dims.size())
            return makeError(StatusCode::kInvalidArgument, n.describe(), ": ", reps.size(), " repeats for rank ", a.inputs[0].dims.size());
          if (a.outputs[0].numel() == 0) return Status::Ok();
          return tile(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, a.inputs[0].dims, reps, a.outputs[0].data, S(a));
        }, {1}));
  for (const char* name : {"DepthToSpace", "SpaceToDepth"}) {
    bool d2s = std::string(name) == "DepthToSpace";
    t.add(name, handler(anyType(), [d2s](const Node& n, const RunArgs& a) -> Status {
            const auto& d = a.inputs[0].dims;
            if (d.size() != 4) return makeError(StatusCode::kInvalidArgument, n.describe(), ": input must be 4-D");
            int64_t b = n.attrInt("blocksize", 1), N = d[0], C = d[1], H = d[2], W = d[3];
            if (b < 1) return makeError(StatusCode::kInvalidArgument, n.describe(), ": blocksize ", b);
            bool dcr = n.attrString("mode", "DCR") == "DCR";
            std::vector<int64_t> dims, perm;
            if (d2s) {
              if (C % (b * b)) return makeError(StatusCode::kInvalidArgument, n.describe(), ": channels not divisible by blocksize^2");
              if (dcr) dims = {N, b, b, C / (b * b), H, W}, perm = {0, 3, 4, 1, 5, 2};
              else dims = {N, C / (b * b), b, b, H, W}, perm = {0, 1, 4, 2, 5, 3};
            } else {
              if (H % b || W % b) return makeError(StatusCode::kInvalidArgument, n.describe(), ": H/W not divisible by blocksize");
              dims = {N, C, H / b, b, W / b, b};
              perm = dcr ? std::vector<int64_t>{0, 3, 5, 1, 2, 4} : std::vector<int64_t>{0, 1, 3, 5, 2, 4};
            }
            if (a.outputs[0].numel() == 0) return Status::Ok();
            return transpose(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, dims, perm, a.outputs[0].data, S(a));
          }));
  }
  t.add("Trilu", handler(anyType(), [](const Node& n, const RunArgs& a) -> Status {
          const auto& d = a.inputs[0].dims;
          if (d.size() < 2) return makeError(StatusCode::kInvalidArgument, n.describe(), ": input rank < 2");
          RJ_ASSIGN_OR_RETURN(auto kv, hostInts(n, a, 1, "k"));
          int64_t k = kv.empty() ? 0 : kv[0], rows = d[d.size() - 2], cols = d.back();
          int64_t batch = rows * cols == 0 ? 0 : a.inputs[0].numel() / (rows * cols);
          return more::trilu(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, a.outputs[0].data, batch, rows, cols, k,
                             n.attrInt("upper", 1) != 0, S(a));
        }, {1}));
  t.add("ConstantOfShape", handler(anyType(), [](const Node& n, const RunArgs& a) -> Status {
          const TensorRef& o = a.outputs[0];
          uint64_t bits = 0;  // zero of the output type by default
          if (n.hasAttr("value")) {
            auto it = n.attrs.find("value");
            const Tensor& v = it->second.t;
            if (v.numel() != 1 || v.dtype() != o.dtype)
              return makeError(StatusCode::kInvalidArgument, n.describe(), ": value must be one ", dataTypeName(o.dtype));
            std::memcpy(&bits, v.raw(), v.nbytes());
          }
          return more::fill(dataTypeSize(o.dtype), &bits, o.data, o.numel(), S(a));
        }, {0}));
  t.add("Range", handler([](const Node& n, const Types& in, const Types&) {
          DataType d = dt0(in);
          return isF(d) || d == DataType::kFloat64 || d == DataType::kInt16 || d == DataType::kInt32 || d == DataType::kInt64
                     ? Status::Ok() : no(n, dataTypeName(d), " range");
        }, [](const Node& n, const RunArgs& a) -> Status {
          RJ_ASSIGN_OR_RETURN(double start, hostScalar(n, a, 0, "start", 0));
          RJ_ASSIGN_OR_RETURN(double delta, hostScalar(n, a, 2, "delta", 1));
          return more::range(a.outputs[0].dtype, start, delta, a.outputs[0].data, a.outputs[0].numel(), S(a));
        }, {0, 1, 2}));
  t.add("OneHot", handler([](const Node& n, const Types& in, const Types&) -> Status {
          DataType d = dt0(in);
          if (d != DataType::kInt32 && d != DataType::kInt64 && !isF(d)) return no(n, dataTypeName(d), " indices");
          return Status::Ok();
        }, [](const Node& n, const RunArgs& a) -> Status {
          RJ_ASSIGN_OR_RETURN(double depth_d, hostScalar(n, a, 1, "depth", 0));
          int64_t depth = static_cast<int64_t>(depth_d);
          const auto& d = a.inputs[0].dims;
          int64_t r = static_cast<int64_t>(d.size()) + 1, axis = n.attrInt("axis", -1);
          RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, r, n));
          int64_t outer = 1, inner = 1;
          for (int64_t i = 0; i < axis; ++i) outer *= d[i];
          for (size_t i = axis; i < d.size(); ++i) inner *= d[i];
          if (a.inputs[2].numel() != 2) return makeError(StatusCode::kInvalidArgument, n.describe(), ": values must hold 2 elements");
          return more::oneHot(a.inputs[0].dtype, a.inputs[0].data, outer, inner, depth, dataTypeSize(a.outputs[0].dtype),
                              a.inputs[2].data, a.outputs[0].data, S(a));
        }, {1}));
}

more::ScatterReduction reductionOf(const Node& n) {
  std::string r = n.attrString("reduction", "none");
  return r == "add" ? more::ScatterReduction::kAdd : r == "mul" ? more::ScatterReduction::kMul
       : r == "max" ? more::ScatterReduction::kMax : r == "min" ? more::ScatterReduction::kMin
                    : more::ScatterReduction::kNone;
}
Status scatterSupports(const Node& n, const Types& in, const Types&) {
  auto red = reductionOf(n);
  if (red == more::ScatterReduction::kMul) return no(n, "reduction 'mul'");
  if (red != more::ScatterReduction::kNone && dt0(in) != DataType::kFloat32)
    return no(n, "reduction '", n.attrString("reduction", "none"), "' on ", dataTypeName(dt0(in)), " (f32 only)");
  return Status::Ok();
}

void addIndexing(CudaOpTable& t) {
  t.add("GatherElements", handler(anyType(), [](const Node& n, const RunArgs& a) -> Status {
          int64_t axis = n.attrInt("axis", 0);
          RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(a.inputs[0].dims.size()), n));
          return more::gatherElements(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, a.inputs[0].dims, a.inputs[1].dtype,
                                      a.inputs[1].data, a.inputs[1].dims, static_cast<int>(axis), a.outputs[0].data, S(a));
        }));
  t.add("ScatterElements", handler(scatterSupports, [](const Node& n, const RunArgs& a) -> Status {
          int64_t axis = n.attrInt("axis", 0);
          RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(a.inputs[0].dims.size()), n));
          if (a.inputs[2].dims != a.inputs[1].dims)
            return makeError(StatusCode::kInvalidArgument, n.describe(), ": updates must have the shape of indices");
          return more::scatterElements(a.inputs[0].dtype, a.inputs[0].data, a.inputs[0].dims, a.inputs[1].dtype,
                                       a.inputs[1].data, a.inputs[1].dims, a.inputs[2].data, static_cast<int>(axis),
                                       reductionOf(n), a.outputs[0].data, S(a));
        }));
  t.add("GatherND", handler([](const Node& n, const Types& in, const Types&) -> Status {
          if (in.size() > 1 && in[1].dtype != DataType::kInt64) return no(n, dataTypeName(in[1].dtype), " indices");
          return Status::Ok();
        }, [](const Node& n, const RunArgs& a) -> Status {
          return more::gatherND(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, a.inputs[0].dims,
                                static_cast<const int64_t*>(a.inputs[1].data), a.inputs[1].dims,
                                static_cast<int>(n.attrInt("batch_dims", 0)), a.outputs[0].data, S(a));
        }));
  t.add("ScatterND", handler([](const Node& n, const Types& in, const Types& out) -> Status {
          if (in.size() > 1 && in[1].dtype != DataType::kInt64) return no(n, dataTypeName(in[1].dtype), " indices");
          return scatterSupports(n, in, out);
        }, [](const Node& n, const RunArgs& a) -> Status {
          return more::scatterND(a.inputs[0].dtype, a.inputs[0].data, a.inputs[0].dims,
                                 static_cast<const int64_t*>(a.inputs[1].data), a.inputs[1].dims, a.inputs[2].data,
                                 reductionOf(n), a.outputs[0].data, S(a));
        }));
}

}  // namespace

void registerMoreOps(CudaOpTable& t) {
  addElementwise(t);
  addReductions(t);
  addNormalizations(t);
  addTensorOps(t);
  addIndexing(t);
}

}  // namespace ramjet::cuda
