// Window geometry shared by the Conv/ConvTranspose/pooling shape functions and their kernels:
// one place computes pads and output sizes from kernel_shape/strides/dilations/pads/auto_pad.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ops/op_registry.h"

namespace ramjet::ops {

struct WindowGeometry {
  std::vector<int64_t> kernel, strides, dilations;
  std::vector<int64_t> pads;  // 2 * rank: all begins, then all ends (ONNX order)
  std::vector<int64_t> out;   // output spatial sizes; -1 where the input size is unknown
};

// Forward windows (Conv, ConvInteger, MaxPool, AveragePool, LpPool). `in` holds the input's
// spatial sizes (-1 = unknown), `kernel` the window sizes. Reads strides, dilations, pads,
// auto_pad (and ceil_mode when `allow_ceil`) from the node; validates every value.
Result<WindowGeometry> forwardWindow(const Node& node, const std::vector<int64_t>& in,
                                     const std::vector<int64_t>& kernel, bool allow_ceil,
                                     bool allow_dilations = true);

// ConvTranspose: also reads output_padding and output_shape.
Result<WindowGeometry> transposeWindow(const Node& node, const std::vector<int64_t>& in,
                                       const std::vector<int64_t>& kernel);

// Spatial dims of a shape (after N, C) as sizes, -1 for symbolic ones.
std::vector<int64_t> spatialSizes(const Shape& s);

// Parses the activation list of an RNN node (LSTM/GRU/RNN): names upper/lower case as in ONNX.
struct RnnActivation {
  enum Kind {
    kSigmoid,
    kTanh,
    kRelu,
    kAffine,
    kLeakyRelu,
    kThresholdedRelu,
    kScaledTanh,
    kHardSigmoid,
    kElu,
    kSoftsign,
    kSoftplus
  } kind = kSigmoid;
  float alpha = 0, beta = 0;
  double operator()(double x) const;
};
Result<std::vector<RnnActivation>> rnnActivations(const Node& node,
                                                  const std::vector<const char*>& defaults,
                                                  int64_t num_directions);

// An Einsum equation resolved against its operands' ranks: every axis gets a label id. Letters
// are ids 0..51; the dims an ellipsis stands for get ids 52.. (right-aligned across operands,
// numpy style). `out` is the explicit output or, without "->", the implicit one (ellipsis
// dims, then the letters used exactly once, in alphabetical order).
struct EinsumLabels {
  std::vector<std::vector<int>> in;
  std::vector<int> out;
  int num_labels = 0;  // ids are < num_labels
};
Result<EinsumLabels> einsumLabels(const Node& node, const std::vector<size_t>& ranks);

}  // namespace ramjet::ops
