// INT8 calibration: statistics, threshold search, weight scales, cache, data sources.
#include "precision/calibrator.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "backends/cpu/reference/interpreter.h"

// stb_image is header-only; STB_IMAGE_STATIC keeps this copy private to this file (src/vision
// has its own), so the two never clash at link time.
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_JPEG
#define STBI_ONLY_PNG
#define STBI_ONLY_BMP
#define STBI_FAILURE_USERMSG
#define STBI_MAX_DIMENSIONS 16384
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace fs = std::filesystem;

namespace ramjet::precision {

const char* calibrationMethodName(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::kMinMax: return "minmax";
    case CalibrationMethod::kPercentile: return "percentile";
    case CalibrationMethod::kEntropy: return "entropy";
    case CalibrationMethod::kMse: return "mse";
  }
  return "?";
}

Result<CalibrationMethod> parseCalibrationMethod(const std::string& s) {
  if (s == "minmax") return CalibrationMethod::kMinMax;
  if (s == "percentile") return CalibrationMethod::kPercentile;
  if (s == "entropy") return CalibrationMethod::kEntropy;
  if (s == "mse") return CalibrationMethod::kMse;
  return makeError(StatusCode::kInvalidArgument, "calibration method '", s,
                   "' is not one of entropy, minmax, percentile, mse");
}

// ---------------------------------------------------------------------------------------------
// Histogram

Histogram::Histogram(int num_bins) : counts_(std::max(2, num_bins + (num_bins & 1)), 0.0) {}

void Histogram::add(const float* x, int64_t n) {
  double m = 0;
  int64_t finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    float a = std::fabs(x[i]);
    if (std::isfinite(a)) {
      m = std::max(m, static_cast<double>(a));
      ++finite;
    }
  }
  abs_max_ = std::max(abs_max_, m);
  if (range_ == 0 && m > 0) range_ = m;  // earlier batches were all zero: they sit in bin 0
  // Grow by doubling: merging bin pairs keeps every earlier count in the right (wider) bin.
  const size_t nb = counts_.size();
  while (m > range_) {
    for (size_t i = 0; i < nb / 2; ++i) counts_[i] = counts_[2 * i] + counts_[2 * i + 1];
    std::fill(counts_.begin() + nb / 2, counts_.end(), 0.0);
    range_ *= 2;
  }
  const double inv_w = range_ > 0 ? nb / range_ : 0;
  for (int64_t i = 0; i < n; ++i) {
    float a = std::fabs(x[i]);
    if (!std::isfinite(a)) continue;  // NaN/Inf carry no range information
    size_t b = std::min(nb - 1, static_cast<size_t>(a * inv_w));
    counts_[b] += 1;
  }
  total_ += static_cast<double>(finite);
}

// ---------------------------------------------------------------------------------------------
// Threshold search

