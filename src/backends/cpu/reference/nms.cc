// Reference kernels for detection-style ops: NonMaxSuppression, RoiAlign, GridSample.
// They follow the ONNX reference implementation (itself a port of onnxruntime's kernels) so that
// tie-breaking and boundary behaviour match bit for bit where the spec leaves room.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/dispatch.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// Box as (x_min, y_min, x_max, y_max) from either ONNX layout.
struct Box {
  double x0, y0, x1, y1;
};

Box readBox(const Tensor& boxes, int64_t off, bool center) {
  double a = boxes.getDouble(off), b = boxes.getDouble(off + 1), c = boxes.getDouble(off + 2),
         d = boxes.getDouble(off + 3);
  if (center) return {a - c / 2, b - d / 2, a + c / 2, b + d / 2};
  // [y1, x1, y2, x2], corners in either order.
  return {std::min(b, d), std::min(a, c), std::max(b, d), std::max(a, c)};
}

bool suppressByIou(const Box& p, const Box& q, double threshold) {
  double ix0 = std::max(p.x0, q.x0), ix1 = std::min(p.x1, q.x1);
  if (ix1 <= ix0) return false;
  double iy0 = std::max(p.y0, q.y0), iy1 = std::min(p.y1, q.y1);
  if (iy1 <= iy0) return false;
  double inter = (ix1 - ix0) * (iy1 - iy0);
  double a1 = (p.x1 - p.x0) * (p.y1 - p.y0), a2 = (q.x1 - q.x0) * (q.y1 - q.y0);
  double uni = a1 + a2 - inter;
  if (inter <= 0 || a1 <= 0 || a2 <= 0 || uni <= 0) return false;
  return inter / uni > threshold;
}

}  // namespace

Status refNonMaxSuppression(KernelContext& ctx) {
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (boxes.rank() != 3 || boxes.dims()[2] != 4) return ctx.error("boxes must be [batch, boxes, 4], got ", dimsToString(boxes.dims()));
  if (scores.rank() != 3 || scores.dims()[0] != boxes.dims()[0] || scores.dims()[2] != boxes.dims()[1])
    return ctx.error("scores ", dimsToString(scores.dims()), " must be [batch, classes, boxes] for boxes ",
                     dimsToString(boxes.dims()));
  int64_t max_out = 0;
  if (ctx.hasInput(2) && ctx.input(2).numel() > 0) max_out = std::max<int64_t>(0, ctx.input(2).getInt(0));
  double iou = 0, score_th = 0;
  bool has_score_th = false;
  if (ctx.hasInput(3) && ctx.input(3).numel() > 0) iou = ctx.input(3).getDouble(0);
  if (ctx.hasInput(4) && ctx.input(4).numel() > 0) { score_th = ctx.input(4).getDouble(0); has_score_th = true; }
  if (iou < 0 || iou > 1) return ctx.error("iou_threshold must be in [0, 1], got ", iou);
  const bool center = ctx.node.attrInt("center_point_box", 0) == 1;
  const int64_t B = boxes.dims()[0], C = scores.dims()[1], N = boxes.dims()[1];
  std::vector<int64_t> selected;  // triples
  std::vector<int64_t> order(static_cast<size_t>(N));
  for (int64_t b = 0; b < B; ++b) {
    std::vector<Box> bx(static_cast<size_t>(N));
    for (int64_t i = 0; i < N; ++i) bx[i] = readBox(boxes, (b * N + i) * 4, center);
    for (int64_t c = 0; c < C; ++c) {
      const int64_t soff = (b * C + c) * N;
      order.clear();
      for (int64_t i = 0; i < N; ++i)
        if (!has_score_th || scores.getDouble(soff + i) > score_th) order.push_back(i);
      // Highest score first; equal scores keep the lower box index first.
      std::stable_sort(order.begin(), order.end(), [&](int64_t p, int64_t q) {
        return scores.getDouble(soff + p) > scores.getDouble(soff + q);
      });
      std::vector<int64_t> kept;
      for (int64_t i : order) {
        if (static_cast<int64_t>(kept.size()) >= max_out) break;
        bool ok = true;
        for (int64_t k : kept)
          if (suppressByIou(bx[i], bx[k], iou)) { ok = false; break; }
        if (!ok) continue;
        kept.push_back(i);
        selected.insert(selected.end(), {b, c, i});
      }
    }
  }
  Tensor& out = ctx.allocOutput(0, DataType::kInt64, {static_cast<int64_t>(selected.size() / 3), 3});
  std::copy(selected.begin(), selected.end(), out.data<int64_t>());
  return Status::Ok();
}

