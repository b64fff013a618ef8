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
  Precision precision = Precision::kFP32;  // FP16: half weights/activations (CUDA builds)
  // INT8 builds of ONNX models: calibration images (a folder, pre-processed exactly like frames:
  // letterbox, scaling), how many of them (sorted by name), the calibrator, and an optional
  // accuracy budget measured as detection agreement with FP32 (docs/PRECISION.md).
  std::string calib_data;
  int calib_images = 64;
  std::string calib_method = "percentile";
  double accuracy_budget = 0;
  int accuracy_samples = 8;
  int max_batch = 1;         // frames per engine call; > 1 builds a dynamic-batch plan 1..max_batch
  bool gpu_pipeline = true;  // CUDA engines: pre/post-processing on the GPU when it is registered
};

struct StageTimes {
  double pre_ms = 0, infer_ms = 0, post_ms = 0;
};

// Pre-processing + inference + decode + NMS on a device, batch at a time: the CUDA one lives
// in ramjet_cuda (gpu_pipeline.cc) and registers its factory, so the core needs no CUDA.
class DevicePipeline {
 public:
  virtual ~DevicePipeline() = default;
  // frames.size() in 1..max batch; one list of boxes (frame coordinates) per frame.
  virtual Result<std::vector<std::vector<Detection>>> run(const std::vector<const Image*>& frames,
                                                          StageTimes* times) = 0;
  virtual const char* name() const = 0;
};

struct DevicePipelineConfig {
  Engine* engine = nullptr;
  ExecutionContext* ctx = nullptr;
  std::string input_name, output_name;
  int max_batch = 1;
  PreprocessOptions pre;
  YoloFormat format = YoloFormat::kV8;
  DecodeOptions decode;
  NmsOptions nms;
};
using DevicePipelineFactory = Result<std::unique_ptr<DevicePipeline>> (*)(const DevicePipelineConfig&);
// Factory for engines on `device` (kCuda); the Detector uses it when set.
void setDevicePipelineFactory(DeviceKind device, DevicePipelineFactory factory);

class Detector {
 public:
  // Loads a .plan, or imports + builds an ONNX model (reusing a cached plan when it is newer).
  static Result<std::unique_ptr<Detector>> open(const std::string& model_path, const DetectorOptions& opt);

  Result<std::vector<Detection>> detect(const Image& frame, StageTimes* times = nullptr);
  // Up to maxBatch() frames in one engine call; one list per frame.
  Result<std::vector<std::vector<Detection>>> detectBatch(const std::vector<const Image*>& frames,
                                                          StageTimes* times = nullptr);
  int maxBatch() const { return max_batch_; }
  // "gpu" when pre/post-processing run on the device, else "cpu".
  const char* pipelineName() const { return device_pipe_ ? device_pipe_->name() : "cpu"; }

  int inputWidth() const { return pre_.width; }
  int inputHeight() const { return pre_.height; }
  YoloFormat format() const { return format_; }
  int numClasses() const { return num_classes_; }
  const std::string& outputName() const { return output_name_; }
  const std::string& planPath() const { return plan_path_; }  // empty when built in memory
  bool planWasCached() const { return plan_cached_; }
  // Class names from the model's metadata ("names", as ultralytics writes it), if any.
  const std::vector<std::string>& names() const { return names_; }
  // INT8 builds with an accuracy budget: what the search kept FP16 and the losses (else empty).
  const std::string& accuracyBudgetReport() const { return accuracy_budget_report_; }

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
  std::string accuracy_budget_report_;
  int max_batch_ = 1;
  std::unique_ptr<DevicePipeline> device_pipe_;
};

// Parses ultralytics' metadata value "{0: 'person', 1: 'bicycle'}" (or a JSON list/object).
std::vector<std::string> parseNamesMetadata(const std::string& value);

}  // namespace ramjet::vision
