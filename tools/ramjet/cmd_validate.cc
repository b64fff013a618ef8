// `ramjet validate --model m.onnx [--plan m.plan] [--precision fp32|fp16|int8-sim]`: runs a
// candidate (a plan through the Engine API, or the simulated-INT8 reference graph) and the FP32
// CPU reference on the same inputs and reports how far apart they are, per output and, with
// --per-layer, per intermediate tensor to find the first layer that breaks accuracy.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "backends/cpu/reference/interpreter.h"
#include "commands.h"
#include "precision/calibrator.h"
#include "precision/fake_quant.h"
#include "precision_common.h"
#include "ramjet/engine.h"

// stb_image_write for the --plot PNG; static so it never clashes with src/vision's copy.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#endif
#include <stb/stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

namespace ramjet::cli {

void registerBackends();  // cmd_build.cc

namespace {

Tensor asFloat(const Tensor& t) { return t.dtype() == DataType::kFloat32 ? t : t.cast(DataType::kFloat32); }

bool isFloat(const Tensor& t) {
  DataType d = t.dtype();
  return t.isTensor() && (d == DataType::kFloat32 || d == DataType::kFloat16 || d == DataType::kBFloat16 ||
                          d == DataType::kFloat64);
}

// Accumulated over samples.
struct OutputMetric {
  double max_abs = 0, max_rel = 0, dot = 0, ng = 0, nr = 0, min_cos = 1;
  int64_t rows = 0, top1 = 0, top5 = 0;
  bool classifier = false, nan = false;
  double cosine() const { return ng > 0 && nr > 0 ? dot / std::sqrt(ng * nr) : (ng == nr ? 1.0 : 0.0); }

  Status add(const std::string& name, const Tensor& got0, const Tensor& ref0) {
    if (!isFloat(got0) || !isFloat(ref0)) {
      // Integer / bool outputs (class ids, masks): exact agreement only.
      CompareResult c = compareTensors(got0, ref0, 0, 0);
      if (!c.shape_match) return makeError(StatusCode::kInvalidArgument, "output '", name, "': shapes differ");
      max_abs = std::max(max_abs, c.max_abs);
      return Status::Ok();
    }
    Tensor got = asFloat(got0), ref = asFloat(ref0);
    if (got.dims() != ref.dims())
      return makeError(StatusCode::kInvalidArgument, "output '", name, "': candidate shape ", got.summary(),
                       " differs from the reference ", ref.summary());
    const float* g = got.data<float>();
    const float* r = ref.data<float>();
    double rmax = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) rmax = std::max(rmax, std::fabs(static_cast<double>(r[i])));
    double dd = 0, gg = 0, rr = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) {
      if (std::isnan(g[i]) != std::isnan(r[i])) nan = true;
      double d = std::fabs(static_cast<double>(g[i]) - r[i]);
      max_abs = std::max(max_abs, d);
      // Relative error where the reference is not negligible (1e-3 of the tensor's max).
      if (std::fabs(r[i]) > 1e-3 * rmax) max_rel = std::max(max_rel, d / std::fabs(r[i]));
      dd += static_cast<double>(g[i]) * r[i];
      gg += static_cast<double>(g[i]) * g[i];
      rr += static_cast<double>(r[i]) * r[i];
    }
    dot += dd, ng += gg, nr += rr;
    double c = gg > 0 && rr > 0 ? dd / std::sqrt(gg * rr) : (gg == rr ? 1.0 : 0.0);
    min_cos = std::min(min_cos, c);
    if (ref.rank() == 2 && ref.dim(1) >= 2) {  // classifier scores [batch, classes]
      classifier = true;
      int64_t C = ref.dim(1);
      for (int64_t b = 0; b < ref.dim(0); ++b) {
        const float* gr = g + b * C;
        const float* rr2 = r + b * C;
        int64_t ra = std::max_element(rr2, rr2 + C) - rr2;
        int64_t ga = std::max_element(gr, gr + C) - gr;
        // Top-5 agreement: the reference's top-1 class is among the candidate's top 5.
        int64_t above = 0;
        for (int64_t k = 0; k < C; ++k) above += gr[k] > gr[ra];
        ++rows;
        top1 += ra == ga;
        top5 += above < 5;
      }
    }
    return Status::Ok();
  }
};

