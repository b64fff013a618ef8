// Shape/type inference for the sequence, optional and string ops. A sequence or optional value's
// TensorType has kind kSequence / kOptional and `elem` is the type inside.
//
// If/Loop/Identity forward only dtype and shape, so at import time a value that will hold a
// sequence at run time can look like a tensor of unknown rank; such types are accepted here and
// the interpreter (which sees the real values) checks the kinds.
#include <algorithm>

#include "ops/misc_shapes.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// A type that may be a sequence: a real sequence type, or an untyped / unknown-rank tensor type
// (see the note at the top). Returns the element type.
Result<TensorType> sequenceInput(InferContext& ctx, size_t i) {
  const TensorType& t = ctx.input(i);
  if (t.kind == TypeKind::kSequence) return t.elem ? *t.elem : TensorType(t.dtype, Shape::unknownRank());
  if (t.kind == TypeKind::kTensor && !t.shape.rank_known) return TensorType(t.dtype, Shape::unknownRank());
  return ctx.error("input ", i, " must be a sequence, got ", t.toString());
}

Status tensorInput(InferContext& ctx, size_t i, const char* what) {
  if (!ctx.input(i).isTensor()) return ctx.error(what, " must be a tensor, got ", ctx.input(i).toString());
  return Status::Ok();
}

Status intScalarInput(InferContext& ctx, size_t i, const char* what) {
  RJ_RETURN_IF_ERROR(tensorInput(ctx, i, what));
  DataType dt = ctx.dtype(i);
  if (dt != DataType::kInt32 && dt != DataType::kInt64)
    return ctx.error(what, " must be int32 or int64, got ", dataTypeName(dt));
  const Shape& s = ctx.shape(i);
  if (s.rank_known && s.rank() != 0 && !(s.rank() == 1 && s.dims[0] == Dim(1)))
    return ctx.error(what, " must be a scalar, got shape ", s.toString());
  return Status::Ok();
}

// Element type of a sequence made of tensors a and b: same dtype; the shape where they agree.
Result<TensorType> mergeElem(InferContext& ctx, TensorType a, const TensorType& b) {
  if (a.dtype == DataType::kUndefined) return b;
  if (b.dtype == DataType::kUndefined) return a;
  if (a.dtype != b.dtype)
    return ctx.error("sequence elements must share one type, got ", dataTypeName(a.dtype), " and ", dataTypeName(b.dtype));
  if (!(a.shape == b.shape)) {
    if (a.shape.rank_known && b.shape.rank_known && a.shape.rank() == b.shape.rank()) {
      for (size_t d = 0; d < a.shape.rank(); ++d)
        if (a.shape.dims[d] != b.shape.dims[d]) a.shape.dims[d] = ctx.newSymbol(ctx.node().name + "_elem");
    } else {
      a.shape = Shape::unknownRank();
    }
  }
  a.shape_value = nullptr;
  return a;
}

void setSequence(InferContext& ctx, size_t i, TensorType elem) {
  elem.shape_value = nullptr;
  ctx.outputs()[i] = TensorType::sequenceOf(std::move(elem));
}

}  // namespace

Status inferSequenceConstruct(InferContext& ctx) {
  TensorType elem;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
    RJ_RETURN_IF_ERROR(tensorInput(ctx, i, "every input"));
    RJ_ASSIGN_OR_RETURN(elem, mergeElem(ctx, elem, ctx.input(i)));
  }
  setSequence(ctx, 0, elem);
  return Status::Ok();
}

Status inferSequenceEmpty(InferContext& ctx) {
  DataType dt = DataType::kFloat32;
  if (ctx.node().hasAttr("dtype")) {
    int64_t v = ctx.node().attrInt("dtype", 1);
    if (!dataTypeFromOnnx(static_cast<int32_t>(v), &dt))
      return ctx.error("attribute dtype ", v, " is not a known ONNX type");
  }
  setSequence(ctx, 0, TensorType(dt, Shape::unknownRank()));
  return Status::Ok();
}

