// Precision/recall curves as a PNG plot, drawn by a minimal rasterizer (axes, grid, lines,
// legend) with the built-in bitmap font.
#pragma once

#include <string>
#include <vector>

#include "ramjet/status.h"
#include "vision/image.h"

namespace ramjet::vision {

struct Curve {
  std::string label;           // legend text
  std::vector<double> x, y;    // same length, values in [0, 1]
  bool bold = false;           // drawn thicker (the mean curve)
};

struct PlotOptions {
  int width = 900, height = 640;
  std::string title = "Precision-Recall";
  std::string x_label = "Recall", y_label = "Precision";
};

// Renders the curves into an image (axes 0..1 on both sides).
Result<Image> plotCurves(const std::vector<Curve>& curves, const PlotOptions& opt = {});
Status writeCurvesPng(const std::string& path, const std::vector<Curve>& curves, const PlotOptions& opt = {});

}  // namespace ramjet::vision
