// Frame sources and sinks for the detection pipeline (issue #8).
//
// Sources: an image file, a folder of images, a glob, a raw stream (.y4m, or .rgb/.bgr with
// --source-size), a video file, a camera (/dev/videoN) or a stream URL. Images and raw streams
// need nothing beyond the core; video containers, cameras and URLs go through FFmpeg's
// libraries, which are loaded with dlopen on first use (ffmpeg.cc): `ramjet` has no link-time
// libav* dependency and runs where FFmpeg is absent (the GPU machine), failing only when a
// video is asked for, with an error that says what is missing.
//
// Sinks: a folder of PNGs, a .y4m stream (no FFmpeg), or an .mp4/.mkv/.avi file through FFmpeg
// (H.264 when an encoder for it exists, else MPEG-4 part 2).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ramjet/status.h"
#include "vision/image.h"

namespace ramjet::video {

struct Frame {
  vision::Image image;  // RGB
  int64_t index = 0;    // 0, 1, 2, ... in source order
  double time_s = 0;    // presentation time (images: index / fps)
  std::string name;     // image path, or "<source>#<index>"
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // Fills `f` and returns true; false at the end of the source.
  virtual Result<bool> next(Frame* f) = 0;
  virtual std::string describe() const = 0;  // "video clip.mp4 (h264 640x384 @ 15 fps)"
  virtual double fps() const { return 0; }   // 0 when unknown (image lists)
  virtual bool isVideo() const { return false; }
  virtual int64_t frameCountHint() const { return -1; }  // -1: unknown
};

struct SourceOptions {
  int raw_width = 0, raw_height = 0;  // .rgb/.bgr raw streams: frame size (required for them)
  double raw_fps = 30;
  int64_t max_frames = -1;            // stop after this many (-1: all)
};

// True for names that need FFmpeg: video containers, /dev/video*, URLs (scheme://).
bool needsFfmpeg(const std::string& spec);
bool isVideoFileName(const std::string& path);  // .mp4 .mkv .avi .mov .webm .m4v .ts .flv
bool isRawStreamName(const std::string& path);  // .y4m .rgb .bgr

// Expands an image file, a folder (its images, sorted) or a glob pattern into image paths.
Result<std::vector<std::string>> expandImageSources(const std::string& spec);

Result<std::unique_ptr<FrameSource>> openSource(const std::string& spec, const SourceOptions& opt = {});

class FrameSink {
 public:
  virtual ~FrameSink() = default;
  // `name` names per-frame files for folder sinks (stem of the source image).
  virtual Status write(const vision::Image& frame, const std::string& name) = 0;
  virtual Status close() = 0;  // flushes (encoder delay, trailer); idempotent
  virtual std::string describe() const = 0;
};

// `path` ending in .mp4/.mkv/.avi/.mov -> video (FFmpeg), .y4m -> raw YUV4MPEG2, else a folder
// of PNGs. Video sinks take their size from the first frame; all frames must share it.
Result<std::unique_ptr<FrameSink>> openSink(const std::string& path, double fps);

// FFmpeg through dlopen: Ok when libavformat/libavcodec/libswscale/libavutil of the major
// versions this build was compiled against load and resolve; otherwise the reason.
Status ffmpegAvailable();

}  // namespace ramjet::video
