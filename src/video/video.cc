#include "video/video.h"

#include <glob.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "video/ffmpeg.h"

namespace ramjet::video {

namespace fs = std::filesystem;

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool endsWithAny(const std::string& path, std::initializer_list<const char*> exts) {
  std::string p = lower(path);
  for (const char* e : exts) {
    size_t n = std::strlen(e);
    if (p.size() > n && p.compare(p.size() - n, n, e) == 0) return true;
  }
  return false;
}

uint8_t clamp8(float v) { return uint8_t(std::clamp(v + 0.5f, 0.f, 255.f)); }

// ---------------------------------------------------------------- image lists

class ImageListSource final : public FrameSource {
 public:
  ImageListSource(std::string spec, std::vector<std::string> paths, int64_t max_frames)
      : spec_(std::move(spec)), paths_(std::move(paths)), max_(max_frames) {}
  Result<bool> next(Frame* f) override {
    if (i_ >= paths_.size() || (max_ >= 0 && int64_t(i_) >= max_)) return false;
    RJ_ASSIGN_OR_RETURN(f->image, vision::loadImage(paths_[i_]));
    f->index = int64_t(i_);
    f->time_s = 0;
    f->name = paths_[i_];
    ++i_;
    return true;
  }
  std::string describe() const override {
    return std::to_string(paths_.size()) + (paths_.size() == 1 ? " image" : " images") + " from " + spec_;
  }
  int64_t frameCountHint() const override { return int64_t(paths_.size()); }

 private:
  std::string spec_;
  std::vector<std::string> paths_;
  size_t i_ = 0;
  int64_t max_;
};

// ---------------------------------------------------------------- raw streams

// BT.601 limited range, what FFmpeg writes for yuv420p unless told otherwise.
void yuvToRgb(int Y, int U, int V, uint8_t* rgb) {
  float c = 1.164383f * float(Y - 16), d = float(U - 128), e = float(V - 128);
  rgb[0] = clamp8(c + 1.596027f * e);
  rgb[1] = clamp8(c - 0.391762f * d - 0.812968f * e);
  rgb[2] = clamp8(c + 2.017232f * d);
}

class Y4mSource final : public FrameSource {
 public:
  Status open(const std::string& path, int64_t max_frames) {
    path_ = path;
    max_ = max_frames;
    f_.open(path, std::ios::binary);
    if (!f_) return makeError(StatusCode::kNotFound, "raw video '", path, "': cannot open");
    std::string header;
    if (!std::getline(f_, header) || header.rfind("YUV4MPEG2", 0) != 0)
      return makeError(StatusCode::kInvalidArgument, "raw video '", path, "' is not a YUV4MPEG2 (.y4m) stream: bad header");
    std::istringstream is(header.substr(9));
    std::string tok;
    std::string cs = "420jpeg";
    while (is >> tok) {
      char k = tok[0];
      std::string v = tok.substr(1);
      if (k == 'W') w_ = std::atoi(v.c_str());
      else if (k == 'H') h_ = std::atoi(v.c_str());
      else if (k == 'C') cs = v;
      else if (k == 'F') {
        int num = 0, den = 0;
        if (std::sscanf(v.c_str(), "%d:%d", &num, &den) == 2 && num > 0 && den > 0) fps_ = double(num) / den;
      }
    }
    if (w_ <= 0 || h_ <= 0 || w_ > vision::kMaxImageSide || h_ > vision::kMaxImageSide)
      return makeError(StatusCode::kInvalidArgument, "raw video '", path, "': frame size ", w_, "x", h_,
                       " is missing or outside 1..", vision::kMaxImageSide);
    if (cs.rfind("420", 0) == 0) chroma_ = 420;
    else if (cs == "444") chroma_ = 444;
    else if (cs == "mono") chroma_ = 0;
    else
      return makeError(StatusCode::kUnsupported, "raw video '", path, "': colour space C", cs,
                       " (8-bit 420*, 444 and mono are read)");
    cw_ = chroma_ == 420 ? (w_ + 1) / 2 : w_;
    ch_ = chroma_ == 420 ? (h_ + 1) / 2 : h_;
    return Status::Ok();
  }
  Result<bool> next(Frame* f) override {
    if (max_ >= 0 && index_ >= max_) return false;
    std::string line;
    if (!std::getline(f_, line)) return false;
    if (line.rfind("FRAME", 0) != 0)
      return makeError(StatusCode::kInvalidArgument, "raw video '", path_, "': frame ", index_, " has no FRAME marker");
    size_t ysz = size_t(w_) * h_, csz = chroma_ ? size_t(cw_) * ch_ : 0;
    buf_.resize(ysz + 2 * csz);
    if (!f_.read(reinterpret_cast<char*>(buf_.data()), std::streamsize(buf_.size())))
      return makeError(StatusCode::kInvalidArgument, "raw video '", path_, "': frame ", index_, " is truncated");
    if (f->image.width != w_ || f->image.height != h_) f->image = vision::Image(w_, h_);
    const uint8_t *Y = buf_.data(), *U = Y + ysz, *V = U + csz;
    for (int y = 0; y < h_; ++y)
      for (int x = 0; x < w_; ++x) {
        size_t ci = chroma_ == 420 ? size_t(y / 2) * cw_ + x / 2 : size_t(y) * w_ + x;
        yuvToRgb(Y[size_t(y) * w_ + x], chroma_ ? U[ci] : 128, chroma_ ? V[ci] : 128, f->image.at(x, y));
      }
    f->index = index_;
    f->time_s = index_ / fps_;
    f->name = path_ + "#" + std::to_string(index_);
    ++index_;
    return true;
  }
  std::string describe() const override {
    char b[96];
    std::snprintf(b, sizeof b, " (y4m %dx%d @ %.3g fps)", w_, h_, fps_);
    return "raw video " + path_ + b;
  }
  double fps() const override { return fps_; }
  bool isVideo() const override { return true; }

