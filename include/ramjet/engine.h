// The build -> plan -> engine -> context API (the TensorRT workflow, kept small):
//
//   auto graph  = ramjet::importOnnx("model.onnx");
//   ramjet::BuildOptions opt;  opt.device = ramjet::DeviceKind::kCuda;
//   auto plan   = ramjet::build(*graph, opt);            // Result<Plan>
//   plan->save("model.plan");                            // temp file + rename
//   auto engine = ramjet::Engine::load("model.plan");    // Result<unique_ptr<Engine>>
//   auto ctx    = (*engine)->createContext();            // contexts share the engine's weights
//   ctx->setInputShape("x", {4, 3, 224, 224});
//   ctx->setTensorAddress("x", d_in);  ctx->setTensorAddress("y", d_out);
//   ctx->enqueue(stream);                                // async on the caller's stream
//
// or, on host tensors, `ctx->infer({{"x", tensor}})`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ramjet/graph.h"
#include "ramjet/status.h"
#include "ramjet/tensor.h"

namespace ramjet {

// ---- logging ----
enum class Severity : int { kError = 0, kWarning = 1, kInfo = 2, kVerbose = 3 };
const char* severityName(Severity s);

class Logger {
 public:
  virtual ~Logger() = default;
  virtual void log(Severity severity, const std::string& message) = 0;
};

// Writes messages at or above `max_severity` (kError is the most severe) to stderr.
class StderrLogger final : public Logger {
 public:
  explicit StderrLogger(Severity max_severity = Severity::kWarning) : max_(max_severity) {}
  void log(Severity severity, const std::string& message) override;

 private:
  Severity max_;
};

// ---- build ----
enum class DeviceKind : int32_t { kCpu = 0, kCuda = 1 };
const char* deviceKindName(DeviceKind d);  // "cpu", "cuda"
// kBF16/kINT8/kFP8 are mixed-precision modes: layers the mode cannot run safely (or the device
// cannot run at all) fall back per layer (INT8/FP8 -> FP16 -> FP32); see docs/PRECISION.md.
enum class Precision : int32_t { kFP32 = 0, kFP16 = 1, kBF16 = 2, kINT8 = 3, kFP8 = 4 };
const char* precisionName(Precision p);  // "fp32", "fp16", "bf16", "int8", "fp8"

// Calibration data for INT8/FP8 builds (like TensorRT's IInt8Calibrator): fills `feeds` (input
// name -> FP32 host tensor) with the next batch and returns false when there are no more.
class Int8Calibrator {
 public:
  virtual ~Int8Calibrator() = default;
  virtual Result<bool> getBatch(std::map<std::string, Tensor>* feeds) = 0;
  // Number of batches if known (for the progress display), else 0.
  virtual size_t numBatches() const { return 0; }
  // Optional: rewinds to the first batch.
  virtual Status reset() { return Status(StatusCode::kUnsupported, "this calibrator cannot rewind"); }
};

// Allowed dims for one input with symbolic dims. The memory plan is made for `max`; `opt` is the
// shape tactics are timed at; contexts refuse shapes outside [min, max].
struct ShapeProfile {
  std::string input;
  std::vector<int64_t> min, opt, max;
};

struct BuildOptions {
  DeviceKind device = DeviceKind::kCpu;
  int device_index = 0;
  // FP16: float weights stored in half precision and activations computed in half (kernels
  // accumulate in FP32); the engine's inputs and outputs stay FP32.
  Precision precision = Precision::kFP32;
  // One entry per input with symbolic dims. Inputs without one get 1 for every symbolic dim.
  std::vector<ShapeProfile> profiles;
  // More optimization profiles, each a complete set like `profiles`: the plan then holds one
  // engine per profile (own tactics, memory plan and CUDA graphs; weights are stored per
  // profile), and a context selects one (ExecutionContext::setOptimizationProfile).
  std::vector<std::vector<ShapeProfile>> extra_profiles;
  // Read (when the file exists) and updated after the build: tactic timings keyed by node
  // signature and device, so rebuilds skip the timing runs.
  std::string timing_cache_path;
  // Nodes the device backend cannot run go to the CPU backend instead of failing the build.
  bool allow_cpu_fallback = false;
  // Evaluate nodes whose inputs are all constant (incl. Shape of static shapes) at build time.
  bool fold_constants = true;
  // Run the graph optimizer (src/passes: folding, CSE, BN folding, pattern fusions) before
  // lowering. Passes named here (or in RAMJET_DISABLE_PASSES) are skipped; "all" skips every one.
  bool optimize = true;
  std::vector<std::string> disabled_passes;
  // Convolution data layout of CUDA FP16 builds (the NhwcLayout pass). kAuto, for models with
  // at least 8 Convs, builds the engine both ways, times GPU compute at the profiles' opt and
  // min shapes and keeps the faster (rule: src/builder/conv_layout.h; the choice is stored in
  // the timing cache, so a rebuild with it builds once and gives the same bytes). NHWC wins big
  // on dense CNNs (ResNet-50) and loses on depthwise/SE-heavy ones; hence the measurement.
  // RAMJET_NHWC=1 / =0 overrides to kNhwc / kNchw.
  enum class ConvLayout { kAuto, kNchw, kNhwc };
  ConvLayout conv_layout = ConvLayout::kAuto;
  // Optional: the graph passes report here why a candidate fusion did not fire (pass name,
  // message); `ramjet build --explain`.
  std::function<void(const std::string& pass, const std::string& why)> explain;
  int timing_iterations = 10;
  size_t max_workspace_bytes = size_t{1} << 30;
  Logger* logger = nullptr;
  // Progress display: called with (done, total, stage name) as the build advances.
  std::function<void(size_t, size_t, const std::string&)> progress;