Status refRoiAlign(KernelContext& ctx) {
  const Tensor& X = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  const Tensor& bidx = ctx.input(2);
  if (X.rank() != 4) return ctx.error("X must be [N, C, H, W], got ", dimsToString(X.dims()));
  if (rois.rank() != 2 || rois.dims()[1] != 4) return ctx.error("rois must be [num_rois, 4], got ", dimsToString(rois.dims()));
  if (bidx.rank() != 1 || bidx.dims()[0] != rois.dims()[0])
    return ctx.error("batch_indices must be [", rois.dims()[0], "], got ", dimsToString(bidx.dims()));
  const int64_t C = X.dims()[1], H = X.dims()[2], W = X.dims()[3], R = rois.dims()[0];
  const int64_t PH = ctx.node.attrInt("output_height", 1), PW = ctx.node.attrInt("output_width", 1);
  const int64_t sampling = ctx.node.attrInt("sampling_ratio", 0);
  const double scale = ctx.node.attrFloat("spatial_scale", 1.0f);
  const bool avg = ctx.node.attrString("mode", "avg") == "avg";
  const bool half_pixel = ctx.node.attrString("coordinate_transformation_mode", "half_pixel") == "half_pixel";
  for (int64_t r = 0; r < R; ++r)
    if (bidx.getInt(r) < 0 || bidx.getInt(r) >= X.dims()[0])
      return ctx.error("batch_indices[", r, "] = ", bidx.getInt(r), " is outside the batch of ", X.dims()[0]);
  Tensor& Y = ctx.output(0);
  struct Tap { int64_t p[4]; double w[4]; };
  bool ok = visitFloatType(X.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = X.data<T>();
    T* py = Y.data<T>();
    for (int64_t r = 0; r < R; ++r) {
      const int64_t b = bidx.getInt(r);
      const double off = half_pixel ? 0.5 : 0.0;
      // The ONNX reference computes ROI geometry in the ROI tensor's precision (float32 here).
      const float sw = static_cast<float>(rois.getDouble(r * 4 + 0) * scale - off);
      const float sh = static_cast<float>(rois.getDouble(r * 4 + 1) * scale - off);
      const float ew = static_cast<float>(rois.getDouble(r * 4 + 2) * scale - off);
      const float eh = static_cast<float>(rois.getDouble(r * 4 + 3) * scale - off);
      double rw = ew - sw, rh = eh - sh;
      if (!half_pixel) { rw = std::max(rw, 1.0); rh = std::max(rh, 1.0); }
      const double bh = rh / PH, bw = rw / PW;
      const int64_t gh = sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rh / PH));
      const int64_t gw = sampling > 0 ? sampling : static_cast<int64_t>(std::ceil(rw / PW));
      const int64_t count = std::max<int64_t>(gh * gw, 1);
      std::vector<Tap> taps;
      taps.reserve(static_cast<size_t>(std::max<int64_t>(0, PH * PW * gh * gw)));
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw)
          for (int64_t iy = 0; iy < gh; ++iy) {
            double yy = sh + ph * bh + (iy + 0.5) * bh / gh;
            for (int64_t ix = 0; ix < gw; ++ix) {
              double xx = sw + pw * bw + (ix + 0.5) * bw / gw;
              Tap t{};
              if (yy < -1.0 || yy > H || xx < -1.0 || xx > W) { taps.push_back(t); continue; }
              double y = std::max(yy, 0.0), x = std::max(xx, 0.0);
              int64_t yl = static_cast<int64_t>(y), xl = static_cast<int64_t>(x), yh, xh;
              if (yl >= H - 1) { yh = yl = H - 1; y = static_cast<double>(yl); } else yh = yl + 1;
              if (xl >= W - 1) { xh = xl = W - 1; x = static_cast<double>(xl); } else xh = xl + 1;
              double ly = y - yl, lx = x - xl, hy = 1 - ly, hx = 1 - lx;
              t = Tap{{yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh}, {hy * hx, hy * lx, ly * hx, ly * lx}};
              taps.push_back(t);
            }
          }
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = px + (b * C + c) * H * W;
        size_t ti = 0;
        for (int64_t ph = 0; ph < PH; ++ph)
          for (int64_t pw = 0; pw < PW; ++pw) {
            double v = 0;
            bool first = true;
            for (int64_t s = 0; s < gh * gw; ++s, ++ti) {
              const Tap& t = taps[ti];
              if (avg) {
                for (int q = 0; q < 4; ++q) v += t.w[q] * static_cast<double>(plane[t.p[q]]);
              } else {
                // onnxruntime's (and the ONNX reference's) max mode: max of the weighted corners.
                double m = t.w[0] * static_cast<double>(plane[t.p[0]]);
                for (int q = 1; q < 4; ++q) m = std::max(m, t.w[q] * static_cast<double>(plane[t.p[q]]));
                v = first ? m : std::max(v, m);
                first = false;
              }
            }
            if (avg) v /= static_cast<double>(count);
            py[((r * C + c) * PH + ph) * PW + pw] = static_cast<T>(v);
          }
      }
    }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(X.dtype()));
  return Status::Ok();
}

