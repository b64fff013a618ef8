#include "vision/draw.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "vision/font.h"

namespace ramjet::vision {

Rgb classColor(int cls) {
  static const Rgb kPalette[] = {{255, 56, 56},  {255, 157, 151}, {255, 112, 31}, {255, 178, 29}, {207, 210, 49},
                                 {72, 249, 10},  {146, 204, 23},  {61, 219, 134}, {26, 147, 52},  {0, 212, 187},
                                 {44, 153, 168}, {0, 194, 255},   {52, 69, 147},  {100, 115, 255}, {0, 24, 236},
                                 {132, 56, 255}, {82, 0, 133},    {203, 56, 255}, {255, 149, 200}, {255, 55, 199}};
  constexpr int n = sizeof(kPalette) / sizeof(kPalette[0]);
  return kPalette[((cls % n) + n) % n];
}

static inline void put(Image* img, int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= img->width || y >= img->height) return;
  uint8_t* p = img->at(x, y);
  p[0] = c[0];
  p[1] = c[1];
  p[2] = c[2];
}

void fillRect(Image* img, int x1, int y1, int x2, int y2, Rgb c) {
  x1 = std::max(x1, 0);
  y1 = std::max(y1, 0);
  x2 = std::min(x2, img->width);
  y2 = std::min(y2, img->height);
  for (int y = y1; y < y2; ++y)
    for (int x = x1; x < x2; ++x) put(img, x, y, c);
}

void drawRect(Image* img, int x1, int y1, int x2, int y2, Rgb c, int t) {
  t = std::max(t, 1);
  fillRect(img, x1, y1, x2, y1 + t, c);
  fillRect(img, x1, y2 - t, x2, y2, c);
  fillRect(img, x1, y1, x1 + t, y2, c);
  fillRect(img, x2 - t, y1, x2, y2, c);
}

void drawLine(Image* img, int x0, int y0, int x1, int y1, Rgb c, int t) {
  t = std::max(t, 1);
  // Clamp far-away endpoints so a wild coordinate cannot make the loop run for ages.
  auto clampc = [](int v) { return std::clamp(v, -100000, 100000); };
  x0 = clampc(x0), y0 = clampc(y0), x1 = clampc(x1), y1 = clampc(y1);
  int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
  int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  const int lo = -(t - 1) / 2, hi = t / 2;
  while (true) {
    for (int oy = lo; oy <= hi; ++oy)
      for (int ox = lo; ox <= hi; ++ox) put(img, x0 + ox, y0 + oy, c);
    if (x0 == x1 && y0 == y1) break;
    int e2 = 2 * err;
    if (e2 >= dy) err += dy, x0 += sx;
    if (e2 <= dx) err += dx, y0 += sy;
  }
}

int textWidth(const std::string& text, int scale) { return int(text.size()) * kFontWidth * std::max(scale, 1); }
int textHeight(int scale) { return kFontHeight * std::max(scale, 1); }

void drawText(Image* img, int x, int y, const std::string& text, Rgb c, int scale) {
  scale = std::max(scale, 1);
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char ch = static_cast<unsigned char>(text[i]);
    if (ch < 32 || ch > 126) ch = '?';
    const uint8_t* g = kFont6x11[ch - 32];
    int gx = x + int(i) * kFontWidth * scale;
    for (int r = 0; r < kFontHeight; ++r)
      for (int col = 0; col < kFontWidth; ++col)
        if (g[r] & (1 << (kFontWidth - 1 - col)))
          fillRect(img, gx + col * scale, y + r * scale, gx + (col + 1) * scale, y + (r + 1) * scale, c);
  }
}

int drawLabel(Image* img, int x, int y, const std::string& text, Rgb fg, Rgb bg, int scale) {
  int pad = std::max(scale, 1);
  int w = textWidth(text, scale) + 2 * pad, h = textHeight(scale) + 2 * pad;
  fillRect(img, x, y, x + w, y + h, bg);
  drawText(img, x + pad, y + pad, text, fg, scale);
  return h;
}

void drawDetections(Image* img, const std::vector<Detection>& dets, const std::vector<std::string>& names,
                    const DrawOptions& opt) {
  const int side = std::min(img->width, img->height);
  const int t = opt.thickness > 0 ? opt.thickness : std::max(2, side / 300);
  const int s = opt.font_scale > 0 ? opt.font_scale : std::max(1, side / 480);
  // Lowest score first, so the most confident boxes and labels end up on top.
  std::vector<const Detection*> order;
  for (const auto& d : dets) order.push_back(&d);
  std::stable_sort(order.begin(), order.end(), [](const Detection* a, const Detection* b) { return a->score < b->score; });
  for (const Detection* d : order) {
    Rgb c = classColor(d->cls);
    int x1 = int(std::floor(d->x1)), y1 = int(std::floor(d->y1));
    int x2 = int(std::ceil(d->x2)), y2 = int(std::ceil(d->y2));
    drawRect(img, x1, y1, x2, y2, c, t);
    char score[16];
    std::snprintf(score, sizeof score, " %.2f", d->score);
    std::string name = d->cls >= 0 && size_t(d->cls) < names.size() ? names[d->cls] : std::to_string(d->cls);
    std::string text = name + score;
    int h = textHeight(s) + 2 * std::max(s, 1);
    // Above the box when there is room, else inside its top edge.
    int ly = y1 - h >= 0 ? y1 - h : y1;
    int lx = std::clamp(x1, 0, std::max(0, img->width - textWidth(text, s) - 2 * s));
    int lum = (299 * c[0] + 587 * c[1] + 114 * c[2]) / 1000;
    drawLabel(img, lx, ly, text, lum > 140 ? Rgb{0, 0, 0} : Rgb{255, 255, 255}, c, s);
  }
  if (opt.fps >= 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "FPS %.1f", opt.fps);
    drawLabel(img, 4, 4, buf, {255, 255, 255}, {0, 0, 0}, s + 1);
  }
}

}  // namespace ramjet::vision
