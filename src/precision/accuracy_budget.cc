// Accuracy-budget search: see accuracy_budget.h.
#include "precision/accuracy_budget.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "backends/cpu/reference/interpreter.h"
#include "precision/lowering.h"

namespace ramjet::precision {
namespace {

Tensor asFloat(const Tensor& t) { return t.dtype() == DataType::kFloat32 ? t : t.cast(DataType::kFloat32); }

bool numeric(const Tensor& t) { return t.isTensor() && t.dtype() != DataType::kString && t.dtype() != DataType::kUndefined; }

Status sameLayout(const std::vector<std::vector<Tensor>>& got, const std::vector<std::vector<Tensor>>& ref) {
  if (got.size() != ref.size())
    return makeError(StatusCode::kInvalidArgument, "accuracy loss: ", got.size(), " candidate batches vs ", ref.size(),
                     " reference batches");
  for (size_t b = 0; b < got.size(); ++b) {
    if (got[b].size() != ref[b].size())
      return makeError(StatusCode::kInvalidArgument, "accuracy loss: batch ", b, " has ", got[b].size(),
                       " candidate outputs vs ", ref[b].size(), " reference outputs");
    for (size_t i = 0; i < got[b].size(); ++i)
      if (got[b][i].dims() != ref[b][i].dims())
        return makeError(StatusCode::kInvalidArgument, "accuracy loss: output ", i, " of batch ", b, " is ",
                         dimsToString(got[b][i].dims()), " but the reference is ", dimsToString(ref[b][i].dims()));
  }
  return Status::Ok();
}

std::string pct(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f%%", 100.0 * x);
  return buf;
}

// "auto": top1 for a single [N, C >= 2] output (a classifier), else cosine.
std::string resolveMetric(const std::string& metric, const std::vector<Tensor>& first_outputs) {
  if (metric != "auto") return metric;
  const auto& r0 = first_outputs;
  return r0.size() == 1 && r0[0].rank() == 2 && r0[0].dims()[1] >= 2 ? "top1" : "cosine";
}

// The ranking proxy: relative L2 error per channel (dim 1) of every float output, averaged over
// channels, so a detector's box rows (hundreds of pixels) and score rows (0..1) weigh the same.
// Continuous, unlike top-1 or mAP agreement on a few batches, which one layer rarely moves.
double channelRelL2(const std::vector<std::vector<Tensor>>& got, const std::vector<std::vector<Tensor>>& ref) {
  std::vector<double> nd, nr;  // per (output, channel)
  size_t base = 0;
  if (ref.empty()) return 0;
  for (size_t i = 0; i < ref[0].size(); ++i) {
    const Tensor& r0 = ref[0][i];
    if (!numeric(r0)) continue;
    const int64_t C = r0.rank() >= 2 ? r0.dims()[1] : 1;
    nd.resize(base + C, 0.0);
    nr.resize(base + C, 0.0);
    for (size_t b = 0; b < ref.size(); ++b) {
      Tensor g = asFloat(got[b][i]), r = asFloat(ref[b][i]);
      const int64_t n = r.rank() >= 1 ? r.dims()[0] : 1;
      const int64_t inner = r.numel() / std::max<int64_t>(1, n * C);
      const float *gp = g.data<float>(), *rp = r.data<float>();
      for (int64_t k = 0; k < r.numel(); ++k) {
        const int64_t c = C == 1 ? 0 : (k / inner) % C;
        const double x = std::isfinite(gp[k]) ? gp[k] : 1e30, y = rp[k];
        nd[base + c] += (x - y) * (x - y);
        nr[base + c] += y * y;
      }
    }
    base += C;
  }
  double sum = 0;
  for (size_t c = 0; c < nd.size(); ++c) sum += nr[c] > 0 ? std::sqrt(nd[c] / nr[c]) : std::sqrt(nd[c]);
  return nd.empty() ? 0.0 : sum / static_cast<double>(nd.size());
}

// What a decision depends on: the model, the activation ranges, the budget options and the
// precision of the unquantized layers.
std::string decisionKey(const Graph& g, const CalibrationTable& t, const BuildOptions& opt) {
  std::ostringstream ranges;
  for (const auto& [name, a] : t.amax) ranges << name << '=' << a << ';';
  std::ostringstream k;
  char b[32];
  std::snprintf(b, sizeof b, "%.9g", opt.accuracy_budget);
  k << "model=" << graphHash(g) << "|ranges=" << std::hash<std::string>{}(ranges.str()) << "|budget=" << b
    << "|metric=" << opt.accuracy_metric << "|samples=" << opt.accuracy_samples
    << "|fallback=" << precisionName(int8FallbackPrecision(opt)) << "|overrides=";
  for (const auto& o : opt.precision_overrides) k << o << ',';
  return k.str();
}

bool loadDecision(const std::string& file, const std::string& key, AccuracyBudgetResult* r) {
  std::ifstream f(file, std::ios::binary);
  if (!f) return false;
  nlohmann::json j = nlohmann::json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("decisions") || !j["decisions"].is_object() ||
      !j["decisions"].contains(key))
    return false;
  const auto& d = j["decisions"][key];
  try {
    r->metric = d.at("metric").get<std::string>();
    r->ranking = d.at("ranking").get<std::string>();
    r->loss_int8 = d.at("loss_int8").get<double>();
    r->loss_fp16 = d.at("loss_fp16").get<double>();
    r->loss_final = d.at("loss_final").get<double>();
    r->met = d.at("met").get<bool>();
    r->int8_layers = d.at("int8_layers").get<size_t>();
    r->samples = d.at("samples").get<size_t>();
    r->kept_fp16 = d.at("kept_fp16").get<std::vector<std::string>>();
    r->layers.clear();
    for (const auto& l : d.at("layers")) r->layers.push_back({l.at(0).get<std::string>(), l.at(1).get<double>(), l.at(2).get<double>()});
  } catch (const std::exception&) {
    return false;  // a damaged entry: search again (and overwrite it)
  }
  return true;
}

Status saveDecision(const std::string& file, const std::string& key, const AccuracyBudgetResult& r) {
  nlohmann::json j = nlohmann::json::object();
  {
    std::ifstream f(file, std::ios::binary);
    if (f) {
      j = nlohmann::json::parse(f, nullptr, false);
      if (j.is_discarded() || !j.is_object()) j = nlohmann::json::object();
    }
  }
  j["format"] = "ramjet-accuracy-budget";
  j["version"] = 1;
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : r.layers) layers.push_back({l.layer, l.loss_fp16, l.gain});
  j["decisions"][key] = {{"metric", r.metric},       {"ranking", r.ranking},       {"loss_int8", r.loss_int8},
                         {"loss_fp16", r.loss_fp16}, {"loss_final", r.loss_final}, {"met", r.met},
                         {"int8_layers", r.int8_layers}, {"samples", r.samples},  {"kept_fp16", r.kept_fp16},
                         {"layers", layers},         {"search_s", r.seconds}};
  const std::string tmp = file + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return makeError(StatusCode::kIoError, "cannot write accuracy-budget cache '", tmp, "'");
    f << j.dump(1) << "\n";
    if (!f) return makeError(StatusCode::kIoError, "write to '", tmp, "' failed");
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    std::remove(tmp.c_str());
    return makeError(StatusCode::kIoError, "cannot rename '", tmp, "' to '", file, "'");
  }
  return Status::Ok();
}

}  // namespace

