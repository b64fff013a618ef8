// Node -> kernel-library dispatch for the CUDA backend. Each op family has a small Kernel class;
// per-shape library objects (cuDNN descriptors, cuBLASLt layouts) are made on the host the
// first time a shape is seen (workspaceBytes() runs before any capture) and cached under a lock,
// so run() only launches work and is capture-safe.
#include "backends/cuda/cuda_backend.h"

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "backends/cuda/cublaslt_gemm.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_ops.h"
#include "backends/cuda/cuda_op_table.h"
#include "backends/cuda/cudnn_conv.h"
#include "ops/op_registry.h"

namespace ramjet {

namespace cuda {
namespace {

using backend::Kernel;
using backend::RunArgs;
using backend::Tactic;
using backend::TensorRef;

cudaStream_t S(const RunArgs& a) { return static_cast<cudaStream_t>(a.stream); }

// Bookkeeping for the RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES knob (CudaBackend::allocate):
// allocations made while it is set, process-wide, under one lock (leaked on purpose: no exit order).
std::mutex& faultMutex() { static auto* m = new std::mutex; return *m; }
std::map<void*, size_t>& faultLive() { static auto* m = new std::map<void*, size_t>; return *m; }
size_t& faultHeld() { static size_t held = 0; return held; }
bool isF(DataType d) { return d == DataType::kFloat32 || d == DataType::kFloat16; }


// ---------------------------------------------------------------- unary / binary / misc
const std::map<std::string, UnaryOp>& unaryOps() {
  static const std::map<std::string, UnaryOp> m = {
      {"Relu", UnaryOp::kRelu}, {"Sigmoid", UnaryOp::kSigmoid}, {"Tanh", UnaryOp::kTanh},
      {"HardSigmoid", UnaryOp::kHardSigmoid}, {"HardSwish", UnaryOp::kHardSwish}, {"Gelu", UnaryOp::kGelu},
      {"Erf", UnaryOp::kErf}, {"Exp", UnaryOp::kExp}, {"Log", UnaryOp::kLog}, {"Sqrt", UnaryOp::kSqrt},
      {"Reciprocal", UnaryOp::kReciprocal}, {"Neg", UnaryOp::kNeg}, {"Abs", UnaryOp::kAbs},
      {"Clip", UnaryOp::kClip}, {"LeakyRelu", UnaryOp::kLeakyRelu}, {"Elu", UnaryOp::kElu},
      {"Selu", UnaryOp::kSelu}, {"Mish", UnaryOp::kMish}, {"Softplus", UnaryOp::kSoftplus},
      {"Floor", UnaryOp::kFloor}, {"Ceil", UnaryOp::kCeil}, {"Round", UnaryOp::kRound}, {"Sin", UnaryOp::kSin},
      {"Cos", UnaryOp::kCos}, {"Sign", UnaryOp::kSign}, {"Silu", UnaryOp::kSilu}};
  return m;
}
const std::map<std::string, BinaryOp>& binaryOps() {
  static const std::map<std::string, BinaryOp> m = {
      {"Add", BinaryOp::kAdd}, {"Sub", BinaryOp::kSub}, {"Mul", BinaryOp::kMul}, {"Div", BinaryOp::kDiv},
      {"Pow", BinaryOp::kPow}, {"Max", BinaryOp::kMax}, {"Min", BinaryOp::kMin}, {"Equal", BinaryOp::kEqual},
      {"Less", BinaryOp::kLess}, {"LessOrEqual", BinaryOp::kLessOrEqual}, {"Greater", BinaryOp::kGreater},
      {"GreaterOrEqual", BinaryOp::kGreaterOrEqual}, {"And", BinaryOp::kAnd}, {"Or", BinaryOp::kOr},
      {"Xor", BinaryOp::kXor}, {"PRelu", BinaryOp::kPRelu}, {"Mod", BinaryOp::kMod}};
  return m;
}

float hostScalar(const TensorRef& r, float def) {
  if (!r.host || r.host->numel() < 1) return def;
  return static_cast<float>(r.host->getDouble(0));
}

class UnaryKernel final : public Kernel {
 public:
  UnaryKernel(const Node& n, UnaryOp op) : n_(n), op_(op) {
    if (op == UnaryOp::kHardSigmoid) p_ = {n.attrFloat("alpha", 0.2f), n.attrFloat("beta", 0.5f)};
    if (op == UnaryOp::kLeakyRelu) p_.alpha = n.attrFloat("alpha", 0.01f);
    if (op == UnaryOp::kElu) p_.alpha = n.attrFloat("alpha", 1.f);
    if (op == UnaryOp::kSelu) p_ = {n.attrFloat("alpha", 1.67326319217681884765625f), n.attrFloat("gamma", 1.05070102214813232421875f)};
    if (op == UnaryOp::kGelu && n.attrString("approximate", "none") == "tanh") op_ = UnaryOp::kGeluTanh;
  }
  Status run(const RunArgs& a) override {
    UnaryParams p = p_;
    if (op_ == UnaryOp::kClip) {
      p.alpha = a.inputs.size() > 1 && a.inputs[1].data ? hostScalar(a.inputs[1], -INFINITY) : -INFINITY;
      p.beta = a.inputs.size() > 2 && a.inputs[2].data ? hostScalar(a.inputs[2], INFINITY) : INFINITY;
      if ((a.inputs.size() > 1 && a.inputs[1].data && !a.inputs[1].host) ||
          (a.inputs.size() > 2 && a.inputs[2].data && !a.inputs[2].host))
        return makeError(StatusCode::kUnsupported, n_.describe(), ": Clip bounds must be constants");
    }
    return unary(op_, a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, a.outputs[0].numel(), p, S(a));
  }

 private:
  const Node& n_;
  UnaryOp op_;
  UnaryParams p_;
};

class BinaryKernel final : public Kernel {
 public:
  explicit BinaryKernel(BinaryOp op) : op_(op) {}
  Status run(const RunArgs& a) override {
    return binary(op_, a.inputs[0].dtype, a.inputs[0].data, a.inputs[0].dims, a.inputs[1].data, a.inputs[1].dims,
                  a.outputs[0].data, a.outputs[0].dims, S(a));
  }