namespace {

// Replaces zeros by eps (taking the mass from the non-zeros) so KL(P||Q) stays finite; the
// standard smoothing of the MXNet/TensorRT-style entropy calibrator.
bool smooth(std::vector<double>& p, double eps = 1e-4) {
  size_t zeros = 0;
  for (double v : p) zeros += v == 0;
  size_t nonzeros = p.size() - zeros;
  if (nonzeros == 0) return false;
  double eps1 = eps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  for (double& v : p) v += v == 0 ? eps : -eps1;
  return true;
}

double entropyThreshold(const Histogram& h, int nq) {
  // ReLU outputs put half their mass in bin 0 (exact zeros). Left alone, that spike dominates
  // Q's first level and KL then favours tiny thresholds that clip most real values; like
  // NVIDIA's pytorch-quantization entropy calibrator, bin 0 takes bin 1's count instead.
  std::vector<double> hist = h.counts();
  if (hist.size() > 1) hist[0] = hist[1];
  const int nb = h.numBins();
  int last_nonzero = 0;
  for (int i = 0; i < nb; ++i)
    if (hist[i] > 0) last_nonzero = i;
  if (last_nonzero + 1 <= nq) return std::min(h.absMax(), (last_nonzero + 1) * h.binWidth());
  double best_kl = std::numeric_limits<double>::infinity();
  int best_i = nb;
  std::vector<double> p, q;
  double tail = 0;
  for (int i = nb - 1; i >= nq; --i) tail += hist[i];  // sum(hist[i:]) for i = nq
  for (int i = nq; i <= nb; ++i) {
    // Reference P: the first i bins with everything beyond folded into the last one (clipping).
    p.assign(hist.begin(), hist.begin() + i);
    double outliers = tail;  // sum(hist[i:])
    p[i - 1] += outliers;
    // Candidate Q: the first i bins quantized into nq levels, each level spread evenly over the
    // non-empty bins it covers.
    q.assign(i, 0.0);
    double merged = static_cast<double>(i) / nq;
    for (int j = 0; j < nq; ++j) {
      int start = static_cast<int>(std::floor(j * merged));
      int end = j == nq - 1 ? i : static_cast<int>(std::floor((j + 1) * merged));
      double sum = 0;
      int nonzero = 0;
      for (int k = start; k < end; ++k) {
        sum += hist[k];
        nonzero += hist[k] != 0;
      }
      if (nonzero == 0) continue;
      for (int k = start; k < end; ++k)
        if (hist[k] != 0) q[k] = sum / nonzero;
    }
    // KL is computed on normalized distributions.
    double sp = 0, sq = 0;
    for (double v : p) sp += v;
    for (double v : q) sq += v;
    if (i < nb) tail -= hist[i];
    if (sp <= 0 || sq <= 0) continue;
    for (double& v : p) v /= sp;
    for (double& v : q) v /= sq;
    if (!smooth(p) || !smooth(q)) continue;
    double kl = 0;
    for (int k = 0; k < i; ++k)
      if (p[k] > 0 && q[k] > 0) kl += p[k] * std::log(p[k] / q[k]);
    if (kl < best_kl) {
      best_kl = kl;
      best_i = i;
    }
  }
  return std::min(h.absMax(), best_i * h.binWidth());
}

// Expected squared error of symmetric quantization with threshold t (levels nq - 1 = 127 steps):
// rounding noise s^2/12 for values inside [0, t], squared clipping distance beyond it.
double mseThreshold(const Histogram& h, int nq) {
  const auto& hist = h.counts();
  const int nb = h.numBins();
  const double w = h.binWidth();
  double best = std::numeric_limits<double>::infinity(), best_t = h.absMax();
  for (int i = 1; i <= nb; ++i) {
    double t = i * w;
    double s = t / (nq - 1);
    double err = 0;
    for (int b = 0; b < nb; ++b) {
      if (hist[b] == 0) continue;
      double c = (b + 0.5) * w;
      if (c <= t) {
        err += hist[b] * s * s / 12.0;
      } else {
        double d = c - t;
        err += hist[b] * (d * d + w * w / 12.0);
      }
    }
    if (err < best) {
      best = err;
      best_t = t;
    }
  }
  return std::min(h.absMax(), best_t);
}

}  // namespace

double computeThreshold(const Histogram& h, const ThresholdOptions& opt) {
  if (h.absMax() <= 0 || h.total() <= 0) return 0;
  switch (opt.method) {
    case CalibrationMethod::kMinMax: return h.absMax();
    case CalibrationMethod::kPercentile: {
      double target = std::clamp(opt.percentile, 0.0, 100.0) / 100.0 * h.total();
      double cum = 0;
      const auto& c = h.counts();
      for (int i = 0; i < h.numBins(); ++i) {
        cum += c[i];
        if (cum >= target) return std::min(h.absMax(), (i + 1) * h.binWidth());
      }
      return h.absMax();
    }
    case CalibrationMethod::kEntropy: return entropyThreshold(h, opt.num_quant_bins);
    case CalibrationMethod::kMse: return mseThreshold(h, opt.num_quant_bins);
  }
  return h.absMax();
}