Status inferSequenceInsert(InferContext& ctx) {
  RJ_ASSIGN_OR_RETURN(TensorType elem, sequenceInput(ctx, 0));
  RJ_RETURN_IF_ERROR(tensorInput(ctx, 1, "tensor"));
  if (ctx.hasInput(2)) RJ_RETURN_IF_ERROR(intScalarInput(ctx, 2, "position"));
  RJ_ASSIGN_OR_RETURN(elem, mergeElem(ctx, elem, ctx.input(1)));
  setSequence(ctx, 0, elem);
  return Status::Ok();
}

Status inferSequenceErase(InferContext& ctx) {
  RJ_ASSIGN_OR_RETURN(TensorType elem, sequenceInput(ctx, 0));
  if (ctx.hasInput(1)) RJ_RETURN_IF_ERROR(intScalarInput(ctx, 1, "position"));
  setSequence(ctx, 0, elem);
  return Status::Ok();
}

Status inferSequenceAt(InferContext& ctx) {
  RJ_ASSIGN_OR_RETURN(TensorType elem, sequenceInput(ctx, 0));
  RJ_RETURN_IF_ERROR(intScalarInput(ctx, 1, "position"));
  ctx.outputs()[0] = TensorType(elem.dtype, elem.shape);
  return Status::Ok();
}

Status inferSequenceLength(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(sequenceInput(ctx, 0).status());
  ctx.setOutput(0, DataType::kInt64, Shape::fromDims({}));
  return Status::Ok();
}

Status inferConcatFromSequence(InferContext& ctx) {
  RJ_ASSIGN_OR_RETURN(TensorType elem, sequenceInput(ctx, 0));
  if (!ctx.node().hasAttr("axis")) return ctx.error("attribute 'axis' is required");
  const bool new_axis = ctx.node().attrInt("new_axis", 0) != 0;
  Shape out = Shape::unknownRank();
  if (elem.shape.rank_known) {
    const int64_t r = static_cast<int64_t>(elem.shape.rank()) + (new_axis ? 1 : 0);
    int64_t axis = ctx.node().attrInt("axis", 0);
    RJ_RETURN_IF_ERROR(normalizeAxis(&axis, r, ctx.node()));
    out = Shape();
    for (int64_t d = 0; d < r; ++d) out.dims.push_back(ctx.newSymbol(ctx.node().name + "_out"));
    // Dims other than the concatenated one are the elements' (when all elements agree).
    for (int64_t d = 0, e = 0; d < r; ++d) {
      if (d == axis) { if (!new_axis) ++e; continue; }
      out.dims[d] = elem.shape.dims[e++];
    }
  }
  ctx.setOutput(0, elem.dtype, out);
  return Status::Ok();
}

Status inferSplitToSequence(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(tensorInput(ctx, 0, "input"));
  if (ctx.hasInput(1)) {
    RJ_RETURN_IF_ERROR(tensorInput(ctx, 1, "split"));
    if (ctx.dtype(1) != DataType::kInt32 && ctx.dtype(1) != DataType::kInt64)
      return ctx.error("split must be int32 or int64, got ", dataTypeName(ctx.dtype(1)));
  }
  const Shape& s = ctx.shape(0);
  if (s.rank_known) {
    int64_t axis = ctx.node().attrInt("axis", 0);
    RJ_RETURN_IF_ERROR(normalizeAxis(&axis, static_cast<int64_t>(s.rank()), ctx.node()));
  }
  setSequence(ctx, 0, TensorType(ctx.dtype(0), Shape::unknownRank()));
  return Status::Ok();
}

Status inferSequenceMap(InferContext& ctx) {
  const Graph* body = ctx.node().attrGraph("body");
  if (!body) return ctx.error("attribute 'body' (a graph) is required");
  if (body->inputs.size() != ctx.numInputs())
    return ctx.error("body takes ", body->inputs.size(), " inputs, node has ", ctx.numInputs());
  if (body->outputs.size() != ctx.numOutputs())
    return ctx.error("body has ", body->outputs.size(), " outputs, node has ", ctx.numOutputs());
  RJ_RETURN_IF_ERROR(sequenceInput(ctx, 0).status());
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    TensorType b = misc::bodyOutputType(*body, i);
    setSequence(ctx, i, TensorType(b.dtype, b.isTensor() ? b.shape : Shape::unknownRank()));
  }
  return Status::Ok();
}

