// Accuracy budget for INT8 builds (issue #6 item 6): choose, per quantizable layer, INT8 or
// FP16 so that the build loses at most BuildOptions::accuracy_budget of a metric against the
// FP32 reference, keeping as many layers INT8 as that allows.
//
// Every candidate is a real INT8 build on the CPU backend (its INT8 kernels are bit-exact with
// the CUDA ones; the lowering is the same code), run on `accuracy_samples` batches of the
// calibrator's data, and compared with the FP32 reference interpreter's outputs:
//   1. loss of the all-INT8 build; done if it fits the budget;
//   2. loss of the all-FP16 build: the floor (a budget below it cannot be met; the plan then
//      keeps every layer FP16 and the report says so);
//   3. sensitivity of each INT8 layer: the loss recovered when that layer alone stays FP16
//      (for a coarse metric such as top-1 or detection agreement, of a continuous proxy: the
//      outputs' relative L2 error per channel);
//   4. the k most sensitive layers stay FP16, k found by doubling then bisection on the real
//      loss (each probe one build), the smallest k that fits.
// Cost: (number of INT8 layers + ~2 log2 of it + 2) CPU builds and runs of the samples. With a
// calibration cache path, the decision is stored in "<cache>.budget.json" keyed by the model
// hash, the ranges and the options, and a rebuild reuses it without searching.
#pragma once

#include <string>
#include <vector>

#include "precision/calibrator.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

namespace ramjet::precision {

// The built-in losses (>= 0, 0 = identical to FP32). `metric`: "top1", "cosine", "rel-l2", or
// "auto" (top1 when the only output is [N, C] with C >= 2, else cosine). Errors name the metric
// and the output that does not fit it.
Result<double> accuracyLoss(const std::string& metric, const std::vector<std::vector<Tensor>>& got,
                            const std::vector<std::vector<Tensor>>& ref);

struct LayerSensitivity {
  std::string layer;     // node name (the Conv/Gemm/MatMul the INT8 kernel replaces)
  double loss_fp16 = 0;  // the metric's loss of the build with only this layer FP16
  double gain = 0;       // ranking loss recovered: ranking(all INT8) - ranking(only this layer FP16)
};

struct AccuracyBudgetResult {
  std::string metric;
  // What layers are ranked by: the metric itself when it is continuous (cosine, rel-l2), else
  // "channel rel-l2" (relative L2 error per output channel, averaged): top-1 or mAP agreement
  // on a few batches rarely moves for one layer, so it cannot order them.
  std::string ranking;
  double budget = 0;
  double loss_int8 = 0;   // every quantizable layer INT8
  double loss_fp16 = 0;   // none INT8 (the floor)
  double loss_final = 0;  // the chosen mix
  bool met = false;
  size_t int8_layers = 0;                  // quantizable layers of the all-INT8 build
  std::vector<LayerSensitivity> layers;    // most sensitive first (empty when all-INT8 fits)
  std::vector<std::string> kept_fp16;      // layers the plan keeps FP16, most sensitive first
  size_t builds = 0, samples = 0;
  std::string from_cache;          // the side file the decision came from (empty: searched now)
  CalibrationTable table;          // the activation ranges every candidate used
  std::string calibration_source;  // where they came from
  double seconds = 0;
  // "NAME:fp16" entries to add to BuildOptions::precision_overrides.
  std::vector<std::string> overrides() const;
  std::string toString() const;
};

// Runs the search for `opt` (precision INT8, accuracy_budget > 0, a calibrator for the data).
Result<AccuracyBudgetResult> searchAccuracyBudget(const Graph& g, const BuildOptions& opt);

}  // namespace ramjet::precision