Result<std::vector<float>> perChannelWeightScales(const Tensor& w, int axis) {
  if (!w.isTensor() || w.dtype() != DataType::kFloat32)
    return makeError(StatusCode::kInvalidArgument, "per-channel weight scales need a float32 tensor, got ",
                     w.summary());
  const int r = static_cast<int>(w.rank());
  if (r == 0) return makeError(StatusCode::kInvalidArgument, "per-channel weight scales need rank >= 1");
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r)
    return makeError(StatusCode::kInvalidArgument, "channel axis ", axis, " is out of range for rank ", r);
  int64_t outer = 1, inner = 1, ch = w.dim(axis);
  for (int i = 0; i < axis; ++i) outer *= w.dim(i);
  for (int i = axis + 1; i < r; ++i) inner *= w.dim(i);
  std::vector<float> amax(ch, 0.f);
  const float* p = w.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < ch; ++c)
      for (int64_t k = 0; k < inner; ++k) amax[c] = std::max(amax[c], std::fabs(p[(o * ch + c) * inner + k]));
  std::vector<float> scales(ch);
  for (int64_t c = 0; c < ch; ++c) scales[c] = amax[c] > 0 ? amax[c] / 127.f : 1e-8f;
  return scales;
}

// ---------------------------------------------------------------------------------------------
// Data sources

namespace {

std::vector<int64_t> concreteDims(const Value* v, int64_t batch) {
  std::vector<int64_t> d;
  for (size_t i = 0; i < v->type.shape.dims.size(); ++i) {
    const Dim& x = v->type.shape.dims[i];
    d.push_back(x.known() ? x.value : (i == 0 ? batch : 1));
  }
  return d;
}

class RandomCalibrator final : public Calibrator {
 public:
  RandomCalibrator(const Graph& g, size_t n, uint64_t seed) : n_(n), seed_(seed) {
    for (Value* v : g.inputs) inputs_.push_back({v->name, v->type.dtype, concreteDims(v, 1)});
  }
  Result<bool> getBatch(std::map<std::string, Tensor>* feeds) override {
    if (next_ >= n_) return false;
    std::mt19937_64 rng(seed_ + 7919 * next_++);
    std::uniform_real_distribution<float> uf(-1.f, 1.f);
    feeds->clear();
    for (const auto& in : inputs_) {
      Tensor f(DataType::kFloat32, in.dims);
      float* p = f.data<float>();
      for (int64_t i = 0; i < f.numel(); ++i) p[i] = uf(rng);
      if (in.dtype == DataType::kFloat32) {
        (*feeds)[in.name] = std::move(f);
      } else if (in.dtype == DataType::kInt64 || in.dtype == DataType::kInt32) {
        for (int64_t i = 0; i < f.numel(); ++i) p[i] = std::floor((p[i] + 1) * 5);  // 0..9
        (*feeds)[in.name] = f.cast(in.dtype);
      } else {
        (*feeds)[in.name] = f.cast(in.dtype);
      }
    }
    return true;
  }
  size_t numBatches() const override { return n_; }
  Status reset() override { next_ = 0; return Status::Ok(); }

