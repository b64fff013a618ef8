// A YOLO detector on the public engine API: model (ONNX or plan) -> engine, then
// frame -> preprocess -> infer -> decode -> NMS -> boxes in frame coordinates.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ramjet/engine.h"
#include "vision/decode.h"
#include "vision/image.h"
#include "vision/nms.h"
#include "vision/preprocess.h"

namespace ramjet::vision {

struct DetectorOptions {
  DeviceKind device = DeviceKind::kCpu;
  int imgsz = 0;             // network input side; 0: the model's own (640 when it has none)
  bool cache_plan = true;    // ONNX models: build once, keep "<model>.<device>-<size>.plan" beside it
  YoloFormat format = YoloFormat::kAuto;
  DecodeOptions decode;      // conf threshold, class filter (format is taken from `format`)
  NmsOptions nms;
  PreprocessOptions pre;     // mean/std/bgr; size is set from the engine
  Logger* logger = nullptr;
};

struct StageTimes {
  double pre_ms = 0, infer_ms = 0, post_ms = 0;
};

class Detector {
 public:
  // Loads a .plan, or imports + builds an ONNX model (reusing a cached plan when it is newer).
  static Result<std::unique_ptr<Detector>> open(const std::string& model_path, const DetectorOptions& opt);

  Result<std::vector<Detection>> detect(const Image& frame, StageTimes* times = nullptr);

  int inputWidth() const { return pre_.width; }
  int inputHeight() const { return pre_.height; }
  YoloFormat format() const { return format_; }
  int numClasses() const { return num_classes_; }
  const std::string& outputName() const { return output_name_; }
  const std::string& planPath() const { return plan_path_; }  // empty when built in memory
  bool planWasCached() const { return plan_cached_; }
  // Class names from the model's metadata ("names", as ultralytics writes it), if any.
  const std::vector<std::string>& names() const { return names_; }

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<ExecutionContext> ctx_;
  DetectorOptions opt_;
  PreprocessOptions pre_;
  std::string input_name_, output_name_, plan_path_;
  size_t output_index_ = 0;
  YoloFormat format_ = YoloFormat::kAuto;
  int num_classes_ = 0;
  bool plan_cached_ = false;
  std::vector<std::string> names_;
};

// Parses ultralytics' metadata value "{0: 'person', 1: 'bicycle'}" (or a JSON list/object).
std::vector<std::string> parseNamesMetadata(const std::string& value);

}  // namespace ramjet::vision