 private:
  std::string path_;
  std::ifstream f_;
  int w_ = 0, h_ = 0, cw_ = 0, ch_ = 0, chroma_ = 420;
  double fps_ = 30;
  int64_t index_ = 0, max_ = -1;
  std::vector<uint8_t> buf_;
};

// Packed 8-bit RGB or BGR frames back to back; the size comes from the caller.
class RgbSource final : public FrameSource {
 public:
  Status open(const std::string& path, const SourceOptions& o) {
    path_ = path;
    bgr_ = endsWithAny(path, {".bgr"});
    w_ = o.raw_width, h_ = o.raw_height, fps_ = o.raw_fps > 0 ? o.raw_fps : 30, max_ = o.max_frames;
    if (w_ <= 0 || h_ <= 0 || w_ > vision::kMaxImageSide || h_ > vision::kMaxImageSide)
      return makeError(StatusCode::kInvalidArgument, "raw frames '", path,
                       "': give the frame size with --source-size WxH (1..", vision::kMaxImageSide, ")");
    f_.open(path, std::ios::binary);
    if (!f_) return makeError(StatusCode::kNotFound, "raw frames '", path, "': cannot open");
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    size_t frame = size_t(w_) * h_ * 3;
    if (!ec && size % frame != 0)
      return makeError(StatusCode::kInvalidArgument, "raw frames '", path, "': ", size, " bytes is not a whole number of ",
                       w_, "x", h_, "x3 frames (", frame, " bytes each)");
    count_ = ec ? -1 : int64_t(size / frame);
    return Status::Ok();
  }
  Result<bool> next(Frame* f) override {
    if (max_ >= 0 && index_ >= max_) return false;
    if (f->image.width != w_ || f->image.height != h_) f->image = vision::Image(w_, h_);
    f_.read(reinterpret_cast<char*>(f->image.pixels.data()), std::streamsize(f->image.pixels.size()));
    if (f_.gcount() == 0) return false;
    if (size_t(f_.gcount()) != f->image.pixels.size())
      return makeError(StatusCode::kInvalidArgument, "raw frames '", path_, "': frame ", index_, " is truncated");
    if (bgr_)
      for (size_t i = 0; i < f->image.pixels.size(); i += 3) std::swap(f->image.pixels[i], f->image.pixels[i + 2]);
    f->index = index_;
    f->time_s = index_ / fps_;
    f->name = path_ + "#" + std::to_string(index_);
    ++index_;
    return true;
  }
  std::string describe() const override {
    return "raw " + std::string(bgr_ ? "BGR" : "RGB") + " frames " + path_ + " (" + std::to_string(w_) + "x" +
           std::to_string(h_) + ")";
  }
  double fps() const override { return fps_; }
  bool isVideo() const override { return true; }
  int64_t frameCountHint() const override { return count_; }

