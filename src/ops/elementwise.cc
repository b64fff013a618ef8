// Shape/type inference for elementwise ops (see ops_elementwise.def). Each op names the type
// classes the ONNX spec allows for it; inputs outside them are a clear error naming the input.
#include <string>

#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// Type classes an op accepts.
enum : unsigned {
  kF = 1,  // f16, bf16, f32, f64
  kS = 2,  // signed ints
  kU = 4,  // unsigned ints
  kB = 8,  // bool
  kI = kS | kU,
  kNum = kF | kI,
  kAny = kNum | kB,
};

unsigned classOf(DataType t) {
  if (t == DataType::kBool) return kB;
  if (isFloatType(t)) return kF;
  switch (t) {
    case DataType::kInt8: case DataType::kInt16: case DataType::kInt32: case DataType::kInt64:
      return kS;
    case DataType::kUInt8: case DataType::kUInt16: case DataType::kUInt32: case DataType::kUInt64:
      return kU;
    default: return 0;  // string, undefined
  }
}

std::string classNames(unsigned c) {
  std::string s;
  auto add = [&](unsigned bit, const char* name) {
    if (c & bit) s += (s.empty() ? "" : ", ") + std::string(name);
  };
  add(kF, "float");
  add(kS, "signed int");
  add(kU, "unsigned int");
  add(kB, "bool");
  return s;
}

std::string inputName(const InferContext& ctx, size_t i) {
  const Node& n = ctx.node();
  return i < n.inputs.size() && n.inputs[i] ? n.inputs[i]->name : "?";
}

Status requireInputs(const InferContext& ctx, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
  return Status::Ok();
}

Status checkClass(const InferContext& ctx, size_t i, unsigned allowed) {
  if (classOf(ctx.dtype(i)) & allowed) return Status::Ok();
  return ctx.error("input ", i, " ('", inputName(ctx, i), "') is ", dataTypeName(ctx.dtype(i)), " but ",
                   ctx.node().op_type, " accepts only ", classNames(allowed));
}

Status checkSameType(const InferContext& ctx, size_t i, size_t j) {
  if (ctx.dtype(i) == ctx.dtype(j)) return Status::Ok();
  return ctx.error("input ", j, " ('", inputName(ctx, j), "') is ", dataTypeName(ctx.dtype(j)), " but input ", i,
                   " ('", inputName(ctx, i), "') is ", dataTypeName(ctx.dtype(i)), "; they must have the same type");
}

// Same shape as input 0; output type `out` (or input 0's type).
Status unary(InferContext& ctx, unsigned allowed, DataType out = DataType::kUndefined) {
  RJ_RETURN_IF_ERROR(requireInputs(ctx, 1));
  RJ_RETURN_IF_ERROR(checkClass(ctx, 0, allowed));
  ctx.setOutput(0, out == DataType::kUndefined ? ctx.dtype(0) : out, ctx.shape(0));
  return Status::Ok();
}

// All inputs share one type in `allowed`; output is their broadcast shape.
Status broadcasting(InferContext& ctx, unsigned allowed, DataType out = DataType::kUndefined) {
  if (ctx.numInputs() == 0) return ctx.error("needs at least one input");
  RJ_RETURN_IF_ERROR(requireInputs(ctx, ctx.numInputs()));
  RJ_RETURN_IF_ERROR(checkClass(ctx, 0, allowed));
  std::vector<Shape> shapes;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    RJ_RETURN_IF_ERROR(checkSameType(ctx, 0, i));
    shapes.push_back(ctx.shape(i));
  }
  RJ_ASSIGN_OR_RETURN(Shape s, broadcastShapes(shapes, ctx.node()));
  ctx.setOutput(0, out == DataType::kUndefined ? ctx.dtype(0) : out, std::move(s));
  return Status::Ok();
}

Status comparison(InferContext& ctx, unsigned allowed) {
  if (ctx.numInputs() != 2) return ctx.error("takes 2 inputs, got ", ctx.numInputs());
  return broadcasting(ctx, allowed, DataType::kBool);
}

Status binary(InferContext& ctx, unsigned allowed) {
  if (ctx.numInputs() != 2) return ctx.error("takes 2 inputs, got ", ctx.numInputs());
  return broadcasting(ctx, allowed);
}