namespace {

double reflect(double x, double lo, double hi) {
  double range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    double dx = lo - x;
    int64_t n = static_cast<int64_t>(dx / range);
    double r = dx - n * range;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    int64_t n = static_cast<int64_t>(dx / range);
    double r = dx - n * range;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

void cubicCoeffs(double x, double c[4]) {
  const double a = -0.75;
  x = std::abs(x);
  c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
  c[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
  c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a;
}

}  // namespace

Status refGridSample(KernelContext& ctx) {
  const Tensor& X = ctx.input(0);
  const Tensor& grid = ctx.input(1);
  const size_t nd = X.rank() - 2;
  if (X.rank() < 3 || grid.rank() != X.rank() || grid.dims().back() != static_cast<int64_t>(nd) ||
      grid.dims()[0] != X.dims()[0])
    return ctx.error("X ", dimsToString(X.dims()), " and grid ", dimsToString(grid.dims()), " do not fit");
  std::string mode = ctx.node.attrString("mode", "linear");
  if (mode == "bilinear") mode = "linear";
  if (mode == "bicubic") mode = "cubic";
  const std::string pad = ctx.node.attrString("padding_mode", "zeros");
  const bool align = ctx.node.attrInt("align_corners", 0) != 0;
  const int64_t N = X.dims()[0], C = X.dims()[1];
  std::vector<int64_t> in_sp(X.dims().begin() + 2, X.dims().end());
  std::vector<int64_t> out_sp(grid.dims().begin() + 1, grid.dims().end() - 1);
  const int64_t in_plane = numElements(in_sp), out_plane = numElements(out_sp);
  std::vector<int64_t> in_strides = stridesOf(in_sp);
  std::vector<double> lo(nd), hi(nd);
  for (size_t d = 0; d < nd; ++d) {
    lo[d] = align ? 0.0 : -0.5;
    hi[d] = align ? in_sp[d] - 1.0 : in_sp[d] - 0.5;
  }
  // Index along dim d after applying the padding mode; -1 means "reads zero".
  auto index = [&](int64_t i, size_t d) -> int64_t {
    if (pad == "zeros") return (i >= 0 && i < in_sp[d]) ? i : -1;
    if (pad == "border") return std::clamp<int64_t>(i, 0, in_sp[d] - 1);
    int64_t r = static_cast<int64_t>(reflect(static_cast<double>(i), lo[d], hi[d]));
    return std::clamp<int64_t>(r, 0, in_sp[d] - 1);
  };
  Tensor& Y = ctx.output(0);
  std::vector<std::vector<std::pair<int64_t, double>>> taps(nd);
  bool ok = visitFloatType(X.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* px = X.data<T>();
    T* py = Y.data<T>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t o = 0; o < out_plane; ++o) {
        // Grid coordinates are innermost-first (x, y, ...): reverse to match dims.
        for (size_t d = 0; d < nd; ++d) {
          double g = grid.getDouble((n * out_plane + o) * static_cast<int64_t>(nd) + static_cast<int64_t>(nd - 1 - d));
          float gf = static_cast<float>(g);
          // Denormalize in float32 like the reference.
          float xf = align ? (gf + 1) / 2.0f * static_cast<float>(in_sp[d] - 1)
                           : ((gf + 1) * static_cast<float>(in_sp[d]) - 1) / 2.0f;
          double x = xf;
          if (mode == "nearest") x = std::nearbyint(x);
          if (x < lo[d] || x > hi[d]) {
            if (pad == "border") x = std::clamp(x, 0.0, static_cast<double>(in_sp[d] - 1));
            else if (pad == "reflection") x = reflect(x, lo[d], hi[d]);
          }
          auto& t = taps[d];
          t.clear();
          if (mode == "nearest") {
            t.push_back({index(static_cast<int64_t>(x), d), 1.0});
          } else if (mode == "linear") {
            double f = std::floor(x);
            int64_t x0 = static_cast<int64_t>(f);
            double w = std::abs(x - f);
            t.push_back({index(x0, d), 1 - w});
            t.push_back({index(x0 + 1, d), w});
          } else {
            double f = std::floor(x), c[4];
            int64_t x0 = static_cast<int64_t>(f);
            cubicCoeffs(x - f, c);
            for (int q = 0; q < 4; ++q) t.push_back({index(x0 - 1 + q, d), c[q]});
          }
        }
        // Tensor product of the per-dim taps.
        size_t combos = 1;
        for (size_t d = 0; d < nd; ++d) combos *= taps[d].size();
        std::vector<double> vals(static_cast<size_t>(C), 0.0);
        for (size_t k = 0; k < combos; ++k) {
          double w = 1;
          int64_t off = 0;
          bool zero = false;
          size_t rem = k;
          for (size_t d = nd; d-- > 0;) {
            const auto& tp = taps[d][rem % taps[d].size()];
            rem /= taps[d].size();
            w *= tp.second;
            if (tp.first < 0) zero = true;
            else off += tp.first * in_strides[d];
          }
          if (zero) continue;
          for (int64_t c = 0; c < C; ++c) vals[c] += w * static_cast<double>(px[(n * C + c) * in_plane + off]);
        }
        for (int64_t c = 0; c < C; ++c) py[(n * C + c) * out_plane + o] = static_cast<T>(vals[c]);
      }
  });
  if (!ok) return ctx.unsupported("element type ", dataTypeName(X.dtype()));
  return Status::Ok();
}

}  // namespace ramjet::ops
