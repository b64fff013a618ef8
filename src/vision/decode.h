// YOLO output decoders: raw network output -> candidate boxes in network-input pixels.
#pragma once

#include <string>
#include <vector>

#include "ramjet/status.h"
#include "ramjet/tensor.h"

namespace ramjet::vision {

struct Detection {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // corners, x2/y2 exclusive
  float score = 0;
  int cls = 0;
};

enum class YoloFormat {
  kAuto,
  kV5,   // [N, A, 5 + C]: cx, cy, w, h, objectness, C class probabilities (anchors applied in-graph)
  kV8,   // [N, 4 + C, A]: cx, cy, w, h, C class scores (anchor-free; also YOLOv11)
  kE2E,  // [N, K, 6]: x1, y1, x2, y2, score, class (NMS-free, YOLOv10-style)
};
const char* yoloFormatName(YoloFormat f);  // "auto", "v5", "v8", "e2e"
Result<YoloFormat> parseYoloFormat(const std::string& s);

// Guesses the format from the output dims; `name` labels errors. Rules, in order:
//   rank 3 with last dim 6 and K >= 6  -> e2e (a 1-class v5 output looks the same: override)
//   rank 3 with dims[1] < dims[2]       -> v8 (channels 4 + C >= 5, anchors more than channels)
//   rank 3 with dims[2] >= 6            -> v5
// Anything else is not a detector's output.
Result<YoloFormat> detectYoloFormat(const std::vector<int64_t>& dims, const std::string& name);

struct DecodeOptions {
  YoloFormat format = YoloFormat::kAuto;
  float conf_threshold = 0.25f;
  std::vector<int> classes;  // keep only these classes (empty: all)
  // Pre-NMS cap per image (highest scores kept), like ultralytics' max_nms.
  int max_candidates = 30000;
};

struct DecodeResult {
  YoloFormat format = YoloFormat::kAuto;  // the format used
  int num_classes = 0;
  std::vector<std::vector<Detection>> per_image;  // N lists, boxes in input pixels
};

// Decodes a float32 or float16 output tensor of one of the formats above.
Result<DecodeResult> decodeYolo(const Tensor& output, const std::string& name, const DecodeOptions& opt);

}  // namespace ramjet::vision
