// INT8 post-training calibration (issue #6, CPU half): activation statistics over calibration
// batches (collected through the reference interpreter's on_node hook), the four threshold
// calibrators (MinMax, Percentile, Entropy/KL, MSE), per-channel symmetric weight scales, the
// calibration cache file and the calibration data sources.
//
// Everything is symmetric: a tensor's INT8 scale is amax / 127 (zero point 0), as TensorRT does.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ramjet/engine.h"
#include "ramjet/graph.h"
#include "ramjet/status.h"
#include "ramjet/tensor.h"

namespace ramjet::precision {

enum class CalibrationMethod { kMinMax, kPercentile, kEntropy, kMse };
const char* calibrationMethodName(CalibrationMethod m);  // "minmax", "percentile", ...
Result<CalibrationMethod> parseCalibrationMethod(const std::string& s);

// Histogram of |x| over [0, range) with a fixed number of bins. The range starts at the first
// batch's abs max and doubles (merging bin pairs) when a later batch exceeds it, so the bin count
// per tensor stays fixed whatever the number of batches.
class Histogram {
 public:
  explicit Histogram(int num_bins = 2048);
  void add(const float* x, int64_t n);
  int numBins() const { return static_cast<int>(counts_.size()); }
  double range() const { return range_; }
  double binWidth() const { return range_ / counts_.size(); }
  double absMax() const { return abs_max_; }  // exact, not binned
  double total() const { return total_; }
  const std::vector<double>& counts() const { return counts_; }

 private:
  std::vector<double> counts_;
  double range_ = 0, abs_max_ = 0, total_ = 0;
};

struct ThresholdOptions {
  CalibrationMethod method = CalibrationMethod::kEntropy;
  double percentile = 99.99;  // kPercentile: 99.9 or 99.99 (any value in (0, 100])
  int num_quant_bins = 128;   // levels of the positive INT8 half (kEntropy, kMse)
};
// The clipping threshold (amax) one calibrator picks for a histogram. 0 for an all-zero tensor.
double computeThreshold(const Histogram& h, const ThresholdOptions& opt);

// Symmetric per-channel weight scales along `axis` (Conv weights: axis 0 = output channels):
// scale[c] = max|w[c, ...]| / 127 (a tiny positive value for all-zero channels).
Result<std::vector<float>> perChannelWeightScales(const Tensor& w, int axis = 0);

// ---- calibration data (like TensorRT's IInt8Calibrator) ----
// The public interface (include/ramjet/engine.h), so user calibrators plug into BuildOptions.
using Calibrator = ramjet::Int8Calibrator;

// A user callback: `fn(index, feeds)` fills feeds for batch `index`, returns false when done.
class CallbackCalibrator final : public Calibrator {
 public:
  using Fn = std::function<Result<bool>(size_t index, std::map<std::string, Tensor>* feeds)>;
  CallbackCalibrator(Fn fn, size_t num_batches = 0) : fn_(std::move(fn)), n_(num_batches) {}
  Result<bool> getBatch(std::map<std::string, Tensor>* feeds) override { return fn_(next_++, feeds); }
  size_t numBatches() const override { return n_; }
  Status reset() override { next_ = 0; return Status::Ok(); }

 private:
  Fn fn_;
  size_t n_, next_ = 0;
};

// Seeded uniform [-1, 1) data for every float input (symbolic dims -> 1).
std::unique_ptr<Calibrator> makeRandomCalibrator(const Graph& g, size_t num_batches, uint64_t seed);

// A folder of .npy files (sorted by name), one sample per file. Single-input models: every
// *.npy is that input. Multi-input models: files are named <input>_<anything>.npy or live in
// one subfolder per sample holding <input>.npy. A file whose rank is one less than the input's
// gets a leading batch dim of 1.
Result<std::unique_ptr<Calibrator>> makeNpyFolderCalibrator(const Graph& g, const std::string& dir,
                                                            size_t max_samples = 0);

// Image preprocessing: resize (bilinear) to size_hw, scale to [0,1], (x - mean) / std, CHW.
struct ImagePreprocess {
  int height = 0, width = 0;  // 0: take from the model input's dims (N, C, H, W)
  std::vector<float> mean{0.485f, 0.456f, 0.406f};
  std::vector<float> std{0.229f, 0.224f, 0.225f};
  int batch = 1;              // images per batch (the input's batch dim when it is fixed)
};
// The .jpg/.jpeg/.png/.bmp files of a folder, sorted by name (an error names a missing folder).
Result<std::vector<std::string>> listImageFiles(const std::string& dir);
// A folder of .jpg/.jpeg/.png/.bmp files for a single-image-input model (N, 3, H, W).
Result<std::unique_ptr<Calibrator>> makeImageFolderCalibrator(const Graph& g, const std::string& dir,
                                                              const ImagePreprocess& pre,
                                                              size_t max_samples = 0);
// One image file -> float CHW tensor [1, 3, H, W] (exposed for tests).
Result<Tensor> loadImageTensor(const std::string& path, const ImagePreprocess& pre);
// Picks npy or image folder by the folder's contents; "random" gives random data.
Result<std::unique_ptr<Calibrator>> makeCalibratorForSpec(const Graph& g, const std::string& spec,
                                                          const ImagePreprocess& pre,
                                                          size_t max_samples, uint64_t seed);

// ---- statistics and the calibration table ----
struct CalibrationOptions {
  ThresholdOptions threshold;
  int num_bins = 2048;
  size_t max_batches = 0;  // 0: until the calibrator is exhausted
  // Progress display: (batches done, batches total or 0).
  std::function<void(size_t, size_t)> progress;
};

// Per-tensor amax for every float activation (graph inputs and node outputs).
struct CalibrationTable {
  std::string model_hash;
  std::string method;  // "entropy", "percentile-99.99", ...
  size_t num_batches = 0;
  std::map<std::string, float> amax;  // tensor name -> clipping threshold
  float scale(const std::string& tensor) const;  // amax / 127, or 0 when absent
};

// Histograms of every float activation collected over batches (for tests and reuse).
class ActivationStats {
 public:
  explicit ActivationStats(int num_bins = 2048) : num_bins_(num_bins) {}
  void add(const std::string& name, const Tensor& t);
  const std::map<std::string, Histogram>& histograms() const { return hists_; }

 private:
  int num_bins_;
  std::map<std::string, Histogram> hists_;
};

// Runs the reference interpreter over the calibrator's batches and collects statistics.
Result<ActivationStats> collectStats(const Graph& g, Calibrator& calib, const CalibrationOptions& opt,
                                     size_t* batches_run = nullptr);
CalibrationTable makeTable(const Graph& g, const ActivationStats& stats, const ThresholdOptions& opt,
                           size_t num_batches);
// collectStats + makeTable.
Result<CalibrationTable> calibrate(const Graph& g, Calibrator& calib, const CalibrationOptions& opt);

// Content hash of a graph (ops, attributes, wiring, names and weight bytes): what the cache is
// keyed on, so a cache made for another model (or other weights) is rejected.
std::string graphHash(const Graph& g);

// The cache is JSON: {"format":"ramjet-calibration","version":1,"model_hash":..,"method":..,
// "tensors":{name:{"amax":..,"scale":..}}}. Written through a temp file + rename.
Status saveCalibrationCache(const std::string& path, const CalibrationTable& t);
// Rejects unknown formats/versions, malformed entries, and (when expected_hash is not empty) a
// cache made for a different model, naming the file and the reason.
Result<CalibrationTable> loadCalibrationCache(const std::string& path, const std::string& expected_hash);

}  // namespace ramjet::precision