 private:
  BinaryOp op_;
};

// Reshape, Flatten, Squeeze, Unsqueeze, Identity when not aliased: a device copy.
class CopyKernel final : public Kernel {
 public:
  Status run(const RunArgs& a) override {
    size_t nb = a.outputs[0].nbytes();
    if (nb == 0 || a.inputs[0].data == a.outputs[0].data) return Status::Ok();
    RJ_CUDA_CHECK(cudaMemcpyAsync(a.outputs[0].data, a.inputs[0].data, nb, cudaMemcpyDeviceToDevice, S(a)));
    return Status::Ok();
  }
};

class CastKernel final : public Kernel {
 public:
  Status run(const RunArgs& a) override {
    if (a.inputs[0].dtype == a.outputs[0].dtype) return CopyKernel().run(a);
    return cast(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].dtype, a.outputs[0].data, a.outputs[0].numel(), S(a));
  }
};

class WhereKernel final : public Kernel {
 public:
  Status run(const RunArgs& a) override {
    return where(a.outputs[0].dtype, a.inputs[0].data, a.inputs[0].dims, a.inputs[1].data, a.inputs[1].dims,
                 a.inputs[2].data, a.inputs[2].dims, a.outputs[0].data, a.outputs[0].dims, S(a));
  }
};

class ExpandKernel final : public Kernel {
 public:
  Status run(const RunArgs& a) override {
    return broadcastCopy(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, a.inputs[0].dims, a.outputs[0].data,
                         a.outputs[0].dims, S(a));
  }
};

class TransposeKernel final : public Kernel {
 public:
  explicit TransposeKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    std::vector<int64_t> perm = n_.attrInts("perm");
    const int64_t r = static_cast<int64_t>(a.inputs[0].dims.size());
    if (perm.empty())
      for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
    return transpose(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, a.inputs[0].dims, perm, a.outputs[0].data, S(a));
  }

 private:
  const Node& n_;
};

class ConcatKernel final : public Kernel {
 public:
  explicit ConcatKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    int64_t axis = n_.attrInt("axis", 0);
    const auto& od = a.outputs[0].dims;
    RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(od.size()), n_));
    std::vector<const void*> ins;
    std::vector<int64_t> lens;
    for (const auto& in : a.inputs) {
      if (!in.data && in.dtype == DataType::kUndefined) continue;
      if (in.dims.size() != od.size()) continue;
      if (in.dims[axis] == 0) continue;
      ins.push_back(in.data);
      lens.push_back(in.dims[axis]);
    }
    std::vector<int64_t> rest = od;
    rest[axis] = 1;
    if (a.outputs[0].numel() == 0) return Status::Ok();
    return concat(dataTypeSize(a.outputs[0].dtype), ins, lens, rest, static_cast<int>(axis), a.outputs[0].data, S(a));
  }

 private:
  const Node& n_;
};

class SplitKernel final : public Kernel {
 public:
  explicit SplitKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    int64_t axis = n_.attrInt("axis", 0);
    const auto& id = a.inputs[0].dims;
    RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(id.size()), n_));
    std::vector<int64_t> lens;
    std::vector<void*> outs;
    for (const auto& o : a.outputs) {
      lens.push_back(o.dims.empty() ? 0 : o.dims[axis]);
      outs.push_back(o.data);
    }
    std::vector<int64_t> rest = id;
    rest[axis] = 1;
    return split(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, rest, static_cast<int>(axis), lens, outs, S(a));
  }

 private:
  const Node& n_;
};

class SliceKernel final : public Kernel {
 public:
  explicit SliceKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    const int64_t r = static_cast<int64_t>(d.size());
    for (size_t i = 1; i < a.inputs.size(); ++i)
      if (a.inputs[i].data && !a.inputs[i].host)
        return makeError(StatusCode::kUnsupported, n_.describe(), ": slice parameters must be known on the host");
    std::vector<int64_t> starts = a.inputs[1].host->toInt64Vector(), ends = a.inputs[2].host->toInt64Vector();
    std::vector<int64_t> axes, steps;
    if (a.inputs.size() > 3 && a.inputs[3].host) axes = a.inputs[3].host->toInt64Vector();
    if (a.inputs.size() > 4 && a.inputs[4].host) steps = a.inputs[4].host->toInt64Vector();
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (steps.empty()) steps.assign(starts.size(), 1);
    std::vector<int64_t> st(r, 0), sp(r, 1);
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t ax = axes[i];
      RJ_RETURN_IF_ERROR(ops::normalizeAxis(&ax, r, n_));
      int64_t dim = d[ax], s = starts[i], step = steps[i];
      if (step == 0) return makeError(StatusCode::kInvalidArgument, n_.describe(), ": step 0");
      if (s < 0) s += dim;
      s = step > 0 ? std::clamp<int64_t>(s, 0, dim) : std::clamp<int64_t>(s, 0, dim - 1);
      st[ax] = s;
      sp[ax] = step;
    }
    if (a.outputs[0].numel() == 0) return Status::Ok();
    return slice(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, d, st, sp, a.outputs[0].data, a.outputs[0].dims, S(a));
  }

 private:
  const Node& n_;
};

class GatherKernel final : public Kernel {
 public:
  explicit GatherKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    int64_t axis = n_.attrInt("axis", 0);
    const auto& d = a.inputs[0].dims;
    RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n_));
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; ++i) outer *= d[i];
    for (size_t i = axis + 1; i < d.size(); ++i) inner *= d[i];
    if (a.outputs[0].numel() == 0) return Status::Ok();
    return gather(dataTypeSize(a.inputs[0].dtype), a.inputs[0].data, outer, d[axis], inner, a.inputs[1].dtype,
                  a.inputs[1].data, a.inputs[1].numel(), a.outputs[0].data, nullptr, S(a));
  }

 private:
  const Node& n_;
};