Result<double> accuracyLoss(const std::string& metric0, const std::vector<std::vector<Tensor>>& got,
                            const std::vector<std::vector<Tensor>>& ref) {
  RJ_RETURN_IF_ERROR(sameLayout(got, ref));
  if (ref.empty()) return makeError(StatusCode::kInvalidArgument, "accuracy loss: no samples");
  const std::string metric = resolveMetric(metric0, ref[0]);
  if (metric == "top1") {
    int64_t rows = 0, agree = 0;
    for (size_t b = 0; b < ref.size(); ++b)
      for (size_t i = 0; i < ref[b].size(); ++i) {
        const Tensor &gt = got[b][i], &rt = ref[b][i];
        if (rt.rank() != 2 || rt.dims()[1] < 2 || !numeric(rt))
          return makeError(StatusCode::kInvalidArgument, "accuracy metric top1 needs [N, classes] outputs; output ", i,
                           " is ", dimsToString(rt.dims()), " (use cosine or rel-l2)");
        Tensor g = asFloat(gt), r = asFloat(rt);
        const int64_t n = rt.dims()[0], c = rt.dims()[1];
        const float *gp = g.data<float>(), *rp = r.data<float>();
        for (int64_t k = 0; k < n; ++k) {
          auto gi = std::max_element(gp + k * c, gp + (k + 1) * c) - (gp + k * c);
          auto ri = std::max_element(rp + k * c, rp + (k + 1) * c) - (rp + k * c);
          agree += gi == ri;
          ++rows;
        }
      }
    return rows ? 1.0 - static_cast<double>(agree) / static_cast<double>(rows) : 0.0;
  }
  if (metric == "cosine" || metric == "rel-l2") {
    double dot = 0, ng = 0, nr = 0, nd = 0;
    for (size_t b = 0; b < ref.size(); ++b)
      for (size_t i = 0; i < ref[b].size(); ++i) {
        if (!numeric(ref[b][i]) || !numeric(got[b][i])) continue;
        Tensor g = asFloat(got[b][i]), r = asFloat(ref[b][i]);
        const float *gp = g.data<float>(), *rp = r.data<float>();
        for (int64_t k = 0; k < r.numel(); ++k) {
          const double x = gp[k], y = rp[k];
          if (!std::isfinite(x)) return 1.0;  // a NaN/Inf output loses everything
          dot += x * y;
          ng += x * x;
          nr += y * y;
          nd += (x - y) * (x - y);
        }
      }
    if (metric == "rel-l2") return nr > 0 ? std::sqrt(nd / nr) : (nd > 0 ? 1.0 : 0.0);
    if (ng == 0 && nr == 0) return 0.0;
    if (ng == 0 || nr == 0) return 1.0;
    return std::max(0.0, 1.0 - dot / std::sqrt(ng * nr));
  }
  return makeError(StatusCode::kInvalidArgument, "unknown accuracy metric '", metric0,
                   "' (auto, top1, cosine, rel-l2, or custom with a loss callback)");
}