Status inferOptional(InferContext& ctx) {
  if (ctx.hasInput(0)) {
    if (ctx.input(0).kind == TypeKind::kOptional) return ctx.error("input is already an optional");
    TensorType e = ctx.input(0);
    e.shape_value = nullptr;
    ctx.outputs()[0] = TensorType::optionalOf(std::move(e));
    return Status::Ok();
  }
  const Tensor* ex = ctx.node().attrTensor("type");
  if (!ex) return ctx.error("needs an input or a 'type' attribute");
  TensorType e = ex->isTensor() ? TensorType(ex->dtype(), Shape::unknownRank()) : ex->type();
  if (e.kind == TypeKind::kOptional) return ctx.error("attribute 'type' must be a tensor or sequence type");
  ctx.outputs()[0] = TensorType::optionalOf(std::move(e));
  return Status::Ok();
}

Status inferOptionalHasElement(InferContext& ctx) {
  ctx.setOutput(0, DataType::kBool, Shape::fromDims({}));
  return Status::Ok();
}

Status inferOptionalGetElement(InferContext& ctx) {
  const TensorType& t = ctx.input(0);
  if (t.kind == TypeKind::kOptional) {
    ctx.outputs()[0] = t.elem ? *t.elem : TensorType(t.dtype, Shape::unknownRank());
  } else {
    ctx.outputs()[0] = t;  // opset 18: a tensor or sequence passes through
  }
  return Status::Ok();
}

Status inferStringNormalizer(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(tensorInput(ctx, 0, "X"));
  if (ctx.dtype(0) != DataType::kString) return ctx.error("X must be a string tensor, got ", dataTypeName(ctx.dtype(0)));
  const std::string mode = ctx.node().attrString("case_change_action", "NONE");
  if (mode != "NONE" && mode != "LOWER" && mode != "UPPER")
    return ctx.error("case_change_action must be NONE, LOWER or UPPER, got '", mode, "'");
  const Shape& s = ctx.shape(0);
  if (!s.rank_known) { ctx.setOutput(0, DataType::kString, Shape::unknownRank()); return Status::Ok(); }
  if (s.rank() == 1) { ctx.setOutput(0, DataType::kString, Shape({ctx.newSymbol(ctx.node().name + "_kept")})); return Status::Ok(); }
  if (s.rank() == 2 && s.dims[0] == Dim(1)) {
    ctx.setOutput(0, DataType::kString, Shape({Dim(1), ctx.newSymbol(ctx.node().name + "_kept")}));
    return Status::Ok();
  }
  return ctx.error("X must have shape [C] or [1, C], got ", s.toString());
}

Status inferTfIdfVectorizer(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(tensorInput(ctx, 0, "X"));
  DataType dt = ctx.dtype(0);
  if (dt != DataType::kString && dt != DataType::kInt32 && dt != DataType::kInt64)
    return ctx.error("X must be string, int32 or int64, got ", dataTypeName(dt));
  std::vector<int64_t> idx = ctx.node().attrInts("ngram_indexes");
  if (idx.empty()) return ctx.error("attribute 'ngram_indexes' is required");
  int64_t width = 0;
  for (int64_t v : idx) {
    if (v < 0) return ctx.error("ngram_indexes holds a negative index ", v);
    width = std::max(width, v + 1);
  }
  const Shape& s = ctx.shape(0);
  if (!s.rank_known) { ctx.setOutput(0, DataType::kFloat32, Shape::unknownRank()); return Status::Ok(); }
  if (s.rank() == 1) { ctx.setOutput(0, DataType::kFloat32, Shape({Dim(width)})); return Status::Ok(); }
  if (s.rank() == 2) { ctx.setOutput(0, DataType::kFloat32, Shape({s.dims[0], Dim(width)})); return Status::Ok(); }
  return ctx.error("X must have rank 1 or 2, got ", s.toString());
}

}  // namespace ramjet::ops