class SoftmaxKernel final : public Kernel {
 public:
  SoftmaxKernel(const Node& n, bool log) : n_(n), log_(log) {}
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    int64_t axis = n_.attrInt("axis", -1);
    RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n_));
    int64_t outer = 1, inner = 1, len = d.empty() ? 1 : d[axis];
    if (n_.attrInt("coerce_2d", 0)) {
      for (int64_t i = 0; i < axis; ++i) outer *= d[i];
      len = 1;
      for (size_t i = axis; i < d.size(); ++i) len *= d[i];
    } else {
      for (int64_t i = 0; i < axis; ++i) outer *= d[i];
      for (size_t i = axis + 1; i < d.size(); ++i) inner *= d[i];
    }
    if (a.outputs[0].numel() == 0) return Status::Ok();
    return softmax(a.inputs[0].dtype, a.inputs[0].data, outer, len, inner, log_, a.outputs[0].data, S(a));
  }

 private:
  const Node& n_;
  bool log_;
};

class ReduceKernel final : public Kernel {
 public:
  ReduceKernel(const Node& n, ReduceOp op, bool global) : n_(n), op_(op), global_(global) {}
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    const int64_t r = static_cast<int64_t>(d.size());
    std::vector<int64_t> axes;
    if (global_) {
      for (int64_t i = 2; i < r; ++i) axes.push_back(i);
    } else {
      if (a.inputs.size() > 1 && a.inputs[1].data) {
        if (!a.inputs[1].host) return makeError(StatusCode::kUnsupported, n_.describe(), ": axes must be constant");
        axes = a.inputs[1].host->toInt64Vector();
      } else if (n_.hasAttr("axes")) {
        axes = n_.attrInts("axes");
      }
      if (axes.empty() && !n_.attrInt("noop_with_empty_axes", 0))
        for (int64_t i = 0; i < r; ++i) axes.push_back(i);
      for (auto& x : axes) RJ_RETURN_IF_ERROR(ops::normalizeAxis(&x, r, n_));
    }
    if (a.outputs[0].numel() == 0) return Status::Ok();
    return reduce(op_, a.inputs[0].dtype, a.inputs[0].data, d, axes, a.outputs[0].data, S(a));
  }

 private:
  const Node& n_;
  ReduceOp op_;
  bool global_;
};

class BatchNormKernel final : public Kernel {
 public:
  explicit BatchNormKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    int64_t n = d.empty() ? 1 : d[0], c = d.size() > 1 ? d[1] : 1, inner = 1;
    for (size_t i = 2; i < d.size(); ++i) inner *= d[i];
    return batchNormInference(a.inputs[0].dtype, a.inputs[0].data, a.inputs[1].data, a.inputs[2].data,
                              a.inputs[3].data, a.inputs[4].data, a.outputs[0].data, n, c, inner,
                              n_.attrFloat("epsilon", 1e-5f), S(a));
  }

 private:
  const Node& n_;
};

class LayerNormKernel final : public Kernel {
 public:
  explicit LayerNormKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    const auto& d = a.inputs[0].dims;
    int64_t axis = n_.attrInt("axis", -1);
    RJ_RETURN_IF_ERROR(ops::normalizeAxis(&axis, static_cast<int64_t>(d.size()), n_));
    int64_t rows = 1, cols = 1;
    for (int64_t i = 0; i < axis; ++i) rows *= d[i];
    for (size_t i = axis; i < d.size(); ++i) cols *= d[i];
    if (a.inputs[1].numel() != cols || (a.inputs.size() > 2 && a.inputs[2].data && a.inputs[2].numel() != cols))
      return makeError(StatusCode::kUnsupported, n_.describe(), ": broadcast scale/bias");
    float* mean = a.outputs.size() > 1 ? static_cast<float*>(a.outputs[1].data) : nullptr;
    float* inv = a.outputs.size() > 2 ? static_cast<float*>(a.outputs[2].data) : nullptr;
    return layerNorm(a.inputs[0].dtype, a.inputs[0].data, a.inputs[1].data,
                     a.inputs.size() > 2 ? a.inputs[2].data : nullptr, a.outputs[0].data, rows, cols,
                     n_.attrFloat("epsilon", 1e-5f), mean, inv, S(a));
  }

 private:
  const Node& n_;
};

// ---------------------------------------------------------------- pooling
Status poolParams(const Node& n, const TensorRef& x, const TensorRef& y, PoolParams* p) {
  const auto& d = x.dims;
  if (d.size() < 3 || d.size() > 5) return makeError(StatusCode::kUnsupported, n.describe(), ": pooling rank ", d.size());
  int sr = static_cast<int>(d.size()) - 2;
  p->spatial_rank = sr;
  p->n = d[0];
  p->c = d[1];
  auto k = n.attrInts("kernel_shape"), s = n.attrInts("strides"), dl = n.attrInts("dilations"), pads = n.attrInts("pads");
  std::string ap = n.attrString("auto_pad", "NOTSET");
  for (int i = 0; i < sr; ++i) {
    p->in[i] = d[2 + i];
    p->out[i] = y.dims[2 + i];
    p->kernel[i] = i < static_cast<int>(k.size()) ? k[i] : 1;
    p->stride[i] = i < static_cast<int>(s.size()) ? s[i] : 1;
    p->dilation[i] = i < static_cast<int>(dl.size()) ? dl[i] : 1;
    if (ap == "NOTSET" || ap == "VALID") {
      p->pad_begin[i] = pads.size() == static_cast<size_t>(2 * sr) && ap == "NOTSET" ? pads[i] : 0;
      p->pad_end[i] = pads.size() == static_cast<size_t>(2 * sr) && ap == "NOTSET" ? pads[sr + i] : 0;
    } else {
      int64_t total = std::max<int64_t>(0, (p->out[i] - 1) * p->stride[i] + (p->kernel[i] - 1) * p->dilation[i] + 1 - p->in[i]);
      p->pad_begin[i] = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
      p->pad_end[i] = total - p->pad_begin[i];
    }
  }
  p->count_include_pad = n.attrInt("count_include_pad", 0) != 0;
  return Status::Ok();
}

class PoolKernel final : public Kernel {
 public:
  PoolKernel(const Node& n, bool max) : n_(n), max_(max) {}
  Status run(const RunArgs& a) override {
    PoolParams p;
    RJ_RETURN_IF_ERROR(poolParams(n_, a.inputs[0], a.outputs[0], &p));
    if (a.outputs[0].numel() == 0) return Status::Ok();
    return max_ ? maxPool(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, p, S(a))
                : averagePool(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, p, S(a));
  }

