// Shape/type inference for control flow, quantization, detection, losses and signal windows
// (see ops_misc.def).
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/misc_shapes.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace misc {

Result<int64_t> scalarIntInput(const Tensor& t, const Node& node, const char* what) {
  if (t.numel() != 1 || !isIntegerType(t.dtype()))
    return makeError(StatusCode::kInvalidArgument, node.describe(), ": ", what,
                     " must be one integer, got ", t.type().toString());
  return t.getInt(0);
}

TensorType bodyOutputType(const Graph& body, size_t i) {
  if (i >= body.outputs.size()) return TensorType{};
  const Value* v = body.outputs[i];
  if (v->constant) return v->constant->type();
  if (v->type.dtype != DataType::kUndefined) return v->type;
  // The output's type is not declared: infer the body. Outer-scope references copied their
  // type at import, before the enclosing graph was inferred, so refresh those first. The body
  // is owned by the node's attribute; filling in its value types is what import would do.
  Graph& g = const_cast<Graph&>(body);
  for (const auto& val : g.values()) {
    if (!val->is_outer_scope || val->type.dtype != DataType::kUndefined) continue;
    for (const Graph* p = g.parent; p; p = p->parent)
      if (const Value* o = p->findValue(val->name)) {
        val->type = o->type;
        break;
      }
  }
  (void)g.inferShapes();  // best effort: errors surface when the body runs
  return v->type;
}

Result<DataType> quantizeOutputType(const Node& node, bool has_zero_point, DataType zp_type) {
  if (has_zero_point) return zp_type;
  int64_t od = node.attrInt("output_dtype", 0);
  if (od == 0) return DataType::kUInt8;
  DataType dt;
  if (!dataTypeFromOnnx(static_cast<int32_t>(od), &dt) ||
      !(dt == DataType::kUInt8 || dt == DataType::kInt8 || dt == DataType::kUInt16 ||
        dt == DataType::kInt16 || dt == DataType::kInt32))
    return makeError(StatusCode::kUnsupported, node.describe(), ": output_dtype ", od,
                     " is not supported (u8, i8, u16, i16 are)");
  return dt;
}

Result<ConvGeometry> convGeometry(const Node& node, const std::vector<int64_t>& in,
                                  const std::vector<int64_t>& kernel_spatial) {
  const size_t n = in.size();
  ConvGeometry g;
  g.kernel = node.attrInts("kernel_shape", kernel_spatial);
  g.strides = node.attrInts("strides", std::vector<int64_t>(n, 1));
  g.dilations = node.attrInts("dilations", std::vector<int64_t>(n, 1));
  g.pads = node.attrInts("pads", std::vector<int64_t>(2 * n, 0));
  g.group = node.attrInt("group", 1);
  if (g.kernel.size() != n || g.strides.size() != n || g.dilations.size() != n || g.pads.size() != 2 * n)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": kernel_shape/strides/dilations/pads "
                     "do not match the ", n, " spatial dims of the input");
  if (g.kernel != kernel_spatial)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": kernel_shape ", dimsToString(g.kernel),
                     " differs from the weight's spatial dims ", dimsToString(kernel_spatial));
  if (g.group < 1) return makeError(StatusCode::kInvalidModel, node.describe(), ": group must be >= 1");
  std::string auto_pad = node.attrString("auto_pad", "NOTSET");
  g.out.resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (g.strides[i] < 1 || g.dilations[i] < 1 || g.kernel[i] < 1 || g.pads[i] < 0 || g.pads[i + n] < 0)
      return makeError(StatusCode::kInvalidModel, node.describe(), ": strides, dilations and kernel must be "
                       ">= 1 and pads >= 0 (spatial dim ", i, ")");
    int64_t ek = (g.kernel[i] - 1) * g.dilations[i] + 1;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      int64_t o = (in[i] + g.strides[i] - 1) / g.strides[i];
      int64_t total = std::max<int64_t>(0, (o - 1) * g.strides[i] + ek - in[i]);
      int64_t small = total / 2, big = total - small;
      g.pads[i] = auto_pad == "SAME_UPPER" ? small : big;
      g.pads[i + n] = auto_pad == "SAME_UPPER" ? big : small;
    } else if (auto_pad == "VALID") {
      g.pads[i] = g.pads[i + n] = 0;
    } else if (auto_pad != "NOTSET") {
      return makeError(StatusCode::kInvalidModel, node.describe(), ": unknown auto_pad '", auto_pad, "'");
    }
    int64_t span = in[i] + g.pads[i] + g.pads[i + n] - ek;
    if (span < 0)
      return makeError(StatusCode::kInvalidModel, node.describe(), ": kernel (extent ", ek,
                       ") is larger than the padded input (", in[i] + g.pads[i] + g.pads[i + n], ") in spatial dim ", i);
    g.out[i] = span / g.strides[i] + 1;
  }
  return g;
}

}  // namespace misc