 private:
  struct In {
    std::string name;
    DataType dtype;
    std::vector<int64_t> dims;
  };
  std::vector<In> inputs_;
  size_t n_, next_ = 0;
  uint64_t seed_;
};

Result<Tensor> readNpyFor(const Value* v, const std::string& path) {
  RJ_ASSIGN_OR_RETURN(Tensor t, readNpy(path));
  if (v->type.shape.rank_known && t.rank() + 1 == v->type.shape.dims.size()) {
    std::vector<int64_t> d{1};
    d.insert(d.end(), t.dims().begin(), t.dims().end());
    t = t.reshaped(d);
  }
  if (t.dtype() != v->type.dtype)
    return makeError(StatusCode::kInvalidArgument, "'", path, "' holds ", dataTypeName(t.dtype()),
                     " but input '", v->name, "' is ", dataTypeName(v->type.dtype));
  if (v->type.shape.rank_known && t.rank() != v->type.shape.dims.size())
    return makeError(StatusCode::kInvalidArgument, "'", path, "' has rank ", t.rank(), " but input '", v->name,
                     "' has rank ", v->type.shape.dims.size());
  for (size_t i = 0; v->type.shape.rank_known && i < t.rank(); ++i) {
    const Dim& d = v->type.shape.dims[i];
    if (d.known() && d.value != t.dims()[i])
      return makeError(StatusCode::kInvalidArgument, "'", path, "' has dims ", t.summary(), " but input '",
                       v->name, "' needs ", v->type.shape.dims[i].toString(), " at axis ", i);
  }
  return t;
}

class NpyFolderCalibrator final : public Calibrator {
 public:
  // samples[i]: input name -> file.
  NpyFolderCalibrator(const Graph& g, std::vector<std::map<std::string, std::string>> samples)
      : samples_(std::move(samples)) {
    for (Value* v : g.inputs) inputs_[v->name] = v;
  }
  Result<bool> getBatch(std::map<std::string, Tensor>* feeds) override {
    if (next_ >= samples_.size()) return false;
    feeds->clear();
    for (const auto& [name, path] : samples_[next_]) {
      RJ_ASSIGN_OR_RETURN(Tensor t, readNpyFor(inputs_.at(name), path));
      (*feeds)[name] = std::move(t);
    }
    ++next_;
    return true;
  }
  size_t numBatches() const override { return samples_.size(); }
  Status reset() override { next_ = 0; return Status::Ok(); }

 private:
  std::vector<std::map<std::string, std::string>> samples_;
  std::map<std::string, const Value*> inputs_;
  size_t next_ = 0;
};

bool endsWith(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

bool isImageName(const std::string& path) {
  std::string s = path;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return endsWith(s, ".jpg") || endsWith(s, ".jpeg") || endsWith(s, ".png") || endsWith(s, ".bmp");
}

Result<std::vector<fs::path>> listDir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return makeError(StatusCode::kNotFound, "calibration data folder '", dir, "' does not exist or is not a folder");
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir, ec)) out.push_back(e.path());
  if (ec) return makeError(StatusCode::kIoError, "cannot list '", dir, "': ", ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

class ImageFolderCalibrator final : public Calibrator {
 public:
  ImageFolderCalibrator(std::string input, std::vector<std::string> files, ImagePreprocess pre)
      : input_(std::move(input)), files_(std::move(files)), pre_(std::move(pre)) {}
  Result<bool> getBatch(std::map<std::string, Tensor>* feeds) override {
    if (next_ >= files_.size()) return false;
    const int b = std::max(1, pre_.batch);
    const size_t end = next_ + static_cast<size_t>(b);
    if (end > files_.size()) return false;  // a partial batch would not fit a fixed batch dim
    Tensor batch(DataType::kFloat32, {b, 3, pre_.height, pre_.width});
    const int64_t per = 3LL * pre_.height * pre_.width;
    for (int i = 0; i < b; ++i) {
      RJ_ASSIGN_OR_RETURN(Tensor t, loadImageTensor(files_[next_ + i], pre_));
      std::copy(t.data<float>(), t.data<float>() + per, batch.data<float>() + i * per);
    }
    next_ = end;
    feeds->clear();
    (*feeds)[input_] = std::move(batch);
    return true;
  }
  size_t numBatches() const override { return files_.size() / std::max(1, pre_.batch); }
  Status reset() override { next_ = 0; return Status::Ok(); }

 private:
  std::string input_;
  std::vector<std::string> files_;
  ImagePreprocess pre_;
  size_t next_ = 0;
};

}  // namespace

std::unique_ptr<Calibrator> makeRandomCalibrator(const Graph& g, size_t num_batches, uint64_t seed) {
  return std::make_unique<RandomCalibrator>(g, num_batches, seed);
}