 private:
  const Node& n_;
  bool max_;
};

class ResizeKernel final : public Kernel {
 public:
  explicit ResizeKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    ResizeParams p;
    std::string mode = n_.attrString("mode", "nearest");
    if (mode == "nearest") p.mode = ResizeMode::kNearest;
    else if (mode == "linear") p.mode = ResizeMode::kLinear;
    else return makeError(StatusCode::kUnsupported, n_.describe(), ": mode ", mode);
    std::string ct = n_.attrString("coordinate_transformation_mode", "half_pixel");
    static const std::map<std::string, CoordTransform> cts = {
        {"half_pixel", CoordTransform::kHalfPixel}, {"asymmetric", CoordTransform::kAsymmetric},
        {"align_corners", CoordTransform::kAlignCorners}, {"pytorch_half_pixel", CoordTransform::kPytorchHalfPixel},
        {"half_pixel_symmetric", CoordTransform::kHalfPixelSymmetric}};
    auto it = cts.find(ct);
    if (it == cts.end()) return makeError(StatusCode::kUnsupported, n_.describe(), ": coordinate mode ", ct);
    p.coord = it->second;
    std::string nm = n_.attrString("nearest_mode", "round_prefer_floor");
    p.nearest = nm == "floor" ? NearestMode::kFloor : nm == "ceil" ? NearestMode::kCeil
              : nm == "round_prefer_ceil" ? NearestMode::kRoundPreferCeil : NearestMode::kRoundPreferFloor;
    const auto& in = a.inputs[0].dims;
    const auto& out = a.outputs[0].dims;
    if (a.inputs.size() > 2 && a.inputs[2].host && a.inputs[2].host->numel() == static_cast<int64_t>(in.size())) {
      for (int64_t i = 0; i < a.inputs[2].host->numel(); ++i) p.scales.push_back(static_cast<float>(a.inputs[2].host->getDouble(i)));
    } else {
      for (size_t i = 0; i < in.size(); ++i) p.scales.push_back(in[i] ? static_cast<float>(out[i]) / in[i] : 1.f);
    }
    if (a.outputs[0].numel() == 0) return Status::Ok();
    return resize(a.inputs[0].dtype, a.inputs[0].data, in, a.outputs[0].data, out, p, S(a));
  }

 private:
  const Node& n_;
};

// ---------------------------------------------------------------- convolution (cuDNN)
Result<ConvDesc> convDesc(const Node& n, const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                          const std::vector<int64_t>& y, DataType dt, bool has_bias) {
  ConvDesc d;
  d.name = n.describe();
  d.dtype = dt;
  if (x.size() < 3 || x.size() > 5 || w.size() != x.size())
    return makeError(StatusCode::kUnsupported, n.describe(), ": convolution of rank ", x.size());
  int sr = static_cast<int>(x.size()) - 2;
  d.spatial_rank = sr;
  d.n = x[0];
  d.c = x[1];
  d.k = w[0];
  d.groups = n.attrInt("group", 1);
  d.has_bias = has_bias;
  auto s = n.attrInts("strides"), dl = n.attrInts("dilations"), pads = n.attrInts("pads");
  std::string ap = n.attrString("auto_pad", "NOTSET");
  for (int i = 0; i < sr; ++i) {
    d.in[i] = x[2 + i];
    d.kernel[i] = w[2 + i];
    d.stride[i] = i < static_cast<int>(s.size()) ? s[i] : 1;
    d.dilation[i] = i < static_cast<int>(dl.size()) ? dl[i] : 1;
    int64_t b = 0, e = 0;
    if (ap == "NOTSET" && pads.size() == static_cast<size_t>(2 * sr)) {
      b = pads[i];
      e = pads[sr + i];
    } else if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
      int64_t total = std::max<int64_t>(0, (y[2 + i] - 1) * d.stride[i] + (d.kernel[i] - 1) * d.dilation[i] + 1 - d.in[i]);
      b = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
      e = total - b;
    }
    if (b != e) return makeError(StatusCode::kUnsupported, n.describe(), ": asymmetric padding");
    d.pad[i] = b;
  }
  return d;
}

class ConvKernel final : public Kernel {
 public:
  ConvKernel(const Node& n, Handles* h, const Tactic& t) : n_(n), h_(h), tactic_(t.id), tuned_(t.tuned_dims) {}
  size_t workspaceBytes(const RunArgs& a) const override {
    auto e = entry(a);
    return e.ok() ? (*e)->algo.workspace : 0;
  }
  Status run(const RunArgs& a) override {
    RJ_ASSIGN_OR_RETURN(Entry * e, entry(a));
    if (a.outputs[0].numel() == 0) return Status::Ok();
    if (e->algo.workspace > a.workspace_bytes)
      return makeError(StatusCode::kInternal, n_.describe(), ": workspace ", a.workspace_bytes, " < ", e->algo.workspace);
    std::lock_guard<std::mutex> lock(h_->cudnn_mu);
    return e->conv->run(e->algo, a.inputs[0].data, a.inputs[1].data, a.inputs.size() > 2 ? a.inputs[2].data : nullptr,
                        a.outputs[0].data, a.workspace, a.workspace_bytes, S(a));
  }
  struct Entry {
    std::unique_ptr<CudnnConv> conv;
    ConvAlgo algo;
  };
  Result<Entry*> entry(const RunArgs& a) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto key = a.inputs[0].dims;
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second.get();
    bool bias = a.inputs.size() > 2 && a.inputs[2].dtype != DataType::kUndefined;
    RJ_ASSIGN_OR_RETURN(ConvDesc d, convDesc(n_, a.inputs[0].dims, a.inputs[1].dims, a.outputs[0].dims, a.inputs[0].dtype, bias));
    auto e = std::make_unique<Entry>();
    RJ_ASSIGN_OR_RETURN(e->conv, CudnnConv::create(h_->cudnn->get(), d));
    RJ_ASSIGN_OR_RETURN(auto cands, e->conv->candidates(size_t{1} << 30));
    if (cands.empty())
      return makeError(StatusCode::kUnsupported, n_.describe(), ": cuDNN offers no convolution algorithm for input ",
                       dimsToString(key), " within a 1 GiB workspace");
    e->algo = cands[0];
    if (tuned_.empty() || tuned_ == key)
      for (const auto& c : cands)
        if (c.algo * 10 + c.math_type == tactic_) e->algo = c;
    Entry* raw = e.get();
    cache_[key] = std::move(e);
    return raw;
  }

 private:
  const Node& n_;
  Handles* h_;
  int32_t tactic_;
  std::vector<int64_t> tuned_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, std::unique_ptr<Entry>> cache_;
};

