// Non-maximum suppression: greedy, class-aware by default, per image of a batch.
#pragma once

#include <vector>

#include "vision/decode.h"

namespace ramjet::vision {

struct NmsOptions {
  float iou_threshold = 0.45f;  // suppress a box whose IoU with a kept one is above this
  bool agnostic = false;        // true: boxes of different classes suppress each other too
  int max_detections = 300;     // per image, highest scores first (<= 0: no limit)
};

float iou(const Detection& a, const Detection& b);

// Returns the kept boxes sorted by descending score (ties: lower input index first).
std::vector<Detection> nms(std::vector<Detection> boxes, const NmsOptions& opt);
// One nms() per image.
std::vector<std::vector<Detection>> batchedNms(std::vector<std::vector<Detection>> per_image,
                                               const NmsOptions& opt);

}  // namespace ramjet::vision
