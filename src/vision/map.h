// COCO-style detection metrics: AP at IoU 0.50:0.05:0.95 with 101-point interpolated precision,
// per class, computed the way pycocotools' COCOeval does for bbox, area "all", maxDets 100.
#pragma once

#include <string>
#include <vector>

#include "ramjet/status.h"
#include "ramjet/engine.h"
#include "vision/decode.h"

namespace ramjet::vision {

struct GroundTruth {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int cls = 0;
};

// One evaluated image: its ground truth and the detector's boxes (frame coordinates).
struct EvalImage {
  std::string path;
  int width = 0, height = 0;
  int64_t id = 0;  // COCO image id (YOLO txt: the index in the folder listing)
  std::vector<GroundTruth> truth;
  std::vector<Detection> detections;
};

// A labelled image set. Class i is names[i] (names may be shorter than the classes present).
struct Dataset {
  std::vector<EvalImage> images;
  std::vector<std::string> names;
  // COCO JSON only: category id of class i (class indices are the sorted category ids' ranks).
  std::vector<int64_t> category_ids;
};

// Images of a folder (sorted by name) with YOLO txt labels "<labels_dir>/<stem>.txt"
// ("class cx cy w h", normalized). A missing label file means an image without objects.
Result<Dataset> loadYoloDataset(const std::string& images_dir, const std::string& labels_dir);
// COCO JSON ("images", "annotations" with bbox [x,y,w,h], "categories"); each listed image is
// looked up as images_dir/file_name, then images_dir/basename(file_name).
// With `need_files` false (evaluating saved detections), listed images need not exist when the
// JSON gives their width and height.
Result<Dataset> loadCocoDataset(const std::string& images_dir, const std::string& json_path,
                                bool need_files = true);
// Reads detections in COCO results format ([{"image_id", "category_id", "bbox", "score"}]) into
// `ds` (image ids and category ids as in the dataset's COCO JSON).
Status loadCocoDetections(const std::string& json_path, const std::string& labels_json, Dataset* ds);

constexpr int kNumIouThresholds = 10;  // 0.50, 0.55, ..., 0.95
constexpr int kNumRecallPoints = 101;  // 0.00, 0.01, ..., 1.00

struct ClassAp {
  int cls = 0;
  int num_truth = 0, num_detections = 0;
  double ap[kNumIouThresholds] = {};  // per IoU threshold
  double ap50 = 0, ap50_95 = 0;
  double max_recall50 = 0;            // recall at IoU 0.5 with every detection counted
  std::vector<double> precision50;    // interpolated precision at the 101 recall points, IoU 0.5
};

struct EvalResult {
  double map50 = 0, map50_95 = 0;  // means over classes that have ground truth
  std::vector<ClassAp> classes;    // classes with ground truth, ascending class index
  int num_images = 0, num_truth = 0, num_detections = 0;
};

struct EvalOptions {
  int max_detections = 100;  // per image and class, like COCOeval's maxDets[-1]
};

// Fails when no image has ground truth (AP would be undefined).
Result<EvalResult> evaluate(const std::vector<EvalImage>& images, const EvalOptions& opt = {});

// How far a reduced-precision detector's outputs are from FP32's, as a loss for the INT8
// accuracy budget (BuildOptions::accuracy_loss): the FP32 detections (score >= ref_conf, NMS)
// are the ground truth, the candidate's detections (score >= 0.001, NMS) are scored against
// them, and the loss is 1 - mAP@0.5 (0 when they agree). got/ref: per batch, the engine's
// outputs; the first output shaped like a YOLO detector's is used. Batches without any FP32
// detection are skipped; a loss of 0 is returned when no batch has one.
Result<double> detectionAgreementLoss(const std::vector<std::vector<Tensor>>& got,
                                      const std::vector<std::vector<Tensor>>& ref, float ref_conf = 0.25f,
                                      float nms_iou = 0.6f);
// Makes an INT8 build's accuracy budget measure detection agreement (the loss above) under the
// name "custom:detection-map50", so the decision can be cached.
void useDetectionAccuracyMetric(BuildOptions* opt);

}  // namespace ramjet::vision