// ---------------------------------------------------------------- GEMM / MatMul (cuBLASLt)
struct GemmPlan {
  GemmDesc desc;
  bool bias_from_c = false;
  float alpha = 1, beta = 0;
  bool use_c = false;
};

Result<GemmPlan> gemmPlan(const Node& n, const std::vector<TensorRef>& in, const std::vector<TensorRef>& out) {
  GemmPlan g;
  GemmDesc& d = g.desc;
  d.name = n.describe();
  d.dtype = in[0].dtype;
  if (n.op_type == "Gemm") {
    d.trans_a = n.attrInt("transA", 0) != 0;
    d.trans_b = n.attrInt("transB", 0) != 0;
    const auto& A = in[0].dims;
    const auto& B = in[1].dims;
    if (A.size() != 2 || B.size() != 2) return makeError(StatusCode::kUnsupported, n.describe(), ": Gemm of rank != 2");
    d.m = d.trans_a ? A[1] : A[0];
    d.k = d.trans_a ? A[0] : A[1];
    d.n = d.trans_b ? B[0] : B[1];
    g.alpha = n.attrFloat("alpha", 1.f);
    g.beta = n.attrFloat("beta", 1.f);
    if (in.size() > 2 && in[2].dtype != DataType::kUndefined) {
      const auto& C = in[2].dims;
      int64_t cn = numElements(C);
      if (cn == d.n && (C.size() == 1 || (C.size() == 2 && C[0] == 1)) && g.beta == 1.f) {
        d.has_bias = true;
        g.bias_from_c = true;
      } else if (C.size() == 2 && C[0] == d.m && C[1] == d.n) {
        g.use_c = true;
      } else {
        return makeError(StatusCode::kUnsupported, n.describe(), ": Gemm C of shape ", dimsToString(C));
      }
    } else {
      g.beta = 0;
    }
    return g;
  }
  // MatMul: numpy semantics over batch dims.
  auto A = in[0].dims, B = in[1].dims;
  if (A.size() < 2 || B.size() < 1) return makeError(StatusCode::kUnsupported, n.describe(), ": MatMul of rank < 2");
  if (B.size() == 1) return makeError(StatusCode::kUnsupported, n.describe(), ": MatMul with a vector");
  int64_t M = A[A.size() - 2], K = A.back(), N = B.back();
  int64_t batch_a = numElements(std::vector<int64_t>(A.begin(), A.end() - 2));
  int64_t batch_b = numElements(std::vector<int64_t>(B.begin(), B.end() - 2));
  int64_t batch_o = numElements(std::vector<int64_t>(out[0].dims.begin(), out[0].dims.end() - 2));
  d.k = K;
  d.n = N;
  if (batch_b == 1) {  // weights: fold A's batch into M
    d.m = M * batch_a;
    d.batch = 1;
    return g;
  }
  if (batch_a == batch_o && batch_b == batch_o) {
    std::vector<int64_t> ba(A.begin(), A.end() - 2), bb(B.begin(), B.end() - 2);
    if (ba != bb) return makeError(StatusCode::kUnsupported, n.describe(), ": MatMul batch broadcast");
    d.m = M;
    d.batch = batch_o;
    return g;
  }
  if (batch_a == 1 && batch_b == batch_o) {
    d.m = M;
    d.batch = batch_o;
    d.stride_a = 0;
    return g;
  }
  return makeError(StatusCode::kUnsupported, n.describe(), ": MatMul batch broadcast ", dimsToString(A), " x ",
                   dimsToString(B));
}

class GemmKernel final : public Kernel {
 public:
  GemmKernel(const Node& n, Handles* h, const Tactic& t) : n_(n), h_(h), tactic_(t.id), tuned_(t.tuned_dims) {}
  size_t workspaceBytes(const RunArgs& a) const override {
    auto e = entry(a);
    return e.ok() ? (*e)->algo.workspace : 0;
  }
  Status run(const RunArgs& a) override {
    RJ_ASSIGN_OR_RETURN(Entry * e, entry(a));
    if (a.outputs[0].numel() == 0) return Status::Ok();
    if (e->plan.desc.k == 0)
      return makeError(StatusCode::kUnsupported, n_.describe(), ": K = 0");
    const void* c = e->plan.use_c ? a.inputs[2].data : nullptr;
    const void* bias = e->plan.bias_from_c ? a.inputs[2].data : nullptr;
    return e->gemm->run(e->algo, a.inputs[0].data, a.inputs[1].data, c, a.outputs[0].data, bias, e->plan.alpha,
                        e->plan.use_c ? e->plan.beta : 0.f, a.workspace, a.workspace_bytes, S(a));
  }
  struct Entry {
    GemmPlan plan;
    std::unique_ptr<CublasLtGemm> gemm;
    GemmAlgo algo;
  };
  Result<Entry*> entry(const RunArgs& a) const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int64_t> key = a.inputs[0].dims;
    key.push_back(-1);
    key.insert(key.end(), a.inputs[1].dims.begin(), a.inputs[1].dims.end());
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second.get();
    auto e = std::make_unique<Entry>();
    RJ_ASSIGN_OR_RETURN(e->plan, gemmPlan(n_, a.inputs, a.outputs));
    RJ_ASSIGN_OR_RETURN(e->gemm, CublasLtGemm::create(h_->lt->get(), e->plan.desc));
    RJ_ASSIGN_OR_RETURN(auto cands, e->gemm->candidates(4, size_t{64} << 20));
    if (cands.empty()) return makeError(StatusCode::kUnsupported, n_.describe(), ": cuBLASLt has no algorithm");
    size_t pick = tuned_.empty() || tuned_ == a.inputs[0].dims ? static_cast<size_t>(std::max(tactic_, 0)) : 0;
    e->algo = cands[std::min<size_t>(pick, cands.size() - 1)];
    Entry* raw = e.get();
    cache_[key] = std::move(e);
    return raw;
  }

 private:
  const Node& n_;
  Handles* h_;
  int32_t tactic_;
  std::vector<int64_t> tuned_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, std::unique_ptr<Entry>> cache_;
};

