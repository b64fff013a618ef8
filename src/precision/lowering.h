// Precision lowering (the builder's one call for BuildOptions::precision): mixed FP16/BF16 with
// automatic FP32 fallback per layer, per-layer overrides, and INT8 post-training quantization of
// Conv/Gemm/MatMul into the internal QConv/QGemm ops (src/ops/int8.cc). docs/PRECISION.md.
//
// FP16/BF16: each node gets a precision; float tensors take their producer's type and a Cast is
// inserted (once per tensor and type) where a consumer runs in another precision. Kept in FP32
// in FP16 mode: normalizations (statistics), Softmax/LogSoftmax/Exp/Pow, large reductions, nodes
// with constants outside the FP16 range, nodes touching a tensor whose calibrated |max| exceeds
// kFp16SafeMax, and any node the device has no kernel for at the lower precision. Data-movement
// ops (Reshape, Transpose, Concat, ...) follow their input's precision instead of forcing Casts.
// Graph inputs and outputs stay FP32.
//
// INT8: Conv (2-D, group 1, C and K multiples of 4) and Gemm/MatMul with constant weights whose
// input has a calibrated range become QConv/QGemm with per-channel symmetric int8 weights and a
// per-tensor int8 input; a following activation (Relu, Silu, LeakyRelu, Clip) and a residual Add
// (+activation) are fused into the epilogue. Chains of quantized layers pass int8 NHWC tensors
// directly; everything else runs in FP16 as above (FP32 on the CPU: int8FallbackPrecision).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "precision/calibrator.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

namespace ramjet::precision {

constexpr float kFp16Max = 65504.f;
// Calibrated activations above this stay FP32 in FP16 mode (4x headroom over what was seen).
constexpr float kFp16SafeMax = 16384.f;

enum class LayerPrecision { kFP32, kFP16, kBF16, kINT8, kFP8 };
const char* layerPrecisionName(LayerPrecision p);
Result<LayerPrecision> parseLayerPrecision(const std::string& s);

struct PrecisionOverride {
  std::string pattern;  // node name or op type
  LayerPrecision precision;
};
// "NAME_OR_OP:fp32" entries; errors name the entry and the reason.
Result<std::vector<PrecisionOverride>> parseOverrides(const std::vector<std::string>& specs);

struct LoweringEnv {
  // Ok when the device can run the node with these types (the backend's supports()); unset:
  // everything is supported.
  std::function<Status(const Node&, const std::vector<TensorType>&, const std::vector<TensorType>&)> supports;
  Logger* logger = nullptr;
};

struct LoweringReport {
  std::map<std::string, size_t> layers;  // precision name -> nodes (after lowering)
  size_t casts = 0, quantize = 0, dequantize = 0;
  size_t int8_fused_activations = 0, int8_fused_residuals = 0;
  size_t int8_moves = 0;  // Concat/Slice/Split run on int8 NHWC data between INT8 layers
  std::vector<std::string> int8_layers;  // names of the Conv/Gemm/MatMul nodes now QConv/QGemm
  std::vector<std::string> fp8_layers;   // names of the FusedGemm/Gemm/MatMul nodes now Fp8Gemm
  size_t fp8_gelu_tanh = 0;              // of those, erf-GELU epilogues computed in the tanh form
  size_t fp8_chained = 0;                // of those, writing E4M3 codes for the FP8 GEMMs they feed
  // One line per layer kept above the mode's precision: "LayerNormalization 'ln': fp32 (normalization statistics)".
  std::vector<std::string> kept;
  bool calibrated = false;
  std::string calibration_source;  // "cache FILE", "calibrator (N batches)", "explicit ranges"
  std::string toString() const;
};

// Activation ranges for INT8 (required) or FP16 range checks (optional): explicit ranges, else
// the cache file when it matches `original`, else the calibrator (writing the cache).
// Returns an empty table when nothing is given and `required` is false.
Result<CalibrationTable> obtainCalibration(const Graph& original, const BuildOptions& opt, bool required,
                                           std::string* source, Logger* logger);

// The precision of the layers an INT8 build leaves unquantized: opt.int8_fallback, else FP16 on
// CUDA and FP32 on the CPU (whose FP16 is emulated: slower and less accurate there).
Precision int8FallbackPrecision(const BuildOptions& opt);

// Lowers `g` (the optimized graph) in place to opt.precision. `original` is the graph as the user
// gave it (calibration runs on it, so cache files from `ramjet calibrate` line up by name).
Result<LoweringReport> lowerPrecision(Graph& g, const Graph& original, const BuildOptions& opt,
                                      const LoweringEnv& env);

// Per-channel symmetric int8 weights (exposed for tests): w [K, ...] float -> q [K, ...] int8
// and scale[k] = max|w[k]| / 127.
Status quantizeWeightsPerChannel(const Tensor& w, Tensor* q, std::vector<float>* scales);

}  // namespace ramjet::precision