namespace {

Status requireFloat(const InferContext& ctx, size_t i, const char* what) {
  if (!isFloatType(ctx.dtype(i)))
    return ctx.error(what, " must be a floating-point tensor, got ", dataTypeName(ctx.dtype(i)));
  return Status::Ok();
}

Status requireRank(const InferContext& ctx, size_t i, size_t rank, const char* what) {
  if (ctx.shape(i).rank_known && ctx.shape(i).rank() != rank)
    return ctx.error(what, " must have rank ", rank, ", got ", ctx.shape(i).toString());
  return Status::Ok();
}

// Merges the shapes two branches may produce: equal dims stay, differing ones become symbols.
Shape mergeShapes(const InferContext& ctx, const Shape& a, const Shape& b) {
  if (!a.rank_known || !b.rank_known || a.rank() != b.rank()) return Shape::unknownRank();
  Shape s;
  for (size_t i = 0; i < a.rank(); ++i)
    s.dims.push_back(a.dims[i] == b.dims[i] ? a.dims[i] : ctx.newSymbol(ctx.node().name));
  return s;
}

const Graph* requireGraph(const InferContext& ctx, const char* attr, Status* st) {
  const Graph* g = ctx.node().attrGraph(attr);
  if (!g) *st = ctx.error("missing graph attribute '", attr, "'");
  return g;
}

}  // namespace

// ---------------------------------------------------------------- control flow

Status inferIf(InferContext& ctx) {
  Status st;
  const Graph* then_g = requireGraph(ctx, "then_branch", &st);
  if (!then_g) return st;
  const Graph* else_g = requireGraph(ctx, "else_branch", &st);
  if (!else_g) return st;
  if (ctx.dtype(0) != DataType::kBool) return ctx.error("cond must be bool, got ", dataTypeName(ctx.dtype(0)));
  if (then_g->outputs.size() != ctx.numOutputs() || else_g->outputs.size() != ctx.numOutputs())
    return ctx.error("node has ", ctx.numOutputs(), " outputs but then_branch has ", then_g->outputs.size(),
                     " and else_branch ", else_g->outputs.size());
  const Graph* chosen = nullptr;  // known when the interpreter (or a constant) supplies cond
  if (const Tensor* c = ctx.value(0); c && c->numel() >= 1) chosen = c->getInt(0) ? then_g : else_g;
  for (size_t i = 0; i < ctx.numOutputs(); ++i) {
    TensorType a = misc::bodyOutputType(*then_g, i), b = misc::bodyOutputType(*else_g, i);
    if (chosen) {
      TensorType c = misc::bodyOutputType(*chosen, i);
      ctx.setOutput(i, c.dtype, Shape::unknownRank());  // the branch's value decides the shape
      continue;
    }
    if (a.dtype == DataType::kUndefined) a.dtype = b.dtype;
    if (b.dtype == DataType::kUndefined) b.dtype = a.dtype;
    if (a.dtype != b.dtype)
      return ctx.error("output ", i, " is ", dataTypeName(a.dtype), " in then_branch but ", dataTypeName(b.dtype),
                       " in else_branch");
    if (a.dtype == DataType::kUndefined)
      return ctx.error("neither branch declares the element type of output ", i);
    ctx.setOutput(i, a.dtype, mergeShapes(ctx, a.shape, b.shape));
  }
  return Status::Ok();
}

