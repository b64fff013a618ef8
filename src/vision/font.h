// The built-in bitmap font used for labels, the FPS overlay and plot text.
#pragma once

#include <cstdint>

namespace ramjet::vision {

constexpr int kFontWidth = 6, kFontHeight = 11;
// Glyphs for ASCII 32..126; row bits from bit 5 (left) to bit 0 (right).
extern const uint8_t kFont6x11[95][11];

}  // namespace ramjet::vision