// ---------------------------------------------------------------- recording (CUDA graphs)
class GraphRecording final : public backend::Recording {
 public:
  ~GraphRecording() override {
    if (exec) cudaGraphExecDestroy(exec);
  }
  cudaGraphExec_t exec = nullptr;
  int runs = 0;
};

class CudaBackend final : public backend::Backend {
 public:
  static Result<std::unique_ptr<backend::Backend>> create(int index) {
    if (!deviceAvailable()) return Status(StatusCode::kDeviceError, "no CUDA device is available");
    auto b = std::unique_ptr<CudaBackend>(new CudaBackend());
    RJ_CUDA_CHECK(cudaSetDevice(index));
    cudaDeviceProp prop{};
    RJ_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
    b->info_.name = prop.name;
    b->info_.cc_major = prop.major;
    b->info_.cc_minor = prop.minor;
    b->info_.total_memory = prop.totalGlobalMem;
    b->h_.cc_major = prop.major;
    b->h_.cc_minor = prop.minor;
    cudaRuntimeGetVersion(&b->info_.cuda_runtime_version);
    b->info_.cudnn_version = static_cast<int>(CudnnHandle::version());
    b->info_.cublas_version = static_cast<int>(CublasLtHandle::version());
    RJ_ASSIGN_OR_RETURN(b->h_.cudnn, CudnnHandle::create());
    RJ_ASSIGN_OR_RETURN(b->h_.lt, CublasLtHandle::create());
    return std::unique_ptr<backend::Backend>(std::move(b));
  }
  DeviceKind kind() const override { return DeviceKind::kCuda; }
  const backend::DeviceInfo& device() const override { return info_; }

  Status supports(const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out) const override {
    auto no = [&](auto&&... why) { return makeError(StatusCode::kUnsupported, n.describe(), ": ", why...); };
    const std::string& op = n.op_type;
    if (op == "Fp8Gemm" && h_.cc_major * 10 + h_.cc_minor < 89)
      return no("FP8 GEMMs need compute capability 8.9 or newer (this GPU is ", h_.cc_major, ".", h_.cc_minor, ")");
    if (const CudaOpHandler* x = cudaOpTable().find(op)) return x->supports(n, in, out);
    DataType dt = in.empty() ? DataType::kUndefined : in[0].dtype;
    if (unaryOps().count(op)) return isF(dt) || op == "Relu" || op == "Neg" || op == "Abs" || op == "Sign" ? Status::Ok() : no(dataTypeName(dt), " input");
    if (binaryOps().count(op)) {
      if (in.size() == 2 && in[0].dtype != in[1].dtype && op != "PRelu") return no("mixed input types");
      return Status::Ok();
    }
    if (backend::isAliasOp(op) || op == "Cast" || op == "Where" || op == "Expand" || op == "Transpose" ||
        op == "Concat" || op == "Split" || op == "Slice" || op == "Gather")
      return Status::Ok();
    if (op == "Softmax" || op == "LogSoftmax" || op == "BatchNormalization" || op == "LayerNormalization" ||
        op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" || op == "GlobalMaxPool" ||
        op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax" || op == "ReduceMin" || op == "Resize") {
      if (!isF(dt)) return no(dataTypeName(dt), " input (f32/f16 only)");
      if (op == "MaxPool" && n.outputs.size() > 1 && n.outputs[1]) return no("MaxPool indices output");
      if (op == "BatchNormalization" && n.outputs.size() > 1 && n.outputs[1]) return no("training-mode BatchNormalization");
      if (op == "Resize" && n.attrString("mode", "nearest") == "cubic") return no("cubic Resize");
      return Status::Ok();
    }
    if (op == "Conv") {
      if (!isF(dt)) return no(dataTypeName(dt), " convolution");
      if (in.size() < 2 || !n.inputs[1] || !n.inputs[1]->constant) return no("weights must be constant");
      auto pads = n.attrInts("pads");
      size_t sr = pads.size() / 2;
      for (size_t i = 0; i < sr; ++i)
        if (pads[i] != pads[sr + i]) return no("asymmetric padding");
      return Status::Ok();
    }
    if (op == "Gemm" || op == "MatMul") {
      if (!isF(dt)) return no(dataTypeName(dt), " matrix multiply");
      if (op == "MatMul" && in.size() == 2 && in[1].shape.rank_known && in[1].shape.rank() < 2) return no("vector operand");
      return Status::Ok();
    }
    return no("no CUDA kernel for ", op, " yet");
  }

