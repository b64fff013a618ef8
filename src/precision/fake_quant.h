// Simulated INT8 on the reference path: weights are quantize-dequantized per output channel and
// the activation inputs of the ops an INT8 engine would run in INT8 (Conv, ConvTranspose, Gemm,
// MatMul) get a QuantizeLinear/DequantizeLinear pair with the calibrated per-tensor scale. The
// rewritten graph still runs on the FP32 reference kernels, so it shows what INT8 does to
// accuracy before any INT8 GPU kernel exists.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "precision/calibrator.h"
#include "ramjet/graph.h"

namespace ramjet::precision {

// Symmetric INT8 quantize-dequantize of every element: round(x / scale) clamped to [-127, 127],
// times scale. scale must be positive.
Tensor fakeQuantize(const Tensor& x, float scale);
// The same per channel along `axis` with perChannelWeightScales(w, axis).
Result<Tensor> fakeQuantizePerChannel(const Tensor& w, int axis);

struct FakeQuantOptions {
  bool weights = true;
  bool activations = true;
  std::set<std::string> ops{"Conv", "ConvTranspose", "Gemm", "MatMul"};
};

struct FakeQuantReport {
  size_t weights = 0;      // weight tensors replaced by their fake-quantized copies
  size_t activations = 0;  // activation tensors given a Q/DQ pair
  std::vector<std::string> not_calibrated;  // activation inputs without an amax (left in FP32)
  std::string toString() const;
};

// Rewrites `g` in place (new values/nodes; original tensor names keep their FP32 producers, so
// per-layer comparisons by name still line up). Errors name the node.
Result<FakeQuantReport> applyFakeQuant(Graph& g, const CalibrationTable& table, const FakeQuantOptions& opt = {});

}  // namespace ramjet::precision
