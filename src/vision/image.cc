#include "vision/image.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

// stb is header-only (Debian libstb-dev); the implementations live in this one file.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STBI_MAX_DIMENSIONS 16384
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_WRITE_NO_STDIO
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace ramjet::vision {

namespace {

Result<std::vector<uint8_t>> readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "image '", path, "': cannot open (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) return makeError(StatusCode::kIoError, "image '", path, "': read failed");
  return bytes;
}

// Debian's stb_image (git 2022-09-08) builds a JPEG Huffman table without checking that the
// 16 code counts of a DHT table sum to at most 256 (upstream added "bad DHT header" later): a
// crafted file writes up to ~4 KB past stbi__huffman::size[257] into the decoder state, function
// pointers included. Found by tests/fuzz/image_fuzzer (UBSan index 257 out of bounds). Every DHT
// table is checked here before stb parses the file, reading the bytes exactly as stb would.
bool jpegHuffmanTablesOk(const uint8_t* p, size_t n) {
  size_t i = 2;  // after SOI
  while (i + 1 < n) {
    if (p[i] != 0xFF) {  // entropy-coded data between markers
      ++i;
      continue;
    }
    uint8_t m = p[i + 1];
    if (m == 0xFF) { ++i; continue; }  // fill byte
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) { i += 2; continue; }  // no length
    if (m == 0xD9 || i + 4 > n) return true;  // EOI, or truncated (stb reports that)
    size_t len = (size_t(p[i + 2]) << 8) | p[i + 3];
    if (m == 0xC4) {
      long left = long(len) - 2;
      size_t j = i + 4;
      while (left > 0) {
        size_t count = 0;
        for (size_t k = 1; k <= 16; ++k) count += j + k < n ? p[j + k] : 0;
        if (count > 256) return false;
        left -= 17 + long(count);
        j += 17 + count;
      }
    }
    i += 2 + len;
  }
  return true;
}

// stb grows its IDAT buffer to each chunk's declared length before reading the chunk, so a
// 121-byte PNG declaring a 2 GB chunk cost a 2 GB allocation (image_fuzzer, libFuzzer OOM).
// Chunk data must lie inside the file.
bool pngChunksFit(const uint8_t* p, size_t n) {
  size_t i = 8;  // after the signature
  while (i + 8 <= n) {
    size_t len = (size_t(p[i]) << 24) | (size_t(p[i + 1]) << 16) | (size_t(p[i + 2]) << 8) | p[i + 3];
    if (len > n - (i + 8)) return false;
    if (std::memcmp(p + i + 4, "IEND", 4) == 0) return true;
    i += 12 + len;  // length, type, data, CRC
  }
  return true;
}

const char* formatGuess(const uint8_t* p, size_t n) {
  if (n >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return "JPEG";
  if (n >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return "BMP";
  return nullptr;
}

}  // namespace

Result<Image> decodeImage(const void* data, size_t size, const std::string& name) {
  const auto* p = static_cast<const uint8_t*>(data);
  if (size == 0) return makeError(StatusCode::kInvalidArgument, "image '", name, "': empty file");
  const char* fmt = formatGuess(p, size);
  if (!fmt)
    return makeError(StatusCode::kInvalidArgument, "image '", name,
                     "': not a JPEG, PNG or BMP file (unrecognized signature)");
  if (size > size_t(INT32_MAX)) return makeError(StatusCode::kInvalidArgument, "image '", name, "': file too large");
  if (fmt[0] == 'J' && !jpegHuffmanTablesOk(p, size))
    return makeError(StatusCode::kInvalidArgument, "image '", name,
                     "': corrupt JPEG header (a Huffman table declares more than 256 codes)");
  if (fmt[0] == 'P' && !pngChunksFit(p, size))
    return makeError(StatusCode::kInvalidArgument, "image '", name,
                     "': corrupt PNG (a chunk's length runs past the end of the file)");
  int w = 0, h = 0, c = 0;
  if (!stbi_info_from_memory(p, int(size), &w, &h, &c))
    return makeError(StatusCode::kInvalidArgument, "image '", name, "': corrupt ", fmt, " header (",
                     stbi_failure_reason(), ")");
  if (w <= 0 || h <= 0 || w > kMaxImageSide || h > kMaxImageSide)
    return makeError(StatusCode::kInvalidArgument, "image '", name, "': ", fmt, " size ", w, "x", h,
                     " is outside 1..", kMaxImageSide);
  uint8_t* px = stbi_load_from_memory(p, int(size), &w, &h, &c, 3);
  if (!px)
    return makeError(StatusCode::kInvalidArgument, "image '", name, "': corrupt ", fmt, " data (",
                     stbi_failure_reason(), ")");
  Image img;
  img.width = w;
  img.height = h;
  img.pixels.assign(px, px + size_t(w) * h * 3);
  stbi_image_free(px);
  return img;
}

Result<Image> loadImage(const std::string& path) {
  RJ_ASSIGN_OR_RETURN(auto bytes, readFile(path));
  return decodeImage(bytes.data(), bytes.size(), path);
}

Status imageSize(const std::string& path, int* width, int* height) {
  RJ_ASSIGN_OR_RETURN(auto bytes, readFile(path));
  int c = 0;
  const char* fmt = formatGuess(bytes.data(), bytes.size());
  if (!fmt || (fmt[0] == 'J' && !jpegHuffmanTablesOk(bytes.data(), bytes.size())) ||
      !stbi_info_from_memory(bytes.data(), int(bytes.size()), width, height, &c))
    return makeError(StatusCode::kInvalidArgument, "image '", path, "': not a readable JPEG, PNG or BMP file");
  return Status::Ok();
}

namespace {
void appendBytes(void* ctx, void* data, int size) {
  auto* out = static_cast<std::vector<uint8_t>*>(ctx);
  out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
}
}  // namespace

Result<std::vector<uint8_t>> encodePng(const Image& img) {
  if (img.empty() || img.pixels.size() != size_t(img.width) * img.height * 3)
    return makeError(StatusCode::kInvalidArgument, "cannot encode an empty or inconsistent image as PNG (",
                     img.width, "x", img.height, ")");
  std::vector<uint8_t> out;
  // Level 4 instead of stb's default 8: PNGs of every frame are written in the hot loop.
  stbi_write_png_compression_level = 4;
  if (!stbi_write_png_to_func(appendBytes, &out, img.width, img.height, 3, img.pixels.data(), img.width * 3))
    return makeError(StatusCode::kInternal, "PNG encoder failed for a ", img.width, "x", img.height, " image");
  return out;
}

Status savePng(const std::string& path, const Image& img) {
  RJ_ASSIGN_OR_RETURN(auto bytes, encodePng(img));
  std::ofstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kIoError, "cannot write '", path, "' (", std::strerror(errno), ")");
  f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  if (!f) return makeError(StatusCode::kIoError, "write to '", path, "' failed");
  return Status::Ok();
}

bool hasImageExtension(const std::string& path) {
  auto dot = path.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = path.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == "jpg" || ext == "jpeg" || ext == "png" || ext == "bmp";
}

}  // namespace ramjet::vision
