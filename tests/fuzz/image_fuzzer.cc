// libFuzzer target for image decoding (vision::decodeImage over stb_image: JPEG, PNG, BMP).
// Every input must give an image or a Status with a message, never a crash or sanitizer report.
// A decoded image must be self-consistent, and small ones round-trip through the PNG encoder
// bit-exactly (RGB8 in, RGB8 out).
//   seeds: tests/fuzz/corpus/image (tests/fuzz/make_image_corpus.py)
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "vision/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using ramjet::vision::Image;
  auto img = ramjet::vision::decodeImage(data, size, "fuzz");
  if (!img.ok()) {
    if (img.status().message().empty()) std::abort();  // every error must say why
    return 0;
  }
  if (img->width <= 0 || img->height <= 0 || img->width > ramjet::vision::kMaxImageSide ||
      img->height > ramjet::vision::kMaxImageSide ||
      img->pixels.size() != static_cast<size_t>(img->width) * img->height * 3)
    std::abort();
  if (static_cast<size_t>(img->width) * img->height <= 64 * 64) {
    auto png = ramjet::vision::encodePng(*img);
    if (!png.ok()) std::abort();
    auto back = ramjet::vision::decodeImage(png->data(), png->size(), "fuzz round trip");
    if (!back.ok() || back->width != img->width || back->height != img->height || back->pixels != img->pixels)
      std::abort();
  }
  return 0;
}