 private:
  std::string path_;
  std::ifstream f_;
  bool bgr_ = false;
  int w_ = 0, h_ = 0;
  double fps_ = 30;
  int64_t index_ = 0, max_ = -1, count_ = -1;
};

// ---------------------------------------------------------------- sinks

class PngFolderSink final : public FrameSink {
 public:
  explicit PngFolderSink(std::string dir) : dir_(std::move(dir)) {}
  Status write(const vision::Image& img, const std::string& name) override {
    std::string stem = fs::path(name).stem().string();
    // Video frames are named "<source>#<index>": keep the index, zero-padded.
    size_t hash = name.rfind('#');
    if (hash != std::string::npos) {
      char b[32];
      std::snprintf(b, sizeof b, "frame_%06lld", std::atoll(name.c_str() + hash + 1));
      stem = b;
    }
    return vision::savePng((fs::path(dir_) / (stem + ".png")).string(), img);
  }
  Status close() override { return Status::Ok(); }
  std::string describe() const override { return "PNG frames in " + dir_; }

 private:
  std::string dir_;
};

class Y4mSink final : public FrameSink {
 public:
  Y4mSink(std::string path, double fps) : path_(std::move(path)), fps_(fps > 0 ? fps : 30) {}
  Status write(const vision::Image& img, const std::string&) override {
    if (!f_.is_open()) {
      f_.open(path_, std::ios::binary);
      if (!f_) return makeError(StatusCode::kIoError, "cannot write raw video '", path_, "'");
      w_ = img.width, h_ = img.height;
      f_ << "YUV4MPEG2 W" << w_ << " H" << h_ << " F" << int(std::lround(fps_ * 1000)) << ":1000 Ip A1:1 C420jpeg\n";
    }
    if (img.width != w_ || img.height != h_)
      return makeError(StatusCode::kInvalidArgument, "raw video '", path_, "': frame is ", img.width, "x", img.height,
                       ", the video is ", w_, "x", h_);
    const int cw = (w_ + 1) / 2, ch = (h_ + 1) / 2;
    std::vector<uint8_t> buf(size_t(w_) * h_ + 2 * size_t(cw) * ch);
    uint8_t *Y = buf.data(), *U = Y + size_t(w_) * h_, *V = U + size_t(cw) * ch;
    for (int y = 0; y < h_; ++y)
      for (int x = 0; x < w_; ++x) {
        const uint8_t* p = img.at(x, y);
        Y[size_t(y) * w_ + x] = clamp8(16.f + 0.256788f * p[0] + 0.504129f * p[1] + 0.097906f * p[2]);
      }
    for (int y = 0; y < ch; ++y)
      for (int x = 0; x < cw; ++x) {
        float r = 0, g = 0, b = 0;
        int n = 0;
        for (int dy = 0; dy < 2; ++dy)
          for (int dx = 0; dx < 2; ++dx) {
            int xx = std::min(2 * x + dx, w_ - 1), yy = std::min(2 * y + dy, h_ - 1);
            const uint8_t* p = img.at(xx, yy);
            r += p[0], g += p[1], b += p[2], ++n;
          }
        r /= n, g /= n, b /= n;
        U[size_t(y) * cw + x] = clamp8(128.f - 0.148223f * r - 0.290993f * g + 0.439216f * b);
        V[size_t(y) * cw + x] = clamp8(128.f + 0.439216f * r - 0.367788f * g - 0.071427f * b);
      }
    f_ << "FRAME\n";
    f_.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
    if (!f_) return makeError(StatusCode::kIoError, "raw video '", path_, "': write failed (disk full?)");
    return Status::Ok();
  }
  Status close() override {
    if (f_.is_open()) {
      f_.close();
      if (f_.fail()) return makeError(StatusCode::kIoError, "raw video '", path_, "': close failed");
    }
    return Status::Ok();
  }
  std::string describe() const override { return "raw video " + path_ + " (y4m)"; }