std::vector<std::string> AccuracyBudgetResult::overrides() const {
  std::vector<std::string> o;
  for (const auto& n : kept_fp16) o.push_back(n + ":fp16");
  return o;
}

std::string AccuracyBudgetResult::toString() const {
  std::ostringstream os;
  os << "accuracy budget " << pct(budget) << " (" << metric << " loss vs FP32, " << samples << " calibration batches): "
     << "all-INT8 " << pct(loss_int8);
  if (!layers.empty() || !met) os << ", INT8 layers all FP16 " << pct(loss_fp16);
  os << ", chosen " << pct(loss_final) << (met ? " - met" : " - NOT met (the FP16 floor is above the budget)") << "\n";
  os << "  " << int8_layers - std::min(int8_layers, kept_fp16.size()) << " of " << int8_layers
     << " quantizable layers INT8";
  if (!kept_fp16.empty()) {
    os << "; kept FP16 (" << ranking << " recovered by keeping that layer alone FP16):\n";
    std::map<std::string, const LayerSensitivity*> by;
    for (const auto& l : layers) by[l.layer] = &l;
    size_t shown = 0;
    for (const auto& k : kept_fp16) {
      if (++shown > 30) {
        os << "    ... and " << kept_fp16.size() - 30 << " more\n";
        break;
      }
      os << "    " << k;
      if (by.count(k)) os << "  " << pct(by[k]->gain);
      os << "\n";
    }
  } else {
    os << "\n";
  }
  if (layers.size() > kept_fp16.size()) {  // layers are most sensitive first; the kept ones lead
    os << "  least sensitive INT8 layers:";
    for (size_t i = layers.size(); i > std::max(kept_fp16.size(), layers.size() - std::min<size_t>(3, layers.size())); --i)
      os << " " << layers[i - 1].layer << " " << pct(layers[i - 1].gain);
    os << "\n";
  }
  char buf[96];
  if (!from_cache.empty()) {
    os << "  decision reused from " << from_cache << " (no builds)\n";
  } else {
    std::snprintf(buf, sizeof buf, "  %zu CPU builds in %.1f s\n", builds, seconds);
    os << buf;
  }
  return os.str();
}

