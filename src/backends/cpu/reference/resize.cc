// Reference Resize: separable, one axis at a time, computed in double (as the ONNX reference
// implementation does). Each resized axis gets a table of (input index, weight) taps per output
// index; nearest is one tap, linear/cubic use their kernels (widened by 1/scale for antialias).
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/dispatch.h"
#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

namespace {

struct AxisTaps {
  int64_t n_out = 0, taps = 1;
  std::vector<int64_t> index;  // [n_out * taps], clamped into the input
  std::vector<double> weight;  // [n_out * taps]
  std::vector<bool> extrapolate;  // tf_crop_and_resize outside the input
};

double cubicWeight(double x, double a) {
  x = std::fabs(x);
  if (x <= 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

struct ResizeAttrs {
  std::string mode, ct, nearest;
  double cubic_a = -0.75;
  bool exclude_outside = false, antialias = false;
};

AxisTaps axisTaps(const ResizeAttrs& at, int64_t w_in, int64_t w_out, double scale, double roi_s, double roi_e) {
  AxisTaps t;
  t.n_out = w_out;
  double out_w = scale * static_cast<double>(w_in);  // the reference uses the unrounded width
  double kscale = at.antialias ? std::min(scale, 1.0) : 1.0;
  int64_t i_start = 0;
  if (at.mode == "linear") i_start = static_cast<int64_t>(std::floor(-1.0 / kscale)) + 1;
  if (at.mode == "cubic") i_start = static_cast<int64_t>(std::floor(-2.0 / kscale)) + 1;
  t.taps = at.mode == "nearest" ? 1 : 2 - 2 * i_start;
  t.index.resize(w_out * t.taps);
  t.weight.resize(w_out * t.taps);
  t.extrapolate.assign(w_out, false);
  for (int64_t o = 0; o < w_out; ++o) {
    double y = static_cast<double>(o), x;
    const std::string& ct = at.ct;
    if (ct == "align_corners") {
      x = out_w == 1 ? 0 : y * (w_in - 1) / (out_w - 1);
    } else if (ct == "asymmetric") {
      x = y / scale;
    } else if (ct == "tf_half_pixel_for_nn") {
      x = (y + 0.5) / scale;
    } else if (ct == "tf_crop_and_resize") {
      x = out_w == 1 ? (roi_e - roi_s) * (w_in - 1) / 2 : y * (roi_e - roi_s) * (w_in - 1) / (out_w - 1);
      x += roi_s * (w_in - 1);
      if (x < 0 || x > w_in - 1) t.extrapolate[o] = true;
    } else if (ct == "pytorch_half_pixel") {
      x = out_w == 1 ? -0.5 : (y + 0.5) / scale - 0.5;
    } else if (ct == "half_pixel_symmetric") {
      double adjustment = static_cast<double>(w_out) / out_w;
      double offset = w_in / 2.0 * (1 - adjustment);
      x = offset + (y + 0.5) / scale - 0.5;
    } else {  // half_pixel
      x = (y + 0.5) / scale - 0.5;
    }
    int64_t* idx = &t.index[o * t.taps];
    double* w = &t.weight[o * t.taps];
    double fl = std::floor(x), ratio = x - fl;
    int64_t base = static_cast<int64_t>(fl);
    if (at.mode == "nearest") {
      int64_t k;
      if (at.nearest == "floor") k = base;
      else if (at.nearest == "ceil") k = static_cast<int64_t>(std::ceil(x));
      else if (at.nearest == "round_prefer_ceil") k = ratio < 0.5 ? base : base + 1;
      else k = ratio <= 0.5 ? base : base + 1;  // round_prefer_floor
      idx[0] = std::clamp<int64_t>(k, 0, w_in - 1);
      w[0] = 1;
      continue;
    }
    double sum = 0;
    for (int64_t j = 0; j < t.taps; ++j) {
      int64_t i = i_start + j;
      double arg = kscale * (static_cast<double>(i) - ratio);
      double wt = at.mode == "linear" ? std::max(0.0, 1 - std::fabs(arg)) : cubicWeight(arg, at.cubic_a);
      int64_t src = base + i;
      if (at.exclude_outside && (src < 0 || src >= w_in)) wt = 0;
      idx[j] = std::clamp<int64_t>(src, 0, w_in - 1);
      w[j] = wt;
      sum += wt;
    }
    if ((at.antialias || at.exclude_outside) && sum != 0)
      for (int64_t j = 0; j < t.taps; ++j) w[j] /= sum;
  }
  return t;
}

template <typename T>
T saturate(double v) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    v = std::nearbyint(v);  // numpy round: half to even
    if (std::isnan(v)) return 0;
    v = std::clamp<double>(v, static_cast<double>(std::numeric_limits<T>::lowest()),
                           static_cast<double>(std::numeric_limits<T>::max()));
    return static_cast<T>(v);
  } else {
    return static_cast<T>(static_cast<typename AccType<T>::type>(v));
  }
}

}  // namespace

