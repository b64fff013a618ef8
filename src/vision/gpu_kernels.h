// Device kernels of the detection pipeline (src/backends/cuda/kernels/vision.cu): letterbox
// pre-processing straight into the engine input, YOLO decoders, sorting and class-aware NMS.
// Raw device pointers + the caller's stream, asynchronous, no allocation (the caller sizes the
// buffers with the *Bytes helpers), so a whole frame can run without host synchronisation.
// The arithmetic repeats the CPU code's float operations in the same order with rounded
// (never fused) multiply-adds, so the GPU and CPU pipelines agree to the last bit in FP32.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "ramjet/status.h"

namespace ramjet::vision::gpu {

// One decoded 8-bit frame (HWC, 3 channels) in device memory and where it goes in the input.
struct FrameDesc {
  const uint8_t* data = nullptr;
  int width = 0, height = 0, pitch = 0;  // pitch in bytes per row
  int src_c[3] = {0, 1, 2};              // network channel c reads frame channel src_c[c]
  float scale_x = 1, scale_y = 1;        // input pixels per frame pixel
  int pad_x = 0, pad_y = 0;              // left/top padding, input pixels
  int rw = 0, rh = 0;                    // resized size inside the input (clipped to it)
};

struct NormParams {
  float mul[3], add[3];  // value = pixel * mul[c] + add[c] (network channel order)
  uint8_t pad_value = 114;
};

// Writes frame i of `descs` (device array) into batch index i of `out` ([n, 3, H, W], float or
// half per `fp16`).
Status letterbox(const FrameDesc* d_descs, int n, int out_w, int out_h, bool fp16, const NormParams& norm,
                 void* out, cudaStream_t stream);

// ---- post-processing ----
enum class RawFormat : int { kV5 = 1, kV8 = 2, kE2E = 3 };

// Layout-compatible with vision::Detection.
struct Box {
  float x1, y1, x2, y2, score;
  int cls;
};

// Maps input coordinates to a frame's (Letterbox::toFrame): clamp((v - pad) / scale, 0, size).
struct Placement {
  float scale_x = 1, scale_y = 1, pad_x = 0, pad_y = 0;
  float frame_w = 0, frame_h = 0;
};

struct PostParams {
  RawFormat format = RawFormat::kV8;
  int n = 1;                 // images
  int d1 = 0, d2 = 0;        // output dims [n, d1, d2]
  bool fp16 = false;         // output element type
  float conf = 0.25f;
  const uint8_t* d_wanted = nullptr;  // class filter flags (null: every class)
  int wanted_size = 0;
  int max_candidates = 30000;  // per image, before NMS
  float iou = 0.45f;
  bool agnostic = false;
  int max_det = 300;           // per image (> 0)
  const Placement* d_place = nullptr;  // per image; null: boxes stay in input coordinates
};

// Candidates per image: v8 [n, 4+C, A] -> A, v5 [n, A, 5+C] -> A, e2e [n, K, 6] -> K.
int candidatesPerImage(const PostParams& p);

// Scratch sizes for `postprocess` at `p.n` images (max over the batch sizes a caller uses).
struct PostBuffers {
  void* scratch = nullptr;  // postprocessScratchBytes(p)
  size_t scratch_bytes = 0;
  Box* d_out = nullptr;     // [n, max_det]
  int* d_count = nullptr;   // [n] boxes kept per image
};
size_t postprocessScratchBytes(const PostParams& p);

// Decode (threshold, best class, class filter, non-finite boxes dropped), a stable sort by
// descending score per image (ties: lower candidate index first, like the CPU's stable_sort),
// greedy NMS (class-aware unless `agnostic`; none for e2e) and the mapping to frame coordinates.
Status postprocess(const void* d_raw, const PostParams& p, const PostBuffers& b, cudaStream_t stream);

}  // namespace ramjet::vision::gpu