Result<AccuracyBudgetResult> searchAccuracyBudget(const Graph& g, const BuildOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  auto log = [&](Severity s, const std::string& m) {
    if (opt.logger) opt.logger->log(s, m);
  };
  if (opt.precision != Precision::kINT8)
    return makeError(StatusCode::kInvalidArgument, "an accuracy budget applies to INT8 builds (--int8), not ",
                     precisionName(opt.precision));
  if (!(opt.accuracy_budget > 0) || !(opt.accuracy_budget < 1))
    return makeError(StatusCode::kInvalidArgument, "accuracy budget must be a fraction in (0, 1), e.g. 0.005 for 0.5%; got ",
                     opt.accuracy_budget);
  if (!opt.calibrator && opt.calibration_cache_path.empty())
    return makeError(StatusCode::kInvalidArgument,
                     "an accuracy budget needs calibration data to measure accuracy on (a calibrator / --calib-data)");
  if (opt.accuracy_samples == 0) return makeError(StatusCode::kInvalidArgument, "accuracy_samples must be at least 1");
  const bool custom = opt.accuracy_metric == "custom" || opt.accuracy_metric.rfind("custom:", 0) == 0;
  if (custom && !opt.accuracy_loss)
    return makeError(StatusCode::kInvalidArgument, "accuracy metric '", opt.accuracy_metric,
                     "' needs BuildOptions::accuracy_loss");

  AccuracyBudgetResult r;
  r.budget = opt.accuracy_budget;
  r.metric = opt.accuracy_metric;

  // Activation ranges once; every candidate build reuses them.
  RJ_ASSIGN_OR_RETURN(r.table, obtainCalibration(g, opt, true, &r.calibration_source, opt.logger));
  const CalibrationTable& table = r.table;

  // A decision made before for this model, these ranges and these options is reused from the
  // calibration cache's side file (a plain "custom" metric has no identity: never cached).
  const std::string cache_file = opt.calibration_cache_path.empty() ? "" : opt.calibration_cache_path + ".budget.json";
  const std::string key = opt.accuracy_metric == "custom" ? "" : decisionKey(g, table, opt);
  if (!cache_file.empty() && !key.empty() && loadDecision(cache_file, key, &r)) {
    r.from_cache = cache_file;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log(Severity::kInfo, "accuracy budget: decision reused from " + cache_file);
    return r;
  }

  if (!opt.calibrator)
    return makeError(StatusCode::kInvalidArgument, "an accuracy budget needs calibration data to measure accuracy on "
                     "(a calibrator / --calib-data): no decision for these options is cached in '", cache_file, "'");

  // Samples: the first batches of the calibration data, and their FP32 reference outputs.
  Status rs = opt.calibrator->reset();
  if (!rs.ok()) return rs.withContext("the accuracy budget re-reads the calibration data");
  std::vector<std::map<std::string, Tensor>> feeds;
  while (feeds.size() < opt.accuracy_samples) {
    std::map<std::string, Tensor> f;
    RJ_ASSIGN_OR_RETURN(bool more, opt.calibrator->getBatch(&f));
    if (!more) break;
    feeds.push_back(std::move(f));
  }
  (void)opt.calibrator->reset();
  if (feeds.empty()) return makeError(StatusCode::kInvalidArgument, "the calibrator gave no batches to measure accuracy on");
  r.samples = feeds.size();
  std::vector<std::vector<Tensor>> ref;
  for (const auto& f : feeds) {
    auto y = reference::run(g, f);
    if (!y.ok()) return y.status().withContext("FP32 reference on a calibration batch");
    ref.push_back(std::move(*y));
  }
  if (!custom) r.metric = resolveMetric(r.metric, ref[0]);

  BuildOptions sub = opt;
  sub.int8_fallback = int8FallbackPrecision(opt);  // the target's, before switching to the CPU
  sub.device = DeviceKind::kCpu;
  sub.device_index = 0;
  sub.accuracy_budget = 0;
  sub.extra_profiles.clear();  // the stand-ins need one engine, at the first profile
  sub.calibrator = nullptr;
  sub.calibration_cache_path.clear();
  sub.calibration_progress = nullptr;
  sub.activation_amax = table.amax;
  sub.timing_cache_path.clear();
  sub.logger = nullptr;
  sub.progress = nullptr;
  sub.explain = nullptr;

  // One candidate: the listed layers FP16, every other quantizable layer INT8. Returns the
  // metric's loss; *proxy (when given) gets the continuous ranking loss of the same outputs.
  std::vector<std::string> int8_names;
  const bool continuous = r.metric == "cosine" || r.metric == "rel-l2";
  r.ranking = continuous ? r.metric : "channel rel-l2";
  auto evaluate = [&](const std::vector<std::string>& keep, bool record_layers, double* proxy = nullptr) -> Result<double> {
    BuildOptions o = sub;
    for (const auto& k : keep) o.precision_overrides.push_back(k + ":fp16");
    auto plan = build(g, o);
    if (!plan.ok()) return plan.status().withContext("accuracy-budget candidate build");
    ++r.builds;
    if (record_layers) int8_names = plan->report().int8_layers;
    RJ_ASSIGN_OR_RETURN(auto engine, Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size()));
    RJ_ASSIGN_OR_RETURN(auto ctx, engine->createContext());
    std::vector<std::vector<Tensor>> got;
    for (const auto& f : feeds) {
      auto y = ctx->infer(f);
      if (!y.ok()) return y.status().withContext("accuracy-budget candidate on a calibration batch");
      got.push_back(std::move(*y));
    }
    if (proxy && !continuous) *proxy = channelRelL2(got, ref);
    if (custom) {
      RJ_ASSIGN_OR_RETURN(double l, opt.accuracy_loss(got, ref));
      if (!std::isfinite(l) || l < 0)
        return makeError(StatusCode::kInvalidArgument, "the custom accuracy loss returned ", l, " (must be finite and >= 0)");
      if (proxy && continuous) *proxy = l;
      return l;
    }
    RJ_ASSIGN_OR_RETURN(double l, accuracyLoss(r.metric, got, ref));
    if (proxy && continuous) *proxy = l;
    return l;
  };

  double proxy_int8 = 0;
  RJ_ASSIGN_OR_RETURN(r.loss_int8, evaluate({}, true, &proxy_int8));
  r.int8_layers = int8_names.size();
  log(Severity::kInfo, "accuracy budget: all-INT8 " + r.metric + " loss " + pct(r.loss_int8) + " over " +
                           std::to_string(r.samples) + " batches (budget " + pct(r.budget) + "), " +
                           std::to_string(r.int8_layers) + " INT8 layers");
  r.loss_final = r.loss_int8;
  r.met = r.loss_int8 <= r.budget;
  auto finish = [&]() {
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!cache_file.empty() && !key.empty()) {
      Status st = saveDecision(cache_file, key, r);
      if (!st.ok()) log(Severity::kWarning, st.message());
    }
    return r;
  };
  if (r.met || int8_names.empty()) return finish();

  RJ_ASSIGN_OR_RETURN(r.loss_fp16, evaluate(int8_names, false));
  if (r.loss_fp16 > r.budget) {
    log(Severity::kWarning, "accuracy budget " + pct(r.budget) + " cannot be met: with every INT8 layer FP16 the " +
                                r.metric + " loss is " + pct(r.loss_fp16) + "; keeping them all FP16");
    r.kept_fp16 = int8_names;
    r.loss_final = r.loss_fp16;
    return finish();
  }

  // Sensitivity of each layer: the (ranking) loss recovered when it alone stays FP16.
  const size_t n = int8_names.size();
  for (size_t i = 0; i < n; ++i) {
    if (opt.progress) opt.progress(i, n, "accuracy budget: layer sensitivity");
    double p = 0;
    RJ_ASSIGN_OR_RETURN(double l, evaluate({int8_names[i]}, false, &p));
    r.layers.push_back({int8_names[i], l, proxy_int8 - p});
  }
  if (opt.progress) opt.progress(n, n, "accuracy budget: layer sensitivity");
  std::stable_sort(r.layers.begin(), r.layers.end(),
                   [](const LayerSensitivity& a, const LayerSensitivity& b) { return a.gain > b.gain; });
  auto topK = [&](size_t k) {
    std::vector<std::string> v;
    for (size_t i = 0; i < k; ++i) v.push_back(r.layers[i].layer);
    return v;
  };
  // Smallest k whose top-k-FP16 build fits: lo fails (k = 0 is all-INT8), hi fits (k = n is the floor).
  std::map<size_t, double> loss_at{{0, r.loss_int8}, {n, r.loss_fp16}};
  size_t lo = 0, hi = n;
  auto probe = [&](size_t k) -> Result<bool> {
    if (opt.progress) opt.progress(k, n, "accuracy budget: layers kept FP16");
    RJ_ASSIGN_OR_RETURN(double l, evaluate(topK(k), false));
    loss_at[k] = l;
    return l <= r.budget;
  };
  for (size_t k = 1; k < n; k *= 2) {
    RJ_ASSIGN_OR_RETURN(bool fits, probe(k));
    if (fits) {
      hi = k;
      break;
    }
    lo = k;
  }
  while (hi - lo > 1) {
    const size_t mid = lo + (hi - lo) / 2;
    RJ_ASSIGN_OR_RETURN(bool fits, probe(mid));
    (fits ? hi : lo) = mid;
  }
  r.kept_fp16 = topK(hi);
  r.loss_final = loss_at.at(hi);
  r.met = true;
  return finish();
}

}  // namespace ramjet::precision
