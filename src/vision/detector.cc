#include "vision/detector.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "precision/calibrator.h"
#include "vision/map.h"

namespace ramjet::vision {

namespace fs = std::filesystem;

namespace {

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

bool endsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> readLines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
  }
  return out;
}

DevicePipelineFactory g_cuda_pipeline = nullptr;

// Calibration batches for an INT8 detector: the first calib_images images of the folder
// (sorted by name), each pre-processed exactly like a frame (letterbox, scaling) at w x h.
Result<std::unique_ptr<precision::Calibrator>> makeFrameCalibrator(const DetectorOptions& opt, const std::string& input,
                                                                   int w, int h) {
  RJ_ASSIGN_OR_RETURN(std::vector<std::string> files, precision::listImageFiles(opt.calib_data));
  if (files.empty())
    return makeError(StatusCode::kNotFound, "calibration folder '", opt.calib_data, "' holds no .png/.jpg/.jpeg/.bmp images");
  if (opt.calib_images > 0 && files.size() > static_cast<size_t>(opt.calib_images)) files.resize(opt.calib_images);
  PreprocessOptions pre = opt.pre;
  pre.width = w;
  pre.height = h;
  pre.fp16 = false;
  auto fn = [files, pre, input](size_t i, std::map<std::string, Tensor>* feeds) -> Result<bool> {
    if (i >= files.size()) return false;
    RJ_ASSIGN_OR_RETURN(Image img, loadImage(files[i]));
    Letterbox lb;
    RJ_ASSIGN_OR_RETURN(Tensor t, preprocess(img, pre, &lb));
    (*feeds)[input] = std::move(t);
    return true;
  };
  return std::unique_ptr<precision::Calibrator>(new precision::CallbackCalibrator(fn, files.size()));
}

}  // namespace

void setDevicePipelineFactory(DeviceKind device, DevicePipelineFactory factory) {
  if (device == DeviceKind::kCuda) g_cuda_pipeline = factory;
}

std::vector<std::string> parseNamesMetadata(const std::string& value) {
  std::vector<std::string> names;
  // {0: 'person', 1: "bicycle"} or {"0": "person"}: index -> name.
  static const std::regex kv(R"((\d+)["']?\s*:\s*(['"])((?:(?!\2).)*)\2)");
  std::map<int, std::string> byIndex;
  for (auto it = std::sregex_iterator(value.begin(), value.end(), kv); it != std::sregex_iterator(); ++it) {
    int i = std::stoi((*it)[1].str());
    if (i >= 0 && i < 100000) byIndex[i] = (*it)[3].str();
  }
  if (!byIndex.empty()) {
    names.resize(byIndex.rbegin()->first + 1);
    for (auto& [i, n] : byIndex) names[i] = n;
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i].empty()) names[i] = std::to_string(i);
    return names;
  }
  // ["person", "bicycle"]
  static const std::regex item(R"((['"])((?:(?!\1).)*)\1)");
  for (auto it = std::sregex_iterator(value.begin(), value.end(), item); it != std::sregex_iterator(); ++it)
    names.push_back((*it)[2].str());
  return names;
}