Status inferLoop(InferContext& ctx) {
  Status st;
  const Graph* body = requireGraph(ctx, "body", &st);
  if (!body) return st;
  if (ctx.numInputs() < 2) return ctx.error("needs inputs M and cond (either may be empty), got ", ctx.numInputs(), " inputs");
  const size_t n_carried = ctx.numInputs() - 2;
  if (ctx.numOutputs() < n_carried)
    return ctx.error("has ", n_carried, " loop-carried inputs but only ", ctx.numOutputs(), " outputs");
  const size_t n_scan = ctx.numOutputs() - n_carried;
  if (body->inputs.size() != 2 + n_carried)
    return ctx.error("body takes ", body->inputs.size(), " inputs, expected 2 + ", n_carried, " loop-carried");
  if (body->outputs.size() != 1 + n_carried + n_scan)
    return ctx.error("body has ", body->outputs.size(), " outputs, expected 1 (cond) + ", n_carried,
                     " loop-carried + ", n_scan, " scan outputs");
  if (ctx.hasInput(0) && !isIntegerType(ctx.dtype(0))) return ctx.error("M must be an integer, got ", dataTypeName(ctx.dtype(0)));
  if (ctx.hasInput(1) && ctx.dtype(1) != DataType::kBool) return ctx.error("cond must be bool, got ", dataTypeName(ctx.dtype(1)));
  for (size_t i = 0; i < n_carried; ++i) {
    if (!ctx.hasInput(2 + i)) return ctx.error("loop-carried input ", i, " is missing");
    TensorType b = misc::bodyOutputType(*body, 1 + i);
    Shape s = ctx.shape(2 + i);
    if (b.shape.rank_known && !(b.shape == s)) s = mergeShapes(ctx, s, b.shape);
    ctx.setOutput(i, ctx.dtype(2 + i), s);
  }
  // Function-expanded models (Range) leave loop-carried body inputs untyped: give them the Loop
  // input's element type (rank may change between iterations) so scan outputs can be inferred.
  for (size_t i = 0; i < n_carried; ++i) {
    Value* bi = body->inputs[2 + i];
    if (bi->type.dtype == DataType::kUndefined && ctx.input(2 + i).isTensor())
      bi->type = TensorType(ctx.dtype(2 + i), Shape::unknownRank());
  }
  for (size_t k = 0; k < n_scan; ++k) {
    TensorType b = misc::bodyOutputType(*body, 1 + n_carried + k);
    if (b.dtype == DataType::kUndefined) return ctx.error("body does not declare the element type of scan output ", k);
    Shape s = Shape::unknownRank();
    if (b.shape.rank_known) {
      s = Shape();
      s.dims.push_back(ctx.newSymbol(ctx.node().name + "_iters"));
      for (const Dim& d : b.shape.dims) s.dims.push_back(d);
    }
    ctx.setOutput(n_carried + k, b.dtype, s);
  }
  return Status::Ok();
}

