// 8-bit RGB images for the detection pipeline: decode (JPEG/PNG/BMP through stb_image), PNG out.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ramjet/status.h"

namespace ramjet::vision {

// Interleaved RGB, row-major, 3 bytes per pixel, no row padding.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3

  Image() = default;
  Image(int w, int h, uint8_t fill = 0) : width(w), height(h), pixels(size_t(w) * h * 3, fill) {}
  bool empty() const { return width <= 0 || height <= 0; }
  uint8_t* at(int x, int y) { return pixels.data() + (size_t(y) * width + x) * 3; }
  const uint8_t* at(int x, int y) const { return pixels.data() + (size_t(y) * width + x) * 3; }
};

// Largest side accepted on decode: a corrupt header must not make us allocate gigabytes.
constexpr int kMaxImageSide = 16384;

// Decodes an encoded image held in memory; `name` only labels error messages.
Result<Image> decodeImage(const void* data, size_t size, const std::string& name);
// Reads and decodes a file. Errors name the file and say why (missing, not an image, truncated).
Result<Image> loadImage(const std::string& path);
// Only the dimensions, without decoding pixels (labels in YOLO-txt need the image size).
Status imageSize(const std::string& path, int* width, int* height);
// Writes a PNG (temp file + rename is not needed: outputs are per frame).
Status savePng(const std::string& path, const Image& img);
// Encodes a PNG into memory.
Result<std::vector<uint8_t>> encodePng(const Image& img);

// True for names ending in .jpg/.jpeg/.png/.bmp (any case): what folder/glob sources pick up.
bool hasImageExtension(const std::string& path);

}  // namespace ramjet::vision
