// One line (function) per op whose older opset forms differ from the newest: each rewrites the
// node into the canonical form that shape inference and kernels understand. Ops absent from the
// table have had one form across opsets 7-21 (or differ only in accepted types).
#include <algorithm>
#include <functional>
#include <map>

#include "onnx/import_context.h"

namespace ramjet::onnx_import {
namespace {

using UpgradeFn = std::function<void(ImportContext&, Node*)>;

// Moves an ints attribute into a constant i64 input at `index` (Squeeze axes, Pad pads, ...).
void intsAttrToInput(ImportContext& ctx, Node* n, const char* attr, size_t index) {
  auto it = n->attrs.find(attr);
  if (it == n->attrs.end()) return;
  std::vector<int64_t> v = it->second.ints;
  n->attrs.erase(it);
  ctx.setConstInput(n, index, Tensor::fromVector<int64_t>(v, {static_cast<int64_t>(v.size())}), attr);
}

void reduceAxesToInput(ImportContext& ctx, Node* n, int64_t since) {
  if (ctx.opset < since) intsAttrToInput(ctx, n, "axes", 1);
}

// Softmax-family before opset 13: "flatten to 2D at axis (default 1), normalise rows".
void softmaxLegacy(ImportContext& ctx, Node* n) {
  if (ctx.opset >= 13) return;
  int64_t axis = n->attrInt("axis", 1);
  n->attrs["axis"] = Attribute::fromInt(axis);
  n->attrs["coerce_2d"] = Attribute::fromInt(1);
}

// Before opset 7, binary ops broadcast only with broadcast=1, aligning B's dims at A's `axis`
// (default: trailing). Numpy broadcasting covers the trailing case; for an explicit axis a
// constant B gets trailing 1s so that it lines up there.
void legacyBroadcast(ImportContext& c, Node* n) {
  if (c.opset >= 7) return;
  const bool has_axis = n->hasAttr("axis") && n->attrInt("broadcast", 0) != 0;
  int64_t axis = n->attrInt("axis", -1);
  n->attrs.erase("broadcast");
  n->attrs.erase("axis");
  if (!has_axis || n->inputs.size() < 2 || !n->inputs[0] || !n->inputs[1]) return;
  const Value* a = n->inputs[0];
  const Value* b = n->inputs[1];
  if (!a->type.shape.rank_known || !b->type.shape.rank_known) return;
  int64_t ra = static_cast<int64_t>(a->type.shape.rank()), rb = static_cast<int64_t>(b->type.shape.rank());
  if (axis < 0) axis += ra;
  int64_t trailing = ra - axis - rb;
  if (trailing <= 0) return;
  if (!b->constant) {
    c.problems->unsupported.push_back("node '" + n->name + "' (" + n->op_type + "): legacy broadcast at axis " +
                                      std::to_string(axis) + " of a non-constant input");
    return;
  }
  std::vector<int64_t> dims = b->constant->dims();
  dims.resize(dims.size() + trailing, 1);
  c.setConstInput(n, 1, b->constant->reshaped(dims), "bcast");
}

// PRelu before opset 7: a 1-D slope of C values applies along the channel axis (1), not the last.
void legacyPRelu(ImportContext& c, Node* n) {
  if (c.opset >= 7 || n->inputs.size() < 2 || !n->inputs[0] || !n->inputs[1]) return;
  const Value* x = n->inputs[0];
  const Value* slope = n->inputs[1];
  if (!slope->constant || slope->constant->rank() != 1 || slope->constant->numel() == 1) return;
  if (!x->type.shape.rank_known || x->type.shape.rank() < 3) return;
  std::vector<int64_t> dims(x->type.shape.rank() - 1, 1);
  dims[0] = slope->constant->numel();
  c.setConstInput(n, 1, slope->constant->reshaped(dims), "slope");
}

const std::map<std::string, UpgradeFn>& table() {
  static const std::map<std::string, UpgradeFn> kTable = {
      {"Squeeze", [](ImportContext& c, Node* n) { if (c.opset < 13) intsAttrToInput(c, n, "axes", 1); }},
      {"Unsqueeze", [](ImportContext& c, Node* n) { if (c.opset < 13) intsAttrToInput(c, n, "axes", 1); }},
      {"ReduceSum", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 13); }},
      {"ReduceMean", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceMax", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceMin", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceProd", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceL1", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceL2", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceLogSum", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceLogSumExp", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"ReduceSumSquare", [](ImportContext& c, Node* n) { reduceAxesToInput(c, n, 18); }},
      {"Split", [](ImportContext& c, Node* n) { if (c.opset < 13) intsAttrToInput(c, n, "split", 1); }},
      {"Slice", [](ImportContext& c, Node* n) {
         if (c.opset >= 10) return;
         std::vector<int64_t> starts = n->attrInts("starts"), ends = n->attrInts("ends"), axes = n->attrInts("axes");
         n->attrs.erase("starts"); n->attrs.erase("ends");
         c.setConstInput(n, 1, Tensor::fromVector<int64_t>(starts, {static_cast<int64_t>(starts.size())}), "starts");
         c.setConstInput(n, 2, Tensor::fromVector<int64_t>(ends, {static_cast<int64_t>(ends.size())}), "ends");
         if (n->hasAttr("axes")) { n->attrs.erase("axes"); c.setConstInput(n, 3, Tensor::fromVector<int64_t>(axes, {static_cast<int64_t>(axes.size())}), "axes"); }
       }},
      {"Pad", [](ImportContext& c, Node* n) {
         if (c.opset >= 11) return;
         float value = n->attrFloat("value", 0.f);
         n->attrs.erase("value");
         if (n->hasAttr("paddings")) { n->attrs["pads"] = n->attrs["paddings"]; n->attrs.erase("paddings"); }
         intsAttrToInput(c, n, "pads", 1);
         c.setConstInput(n, 2, Tensor::scalar<float>(value), "value");
       }},
      {"Clip", [](ImportContext& c, Node* n) {
         if (c.opset >= 11) return;
         float lo = n->attrFloat("min", -3.4028234663852886e38f), hi = n->attrFloat("max", 3.4028234663852886e38f);
         n->attrs.erase("min"); n->attrs.erase("max");
         c.setConstInput(n, 1, Tensor::scalar<float>(lo), "min");
         c.setConstInput(n, 2, Tensor::scalar<float>(hi), "max");
       }},
      {"TopK", [](ImportContext& c, Node* n) {
         if (c.opset >= 10) return;
         int64_t k = n->attrInt("k", 1);
         n->attrs.erase("k");
         c.setConstInput(n, 1, Tensor::fromVector<int64_t>({k}, {1}), "k");
       }},
      {"Softmax", softmaxLegacy},
      {"LogSoftmax", softmaxLegacy},
      {"Hardmax", softmaxLegacy},
      {"GroupNormalization", [](ImportContext& c, Node* n) {
         // Opset 18-20 take scale/bias per group ([num_groups]), 21 per channel ([C]); the
         // canonical node is the opset-21 one, marked when its scale/bias are per group.
         if (c.opset < 21) n->attrs["affine_per_group"] = Attribute::fromInt(1);
       }},
      {"LpPool", [](ImportContext&, Node* n) {
         // LpPool-1 had a float `p`; later opsets an int.
         auto it = n->attrs.find("p");
         if (it != n->attrs.end() && it->second.kind == Attribute::Kind::kFloat)
           it->second = Attribute::fromInt(static_cast<int64_t>(it->second.f));
       }},
      {"Gemm", [](ImportContext&, Node* n) { n->attrs.erase("broadcast"); }},  // opset < 7
      {"Upsample", [](ImportContext& c, Node* n) {
         // Upsample(X, scales) == Resize(X, roi="", scales) with asymmetric coordinates.
         n->op_type = "Resize";
         std::string mode = n->attrString("mode", "nearest");
         std::vector<float> attr_scales = n->attrFloats("scales");  // opset 7 form
         n->attrs.clear();
         n->attrs["mode"] = Attribute::fromString(mode == "bilinear" ? "linear" : mode);
         n->attrs["coordinate_transformation_mode"] = Attribute::fromString("asymmetric");
         n->attrs["nearest_mode"] = Attribute::fromString("floor");
         Value* scales = n->inputs.size() > 1 ? n->inputs[1] : nullptr;
         n->inputs.resize(1);
         n->inputs.push_back(nullptr);  // roi
         n->inputs.push_back(scales);
         if (!scales && !attr_scales.empty())
           c.setConstInput(n, 2, Tensor::fromVector<float>(attr_scales, {static_cast<int64_t>(attr_scales.size())}), "scales");
       }},
      {"Resize", [](ImportContext& c, Node* n) {
         if (c.opset >= 11) return;
         // Resize-10: (X, scales), asymmetric coordinates, floor for nearest.
         Value* scales = n->inputs.size() > 1 ? n->inputs[1] : nullptr;
         n->inputs.resize(1);
         n->inputs.push_back(nullptr);
         n->inputs.push_back(scales);
         n->attrs["coordinate_transformation_mode"] = Attribute::fromString("asymmetric");
         n->attrs["nearest_mode"] = Attribute::fromString("floor");
       }},
      {"PRelu", legacyPRelu},
      {"Add", legacyBroadcast}, {"Sub", legacyBroadcast}, {"Mul", legacyBroadcast}, {"Div", legacyBroadcast},
      {"Pow", legacyBroadcast}, {"And", legacyBroadcast}, {"Or", legacyBroadcast}, {"Xor", legacyBroadcast},
      {"Equal", legacyBroadcast}, {"Less", legacyBroadcast}, {"Greater", legacyBroadcast},
      {"Scatter", [](ImportContext&, Node* n) { n->op_type = "ScatterElements"; }},
      {"Concat", [](ImportContext& c, Node* n) {  // Concat-1..3: axis optional, default 1
         if (c.opset < 4 && !n->hasAttr("axis")) n->attrs["axis"] = Attribute::fromInt(1);
       }},
      {"Reshape", [](ImportContext& c, Node* n) {  // Reshape-1: target shape as an attribute
         if (c.opset < 5) intsAttrToInput(c, n, "shape", 1);
       }},
      {"BatchNormalization", [](ImportContext&, Node* n) {
         n->attrs.erase("spatial");
         n->attrs.erase("consumed_inputs");
         n->attrs.erase("is_test");
       }},
      {"Dropout", [](ImportContext& c, Node* n) {
         if (c.opset >= 12) return;
         n->attrs.erase("is_test");
         if (n->hasAttr("ratio")) {
           float r = n->attrFloat("ratio", 0.5f);
           n->attrs.erase("ratio");
           c.setConstInput(n, 1, Tensor::scalar<float>(r), "ratio");
         }
         if (c.opset < 10) n->attrs["mask_same_type"] = Attribute::fromInt(1);  // mask was T, not bool
       }},
      // Scan-8 has sequence_lens first and a batch axis on every input; the kernel loops over it.
      {"Scan", [](ImportContext& c, Node* n) {
         if (c.opset >= 9) return;
         n->attrs["scan8_batched"] = Attribute::fromInt(1);
         // An omitted sequence_lens is dropped so the required inputs come first; the attribute
         // tells the kernel whether it is there.
         bool lens = !n->inputs.empty() && n->inputs[0];
         if (!n->inputs.empty() && !lens) n->inputs.erase(n->inputs.begin());
         n->attrs["scan8_lens"] = Attribute::fromInt(lens ? 1 : 0);
       }},
      {"RoiAlign", [](ImportContext& c, Node* n) {
         // Before opset 16 the only mode was the (misaligned) output_half_pixel one.
         if (c.opset < 16 && !n->hasAttr("coordinate_transformation_mode"))
           n->attrs["coordinate_transformation_mode"] = Attribute::fromString("output_half_pixel");
       }},
      {"GridSample", [](ImportContext&, Node* n) {
         // Opset 20 renamed bilinear/bicubic to linear/cubic.
         std::string mode = n->attrString("mode", "bilinear");
         n->attrs["mode"] = Attribute::fromString(mode == "bilinear" ? "linear" : mode == "bicubic" ? "cubic" : mode);
       }},
  };
  return kTable;
}

}  // namespace

void ImportContext::setConstInput(Node* node, size_t index, Tensor t, const std::string& suffix) {
  Value* v = graph->addValue(graph->uniqueValueName(node->name + "_" + suffix));
  v->type = t.type();
  v->constant = std::make_shared<Tensor>(std::move(t));
  if (node->inputs.size() <= index) node->inputs.resize(index + 1, nullptr);
  if (node->inputs[index]) {
    auto& cons = node->inputs[index]->consumers;
    cons.erase(std::remove(cons.begin(), cons.end(), node), cons.end());
  }
  node->inputs[index] = v;
  v->consumers.push_back(node);
}

bool isRenamedLegacyOp(const std::string& op_type) {
  return op_type == "Upsample" || op_type == "Scatter";
}

void upgradeNode(ImportContext& ctx, Node* node) {
  // Old BatchNorm/Pool/etc. had legacy attributes that later opsets dropped; consumers ignore them.
  node->attrs.erase("consumed_inputs");
  auto it = table().find(node->op_type);
  if (it != table().end()) it->second(ctx, node);
}

}  // namespace ramjet::onnx_import
