// Options shared by `ramjet validate` and `ramjet calibrate`: calibration data and method flags.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <vector>
#include <memory>
#include <string>

#include "precision/calibrator.h"

namespace ramjet::cli {

struct CalibFlags {
  std::string method = "entropy";
  double percentile = 99.99;
  std::string size;  // HxW
  std::string mean = "0.485,0.456,0.406", std = "0.229,0.224,0.225";
  size_t batches = 0;
  int bins = 2048;
  bool quiet = false;

  void add(CLI::App* cmd) {
    cmd->add_option("--method", method, "calibrator: entropy (default), minmax, percentile, mse")
        ->check(CLI::IsMember({"entropy", "minmax", "percentile", "mse"}));
    cmd->add_option("--percentile", percentile, "percentile for --method percentile (99.9, 99.99, ...)")
        ->check(CLI::Range(50.0, 100.0));
    cmd->add_option("--calib-size", size, "image size HxW for image folders (default: the input's H, W)");
    cmd->add_option("--calib-mean", mean, "image mean per channel (R,G,B) after scaling to [0,1]");
    cmd->add_option("--calib-std", std, "image std per channel (R,G,B)");
    cmd->add_option("--calib-batches", batches, "use at most this many calibration batches");
    cmd->add_option("--calib-bins", bins, "histogram bins per tensor")->check(CLI::Range(256, 65536));
  }

  bool preprocess(precision::ImagePreprocess* pre, std::string* err) const {
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
    if (!floats(mean, &pre->mean, "--calib-mean") || !floats(std, &pre->std, "--calib-std")) return false;
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

}  // namespace ramjet::cli