  // ---- mixed precision (src/precision/lowering.h, docs/PRECISION.md) ----
  // Per-layer precision: "NAME_OR_OP:fp32|fp16|bf16|int8|fp8", matched against node names
  // first, then op types (e.g. "LayerNormalization:fp32", "/fc/Gemm:fp16").
  std::vector<std::string> precision_overrides;
  // FP16/BF16 builds: float inputs and outputs in the build precision instead of FP32 (TensorRT's
  // --inputIOFormats/--outputIOFormats=fp16): no boundary Casts, half the bytes to copy and to
  // send to a server. Callers then feed and read FP16 (BF16) tensors; Engine::inputs() says so.
  bool reduced_precision_io = false;
  // Calibration for INT8/FP8 (and FP16 range checks): a cache file read when it exists and
  // matches the model, else written after calibrating with `calibrator` (not owned).
  std::string calibration_cache_path;
  Int8Calibrator* calibrator = nullptr;
  std::string calibration_method = "entropy";  // minmax | percentile | entropy | mse
  size_t calibration_batches = 0;              // 0: until the calibrator is exhausted
  // Called with (batches done, total or 0) while calibrating.
  std::function<void(size_t, size_t)> calibration_progress;
  // Explicit activation ranges (tensor name -> max |x|); take precedence over calibration.
  std::map<std::string, float> activation_amax;
  // INT8 builds: the precision of the layers left unquantized (kFP16 or kFP32). Unset: FP16 on
  // CUDA, FP32 on the CPU (where FP16 is emulated). The accuracy budget's CPU stand-in builds
  // set it to the target's.
  std::optional<Precision> int8_fallback;

