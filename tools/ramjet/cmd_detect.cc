// `ramjet detect --model m.onnx|m.plan --source image|folder|glob`: YOLO detection on images,
// annotated PNGs + JSON lines + per-stage timing (issue #8, CPU pipeline).
#include <glob.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "vision/detector.h"
#include "vision/draw.h"

namespace ramjet::cli {

void registerBackends();  // cmd_build.cc

namespace fs = std::filesystem;

namespace {

bool isVideoName(const std::string& p) {
  for (const char* ext : {".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".ts"})
    if (p.size() > strlen(ext) && p.compare(p.size() - strlen(ext), strlen(ext), ext) == 0) return true;
  return p.rfind("/dev/video", 0) == 0 || p.find("://") != std::string::npos;
}

}  // namespace

// Expands an image file, a folder (its images, sorted) or a glob pattern.
Result<std::vector<std::string>> expandSources(const std::string& src) {
  std::error_code ec;
  std::vector<std::string> out;
  if (isVideoName(src))
    return makeError(StatusCode::kUnsupported, "source '", src,
                     "': video files, cameras and streams need the FFmpeg adapter, which this build lacks; "
                     "extract frames into a folder and pass the folder");
  if (fs::is_directory(src, ec)) {
    for (auto it = fs::directory_iterator(src, ec); !ec && it != fs::directory_iterator(); it.increment(ec))
      if (it->is_regular_file() && vision::hasImageExtension(it->path().string())) out.push_back(it->path().string());
    std::sort(out.begin(), out.end());
    if (out.empty()) return makeError(StatusCode::kNotFound, "source folder '", src, "' has no .jpg/.png/.bmp images");
    return out;
  }
  if (src.find_first_of("*?[") != std::string::npos) {
    glob_t g{};
    int rc = ::glob(src.c_str(), 0, nullptr, &g);
    for (size_t i = 0; rc == 0 && i < g.gl_pathc; ++i)
      if (vision::hasImageExtension(g.gl_pathv[i])) out.push_back(g.gl_pathv[i]);
    globfree(&g);
    if (out.empty()) return makeError(StatusCode::kNotFound, "source pattern '", src, "' matches no image files");
    return out;
  }
  if (!fs::exists(src, ec)) return makeError(StatusCode::kNotFound, "source '", src, "' does not exist");
  out.push_back(src);
  return out;
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

void addDetectCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::string model, source, output, json, names, device = "cpu", format = "auto";
    float conf = 0.25f, iou = 0.45f;
    std::vector<int> classes;
    int imgsz = 0, max_det = 300;
    bool show_fps = false, agnostic = false, no_cache = false, quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("detect", "Detect objects with a YOLO model on images (annotated PNGs, JSON lines, FPS)");
  cmd->add_option("--model", o->model, "detector: ONNX (a plan is built and cached beside it) or .plan")->required();
  cmd->add_option("--source", o->source, "image file, folder of images, or glob pattern ('frames/*.png')")->required();
  cmd->add_option("--output", o->output, "folder for annotated PNGs (one per frame)");
  cmd->add_option("--json", o->json, "JSON lines file: one line per frame with its boxes");
  cmd->add_option("--conf", o->conf, "confidence threshold (default 0.25)");
  cmd->add_option("--iou", o->iou, "NMS IoU threshold (default 0.45)");
  cmd->add_option("--classes", o->classes, "keep only these class ids (e.g. 0,2)")->delimiter(',');
  cmd->add_option("--names", o->names, "class names file, one per line (default: the model's metadata)");
  cmd->add_option("--imgsz", o->imgsz, "network input size (default: the model's)");
  cmd->add_option("--device", o->device, "cpu (default) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--format", o->format, "output format: auto (default), v5, v8, v11, v10/e2e");
  cmd->add_option("--max-det", o->max_det, "most boxes per image (default 300)");
  cmd->add_flag("--agnostic-nms", o->agnostic, "NMS across classes");
  cmd->add_flag("--show-fps", o->show_fps, "draw the running FPS into each annotated frame");
  cmd->add_flag("--no-plan-cache", o->no_cache, "build in memory; do not write or reuse a cached plan");
  cmd->add_flag("-q,--quiet", o->quiet, "only the summary");
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const Status& s) {
        std::cerr << "error: " << s.message() << "\n";
        return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
      };
      using Clock = std::chrono::steady_clock;
      auto ms = [](Clock::time_point a) { return std::chrono::duration<double, std::milli>(Clock::now() - a).count(); };
      Status st = checkThresholds(o->conf, o->iou);
      if (st.ok()) st = checkClasses(o->classes);
      if (st.ok() && (o->imgsz < 0 || o->imgsz > 8192 || (o->imgsz % 32) != 0))
        st = makeError(StatusCode::kInvalidArgument, "--imgsz ", o->imgsz, " must be a multiple of 32 in 32..8192");
      if (!st.ok()) return fail(st);
      auto fmt = vision::parseYoloFormat(o->format);
      if (!fmt.ok()) return fail(fmt.status());
      auto sources = expandSources(o->source);
      if (!sources.ok()) return fail(sources.status());
      std::vector<std::string> names;
      if (!o->names.empty()) {
        auto n = readNamesFile(o->names);
        if (!n.ok()) return fail(n.status());
        names = *n;
      }
      if (!o->output.empty()) {
        std::error_code ec;
        fs::create_directories(o->output, ec);
        if (!fs::is_directory(o->output, ec))
          return fail(makeError(StatusCode::kIoError, "cannot create output folder '", o->output, "'"));
      }
      std::ofstream jl;
      if (!o->json.empty()) {
        jl.open(o->json);
        if (!jl) return fail(makeError(StatusCode::kIoError, "cannot write JSON lines file '", o->json, "'"));
      }
      registerBackends();
      StderrLogger logger(Severity::kWarning);
      vision::DetectorOptions dopt;
      dopt.device = o->device == "cuda" ? DeviceKind::kCuda : DeviceKind::kCpu;
      dopt.imgsz = o->imgsz;
      dopt.cache_plan = !o->no_cache;
      dopt.format = *fmt;
      dopt.decode.conf_threshold = o->conf;
      dopt.decode.classes = o->classes;
      dopt.nms.iou_threshold = o->iou;
      dopt.nms.agnostic = o->agnostic;
      dopt.nms.max_detections = o->max_det;
      dopt.logger = &logger;
      auto t_open = Clock::now();
      auto det = vision::Detector::open(o->model, dopt);
      if (!det.ok()) return fail(det.status());
      double open_ms = ms(t_open);
      if (names.empty()) names = (*det)->names();
      if (!o->quiet)
        std::cout << "model " << o->model << ": " << vision::yoloFormatName((*det)->format()) << " output '"
                  << (*det)->outputName() << "', input " << (*det)->inputWidth() << "x" << (*det)->inputHeight()
                  << ", " << o->device << ", "
                  << ((*det)->planPath().empty() ? std::string("plan built in memory")
                                                  : ((*det)->planWasCached() ? "plan loaded from " : "plan built and cached at ") +
                                                        (*det)->planPath())
                  << " (" << open_ms << " ms)\n";
      double t_dec = 0, t_pre = 0, t_inf = 0, t_post = 0, t_enc = 0;
      size_t frames = 0, boxes = 0;
      auto t_start = Clock::now();
      for (size_t i = 0; i < sources->size(); ++i) {
        const std::string& path = (*sources)[i];
        auto t0 = Clock::now();
        auto img = vision::loadImage(path);
        if (!img.ok()) return fail(img.status());
        double dec = ms(t0);
        vision::StageTimes tm;
        auto dets = (*det)->detect(*img, &tm);
        if (!dets.ok()) return fail(dets.status().withContext("frame '" + path + "'"));
        t0 = Clock::now();
        double frame_ms = dec + tm.pre_ms + tm.infer_ms + tm.post_ms;
        if (!o->output.empty()) {
          vision::DrawOptions dro;
          if (o->show_fps) dro.fps = 1000.0 * (frames + 1) / (t_dec + t_pre + t_inf + t_post + frame_ms);
          vision::drawDetections(&*img, *dets, names, dro);
          std::string out = (fs::path(o->output) / (fs::path(path).stem().string() + ".png")).string();
          Status s = vision::savePng(out, *img);
          if (!s.ok()) return fail(s);
        }
        if (jl.is_open()) {
          nlohmann::json line;
          line["frame"] = i;
          line["source"] = path;
          line["time_s"] = std::chrono::duration<double>(Clock::now() - t_start).count();
          line["width"] = img->width;
          line["height"] = img->height;
          auto arr = nlohmann::json::array();
          for (const auto& d : *dets)
            arr.push_back({{"box", {d.x1, d.y1, d.x2, d.y2}},
                           {"class", d.cls},
                           {"name", d.cls >= 0 && size_t(d.cls) < names.size() ? names[d.cls] : std::to_string(d.cls)},
                           {"score", d.score}});
          line["boxes"] = arr;
          line["ms"] = {{"decode", dec}, {"pre", tm.pre_ms}, {"infer", tm.infer_ms}, {"post", tm.post_ms}};
          jl << line.dump() << "\n";
        }
        double enc = ms(t0);
        t_dec += dec, t_pre += tm.pre_ms, t_inf += tm.infer_ms, t_post += tm.post_ms, t_enc += enc;
        ++frames;
        boxes += dets->size();
        if (!o->quiet) {
          std::printf("%s: %zu boxes (%dx%d) decode %.1f pre %.1f infer %.1f post %.1f encode %.1f ms\n", path.c_str(),
                      dets->size(), img->width, img->height, dec, tm.pre_ms, tm.infer_ms, tm.post_ms, enc);
          std::fflush(stdout);
        }
      }
      double wall = ms(t_start);
      double n = double(frames);
      std::printf("%zu frames, %zu boxes; mean ms/frame: decode %.2f, pre %.2f, infer %.2f, post %.2f, encode %.2f\n",
                  frames, boxes, t_dec / n, t_pre / n, t_inf / n, t_post / n, t_enc / n);
      std::printf("FPS: %.2f end to end (%.0f ms wall), %.2f pre+infer+post\n", 1000.0 * n / wall, wall,
                  1000.0 * n / (t_pre + t_inf + t_post));
      if (!o->output.empty()) std::printf("annotated frames in %s\n", o->output.c_str());
      if (!o->json.empty()) std::printf("JSON lines in %s\n", o->json.c_str());
      return 0;
    };
  });
}

}  // namespace ramjet::cli