// ---- signal ops: DFT and STFT (complex values are a trailing axis of 2: real, imaginary) ----
namespace ramjet::ops {
namespace {

// Value of an optional integer scalar input, or `def` when omitted; -1 when not known yet.
Result<int64_t> optionalScalar(InferContext& ctx, size_t i, int64_t def, const char* what) {
  if (!ctx.hasInput(i)) return def;
  if (!isIntegerType(ctx.dtype(i))) return ctx.error(what, " must be an integer, got ", dataTypeName(ctx.dtype(i)));
  const Tensor* v = ctx.value(i);
  if (!v) return int64_t{-1};
  if (v->numel() != 1) return ctx.error(what, " must be a scalar, got ", v->type().toString());
  return v->getInt(0);
}

}  // namespace

Status inferDFT(InferContext& ctx) {
  if (!isFloatType(ctx.dtype(0))) return ctx.error("input must be a float tensor, got ", dataTypeName(ctx.dtype(0)));
  const Shape& s = ctx.shape(0);
  if (!s.rank_known) { ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank()); return Status::Ok(); }
  const int64_t r = static_cast<int64_t>(s.rank());
  if (r < 2) return ctx.error("input must be [batch, signal..., 1 or 2], got ", s.toString());
  if (s.dims[r - 1].known() && s.dims[r - 1].value != 1 && s.dims[r - 1].value != 2)
    return ctx.error("the last input dim must be 1 (real) or 2 (complex), got ", s.dims[r - 1].value);
  RJ_ASSIGN_OR_RETURN(int64_t axis, optionalScalar(ctx, 2, ctx.node().attrInt("axis", 1), "axis"));
  Shape out = s;
  out.dims[r - 1] = Dim(2);
  if (axis == -1 && ctx.hasInput(2) && !ctx.value(2)) {  // axis known only at run time
    for (int64_t d = 1; d < r - 1; ++d) out.dims[d] = ctx.newSymbol(ctx.node().name + "_bins");
    ctx.setOutput(0, ctx.dtype(0), out);
    return Status::Ok();
  }
  if (axis < 0) axis += r;
  if (axis < 1 || axis >= r - 1) return ctx.error("axis ", axis, " must name a signal dim (1..", r - 2, ")");
  RJ_ASSIGN_OR_RETURN(int64_t n, optionalScalar(ctx, 1, s.dims[axis].known() ? s.dims[axis].value : -1, "dft_length"));
  if (ctx.hasInput(1) && n == 0) return ctx.error("dft_length must be positive");
  const bool onesided = ctx.node().attrInt("onesided", 0) != 0;
  if (n > 0) out.dims[axis] = Dim(onesided ? n / 2 + 1 : n);
  else if (ctx.hasInput(1) || onesided) out.dims[axis] = ctx.newSymbol(ctx.node().name + "_bins");
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

Status inferSTFT(InferContext& ctx) {
  if (!isFloatType(ctx.dtype(0))) return ctx.error("signal must be a float tensor, got ", dataTypeName(ctx.dtype(0)));
  const Shape& s = ctx.shape(0);
  if (s.rank_known && s.rank() != 3) return ctx.error("signal must be [batch, length, 1 or 2], got ", s.toString());
  RJ_ASSIGN_OR_RETURN(int64_t step, optionalScalar(ctx, 1, -1, "frame_step"));
  int64_t len = -1;
  if (ctx.hasInput(2)) {
    if (ctx.dtype(2) != ctx.dtype(0)) return ctx.error("window must have the signal's type");
    if (ctx.shape(2).rank_known && ctx.shape(2).rank() != 1) return ctx.error("window must be 1-D, got ", ctx.shape(2).toString());
    if (ctx.shape(2).rank_known && ctx.shape(2).dims[0].known()) len = ctx.shape(2).dims[0].value;
  }
  RJ_ASSIGN_OR_RETURN(int64_t fl, optionalScalar(ctx, 3, len, "frame_length"));
  if (!ctx.hasInput(2) && !ctx.hasInput(3)) return ctx.error("needs a window or a frame_length");
  const bool onesided = ctx.node().attrInt("onesided", 1) != 0;
  Shape out = Shape::unknownRank();
  if (s.rank_known) {
    out = Shape({s.dims[0], ctx.newSymbol(ctx.node().name + "_frames"), ctx.newSymbol(ctx.node().name + "_bins"), Dim(2)});
    if (fl > 0) out.dims[2] = Dim(onesided ? fl / 2 + 1 : fl);
    if (fl > 0 && step > 0 && s.dims[1].known() && s.dims[1].value >= fl) out.dims[1] = Dim((s.dims[1].value - fl) / step + 1);
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

}  // namespace ramjet::ops