  // ---- accuracy budget (INT8; src/precision/accuracy_budget.h, docs/PRECISION.md) ----
  // > 0: the most accuracy an INT8 build may lose against the FP32 reference, as a fraction
  // (0.005 = 0.5%) of the metric below, measured on `accuracy_samples` batches of the
  // calibrator's data. Each quantizable layer's sensitivity is measured (the loss recovered by
  // keeping it FP16) and the most sensitive layers stay FP16 until the loss fits; the build
  // report lists them with their sensitivities. 0: every quantizable layer is INT8.
  double accuracy_budget = 0;
  // "auto" (top1 for a classifier's [N, C] output, else cosine), "top1" (1 - top-1 agreement),
  // "cosine" (1 - cosine similarity of all outputs), "rel-l2" (|y - ref| / |ref|), or "custom":
  // accuracy_loss(candidate outputs per batch, FP32 outputs per batch) -> loss (>= 0); name it
  // "custom:<id>" so the decision can be cached beside the calibration cache.
  std::string accuracy_metric = "auto";
  std::function<Result<double>(const std::vector<std::vector<Tensor>>&, const std::vector<std::vector<Tensor>>&)>
      accuracy_loss;
  size_t accuracy_samples = 8;
};

// Activation memory of one shape signature.
struct MemoryReport {
  size_t arena_bytes = 0;       // what the planner allocates (offsets aligned)
  size_t sum_tensor_bytes = 0;  // every activation in its own buffer
  size_t peak_live_bytes = 0;   // lower bound: most bytes live at one step
  size_t num_tensors = 0;       // activations placed in the arena
  size_t num_aliases = 0;       // outputs that share their input's buffer (Reshape & co.)
  size_t workspace_bytes = 0;   // largest kernel workspace (one, shared by all nodes)
};

struct BuildReport {
  size_t nodes_in = 0, nodes_folded = 0, nodes_removed = 0, nodes_out = 0;
  size_t nodes_after_passes = 0;  // after the graph optimizer (== nodes_in when it is off)
  std::string passes;             // the optimizer's per-pass table (empty when off)
  size_t host_nodes = 0;      // shape computations evaluated on the host per input signature
  size_t fallback_nodes = 0;  // nodes placed on the CPU backend in a device build
  std::string precision;      // the precision lowering's per-layer summary (empty for FP32)
  std::vector<std::string> int8_layers;  // nodes that run in INT8 (QConv/QGemm), by name
  std::string accuracy_budget;  // the accuracy-budget search: losses, sensitivities, layers kept
  size_t optimization_profiles = 1;  // engines in the plan (BuildOptions::extra_profiles + 1)
  size_t weight_bytes = 0;    // as stored in the plan
  std::map<std::string, size_t> tactics;  // tactic name -> number of nodes using it
  size_t tactics_timed = 0, timing_cache_hits = 0;
  std::string layout;         // conv layout decision (CUDA FP16 CNNs), e.g. "NHWC (0.39 ms vs NCHW 0.77 ms)"
  MemoryReport memory;        // at the profiles' max shapes
  double build_ms = 0;
  std::string toString() const;
};

class Plan {
 public:
  Plan(std::vector<uint8_t> bytes, BuildReport report)
      : bytes_(std::move(bytes)), report_(std::move(report)) {}
  // Writes to "<path>.tmp.<pid>" then renames, so readers never see a half-written plan.
  Status save(const std::string& path) const;
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const BuildReport& report() const { return report_; }

 private:
  std::vector<uint8_t> bytes_;
  BuildReport report_;
};

Result<Plan> build(const Graph& graph, const BuildOptions& options);

// ---- run ----
struct TensorInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;
  Shape shape;  // symbolic dims stay symbolic
};

// What a plan says about itself (from its header and build options).
struct PlanInfo {
  uint32_t format_version = 0;
  std::string ramjet_version;
  DeviceKind device = DeviceKind::kCpu;
  Precision precision = Precision::kFP32;
  std::string gpu_name;  // empty for CPU plans
  int cc_major = 0, cc_minor = 0;
  int cuda_runtime_version = 0, cudnn_version = 0, cublas_version = 0;
  std::vector<ShapeProfile> profiles;
  size_t num_nodes = 0, weight_bytes = 0, file_bytes = 0;
  MemoryReport memory;
  std::map<std::string, size_t> tactics;
  std::string toString() const;
};

struct LoadOptions {
  int device_index = 0;
  Logger* logger = nullptr;
};

class ExecutionContext {
 public:
  virtual ~ExecutionContext() = default;
  // Concrete dims for an input; checked against the plan's profile.
  virtual Status setInputShape(const std::string& name, const std::vector<int64_t>& dims) = 0;
  // Dims of any input or output once all input shapes are set.
  virtual Result<std::vector<int64_t>> tensorShape(const std::string& name) = 0;
  // Device memory (host memory for CPU engines) for an input or output.
  virtual Status setTensorAddress(const std::string& name, void* address) = 0;
  // Runs the engine on `stream` (a cudaStream_t for CUDA engines; ignored on CPU, where it runs
  // synchronously). Returns once the work is queued.
  virtual Status enqueue(void* stream = nullptr) = 0;
  // Convenience on host tensors: sets shapes, copies in, runs, waits and copies out.
  virtual Result<std::vector<Tensor>> infer(const std::map<std::string, Tensor>& inputs) = 0;