Status castTo(InferContext& ctx, DataType to) {
  RJ_RETURN_IF_ERROR(requireInputs(ctx, 1));
  if (ctx.dtype(0) == to) {  // identity, strings included
    ctx.setOutput(0, to, ctx.shape(0));
    return Status::Ok();
  }
  if (ctx.dtype(0) == DataType::kString || to == DataType::kString) {  // number <-> text, text -> text
    DataType num = to == DataType::kString ? ctx.dtype(0) : to;
    if (num != DataType::kString && !classOf(num)) return ctx.error("cannot cast between string and ", dataTypeName(num));
    ctx.setOutput(0, to, ctx.shape(0));
    return Status::Ok();
  }
  if (!classOf(ctx.dtype(0)))
    return ctx.error("cannot cast from ", dataTypeName(ctx.dtype(0)), " (input '", inputName(ctx, 0), "')");
  if (!classOf(to)) return ctx.error("cannot cast to ", dataTypeName(to));
  ctx.setOutput(0, to, ctx.shape(0));
  return Status::Ok();
}

}  // namespace

Status inferIdentity(InferContext& ctx) {
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0));
  return Status::Ok();
}

#define RJ_UNARY_INFER(Name, allowed) \
  Status infer##Name(InferContext& ctx) { return unary(ctx, allowed); }
RJ_UNARY_INFER(Abs, kNum)
RJ_UNARY_INFER(Neg, kF | kS)
RJ_UNARY_INFER(Sqrt, kF)
RJ_UNARY_INFER(Exp, kF)
RJ_UNARY_INFER(Log, kF)
RJ_UNARY_INFER(Reciprocal, kF)
RJ_UNARY_INFER(Floor, kF)
RJ_UNARY_INFER(Ceil, kF)
RJ_UNARY_INFER(Round, kF)
RJ_UNARY_INFER(Sign, kNum)
RJ_UNARY_INFER(Sin, kF)
RJ_UNARY_INFER(Cos, kF)
RJ_UNARY_INFER(Tan, kF)
RJ_UNARY_INFER(Asin, kF)
RJ_UNARY_INFER(Acos, kF)
RJ_UNARY_INFER(Atan, kF)
RJ_UNARY_INFER(Sinh, kF)
RJ_UNARY_INFER(Cosh, kF)
RJ_UNARY_INFER(Asinh, kF)
RJ_UNARY_INFER(Acosh, kF)
RJ_UNARY_INFER(Atanh, kF)
RJ_UNARY_INFER(Erf, kNum)
RJ_UNARY_INFER(Not, kB)
RJ_UNARY_INFER(BitwiseNot, kI)
RJ_UNARY_INFER(Relu, kF | kS)
RJ_UNARY_INFER(LeakyRelu, kF)
RJ_UNARY_INFER(Elu, kF)
RJ_UNARY_INFER(Selu, kF)
RJ_UNARY_INFER(Celu, kF)
RJ_UNARY_INFER(Sigmoid, kF)
RJ_UNARY_INFER(HardSigmoid, kF)
RJ_UNARY_INFER(HardSwish, kF)
RJ_UNARY_INFER(Tanh, kF)
RJ_UNARY_INFER(Softplus, kF)
RJ_UNARY_INFER(Softsign, kF)
RJ_UNARY_INFER(ThresholdedRelu, kF)
RJ_UNARY_INFER(Shrink, kNum)
RJ_UNARY_INFER(Mish, kF)
#undef RJ_UNARY_INFER

Status inferIsNaN(InferContext& ctx) { return unary(ctx, kF, DataType::kBool); }
Status inferIsInf(InferContext& ctx) { return unary(ctx, kF, DataType::kBool); }

Status inferGelu(InferContext& ctx) {
  std::string approx = ctx.node().attrString("approximate", "none");
  if (approx != "none" && approx != "tanh")
    return ctx.error("attribute approximate must be 'none' or 'tanh', got '", approx, "'");
  return unary(ctx, kF);
}

// PRelu's slope broadcasts to X (unidirectionally): the output has X's shape.
Status inferPRelu(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireInputs(ctx, 2));
  RJ_RETURN_IF_ERROR(checkClass(ctx, 0, kNum));
  RJ_RETURN_IF_ERROR(checkSameType(ctx, 0, 1));
  RJ_ASSIGN_OR_RETURN(Shape s, broadcastShapes({ctx.shape(0), ctx.shape(1)}, ctx.node()));
  if (ctx.shape(0).rank_known && s.rank_known && s.rank() != ctx.shape(0).rank())
    return ctx.error("slope ", ctx.shape(1).toString(), " has more dims than X ", ctx.shape(0).toString());
  for (size_t i = 0; s.rank_known && ctx.shape(0).rank_known && i < s.rank(); ++i) {
    const Dim& x = ctx.shape(0).dims[i];
    if (x.known() && s.dims[i].known() && x.value != s.dims[i].value)
      return ctx.error("slope ", ctx.shape(1).toString(), " does not broadcast to X ", ctx.shape(0).toString());
  }
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0).rank_known ? ctx.shape(0) : s);
  return Status::Ok();
}