Result<std::unique_ptr<Detector>> Detector::open(const std::string& model_path, const DetectorOptions& opt) {
  std::error_code ec;
  if (!fs::is_regular_file(model_path, ec))
    return makeError(StatusCode::kNotFound, "model '", model_path, "' does not exist or is not a file");
  if (opt.max_batch < 1 || opt.max_batch > 1024)
    return makeError(StatusCode::kInvalidArgument, "detector batch ", opt.max_batch, " is outside 1..1024");
  auto det = std::unique_ptr<Detector>(new Detector());
  det->opt_ = opt;
  det->max_batch_ = opt.max_batch;
  LoadOptions lo;
  lo.logger = opt.logger;
  std::unique_ptr<Plan> fresh_plan;
  if (endsWith(model_path, ".plan")) {
    RJ_ASSIGN_OR_RETURN(det->engine_, Engine::load(model_path, lo));
    det->plan_path_ = model_path;
    det->plan_cached_ = true;
    if (fs::exists(model_path + ".names", ec)) det->names_ = readLines(model_path + ".names");
  } else {
    RJ_ASSIGN_OR_RETURN(Graph g, importOnnx(model_path));
    auto md = g.metadata.find("names");
    if (md != g.metadata.end()) det->names_ = parseNamesMetadata(md->second);
    if (g.inputs.size() != 1)
      return makeError(StatusCode::kInvalidModel, "model '", model_path, "' has ", g.inputs.size(),
                       " inputs; a detector takes one image tensor [N, 3, H, W]");
    Value* in = g.inputs[0];
    Shape& s = in->type.shape;
    if (s.rank() != 4 || !(s.dims[1].known() && s.dims[1].value == 3))
      return makeError(StatusCode::kInvalidModel, "model '", model_path, "' input '", in->name, "' has shape ",
                       s.toString(), "; a detector takes an image tensor [N, 3, H, W]");
    int h = s.dims[2].known() ? int(s.dims[2].value) : 0, w = s.dims[3].known() ? int(s.dims[3].value) : 0;
    if (opt.imgsz > 0) {
      if ((h && h != opt.imgsz) || (w && w != opt.imgsz)) {
        // A fully convolutional detector runs at other sizes; the build says so if this one does not.
        s.dims[2] = Dim::symbolic("height");
        s.dims[3] = Dim::symbolic("width");
      }
      h = w = opt.imgsz;
    }
    if (!h) h = w ? w : 640;
    if (!w) w = h;
    if (opt.max_batch > 1 && s.dims[0].known() && s.dims[0].value != opt.max_batch)
      return makeError(StatusCode::kInvalidModel, "model '", model_path, "' input '", in->name, "' has a fixed batch of ",
                       s.dims[0].value, "; batching ", opt.max_batch,
                       " frames per call needs a model exported with a dynamic batch dim");
    std::string dev = deviceKindName(opt.device);
    std::string prec_tag = opt.precision == Precision::kFP16 ? "-fp16" : "";
    if (opt.precision == Precision::kINT8) {
      if (opt.calib_data.empty())
        return makeError(StatusCode::kInvalidArgument,
                         "an INT8 detector needs calibration images (--calib-data DIR: frames like the ones it will see)");
      // The cached plan depends on the calibration set and the budget: key its name on them.
      std::error_code aec;
      std::string key = fs::absolute(opt.calib_data, aec).string() + "|" + std::to_string(opt.calib_images) + "|" +
                        opt.calib_method + "|" + std::to_string(opt.accuracy_budget) + "|" +
                        std::to_string(opt.accuracy_samples);
      char hex[17];
      std::snprintf(hex, sizeof hex, "%08zx", std::hash<std::string>{}(key) & 0xffffffffu);
      prec_tag = std::string("-int8-") + hex;
    }
    det->plan_path_ = fs::path(model_path).replace_extension("").string() + "." + dev + prec_tag + "-" + std::to_string(w) +
                      (w == h ? "" : "x" + std::to_string(h)) +
                      (opt.max_batch > 1 ? "-b" + std::to_string(opt.max_batch) : "") + ".plan";
    bool loaded = false;
    if (opt.cache_plan && fs::exists(det->plan_path_, ec) &&
        fs::last_write_time(det->plan_path_, ec) >= fs::last_write_time(model_path, ec)) {
      auto e = Engine::load(det->plan_path_, lo);
      if (e.ok()) {
        det->engine_ = std::move(*e);
        det->plan_cached_ = loaded = true;
      } else if (opt.logger) {
        opt.logger->log(Severity::kWarning, "cached plan '" + det->plan_path_ + "' not usable (" +
                                                e.status().message() + "); rebuilding");
      }
    }
    if (!loaded) {
      BuildOptions bo;
      bo.device = opt.device;
      bo.logger = opt.logger;
      bo.timing_iterations = 3;
      bo.precision = opt.precision;
      const int64_t b = opt.max_batch;
      bo.profiles.push_back(ShapeProfile{in->name, {1, 3, h, w}, {b, 3, h, w}, {b, 3, h, w}});
      std::unique_ptr<precision::Calibrator> calib;
      if (opt.precision == Precision::kINT8) {
        RJ_ASSIGN_OR_RETURN(calib, makeFrameCalibrator(opt, in->name, w, h));
        bo.calibrator = calib.get();
        bo.calibration_method = opt.calib_method;
        if (opt.accuracy_budget > 0) {
          bo.accuracy_budget = opt.accuracy_budget;
          bo.accuracy_samples = static_cast<size_t>(std::max(1, opt.accuracy_samples));
          useDetectionAccuracyMetric(&bo);
        }
      }
      auto plan = build(g, bo);
      if (plan.ok()) det->accuracy_budget_report_ = plan->report().accuracy_budget;
      if (!plan.ok())
        return plan.status().withContext("building '" + model_path + "' for " + dev + " at " + std::to_string(w) +
                                         "x" + std::to_string(h));
      RJ_ASSIGN_OR_RETURN(det->engine_, Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size(), lo));
      // Cached only once the outputs are known to be a detector's (below).
      if (opt.cache_plan) fresh_plan = std::make_unique<Plan>(std::move(*plan));
      else det->plan_path_.clear();
    }
  }
  Engine& e = *det->engine_;
  if (e.inputs().size() != 1)
    return makeError(StatusCode::kInvalidModel, "model '", model_path, "' has ", e.inputs().size(),
                     " inputs; a detector takes one image tensor [N, 3, H, W]");
  const TensorInfo& ti = e.inputs()[0];
  det->input_name_ = ti.name;
  // The input size: the plan's profile (max) or the static dims.
  std::vector<int64_t> dims;
  for (const auto& p : e.info().profiles)
    if (p.input == ti.name) dims = p.max;
  if (dims.empty() && ti.shape.fullyKnown()) dims = ti.shape.concrete();
  if (dims.size() != 4 || dims[1] != 3)
    return makeError(StatusCode::kInvalidModel, "model '", model_path, "' input '", ti.name, "' has shape ",
                     ti.shape.toString(), "; a detector takes an image tensor [N, 3, H, W]");
  if (dims[0] < det->max_batch_) {
    // A plan made for smaller batches: use what it allows.
    if (opt.logger)
      opt.logger->log(Severity::kWarning, "plan '" + model_path + "' allows batches up to " + std::to_string(dims[0]) +
                                              "; using that instead of " + std::to_string(det->max_batch_));
    det->max_batch_ = int(std::max<int64_t>(1, dims[0]));
  }
  det->pre_ = opt.pre;
  det->pre_.height = int(dims[2]);
  det->pre_.width = int(dims[3]);
  det->pre_.fp16 = ti.dtype == DataType::kFloat16;
  if (ti.dtype != DataType::kFloat32 && ti.dtype != DataType::kFloat16)
    return makeError(StatusCode::kInvalidModel, "model '", model_path, "' input '", ti.name, "' is ",
                     dataTypeName(ti.dtype), "; a detector takes float32 or float16 images");
  RJ_ASSIGN_OR_RETURN(det->ctx_, e.createContext());
  RJ_RETURN_IF_ERROR(det->ctx_->setInputShape(ti.name, {1, 3, dims[2], dims[3]}));
  // Pick the first output shaped like a detector's; say what each one is when none is.
  std::string why;
  for (size_t i = 0; i < e.outputs().size(); ++i) {
    const std::string& on = e.outputs()[i].name;
    RJ_ASSIGN_OR_RETURN(auto od, det->ctx_->tensorShape(on));
    Result<YoloFormat> f = opt.format == YoloFormat::kAuto ? detectYoloFormat(od, on) : Result<YoloFormat>(opt.format);
    if (f.ok()) {
      det->output_index_ = i;
      det->output_name_ = on;
      det->format_ = *f;
      det->num_classes_ = *f == YoloFormat::kV8 ? int(od[1] - 4) : *f == YoloFormat::kV5 ? int(od[2] - 5) : 0;
      if (fresh_plan) {
        Status st = fresh_plan->save(det->plan_path_);
        if (!st.ok()) {
          if (opt.logger) opt.logger->log(Severity::kWarning, "plan not cached: " + st.message());
          det->plan_path_.clear();
        } else if (!det->names_.empty()) {
          std::ofstream nf(det->plan_path_ + ".names");
          for (auto& n : det->names_) nf << n << "\n";
        }
      }
      if (e.info().device == DeviceKind::kCuda && g_cuda_pipeline && opt.gpu_pipeline) {
        DevicePipelineConfig pc;
        pc.engine = det->engine_.get();
        pc.ctx = det->ctx_.get();
        pc.input_name = det->input_name_;
        pc.output_name = det->output_name_;
        pc.max_batch = det->max_batch_;
        pc.pre = det->pre_;
        pc.format = det->format_;
        pc.decode = opt.decode;
        pc.decode.format = det->format_;
        pc.nms = opt.nms;
        RJ_ASSIGN_OR_RETURN(det->device_pipe_, g_cuda_pipeline(pc));
      }
      return det;
    }
    why += (why.empty() ? "" : "; ") + f.status().message();
  }
  return makeError(StatusCode::kInvalidModel, "model '", model_path, "' is not a YOLO detector: ", why);
}

