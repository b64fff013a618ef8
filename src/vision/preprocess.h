// Frame -> engine input: letterbox resize (bilinear), colour order, normalize, HWC -> CHW.
#pragma once

#include <array>

#include "ramjet/status.h"
#include "ramjet/tensor.h"
#include "vision/image.h"

namespace ramjet::vision {

struct PreprocessOptions {
  int width = 640, height = 640;  // network input size
  bool letterbox = true;          // keep aspect and pad; false stretches to width x height
  bool center = true;             // pad both sides equally (ultralytics); false pads right/bottom
  uint8_t pad_value = 114;        // ultralytics' grey
  bool bgr = false;               // channel order of the network (input images are RGB)
  // value = (pixel / 255 - mean[c]) / std[c], c in the network's channel order.
  std::array<float, 3> mean{0.f, 0.f, 0.f};
  std::array<float, 3> std{1.f, 1.f, 1.f};
  bool fp16 = false;              // output dtype float16 instead of float32
};

// How a frame was placed in the network input; maps boxes back to frame coordinates.
struct Letterbox {
  float scale_x = 1, scale_y = 1;  // input pixels per frame pixel
  float pad_x = 0, pad_y = 0;      // left/top padding in input pixels
  int frame_width = 0, frame_height = 0;

  // Input coordinates -> frame coordinates, clipped to the frame.
  void toFrame(float* x1, float* y1, float* x2, float* y2) const;
};

// Computes the placement without touching pixels.
Letterbox computeLetterbox(int frame_w, int frame_h, const PreprocessOptions& opt);

// Writes one [3, H, W] image into `dst` (float or Half per opt.fp16) at batch index `index`
// of a [N, 3, H, W] tensor.
Status preprocessInto(const Image& img, const PreprocessOptions& opt, Tensor* dst, int64_t index,
                      Letterbox* placement);
// A fresh [1, 3, H, W] tensor.
Result<Tensor> preprocess(const Image& img, const PreprocessOptions& opt, Letterbox* placement);

}  // namespace ramjet::vision