Result<std::unique_ptr<Calibrator>> makeNpyFolderCalibrator(const Graph& g, const std::string& dir,
                                                            size_t max_samples) {
  RJ_ASSIGN_OR_RETURN(auto entries, listDir(dir));
  std::vector<std::map<std::string, std::string>> samples;
  bool has_subdirs = false;
  for (const auto& p : entries) has_subdirs |= fs::is_directory(p);
  if (has_subdirs) {
    for (const auto& p : entries) {
      if (!fs::is_directory(p)) continue;
      std::map<std::string, std::string> s;
      for (Value* v : g.inputs) {
        fs::path f = p / (v->name + ".npy");
        if (!fs::exists(f))
          return makeError(StatusCode::kNotFound, "sample folder '", p.string(), "' has no '", v->name,
                           ".npy' for model input '", v->name, "'");
        s[v->name] = f.string();
      }
      samples.push_back(std::move(s));
    }
  } else if (g.inputs.size() == 1) {
    for (const auto& p : entries)
      if (p.extension() == ".npy") samples.push_back({{g.inputs[0]->name, p.string()}});
  } else {
    // <input>_<anything>.npy: the k-th file of each input forms sample k.
    std::map<std::string, std::vector<std::string>> per_input;
    for (const auto& p : entries) {
      if (p.extension() != ".npy") continue;
      std::string stem = p.filename().string();
      for (Value* v : g.inputs)
        if (stem.rfind(v->name + "_", 0) == 0) per_input[v->name].push_back(p.string());
    }
    size_t n = std::numeric_limits<size_t>::max();
    for (Value* v : g.inputs) {
      n = std::min(n, per_input[v->name].size());
      if (per_input[v->name].empty())
        return makeError(StatusCode::kNotFound, "'", dir, "' has no '", v->name, "_*.npy' files for model input '",
                         v->name, "' (multi-input models need <input>_<k>.npy files or one subfolder per sample)");
    }
    for (size_t k = 0; k < n; ++k) {
      std::map<std::string, std::string> s;
      for (Value* v : g.inputs) s[v->name] = per_input[v->name][k];
      samples.push_back(std::move(s));
    }
  }
  if (samples.empty()) return makeError(StatusCode::kNotFound, "calibration data folder '", dir, "' holds no .npy files");
  if (max_samples && samples.size() > max_samples) samples.resize(max_samples);
  return std::unique_ptr<Calibrator>(new NpyFolderCalibrator(g, std::move(samples)));
}

Result<Tensor> loadImageTensor(const std::string& path, const ImagePreprocess& pre) {
  if (pre.height <= 0 || pre.width <= 0)
    return makeError(StatusCode::kInvalidArgument, "image size ", pre.height, "x", pre.width, " for '", path,
                     "' must be positive (give --calib-size HxW)");
  if (pre.mean.size() != 3 || pre.std.size() != 3)
    return makeError(StatusCode::kInvalidArgument, "image mean/std need 3 values each (R,G,B)");
  for (float s : pre.std)
    if (!(s > 0)) return makeError(StatusCode::kInvalidArgument, "image std values must be positive");
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "cannot open image '", path, "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  int w = 0, h = 0, c = 0;
  if (bytes.empty() || bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return makeError(StatusCode::kInvalidArgument, "image '", path, "' is empty or too large");
  uint8_t* px = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h, &c, 3);
  if (!px) return makeError(StatusCode::kInvalidArgument, "cannot decode image '", path, "': ", stbi_failure_reason());
  std::unique_ptr<uint8_t, void (*)(void*)> hold(px, stbi_image_free);
  const int H = pre.height, W = pre.width;
  Tensor t(DataType::kFloat32, {1, 3, H, W});
  float* o = t.data<float>();
  // Bilinear resize with half-pixel centers (what PIL / cv2 INTER_LINEAR do without antialias).
  for (int y = 0; y < H; ++y) {
    double sy = std::clamp((y + 0.5) * h / H - 0.5, 0.0, h - 1.0);
    int y0 = static_cast<int>(sy), y1 = std::min(y0 + 1, h - 1);
    double fy = sy - y0;
    for (int x = 0; x < W; ++x) {
      double sx = std::clamp((x + 0.5) * w / W - 0.5, 0.0, w - 1.0);
      int x0 = static_cast<int>(sx), x1 = std::min(x0 + 1, w - 1);
      double fx = sx - x0;
      for (int ch = 0; ch < 3; ++ch) {
        auto at = [&](int yy, int xx) { return static_cast<double>(px[(static_cast<size_t>(yy) * w + xx) * 3 + ch]); };
        double v = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
        o[(static_cast<size_t>(ch) * H + y) * W + x] = static_cast<float>((v / 255.0 - pre.mean[ch]) / pre.std[ch]);
      }
    }
  }
  return t;
}