  bool hasKernelFor(const std::string& op) const override {
    static const std::set<std::string> builtin = {
        "Cast", "Where", "Expand", "Transpose", "Concat", "Split", "Slice", "Gather", "Softmax", "LogSoftmax",
        "BatchNormalization", "LayerNormalization", "MaxPool", "AveragePool", "GlobalAveragePool",
        "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "Resize", "Conv", "Gemm", "MatMul"};
    return cudaOpTable().find(op) || unaryOps().count(op) || binaryOps().count(op) || backend::isAliasOp(op) ||
           builtin.count(op);
  }

  bool readsOnHost(const Node& n, size_t i) const override {
    const std::string& op = n.op_type;
    if (const CudaOpHandler* x = cudaOpTable().find(op)) return x->reads_on_host && x->reads_on_host(n, i);
    if (i == 0) return false;
    return backend::isAliasOp(op) || op == "Slice" || op == "Resize" || op == "Clip" || op == "Expand" ||
           op.rfind("Reduce", 0) == 0;
  }

  std::vector<Tactic> tactics(const Node& n, const std::vector<TensorType>& in,
                              const std::vector<TensorType>& out) const override {
    const std::string& op = n.op_type;
    if (const CudaOpHandler* x = cudaOpTable().find(op))
      return x->tactics ? x->tactics(n, in, out, h_) : std::vector<Tactic>{Tactic{"cuda." + op, 0}};
    if (op == "Conv" && in.size() >= 2 && in[0].shape.fullyKnown() && in[1].shape.fullyKnown() && out[0].shape.fullyKnown()) {
      auto d = convDesc(n, in[0].shape.concrete(), in[1].shape.concrete(), out[0].shape.concrete(), in[0].dtype,
                        in.size() > 2 && in[2].dtype != DataType::kUndefined);
      if (d.ok()) {
        auto conv = CudnnConv::create(h_.cudnn->get(), *d);
        if (conv.ok()) {
          auto cands = (*conv)->candidates(size_t{1} << 30);
          if (cands.ok()) {
            std::vector<Tactic> t;
            for (size_t i = 0; i < cands->size() && i < 4; ++i)
              t.push_back(Tactic{"cuda.conv.cudnn", (*cands)[i].algo * 10 + (*cands)[i].math_type});
            if (!t.empty()) return t;
          }
        }
      }
      return {Tactic{"cuda.conv.cudnn", -1}};
    }
    if (op == "Gemm" || op == "MatMul") return {{"cuda.gemm.cublaslt", 0}, {"cuda.gemm.cublaslt", 1}, {"cuda.gemm.cublaslt", 2}};
    return {Tactic{"cuda." + op, 0}};
  }

  Result<std::unique_ptr<Kernel>> createKernel(const Node& n, const Tactic& t) override {
    const std::string& op = n.op_type;
    auto mk = [](Kernel* k) { return Result<std::unique_ptr<Kernel>>(std::unique_ptr<Kernel>(k)); };
    if (const CudaOpHandler* x = cudaOpTable().find(op)) return x->create(n, t, h_);
    auto u = unaryOps().find(op);
    if (u != unaryOps().end()) return mk(new UnaryKernel(n, u->second));
    auto b = binaryOps().find(op);
    if (b != binaryOps().end()) return mk(new BinaryKernel(b->second));
    if (backend::isAliasOp(op)) return mk(new CopyKernel());
    if (op == "Cast") return mk(new CastKernel());
    if (op == "Where") return mk(new WhereKernel());
    if (op == "Expand") return mk(new ExpandKernel());
    if (op == "Transpose") return mk(new TransposeKernel(n));
    if (op == "Concat") return mk(new ConcatKernel(n));
    if (op == "Split") return mk(new SplitKernel(n));
    if (op == "Slice") return mk(new SliceKernel(n));
    if (op == "Gather") return mk(new GatherKernel(n));
    if (op == "Softmax" || op == "LogSoftmax") return mk(new SoftmaxKernel(n, op == "LogSoftmax"));
    if (op == "BatchNormalization") return mk(new BatchNormKernel(n));
    if (op == "LayerNormalization") return mk(new LayerNormKernel(n));
    if (op == "MaxPool" || op == "AveragePool") return mk(new PoolKernel(n, op == "MaxPool"));
    if (op == "GlobalAveragePool") return mk(new ReduceKernel(n, ReduceOp::kMean, true));
    if (op == "GlobalMaxPool") return mk(new ReduceKernel(n, ReduceOp::kMax, true));
    if (op == "ReduceMean") return mk(new ReduceKernel(n, ReduceOp::kMean, false));
    if (op == "ReduceSum") return mk(new ReduceKernel(n, ReduceOp::kSum, false));
    if (op == "ReduceMax") return mk(new ReduceKernel(n, ReduceOp::kMax, false));
    if (op == "ReduceMin") return mk(new ReduceKernel(n, ReduceOp::kMin, false));
    if (op == "Resize") return mk(new ResizeKernel(n));
    if (op == "Conv") return mk(new ConvKernel(n, &h_, t));
    if (op == "Gemm" || op == "MatMul") return mk(new GemmKernel(n, &h_, t));
    return makeError(StatusCode::kInvalidPlan, n.describe(), ": the CUDA backend has no kernel '", t.name, "'");
  }

  Result<void*> allocate(size_t bytes) override {
    // Fault injection (docs/HARDENING.md): RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES=N refuses, as a
    // full device would, any allocation that would take the bytes held through allocate() while
    // the variable is set above N. Read on every call so a test can move the budget.
    const char* fault = std::getenv("RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES");
    size_t budget = SIZE_MAX;
    if (fault && *fault) {
      char* end = nullptr;
      errno = 0;
      unsigned long long v = std::strtoull(fault, &end, 10);
      if (*end || errno || fault[0] == '-')
        return makeError(StatusCode::kInvalidArgument, "RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES='", fault,
                         "' is not a byte count");
      budget = static_cast<size_t>(v);
    }
    size_t take = std::max<size_t>(bytes, 256);
    std::lock_guard<std::mutex> lock(faultMutex());
    if (budget != SIZE_MAX && (take > budget || faultHeld() > budget - take))
      return makeError(StatusCode::kOutOfMemory, "cudaMalloc(", bytes, " bytes) refused by fault injection: ",
                       faultHeld(), " bytes held, RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES=", budget);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, take);
    if (e != cudaSuccess) {
      cudaGetLastError();
      return makeError(e == cudaErrorMemoryAllocation ? StatusCode::kOutOfMemory : StatusCode::kDeviceError,
                       "cudaMalloc(", bytes, " bytes) failed: ", cudaGetErrorString(e));
    }
    if (budget != SIZE_MAX) {
      faultLive()[p] = take;
      faultHeld() += take;
    }
    return p;
  }
  void release(void* p) override {
    if (!p) return;
    {
      std::lock_guard<std::mutex> lock(faultMutex());
      auto it = faultLive().find(p);
      if (it != faultLive().end()) {
        faultHeld() -= it->second;
        faultLive().erase(it);
      }
    }
    cudaFree(p);
  }
  Result<void*> allocateHost(size_t bytes) override {
    void* p = nullptr;
    cudaError_t e = cudaMallocHost(&p, std::max<size_t>(bytes, 256));
    if (e != cudaSuccess) {
      cudaGetLastError();
      return makeError(StatusCode::kOutOfMemory, "cudaMallocHost(", bytes, " bytes) failed: ", cudaGetErrorString(e));
    }
    return p;
  }
  void releaseHost(void* p) override {
    if (p) cudaFreeHost(p);
  }
  Status copy(void* dst, const void* src, size_t bytes, Copy dir, void* stream) override {
    if (!bytes) return Status::Ok();
    cudaMemcpyKind k = dir == Copy::kHostToDevice ? cudaMemcpyHostToDevice
                     : dir == Copy::kDeviceToHost ? cudaMemcpyDeviceToHost : cudaMemcpyDeviceToDevice;
    RJ_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, k, static_cast<cudaStream_t>(stream)));
    return Status::Ok();
  }
  Status memset(void* dst, int v, size_t bytes, void* stream) override {
    if (!bytes) return Status::Ok();
    RJ_CUDA_CHECK(cudaMemsetAsync(dst, v, bytes, static_cast<cudaStream_t>(stream)));
    return Status::Ok();
  }
  Status synchronize(void* stream) override {
    RJ_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)));
    return Status::Ok();
  }
  Result<void*> createStream() override {
    cudaStream_t s = nullptr;
    RJ_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return static_cast<void*>(s);
  }
  void destroyStream(void* s) override {
    if (s) cudaStreamDestroy(static_cast<cudaStream_t>(s));
  }

  Status execute(std::unique_ptr<backend::Recording>* slot, bool invalidate,
                 const std::function<Status(void*)>& launches, void* stream) override {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    if (!s || std::getenv("RAMJET_NO_CUDA_GRAPHS")) return launches(stream);  // legacy stream cannot capture
    if (invalidate || !*slot) slot->reset(new GraphRecording());
    auto* rec = static_cast<GraphRecording*>(slot->get());
    if (rec->exec) {
      RJ_CUDA_CHECK(cudaGraphLaunch(rec->exec, s));
      return Status::Ok();
    }
    if (rec->runs++ == 0) return launches(stream);  // first run: lazy library state warms up eagerly
    cudaGraph_t graph = nullptr;
    RJ_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    Status st = launches(stream);
    cudaError_t end = cudaStreamEndCapture(s, &graph);
    if (!st.ok()) {
      if (graph) cudaGraphDestroy(graph);
      return st;
    }
    if (end != cudaSuccess) return cudaError(end, "cudaStreamEndCapture", __FILE__, __LINE__);
    cudaError_t inst = cudaGraphInstantiate(&rec->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (inst != cudaSuccess) return cudaError(inst, "cudaGraphInstantiate", __FILE__, __LINE__);
    RJ_CUDA_CHECK(cudaGraphLaunch(rec->exec, s));
    return Status::Ok();
  }

  // Tactic timing measures what the runtime will run: the launches replayed from a CUDA graph,
  // so host-side launch cost (large for some cuDNN paths, invisible under graph replay) does not
  // pick a kernel that is slower on the GPU. Falls back to timing plain launches when the
  // candidate cannot be captured.
  Result<double> timeMs(const std::function<Status(void*)>& fn, int iterations, void* stream) override {
    if (!std::getenv("RAMJET_NO_CUDA_GRAPHS")) {
      auto g = timeInGraph(fn, iterations);
      if (g.ok()) return g;
    }
    return timeLaunches(fn, iterations, stream);
  }

  Result<double> timeInGraph(const std::function<Status(void*)>& fn, int iterations) {
    cudaStream_t s = nullptr;
    RJ_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    cudaEvent_t a = nullptr, b = nullptr;
    Status st = [&]() -> Status {
      RJ_RETURN_IF_ERROR(fn(s));  // warm-up: lazy library state outside the capture
      RJ_CUDA_CHECK(cudaStreamSynchronize(s));
      RJ_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
      Status run = Status::Ok();
      for (int i = 0; i < iterations && run.ok(); ++i) run = fn(s);
      cudaError_t end = cudaStreamEndCapture(s, &graph);
      RJ_RETURN_IF_ERROR(run);
      if (end != cudaSuccess) return cudaError(end, "cudaStreamEndCapture", __FILE__, __LINE__);
      RJ_CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      RJ_CUDA_CHECK(cudaGraphLaunch(exec, s));  // warm the graph
      RJ_CUDA_CHECK(cudaEventCreate(&a));
      RJ_CUDA_CHECK(cudaEventCreate(&b));
      RJ_CUDA_CHECK(cudaEventRecord(a, s));
      RJ_CUDA_CHECK(cudaGraphLaunch(exec, s));
      RJ_CUDA_CHECK(cudaEventRecord(b, s));
      RJ_CUDA_CHECK(cudaEventSynchronize(b));
      return Status::Ok();
    }();
    float ms = 0;
    if (st.ok()) cudaEventElapsedTime(&ms, a, b);
    cudaStreamSynchronize(s);
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    cudaStreamDestroy(s);
    if (!st.ok()) {
      (void)cudaGetLastError();  // a refused capture leaves a sticky-free error: clear it
      return st;
    }
    return static_cast<double>(ms) / std::max(iterations, 1);
  }

  Result<double> timeLaunches(const std::function<Status(void*)>& fn, int iterations, void* stream) {
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    RJ_RETURN_IF_ERROR(fn(stream));
    cudaEvent_t a, b;
    RJ_CUDA_CHECK(cudaEventCreate(&a));
    RJ_CUDA_CHECK(cudaEventCreate(&b));
    Status st = [&]() -> Status {
      RJ_CUDA_CHECK(cudaEventRecord(a, s));
      for (int i = 0; i < iterations; ++i) RJ_RETURN_IF_ERROR(fn(stream));
      RJ_CUDA_CHECK(cudaEventRecord(b, s));
      RJ_CUDA_CHECK(cudaEventSynchronize(b));
      return Status::Ok();
    }();
    float ms = 0;
    if (st.ok()) cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    RJ_RETURN_IF_ERROR(st);
    return static_cast<double>(ms) / std::max(iterations, 1);
  }

 private:
  CudaBackend() = default;
  backend::DeviceInfo info_;
  mutable Handles h_;
};

}  // namespace

Result<std::unique_ptr<backend::Backend>> createCudaBackend(int device_index) { return CudaBackend::create(device_index); }

}  // namespace cuda

Status registerCudaBackend() {
  backend::registerBackendFactory(DeviceKind::kCuda, [](int index) { return cuda::createCudaBackend(index); });
  return Status::Ok();
}

}  // namespace ramjet
