// Shape/type inference for Resize (Upsample and Resize-10/11 are upgraded to this form by the
// importer). Output sizes follow the ONNX reference: floor(in * scale) for scales; sizes with
// keep_aspect_ratio_policy for sizes.
#include <algorithm>
#include <cmath>

#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

static Status checkResizeAttrs(const Node& node) {
  auto err = [&](auto... parts) { return makeError(StatusCode::kInvalidModel, node.describe(), ": ", parts...); };
  std::string mode = node.attrString("mode", "nearest");
  if (mode != "nearest" && mode != "linear" && mode != "cubic") return err("unknown mode '", mode, "'");
  std::string ct = node.attrString("coordinate_transformation_mode", "half_pixel");
  if (ct != "half_pixel" && ct != "half_pixel_symmetric" && ct != "pytorch_half_pixel" && ct != "align_corners" &&
      ct != "asymmetric" && ct != "tf_crop_and_resize" && ct != "tf_half_pixel_for_nn")
    return err("unknown coordinate_transformation_mode '", ct, "'");
  std::string nm = node.attrString("nearest_mode", "round_prefer_floor");
  if (nm != "round_prefer_floor" && nm != "round_prefer_ceil" && nm != "floor" && nm != "ceil")
    return err("unknown nearest_mode '", nm, "'");
  std::string kp = node.attrString("keep_aspect_ratio_policy", "stretch");
  if (kp != "stretch" && kp != "not_larger" && kp != "not_smaller")
    return err("unknown keep_aspect_ratio_policy '", kp, "'");
  if (mode == "nearest" && node.attrInt("antialias", 0)) return err("antialias is not defined for mode 'nearest'");
  return Status::Ok();
}

Result<ResizePlan> resizePlan(const Node& node, const std::vector<int64_t>& in_dims, const std::vector<double>& roi,
                              const std::vector<double>& scales, const std::vector<int64_t>& sizes) {
  auto err = [&](auto... parts) { return makeError(StatusCode::kInvalidModel, node.describe(), ": ", parts...); };
  int64_t r = in_dims.size();
  std::vector<int64_t> axes = node.attrInts("axes");
  if (axes.empty()) {
    for (int64_t i = 0; i < r; ++i) axes.push_back(i);
  } else {
    for (auto& a : axes) RJ_RETURN_IF_ERROR(checkAxis(&a, r, node));
    std::vector<int64_t> s = axes;
    std::sort(s.begin(), s.end());
    if (std::adjacent_find(s.begin(), s.end()) != s.end()) return err("axes contain a duplicate");
  }
  size_t na = axes.size();
  ResizePlan p;
  p.out_dims = in_dims;
  p.scale.assign(r, 1.0);
  p.roi_start.assign(r, 0.0);
  p.roi_end.assign(r, 1.0);
  if (!roi.empty()) {
    if (roi.size() != 2 * na) return err("roi has ", roi.size(), " values, expected ", 2 * na);
    for (size_t i = 0; i < na; ++i) {
      p.roi_start[axes[i]] = roi[i];
      p.roi_end[axes[i]] = roi[na + i];
    }
  }
  if (!scales.empty() && !sizes.empty()) return err("only one of scales and sizes may be given");
  if (!scales.empty()) {
    if (scales.size() != na) return err("scales has ", scales.size(), " values, expected ", na);
    for (size_t i = 0; i < na; ++i) {
      if (!(scales[i] > 0)) return err("scale ", scales[i], " for axis ", axes[i], " must be positive");
      p.scale[axes[i]] = scales[i];
      p.out_dims[axes[i]] = static_cast<int64_t>(std::floor(scales[i] * static_cast<double>(in_dims[axes[i]])));
    }
  } else if (!sizes.empty()) {
    if (sizes.size() != na) return err("sizes has ", sizes.size(), " values, expected ", na);
    for (size_t i = 0; i < na; ++i) {
      if (sizes[i] < 0) return err("negative size ", sizes[i]);
      if (in_dims[axes[i]] == 0 && sizes[i] != 0) return err("cannot resize an empty axis ", axes[i], " to ", sizes[i]);
    }
    std::string kp = node.attrString("keep_aspect_ratio_policy", "stretch");
    if (kp == "stretch") {
      for (size_t i = 0; i < na; ++i) {
        int64_t a = axes[i];
        p.out_dims[a] = sizes[i];
        p.scale[a] = in_dims[a] ? static_cast<double>(sizes[i]) / static_cast<double>(in_dims[a]) : 1.0;
      }
    } else {
      double s = kp == "not_larger" ? 1e300 : 0;
      for (size_t i = 0; i < na; ++i) {
        double f = static_cast<double>(sizes[i]) / static_cast<double>(in_dims[axes[i]]);
        s = kp == "not_larger" ? std::min(s, f) : std::max(s, f);
      }
      for (size_t i = 0; i < na; ++i) {
        int64_t a = axes[i];
        p.scale[a] = s;
        p.out_dims[a] = static_cast<int64_t>(s * static_cast<double>(in_dims[a]) + 0.5);
      }
    }
  } else {
    return err("one of scales and sizes must be given");
  }
  return p;
}

