// The FFmpeg adapter (ffmpeg.cc): loaded with dlopen on first use.
#pragma once

#include "video/video.h"

namespace ramjet::video {

Status ffmpegLoad();
Result<std::unique_ptr<FrameSource>> openFfmpegSource(const std::string& spec, const SourceOptions& opt);
Result<std::unique_ptr<FrameSink>> openFfmpegSink(const std::string& path, double fps);

}  // namespace ramjet::video
