// `ramjet eval --model m --images DIR --labels DIR|coco.json`: COCO-style mAP@0.5 and
// mAP@0.5:0.95, per-class AP, precision/recall curves as a PNG (issue #8).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "precision_common.h"
#ifdef RAMJET_HAVE_CUDA
#include "vision/gpu_pipeline.h"
#endif
#include "vision/detector.h"
#include "vision/map.h"
#include "vision/pr_curve.h"

namespace ramjet::cli {

void registerBackends();                                                  // cmd_build.cc
Result<std::vector<std::string>> readNamesFile(const std::string& path);  // cmd_detect.cc
Status checkThresholds(float conf, float iou);                            // cmd_detect.cc

namespace fs = std::filesystem;

void addEvalCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::string model, images, labels, names, device = "cpu", format = "auto", pr_png, detections, save_dets,
        precision = "fp32";
    float conf = 0.001f, iou = 0.6f;
    int imgsz = 0, max_det = 300, batch = 1;
    bool json = false, no_cache = false, cpu_post = false;
    DetectInt8Flags int8;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("eval", "Accuracy of a YOLO model: COCO-style mAP@0.5, mAP@0.5:0.95, per-class AP");
  cmd->add_option("--model", o->model, "detector: ONNX or .plan");
  cmd->add_option("--detections", o->detections,
                  "evaluate saved detections (COCO results JSON) instead of running a model (needs COCO labels)");
  cmd->add_option("--images", o->images, "folder of images")->required();
  cmd->add_option("--labels", o->labels, "YOLO txt labels folder, or a COCO JSON file")->required();
  cmd->add_option("--conf", o->conf, "confidence threshold (default 0.001)");
  cmd->add_option("--iou", o->iou, "NMS IoU threshold (default 0.6)");
  cmd->add_option("--max-det", o->max_det, "most boxes per image after NMS (default 300; AP counts 100 per class)");
  cmd->add_option("--names", o->names, "class names file, one per line");
  cmd->add_option("--imgsz", o->imgsz, "network input size (default: the model's)");
  cmd->add_option("--device", o->device, "cpu (default) or cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", o->precision, "fp32 (default), fp16 (CUDA), or int8 (with --calib-data)")
      ->check(CLI::IsMember({"fp32", "fp16", "int8"}));
  o->int8.add(cmd);
  cmd->add_flag_function("--fp16", [o](int64_t) { o->precision = "fp16"; }, "same as --precision fp16");
  cmd->add_option("--batch", o->batch, "images per engine call (dynamic-batch plan 1..N; default 1)")
      ->check(CLI::Range(1, 256));
  cmd->add_flag("--cpu-post", o->cpu_post, "CUDA engines: pre/post-processing on the CPU instead of the GPU");
  cmd->add_option("--format", o->format, "output format: auto (default), v5, v8, v11, v10/e2e");
  cmd->add_option("--pr-png", o->pr_png, "write precision/recall curves (IoU 0.5, per class + mean) to this PNG");
  cmd->add_option("--save-detections", o->save_dets, "write the model's detections as COCO results JSON");
  cmd->add_flag("--json", o->json, "print the result as JSON instead of a table");
  cmd->add_flag("--no-plan-cache", o->no_cache, "build in memory; do not write or reuse a cached plan");
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const Status& s) {
        std::cerr << "error: " << s.message() << "\n";
        return s.code() == StatusCode::kInvalidArgument ? 2 : 1;
      };
      Status st = checkThresholds(o->conf, o->iou);
      if (!st.ok()) return fail(st);
      if (o->model.empty() == o->detections.empty())
        return fail(makeError(StatusCode::kInvalidArgument, "give exactly one of --model and --detections"));
      auto fmt = vision::parseYoloFormat(o->format);
      if (!fmt.ok()) return fail(fmt.status());
      std::error_code ec;
      bool coco = !fs::is_directory(o->labels, ec);
      if (!o->detections.empty() && !coco)
        return fail(makeError(StatusCode::kInvalidArgument, "--detections needs COCO JSON --labels (ids must match)"));
      auto ds = coco ? vision::loadCocoDataset(o->images, o->labels, o->detections.empty())
                     : vision::loadYoloDataset(o->images, o->labels);
      if (!ds.ok()) return fail(ds.status());
      std::vector<std::string> names = ds->names;
      if (!o->names.empty()) {
        auto n = readNamesFile(o->names);
        if (!n.ok()) return fail(n.status());
        names = *n;
      }
      double infer_ms = 0;
      if (!o->detections.empty()) {
        Status s = vision::loadCocoDetections(o->detections, o->labels, &*ds);
        if (!s.ok()) return fail(s);
      } else {
        registerBackends();
#ifdef RAMJET_HAVE_CUDA
        vision::registerGpuPipeline();
#endif
        StderrLogger logger(Severity::kWarning);
        vision::DetectorOptions dopt;
        dopt.device = o->device == "cuda" ? DeviceKind::kCuda : DeviceKind::kCpu;
        dopt.imgsz = o->imgsz;
        dopt.precision = o->precision == "fp16" ? Precision::kFP16 : o->precision == "int8" ? Precision::kINT8 : Precision::kFP32;
        dopt.max_batch = o->batch;
        dopt.gpu_pipeline = !o->cpu_post;
        dopt.cache_plan = !o->no_cache;
        dopt.format = *fmt;
        dopt.decode.conf_threshold = o->conf;
        dopt.nms.iou_threshold = o->iou;
        dopt.nms.max_detections = o->max_det;
        dopt.logger = &logger;
        {
          std::string ierr;
          if (!o->int8.apply(o->precision, &dopt, &ierr)) return fail(Status(StatusCode::kInvalidArgument, ierr));
        }
        auto det = vision::Detector::open(o->model, dopt);
        if (!det.ok()) return fail(det.status());
        if (!(*det)->accuracyBudgetReport().empty()) std::cerr << (*det)->accuracyBudgetReport();
        if (names.empty()) names = (*det)->names();
        const size_t B = size_t((*det)->maxBatch());
        for (size_t i0 = 0; i0 < ds->images.size(); i0 += B) {
          const size_t n = std::min(B, ds->images.size() - i0);
          std::vector<vision::Image> imgs;
          for (size_t i = i0; i < i0 + n; ++i) {
            auto img = vision::loadImage(ds->images[i].path);
            if (!img.ok()) return fail(img.status());
            imgs.push_back(std::move(*img));
          }
          std::vector<const vision::Image*> ptrs;
          for (auto& im : imgs) ptrs.push_back(&im);
          vision::StageTimes tm;
          auto d = (*det)->detectBatch(ptrs, &tm);
          if (!d.ok()) return fail(d.status().withContext("image '" + ds->images[i0].path + "'"));
          for (size_t i = 0; i < n; ++i) ds->images[i0 + i].detections = std::move((*d)[i]);
          infer_ms += tm.pre_ms + tm.infer_ms + tm.post_ms;
        }
      }
      if (!o->save_dets.empty()) {
        auto arr = nlohmann::json::array();
        for (const auto& im : ds->images)
          for (const auto& d : im.detections) {
            int64_t cat = size_t(d.cls) < ds->category_ids.size() ? ds->category_ids[d.cls] : d.cls;
            arr.push_back({{"image_id", im.id},
                           {"category_id", cat},
                           {"bbox", {double(d.x1), double(d.y1), double(d.x2) - d.x1, double(d.y2) - d.y1}},
                           {"score", double(d.score)}});
          }
        std::ofstream f(o->save_dets);
        f << arr.dump() << "\n";
        if (!f) return fail(makeError(StatusCode::kIoError, "cannot write '", o->save_dets, "'"));
      }
      auto r = vision::evaluate(ds->images);
      if (!r.ok()) return fail(r.status());
      auto nameOf = [&](int c) { return size_t(c) < names.size() ? names[c] : std::to_string(c); };
      if (o->json) {
        nlohmann::json j;
        j["images"] = r->num_images;
        j["instances"] = r->num_truth;
        j["detections"] = r->num_detections;
        j["map50"] = r->map50;
        j["map50_95"] = r->map50_95;
        auto cls = nlohmann::json::array();
        for (const auto& c : r->classes)
          cls.push_back({{"class", c.cls}, {"name", nameOf(c.cls)}, {"instances", c.num_truth},
                         {"detections", c.num_detections}, {"ap50", c.ap50}, {"ap50_95", c.ap50_95},
                         {"recall50", c.max_recall50}});
        j["classes"] = cls;
        if (infer_ms > 0) j["ms_per_image"] = infer_ms / r->num_images;
        std::cout << j.dump(2) << "\n";
      } else {
        std::printf("%-20s %8s %10s %10s %9s %9s %9s\n", "class", "images", "instances", "dets", "recall50", "AP50",
                    "AP50-95");
        std::printf("%-20s %8d %10d %10d %9s %9.4f %9.4f\n", "all", r->num_images, r->num_truth, r->num_detections, "",
                    r->map50, r->map50_95);
        for (const auto& c : r->classes)
          std::printf("%-20s %8s %10d %10d %9.4f %9.4f %9.4f\n", nameOf(c.cls).c_str(), "", c.num_truth,
                      c.num_detections, c.max_recall50, c.ap50, c.ap50_95);
        std::printf("mAP@0.5 %.4f  mAP@0.5:0.95 %.4f  (COCO 101-point, %zu classes with ground truth)\n", r->map50,
                    r->map50_95, r->classes.size());
        if (infer_ms > 0) std::printf("pre+infer+post: %.2f ms per image\n", infer_ms / r->num_images);
      }
      if (!o->pr_png.empty()) {
        std::vector<vision::Curve> curves;
        vision::Curve mean;
        mean.bold = true;
        for (int i = 0; i < vision::kNumRecallPoints; ++i) {
          mean.x.push_back(i / 100.0);
          mean.y.push_back(0);
        }
        for (const auto& c : r->classes) {
          vision::Curve cv;
          char buf[64];
          std::snprintf(buf, sizeof buf, " %.3f", c.ap50);
          cv.label = nameOf(c.cls) + buf;
          for (int i = 0; i < vision::kNumRecallPoints; ++i) {
            cv.x.push_back(i / 100.0);
            cv.y.push_back(c.precision50[i]);
            mean.y[i] += c.precision50[i] / r->classes.size();
          }
          curves.push_back(std::move(cv));
        }
        char buf[64];
        std::snprintf(buf, sizeof buf, "all classes %.3f mAP@0.5", r->map50);
        mean.label = buf;
        curves.insert(curves.begin(), std::move(mean));
        vision::PlotOptions po;
        po.title = "Precision-Recall (IoU 0.5)";
        Status s = vision::writeCurvesPng(o->pr_png, curves, po);
        if (!s.ok()) return fail(s);
        if (!o->json) std::printf("PR curves in %s\n", o->pr_png.c_str());
      }
      return 0;
    };
  });
}

}  // namespace ramjet::cli