Result<std::vector<Detection>> Detector::detect(const Image& frame, StageTimes* times) {
  RJ_ASSIGN_OR_RETURN(auto all, detectBatch({&frame}, times));
  return std::move(all[0]);
}

Result<std::vector<std::vector<Detection>>> Detector::detectBatch(const std::vector<const Image*>& frames,
                                                                  StageTimes* times) {
  const int n = int(frames.size());
  if (n < 1 || n > max_batch_)
    return makeError(StatusCode::kInvalidArgument, "detectBatch: ", n, " frames; this detector takes 1..", max_batch_);
  for (const Image* f : frames)
    if (!f || f->empty() || f->pixels.size() != size_t(f->width) * f->height * 3)
      return makeError(StatusCode::kInvalidArgument, "detectBatch: an empty or inconsistent frame");
  if (device_pipe_) return device_pipe_->run(frames, times);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<Letterbox> lbs(n);
  Tensor input(pre_.fp16 ? DataType::kFloat16 : DataType::kFloat32, {n, 3, pre_.height, pre_.width});
  for (int i = 0; i < n; ++i) RJ_RETURN_IF_ERROR(preprocessInto(*frames[i], pre_, &input, i, &lbs[i]));
  double pre = msSince(t0);
  t0 = std::chrono::steady_clock::now();
  RJ_ASSIGN_OR_RETURN(auto outs, ctx_->infer({{input_name_, input}}));
  double inf = msSince(t0);
  t0 = std::chrono::steady_clock::now();
  if (output_index_ >= outs.size())
    return makeError(StatusCode::kInternal, "engine returned ", outs.size(), " outputs, expected output '",
                     output_name_, "'");
  DecodeOptions dopt = opt_.decode;
  dopt.format = format_;
  RJ_ASSIGN_OR_RETURN(auto dec, decodeYolo(outs[output_index_], output_name_, dopt));
  if (dec.per_image.size() != size_t(n))
    return makeError(StatusCode::kInternal, "engine output '", output_name_, "' has batch ", dec.per_image.size(),
                     ", expected ", n);
  std::vector<std::vector<Detection>> result(n);
  for (int i = 0; i < n; ++i) {
    std::vector<Detection>& dets = result[i];
    // End-to-end models already removed duplicates.
    if (format_ == YoloFormat::kE2E) {
      dets = std::move(dec.per_image[i]);
      std::stable_sort(dets.begin(), dets.end(), [](const Detection& a, const Detection& b) { return a.score > b.score; });
      if (opt_.nms.max_detections > 0 && dets.size() > size_t(opt_.nms.max_detections))
        dets.resize(opt_.nms.max_detections);
    } else {
      dets = nms(std::move(dec.per_image[i]), opt_.nms);
    }
    for (auto& d : dets) lbs[i].toFrame(&d.x1, &d.y1, &d.x2, &d.y2);
  }
  double post = msSince(t0);
  if (times) *times = {pre, inf, post};
  return result;
}

}  // namespace ramjet::vision
