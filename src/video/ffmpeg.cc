// FFmpeg adapter loaded with dlopen: compiled against Debian's headers (for struct layouts and
// constants), resolved at run time from the libraries of the same major versions. Nothing here
// is a link-time dependency, so `ldd ramjet` shows no libav*.
#include "video/ffmpeg.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#if __has_include(<libavformat/avformat.h>) && __has_include(<libswscale/swscale.h>)
#define RAMJET_FFMPEG_HEADERS 1
extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}
#endif

namespace ramjet::video {

#ifndef RAMJET_FFMPEG_HEADERS

Status ffmpegLoad() {
  return makeError(StatusCode::kUnsupported,
                   "video input needs FFmpeg, and this ramjet was built without its headers "
                   "(install libavformat-dev libavcodec-dev libswscale-dev libavutil-dev and rebuild)");
}
Result<std::unique_ptr<FrameSource>> openFfmpegSource(const std::string&, const SourceOptions&) {
  RJ_RETURN_IF_ERROR(ffmpegLoad());
  return makeError(StatusCode::kInternal, "unreachable");
}
Result<std::unique_ptr<FrameSink>> openFfmpegSink(const std::string&, double) {
  RJ_RETURN_IF_ERROR(ffmpegLoad());
  return makeError(StatusCode::kInternal, "unreachable");
}

#else

namespace {

#define RJ_STR2(x) #x
#define RJ_STR(x) RJ_STR2(x)

// The function table: one pointer per FFmpeg function used, typed from the headers.
struct Av {
#define RJ_AV_FN(name) decltype(&::name) name = nullptr;
#define RJ_AV_FUNCS(X)                                                                                  \
  X(av_frame_alloc) X(av_frame_free) X(av_frame_get_buffer) X(av_strerror) X(av_log_set_level)          \
  X(av_opt_set) X(av_dict_set) X(av_dict_free)                                                          \
  X(avcodec_find_decoder) X(avcodec_find_encoder) X(avcodec_alloc_context3) X(avcodec_free_context)     \
  X(avcodec_parameters_to_context) X(avcodec_parameters_from_context) X(avcodec_open2)                  \
  X(avcodec_send_packet) X(avcodec_receive_frame) X(avcodec_send_frame) X(avcodec_receive_packet)       \
  X(av_packet_alloc) X(av_packet_free) X(av_packet_unref) X(av_packet_rescale_ts) X(avcodec_get_name)   \
  X(avformat_open_input) X(avformat_find_stream_info) X(av_find_best_stream) X(av_read_frame)           \
  X(avformat_close_input) X(avformat_alloc_output_context2) X(avformat_new_stream) X(avio_open)         \
  X(avio_closep) X(avformat_write_header) X(av_interleaved_write_frame) X(av_write_trailer)             \
  X(avformat_free_context) X(av_find_input_format) X(avformat_network_init)                             \
  X(sws_getContext) X(sws_scale) X(sws_freeContext)
  RJ_AV_FUNCS(RJ_AV_FN)
  void (*avdevice_register_all)() = nullptr;  // optional (cameras); libavdevice-dev not needed
};

Av g_av;
Status g_load_status = Status::Ok();
std::once_flag g_once;

const char* kLibs[] = {"libavutil.so." RJ_STR(LIBAVUTIL_VERSION_MAJOR), "libswscale.so." RJ_STR(LIBSWSCALE_VERSION_MAJOR),
                       "libavcodec.so." RJ_STR(LIBAVCODEC_VERSION_MAJOR),
                       "libavformat.so." RJ_STR(LIBAVFORMAT_VERSION_MAJOR)};

Status loadOnce() {
  if (const char* off = std::getenv("RAMJET_NO_FFMPEG"); off && *off && *off != '0')
    return makeError(StatusCode::kUnsupported,
                     "video input needs FFmpeg (" + std::string(kLibs[3]) + "), disabled by RAMJET_NO_FFMPEG; "
                     "use a folder of images or a .y4m/.rgb raw stream instead");
  std::vector<void*> handles;
  for (const char* lib : kLibs) {
    void* h = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
      const char* err = dlerror();
      return makeError(StatusCode::kUnsupported, "video input needs FFmpeg (", lib,
                       " and its siblings libavcodec/libswscale/libavutil of the same major versions), which is not "
                       "installed here: ",
                       err ? err : "dlopen failed",
                       " (Debian: apt-get install libavformat59 libavcodec59 libswscale6; or pass a folder of images "
                       "or a .y4m/.rgb raw stream)");
    }
    handles.push_back(h);
  }
  auto find = [&](const char* name) -> void* {
    for (void* h : handles)
      if (void* p = dlsym(h, name)) return p;
    return nullptr;
  };
  std::string missing;
#define RJ_AV_RESOLVE(name)                                            \
  g_av.name = reinterpret_cast<decltype(g_av.name)>(find(#name));      \
  if (!g_av.name) missing += std::string(missing.empty() ? "" : ", ") + #name;
  RJ_AV_FUNCS(RJ_AV_RESOLVE)
  if (!missing.empty())
    return makeError(StatusCode::kUnsupported, "FFmpeg libraries loaded but lack ", missing,
                     " (a different FFmpeg build than the headers ramjet was compiled against)");
  if (void* h = dlopen("libavdevice.so." RJ_STR(LIBAVFORMAT_VERSION_MAJOR), RTLD_NOW | RTLD_GLOBAL))
    g_av.avdevice_register_all = reinterpret_cast<void (*)()>(dlsym(h, "avdevice_register_all"));
  g_av.av_log_set_level(AV_LOG_FATAL);  // errors come back as Status messages
  g_av.avformat_network_init();
  if (g_av.avdevice_register_all) g_av.avdevice_register_all();
  return Status::Ok();
}

std::string avErr(int e) {
  char buf[256] = {0};
  if (g_av.av_strerror(e, buf, sizeof buf) < 0) std::snprintf(buf, sizeof buf, "error %d", e);
  return buf;
}

class FfmpegSource final : public FrameSource {
 public:
  ~FfmpegSource() override {
    if (sws_) g_av.sws_freeContext(sws_);
    if (frame_) g_av.av_frame_free(&frame_);
    if (pkt_) g_av.av_packet_free(&pkt_);
    if (dec_) g_av.avcodec_free_context(&dec_);
    if (fmt_) g_av.avformat_close_input(&fmt_);
  }

  Status open(const std::string& spec, const SourceOptions& opt) {
    spec_ = spec;
    max_frames_ = opt.max_frames;
    const AVInputFormat* ifmt = nullptr;
    camera_ = spec.rfind("/dev/video", 0) == 0;
    if (camera_) {
      ifmt = g_av.av_find_input_format("v4l2");
      if (!ifmt)
        return makeError(StatusCode::kUnsupported, "camera '", spec,
                         "': FFmpeg's v4l2 input is unavailable (libavdevice." RJ_STR(LIBAVFORMAT_VERSION_MAJOR)
                         " missing)");
    }
    int r = g_av.avformat_open_input(&fmt_, spec.c_str(), ifmt, nullptr);
    if (r < 0) return makeError(StatusCode::kIoError, "cannot open video '", spec, "': ", avErr(r));
    r = g_av.avformat_find_stream_info(fmt_, nullptr);
    if (r < 0) return makeError(StatusCode::kInvalidArgument, "video '", spec, "': no stream information: ", avErr(r));
    const AVCodec* codec = nullptr;
    stream_ = g_av.av_find_best_stream(fmt_, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (stream_ < 0 || !codec)
      return makeError(StatusCode::kInvalidArgument, "video '", spec, "' has no decodable video stream: ", avErr(stream_));
    AVStream* st = fmt_->streams[stream_];
    dec_ = g_av.avcodec_alloc_context3(codec);
    if (!dec_) return makeError(StatusCode::kOutOfMemory, "video '", spec, "': cannot allocate a decoder");
    r = g_av.avcodec_parameters_to_context(dec_, st->codecpar);
    if (r >= 0) r = g_av.avcodec_open2(dec_, codec, nullptr);
    if (r < 0) return makeError(StatusCode::kInvalidArgument, "video '", spec, "': cannot open the ", codec->name, " decoder: ", avErr(r));
    if (dec_->width <= 0 || dec_->height <= 0 || dec_->width > vision::kMaxImageSide ||
        dec_->height > vision::kMaxImageSide)
      return makeError(StatusCode::kInvalidArgument, "video '", spec, "': frame size ", dec_->width, "x", dec_->height,
                       " is outside 1..", vision::kMaxImageSide);
    time_base_ = av_q2d(st->time_base);
    AVRational fr = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
    fps_ = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
    count_ = st->nb_frames > 0 ? st->nb_frames : -1;
    codec_name_ = codec->name;
    pkt_ = g_av.av_packet_alloc();
    frame_ = g_av.av_frame_alloc();
    if (!pkt_ || !frame_) return makeError(StatusCode::kOutOfMemory, "video '", spec, "': cannot allocate frames");
    return Status::Ok();
  }

  Result<bool> next(Frame* f) override {
    if (max_frames_ >= 0 && index_ >= max_frames_) return false;
    while (true) {
      int r = g_av.avcodec_receive_frame(dec_, frame_);
      if (r == 0) {
        RJ_RETURN_IF_ERROR(convert(f));
        return true;
      }
      if (r == AVERROR_EOF) return false;
      if (r != AVERROR(EAGAIN))
        return makeError(StatusCode::kInvalidArgument, "video '", spec_, "': decoding frame ", index_, " failed: ", avErr(r));
      if (flushing_) return false;
      r = g_av.av_read_frame(fmt_, pkt_);
      if (r == AVERROR_EOF) {
        flushing_ = true;
        g_av.avcodec_send_packet(dec_, nullptr);  // drain the decoder
        continue;
      }
      if (r < 0) return makeError(StatusCode::kIoError, "video '", spec_, "': reading after frame ", index_, " failed: ", avErr(r));
      if (pkt_->stream_index == stream_) {
        r = g_av.avcodec_send_packet(dec_, pkt_);
        if (r < 0 && r != AVERROR(EAGAIN)) {
          g_av.av_packet_unref(pkt_);
          return makeError(StatusCode::kInvalidArgument, "video '", spec_, "': corrupt data near frame ", index_, ": ",
                           avErr(r));
        }
      }
      g_av.av_packet_unref(pkt_);
    }
  }

  std::string describe() const override {
    char buf[160];
    std::snprintf(buf, sizeof buf, " (%s %dx%d @ %.3g fps)", codec_name_.c_str(), dec_ ? dec_->width : 0,
                  dec_ ? dec_->height : 0, fps_);
    return std::string(camera_ ? "camera " : spec_.find("://") != std::string::npos ? "stream " : "video ") + spec_ + buf;
  }
  double fps() const override { return fps_; }
  bool isVideo() const override { return true; }
  int64_t frameCountHint() const override { return count_; }

 private:
  Status convert(Frame* f) {
    const int w = frame_->width, h = frame_->height;
    if (w <= 0 || h <= 0 || w > vision::kMaxImageSide || h > vision::kMaxImageSide)
      return makeError(StatusCode::kInvalidArgument, "video '", spec_, "': frame ", index_, " has size ", w, "x", h);
    if (!sws_ || w != sws_w_ || h != sws_h_ || frame_->format != sws_fmt_) {
      if (sws_) g_av.sws_freeContext(sws_);
      sws_ = g_av.sws_getContext(w, h, AVPixelFormat(frame_->format), w, h, AV_PIX_FMT_RGB24, SWS_BILINEAR, nullptr,
                                 nullptr, nullptr);
      if (!sws_) return makeError(StatusCode::kUnsupported, "video '", spec_, "': cannot convert pixel format ", frame_->format, " to RGB");
      sws_w_ = w, sws_h_ = h, sws_fmt_ = frame_->format;
    }
    if (f->image.width != w || f->image.height != h) f->image = vision::Image(w, h);
    uint8_t* dst[4] = {f->image.pixels.data(), nullptr, nullptr, nullptr};
    int dst_ls[4] = {w * 3, 0, 0, 0};
    g_av.sws_scale(sws_, frame_->data, frame_->linesize, 0, h, dst, dst_ls);
    int64_t pts = frame_->best_effort_timestamp;
    f->index = index_;
    f->time_s = pts != AV_NOPTS_VALUE ? pts * time_base_ : (fps_ > 0 ? index_ / fps_ : 0);
    f->name = spec_ + "#" + std::to_string(index_);
    ++index_;
    return Status::Ok();
  }

  std::string spec_, codec_name_;
  AVFormatContext* fmt_ = nullptr;
  AVCodecContext* dec_ = nullptr;
  AVPacket* pkt_ = nullptr;
  AVFrame* frame_ = nullptr;
  SwsContext* sws_ = nullptr;
  int sws_w_ = 0, sws_h_ = 0, sws_fmt_ = -1;
  int stream_ = -1;
  bool camera_ = false, flushing_ = false;
  double time_base_ = 0, fps_ = 0;
  int64_t index_ = 0, count_ = -1, max_frames_ = -1;
};

class FfmpegSink final : public FrameSink {
 public:
  ~FfmpegSink() override {
    (void)close();
    if (sws_) g_av.sws_freeContext(sws_);
    if (frame_) g_av.av_frame_free(&frame_);
    if (pkt_) g_av.av_packet_free(&pkt_);
    if (enc_) g_av.avcodec_free_context(&enc_);
    if (fmt_) {
      if (fmt_->pb && opened_io_) g_av.avio_closep(&fmt_->pb);
      g_av.avformat_free_context(fmt_);
    }
  }
  Status init(const std::string& path, double fps) {
    path_ = path;
    fps_ = fps > 0 && fps < 1000 ? fps : 30;
    return Status::Ok();
  }
  std::string describe() const override { return "video " + path_ + " (" + codec_name_ + ")"; }

  Status write(const vision::Image& img, const std::string&) override {
    if (closed_) return makeError(StatusCode::kInvalidArgument, "video '", path_, "' is already closed");
    if (!enc_) RJ_RETURN_IF_ERROR(start(img.width, img.height));
    if (img.width != in_w_ || img.height != in_h_)
      return makeError(StatusCode::kInvalidArgument, "video '", path_, "': frame ", count_, " is ", img.width, "x",
                       img.height, ", the video is ", in_w_, "x", in_h_);
    int r = allocFrame();
    if (r < 0) return makeError(StatusCode::kIoError, "video '", path_, "': frame buffer: ", avErr(r));
    const uint8_t* src[4] = {img.pixels.data(), nullptr, nullptr, nullptr};
    int src_ls[4] = {img.width * 3, 0, 0, 0};
    g_av.sws_scale(sws_, src, src_ls, 0, img.height, frame_->data, frame_->linesize);
    frame_->pts = count_++;
    return encode(frame_);
  }

  Status close() override {
    if (closed_ || !enc_) {
      closed_ = true;
      return Status::Ok();
    }
    closed_ = true;
    RJ_RETURN_IF_ERROR(encode(nullptr));
    int r = g_av.av_write_trailer(fmt_);
    if (r < 0) return makeError(StatusCode::kIoError, "video '", path_, "': writing the trailer failed: ", avErr(r));
    if (fmt_->pb && opened_io_) g_av.avio_closep(&fmt_->pb);
    opened_io_ = false;
    return Status::Ok();
  }

 private:
  // A fresh frame buffer per write: the encoder may still reference the previous one.
  int allocFrame() {
    if (frame_) g_av.av_frame_free(&frame_);
    frame_ = g_av.av_frame_alloc();
    if (!frame_) return AVERROR(ENOMEM);
    frame_->format = enc_->pix_fmt;
    frame_->width = enc_->width;
    frame_->height = enc_->height;
    return g_av.av_frame_get_buffer(frame_, 0);
  }

  Status start(int w, int h) {
    in_w_ = w, in_h_ = h;
    int r = g_av.avformat_alloc_output_context2(&fmt_, nullptr, nullptr, path_.c_str());
    if (r < 0 || !fmt_) return makeError(StatusCode::kInvalidArgument, "video '", path_, "': no container for this name: ", avErr(r));
    const AVCodec* codec = g_av.avcodec_find_encoder(AV_CODEC_ID_H264);
    if (codec) {
      enc_ = g_av.avcodec_alloc_context3(codec);
      if (!configure(codec, w, h)) {
        g_av.avcodec_free_context(&enc_);
        codec = nullptr;
      }
    }
    if (!codec) {
      codec = g_av.avcodec_find_encoder(AV_CODEC_ID_MPEG4);
      if (!codec) return makeError(StatusCode::kUnsupported, "video '", path_, "': FFmpeg has neither an H.264 nor an MPEG-4 encoder");
      enc_ = g_av.avcodec_alloc_context3(codec);
      if (!configure(codec, w, h)) return makeError(StatusCode::kUnsupported, "video '", path_, "': cannot open the ", codec->name, " encoder");
    }
    codec_name_ = codec->name;
    AVStream* st = g_av.avformat_new_stream(fmt_, nullptr);
    if (!st) return makeError(StatusCode::kOutOfMemory, "video '", path_, "': cannot add a stream");
    st->time_base = enc_->time_base;
    r = g_av.avcodec_parameters_from_context(st->codecpar, enc_);
    if (r < 0) return makeError(StatusCode::kInternal, "video '", path_, "': ", avErr(r));
    if (!(fmt_->oformat->flags & AVFMT_NOFILE)) {
      r = g_av.avio_open(&fmt_->pb, path_.c_str(), AVIO_FLAG_WRITE);
      if (r < 0) return makeError(StatusCode::kIoError, "cannot write video '", path_, "': ", avErr(r));
      opened_io_ = true;
    }
    r = g_av.avformat_write_header(fmt_, nullptr);
    if (r < 0) return makeError(StatusCode::kIoError, "video '", path_, "': writing the header failed: ", avErr(r));
    stream_tb_ = st->time_base;
    sws_ = g_av.sws_getContext(w, h, AV_PIX_FMT_RGB24, enc_->width, enc_->height, enc_->pix_fmt, SWS_BILINEAR, nullptr,
                               nullptr, nullptr);
    pkt_ = g_av.av_packet_alloc();
    frame_ = g_av.av_frame_alloc();
    if (!sws_ || !pkt_ || !frame_) return makeError(StatusCode::kOutOfMemory, "video '", path_, "': cannot set up the encoder");
    return Status::Ok();
  }

  bool configure(const AVCodec* codec, int w, int h) {
    if (!enc_) return false;
    // 4:2:0 needs even sizes: the last odd row/column is dropped by the scaler.
    enc_->width = std::max(2, w & ~1);
    enc_->height = std::max(2, h & ~1);
    enc_->pix_fmt = AV_PIX_FMT_YUV420P;
    int fps_num = int(std::lround(fps_ * 1000));
    enc_->time_base = AVRational{1000, fps_num};
    enc_->framerate = AVRational{fps_num, 1000};
    enc_->gop_size = 30;
    enc_->max_b_frames = 0;
    if (codec->id == AV_CODEC_ID_MPEG4) enc_->bit_rate = int64_t(enc_->width) * enc_->height * 4;
    if (fmt_->oformat->flags & AVFMT_GLOBALHEADER) enc_->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    AVDictionary* d = nullptr;
    if (std::strcmp(codec->name, "libx264") == 0) {
      g_av.av_dict_set(&d, "preset", "veryfast", 0);
      g_av.av_dict_set(&d, "crf", "23", 0);
    }
    int r = g_av.avcodec_open2(enc_, codec, &d);
    g_av.av_dict_free(&d);
    return r >= 0;
  }

  Status encode(AVFrame* f) {
    int r = g_av.avcodec_send_frame(enc_, f);
    if (r < 0 && r != AVERROR_EOF)
      return makeError(StatusCode::kIoError, "video '", path_, "': encoding frame ", count_, " failed: ", avErr(r));
    while (true) {
      r = g_av.avcodec_receive_packet(enc_, pkt_);
      if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return Status::Ok();
      if (r < 0) return makeError(StatusCode::kIoError, "video '", path_, "': encoder failed: ", avErr(r));
      g_av.av_packet_rescale_ts(pkt_, enc_->time_base, stream_tb_);
      pkt_->stream_index = 0;
      r = g_av.av_interleaved_write_frame(fmt_, pkt_);
      if (r < 0) return makeError(StatusCode::kIoError, "video '", path_, "': writing a packet failed: ", avErr(r));
    }
  }

  std::string path_, codec_name_ = "not started";
  double fps_ = 30;
  AVFormatContext* fmt_ = nullptr;
  AVCodecContext* enc_ = nullptr;
  AVFrame* frame_ = nullptr;
  AVPacket* pkt_ = nullptr;
  SwsContext* sws_ = nullptr;
  AVRational stream_tb_{1, 1000};
  int in_w_ = 0, in_h_ = 0;
  int64_t count_ = 0;
  bool closed_ = false, opened_io_ = false;
};

}  // namespace

Status ffmpegLoad() {
  std::call_once(g_once, [] { g_load_status = loadOnce(); });
  return g_load_status;
}

Result<std::unique_ptr<FrameSource>> openFfmpegSource(const std::string& spec, const SourceOptions& opt) {
  RJ_RETURN_IF_ERROR(ffmpegLoad().withContext("source '" + spec + "'"));
  auto s = std::make_unique<FfmpegSource>();
  RJ_RETURN_IF_ERROR(s->open(spec, opt));
  return std::unique_ptr<FrameSource>(std::move(s));
}

Result<std::unique_ptr<FrameSink>> openFfmpegSink(const std::string& path, double fps) {
  RJ_RETURN_IF_ERROR(ffmpegLoad().withContext("output '" + path + "'"));
  auto s = std::make_unique<FfmpegSink>();
  RJ_RETURN_IF_ERROR(s->init(path, fps));
  return std::unique_ptr<FrameSink>(std::move(s));
}

#endif  // RAMJET_FFMPEG_HEADERS

}  // namespace ramjet::video
