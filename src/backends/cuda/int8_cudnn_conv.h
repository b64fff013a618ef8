// QConv through cuDNN's graph API (issue #6): int8 NHWC convolution with int32 accumulation and
// the whole INT8 epilogue (per-channel rescale, bias, activation, int8 residual, requantization
// to int8 or a float output) fused into one cuDNN kernel, instead of im2col + IMMA GEMM + a
// separate epilogue pass with an int32 round trip (int8_ops.cc). cuDNN rounds its float epilogue
// its own way, so results may differ from the CPU reference by 1 LSB (GPU tests count them).
#pragma once

#include <memory>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_op_table.h"

namespace ramjet::cuda {

inline constexpr const char* kInt8ConvCudnnTactic = "cuda.int8.conv.cudnn_graph";

// Engine configurations cuDNN offers for this QConv at its (fully known) shapes, best first; empty
// when cuDNN has none (e.g. channels not a multiple of 4, or dynamic shapes at listing time).
std::vector<backend::Tactic> int8ConvCudnnTactics(const Node& n, const std::vector<TensorType>& in,
                                                  const std::vector<TensorType>& out, Handles& h);

// `fallback` (the cuBLASLt IMMA kernel) runs shapes cuDNN offers no plan for.
std::unique_ptr<backend::Kernel> makeInt8ConvCudnnKernel(const Node& n, const backend::Tactic& t, Handles* h,
                                                         std::unique_ptr<backend::Kernel> fallback);

}  // namespace ramjet::cuda