 private:
  std::string path_;
  double fps_;
  std::ofstream f_;
  int w_ = 0, h_ = 0;
};

}  // namespace

bool isVideoFileName(const std::string& p) {
  return endsWithAny(p, {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts", ".flv"});
}
bool isRawStreamName(const std::string& p) { return endsWithAny(p, {".y4m", ".rgb", ".bgr"}); }
bool needsFfmpeg(const std::string& spec) {
  return isVideoFileName(spec) || spec.rfind("/dev/video", 0) == 0 || spec.find("://") != std::string::npos;
}

Result<std::vector<std::string>> expandImageSources(const std::string& src) {
  std::error_code ec;
  std::vector<std::string> out;
  if (fs::is_directory(src, ec)) {
    for (auto it = fs::directory_iterator(src, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->is_regular_file() && vision::hasImageExtension(it->path().string())) out.push_back(it->path().string());
    std::sort(out.begin(), out.end());
    if (out.empty()) return makeError(StatusCode::kNotFound, "source folder '", src, "' has no .jpg/.png/.bmp images");
    return out;
  }
  if (src.find_first_of("*?[") != std::string::npos && !fs::exists(src, ec)) {
    glob_t g{};
    int rc = ::glob(src.c_str(), 0, nullptr, &g);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i)
      if (vision::hasImageExtension(g.gl_pathv[i])) out.push_back(g.gl_pathv[i]);
    globfree(&g);
    if (out.empty()) return makeError(StatusCode::kNotFound, "source pattern '", src, "' matches no image files");
    return out;
  }
  if (!fs::exists(src, ec)) return makeError(StatusCode::kNotFound, "source '", src, "' does not exist");
  if (!fs::is_regular_file(src, ec)) return makeError(StatusCode::kInvalidArgument, "source '", src, "' is not a file");
  out.push_back(src);
  return out;
}

Result<std::unique_ptr<FrameSource>> openSource(const std::string& spec, const SourceOptions& opt) {
  if (spec.empty()) return makeError(StatusCode::kInvalidArgument, "empty source");
  std::error_code ec;
  const bool url = spec.find("://") != std::string::npos;
  if (!url && !fs::is_directory(spec, ec) && (isVideoFileName(spec) || isRawStreamName(spec)) && !fs::exists(spec, ec))
    return makeError(StatusCode::kNotFound, "source '", spec, "' does not exist");
  if (endsWithAny(spec, {".y4m"})) {
    auto s = std::make_unique<Y4mSource>();
    RJ_RETURN_IF_ERROR(s->open(spec, opt.max_frames));
    return std::unique_ptr<FrameSource>(std::move(s));
  }
  if (endsWithAny(spec, {".rgb", ".bgr"})) {
    auto s = std::make_unique<RgbSource>();
    RJ_RETURN_IF_ERROR(s->open(spec, opt));
    return std::unique_ptr<FrameSource>(std::move(s));
  }
  if (needsFfmpeg(spec)) return openFfmpegSource(spec, opt);
  RJ_ASSIGN_OR_RETURN(auto paths, expandImageSources(spec));
  return std::unique_ptr<FrameSource>(new ImageListSource(spec, std::move(paths), opt.max_frames));
}

Result<std::unique_ptr<FrameSink>> openSink(const std::string& path, double fps) {
  if (path.empty()) return makeError(StatusCode::kInvalidArgument, "empty output path");
  if (endsWithAny(path, {".y4m"})) return std::unique_ptr<FrameSink>(new Y4mSink(path, fps));
  if (endsWithAny(path, {".mp4", ".mkv", ".avi", ".mov", ".m4v"})) return openFfmpegSink(path, fps);
  std::error_code ec;
  fs::create_directories(path, ec);
  if (!fs::is_directory(path, ec))
    return makeError(StatusCode::kIoError, "cannot create output folder '", path, "'");
  return std::unique_ptr<FrameSink>(new PngFolderSink(path));
}

Status ffmpegAvailable() { return ffmpegLoad(); }

}  // namespace ramjet::video
