#include "vision/map.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vision/image.h"
#include "vision/nms.h"

namespace ramjet::vision {

namespace fs = std::filesystem;

namespace {

Result<std::vector<std::string>> listImages(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return makeError(StatusCode::kNotFound, "images folder '", dir, "' does not exist or is not a folder");
  std::vector<std::string> out;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
    if (it->is_regular_file() && hasImageExtension(it->path().string())) out.push_back(it->path().string());
  if (ec) return makeError(StatusCode::kIoError, "cannot list '", dir, "': ", ec.message());
  std::sort(out.begin(), out.end());
  if (out.empty()) return makeError(StatusCode::kNotFound, "images folder '", dir, "' has no .jpg/.png/.bmp files");
  return out;
}

}  // namespace

Result<Dataset> loadYoloDataset(const std::string& images_dir, const std::string& labels_dir) {
  std::error_code ec;
  if (!fs::is_directory(labels_dir, ec))
    return makeError(StatusCode::kNotFound, "labels folder '", labels_dir, "' does not exist or is not a folder");
  RJ_ASSIGN_OR_RETURN(auto files, listImages(images_dir));
  Dataset ds;
  int max_cls = -1;
  for (const auto& f : files) {
    EvalImage im;
    im.path = f;
    RJ_RETURN_IF_ERROR(imageSize(f, &im.width, &im.height));
    fs::path lp = fs::path(labels_dir) / (fs::path(f).stem().string() + ".txt");
    std::ifstream in(lp);
    if (in) {
      std::string line;
      int lineno = 0;
      while (std::getline(in, line)) {
        ++lineno;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        std::istringstream ls(line);
        double c, cx, cy, w, h;
        std::string extra;
        if (!(ls >> c >> cx >> cy >> w >> h) || c < 0 || c != std::floor(c) || c > 1e6 || w < 0 || h < 0 ||
            !std::isfinite(cx) || !std::isfinite(cy) || !std::isfinite(w) || !std::isfinite(h))
          return makeError(StatusCode::kInvalidArgument, "label file '", lp.string(), "' line ", lineno,
                           ": expected 'class cx cy w h' (class a non-negative integer, sizes >= 0, normalized)");
        if (ls >> extra)
          return makeError(StatusCode::kInvalidArgument, "label file '", lp.string(), "' line ", lineno,
                           ": more than 5 fields (segmentation labels are not supported)");
        GroundTruth g;
        g.cls = int(c);
        g.x1 = float((cx - w / 2) * im.width);
        g.x2 = float((cx + w / 2) * im.width);
        g.y1 = float((cy - h / 2) * im.height);
        g.y2 = float((cy + h / 2) * im.height);
        max_cls = std::max(max_cls, g.cls);
        im.truth.push_back(g);
      }
    }
    im.id = int64_t(ds.images.size());
    ds.images.push_back(std::move(im));
  }
  return ds;
}

Result<Dataset> loadCocoDataset(const std::string& images_dir, const std::string& json_path, bool need_files) {
  using nlohmann::json;
  std::ifstream in(json_path);
  if (!in) return makeError(StatusCode::kNotFound, "COCO labels '", json_path, "': cannot open");
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return makeError(StatusCode::kInvalidArgument, "COCO labels '", json_path, "': not valid JSON");
  auto bad = [&](const std::string& why) {
    return makeError(StatusCode::kInvalidArgument, "COCO labels '", json_path, "': ", why);
  };
  if (!j.is_object() || !j.contains("images") || !j["images"].is_array() || !j.contains("annotations") ||
      !j["annotations"].is_array())
    return bad("needs 'images' and 'annotations' arrays");
  Dataset ds;
  std::map<int64_t, std::string> cats;
  if (j.contains("categories") && j["categories"].is_array())
    for (const auto& c : j["categories"]) {
      if (!c.is_object() || !c.contains("id") || !c["id"].is_number_integer()) return bad("a category lacks an integer 'id'");
      cats[c["id"].get<int64_t>()] = c.contains("name") && c["name"].is_string() ? c["name"].get<std::string>() : "";
    }
  // Category ids used by annotations but not declared still get a class.
  for (const auto& a : j["annotations"])
    if (a.is_object() && a.contains("category_id") && a["category_id"].is_number_integer() &&
        !cats.count(a["category_id"].get<int64_t>()))
      cats[a["category_id"].get<int64_t>()] = "";
  std::map<int64_t, int> cls_of;
  for (const auto& [id, name] : cats) {
    cls_of[id] = int(ds.names.size());
    ds.names.push_back(name.empty() ? std::to_string(id) : name);
    ds.category_ids.push_back(id);
  }
  std::map<int64_t, size_t> index_of;
  for (const auto& im : j["images"]) {
    if (!im.is_object() || !im.contains("id") || !im["id"].is_number_integer() || !im.contains("file_name") ||
        !im["file_name"].is_string())
      return bad("an image entry lacks an integer 'id' or a 'file_name'");
    std::string fn = im["file_name"].get<std::string>();
    fs::path p = fs::path(images_dir) / fn;
    std::error_code ec;
    if (!fs::is_regular_file(p, ec)) p = fs::path(images_dir) / fs::path(fn).filename();
    bool has_size = im.contains("width") && im["width"].is_number_integer() && im.contains("height") &&
                    im["height"].is_number_integer();
    if (!fs::is_regular_file(p, ec) && (need_files || !has_size))
      return makeError(StatusCode::kNotFound, "image '", fn, "' listed in '", json_path, "' is not in '", images_dir,
                       "'");
    EvalImage e;
    e.path = p.string();
    if (has_size) {
      e.width = im["width"].get<int>();
      e.height = im["height"].get<int>();
    } else {
      RJ_RETURN_IF_ERROR(imageSize(e.path, &e.width, &e.height));
    }
    int64_t id = im["id"].get<int64_t>();
    e.id = id;
    if (index_of.count(id)) return bad("image id " + std::to_string(id) + " appears twice");
    index_of[id] = ds.images.size();
    ds.images.push_back(std::move(e));
  }
  for (const auto& a : j["annotations"]) {
    if (!a.is_object() || !a.contains("image_id") || !a["image_id"].is_number_integer() ||
        !a.contains("category_id") || !a["category_id"].is_number_integer() || !a.contains("bbox") ||
        !a["bbox"].is_array() || a["bbox"].size() != 4)
      return bad("an annotation lacks an integer 'image_id', 'category_id' or a 4-number 'bbox'");
    for (const auto& v : a["bbox"])
      if (!v.is_number()) return bad("a bbox holds a non-number");
    if (a.contains("iscrowd") && a["iscrowd"].is_number() && a["iscrowd"].get<double>() != 0)
      return bad("crowd annotations (iscrowd=1) are not supported");
    auto it = index_of.find(a["image_id"].get<int64_t>());
    if (it == index_of.end())
      return bad("an annotation refers to image id " + std::to_string(a["image_id"].get<int64_t>()) +
                 " that is not in 'images'");
    double x = a["bbox"][0], y = a["bbox"][1], w = a["bbox"][2], h = a["bbox"][3];
    if (w < 0 || h < 0) return bad("a bbox has a negative width or height");
    GroundTruth g;
    g.cls = cls_of[a["category_id"].get<int64_t>()];
    g.x1 = float(x);
    g.y1 = float(y);
    g.x2 = float(x + w);
    g.y2 = float(y + h);
    ds.images[it->second].truth.push_back(g);
  }
  if (ds.images.empty()) return bad("lists no images");
  return ds;
}

Status loadCocoDetections(const std::string& json_path, const std::string& labels_json, Dataset* ds) {
  using nlohmann::json;
  std::ifstream in(json_path);
  if (!in) return makeError(StatusCode::kNotFound, "detections '", json_path, "': cannot open");
  json j = json::parse(in, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    return makeError(StatusCode::kInvalidArgument, "detections '", json_path, "': ", why);
  };
  if (j.is_discarded() || !j.is_array()) return bad("not a JSON array of COCO results");
  std::map<int64_t, size_t> index_of;
  for (size_t i = 0; i < ds->images.size(); ++i) index_of[ds->images[i].id] = i;
  std::map<int64_t, int> cls_of;
  for (size_t i = 0; i < ds->category_ids.size(); ++i) cls_of[ds->category_ids[i]] = int(i);
  for (const auto& d : j) {
    if (!d.is_object() || !d.contains("image_id") || !d["image_id"].is_number_integer() ||
        !d.contains("category_id") || !d["category_id"].is_number_integer() || !d.contains("bbox") ||
        !d["bbox"].is_array() || d["bbox"].size() != 4 || !d.contains("score") || !d["score"].is_number())
      return bad("an entry lacks an integer 'image_id', 'category_id', a 4-number 'bbox' or a 'score'");
    for (const auto& v : d["bbox"])
      if (!v.is_number()) return bad("a bbox holds a non-number");
    auto it = index_of.find(d["image_id"].get<int64_t>());
    if (it == index_of.end())
      return bad("image id " + std::to_string(d["image_id"].get<int64_t>()) + " is not in '" + labels_json + "'");
    auto c = cls_of.find(d["category_id"].get<int64_t>());
    if (c == cls_of.end())
      return bad("category id " + std::to_string(d["category_id"].get<int64_t>()) + " is not in '" + labels_json +
                 "'");
    double x = d["bbox"][0], y = d["bbox"][1], w = d["bbox"][2], h = d["bbox"][3];
    Detection det;
    det.x1 = float(x);
    det.y1 = float(y);
    det.x2 = float(x + w);
    det.y2 = float(y + h);
    det.score = d["score"].get<float>();
    det.cls = c->second;
    ds->images[it->second].detections.push_back(det);
  }
  return Status::Ok();
}

namespace {

// IoU as pycocotools computes it for boxes: from [x, y, w, h] in double.
double cocoIou(const Detection& d, const GroundTruth& g) {
  double dx = d.x1, dy = d.y1, dw = double(d.x2) - d.x1, dh = double(d.y2) - d.y1;
  double gx = g.x1, gy = g.y1, gw = double(g.x2) - g.x1, gh = double(g.y2) - g.y1;
  double w = std::min(dx + dw, gx + gw) - std::max(dx, gx);
  if (w <= 0) return 0;
  double h = std::min(dy + dh, gy + gh) - std::max(dy, gy);
  if (h <= 0) return 0;
  double i = w * h;
  double u = dw * dh + gw * gh - i;
  return i / u;
}

}  // namespace

Result<EvalResult> evaluate(const std::vector<EvalImage>& images, const EvalOptions& opt) {
  EvalResult r;
  r.num_images = int(images.size());
  int max_cls = -1;
  for (const auto& im : images) {
    for (const auto& g : im.truth) max_cls = std::max(max_cls, g.cls);
    for (const auto& d : im.detections) max_cls = std::max(max_cls, d.cls);
    r.num_truth += int(im.truth.size());
    r.num_detections += int(im.detections.size());
  }
  if (r.num_truth == 0)
    return makeError(StatusCode::kInvalidArgument, "evaluation: none of the ", images.size(),
                     " images has a ground-truth box, so AP is undefined");
  const double kIou[kNumIouThresholds] = {0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95};
  for (int c = 0; c <= max_cls; ++c) {
    // Per image: this class's detections (best first, at most max_detections) and their matches.
    struct Scored {
      double score;
      bool tp[kNumIouThresholds];
    };
    std::vector<Scored> all;
    int npig = 0;
    for (const auto& im : images) {
      std::vector<const GroundTruth*> gt;
      for (const auto& g : im.truth)
        if (g.cls == c) gt.push_back(&g);
      std::vector<const Detection*> dt;
      for (const auto& d : im.detections)
        if (d.cls == c) dt.push_back(&d);
      npig += int(gt.size());
      std::stable_sort(dt.begin(), dt.end(), [](const Detection* a, const Detection* b) { return a->score > b->score; });
      if (opt.max_detections > 0 && dt.size() > size_t(opt.max_detections)) dt.resize(opt.max_detections);
      std::vector<std::vector<double>> ious(dt.size(), std::vector<double>(gt.size()));
      for (size_t i = 0; i < dt.size(); ++i)
        for (size_t k = 0; k < gt.size(); ++k) ious[i][k] = cocoIou(*dt[i], *gt[k]);
      std::vector<Scored> mine(dt.size());
      for (size_t i = 0; i < dt.size(); ++i) mine[i].score = dt[i]->score;
      for (int t = 0; t < kNumIouThresholds; ++t) {
        std::vector<bool> taken(gt.size(), false);
        for (size_t i = 0; i < dt.size(); ++i) {
          double best = std::min(kIou[t], 1 - 1e-10);
          int m = -1;
          for (size_t k = 0; k < gt.size(); ++k) {
            if (taken[k] || ious[i][k] < best) continue;
            best = ious[i][k];
            m = int(k);
          }
          mine[i].tp[t] = m >= 0;
          if (m >= 0) taken[m] = true;
        }
      }
      all.insert(all.end(), mine.begin(), mine.end());
    }
    if (npig == 0) continue;  // COCOeval leaves such classes at -1 and skips them in the mean
    std::stable_sort(all.begin(), all.end(), [](const Scored& a, const Scored& b) { return a.score > b.score; });
    ClassAp ca;
    ca.cls = c;
    ca.num_truth = npig;
    ca.num_detections = int(all.size());
    const double eps = std::numeric_limits<double>::epsilon();  // np.spacing(1)
    for (int t = 0; t < kNumIouThresholds; ++t) {
      const size_t nd = all.size();
      std::vector<double> rc(nd), pr(nd);
      double tp = 0, fp = 0;
      for (size_t i = 0; i < nd; ++i) {
        (all[i].tp[t] ? tp : fp) += 1;
        rc[i] = tp / npig;
        pr[i] = tp / (fp + tp + eps);
      }
      if (t == 0) ca.max_recall50 = nd ? rc.back() : 0;
      for (size_t i = nd; i-- > 1;)
        if (pr[i] > pr[i - 1]) pr[i - 1] = pr[i];
      std::vector<double> q(kNumRecallPoints, 0.0);
      for (int ri = 0; ri < kNumRecallPoints; ++ri) {
        // np.linspace(0, 1, 101) then searchsorted(side='left'): first rc >= threshold.
        double thr = ri == kNumRecallPoints - 1 ? 1.0 : ri * 0.01;  // np.linspace(0, 1, 101)
        size_t pi = size_t(std::lower_bound(rc.begin(), rc.end(), thr) - rc.begin());
        if (pi >= nd) break;
        q[ri] = pr[pi];
      }
      double s = 0;
      for (double v : q) s += v;
      ca.ap[t] = s / kNumRecallPoints;
      if (t == 0) ca.precision50 = q;
    }
    ca.ap50 = ca.ap[0];
    double s = 0;
    for (double v : ca.ap) s += v;
    ca.ap50_95 = s / kNumIouThresholds;
    r.classes.push_back(std::move(ca));
  }
  for (const auto& ca : r.classes) {
    r.map50 += ca.ap50;
    r.map50_95 += ca.ap50_95;
  }
  r.map50 /= r.classes.size();
  r.map50_95 /= r.classes.size();
  return r;
}

Result<double> detectionAgreementLoss(const std::vector<std::vector<Tensor>>& got,
                                      const std::vector<std::vector<Tensor>>& ref, float ref_conf, float nms_iou) {
  if (got.size() != ref.size())
    return makeError(StatusCode::kInvalidArgument, "detection loss: ", got.size(), " candidate batches vs ", ref.size(),
                     " reference batches");
  std::vector<EvalImage> images;
  NmsOptions nms_opt;
  nms_opt.iou_threshold = nms_iou;
  for (size_t b = 0; b < ref.size(); ++b) {
    // The first output that looks like a detector's.
    size_t k = ref[b].size();
    for (size_t i = 0; i < ref[b].size() && k == ref[b].size(); ++i)
      if (ref[b][i].isTensor() && detectYoloFormat(ref[b][i].dims(), "output").ok()) k = i;
    if (k == ref[b].size())
      return makeError(StatusCode::kInvalidArgument, "detection loss: no output shaped like a YOLO detector's "
                                                     "([N, 4 + classes, anchors], [N, anchors, 5 + classes] or [N, K, 6])");
    if (k >= got[b].size() || got[b][k].dims() != ref[b][k].dims())
      return makeError(StatusCode::kInvalidArgument, "detection loss: candidate output ", k, " of batch ", b,
                       " does not match the reference's shape");
    DecodeOptions dref, dgot;
    dref.conf_threshold = ref_conf;
    dgot.conf_threshold = 0.001f;
    RJ_ASSIGN_OR_RETURN(DecodeResult r, decodeYolo(ref[b][k], "reference", dref));
    RJ_ASSIGN_OR_RETURN(DecodeResult c, decodeYolo(got[b][k], "candidate", dgot));
    auto rk = batchedNms(std::move(r.per_image), nms_opt);
    auto ck = batchedNms(std::move(c.per_image), nms_opt);
    for (size_t n = 0; n < rk.size() && n < ck.size(); ++n) {
      EvalImage im;
      im.id = static_cast<int64_t>(images.size());
      for (const auto& d : rk[n]) im.truth.push_back({d.x1, d.y1, d.x2, d.y2, d.cls});
      im.detections = std::move(ck[n]);
      images.push_back(std::move(im));
    }
  }
  bool any = false;
  for (const auto& im : images) any |= !im.truth.empty();
  if (!any) return 0.0;
  RJ_ASSIGN_OR_RETURN(EvalResult e, evaluate(images));
  return std::max(0.0, 1.0 - e.map50);
}

void useDetectionAccuracyMetric(BuildOptions* opt) {
  opt->accuracy_metric = "custom:detection-map50";
  opt->accuracy_loss = [](const std::vector<std::vector<Tensor>>& got, const std::vector<std::vector<Tensor>>& ref) {
    return detectionAgreementLoss(got, ref);
  };
}

}  // namespace ramjet::vision