Result<std::vector<std::string>> listImageFiles(const std::string& dir) {
  RJ_ASSIGN_OR_RETURN(auto entries, listDir(dir));
  std::vector<std::string> files;
  for (const auto& p : entries)
    if (fs::is_regular_file(p) && isImageName(p.string())) files.push_back(p.string());
  return files;
}

Result<std::unique_ptr<Calibrator>> makeImageFolderCalibrator(const Graph& g, const std::string& dir,
                                                              const ImagePreprocess& pre0, size_t max_samples) {
  if (g.inputs.size() != 1)
    return makeError(StatusCode::kUnsupported, "image calibration data needs a model with one input; this one has ",
                     g.inputs.size());
  const Value* in = g.inputs[0];
  const auto& d = in->type.shape.dims;
  if (!in->type.shape.rank_known || d.size() != 4 || (d[1].known() && d[1].value != 3) ||
      in->type.dtype != DataType::kFloat32)
    return makeError(StatusCode::kUnsupported, "image calibration data needs a float32 input shaped (N, 3, H, W); '",
                     in->name, "' is ", in->type.toString());
  ImagePreprocess pre = pre0;
  if (pre.height <= 0) pre.height = d[2].known() ? static_cast<int>(d[2].value) : 0;
  if (pre.width <= 0) pre.width = d[3].known() ? static_cast<int>(d[3].value) : 0;
  if (pre.height <= 0 || pre.width <= 0)
    return makeError(StatusCode::kInvalidArgument, "input '", in->name,
                     "' has symbolic height/width: give the image size with --calib-size HxW");
  if ((d[2].known() && d[2].value != pre.height) || (d[3].known() && d[3].value != pre.width))
    return makeError(StatusCode::kInvalidArgument, "--calib-size ", pre.height, "x", pre.width, " does not match input '",
                     in->name, "' ", in->type.toString());
  if (d[0].known()) pre.batch = static_cast<int>(d[0].value);
  RJ_ASSIGN_OR_RETURN(std::vector<std::string> files, listImageFiles(dir));
  if (max_samples && files.size() > max_samples * pre.batch) files.resize(max_samples * pre.batch);
  if (files.size() < static_cast<size_t>(std::max(1, pre.batch)))
    return makeError(StatusCode::kNotFound, "image folder '", dir, "' holds ", files.size(),
                     " images (.jpg/.jpeg/.png/.bmp); one batch needs ", std::max(1, pre.batch));
  return std::unique_ptr<Calibrator>(new ImageFolderCalibrator(in->name, std::move(files), pre));
}

Result<std::unique_ptr<Calibrator>> makeCalibratorForSpec(const Graph& g, const std::string& spec,
                                                          const ImagePreprocess& pre, size_t max_samples,
                                                          uint64_t seed) {
  if (spec.empty() || spec == "random") return makeRandomCalibrator(g, max_samples ? max_samples : 4, seed);
  RJ_ASSIGN_OR_RETURN(auto entries, listDir(spec));
  size_t npy = 0, img = 0;
  for (const auto& p : entries) {
    if (p.extension() == ".npy" || fs::is_directory(p)) ++npy;
    if (isImageName(p.string())) ++img;
  }
  if (img > 0 && npy == 0) return makeImageFolderCalibrator(g, spec, pre, max_samples);
  if (npy > 0) return makeNpyFolderCalibrator(g, spec, max_samples);
  return makeError(StatusCode::kNotFound, "'", spec, "' holds neither .npy files nor images (.jpg/.jpeg/.png/.bmp)");
}

