// The detection pipeline on a CUDA engine (compiled into ramjet_cuda): decoded 8-bit frames go
// through pinned host memory to the device, one kernel letterboxes them straight into the
// engine's input buffer, the engine runs on the pipeline's stream, and the YOLO decode, sort and
// class-aware NMS run on the device too; only the final boxes come back.
#pragma once

#include <memory>
#include <vector>

#include "vision/detector.h"

namespace ramjet::vision {

// Makes Detector use the GPU pipeline for CUDA engines (idempotent). Programs call it once
// after registerCudaBackend().
void registerGpuPipeline();

Result<std::unique_ptr<DevicePipeline>> createGpuPipeline(const DevicePipelineConfig& config);

// Test and benchmark helpers on host data (they allocate; not for the per-frame path):
// the letterbox kernel on images -> a host [N, 3, H, W] tensor (float or half per opt.fp16).
Result<Tensor> gpuPreprocess(const std::vector<const Image*>& images, const PreprocessOptions& opt);
// Decode + NMS of a host output tensor on the GPU. With `placements` (one per image) boxes are
// mapped to frame coordinates, else they stay in network-input pixels.
Result<std::vector<std::vector<Detection>>> gpuDecodeNms(const Tensor& output, YoloFormat format,
                                                         const DecodeOptions& decode, const NmsOptions& nms,
                                                         const std::vector<Letterbox>* placements = nullptr);

}  // namespace ramjet::vision