struct LayerMetric {
  std::string name, op;
  size_t order = 0;
  double max_abs = 0, rel_l2 = 0, min_cos = 1;  // worst over samples
  bool seen = false;
  void add(const Tensor& got0, const Tensor& ref0) {
    Tensor got = asFloat(got0), ref = asFloat(ref0);
    if (got.dims() != ref.dims()) return;
    const float* g = got.data<float>();
    const float* r = ref.data<float>();
    double dd = 0, gg = 0, rr = 0, e2 = 0;
    for (int64_t i = 0; i < ref.numel(); ++i) {
      double d = static_cast<double>(g[i]) - r[i];
      max_abs = std::max(max_abs, std::fabs(d));
      e2 += d * d, dd += static_cast<double>(g[i]) * r[i], gg += static_cast<double>(g[i]) * g[i], rr += static_cast<double>(r[i]) * r[i];
    }
    double rel = rr > 0 ? std::sqrt(e2 / rr) : (e2 > 0 ? 1.0 : 0.0);
    double c = gg > 0 && rr > 0 ? dd / std::sqrt(gg * rr) : (gg == rr ? 1.0 : 0.0);
    if (std::isnan(rel)) rel = INFINITY, c = -1;
    rel_l2 = std::max(rel_l2, rel);
    min_cos = std::min(min_cos, c);
    seen = true;
  }
};

// Bars of log10(relative L2 error) per layer; red where cosine < threshold. No text: the JSON /
// table output carries the names, the picture shows where the error grows.
Status writePlot(const std::string& path, const std::vector<LayerMetric>& layers, double threshold) {
  if (layers.empty()) return makeError(StatusCode::kInvalidArgument, "--plot: no layers to plot");
  const int bar = std::clamp(1600 / static_cast<int>(layers.size()), 1, 12);
  const int W = std::max<int>(400, bar * static_cast<int>(layers.size()) + 60), H = 320, x0 = 40, y0 = 20, y1 = H - 30;
  std::vector<uint8_t> px(static_cast<size_t>(W) * H * 3, 255);
  auto put = [&](int x, int y, uint8_t r, uint8_t g, uint8_t b) {
    if (x < 0 || y < 0 || x >= W || y >= H) return;
    uint8_t* p = &px[(static_cast<size_t>(y) * W + x) * 3];
    p[0] = r, p[1] = g, p[2] = b;
  };
  const double lo = -8, hi = 1;  // log10 range: 1e-8 .. 10
  auto ypos = [&](double lg) { return static_cast<int>(y1 - (std::clamp(lg, lo, hi) - lo) / (hi - lo) * (y1 - y0)); };
  for (int d = static_cast<int>(lo); d <= static_cast<int>(hi); ++d)  // grid line per decade
    for (int x = x0; x < W - 10; x += 2) put(x, ypos(d), 200, 200, 200);
  for (int y = y0; y <= y1; ++y) put(x0 - 1, y, 0, 0, 0);
  for (int x = x0 - 1; x < W - 10; ++x) put(x, y1 + 1, 0, 0, 0);
  for (size_t i = 0; i < layers.size(); ++i) {
    double e = layers[i].rel_l2;
    double lg = e > 0 ? std::log10(e) : lo;
    bool bad = layers[i].min_cos < threshold;
    int top = ypos(lg);
    for (int x = x0 + static_cast<int>(i) * bar; x < x0 + static_cast<int>(i + 1) * bar - (bar > 2); ++x)
      for (int y = top; y <= y1; ++y) bad ? put(x, y, 220, 40, 40) : put(x, y, 50, 100, 200);
  }
  if (!stbi_write_png(path.c_str(), W, H, 3, px.data(), W * 3))
    return makeError(StatusCode::kIoError, "cannot write plot '", path, "'");
  return Status::Ok();
}

// A candidate that runs one batch and reports its outputs by name (and intermediates through
// `on_tensor` when it can).
struct Candidate {
  std::function<Status(const std::map<std::string, Tensor>&,
                       const std::function<void(const std::string&, const Tensor&)>&, std::map<std::string, Tensor>*)>
      run;
  std::string description;
};

}  // namespace

void addValidateCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::string model, plan, precision = "fp32", inputs = "random", device = "cpu", plot, calib_cache, calib_data;
    size_t samples = 0;
    uint64_t seed = 1;
    bool json = false, per_layer = false;
    double layer_threshold = 0.99;
    CalibFlags calib;
    std::vector<std::string> overrides;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("validate", "Compare a reduced-precision plan or simulated INT8 with the FP32 reference");
  cmd->add_option("--model", o->model, "ONNX model file (the FP32 reference)")->required();
  cmd->add_option("--plan", o->plan, "plan file to validate (default: build one in memory at --precision)");
  cmd->add_option("--precision", o->precision, "fp32, fp16 (built plans) or int8-sim (simulated INT8 on the reference)")
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "int8", "int8-sim"}));
  cmd->add_option("--precision-override", o->overrides, "per-layer precision for built plans: NAME_OR_OP:fp32|fp16|bf16|int8");
  cmd->add_option("--device", o->device, "device for plans built in memory: cpu (default) or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--inputs", o->inputs, "random (default), a folder of .npy files, or a folder of images");
  cmd->add_option("--samples", o->samples, "number of samples (random: default 8; folders: at most N)");
  cmd->add_option("--seed", o->seed, "seed for random inputs");
  cmd->add_flag("--json", o->json, "print the report as JSON");
  cmd->add_flag("--per-layer", o->per_layer, "compare every intermediate tensor whose name survives");
  cmd->add_option("--layer-threshold", o->layer_threshold, "a layer 'breaks' when its cosine drops below this");
  cmd->add_option("--plot", o->plot, "write a PNG of per-layer error (implies --per-layer)");
  cmd->add_option("--calib-cache", o->calib_cache, "int8-sim: calibration cache from `ramjet calibrate`");
  cmd->add_option("--calib-data", o->calib_data,
                  "int8-sim: calibration data (folder or 'random'); default: random data with another seed, or the "
                  "--inputs folder (then the numbers are optimistic)");
  o->calib.add(cmd);
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const std::string& m) {
        std::cerr << "error: " << m << "\n";
        return 1;
      };
      const bool per_layer = o->per_layer || !o->plot.empty();
      o->calib.quiet = o->json;
      if (!o->plan.empty() && o->precision == "int8-sim")
        return fail("--plan and --precision int8-sim exclude each other (int8-sim runs on the reference)");
      auto g = importOnnx(o->model);
      if (!g.ok()) return fail(g.status().message());
      precision::ImagePreprocess pre;
      std::string err;
      if (!o->calib.preprocess(&pre, &err, *g)) return fail(err);
      size_t n = o->samples ? o->samples : (o->inputs == "random" ? 8 : 0);
      auto data = precision::makeCalibratorForSpec(*g, o->inputs, pre, n, o->seed);
      if (!data.ok()) return fail(data.status().message());

      // ---- the candidate ----
      Candidate cand;
      std::shared_ptr<Graph> sim;
      std::shared_ptr<Engine> engine;
      std::shared_ptr<ExecutionContext> ctx;
      std::vector<std::string> notes;
      if (o->precision == "int8-sim") {
        precision::CalibrationTable table;
        std::string hash = precision::graphHash(*g);
        if (!o->calib_cache.empty()) {
          auto t = precision::loadCalibrationCache(o->calib_cache, hash);
          if (!t.ok()) return fail(t.status().message());
          table = std::move(*t);
        } else {
          std::string spec = o->calib_data.empty() ? o->inputs : o->calib_data;
          uint64_t seed = o->seed + 1000003;  // random calibration data distinct from the inputs
          if (o->calib_data.empty() && spec != "random")
            notes.push_back("calibrated on the validation inputs themselves: numbers are optimistic");
          auto c = precision::makeCalibratorForSpec(*g, spec, pre, o->calib.batches ? o->calib.batches : 8, seed);
          if (!c.ok()) return fail(c.status().message());
          auto t = precision::calibrate(*g, **c, o->calib.options());
          if (!t.ok()) return fail(t.status().message());
          table = std::move(*t);
        }
        auto g2 = importOnnx(o->model);
        if (!g2.ok()) return fail(g2.status().message());
        sim = std::make_shared<Graph>(std::move(*g2));
        auto rep = precision::applyFakeQuant(*sim, table);
        if (!rep.ok()) return fail(rep.status().message());
        cand.description = "int8-sim (" + table.method + "): " + rep->toString();
        cand.run = [sim](const std::map<std::string, Tensor>& feeds,
                         const std::function<void(const std::string&, const Tensor&)>& on_tensor,
                         std::map<std::string, Tensor>* outs) -> Status {
          reference::RunOptions ro;
          if (on_tensor)
            ro.on_node = [&](const Node& nd, const std::vector<Tensor>& ts) {
              for (size_t i = 0; i < ts.size() && i < nd.outputs.size(); ++i)
                if (nd.outputs[i]) on_tensor(nd.outputs[i]->name, ts[i]);
            };
          RJ_ASSIGN_OR_RETURN(auto r, reference::run(*sim, feeds, ro));
          for (size_t i = 0; i < r.size(); ++i) (*outs)[sim->outputs[i]->name] = r[i];
          return Status::Ok();
        };
      } else {
        registerBackends();
        Result<std::unique_ptr<Engine>> e = Status(StatusCode::kInternal, "no engine");
        if (!o->plan.empty()) {
          if (per_layer) notes.push_back("--per-layer with --plan sees only the plan's outputs; omit --plan to build one that exposes intermediates");
          e = Engine::load(o->plan);
          cand.description = "plan " + o->plan;
        } else {
          auto g2 = importOnnx(o->model);
          if (!g2.ok()) return fail(g2.status().message());
          if (per_layer) {
            // Mark every float intermediate as an output so its name survives the passes (this
            // also keeps them from being fused away, so the plan differs from a plain build).
            std::set<Value*> outs(g2->outputs.begin(), g2->outputs.end());
            for (const auto& nd : g2->nodes())
              for (Value* v : nd->outputs)
                if (v && !outs.count(v) && v->type.dtype == DataType::kFloat32) {
                  v->is_graph_output = true;
                  g2->outputs.push_back(v);
                  outs.insert(v);
                }
          }
          BuildOptions bo;
          bo.device = o->device == "cuda" ? DeviceKind::kCuda : DeviceKind::kCpu;
          bo.precision = o->precision == "fp16" ? Precision::kFP16
                       : o->precision == "bf16" ? Precision::kBF16
                       : o->precision == "int8" ? Precision::kINT8 : Precision::kFP32;
          bo.precision_overrides = o->overrides;
          std::unique_ptr<precision::Calibrator> calib;
          if (bo.precision == Precision::kINT8) {
            // Calibrate on data held apart from the validation inputs (as int8-sim does).
            bo.calibration_cache_path = o->calib_cache;
            if (o->calib_cache.empty()) {
              std::string spec = o->calib_data.empty() ? o->inputs : o->calib_data;
              if (o->calib_data.empty() && spec != "random")
                notes.push_back("calibrated on the validation inputs themselves: numbers are optimistic");
              auto c = precision::makeCalibratorForSpec(*g, spec, pre, o->calib.batches ? o->calib.batches : 8,
                                                        o->seed + 1000003);
              if (!c.ok()) return fail(c.status().message());
              calib = std::move(*c);
              bo.calibrator = calib.get();
              bo.calibration_method = o->calib.method;
            }
          }
          std::map<std::string, Tensor> probe;
          auto more = (*data)->getBatch(&probe);
          if (!more.ok()) return fail(more.status().message());
          Status rs = (*data)->reset();
          if (!rs.ok()) return fail(rs.message());
          for (const auto& [name, t] : probe) bo.profiles.push_back(ShapeProfile{name, t.dims(), t.dims(), t.dims()});
          auto plan = build(*g2, bo);
          if (!plan.ok()) return fail(plan.status().message());
          e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
          cand.description = std::string(precisionName(bo.precision)) + " plan built for " + deviceKindName(bo.device);
        }
        if (!e.ok()) return fail(e.status().message());
        engine = std::move(*e);
        auto c = engine->createContext();
        if (!c.ok()) return fail(c.status().message());
        ctx = std::move(*c);
        std::set<std::string> final_outs;
        for (Value* v : g->outputs) final_outs.insert(v->name);
        cand.run = [engine, ctx, final_outs](const std::map<std::string, Tensor>& feeds,
                                             const std::function<void(const std::string&, const Tensor&)>& on_tensor,
                                             std::map<std::string, Tensor>* outs) -> Status {
          RJ_ASSIGN_OR_RETURN(auto r, ctx->infer(feeds));
          for (size_t i = 0; i < r.size() && i < engine->outputs().size(); ++i) {
            const std::string& name = engine->outputs()[i].name;
            if (final_outs.count(name)) (*outs)[name] = r[i];
            if (on_tensor) on_tensor(name, r[i]);
          }
          return Status::Ok();
        };
      }

      // ---- compare ----
      std::map<std::string, OutputMetric> out_metrics;
      std::map<std::string, LayerMetric> layer_metrics;
      std::map<std::string, std::pair<size_t, std::string>> layer_order;  // name -> (topo index, op)
      auto topo = g->topoOrder();
      if (!topo.ok()) return fail(topo.status().message());
      for (Node* nd : *topo)
        for (Value* v : nd->outputs)
          if (v) layer_order.emplace(v->name, std::make_pair(layer_order.size(), nd->op_type));
      size_t samples = 0;
      std::map<std::string, Tensor> feeds;
      while (true) {
        auto more = (*data)->getBatch(&feeds);
        if (!more.ok()) return fail(more.status().withContext("input sample " + std::to_string(samples)).message());
        if (!*more) break;
        std::map<std::string, Tensor> ref_layers;
        reference::RunOptions ro;
        if (per_layer)
          ro.on_node = [&](const Node& nd, const std::vector<Tensor>& ts) {
            for (size_t i = 0; i < ts.size() && i < nd.outputs.size(); ++i)
              if (nd.outputs[i] && isFloat(ts[i])) ref_layers[nd.outputs[i]->name] = ts[i].clone();
          };
        auto ref = reference::run(*g, feeds, ro);
        if (!ref.ok()) return fail(ref.status().withContext("FP32 reference").message());
        std::map<std::string, Tensor> got;
        std::function<void(const std::string&, const Tensor&)> on_tensor;
        if (per_layer)
          on_tensor = [&](const std::string& name, const Tensor& t) {
            auto it = ref_layers.find(name);
            if (it == ref_layers.end() || !isFloat(t)) return;
            LayerMetric& m = layer_metrics[name];
            m.name = name;
            m.order = layer_order.count(name) ? layer_order[name].first : 0;
            m.op = layer_order.count(name) ? layer_order[name].second : "?";
            m.add(t, it->second);
          };
        Status s = cand.run(feeds, on_tensor, &got);
        if (!s.ok()) return fail(s.withContext("candidate (" + cand.description + ")").message());
        for (size_t i = 0; i < g->outputs.size(); ++i) {
          const std::string& name = g->outputs[i]->name;
          auto it = got.find(name);
          if (it == got.end()) return fail("the candidate has no output '" + name + "' (the model's output)");
          Status st = out_metrics[name].add(name, it->second, (*ref)[i]);
          if (!st.ok()) return fail(st.message());
        }
        ++samples;
      }
      if (samples == 0) return fail("no input samples");

      std::vector<LayerMetric> layers;
      for (auto& [name, m] : layer_metrics)
        if (m.seen) layers.push_back(m);
      std::sort(layers.begin(), layers.end(), [](const LayerMetric& a, const LayerMetric& b) { return a.order < b.order; });
      int first_break = -1, worst_jump = -1;
      double jump = 0;
      for (size_t i = 0; i < layers.size(); ++i) {
        if (first_break < 0 && layers[i].min_cos < o->layer_threshold) first_break = static_cast<int>(i);
        // Growth is measured from a layer that already had error; the first error-carrying
        // layer introduces error rather than growing it.
        double prev = i ? layers[i - 1].rel_l2 : 0;
        if (prev <= 1e-7) continue;
        double grow = layers[i].rel_l2 / prev;
        if (grow > jump) jump = grow, worst_jump = static_cast<int>(i);
      }
      if (!o->plot.empty()) {
        Status s = writePlot(o->plot, layers, o->layer_threshold);
        if (!s.ok()) return fail(s.message());
      }

      // ---- report ----
      if (o->json) {
        nlohmann::json j;
        j["model"] = o->model;
        j["candidate"] = cand.description;
        j["precision"] = o->plan.empty() ? o->precision : "plan";
        j["samples"] = samples;
        j["inputs"] = o->inputs;
        j["notes"] = notes;
        for (const auto& [name, m] : out_metrics) {
          nlohmann::json e{{"max_abs", m.max_abs}, {"max_rel", m.max_rel}, {"cosine", m.cosine()},
                           {"min_sample_cosine", m.min_cos}, {"nan_mismatch", m.nan}};
          if (m.classifier) {
            e["rows"] = m.rows;
            e["top1_agreement"] = static_cast<double>(m.top1) / m.rows;
            e["top5_agreement"] = static_cast<double>(m.top5) / m.rows;
          }
          j["outputs"][name] = e;
        }
        if (per_layer) {
          nlohmann::json ls = nlohmann::json::array();
          for (const auto& l : layers)
            ls.push_back({{"name", l.name}, {"op", l.op}, {"max_abs", l.max_abs}, {"rel_l2", l.rel_l2}, {"cosine", l.min_cos}});
          j["layers"] = ls;
          j["first_layer_below_threshold"] = first_break >= 0 ? nlohmann::json(layers[first_break].name) : nlohmann::json(nullptr);
          j["largest_error_jump"] = worst_jump >= 0 ? nlohmann::json({{"layer", layers[worst_jump].name}, {"factor", jump}})
                                                    : nlohmann::json(nullptr);
          j["layer_threshold"] = o->layer_threshold;
        }
        std::cout << j.dump(2) << "\n";
      } else {
        std::cout << "candidate: " << cand.description << "\n";
        std::cout << "reference: FP32 CPU reference interpreter; " << samples << " samples from " << o->inputs << "\n";
        for (const auto& s : notes) std::cout << "note: " << s << "\n";
        for (const auto& [name, m] : out_metrics) {
          std::cout << "output " << name << ": max_abs=" << m.max_abs << " max_rel=" << m.max_rel
                    << " cosine=" << std::setprecision(8) << m.cosine() << " (min per sample " << m.min_cos << ")"
                    << std::setprecision(6);
          if (m.classifier)
            std::cout << " top1=" << 100.0 * m.top1 / m.rows << "% top5=" << 100.0 * m.top5 / m.rows << "% of "
                      << m.rows << " rows";
          if (m.nan) std::cout << " NaN-MISMATCH";
          std::cout << "\n";
        }
        if (per_layer) {
          std::cout << "per layer (" << layers.size() << " tensors; rel_l2 = ||cand-ref||/||ref||, worst sample):\n";
          for (size_t i = 0; i < layers.size(); ++i)
            std::cout << "  " << std::setw(4) << i << " " << std::left << std::setw(18) << layers[i].op << std::right
                      << " rel_l2=" << std::setw(12) << layers[i].rel_l2 << " cos=" << std::setw(10) << layers[i].min_cos
                      << "  " << layers[i].name << (static_cast<int>(i) == first_break ? "   <-- first below threshold" : "")
                      << "\n";
          if (first_break >= 0)
            std::cout << "first layer with cosine < " << o->layer_threshold << ": " << layers[first_break].name << " ("
                      << layers[first_break].op << ")\n";
          else
            std::cout << "no layer has cosine < " << o->layer_threshold << "\n";
          if (worst_jump >= 0)
            std::cout << "largest error growth: x" << jump << " at " << layers[worst_jump].name << " ("
                      << layers[worst_jump].op << ")\n";
          if (!o->plot.empty()) std::cout << "plot: " << o->plot << "\n";
        }
      }
      return 0;
    };
  });
}

}  // namespace ramjet::cli
