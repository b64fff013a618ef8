// Shape function of FusedConv (fused_conv.h) and the activation/layout helpers it shares with
// the reference kernel, the passes and the CUDA kernel. The geometry is Conv's: a channels-last
// node is checked by viewing its operands channels-first and calling inferConv.
#include "ops/fused_conv.h"

#include <algorithm>
#include <cstring>

#include "ops/op_registry.h"

namespace ramjet::ops {

const char* convActName(ConvAct a) {
  switch (a) {
    case ConvAct::kNone: return "none";
    case ConvAct::kRelu: return "relu";
    case ConvAct::kLeakyRelu: return "leaky_relu";
    case ConvAct::kSigmoid: return "sigmoid";
    case ConvAct::kTanh: return "tanh";
    case ConvAct::kSilu: return "silu";
    case ConvAct::kHardSwish: return "hard_swish";
    case ConvAct::kHardSigmoid: return "hard_sigmoid";
    case ConvAct::kClip: return "clip";
    case ConvAct::kMish: return "mish";
    case ConvAct::kGelu: return "gelu";
  }
  return "?";
}

Result<ConvActivation> parseConvActivation(const Node& node) {
  const std::string name = node.attrString("activation", "none");
  ConvActivation a;
  bool found = false;
  for (int i = 0; i <= static_cast<int>(ConvAct::kGelu); ++i) {
    if (name == convActName(static_cast<ConvAct>(i))) {
      a.kind = static_cast<ConvAct>(i);
      found = true;
    }
  }
  if (!found)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": unknown activation '", name,
                     "' (none, relu, leaky_relu, sigmoid, tanh, silu, hard_swish, hard_sigmoid, "
                     "clip, mish, gelu)");
  const float inf = std::numeric_limits<float>::infinity();
  switch (a.kind) {
    case ConvAct::kLeakyRelu: a.alpha = node.attrFloat("alpha", 0.01f); break;
    case ConvAct::kHardSigmoid:
      a.alpha = node.attrFloat("alpha", 0.2f);
      a.beta = node.attrFloat("beta", 0.5f);
      break;
    case ConvAct::kClip:
      a.alpha = node.attrFloat("alpha", -inf);
      a.beta = node.attrFloat("beta", inf);
      if (a.alpha > a.beta)
        return makeError(StatusCode::kInvalidModel, node.describe(), ": clip min ", a.alpha,
                         " > max ", a.beta);
      break;
    default: break;
  }
  return a;
}

Result<bool> parseConvLayoutNhwc(const Node& node) {
  const std::string l = node.attrString("layout", "NCHW");
  if (l == "NCHW") return false;
  if (l == "NHWC") return true;
  return makeError(StatusCode::kInvalidModel, node.describe(), ": layout '", l,
                   "' must be NCHW or NHWC");
}

std::vector<int64_t> toChannelsLastPerm(size_t rank) {
  std::vector<int64_t> p = {0};
  for (size_t i = 2; i < rank; ++i) p.push_back(static_cast<int64_t>(i));
  if (rank > 1) p.push_back(1);
  return p;
}

std::vector<int64_t> toChannelsFirstPerm(size_t rank) {
  std::vector<int64_t> p = {0};
  if (rank > 1) p.push_back(static_cast<int64_t>(rank) - 1);
  for (size_t i = 1; i + 1 < rank; ++i) p.push_back(static_cast<int64_t>(i));
  return p;
}

Tensor permuteTensor(const Tensor& in, const std::vector<int64_t>& perm) {
  const size_t r = in.rank();
  RJ_CHECK(perm.size() == r);
  std::vector<int64_t> od(r);
  for (size_t d = 0; d < r; ++d) od[d] = in.dim(static_cast<int>(perm[d]));
  Tensor out(in.dtype(), od);
  const std::vector<int64_t> is = stridesOf(in.dims());
  std::vector<int64_t> src_stride(r);
  for (size_t d = 0; d < r; ++d) src_stride[d] = is[perm[d]];
  const size_t es = dataTypeSize(in.dtype());
  const auto* src = static_cast<const uint8_t*>(in.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < out.numel(); ++i) {
    std::memcpy(dst + i * es, src + off * es, es);
    for (int d = static_cast<int>(r) - 1; d >= 0; --d) {
      off += src_stride[d];
      if (++idx[d] < od[d]) break;
      off -= src_stride[d] * od[d];
      idx[d] = 0;
    }
  }
  return out;
}

