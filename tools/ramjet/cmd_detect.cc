// `ramjet detect --model m.onnx|m.plan --source SRC [SRC...]`: YOLO detection on images,
// folders, globs, raw streams (.y4m/.rgb), video files, cameras and stream URLs (issue #8).
//
// Three stages overlap, joined by bounded queues: a decode thread reads frames (several
// sources are interleaved into one batch), the main thread runs pre-processing + inference +
// decode + NMS (on the GPU for CUDA engines), and a render thread draws boxes and writes the
// annotated video/PNGs and JSON lines. Per-stage times are reported per run and per frame.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "commands.h"
#include "precision_common.h"
#include "video/video.h"
#include "vision/detector.h"
#include "vision/draw.h"
#ifdef RAMJET_HAVE_CUDA
#include "vision/gpu_pipeline.h"
#endif

namespace ramjet::cli {

void registerBackends();  // cmd_build.cc

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// Expands an image file, a folder (its images, sorted) or a glob pattern (used by `eval`).
Result<std::vector<std::string>> expandSources(const std::string& src) {
  if (video::needsFfmpeg(src) || video::isRawStreamName(src))
    return makeError(StatusCode::kUnsupported, "source '", src,
                     "' is a video; this command takes images (a file, a folder or a glob)");
  return video::expandImageSources(src);
}

Result<std::vector<std::string>> readNamesFile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return makeError(StatusCode::kNotFound, "names file '", path, "': cannot open");
  std::vector<std::string> names;
  std::string line;
  while (std::getline(f, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    names.push_back(line);
  }
  while (!names.empty() && names.back().empty()) names.pop_back();
  if (names.empty()) return makeError(StatusCode::kInvalidArgument, "names file '", path, "' is empty");
  return names;
}

// Parses "--classes 0,2" style lists (CLI11 already splits on commas into ints).
Status checkClasses(const std::vector<int>& classes) {
  for (int c : classes)
    if (c < 0) return makeError(StatusCode::kInvalidArgument, "--classes: class ", c, " is negative");
  return Status::Ok();
}

Status checkThresholds(float conf, float iou) {
  if (!(conf >= 0 && conf <= 1)) return makeError(StatusCode::kInvalidArgument, "--conf ", conf, " is outside [0, 1]");
  if (!(iou > 0 && iou <= 1)) return makeError(StatusCode::kInvalidArgument, "--iou ", iou, " is outside (0, 1]");
  return Status::Ok();
}

namespace {

double msSince(Clock::time_point a) { return std::chrono::duration<double, std::milli>(Clock::now() - a).count(); }

// A bounded FIFO between two threads; close() wakes everyone, pop() then drains and returns
// nullopt.
template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t cap) : cap_(cap) {}
  bool push(T v) {
    std::unique_lock<std::mutex> l(m_);
    not_full_.wait(l, [&] { return q_.size() < cap_ || closed_; });
    if (closed_) return false;
    q_.push_back(std::move(v));
    not_empty_.notify_one();
    return true;
  }
  std::optional<T> pop() {
    std::unique_lock<std::mutex> l(m_);
    not_empty_.wait(l, [&] { return !q_.empty() || closed_; });
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return v;
  }
  void close() {
    std::lock_guard<std::mutex> l(m_);
    closed_ = true;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

 private:
  size_t cap_;
  std::deque<T> q_;
  bool closed_ = false;
  std::mutex m_;
  std::condition_variable not_empty_, not_full_;
};

struct Batch {
  std::vector<video::Frame> frames;
  std::vector<int> source;  // source index per frame
  double decode_ms = 0;
  vision::StageTimes t;
  std::vector<std::vector<vision::Detection>> dets;
};

struct Totals {
  double decode = 0, pre = 0, infer = 0, post = 0, encode = 0;
  size_t frames = 0, boxes = 0, batches = 0;
};

// "out.mp4" for one source; "out_0.mp4", "out_1.mp4" (or out/0, out/1 folders) for several.
std::string sinkPath(const std::string& out, size_t k, size_t n) {
  if (n == 1) return out;
  fs::path p(out);
  if (p.has_extension() && (video::isVideoFileName(out) || video::isRawStreamName(out)))
    return (p.parent_path() / (p.stem().string() + "_" + std::to_string(k) + p.extension().string())).string();
  return (p / std::to_string(k)).string();
}

}  // namespace

void addDetectCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::vector<std::string> sources;
    std::string model, output, json, names, device = "cpu", format = "auto", precision = "fp32", source_size;
    float conf = 0.25f, iou = 0.45f;
    std::vector<int> classes;
    int imgsz = 0, max_det = 300, batch = 1, queue = 4;
    int64_t max_frames = -1;
    double fps_out = 0;
    bool show_fps = false, agnostic = false, no_cache = false, quiet = false, cpu_post = false;
    DetectInt8Flags int8;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand(
      "detect", "Detect objects with a YOLO model on images, video files, cameras or streams (annotated output, JSON lines, FPS)");
  cmd->add_option("--model", o->model, "detector: ONNX (a plan is built and cached beside it) or .plan")->required();
  cmd->add_option("--source", o->sources,
                  "image, folder, glob ('frames/*.png'), .y4m/.rgb raw stream, video file, /dev/videoN or URL; "
                  "several sources are batched together")
      ->required()
      ->expected(1, 64);
  cmd->add_option("--output", o->output,
                  "annotated output: a .mp4/.mkv/.avi video (FFmpeg), a .y4m stream, or a folder of PNGs");
  cmd->add_option("--json", o->json, "JSON lines file: one line per frame with its boxes and stage times, then a summary");
  cmd->add_option("--conf", o->conf, "confidence threshold (default 0.25)");
  cmd->add_option("--iou", o->iou, "NMS IoU threshold (default 0.45)");
  cmd->add_option("--classes", o->classes, "keep only these class ids (e.g. 0,2)")->delimiter(',');
  cmd->add_option("--names", o->names, "class names file, one per line (default: the model's metadata)");
  cmd->add_option("--imgsz", o->imgsz, "network input size (default: the model's)");
  cmd->add_option("--device", o->device, "cpu (default) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", o->precision, "fp32 (default), fp16 (CUDA), or int8 (with --calib-data)")
      ->check(CLI::IsMember({"fp32", "fp16", "int8"}));
  o->int8.add(cmd);
  cmd->add_flag_function("--fp16", [o](int64_t) { o->precision = "fp16"; }, "same as --precision fp16");
  cmd->add_option("--batch", o->batch, "frames per engine call (builds a dynamic-batch plan 1..N; default 1)");
  cmd->add_option("--format", o->format, "output format: auto (default), v5, v8, v11, v10/e2e");
  cmd->add_option("--max-det", o->max_det, "most boxes per image (default 300)");
  cmd->add_option("--max-frames", o->max_frames, "stop after this many frames per source");
  cmd->add_option("--source-size", o->source_size, "frame size WxH of .rgb/.bgr raw sources");
  cmd->add_option("--fps", o->fps_out, "frame rate of the output video (default: the source's, else 30)");
  cmd->add_option("--queue", o->queue, "batches in flight between stages (default 4)");
  cmd->add_flag("--agnostic-nms", o->agnostic, "NMS across classes");
  cmd->add_flag("--show-fps", o->show_fps, "draw the running FPS into each annotated frame");
  cmd->add_flag("--cpu-post", o->cpu_post, "CUDA engines: pre/post-processing on the CPU instead of the GPU");
  cmd->add_flag("--no-plan-cache", o->no_cache, "build in memory; do not write or reuse a cached plan");
  cmd->add_flag("-q,--quiet", o->quiet, "only the summary");
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const Status& s) {
        std::cerr << "error: " << s.message() << "\n";
        return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
      };
      Status st = checkThresholds(o->conf, o->iou);
      if (st.ok()) st = checkClasses(o->classes);
      if (st.ok() && (o->imgsz < 0 || o->imgsz > 8192 || (o->imgsz % 32) != 0))
        st = makeError(StatusCode::kInvalidArgument, "--imgsz ", o->imgsz, " must be a multiple of 32 in 32..8192");
      if (st.ok() && (o->batch < 1 || o->batch > 256))
        st = makeError(StatusCode::kInvalidArgument, "--batch ", o->batch, " is outside 1..256");
      if (st.ok() && (o->queue < 1 || o->queue > 64))
        st = makeError(StatusCode::kInvalidArgument, "--queue ", o->queue, " is outside 1..64");
      if (st.ok() && o->max_det < 1) st = makeError(StatusCode::kInvalidArgument, "--max-det ", o->max_det, " must be >= 1");
      if (st.ok() && !(o->fps_out >= 0 && o->fps_out <= 1000))
        st = makeError(StatusCode::kInvalidArgument, "--fps ", o->fps_out, " is outside 0..1000");
      video::SourceOptions so;
      so.max_frames = o->max_frames;
      if (st.ok() && !o->source_size.empty()) {
        int w = 0, h = 0;
        char x = 0;
        if (std::sscanf(o->source_size.c_str(), "%d%c%d", &w, &x, &h) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0)
          st = makeError(StatusCode::kInvalidArgument, "--source-size '", o->source_size, "' is not WxH (e.g. 640x384)");
        so.raw_width = w, so.raw_height = h;
      }
      if (!st.ok()) return fail(st);
      auto fmt = vision::parseYoloFormat(o->format);
      if (!fmt.ok()) return fail(fmt.status());
      // Sources first: a missing file or FFmpeg fails before a model is built.
      std::vector<std::unique_ptr<video::FrameSource>> sources;
      for (const auto& s : o->sources) {
        auto src = video::openSource(s, so);
        if (!src.ok()) return fail(src.status());
        sources.push_back(std::move(*src));
      }
      std::vector<std::string> names;
      if (!o->names.empty()) {
        auto n = readNamesFile(o->names);
        if (!n.ok()) return fail(n.status());
        names = *n;
      }
      std::vector<std::unique_ptr<video::FrameSink>> sinks;
      if (!o->output.empty()) {
        for (size_t k = 0; k < sources.size(); ++k) {
          double fps = o->fps_out > 0 ? o->fps_out : sources[k]->fps() > 0 ? sources[k]->fps() : 30;
          auto sink = video::openSink(sinkPath(o->output, k, sources.size()), fps);
          if (!sink.ok()) return fail(sink.status());
          sinks.push_back(std::move(*sink));
        }
      }
      std::ofstream jl;
      if (!o->json.empty()) {
        jl.open(o->json);
        if (!jl) return fail(makeError(StatusCode::kIoError, "cannot write JSON lines file '", o->json, "'"));
      }
      registerBackends();
