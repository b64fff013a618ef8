// `ramjet build model.onnx -o model.plan`: import, optimize, pick kernels, plan memory, write the plan.
#include <unistd.h>

#include <iostream>
#include <map>

#include <set>
#include <sstream>

#include "commands.h"
#include "ramjet/engine.h"
#include "passes/pass_manager.h"
#include "precision/calibrator.h"
#include "precision_common.h"
#include "vision/map.h"
#include "ramjet/graph.h"

namespace ramjet::cli {

void registerBackends() {
#ifdef RAMJET_HAVE_CUDA
  static bool done = false;
  if (!done) {
    done = true;
    Status st = registerCudaBackend();
    (void)st;  // no GPU: CUDA builds/plans then fail with the backend's own message
  }
#endif
}

bool parseProfiles(const std::vector<std::string>& shapes, const std::vector<std::string>& min,
                   const std::vector<std::string>& opt, const std::vector<std::string>& max,
                   std::vector<ShapeProfile>* out, std::string* err) {
  std::map<std::string, std::vector<int64_t>> s, mn, op, mx;
  if (!parseShapeSpecs(shapes, &s, err) || !parseShapeSpecs(min, &mn, err) || !parseShapeSpecs(opt, &op, err) ||
      !parseShapeSpecs(max, &mx, err))
    return false;
  std::map<std::string, ShapeProfile> profiles;
  for (const auto& [name, d] : s) profiles[name] = ShapeProfile{name, d, d, d};
  for (auto* m : {&mn, &op, &mx})
    for (const auto& [name, d] : *m) {
      if (s.count(name)) {
        *err = "input '" + name + "' has both --shapes and --min/--opt/--max-shapes";
        return false;
      }
      profiles[name].input = name;
    }
  for (auto& [name, p] : profiles) {
    if (s.count(name)) continue;
    if (!mn.count(name) || !mx.count(name)) {
      *err = "input '" + name + "' needs both --min-shapes and --max-shapes (and optionally --opt-shapes)";
      return false;
    }
    p.min = mn[name];
    p.max = mx[name];
    p.opt = op.count(name) ? op[name] : mx[name];
  }
  for (auto& [name, p] : profiles) out->push_back(p);
  return true;
}

namespace {

// On a terminal: one updating line per stage. Otherwise (logs): a line when the accuracy-budget
// search (minutes) starts and ends a stage, so it still shows it is alive.
class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : on_(enabled), tty_(::isatty(2)) {}
  void operator()(size_t done, size_t total, const std::string& stage) {
    if (!on_) return;
    const bool fresh = stage != stage_;
    if (fresh) {
      if (tty_ && !stage_.empty()) std::cerr << "\n";
      stage_ = stage;
    }
    if (tty_) {
      std::cerr << "\r  " << stage << ": " << done << "/" << total << std::flush;
    } else if (total > 1 && stage.rfind("accuracy budget", 0) == 0 && (fresh || done == total)) {
      std::cerr << "  " << stage << ": " << done << "/" << total << "\n";
    }
  }
  ~ProgressBar() {
    if (on_ && tty_ && !stage_.empty()) std::cerr << "\n";
  }

 private:
  bool on_, tty_;
  std::string stage_;
};

}  // namespace

int engineRun(const Graph& g, const std::map<std::string, Tensor>& feeds, const std::string& device,
              std::vector<Tensor>* outs, double* ms, std::string* err) {
  registerBackends();
  BuildOptions opt;
  opt.device = device == "cuda" ? DeviceKind::kCuda : DeviceKind::kCpu;
  for (const auto& [name, t] : feeds) opt.profiles.push_back(ShapeProfile{name, t.dims(), t.dims(), t.dims()});
  auto plan = build(g, opt);
  if (!plan.ok()) return *err = plan.status().message(), 1;
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  if (!engine.ok()) return *err = engine.status().message(), 1;
  auto ctx = (*engine)->createContext();
  if (!ctx.ok()) return *err = ctx.status().message(), 1;
  auto r = (*ctx)->infer(feeds);
  if (!r.ok()) return *err = r.status().message(), 1;
  *outs = std::move(*r);
  *ms = (*ctx)->lastTiming().compute_ms;
  return 0;
}

void addBuildCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::string model, output, device = "cuda", timing_cache;
    std::vector<std::string> shapes, min, opt, max;
    bool fp16 = false, verbose = false, fallback = false, no_fold = false, no_optimize = false;
    bool bf16 = false, int8 = false, fp8 = false, reduced_io = false;
    std::vector<std::string> precision_overrides;
    std::string calib_data, calib_cache, calib_method;  // default: entropy (INT8), minmax (FP8)
    size_t calib_batches = 8;
    std::string disable_passes;
    std::string layout = "auto";
    bool explain = false;
    int device_index = 0;
    CalibFlags image;  // --calib-size/--calib-mean/--calib-std
    std::vector<std::string> add_profiles;
    std::string int8_fallback;
    std::string accuracy_budget, accuracy_metric = "auto";
    size_t accuracy_samples = 8;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("build", "Optimize an ONNX model into a plan file for one device");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("-o,--output", o->output, "plan file to write")->required();
  cmd->add_option("--device", o->device, "cuda (default) or cpu")->check(CLI::IsMember({"cuda", "cpu"}));
  cmd->add_option("--device-index", o->device_index, "GPU ordinal");
  cmd->add_flag("--fp16", o->fp16, "store weights and compute in FP16 (FP32 accumulation)");
  cmd->add_flag("--bf16", o->bf16, "compute in BF16 where the device has kernels (else FP32)");
  cmd->add_flag("--reduced-io", o->reduced_io,
                "with --fp16/--bf16: float inputs and outputs in that precision instead of FP32 (no boundary casts)");
  cmd->add_flag("--int8", o->int8, "INT8 convolutions/GEMMs (calibrated), FP16 elsewhere (FP32 on the CPU)");
  cmd->add_flag("--fp8", o->fp8,
                "FP8 (E4M3) GEMMs through cuBLASLt, calibrated per tensor (Hopper/Ada), FP16 elsewhere (FP32 on the CPU)");
  cmd->add_option("--int8-fallback", o->int8_fallback,
                  "with --int8: precision of the layers left unquantized (default fp16 on cuda, fp32 on cpu)")
      ->check(CLI::IsMember({"fp16", "fp32"}));
  cmd->add_option("--precision-override", o->precision_overrides,
                  "per-layer precision NAME_OR_OP:fp32|fp16|bf16|int8|fp8 (repeatable), e.g. LayerNormalization:fp32");
  cmd->add_option("--calib-data", o->calib_data, "calibration data: folder of images or .npy files, or 'random'");
  cmd->add_option("--calib-cache", o->calib_cache, "calibration cache (read when it matches the model, else written)");
  cmd->add_option("--calib-batches", o->calib_batches, "calibration batches (default 8)");
  cmd->add_option("--calib-method", o->calib_method, "minmax | percentile | entropy | mse (default: entropy for --int8, minmax for --fp8)");
  o->image.addImageFlags(cmd);
  cmd->add_option("--accuracy-budget", o->accuracy_budget,
                  "INT8: most accuracy to lose vs FP32, e.g. 0.5% or 0.005; the most sensitive layers stay FP16 "
                  "until the loss fits (measured on --accuracy-samples calibration batches)");
  cmd->add_option("--accuracy-metric", o->accuracy_metric,
                  "loss for --accuracy-budget: auto (top1 for classifiers, else cosine), top1, cosine, rel-l2, "
                  "detection (1 - mAP@0.5 of the detections against FP32's)")
      ->check(CLI::IsMember({"auto", "top1", "cosine", "rel-l2", "detection"}));
  cmd->add_option("--accuracy-samples", o->accuracy_samples, "calibration batches the accuracy budget is measured on (default 8)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--shapes", o->shapes, "fixed shapes for inputs with symbolic dims: name:1x3x224x224[,..]");
  cmd->add_option("--min-shapes", o->min, "dynamic profile minimum: name:1x3x224x224[,..]");
  cmd->add_option("--opt-shapes", o->opt, "dynamic profile optimum (tactics are timed here)");
  cmd->add_option("--max-shapes", o->max, "dynamic profile maximum (memory is planned for it)");
  cmd->add_option("--add-profile", o->add_profiles,
                  "another optimization profile (repeatable): name:MIN/OPT/MAX[,name:MIN/OPT/MAX], e.g. "
                  "images:16x3x224x224/32x3x224x224/64x3x224x224; the plan holds one engine per profile");
  cmd->add_option("--timing-cache", o->timing_cache, "tactic timing cache file (read and updated)");
  cmd->add_flag("--allow-cpu-fallback", o->fallback, "run nodes the GPU backend lacks on the CPU");
  cmd->add_flag("--no-fold", o->no_fold, "skip constant folding");
  cmd->add_flag("--no-optimize", o->no_optimize, "skip the graph optimizer (all passes)");
  cmd->add_option("--layout", o->layout,
                  "conv data layout of CUDA FP16/FP8 builds: auto (build both, time, keep the faster), nchw, nhwc; "
                  "INT8 builds: the layers left in FP16 go nhwc unless nchw is given")
      ->check(CLI::IsMember({"auto", "nchw", "nhwc"}));
  cmd->add_option("--disable-passes", o->disable_passes,
                  "comma-separated pass names to skip (see `ramjet optimize --list-passes`); also RAMJET_DISABLE_PASSES");
  cmd->add_flag("-v,--verbose", o->verbose, "log every build decision");
  cmd->add_flag("--explain", o->explain, "say why each candidate fusion of the graph passes did not fire");
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const std::string& m) {
        std::cerr << "error: " << m << "\n";
        return 1;
      };
      registerBackends();
      StderrLogger logger(o->verbose ? Severity::kVerbose : Severity::kWarning);
      BuildOptions opt;
      opt.device = o->device == "cuda" ? DeviceKind::kCuda : DeviceKind::kCpu;
      opt.device_index = o->device_index;
      if (o->fp16 + o->bf16 + o->int8 + o->fp8 > 1) return fail("choose one of --fp16, --bf16, --int8, --fp8");
      opt.precision = o->fp16 ? Precision::kFP16 : o->bf16 ? Precision::kBF16 : o->int8 ? Precision::kINT8
                    : o->fp8 ? Precision::kFP8 : Precision::kFP32;
      opt.precision_overrides = o->precision_overrides;
      opt.reduced_precision_io = o->reduced_io;
      if (!o->int8_fallback.empty()) {
        if (!o->int8) return fail("--int8-fallback needs --int8");
        opt.int8_fallback = o->int8_fallback == "fp16" ? Precision::kFP16 : Precision::kFP32;
      }
      opt.calibration_cache_path = o->calib_cache;
      // FP8's range covers outliers without clipping (E4M3 spans 2^-9..448): max |x| by default.
      opt.calibration_method = !o->calib_method.empty() ? o->calib_method : o->fp8 ? "minmax" : "entropy";
      opt.calibration_batches = o->calib_batches;
      opt.timing_cache_path = o->timing_cache;
      opt.allow_cpu_fallback = o->fallback;
      opt.fold_constants = !o->no_fold;
      opt.optimize = !o->no_optimize;
      opt.conv_layout = o->layout == "nhwc"   ? BuildOptions::ConvLayout::kNhwc
                        : o->layout == "nchw" ? BuildOptions::ConvLayout::kNchw
                                              : BuildOptions::ConvLayout::kAuto;
      for (const std::string& p : passes::parsePassList(o->disable_passes)) opt.disabled_passes.push_back(p);
      opt.logger = &logger;
      auto explained = std::make_shared<std::vector<std::string>>();
      if (o->explain) {
        auto seen = std::make_shared<std::set<std::string>>();
        opt.explain = [explained, seen](const std::string& pass, const std::string& why) {
          std::string line = pass + ": " + why;  // passes re-run to a fixed point: say it once
          if (seen->insert(line).second) explained->push_back(line);
        };
      }
      std::string err;
      if (!parseProfiles(o->shapes, o->min, o->opt, o->max, &opt.profiles, &err)) return fail(err);
      for (const std::string& spec : o->add_profiles) {
        // name:MIN/OPT/MAX[,name:MIN/OPT/MAX] -> the --min/--opt/--max-shapes form.
        std::vector<std::string> mn, op, mx;
        std::stringstream ss(spec);
        for (std::string item; std::getline(ss, item, ',');) {
          const size_t colon = item.rfind(':');
          std::vector<std::string> parts;
          std::stringstream ds(colon == std::string::npos ? "" : item.substr(colon + 1));
          for (std::string d; std::getline(ds, d, '/');) parts.push_back(d);
          if (colon == std::string::npos || parts.size() != 3)
            return fail("--add-profile '" + spec + "': each input is name:MIN/OPT/MAX, e.g. images:1x3x224x224/8x3x224x224/16x3x224x224");
          const std::string name = item.substr(0, colon);
          mn.push_back(name + ":" + parts[0]);
          op.push_back(name + ":" + parts[1]);
          mx.push_back(name + ":" + parts[2]);
        }
        std::vector<ShapeProfile> extra;
        if (!parseProfiles({}, mn, op, mx, &extra, &err)) return fail("--add-profile '" + spec + "': " + err);
        opt.extra_profiles.push_back(std::move(extra));
      }
      auto g = importOnnx(o->model);
      if (!g.ok()) return fail(g.status().message());
      if (!o->accuracy_budget.empty()) {
        auto b = parseFraction(o->accuracy_budget);
        if (!b.ok()) return fail("--accuracy-budget: " + b.status().message());
        if (!o->int8) return fail("--accuracy-budget applies to INT8 builds: add --int8");
        if (o->calib_data.empty() && o->calib_cache.empty())
          return fail("--accuracy-budget needs --calib-data (accuracy is measured on calibration batches), or a "
                      "--calib-cache holding a decision made before for these options");
        opt.accuracy_budget = *b;
        opt.accuracy_samples = o->accuracy_samples;
        if (o->accuracy_metric == "detection")
          vision::useDetectionAccuracyMetric(&opt);
        else
          opt.accuracy_metric = o->accuracy_metric;
      }
      std::unique_ptr<precision::Calibrator> calib;
      if (!o->calib_data.empty()) {
        precision::ImagePreprocess pre;
        std::string perr;
        if (!o->image.preprocess(&pre, &perr, *g)) return fail(perr);
        // Symbolic image size: the profile's opt shape gives it.
        if (pre.height <= 0 && g->inputs.size() == 1)
          for (const auto& p : opt.profiles)
            if (p.input == g->inputs[0]->name && p.opt.size() == 4) {
              pre.height = static_cast<int>(p.opt[2]);
              pre.width = static_cast<int>(p.opt[3]);
            }
        auto c = precision::makeCalibratorForSpec(*g, o->calib_data, pre, o->calib_batches, 1234);
        if (!c.ok()) return fail(c.status().message());
        calib = std::move(*c);
        opt.calibrator = calib.get();
      }
      opt.calibration_progress = [](size_t done, size_t total) {
        if (::isatty(2)) std::cerr << "\r  calibrating: batch " << done << (total ? "/" + std::to_string(total) : "") << std::flush;
      };
      ProgressBar bar(!o->verbose);
      opt.progress = [&bar](size_t d, size_t t, const std::string& s) { bar(d, t, s); };
      auto plan = build(*g, opt);
      if (o->explain) {
        std::cout << "--explain: " << explained->size() << " candidate fusion(s) did not fire\n";
        for (const auto& l : *explained) std::cout << "  " << l << "\n";
      }
      if (!plan.ok()) return fail(plan.status().message());
      Status st = plan->save(o->output);
      if (!st.ok()) return fail(st.message());
      std::cout << "wrote " << o->output << " (" << plan->bytes().size() << " bytes; ONNX weights "
                << g->weightBytes() << " bytes)\n"
                << plan->report().toString() << plan->report().accuracy_budget;
      return 0;
    };
  });
}

}  // namespace ramjet::cli