Status inferScan(InferContext& ctx) {
  Status st;
  const Graph* body = requireGraph(ctx, "body", &st);
  if (!body) return st;
  const bool v8 = ctx.node().attrInt("scan8_batched", 0) != 0;
  const size_t first = v8 && ctx.node().attrInt("scan8_lens", 0) ? 1 : 0;  // Scan-8 has sequence_lens first
  const int64_t m = ctx.node().attrInt("num_scan_inputs", -1);
  if (m < 1 || static_cast<size_t>(m) + first > ctx.numInputs())
    return ctx.error("num_scan_inputs ", m, " is not in 1..", ctx.numInputs() - first);
  const size_t n_state = ctx.numInputs() - first - static_cast<size_t>(m);
  if (ctx.numOutputs() < n_state) return ctx.error("has ", n_state, " state inputs but ", ctx.numOutputs(), " outputs");
  const size_t n_scan_out = ctx.numOutputs() - n_state;
  if (body->inputs.size() != n_state + static_cast<size_t>(m) || body->outputs.size() != ctx.numOutputs())
    return ctx.error("body has ", body->inputs.size(), " inputs and ", body->outputs.size(), " outputs; expected ",
                     n_state + m, " and ", ctx.numOutputs());
  // Sequence length from the first scan input.
  std::vector<int64_t> in_axes = ctx.node().attrInts("scan_input_axes", std::vector<int64_t>(m, 0));
  std::vector<int64_t> out_axes = ctx.node().attrInts("scan_output_axes", std::vector<int64_t>(n_scan_out, 0));
  if (in_axes.size() != static_cast<size_t>(m) || out_axes.size() != n_scan_out)
    return ctx.error("scan_input_axes/scan_output_axes have the wrong length");
  Dim len = ctx.newSymbol(ctx.node().name + "_len");
  Dim batch;
  const Shape& s0 = ctx.shape(first + n_state);
  if (s0.rank_known) {
    int64_t ax = v8 ? 1 : in_axes[0];
    RJ_RETURN_IF_ERROR(normalizeAxis(&ax, static_cast<int64_t>(s0.rank()), ctx.node()));
    len = s0.dims[ax];
    if (v8) batch = s0.dims[0];
  }
  for (size_t i = 0; i < n_state; ++i) ctx.setOutput(i, ctx.dtype(first + i), ctx.shape(first + i));
  for (size_t k = 0; k < n_scan_out; ++k) {
    TensorType b = misc::bodyOutputType(*body, n_state + k);
    if (b.dtype == DataType::kUndefined) return ctx.error("body does not declare the element type of scan output ", k);
    Shape s = Shape::unknownRank();
    if (b.shape.rank_known) {
      s = b.shape;
      int64_t ax = v8 ? 0 : out_axes[k];
      RJ_RETURN_IF_ERROR(normalizeAxis(&ax, static_cast<int64_t>(s.rank()) + 1, ctx.node()));
      s.dims.insert(s.dims.begin() + ax, len);
      if (v8) s.dims.insert(s.dims.begin(), batch);
    }
    ctx.setOutput(n_state + k, b.dtype, s);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- quantization

Status inferDropout(InferContext& ctx) {
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0));
  if (ctx.numOutputs() > 1)
    ctx.setOutput(1, ctx.node().attrInt("mask_same_type", 0) ? ctx.dtype(0) : DataType::kBool, ctx.shape(0));
  return Status::Ok();
}

static Status checkQuantParams(InferContext& ctx, const char* op) {
  if (!isFloatType(ctx.dtype(1))) return ctx.error("scale must be floating point, got ", dataTypeName(ctx.dtype(1)));
  const Shape& x = ctx.shape(0);
  const Shape& sc = ctx.shape(1);
  if (!x.rank_known || !sc.rank_known) return Status::Ok();
  if (ctx.hasInput(2) && ctx.shape(2).rank_known && ctx.shape(2).rank() != sc.rank())
    return ctx.error("zero point shape ", ctx.shape(2).toString(), " differs from scale shape ", sc.toString());
  int64_t block = ctx.node().attrInt("block_size", 0);
  bool scalar = sc.rank() == 0 || (sc.rank() == 1 && sc.dims[0].known() && sc.dims[0].value == 1 && block == 0);
  if (scalar) return Status::Ok();
  int64_t axis = ctx.node().attrInt("axis", 1);
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, static_cast<int64_t>(x.rank()), ctx.node()));
  if (block == 0) {
    if (sc.rank() != 1) return ctx.error("per-axis scale must be 1-D, got ", sc.toString());
    if (sc.dims[0].known() && x.dims[axis].known() && sc.dims[0].value != x.dims[axis].value)
      return ctx.error("scale has ", sc.dims[0].value, " entries but input dim ", axis, " is ", x.dims[axis].value);
  } else {
    if (block < 0) return ctx.error("block_size must be >= 0, got ", block);
    if (sc.rank() != x.rank()) return ctx.error("blocked scale must have the input's rank, got ", sc.toString());
    for (size_t d = 0; d < x.rank(); ++d) {
      if (!x.dims[d].known() || !sc.dims[d].known()) continue;
      int64_t want = static_cast<int64_t>(d) == axis ? (x.dims[d].value + block - 1) / block : x.dims[d].value;
      if (sc.dims[d].value != want)
        return ctx.error("blocked scale dim ", d, " is ", sc.dims[d].value, ", expected ", want, " (", op, " block_size ", block, ")");
    }
  }
  return Status::Ok();
}

