#include "vision/decode.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace ramjet::vision {

const char* yoloFormatName(YoloFormat f) {
  switch (f) {
    case YoloFormat::kAuto: return "auto";
    case YoloFormat::kV5: return "v5";
    case YoloFormat::kV8: return "v8";
    case YoloFormat::kE2E: return "e2e";
  }
  return "?";
}

Result<YoloFormat> parseYoloFormat(const std::string& s) {
  if (s == "auto") return YoloFormat::kAuto;
  if (s == "v5" || s == "yolov5") return YoloFormat::kV5;
  if (s == "v8" || s == "yolov8" || s == "v11" || s == "yolov11") return YoloFormat::kV8;
  if (s == "e2e" || s == "v10" || s == "yolov10") return YoloFormat::kE2E;
  return makeError(StatusCode::kInvalidArgument, "unknown detector format '", s,
                   "' (expected auto, v5, v8, v11, v10 or e2e)");
}

namespace {
std::string dimsStr(const std::vector<int64_t>& d) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < d.size(); ++i) os << (i ? "," : "") << d[i];
  os << "]";
  return os.str();
}
}  // namespace

Result<YoloFormat> detectYoloFormat(const std::vector<int64_t>& d, const std::string& name) {
  auto notDetector = [&](const char* why) {
    return makeError(StatusCode::kInvalidModel, "output '", name, "' of shape ", dimsStr(d),
                     " is not a detector's output (", why,
                     "; expected [N, A, 5+C] YOLOv5, [N, 4+C, A] YOLOv8/v11 or [N, K, 6] end-to-end)");
  };
  if (d.size() != 3) return notDetector("rank is not 3");
  for (auto v : d)
    if (v <= 0) return notDetector("a dimension is not positive");
  if (d[2] == 6 && d[1] >= 6) return YoloFormat::kE2E;
  if (d[1] < d[2] && d[1] >= 5) return YoloFormat::kV8;
  if (d[2] >= 6) return YoloFormat::kV5;
  return notDetector("too few channels per box");
}

namespace {

template <typename T>
float at(const T* p, size_t i) {
  return float(p[i]);
}

bool wanted(const std::vector<int>& classes, int c) {
  return classes.empty() || std::find(classes.begin(), classes.end(), c) != classes.end();
}

void cap(std::vector<Detection>* v, int max_candidates) {
  if (max_candidates > 0 && v->size() > size_t(max_candidates)) {
    std::nth_element(v->begin(), v->begin() + max_candidates, v->end(),
                     [](const Detection& a, const Detection& b) { return a.score > b.score; });
    v->resize(max_candidates);
  }
}

template <typename T>
void decodeTyped(const T* p, const std::vector<int64_t>& d, YoloFormat f, const DecodeOptions& opt,
                 DecodeResult* r) {
  const int64_t N = d[0];
  r->per_image.assign(N, {});
  for (int64_t n = 0; n < N; ++n) {
    auto& out = r->per_image[n];
    if (f == YoloFormat::kV8) {
      const int64_t ch = d[1], A = d[2], C = ch - 4;
      const T* b = p + n * ch * A;
      for (int64_t a = 0; a < A; ++a) {
        int best = -1;
        float bs = -INFINITY;
        for (int64_t c = 0; c < C; ++c) {
          float s = at(b, (4 + c) * A + a);
          if (s > bs && wanted(opt.classes, int(c))) bs = s, best = int(c);
        }
        if (best < 0 || !(bs >= opt.conf_threshold)) continue;
        float cx = at(b, a), cy = at(b, A + a), w = at(b, 2 * A + a), h = at(b, 3 * A + a);
        out.push_back({cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, bs, best});
      }
    } else if (f == YoloFormat::kV5) {
      const int64_t A = d[1], ch = d[2], C = ch - 5;
      const T* b = p + n * A * ch;
      for (int64_t a = 0; a < A; ++a) {
        const T* row = b + a * ch;
        float obj = at(row, 4);
        if (!(obj >= opt.conf_threshold)) continue;  // score = obj * cls <= obj
        int best = -1;
        float bs = -INFINITY;
        for (int64_t c = 0; c < C; ++c) {
          float s = at(row, 5 + c);
          if (s > bs && wanted(opt.classes, int(c))) bs = s, best = int(c);
        }
        float score = obj * bs;
        if (best < 0 || !(score >= opt.conf_threshold)) continue;
        float cx = at(row, 0), cy = at(row, 1), w = at(row, 2), h = at(row, 3);
        out.push_back({cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, score, best});
      }
    } else {
      const int64_t K = d[1];
      const T* b = p + n * K * 6;
      for (int64_t k = 0; k < K; ++k) {
        const T* row = b + k * 6;
        float score = at(row, 4), cf = at(row, 5);
        if (!(score >= opt.conf_threshold) || !std::isfinite(cf) || cf < 0) continue;
        int c = int(std::lround(cf));
        if (!wanted(opt.classes, c)) continue;
        out.push_back({at(row, 0), at(row, 1), at(row, 2), at(row, 3), score, c});
      }
    }
    // Non-finite boxes (a broken model) would poison NMS ordering; drop them.
    out.erase(std::remove_if(out.begin(), out.end(),
                             [](const Detection& x) {
                               return !std::isfinite(x.x1) || !std::isfinite(x.y1) || !std::isfinite(x.x2) ||
                                      !std::isfinite(x.y2) || !std::isfinite(x.score);
                             }),
              out.end());
    cap(&out, opt.max_candidates);
  }
}

}  // namespace

Result<DecodeResult> decodeYolo(const Tensor& output, const std::string& name, const DecodeOptions& opt) {
  if (!output.isTensor() || (output.dtype() != DataType::kFloat32 && output.dtype() != DataType::kFloat16))
    return makeError(StatusCode::kInvalidModel, "output '", name, "' has element type ",
                     dataTypeName(output.dtype()), "; a detector's output is float32 or float16");
  YoloFormat f = opt.format;
  if (f == YoloFormat::kAuto) {
    RJ_ASSIGN_OR_RETURN(f, detectYoloFormat(output.dims(), name));
  } else {
    const auto& d = output.dims();
    bool ok = d.size() == 3 && d[0] > 0 && d[1] > 0 && d[2] > 0;
    if (ok && f == YoloFormat::kV8) ok = d[1] >= 5;
    if (ok && f == YoloFormat::kV5) ok = d[2] >= 6;
    if (ok && f == YoloFormat::kE2E) ok = d[2] == 6;
    if (!ok)
      return makeError(StatusCode::kInvalidModel, "output '", name, "' of shape ", dimsStr(d),
                       " does not fit the requested format ", yoloFormatName(f));
  }
  DecodeResult r;
  r.format = f;
  const auto& d = output.dims();
  r.num_classes = f == YoloFormat::kV8 ? int(d[1] - 4) : f == YoloFormat::kV5 ? int(d[2] - 5) : 0;
  if (output.dtype() == DataType::kFloat32)
    decodeTyped(output.data<float>(), d, f, opt, &r);
  else
    decodeTyped(output.data<Half>(), d, f, opt, &r);
  return r;
}

}  // namespace ramjet::vision
