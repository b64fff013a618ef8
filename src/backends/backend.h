// The Backend/Kernel interfaces the builder and runtime talk to. A backend says which nodes it
// supports and offers candidate kernels ("tactics") per node; the builder picks one per node
// (timing them on the device when there is more than one) and records it in the plan; the
// runtime creates the kernels once per engine (prepare = weight packing/upload) and runs them
// per context with tensor memory the runtime planned.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ramjet/engine.h"
#include "ramjet/graph.h"
#include "ramjet/status.h"
#include "ramjet/tensor.h"

namespace ramjet::backend {

// Where a node of the plan runs.
enum class Placement : uint8_t {
  kDevice = 0,       // a kernel of the plan's backend
  kHost = 1,         // shape computation: evaluated on the host when input shapes are set
  kCpuFallback = 2,  // a CPU kernel inside a device engine (BuildOptions::allow_cpu_fallback)
  kAlias = 3,        // Reshape & co. whose output shares its input's buffer: nothing runs
};
const char* placementName(Placement p);

struct Tactic {
  std::string name;  // "cpu.reference", "cuda.conv.cudnn", ... (recorded in the plan)
  int32_t id = 0;    // backend-specific variant (algorithm index)
  // Input-0 dims the variant won its timing at (empty: not timed). Kernels fall back to their
  // heuristic choice for other shapes: an algorithm tuned for batch 64 can be slow at batch 1.
  std::vector<int64_t> tuned_dims;

  Tactic() = default;
  Tactic(std::string n, int32_t i, std::vector<int64_t> dims = {})
      : name(std::move(n)), id(i), tuned_dims(std::move(dims)) {}
};

// A tensor as a kernel sees it: memory on the backend's device and concrete dims.
struct TensorRef {
  void* data = nullptr;  // null for an omitted optional input/output
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;
  // The value on the host when it is known before the run (constants, shape values): kernels
  // read attributes-as-inputs (Reshape's shape, Slice's starts, Resize's scales) from here.
  const Tensor* host = nullptr;
  int64_t numel() const { return numElements(dims); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dataTypeSize(dtype); }
};

struct RunArgs {
  std::vector<TensorRef> inputs;
  std::vector<TensorRef> outputs;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  void* stream = nullptr;  // cudaStream_t for CUDA
  // CPU only: outputs whose shape is known only after running (data == nullptr) come back here.
  std::vector<Tensor>* produced = nullptr;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // Once per engine, before any run: the node's constant inputs on the host (null where the
  // input is not constant). Pack or upload weights here; contexts share the result.
  virtual Status prepare(const std::vector<const Tensor*>& constant_inputs) { return Status::Ok(); }
  // Scratch memory run() needs for these shapes (data pointers are not meaningful here).
  virtual size_t workspaceBytes(const RunArgs& args) const { return 0; }
  // Queues the work on args.stream. Must not allocate or synchronize (CUDA-graph capture).
  // May be called concurrently from several contexts: keep per-run state out of the kernel.
  virtual Status run(const RunArgs& args) = 0;
};

struct DeviceInfo {
  std::string name;  // "cpu" or the GPU's name
  int cc_major = 0, cc_minor = 0;
  int cuda_runtime_version = 0, cudnn_version = 0, cublas_version = 0;
  size_t total_memory = 0;
};

// Opaque per-(context, shape signature) record of queued work (a CUDA graph).
class Recording {
 public:
  virtual ~Recording() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind kind() const = 0;
  virtual const DeviceInfo& device() const = 0;

  // Ok when this backend can run `node` with these input/output types (shapes may be symbolic);
  // otherwise kUnsupported naming the reason.
  virtual Status supports(const Node& node, const std::vector<TensorType>& inputs,
                          const std::vector<TensorType>& outputs) const = 0;
  // Candidate kernels for a supported node, the backend's best guess first.
  virtual std::vector<Tactic> tactics(const Node& node, const std::vector<TensorType>& inputs,
                                      const std::vector<TensorType>& outputs) const = 0;
  // True when the kernel reads input `i` only through TensorRef::host (shape, axes, scales...):
  // such host values then need no device copy.
  virtual bool readsOnHost(const Node& node, size_t i) const { return false; }
  // Whether the backend has any kernel for this op type (supports() then decides per node).
  // Graph passes emit fused ops only where this is true.
  virtual bool hasKernelFor(const std::string& op_type) const { return true; }
  // `node` outlives the kernel (the engine owns the graph).
  virtual Result<std::unique_ptr<Kernel>> createKernel(const Node& node, const Tactic& tactic) = 0;

  // Device memory.
  enum class Copy { kHostToDevice, kDeviceToHost, kDeviceToDevice };
  virtual Result<void*> allocate(size_t bytes) = 0;
  virtual void release(void* p) = 0;
  virtual Status copy(void* dst, const void* src, size_t bytes, Copy direction, void* stream) = 0;
  virtual Status memset(void* dst, int value, size_t bytes, void* stream) = 0;
  virtual Status synchronize(void* stream) = 0;
  // Host memory for staging inputs and outputs: page-locked on a GPU (copies to and from it are
  // DMA, asynchronous and several times faster than from pageable memory); plain on the CPU.
  virtual Result<void*> allocateHost(size_t bytes) {
    void* p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
    if (!p) return makeError(StatusCode::kOutOfMemory, "cannot allocate ", bytes, " bytes of host memory");
    return p;
  }
  virtual void releaseHost(void* p) { std::free(p); }
  // A stream of the device (null = none needed, as on the CPU).
  virtual Result<void*> createStream() { return static_cast<void*>(nullptr); }
  virtual void destroyStream(void* stream) {}

  // Runs `launches` on `stream`. A backend that can record work (CUDA graphs) captures it the
  // second time a given recording slot is used (the first run warms lazy state up outside
  // capture) and replays it afterwards; `invalidate` drops the recording (addresses changed).
  // The default just calls `launches`.
  virtual Status execute(std::unique_ptr<Recording>* slot, bool invalidate,
                         const std::function<Status(void*)>& launches, void* stream) {
    return launches(stream);
  }
  // Milliseconds per call of `fn` on `stream`, averaged over `iterations` after one warm-up.
  virtual Result<double> timeMs(const std::function<Status(void*)>& fn, int iterations, void* stream);
};

// The CPU backend: every op of the registry through its reference kernel.
std::unique_ptr<Backend> createCpuBackend();

// Backend lookup for a device kind; CUDA must have been registered (registerCudaBackend()).
using BackendFactory = std::function<Result<std::unique_ptr<Backend>>(int device_index)>;
void registerBackendFactory(DeviceKind kind, BackendFactory factory);
Result<std::unique_ptr<Backend>> createBackend(DeviceKind kind, int device_index);

// Ops whose output can share the input's buffer (same bytes, new dims).
bool isAliasOp(const std::string& op_type);

}  // namespace ramjet::backend