Result<std::vector<std::vector<int64_t>>> nearestResizeIndices(const Node& node, const std::vector<int64_t>& in_dims,
                                                               const std::vector<double>& scales,
                                                               const std::vector<int64_t>& sizes,
                                                               std::vector<int64_t>* out_dims) {
  ResizeAttrs at;
  at.mode = node.attrString("mode", "nearest");
  at.ct = node.attrString("coordinate_transformation_mode", "half_pixel");
  at.nearest = node.attrString("nearest_mode", "round_prefer_floor");
  at.antialias = node.attrInt("antialias", 0) != 0;
  if (at.mode != "nearest" || at.ct == "tf_crop_and_resize" || at.antialias)
    return makeError(StatusCode::kUnsupported, node.describe(), ": not a plain nearest resize");
  RJ_ASSIGN_OR_RETURN(ResizePlan p, resizePlan(node, in_dims, {}, scales, sizes));
  std::vector<std::vector<int64_t>> idx(in_dims.size());
  for (size_t a = 0; a < in_dims.size(); ++a) {
    AxisTaps t = axisTaps(at, in_dims[a], p.out_dims[a], p.scale[a], p.roi_start[a], p.roi_end[a]);
    if (t.taps != 1) return makeError(StatusCode::kUnsupported, node.describe(), ": nearest with several taps");
    idx[a] = t.index;
  }
  *out_dims = p.out_dims;
  return idx;
}

Status refResize(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(requireOutput(ctx, 0));
  const Tensor& in = ctx.input(0);
  Tensor& out = ctx.output(0);
  ResizeAttrs at;
  at.mode = ctx.node.attrString("mode", "nearest");
  at.ct = ctx.node.attrString("coordinate_transformation_mode", "half_pixel");
  at.nearest = ctx.node.attrString("nearest_mode", "round_prefer_floor");
  at.cubic_a = ctx.node.attrFloat("cubic_coeff_a", -0.75f);
  at.exclude_outside = ctx.node.attrInt("exclude_outside", 0) != 0;
  at.antialias = ctx.node.attrInt("antialias", 0) != 0;
  double extrapolation = ctx.node.attrFloat("extrapolation_value", 0.f);
  auto present = [&](size_t i) { return ctx.hasInput(i) && ctx.input(i).numel() > 0; };
  std::vector<double> roi, scales;
  std::vector<int64_t> sizes;
  if (at.ct == "tf_crop_and_resize") {
    if (!present(1)) return ctx.error("coordinate_transformation_mode tf_crop_and_resize needs the roi input");
    for (int64_t i = 0; i < ctx.input(1).numel(); ++i) roi.push_back(ctx.input(1).getDouble(i));
  }
  if (present(2))
    for (int64_t i = 0; i < ctx.input(2).numel(); ++i) scales.push_back(ctx.input(2).getDouble(i));
  if (present(3)) sizes = inputInts(ctx, 3);
  RJ_ASSIGN_OR_RETURN(ResizePlan p, resizePlan(ctx.node, in.dims(), roi, scales, sizes));
  if (p.out_dims != out.dims())
    return makeError(StatusCode::kInternal, ctx.node.describe(), ": planned output ", dimsToString(p.out_dims),
                     " differs from the inferred ", dimsToString(out.dims()));
  if (in.numel() == 0 && out.numel() > 0) return ctx.error("cannot resize an empty tensor to a non-empty one");

  std::vector<int64_t> cur = in.dims();
  std::vector<double> buf(in.numel());
  for (int64_t i = 0; i < in.numel(); ++i) buf[i] = in.getDouble(i);
  int64_t r = in.rank();
  for (int64_t a = 0; a < r; ++a) {
    bool identity = p.out_dims[a] == cur[a] && p.scale[a] == 1.0 &&
                    (at.ct != "tf_crop_and_resize" || (p.roi_start[a] == 0 && p.roi_end[a] == 1));
    if (identity) continue;
    AxisTaps t = axisTaps(at, cur[a], p.out_dims[a], p.scale[a], p.roi_start[a], p.roi_end[a]);
    int64_t outer = 1, inner = 1, n_in = cur[a];
    for (int64_t i = 0; i < a; ++i) outer *= cur[i];
    for (int64_t i = a + 1; i < r; ++i) inner *= cur[i];
    std::vector<double> next(outer * t.n_out * inner);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t y = 0; y < t.n_out; ++y) {
        double* dst = &next[(o * t.n_out + y) * inner];
        if (t.extrapolate[y]) {
          std::fill(dst, dst + inner, extrapolation);
          continue;
        }
        for (int64_t j = 0; j < t.taps; ++j) {
          double w = t.weight[y * t.taps + j];
          if (w == 0) continue;
          const double* src = &buf[(o * n_in + t.index[y * t.taps + j]) * inner];
          for (int64_t i = 0; i < inner; ++i) dst[i] += w * src[i];
        }
      }
    buf.swap(next);
    cur[a] = t.n_out;
  }
  bool ok = visitNumericType(out.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = saturate<T>(buf[i]);
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(out.dtype()));
  return Status::Ok();
}

}  // namespace ramjet::ops