// min/max are optional scalars. They may differ in type from X: Clip-6's attributes become f32
// constants at import whatever X's float type is, so kernels convert them.
Status inferClip(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(unary(ctx, kNum));
  for (size_t i = 1; i < 3; ++i) {
    if (!ctx.hasInput(i)) continue;
    RJ_RETURN_IF_ERROR(checkClass(ctx, i, kNum));
    const Shape& s = ctx.shape(i);
    bool scalar_shape = s.rank_known && (s.rank() == 0 || (s.rank() == 1 && s.dims[0].known() && s.dims[0].value == 1));
    if (s.rank_known && s.fullyKnown() && !scalar_shape)
      return ctx.error(i == 1 ? "min" : "max", " ('", inputName(ctx, i), "') must be a scalar, got shape ",
                       s.toString());
  }
  return Status::Ok();
}

Status inferAdd(InferContext& ctx) { return binary(ctx, kNum); }
Status inferSub(InferContext& ctx) { return binary(ctx, kNum); }
Status inferMul(InferContext& ctx) { return binary(ctx, kNum); }
Status inferDiv(InferContext& ctx) { return binary(ctx, kNum); }

Status inferMod(InferContext& ctx) {
  int64_t fmod = ctx.node().attrInt("fmod", 0);
  if (fmod != 0 && fmod != 1) return ctx.error("attribute fmod must be 0 or 1, got ", fmod);
  return binary(ctx, kNum);
}

// Base and exponent may have different numeric types; the output has the base's type.
Status inferPow(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireInputs(ctx, 2));
  RJ_RETURN_IF_ERROR(checkClass(ctx, 0, kNum));
  RJ_RETURN_IF_ERROR(checkClass(ctx, 1, kNum));
  RJ_ASSIGN_OR_RETURN(Shape s, broadcastShapes({ctx.shape(0), ctx.shape(1)}, ctx.node()));
  ctx.setOutput(0, ctx.dtype(0), std::move(s));
  return Status::Ok();
}

Status inferBitShift(InferContext& ctx) {
  std::string dir = ctx.node().attrString("direction", "");
  if (dir != "LEFT" && dir != "RIGHT")
    return ctx.error("attribute direction must be 'LEFT' or 'RIGHT', got '", dir, "'");
  return binary(ctx, kU);
}

Status inferAnd(InferContext& ctx) { return binary(ctx, kB); }
Status inferOr(InferContext& ctx) { return binary(ctx, kB); }
Status inferXor(InferContext& ctx) { return binary(ctx, kB); }
Status inferBitwiseAnd(InferContext& ctx) { return binary(ctx, kI); }
Status inferBitwiseOr(InferContext& ctx) { return binary(ctx, kI); }
Status inferBitwiseXor(InferContext& ctx) { return binary(ctx, kI); }
Status inferEqual(InferContext& ctx) { return comparison(ctx, kAny); }
Status inferLess(InferContext& ctx) { return comparison(ctx, kNum); }
Status inferGreater(InferContext& ctx) { return comparison(ctx, kNum); }
Status inferLessOrEqual(InferContext& ctx) { return comparison(ctx, kNum); }
Status inferGreaterOrEqual(InferContext& ctx) { return comparison(ctx, kNum); }
Status inferMax(InferContext& ctx) { return broadcasting(ctx, kNum); }
Status inferMin(InferContext& ctx) { return broadcasting(ctx, kNum); }
Status inferSum(InferContext& ctx) { return broadcasting(ctx, kF); }
Status inferMean(InferContext& ctx) { return broadcasting(ctx, kF); }

Status inferWhere(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireInputs(ctx, 3));
  if (ctx.dtype(0) != DataType::kBool)
    return ctx.error("condition ('", inputName(ctx, 0), "') must be bool, got ", dataTypeName(ctx.dtype(0)));
  RJ_RETURN_IF_ERROR(checkClass(ctx, 1, kAny));
  RJ_RETURN_IF_ERROR(checkSameType(ctx, 1, 2));
  RJ_ASSIGN_OR_RETURN(Shape s, broadcastShapes({ctx.shape(0), ctx.shape(1), ctx.shape(2)}, ctx.node()));
  ctx.setOutput(0, ctx.dtype(1), std::move(s));
  return Status::Ok();
}

Status inferCast(InferContext& ctx) {
  if (!ctx.node().hasAttr("to")) return ctx.error("attribute 'to' is required");
  int64_t to_onnx = ctx.node().attrInt("to", 0);
  DataType to;
  if (!dataTypeFromOnnx(static_cast<int32_t>(to_onnx), &to) || (!isSupportedDataType(to) && to != DataType::kString))
    return ctx.error("cannot cast to ONNX type ", to_onnx, " (unsupported by ramjet)");
  return castTo(ctx, to);
}

Status inferCastLike(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireInputs(ctx, 2));
  return castTo(ctx, ctx.dtype(1));
}

}  // namespace ramjet::ops