Status inferQuantizeLinear(InferContext& ctx) {
  if (!isFloatType(ctx.dtype(0)) && ctx.dtype(0) != DataType::kInt32)
    return ctx.error("x must be float or int32, got ", dataTypeName(ctx.dtype(0)));
  RJ_RETURN_IF_ERROR(checkQuantParams(ctx, "QuantizeLinear"));
  RJ_ASSIGN_OR_RETURN(DataType out, misc::quantizeOutputType(ctx.node(), ctx.hasInput(2), ctx.hasInput(2) ? ctx.dtype(2) : DataType::kUInt8));
  if (!(out == DataType::kUInt8 || out == DataType::kInt8 || out == DataType::kUInt16 || out == DataType::kInt16 ||
        out == DataType::kInt32))
    return ctx.error("quantized type ", dataTypeName(out), " is not supported (u8, i8, u16, i16, i32 are)");
  ctx.setOutput(0, out, ctx.shape(0));
  return Status::Ok();
}

Status inferDequantizeLinear(InferContext& ctx) {
  DataType x = ctx.dtype(0);
  if (!(x == DataType::kUInt8 || x == DataType::kInt8 || x == DataType::kUInt16 || x == DataType::kInt16 ||
        x == DataType::kInt32))
    return ctx.error("x must be u8, i8, u16, i16 or i32, got ", dataTypeName(x));
  if (ctx.hasInput(2) && ctx.dtype(2) != x)
    return ctx.error("zero point is ", dataTypeName(ctx.dtype(2)), " but x is ", dataTypeName(x));
  RJ_RETURN_IF_ERROR(checkQuantParams(ctx, "DequantizeLinear"));
  ctx.setOutput(0, ctx.dtype(1), ctx.shape(0));
  return Status::Ok();
}

Status inferDynamicQuantizeLinear(InferContext& ctx) {
  if (ctx.dtype(0) != DataType::kFloat32) return ctx.error("x must be f32, got ", dataTypeName(ctx.dtype(0)));
  ctx.setOutput(0, DataType::kUInt8, ctx.shape(0));
  ctx.setOutput(1, DataType::kFloat32, Shape());
  ctx.setOutput(2, DataType::kUInt8, Shape());
  return Status::Ok();
}

// numpy matmul shape rules on symbolic shapes.
static Result<Shape> matmulShape(const InferContext& ctx, Shape a, Shape b) {
  if (!a.rank_known || !b.rank_known) return Shape::unknownRank();
  if (a.rank() == 0 || b.rank() == 0) return ctx.error("MatMul inputs must have rank >= 1");
  bool a1 = a.rank() == 1, b1 = b.rank() == 1;
  if (a1) a.dims.insert(a.dims.begin(), Dim(1));
  if (b1) b.dims.push_back(Dim(1));
  const Dim& k1 = a.dims[a.rank() - 1];
  const Dim& k2 = b.dims[b.rank() - 2];
  if (k1.known() && k2.known() && k1.value != k2.value)
    return ctx.error("inner dimensions differ: ", a.toString(), " x ", b.toString());
  Shape ba(std::vector<Dim>(a.dims.begin(), a.dims.end() - 2)), bb(std::vector<Dim>(b.dims.begin(), b.dims.end() - 2));
  RJ_ASSIGN_OR_RETURN(Shape out, broadcastShapes({ba, bb}, ctx.node()));
  if (!a1) out.dims.push_back(a.dims[a.rank() - 2]);
  if (!b1) out.dims.push_back(b.dims[b.rank() - 1]);
  return out;
}

Status inferQLinearMatMul(InferContext& ctx) {
  for (size_t i : {0, 3, 7})
    if (ctx.dtype(i) != DataType::kUInt8 && ctx.dtype(i) != DataType::kInt8)
      return ctx.error("input ", i, " must be u8 or i8, got ", dataTypeName(ctx.dtype(i)));
  if (ctx.dtype(2) != ctx.dtype(0) || ctx.dtype(5) != ctx.dtype(3))
    return ctx.error("zero points must have their tensor's type");
  for (size_t i : {1, 4, 6}) RJ_RETURN_IF_ERROR(requireFloat(ctx, i, "scale"));
  RJ_ASSIGN_OR_RETURN(Shape s, matmulShape(ctx, ctx.shape(0), ctx.shape(3)));
  ctx.setOutput(0, ctx.dtype(7), s);
  return Status::Ok();
}

