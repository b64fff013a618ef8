// Drawing into RGB images: rectangles, lines, text in the built-in bitmap font, detections.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "vision/decode.h"
#include "vision/image.h"

namespace ramjet::vision {

using Rgb = std::array<uint8_t, 3>;

// A distinct colour per class (a fixed palette, cycled).
Rgb classColor(int cls);

void fillRect(Image* img, int x1, int y1, int x2, int y2, Rgb c);  // [x1, x2) x [y1, y2), clipped
void drawRect(Image* img, int x1, int y1, int x2, int y2, Rgb c, int thickness);
// Thick line (Bresenham with a square pen), clipped.
void drawLine(Image* img, int x0, int y0, int x1, int y1, Rgb c, int thickness = 1);
// Text with its top-left corner at (x, y); each glyph pixel becomes scale x scale pixels.
void drawText(Image* img, int x, int y, const std::string& text, Rgb c, int scale = 1);
int textWidth(const std::string& text, int scale = 1);
int textHeight(int scale = 1);
// Text on a filled background box (a label); returns the box height.
int drawLabel(Image* img, int x, int y, const std::string& text, Rgb fg, Rgb bg, int scale = 1);

struct DrawOptions {
  int thickness = 0;  // 0: from the image size
  int font_scale = 0;  // 0: from the image size
  double fps = -1;     // >= 0: draw an "FPS" overlay in the top-left corner
};

// Boxes with "name score" labels; `names[cls]` when present, else the class number.
void drawDetections(Image* img, const std::vector<Detection>& dets, const std::vector<std::string>& names,
                    const DrawOptions& opt = {});

}  // namespace ramjet::vision