  struct Timing {
    double h2d_ms = 0, compute_ms = 0, d2h_ms = 0;
  };
  // Phases of the last infer() (host clock around synchronized phases).
  virtual Timing lastTiming() const = 0;

  // One kernel of the plan as profile() measured it (milliseconds over the iterations).
  struct KernelTiming {
    size_t position = 0;                  // in execution order
    std::string node, op_type, tactic;    // tactic: "<name>#<id>"
    std::string placement;                // "device", "cpu-fallback"
    std::vector<std::string> fused_from;  // ONNX nodes a fusion absorbed (empty: the node itself)
    double median_ms = 0, min_ms = 0, mean_ms = 0;
  };
  // Runs the engine `iterations` times (after one untimed run) kernel by kernel with the shapes
  // and addresses set for enqueue(): each kernel is captured into a CUDA graph of its own and
  // its replay timed between two events (plain launches where capture is refused; host clock
  // on CPU). For finding where time goes: the sum is a little above enqueue()'s latency (no
  // overlap between kernels, a synchronization per kernel).
  virtual Result<std::vector<KernelTiming>> profile(void* stream, int iterations) {
    return Status(StatusCode::kUnsupported, "this execution context cannot profile");
  }

  // Plans built with several optimization profiles (BuildOptions::extra_profiles): which one
  // this context runs. Switching keeps the tensor addresses; input shapes must be set again.
  // A single-input engine also switches by itself when setInputShape() gets dims that only
  // another profile accepts (infer() always picks the first profile that fits).
  virtual Status setOptimizationProfile(int index) {
    if (index == 0) return Status::Ok();
    return makeError(StatusCode::kInvalidArgument, "optimization profile ", index, " does not exist: this engine has 1");
  }
  virtual int optimizationProfile() const { return 0; }
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Maps the file (weights are used in place on CPU and uploaded once on GPU).
  static Result<std::unique_ptr<Engine>> load(const std::string& path, const LoadOptions& opts = {});
  static Result<std::unique_ptr<Engine>> loadFromMemory(const void* data, size_t size,
                                                        const LoadOptions& opts = {});
  virtual Result<std::unique_ptr<ExecutionContext>> createContext() = 0;

  virtual const std::vector<TensorInfo>& inputs() const = 0;
  virtual const std::vector<TensorInfo>& outputs() const = 0;
  virtual const PlanInfo& info() const = 0;

  // Memory on the engine's device (host memory for CPU engines), for setTensorAddress.
  virtual Result<void*> allocate(size_t bytes) = 0;
  virtual void release(void* ptr) = 0;
  // Host memory to copy from and to: page-locked on a GPU (DMA; copies from it run asynchronously
  // on the stream, so keep it alive until the stream has passed them), plain memory for CPU engines.
  virtual Result<void*> allocateHost(size_t bytes) = 0;
  virtual void releaseHost(void* ptr) = 0;
  virtual Status copyToDevice(void* dst, const void* src, size_t bytes, void* stream = nullptr) = 0;
  virtual Status copyToHost(void* dst, const void* src, size_t bytes, void* stream = nullptr) = 0;
  virtual Status synchronize(void* stream = nullptr) = 0;
  // A stream on the engine's device (a cudaStream_t; null on CPU, which needs none).
  virtual Result<void*> createStream() = 0;
  virtual void destroyStream(void* stream) = 0;
  // Every optimization profile's shape ranges (profile 0 is info().profiles).
  virtual std::vector<std::vector<ShapeProfile>> optimizationProfiles() const { return {info().profiles}; }
};

// Registers the CUDA backend (defined in the ramjet_cuda library). Programs that load or build
// CUDA plans call it once; without it a CUDA build or plan fails with a clear error.
// Declared here, defined only where CUDA was compiled in (RAMJET_HAVE_CUDA).
Status registerCudaBackend();

}  // namespace ramjet