Status inferQLinearConv(InferContext& ctx) {
  for (size_t i : {0, 3, 7})
    if (ctx.dtype(i) != DataType::kUInt8 && ctx.dtype(i) != DataType::kInt8)
      return ctx.error("input ", i, " must be u8 or i8, got ", dataTypeName(ctx.dtype(i)));
  if (ctx.hasInput(8) && ctx.dtype(8) != DataType::kInt32) return ctx.error("bias must be i32, got ", dataTypeName(ctx.dtype(8)));
  const Shape& x = ctx.shape(0);
  const Shape& w = ctx.shape(3);
  if (!x.rank_known || !w.rank_known) {
    ctx.setOutput(0, ctx.dtype(7), Shape::unknownRank());
    return Status::Ok();
  }
  if (x.rank() < 3 || w.rank() != x.rank()) return ctx.error("x ", x.toString(), " and w ", w.toString(), " must both have rank >= 3 and match");
  Shape out;
  out.dims = {x.dims[0], w.dims[0]};
  std::vector<int64_t> in_sp, k_sp;
  bool known = true;
  for (size_t i = 2; i < x.rank(); ++i) {
    known &= x.dims[i].known() && w.dims[i].known();
    in_sp.push_back(x.dims[i].value);
    k_sp.push_back(w.dims[i].value);
  }
  if (known) {
    RJ_ASSIGN_OR_RETURN(misc::ConvGeometry g, misc::convGeometry(ctx.node(), in_sp, k_sp));
    if (x.dims[1].known() && w.dims[1].known() && x.dims[1].value != w.dims[1].value * g.group)
      return ctx.error("input has ", x.dims[1].value, " channels but weight expects ", w.dims[1].value, " x group ", g.group);
    for (int64_t o : g.out) out.dims.emplace_back(o);
  } else {
    for (size_t i = 2; i < x.rank(); ++i) out.dims.push_back(ctx.newSymbol(ctx.node().name));
  }
  ctx.setOutput(0, ctx.dtype(7), out);
  return Status::Ok();
}

// ---------------------------------------------------------------- detection

Status inferNonMaxSuppression(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireFloat(ctx, 0, "boxes"));
  RJ_RETURN_IF_ERROR(requireFloat(ctx, 1, "scores"));
  RJ_RETURN_IF_ERROR(requireRank(ctx, 0, 3, "boxes"));
  RJ_RETURN_IF_ERROR(requireRank(ctx, 1, 3, "scores"));
  const Shape& b = ctx.shape(0);
  const Shape& s = ctx.shape(1);
  if (b.rank_known && b.dims[2].known() && b.dims[2].value != 4) return ctx.error("boxes must be [batch, boxes, 4], got ", b.toString());
  if (b.rank_known && s.rank_known) {
    if (b.dims[0].known() && s.dims[0].known() && b.dims[0] != s.dims[0])
      return ctx.error("boxes ", b.toString(), " and scores ", s.toString(), " disagree on the batch size");
    if (b.dims[1].known() && s.dims[2].known() && b.dims[1] != s.dims[2])
      return ctx.error("boxes ", b.toString(), " and scores ", s.toString(), " disagree on the number of boxes");
  }
  int64_t cpb = ctx.node().attrInt("center_point_box", 0);
  if (cpb != 0 && cpb != 1) return ctx.error("center_point_box must be 0 or 1, got ", cpb);
  ctx.setOutput(0, DataType::kInt64, Shape({ctx.newSymbol(ctx.node().name + "_selected"), Dim(3)}));
  return Status::Ok();
}

