#include "vision/pr_curve.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "vision/draw.h"
#include "vision/font.h"

namespace ramjet::vision {

Result<Image> plotCurves(const std::vector<Curve>& curves, const PlotOptions& opt) {
  if (opt.width < 200 || opt.height < 160 || opt.width > 8192 || opt.height > 8192)
    return makeError(StatusCode::kInvalidArgument, "plot size ", opt.width, "x", opt.height,
                     " is outside 200x160..8192x8192");
  for (const auto& c : curves)
    if (c.x.size() != c.y.size())
      return makeError(StatusCode::kInvalidArgument, "curve '", c.label, "' has ", c.x.size(), " x values and ",
                       c.y.size(), " y values");
  Image img(opt.width, opt.height, 255);
  const Rgb black{0, 0, 0}, grid{225, 225, 225};
  const int left = 60, right = 220, top = 36, bottom = 50;  // legend lives in the right margin
  const int pw = opt.width - left - right, ph = opt.height - top - bottom;
  auto px = [&](double v) { return left + int(std::lround(std::clamp(v, 0.0, 1.0) * pw)); };
  auto py = [&](double v) { return top + ph - int(std::lround(std::clamp(v, 0.0, 1.0) * ph)); };
  char buf[16];
  for (int i = 0; i <= 10; ++i) {
    double v = i / 10.0;
    drawLine(&img, px(v), py(0), px(v), py(1), grid);
    drawLine(&img, px(0), py(v), px(1), py(v), grid);
    drawLine(&img, px(v), py(0), px(v), py(0) + 5, black);
    drawLine(&img, px(0) - 5, py(v), px(0), py(v), black);
    if (i % 2 == 0) {
      std::snprintf(buf, sizeof buf, "%.1f", v);
      drawText(&img, px(v) - textWidth(buf) / 2, py(0) + 8, buf, black);
      drawText(&img, px(0) - 8 - textWidth(buf), py(v) - kFontHeight / 2, buf, black);
    }
  }
  drawRect(&img, px(0), py(1), px(1) + 1, py(0) + 1, black, 1);
  drawText(&img, left + pw / 2 - textWidth(opt.title, 2) / 2, 8, opt.title, black, 2);
  drawText(&img, left + pw / 2 - textWidth(opt.x_label) / 2, py(0) + 26, opt.x_label, black);
  // Vertical axis label, one letter per line (the font has no rotation).
  for (size_t i = 0; i < opt.y_label.size(); ++i)
    drawText(&img, 8, top + ph / 2 - int(opt.y_label.size()) * (kFontHeight + 1) / 2 + int(i) * (kFontHeight + 1),
             std::string(1, opt.y_label[i]), black);
  int ly = top;
  for (size_t k = 0; k < curves.size(); ++k) {
    const Curve& c = curves[k];
    // Palette steps of 7 keep neighbouring curves in clearly different hues.
    Rgb col = c.bold ? Rgb{20, 60, 200} : classColor(int(k) * 7);
    int th = c.bold ? 3 : 2;
    for (size_t i = 1; i < c.x.size(); ++i)
      if (std::isfinite(c.x[i - 1]) && std::isfinite(c.y[i - 1]) && std::isfinite(c.x[i]) && std::isfinite(c.y[i]))
        drawLine(&img, px(c.x[i - 1]), py(c.y[i - 1]), px(c.x[i]), py(c.y[i]), col, th);
    if (ly + kFontHeight < opt.height - 4) {
      drawLine(&img, left + pw + 12, ly + kFontHeight / 2, left + pw + 32, ly + kFontHeight / 2, col, th);
      std::string text = c.label.size() > 28 ? c.label.substr(0, 27) + "~" : c.label;
      drawText(&img, left + pw + 38, ly, text, black);
      ly += kFontHeight + 5;
    }
  }
  return img;
}

Status writeCurvesPng(const std::string& path, const std::vector<Curve>& curves, const PlotOptions& opt) {
  RJ_ASSIGN_OR_RETURN(auto img, plotCurves(curves, opt));
  return savePng(path, img);
}

}  // namespace ramjet::vision
