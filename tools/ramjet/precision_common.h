// Options shared by `ramjet validate`, `ramjet calibrate` and `ramjet build`: calibration data
// and method flags.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <vector>
#include <memory>
#include <string>

#include "precision/calibrator.h"
#include "ramjet/graph.h"

namespace ramjet::cli {

// "0.5%" -> 0.005, "0.005" -> 0.005; must end up in (0, 1).
inline Result<double> parseFraction(const std::string& s) {
  std::string t = s;
  const bool percent = !t.empty() && t.back() == '%';
  if (percent) t.pop_back();
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !std::isfinite(v))
    return makeError(StatusCode::kInvalidArgument, "'", s, "' is not a number like 0.5% or 0.005");
  if (percent) v /= 100.0;
  if (!(v > 0) || !(v < 1))
    return makeError(StatusCode::kInvalidArgument, "'", s, "' must be above 0 and below 100% (a fraction below 1; "
                                                   "write 1% for one percent)");
  return v;
}

struct CalibFlags {
  std::string method = "entropy";
  double percentile = 99.99;
  std::string size;  // HxW
  // Empty: ImageNet's mean/std, or 0,0,0 / 1,1,1 (pixels scaled to [0, 1] only) for a model
  // whose ONNX metadata marks it as a YOLO-style exporter's (keys "task" or "stride").
  std::string mean, std;
  size_t batches = 0;
  int bins = 2048;
  bool quiet = false;

  void addImageFlags(CLI::App* cmd) {
    cmd->add_option("--calib-size", size, "image size HxW for image folders (default: the input's H, W)");
    cmd->add_option("--calib-mean", mean,
                    "image mean per channel (R,G,B) after scaling to [0,1] (default: ImageNet's; 0,0,0 for YOLO models)");
    cmd->add_option("--calib-std", std, "image std per channel (R,G,B) (default: ImageNet's; 1,1,1 for YOLO models)");
  }

  void add(CLI::App* cmd) {
    cmd->add_option("--method", method, "calibrator: entropy (default), minmax, percentile, mse")
        ->check(CLI::IsMember({"entropy", "minmax", "percentile", "mse"}));
    cmd->add_option("--percentile", percentile, "percentile for --method percentile (99.9, 99.99, ...)")
        ->check(CLI::Range(50.0, 100.0));
    addImageFlags(cmd);
    cmd->add_option("--calib-batches", batches, "use at most this many calibration batches");
    cmd->add_option("--calib-bins", bins, "histogram bins per tensor")->check(CLI::Range(256, 65536));
  }

  // YOLO exporters (Ultralytics, ours) feed RGB scaled to [0, 1] without mean/std and mark
  // their models with these metadata keys.
  static bool yoloStyle(const Graph& g) { return g.metadata.count("task") || g.metadata.count("stride"); }

  bool preprocess(precision::ImagePreprocess* pre, std::string* err, const Graph& g) const {
    const bool yolo = yoloStyle(g);
    std::string mean_s = mean.empty() ? (yolo ? "0,0,0" : "0.485,0.456,0.406") : mean;
    std::string std_s = this->std.empty() ? (yolo ? "1,1,1" : "0.229,0.224,0.225") : this->std;
    auto floats = [&](const std::string& s, std::vector<float>* out, const char* flag) {
      out->clear();
      std::stringstream ss(s);
      std::string item;
      while (std::getline(ss, item, ',')) {
        char* end = nullptr;
        float v = std::strtof(item.c_str(), &end);
        if (item.empty() || *end != '\0') return *err = std::string(flag) + " '" + s + "' must be 3 numbers like 0.5,0.5,0.5", false;
        out->push_back(v);
      }
      if (out->size() != 3) return *err = std::string(flag) + " '" + s + "' must have 3 values (R,G,B)", false;
      return true;
    };
    if (!floats(mean_s, &pre->mean, "--calib-mean") || !floats(std_s, &pre->std, "--calib-std")) return false;
    for (float v : pre->std)
      if (!(v > 0)) return *err = "--calib-std values must be positive", false;
    if (!size.empty()) {
      int h = 0, w = 0;
      char x = 0, extra = 0;
      if (std::sscanf(size.c_str(), "%d%c%d%c", &h, &x, &w, &extra) != 3 || x != 'x' || h <= 0 || w <= 0 || h > 16384 ||
          w > 16384)
        return *err = "--calib-size '" + size + "' must look like 224x224", false;
      pre->height = h;
      pre->width = w;
    }
    return true;
  }

  precision::CalibrationOptions options() const {
    precision::CalibrationOptions o;
    o.threshold.method = *precision::parseCalibrationMethod(method);
    o.threshold.percentile = percentile;
    o.num_bins = bins;
    o.max_batches = batches;
    if (!quiet)
      o.progress = [](size_t done, size_t total) {
        if (total) {
          int w = 30, f = static_cast<int>(w * done / total);
          std::cerr << "\rcalibrating [" << std::string(f, '#') << std::string(w - f, '.') << "] " << done << "/" << total
                    << std::flush;
          if (done == total) std::cerr << "\n";
        } else {
          std::cerr << "\rcalibrating: " << done << " batches" << std::flush;
        }
      };
    return o;
  }
};

// `ramjet detect` / `ramjet eval`: --precision int8 with its calibration images and budget.
struct DetectInt8Flags {
  std::string calib_data, calib_method = "percentile", budget;
  int calib_images = 64, samples = 8;

  void add(CLI::App* cmd) {
    cmd->add_option("--calib-data", calib_data,
                    "--precision int8: folder of calibration images (frames like the ones the detector will see)");
    cmd->add_option("--calib-images", calib_images, "--precision int8: calibrate on this many images (default 64)")
        ->check(CLI::Range(1, 100000));
    cmd->add_option("--calib-method", calib_method, "--precision int8: percentile (default), mse, minmax, entropy")
        ->check(CLI::IsMember({"percentile", "mse", "minmax", "entropy"}));
    cmd->add_option("--accuracy-budget", budget,
                    "--precision int8: most detection agreement with FP32 to lose (1 - mAP@0.5 vs FP32's boxes), "
                    "e.g. 1%; the most sensitive layers stay FP16");
    cmd->add_option("--accuracy-samples", samples, "--precision int8: calibration images the budget is measured on (default 8)")
        ->check(CLI::Range(1, 100000));
  }

  // Fills the INT8 fields of `dopt` (a DetectorOptions); false with *err set on bad flags.
  template <typename DetectorOptions>
  bool apply(const std::string& precision, DetectorOptions* dopt, std::string* err) const {
    if (precision != "int8") {
      if (!calib_data.empty() || !budget.empty())
        return *err = "--calib-data and --accuracy-budget need --precision int8", false;
      return true;
    }
    if (calib_data.empty()) return *err = "--precision int8 needs --calib-data DIR (calibration images)", false;
    dopt->calib_data = calib_data;
    dopt->calib_images = calib_images;
    dopt->calib_method = calib_method;
    dopt->accuracy_samples = samples;
    if (!budget.empty()) {
      auto b = parseFraction(budget);
      if (!b.ok()) return *err = "--accuracy-budget: " + b.status().message(), false;
      dopt->accuracy_budget = *b;
    }
    return true;
  }
};

}  // namespace ramjet::cli