Status inferResize(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(checkResizeAttrs(ctx.node()));
  const Shape& in = ctx.shape(0);
  if (!in.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  int64_t r = in.rank();
  // Empty scales/sizes/roi tensors mean "absent" (Resize-11/13 required the inputs).
  auto present = [&](size_t i) {
    if (!ctx.hasInput(i)) return false;
    const Shape& s = ctx.shape(i);
    return !(s.rank_known && s.fullyKnown() && numElements(s.concrete()) == 0);
  };
  bool has_scales = present(2), has_sizes = present(3);
  const Tensor* sc = has_scales ? ctx.value(2) : nullptr;
  auto sizes = has_sizes ? knownInts(ctx, 3) : std::nullopt;
  if ((has_scales && !sc) || (has_sizes && !sizes) || (!has_scales && !has_sizes)) {
    if (!has_scales && !has_sizes) return ctx.error("one of scales and sizes must be given");
    Shape out = in;
    std::vector<int64_t> axes = ctx.node().attrInts("axes");
    if (axes.empty()) for (int64_t i = 0; i < r; ++i) axes.push_back(i);
    for (int64_t a : axes) {
      RJ_RETURN_IF_ERROR(checkAxis(&a, r, ctx.node()));
      out.dims[a] = freshDim(ctx);
    }
    ctx.setOutput(0, ctx.dtype(0), out);
    return Status::Ok();
  }
  std::vector<double> scales;
  if (sc) for (int64_t i = 0; i < sc->numel(); ++i) scales.push_back(sc->getDouble(i));
  // Symbolic input dims: plan with a stand-in of 1, then replace the dims the plan scaled.
  std::vector<int64_t> dims(r);
  for (int64_t i = 0; i < r; ++i) dims[i] = in.dims[i].known() ? in.dims[i].value : 1;
  RJ_ASSIGN_OR_RETURN(ResizePlan p, resizePlan(ctx.node(), dims, {}, scales, sizes ? *sizes : std::vector<int64_t>{}));
  Shape out;
  bool symbolic_policy = ctx.node().attrString("keep_aspect_ratio_policy", "stretch") != "stretch";
  for (int64_t i = 0; i < r; ++i) {
    if (in.dims[i].known() && !(symbolic_policy && !in.fullyKnown())) {
      out.dims.push_back(Dim(p.out_dims[i]));
    } else if (!in.dims[i].known() && p.scale[i] == 1.0 && scales.size() > 0) {
      out.dims.push_back(in.dims[i]);
    } else if (!in.dims[i].known() && sizes) {
      // sizes given: a stretched axis has the requested size whatever the input.
      std::vector<int64_t> axes = ctx.node().attrInts("axes");
      bool is_axis = axes.empty();
      for (int64_t a : axes) is_axis |= (a < 0 ? a + r : a) == i;
      out.dims.push_back(is_axis && !symbolic_policy ? Dim(p.out_dims[i]) : (is_axis ? freshDim(ctx) : in.dims[i]));
    } else {
      out.dims.push_back(freshDim(ctx));
    }
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

}  // namespace ramjet::ops
