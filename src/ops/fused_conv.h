// FusedConv(X, W, B?, Z?): Y = act(conv(X, W) + B + Z), ramjet-internal (ops_fused.def). Made by
// the ConvActivationFusion pass from Conv [+ Add residual] + one activation, and rewritten to
// channels-last by NhwcLayout. Attributes: Conv's (auto_pad, dilations, group, kernel_shape,
// pads, strides) plus
//   activation  none | relu | leaky_relu | sigmoid | tanh | silu | hard_swish | hard_sigmoid |
//               clip | mish | gelu   (default none)
//   alpha, beta leaky_relu slope (alpha, default 0.01); hard_sigmoid alpha/beta (0.2, 0.5);
//               clip min (alpha) / max (beta), +-inf when absent
//   layout      "NCHW" (default) or "NHWC". NHWC means every tensor is channels-last in
//               memory AND in its IR shape: X [N, D..., C], W [M, k..., C/group] (KRSC),
//               Z and Y [N, out..., M]. The CPU reference runs both.
// Shared by the shape function, the reference kernel, the passes and the CUDA kernel so the
// activation list and its parameters have one definition.
#pragma once

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "ramjet/graph.h"
#include "ramjet/status.h"

namespace ramjet::ops {

enum class ConvAct { kNone, kRelu, kLeakyRelu, kSigmoid, kTanh, kSilu, kHardSwish, kHardSigmoid, kClip, kMish, kGelu };

struct ConvActivation {
  ConvAct kind = ConvAct::kNone;
  float alpha = 0.f, beta = 0.f;  // resolved (defaults applied)
  double operator()(double x) const {
    switch (kind) {
      case ConvAct::kNone: return x;
      case ConvAct::kRelu: return x > 0 ? x : 0.0;
      case ConvAct::kLeakyRelu: return x >= 0 ? x : x * alpha;
      case ConvAct::kSigmoid: return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x));
      case ConvAct::kTanh: return std::tanh(x);
      case ConvAct::kSilu: return x * (x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)));
      case ConvAct::kHardSwish: return x * std::max(0.0, std::min(1.0, x / 6.0 + 0.5));
      case ConvAct::kHardSigmoid: return std::max(0.0, std::min(1.0, alpha * x + beta));
      case ConvAct::kClip: return std::min<double>(std::max<double>(x, alpha), beta);
      case ConvAct::kMish: return x * std::tanh(x > 20 ? x : std::log1p(std::exp(x)));
      case ConvAct::kGelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    }
    return x;
  }
};

// Names as written in the `activation` attribute.
const char* convActName(ConvAct a);
// Parses node's activation/alpha/beta; error naming the node for an unknown activation.
Result<ConvActivation> parseConvActivation(const Node& node);
// "NCHW" -> false, "NHWC" -> true; error for anything else.
Result<bool> parseConvLayoutNhwc(const Node& node);

// Permutations between channels-first [N, C, D...] and channels-last [N, D..., C] of `rank` dims.
std::vector<int64_t> toChannelsLastPerm(size_t rank);   // NCHW -> NHWC: {0, 2, .., r-1, 1}
std::vector<int64_t> toChannelsFirstPerm(size_t rank);  // NHWC -> NCHW: {0, r-1, 1, .., r-2}
// A copy of `in` transposed by perm (out dim d = in dim perm[d]); any dtype.
Tensor permuteTensor(const Tensor& in, const std::vector<int64_t>& perm);

// PoolNhwc(X) (ops_fused.def): MaxPool (`mode` "max") or AveragePool ("average") of a
// channels-last X [N, D..., C] -> [N, out..., C]; the pool attributes are ONNX's. Made by
// NhwcLayout so pooling between channels-last convolutions needs no layout conversion.

}  // namespace ramjet::ops