Status inferRoiAlign(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireFloat(ctx, 0, "X"));
  RJ_RETURN_IF_ERROR(requireRank(ctx, 0, 4, "X"));
  RJ_RETURN_IF_ERROR(requireRank(ctx, 1, 2, "rois"));
  RJ_RETURN_IF_ERROR(requireRank(ctx, 2, 1, "batch_indices"));
  if (!isIntegerType(ctx.dtype(2))) return ctx.error("batch_indices must be integer, got ", dataTypeName(ctx.dtype(2)));
  std::string mode = ctx.node().attrString("mode", "avg");
  if (mode != "avg" && mode != "max") return ctx.error("mode must be avg or max, got '", mode, "'");
  std::string ctm = ctx.node().attrString("coordinate_transformation_mode", "half_pixel");
  if (ctm != "half_pixel" && ctm != "output_half_pixel")
    return ctx.error("coordinate_transformation_mode must be half_pixel or output_half_pixel, got '", ctm, "'");
  int64_t oh = ctx.node().attrInt("output_height", 1), ow = ctx.node().attrInt("output_width", 1);
  if (oh < 1 || ow < 1) return ctx.error("output_height/output_width must be >= 1");
  if (ctx.node().attrInt("sampling_ratio", 0) < 0) return ctx.error("sampling_ratio must be >= 0");
  const Shape& r = ctx.shape(1);
  if (r.rank_known && r.dims[1].known() && r.dims[1].value != 4) return ctx.error("rois must be [num_rois, 4], got ", r.toString());
  Dim n = ctx.shape(2).rank_known ? ctx.shape(2).dims[0] : (r.rank_known ? r.dims[0] : ctx.newSymbol("rois"));
  Dim c = ctx.shape(0).rank_known ? ctx.shape(0).dims[1] : ctx.newSymbol("channels");
  ctx.setOutput(0, ctx.dtype(0), Shape({n, c, Dim(oh), Dim(ow)}));
  return Status::Ok();
}

