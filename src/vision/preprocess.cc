#include "vision/preprocess.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace ramjet::vision {

void Letterbox::toFrame(float* x1, float* y1, float* x2, float* y2) const {
  auto fx = [&](float v) { return std::clamp((v - pad_x) / scale_x, 0.f, float(frame_width)); };
  auto fy = [&](float v) { return std::clamp((v - pad_y) / scale_y, 0.f, float(frame_height)); };
  *x1 = fx(*x1);
  *x2 = fx(*x2);
  *y1 = fy(*y1);
  *y2 = fy(*y2);
}

Letterbox computeLetterbox(int frame_w, int frame_h, const PreprocessOptions& opt) {
  Letterbox lb;
  lb.frame_width = frame_w;
  lb.frame_height = frame_h;
  if (!opt.letterbox) {
    lb.scale_x = float(opt.width) / frame_w;
    lb.scale_y = float(opt.height) / frame_h;
    return lb;
  }
  float s = std::min(float(opt.width) / frame_w, float(opt.height) / frame_h);
  // The resized size is rounded like ultralytics' letterbox so boxes line up with its exports.
  int rw = std::max(1, int(std::lround(frame_w * s))), rh = std::max(1, int(std::lround(frame_h * s)));
  lb.scale_x = float(rw) / frame_w;
  lb.scale_y = float(rh) / frame_h;
  if (opt.center) {
    lb.pad_x = float((opt.width - rw) / 2);
    lb.pad_y = float((opt.height - rh) / 2);
  }
  return lb;
}

namespace {

// Bilinear source taps for one output coordinate (half-pixel centres, edge clamped).
struct Tap {
  int i0, i1;
  float w1;
};

std::vector<Tap> taps(int out_n, int in_n, float scale) {
  std::vector<Tap> t(out_n);
  for (int o = 0; o < out_n; ++o) {
    float src = (o + 0.5f) / scale - 0.5f;
    src = std::clamp(src, 0.f, float(in_n - 1));
    int i0 = int(src);
    int i1 = std::min(i0 + 1, in_n - 1);
    t[o] = {i0, i1, src - i0};
  }
  return t;
}

template <typename T>
void fill(const Image& img, const PreprocessOptions& opt, const Letterbox& lb, T* out) {
  const int W = opt.width, H = opt.height;
  const size_t plane = size_t(W) * H;
  int rw = int(std::lround(img.width * lb.scale_x)), rh = int(std::lround(img.height * lb.scale_y));
  int px = int(lb.pad_x), py = int(lb.pad_y);
  rw = std::min(rw, W - px);
  rh = std::min(rh, H - py);
  float mul[3], add[3];
  for (int c = 0; c < 3; ++c) {
    mul[c] = 1.f / (255.f * opt.std[c]);
    add[c] = -opt.mean[c] / opt.std[c];
  }
  // Network channel c reads image channel src_c[c].
  const int src_c[3] = {opt.bgr ? 2 : 0, 1, opt.bgr ? 0 : 2};
  T padv[3];
  for (int c = 0; c < 3; ++c) padv[c] = T(opt.pad_value * mul[c] + add[c]);
  auto xt = taps(rw, img.width, lb.scale_x);
  auto yt = taps(rh, img.height, lb.scale_y);
  std::vector<float> row(size_t(rw) * 3);
  for (int y = 0; y < H; ++y) {
    int ry = y - py;
    if (ry < 0 || ry >= rh) {
      for (int c = 0; c < 3; ++c) std::fill(out + c * plane + size_t(y) * W, out + c * plane + size_t(y + 1) * W, padv[c]);
      continue;
    }
    const Tap& ty = yt[ry];
    const uint8_t* r0 = img.at(0, ty.i0);
    const uint8_t* r1 = img.at(0, ty.i1);
    for (int x = 0; x < rw; ++x) {
      const Tap& tx = xt[x];
      const uint8_t *a = r0 + tx.i0 * 3, *b = r0 + tx.i1 * 3, *cc = r1 + tx.i0 * 3, *d = r1 + tx.i1 * 3;
      for (int ch = 0; ch < 3; ++ch) {
        float top = a[ch] + (b[ch] - a[ch]) * tx.w1;
        float bot = cc[ch] + (d[ch] - cc[ch]) * tx.w1;
        row[size_t(x) * 3 + ch] = top + (bot - top) * ty.w1;
      }
    }
    for (int c = 0; c < 3; ++c) {
      T* o = out + c * plane + size_t(y) * W;
      const int sc = src_c[c];
      for (int x = 0; x < px; ++x) o[x] = padv[c];
      for (int x = 0; x < rw; ++x) o[px + x] = T(row[size_t(x) * 3 + sc] * mul[c] + add[c]);
      for (int x = px + rw; x < W; ++x) o[x] = padv[c];
    }
  }
}

}  // namespace

Status preprocessInto(const Image& img, const PreprocessOptions& opt, Tensor* dst, int64_t index,
                      Letterbox* placement) {
  if (img.empty() || img.pixels.size() != size_t(img.width) * img.height * 3)
    return makeError(StatusCode::kInvalidArgument, "preprocess: empty or inconsistent image (", img.width, "x",
                     img.height, ")");
  if (opt.width <= 0 || opt.height <= 0 || opt.width > kMaxImageSide || opt.height > kMaxImageSide)
    return makeError(StatusCode::kInvalidArgument, "preprocess: network input size ", opt.width, "x", opt.height,
                     " is outside 1..", kMaxImageSide);
  for (int c = 0; c < 3; ++c)
    if (!(opt.std[c] != 0.f) || !std::isfinite(opt.std[c]) || !std::isfinite(opt.mean[c]))
      return makeError(StatusCode::kInvalidArgument, "preprocess: std must be finite and non-zero, mean finite");
  DataType want = opt.fp16 ? DataType::kFloat16 : DataType::kFloat32;
  if (dst->dtype() != want || dst->rank() != 4 || dst->dim(1) != 3 || dst->dim(2) != opt.height ||
      dst->dim(3) != opt.width || index < 0 || index >= dst->dim(0))
    return makeError(StatusCode::kInvalidArgument, "preprocess: destination tensor ", dst->summary(),
                     " is not [N>", index, ", 3, ", opt.height, ", ", opt.width, "] of ", dataTypeName(want));
  Letterbox lb = computeLetterbox(img.width, img.height, opt);
  const size_t per = size_t(3) * opt.width * opt.height;
  if (opt.fp16)
    fill(img, opt, lb, dst->data<Half>() + index * per);
  else
    fill(img, opt, lb, dst->data<float>() + index * per);
  if (placement) *placement = lb;
  return Status::Ok();
}

Result<Tensor> preprocess(const Image& img, const PreprocessOptions& opt, Letterbox* placement) {
  if (opt.width <= 0 || opt.height <= 0 || opt.width > kMaxImageSide || opt.height > kMaxImageSide)
    return makeError(StatusCode::kInvalidArgument, "preprocess: network input size ", opt.width, "x", opt.height,
                     " is outside 1..", kMaxImageSide);
  Tensor t(opt.fp16 ? DataType::kFloat16 : DataType::kFloat32, {1, 3, opt.height, opt.width});
  RJ_RETURN_IF_ERROR(preprocessInto(img, opt, &t, 0, placement));
  return t;
}

}  // namespace ramjet::vision