namespace {
Shape permuteShape(const Shape& s, const std::vector<int64_t>& perm) {
  if (!s.rank_known || s.rank() != perm.size()) return s;
  Shape o = s;
  for (size_t i = 0; i < perm.size(); ++i) o.dims[i] = s.dims[perm[i]];
  return o;
}
}  // namespace

Status inferFusedConv(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(parseConvActivation(ctx.node()).status());
  RJ_ASSIGN_OR_RETURN(bool nhwc, parseConvLayoutNhwc(ctx.node()));
  std::vector<TensorType> types;
  for (size_t i = 0; i < std::min<size_t>(ctx.numInputs(), 3); ++i) {
    TensorType t = ctx.input(i);
    if (nhwc && i < 2 && t.shape.rank_known) {
      if (t.shape.rank() < 3)
        return ctx.error(i == 0 ? "X " : "W ", t.shape.toString(), " must have rank >= 3");
      t.shape = permuteShape(t.shape, toChannelsFirstPerm(t.shape.rank()));
    }
    types.push_back(t);
  }
  InferContext conv(ctx.node(), types, std::vector<const Tensor*>(types.size(), nullptr));
  RJ_RETURN_IF_ERROR(inferConv(conv));
  TensorType out = conv.outputs()[0];
  if (nhwc && out.shape.rank_known) out.shape = permuteShape(out.shape, toChannelsLastPerm(out.shape.rank()));
  if (ctx.hasInput(3)) {
    if (ctx.dtype(3) != out.dtype)
      return ctx.error("residual Z is ", dataTypeName(ctx.dtype(3)), " but X is ", dataTypeName(out.dtype));
    const Shape& z = ctx.shape(3);
    if (z.rank_known && out.shape.rank_known) {
      bool ok = z.rank() == out.shape.rank();
      for (size_t i = 0; ok && i < z.rank(); ++i)
        ok = !(z.dims[i].known() && out.shape.dims[i].known() && z.dims[i].value != out.shape.dims[i].value);
      if (!ok)
        return ctx.error("residual Z ", z.toString(), " must have the output's shape ", out.shape.toString());
      // Z's known dims fill symbolic output dims (same tensor shape by construction).
      for (size_t i = 0; i < z.rank(); ++i)
        if (!out.shape.dims[i].known() && z.dims[i].known()) out.shape.dims[i] = z.dims[i];
    }
  }
  ctx.setOutput(0, out.dtype, out.shape);
  return Status::Ok();
}

Status inferPoolNhwc(InferContext& ctx) {
  const std::string mode = ctx.node().attrString("mode", "");
  if (mode != "max" && mode != "average")
    return ctx.error("mode '", mode, "' must be max or average");
  TensorType t = ctx.input(0);
  if (t.shape.rank_known) {
    if (t.shape.rank() < 3) return ctx.error("X ", t.shape.toString(), " must have rank >= 3");
    t.shape = permuteShape(t.shape, toChannelsFirstPerm(t.shape.rank()));
  }
  InferContext pool(ctx.node(), {t}, {nullptr});
  RJ_RETURN_IF_ERROR(mode == "max" ? inferMaxPool(pool) : inferAveragePool(pool));
  TensorType out = pool.outputs()[0];
  if (out.shape.rank_known) out.shape = permuteShape(out.shape, toChannelsLastPerm(out.shape.rank()));
  ctx.setOutput(0, out.dtype, out.shape);
  return Status::Ok();
}

}  // namespace ramjet::ops