#ifdef RAMJET_HAVE_CUDA
      vision::registerGpuPipeline();
#endif
      StderrLogger logger(Severity::kWarning);
      vision::DetectorOptions dopt;
      dopt.device = o->device == "cuda" ? DeviceKind::kCuda : DeviceKind::kCpu;
      dopt.precision = o->precision == "fp16" ? Precision::kFP16 : o->precision == "int8" ? Precision::kINT8 : Precision::kFP32;
      dopt.max_batch = o->batch;
      dopt.gpu_pipeline = !o->cpu_post;
      dopt.imgsz = o->imgsz;
      dopt.cache_plan = !o->no_cache;
      dopt.format = *fmt;
      dopt.decode.conf_threshold = o->conf;
      dopt.decode.classes = o->classes;
      dopt.nms.iou_threshold = o->iou;
      dopt.nms.agnostic = o->agnostic;
      dopt.nms.max_detections = o->max_det;
      dopt.logger = &logger;
      {
        std::string ierr;
        if (!o->int8.apply(o->precision, &dopt, &ierr)) return fail(Status(StatusCode::kInvalidArgument, ierr));
      }
      auto t_open = Clock::now();
      auto det = vision::Detector::open(o->model, dopt);
      if (!det.ok()) return fail(det.status());
      if (!(*det)->accuracyBudgetReport().empty()) std::cerr << (*det)->accuracyBudgetReport();
      double open_ms = msSince(t_open);
      vision::Detector& D = **det;
      if (names.empty()) names = D.names();
      if (!o->quiet) {
        std::cout << "model " << o->model << ": " << vision::yoloFormatName(D.format()) << " output '" << D.outputName()
                  << "', input " << D.inputWidth() << "x" << D.inputHeight() << ", " << o->device << " " << o->precision
                  << ", batch " << D.maxBatch() << ", " << D.pipelineName() << " pre/post-processing, "
                  << (D.planPath().empty() ? std::string("plan built in memory")
                                           : (D.planWasCached() ? "plan loaded from " : "plan built and cached at ") +
                                                 D.planPath())
                  << " (" << open_ms << " ms)\n";
        for (const auto& s : sources) std::cout << "source: " << s->describe() << "\n";
        for (const auto& s : sinks) std::cout << "output: " << s->describe() << "\n";
        std::cout.flush();
      }

      const int B = D.maxBatch();
      BoundedQueue<Batch> decoded(size_t(o->queue)), inferred(size_t(o->queue));
      std::mutex err_m;
      Status first_error = Status::Ok();
      auto setError = [&](Status s) {
        std::lock_guard<std::mutex> l(err_m);
        if (first_error.ok()) first_error = std::move(s);
        decoded.close();
        inferred.close();
      };
      Totals tot;
      auto t_start = Clock::now();

      // Stage 1: decode. Sources are read round-robin, so several cameras/videos share a batch.
      std::thread decoder([&] {
        std::vector<bool> done(sources.size(), false);
        size_t live = sources.size(), k = 0;
        while (live > 0) {
          Batch b;
          auto t0 = Clock::now();
          while (int(b.frames.size()) < B && live > 0) {
            if (done[k]) {
              k = (k + 1) % sources.size();
              continue;
            }
            video::Frame f;
            auto r = sources[k]->next(&f);
            if (!r.ok()) return setError(r.status());
            if (!*r) {
              done[k] = true;
              --live;
            } else {
              b.frames.push_back(std::move(f));
              b.source.push_back(int(k));
            }
            k = (k + 1) % sources.size();
          }
          b.decode_ms = msSince(t0);
          if (b.frames.empty()) break;
          if (!decoded.push(std::move(b))) return;
        }
        decoded.close();
      });

      // Stage 3: render + encode + JSON lines.
      std::thread renderer([&] {
        while (auto b = inferred.pop()) {
          auto t0 = Clock::now();
          const size_t n = b->frames.size();
          for (size_t i = 0; i < n; ++i) {
            video::Frame& f = b->frames[i];
            const auto& dets = b->dets[i];
            tot.boxes += dets.size();
            if (jl.is_open()) {
              nlohmann::json line;
              line["frame"] = f.index;
              line["source"] = f.name;
              if (sources.size() > 1) line["source_index"] = b->source[i];
              line["time_s"] = sources[b->source[i]]->isVideo() ? f.time_s : std::chrono::duration<double>(Clock::now() - t_start).count();
              line["width"] = f.image.width;
              line["height"] = f.image.height;
              auto arr = nlohmann::json::array();
              for (const auto& d : dets)
                arr.push_back({{"box", {d.x1, d.y1, d.x2, d.y2}},
                               {"class", d.cls},
                               {"name", d.cls >= 0 && size_t(d.cls) < names.size() ? names[d.cls] : std::to_string(d.cls)},
                               {"score", d.score}});
              line["boxes"] = arr;
              // Per-frame shares of the batch's stage times.
              line["ms"] = {{"decode", b->decode_ms / n}, {"pre", b->t.pre_ms / n}, {"infer", b->t.infer_ms / n},
                            {"post", b->t.post_ms / n}};
              line["batch"] = n;
              jl << line.dump() << "\n";
            }
            if (!sinks.empty()) {
              vision::DrawOptions dro;
              if (o->show_fps) {
                double el = msSince(t_start);
                dro.fps = el > 0 ? 1000.0 * double(tot.frames + i + 1) / el : 0;
              }
              vision::drawDetections(&f.image, dets, names, dro);
              Status s = sinks[b->source[i]]->write(f.image, f.name);
              if (!s.ok()) return setError(s);
            }
            if (!o->quiet) {
              std::printf("%s: %zu boxes (%dx%d)\n", f.name.c_str(), dets.size(), f.image.width, f.image.height);
            }
          }
          double enc = msSince(t0);
          tot.decode += b->decode_ms, tot.pre += b->t.pre_ms, tot.infer += b->t.infer_ms, tot.post += b->t.post_ms;
          tot.encode += enc;
          tot.frames += n;
          tot.batches += 1;
          if (!o->quiet) {
            std::printf("  batch of %zu: decode %.2f pre %.2f infer %.2f post %.2f encode %.2f ms\n", n, b->decode_ms,
                        b->t.pre_ms, b->t.infer_ms, b->t.post_ms, enc);
            std::fflush(stdout);
          }
        }
      });

      // Stage 2 (this thread): pre-processing + inference + decode + NMS.
      while (auto b = decoded.pop()) {
        std::vector<const vision::Image*> imgs;
        for (const auto& f : b->frames) imgs.push_back(&f.image);
        auto r = D.detectBatch(imgs, &b->t);
        if (!r.ok()) {
          setError(r.status().withContext("frame '" + b->frames[0].name + "'"));
          break;
        }
        b->dets = std::move(*r);
        if (!inferred.push(std::move(*b))) break;
      }
      decoded.close();
      decoder.join();
      inferred.close();
      renderer.join();
      for (auto& s : sinks) {
        Status cs = s->close();
        if (!cs.ok() && first_error.ok()) first_error = cs;
      }
      if (!first_error.ok()) return fail(first_error);
      double wall = msSince(t_start);
      double n = double(std::max<size_t>(tot.frames, 1));
      double ppi = tot.pre + tot.infer + tot.post;
      std::printf("%zu frames in %zu batches (batch %d), %zu boxes; mean ms/frame: decode %.2f, pre %.2f, infer %.2f, "
                  "post %.2f, encode %.2f\n",
                  tot.frames, tot.batches, B, tot.boxes, tot.decode / n, tot.pre / n, tot.infer / n, tot.post / n,
                  tot.encode / n);
      std::printf("FPS: %.2f end to end (%.0f ms wall, stages overlapped), %.2f pre+infer+post (%.3f ms/frame, %s)\n",
                  1000.0 * tot.frames / std::max(wall, 1e-9), wall, ppi > 0 ? 1000.0 * tot.frames / ppi : 0.0, ppi / n,
                  D.pipelineName());
      if (!o->output.empty()) std::printf("annotated output in %s\n", o->output.c_str());
      if (jl.is_open()) {
        nlohmann::json s;
        s["summary"] = {{"frames", tot.frames},
                        {"batches", tot.batches},
                        {"batch", B},
                        {"boxes", tot.boxes},
                        {"device", o->device},
                        {"precision", o->precision},
                        {"pipeline", D.pipelineName()},
                        {"wall_ms", wall},
                        {"fps", 1000.0 * tot.frames / std::max(wall, 1e-9)},
                        {"fps_pre_infer_post", ppi > 0 ? 1000.0 * tot.frames / ppi : 0.0},
                        {"ms_per_frame",
                         {{"decode", tot.decode / n},
                          {"pre", tot.pre / n},
                          {"infer", tot.infer / n},
                          {"post", tot.post / n},
                          {"encode", tot.encode / n}}}};
        jl << s.dump() << "\n";
        std::printf("JSON lines in %s\n", o->json.c_str());
      }
      return 0;
    };
  });
}

}  // namespace ramjet::cli