// ---------------------------------------------------------------------------------------------
// Statistics and the table

float CalibrationTable::scale(const std::string& tensor) const {
  auto it = amax.find(tensor);
  return it == amax.end() ? 0.f : it->second / 127.f;
}

void ActivationStats::add(const std::string& name, const Tensor& t) {
  if (!t.isTensor() || t.numel() == 0) return;
  DataType dt = t.dtype();
  if (dt != DataType::kFloat32 && dt != DataType::kFloat16 && dt != DataType::kBFloat16 && dt != DataType::kFloat64)
    return;
  auto it = hists_.find(name);
  if (it == hists_.end()) it = hists_.emplace(name, Histogram(num_bins_)).first;
  if (dt == DataType::kFloat32) {
    it->second.add(t.data<float>(), t.numel());
  } else {
    Tensor f = t.cast(DataType::kFloat32);
    it->second.add(f.data<float>(), f.numel());
  }
}

Result<ActivationStats> collectStats(const Graph& g, Calibrator& calib, const CalibrationOptions& opt,
                                     size_t* batches_run) {
  ActivationStats stats(opt.num_bins);
  reference::RunOptions ro;
  ro.on_node = [&](const Node& n, const std::vector<Tensor>& outs) {
    for (size_t i = 0; i < outs.size() && i < n.outputs.size(); ++i)
      if (n.outputs[i]) stats.add(n.outputs[i]->name, outs[i]);
  };
  size_t done = 0;
  const size_t total = opt.max_batches ? std::min(opt.max_batches, calib.numBatches() ? calib.numBatches() : opt.max_batches)
                                       : calib.numBatches();
  std::map<std::string, Tensor> feeds;
  while (!opt.max_batches || done < opt.max_batches) {
    auto more = calib.getBatch(&feeds);
    if (!more.ok()) return more.status().withContext("calibration batch " + std::to_string(done));
    if (!*more) break;
    for (const auto& [name, t] : feeds) stats.add(name, t);
    auto r = reference::run(g, feeds, ro);
    if (!r.ok()) return r.status().withContext("calibration batch " + std::to_string(done));
    ++done;
    if (opt.progress) opt.progress(done, total);
  }
  if (done == 0) return makeError(StatusCode::kInvalidArgument, "the calibrator gave no batches");
  if (batches_run) *batches_run = done;
  return stats;
}

CalibrationTable makeTable(const Graph& g, const ActivationStats& stats, const ThresholdOptions& opt,
                           size_t num_batches) {
  CalibrationTable t;
  t.model_hash = graphHash(g);
  t.method = calibrationMethodName(opt.method);
  if (opt.method == CalibrationMethod::kPercentile) {
    std::ostringstream os;
    os << "-" << opt.percentile;
    t.method += os.str();
  }
  t.num_batches = num_batches;
  for (const auto& [name, h] : stats.histograms()) t.amax[name] = static_cast<float>(computeThreshold(h, opt));
  return t;
}

Result<CalibrationTable> calibrate(const Graph& g, Calibrator& calib, const CalibrationOptions& opt) {
  size_t n = 0;
  RJ_ASSIGN_OR_RETURN(ActivationStats stats, collectStats(g, calib, opt, &n));
  return makeTable(g, stats, opt.threshold, n);
}

// ---------------------------------------------------------------------------------------------
// Hash and cache

namespace {

struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    for (size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 1099511628211ull;
    }
  }
  void str(const std::string& s) {
    uint64_t n = s.size();
    bytes(&n, sizeof n);
    bytes(s.data(), s.size());
  }
};