Status inferGridSample(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireFloat(ctx, 1, "grid"));
  std::string mode = ctx.node().attrString("mode", "linear");
  if (mode != "linear" && mode != "bilinear" && mode != "nearest" && mode != "cubic" && mode != "bicubic")
    return ctx.error("mode must be linear/bilinear, nearest or cubic/bicubic, got '", mode, "'");
  std::string pad = ctx.node().attrString("padding_mode", "zeros");
  if (pad != "zeros" && pad != "border" && pad != "reflection")
    return ctx.error("padding_mode must be zeros, border or reflection, got '", pad, "'");
  const Shape& x = ctx.shape(0);
  const Shape& g = ctx.shape(1);
  if (!x.rank_known || !g.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  if (x.rank() < 3 || g.rank() != x.rank())
    return ctx.error("X ", x.toString(), " and grid ", g.toString(), " must have the same rank >= 3");
  const Dim& last = g.dims.back();
  if (last.known() && last.value != static_cast<int64_t>(x.rank()) - 2)
    return ctx.error("grid's last dim must be ", x.rank() - 2, " (one coordinate per spatial dim), got ", g.toString());
  if (x.dims[0].known() && g.dims[0].known() && x.dims[0] != g.dims[0])
    return ctx.error("X ", x.toString(), " and grid ", g.toString(), " disagree on the batch size");
  Shape out;
  out.dims = {x.dims[0], x.dims[1]};
  for (size_t i = 1; i + 1 < g.rank(); ++i) out.dims.push_back(g.dims[i]);
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

// ---------------------------------------------------------------- losses

static Status inferLossCommon(InferContext& ctx, const char* input_name) {
  RJ_RETURN_IF_ERROR(requireFloat(ctx, 0, input_name));
  if (ctx.dtype(1) != DataType::kInt32 && ctx.dtype(1) != DataType::kInt64)
    return ctx.error("target must be i32 or i64, got ", dataTypeName(ctx.dtype(1)));
  if (ctx.hasInput(2) && ctx.dtype(2) != ctx.dtype(0))
    return ctx.error("weight must have the input's type ", dataTypeName(ctx.dtype(0)), ", got ", dataTypeName(ctx.dtype(2)));
  std::string red = ctx.node().attrString("reduction", "mean");
  if (red != "mean" && red != "sum" && red != "none") return ctx.error("reduction must be none, sum or mean, got '", red, "'");
  const Shape& x = ctx.shape(0);
  const Shape& t = ctx.shape(1);
  Shape out = Shape::unknownRank();
  if (x.rank_known) {
    if (x.rank() < 2) return ctx.error(input_name, " must be [N, C, ...], got ", x.toString());
    out = x;
    out.dims.erase(out.dims.begin() + 1);
    if (t.rank_known) {
      if (t.rank() != out.rank()) return ctx.error("target ", t.toString(), " must have shape ", out.toString());
      for (size_t i = 0; i < t.rank(); ++i)
        if (t.dims[i].known() && out.dims[i].known() && t.dims[i] != out.dims[i])
          return ctx.error("target ", t.toString(), " must have shape ", out.toString());
    }
  }
  ctx.setOutput(0, ctx.dtype(0), red == "none" ? out : Shape());
  return Status::Ok();
}

Status inferNegativeLogLikelihoodLoss(InferContext& ctx) { return inferLossCommon(ctx, "input"); }

Status inferSoftmaxCrossEntropyLoss(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(inferLossCommon(ctx, "scores"));
  if (ctx.numOutputs() > 1) ctx.setOutput(1, ctx.dtype(0), ctx.shape(0));
  return Status::Ok();
}

// ---------------------------------------------------------------- math / signal

Status inferDet(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(requireFloat(ctx, 0, "X"));
  const Shape& x = ctx.shape(0);
  if (!x.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  if (x.rank() < 2) return ctx.error("X must be [..., M, M], got ", x.toString());
  const Dim& a = x.dims[x.rank() - 2];
  const Dim& b = x.dims[x.rank() - 1];
  if (a.known() && b.known() && a.value != b.value) return ctx.error("X must hold square matrices, got ", x.toString());
  ctx.setOutput(0, ctx.dtype(0), Shape(std::vector<Dim>(x.dims.begin(), x.dims.end() - 2)));
  return Status::Ok();
}

static Status inferWindow(InferContext& ctx) {
  if (ctx.dtype(0) != DataType::kInt32 && ctx.dtype(0) != DataType::kInt64)
    return ctx.error("size must be i32 or i64, got ", dataTypeName(ctx.dtype(0)));
  DataType out;
  int64_t od = ctx.node().attrInt("output_datatype", 1);
  if (!dataTypeFromOnnx(static_cast<int32_t>(od), &out) || !isSupportedDataType(out) || out == DataType::kString ||
      out == DataType::kBool)
    return ctx.error("output_datatype ", od, " is not supported");
  Dim n = ctx.newSymbol(ctx.node().name + "_size");
  if (const Tensor* v = ctx.value(0)) {
    RJ_ASSIGN_OR_RETURN(int64_t size, misc::scalarIntInput(*v, ctx.node(), "size"));
    if (size < 0) return ctx.error("size must be >= 0, got ", size);
    n = Dim(size);
  }
  ctx.setOutput(0, out, Shape({n}));
  return Status::Ok();
}
Status inferHannWindow(InferContext& ctx) { return inferWindow(ctx); }
Status inferHammingWindow(InferContext& ctx) { return inferWindow(ctx); }
Status inferBlackmanWindow(InferContext& ctx) { return inferWindow(ctx); }

Status inferMelWeightMatrix(InferContext& ctx) {
  DataType out;
  int64_t od = ctx.node().attrInt("output_datatype", 1);
  if (!dataTypeFromOnnx(static_cast<int32_t>(od), &out) || !isFloatType(out))
    return ctx.error("output_datatype ", od, " is not a floating-point type");
  for (size_t i : {0, 1, 2})
    if (!isIntegerType(ctx.dtype(i))) return ctx.error("input ", i, " must be an integer, got ", dataTypeName(ctx.dtype(i)));
  for (size_t i : {3, 4}) RJ_RETURN_IF_ERROR(requireFloat(ctx, i, "edge frequency"));
  Dim bins = ctx.newSymbol(ctx.node().name + "_bins"), mels = ctx.newSymbol(ctx.node().name + "_mels");
  if (const Tensor* v = ctx.value(0)) {
    RJ_ASSIGN_OR_RETURN(int64_t m, misc::scalarIntInput(*v, ctx.node(), "num_mel_bins"));
    if (m < 1) return ctx.error("num_mel_bins must be >= 1, got ", m);
    mels = Dim(m);
  }
  if (const Tensor* v = ctx.value(1)) {
    RJ_ASSIGN_OR_RETURN(int64_t d, misc::scalarIntInput(*v, ctx.node(), "dft_length"));
    if (d < 1) return ctx.error("dft_length must be >= 1, got ", d);
    bins = Dim(d / 2 + 1);
  }
  ctx.setOutput(0, out, Shape({bins, mels}));
  return Status::Ok();
}

}  // namespace ramjet::ops