void hashGraph(const Graph& g, Fnv& f) {
  for (Value* v : g.inputs) f.str("in:" + v->name + ":" + v->type.toString());
  for (Value* v : g.outputs) f.str("out:" + v->name);
  auto order = g.topoOrder();
  std::vector<const Node*> nodes;
  if (order.ok()) {
    for (Node* n : *order) nodes.push_back(n);
  } else {
    for (const auto& n : g.nodes()) nodes.push_back(n.get());
  }
  for (const Node* n : nodes) {
    f.str(n->domain + "::" + n->op_type + ":" + n->name);
    for (Value* v : n->inputs) f.str(v ? v->name : "-");
    for (Value* v : n->outputs) f.str(v ? v->name : "-");
    for (const auto& [k, a] : n->attrs) {
      f.str(k + "=" + a.toString());
      if (a.g) hashGraph(*a.g, f);
    }
  }
  for (const auto& v : g.values()) {
    if (!v->constant || !v->constant->isTensor()) continue;
    f.str("const:" + v->name + ":" + v->constant->type().toString());
    if (v->constant->raw()) f.bytes(v->constant->raw(), v->constant->nbytes());
  }
}

}  // namespace

std::string graphHash(const Graph& g) {
  Fnv f;
  hashGraph(g, f);
  char buf[32];
  std::snprintf(buf, sizeof buf, "fnv1a64:%016llx", static_cast<unsigned long long>(f.h));
  return buf;
}

Status saveCalibrationCache(const std::string& path, const CalibrationTable& t) {
  nlohmann::json j;
  j["format"] = "ramjet-calibration";
  j["version"] = 1;
  j["model_hash"] = t.model_hash;
  j["method"] = t.method;
  j["num_batches"] = t.num_batches;
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& [name, a] : t.amax) tensors[name] = {{"amax", static_cast<double>(a)}, {"scale", a / 127.0}};
  j["tensors"] = tensors;
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return makeError(StatusCode::kIoError, "cannot write calibration cache '", tmp, "'");
    f << j.dump(1) << "\n";
    if (!f) return makeError(StatusCode::kIoError, "write to calibration cache '", tmp, "' failed");
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return makeError(StatusCode::kIoError, "cannot rename '", tmp, "' to '", path, "': ", ec.message());
  return Status::Ok();
}

Result<CalibrationTable> loadCalibrationCache(const std::string& path, const std::string& expected_hash) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "cannot open calibration cache '", path, "'");
  nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& why) {
    return makeError(StatusCode::kInvalidArgument, "calibration cache '", path, "': ", why);
  };
  if (j.is_discarded() || !j.is_object()) return bad("not valid JSON");
  if (!j.contains("format") || j["format"] != "ramjet-calibration") return bad("not a ramjet calibration cache");
  if (!j.contains("version") || !j["version"].is_number_integer()) return bad("missing version");
  if (j["version"].get<int64_t>() != 1)
    return bad("version " + std::to_string(j["version"].get<int64_t>()) + " is not supported (this ramjet reads 1)");
  if (!j.contains("model_hash") || !j["model_hash"].is_string()) return bad("missing model_hash");
  if (!j.contains("tensors") || !j["tensors"].is_object()) return bad("missing tensors");
  CalibrationTable t;
  t.model_hash = j["model_hash"].get<std::string>();
  if (!expected_hash.empty() && t.model_hash != expected_hash)
    return makeError(StatusCode::kInvalidArgument, "calibration cache '", path, "' is stale: it was made for model ",
                     t.model_hash, " but this model is ", expected_hash, " (recalibrate with `ramjet calibrate`)");
  if (j.contains("method") && j["method"].is_string()) t.method = j["method"].get<std::string>();
  if (j.contains("num_batches") && j["num_batches"].is_number_unsigned()) t.num_batches = j["num_batches"].get<size_t>();
  for (const auto& [name, e] : j["tensors"].items()) {
    if (!e.is_object() || !e.contains("amax") || !e["amax"].is_number()) return bad("tensor '" + name + "' has no amax");
    double a = e["amax"].get<double>();
    if (!std::isfinite(a) || a < 0) return bad("tensor '" + name + "' has an invalid amax");
    t.amax[name] = static_cast<float>(a);
  }
  return t;
}

}  // namespace ramjet::precision
