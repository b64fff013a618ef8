// Serving: a dynamic batcher over an Engine, and the pieces of a KServe v2 / Open Inference
// Protocol server (`ramjet serve`).
//
//   auto engine  = ramjet::Engine::load("model.plan");
//   ramjet::serve::BatcherOptions bo;  bo.max_batch = 32;  bo.max_queue_delay_us = 500;
//   auto batcher = ramjet::serve::Batcher::create(std::move(*engine), bo);
//   ramjet::serve::Request rq;  rq.inputs["x"] = tensor_with_batch_3;
//   ramjet::serve::Response r = (*batcher)->infer(std::move(rq));   // or submit(rq, callback)
//
// Requests of batch 1..n are queued, merged along dim 0 into one engine run of at most
// max_batch rows (within max_queue_delay_us of the oldest request), and the outputs are split
// back per request. Several instances (one ExecutionContext + stream + thread each) share one
// engine. The queue is bounded: a full queue rejects at once (back-pressure) instead of growing.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ramjet/engine.h"
#include "ramjet/status.h"
#include "ramjet/tensor.h"

namespace ramjet::serve {

struct BatcherOptions {
  // Merge requests into one engine run. Off: every request runs alone with its own shape.
  bool dynamic_batching = true;
  // Most rows (dim 0) per engine run; 0 = the profile's max batch of the engine's inputs.
  int64_t max_batch = 0;
  // How long the oldest queued request may wait for others to join its batch.
  int64_t max_queue_delay_us = 100;
  // Batch sizes to pad a merged batch up to (zero rows, dropped from the outputs), e.g. the
  // sizes CUDA graphs were recorded for; empty = run the exact batch. The profile's min batch is
  // always honoured by padding.
  std::vector<int64_t> preferred_batch_sizes;
  // With no preferred_batch_sizes, a CUDA engine pads to autoBatchBuckets(max_batch): a dozen
  // shapes at most, each warmed up once, instead of a new shape (CUDA graph capture, cuDNN plan)
  // at every batch size the traffic happens to form. CPU engines run exact.
  bool auto_buckets = true;
  // Run every batch size the batcher can form (the buckets; or 1 and max_batch when exact) once
  // per instance at startup, so no request pays for first-use work.
  bool warmup = true;
  // Dispatch at once when no batch is running on any instance: the GPU never idles while a
  // request waits for company (low latency at low load; batches still form under load). Off:
  // the oldest request always waits up to max_queue_delay_us for max_batch rows (Triton's rule).
  bool eager_when_idle = true;
  // Model instances: ExecutionContexts, each with its own stream and worker thread.
  int instances = 1;
  // Bounded queue: requests waiting beyond this number are rejected with kQueueFull.
  size_t max_queue_size = 1024;
  // Default per-request timeout (queue time) in microseconds; 0 = none.
  int64_t default_timeout_us = 0;
};

// Why a request did not produce outputs (maps to HTTP/gRPC codes in the server).
enum class Outcome : int {
  kOk = 0,
  kInvalid,       // the request does not fit the model (names, dtypes, shapes, batch too big)
  kQueueFull,     // back-pressure: the queue is at max_queue_size
  kTimedOut,      // the deadline passed before an instance picked the request up
  kCancelled,     // the caller cancelled it while it was queued
  kShuttingDown,  // submitted after shutdown() began
  kFailed,        // the engine failed while running the batch
};
const char* outcomeName(Outcome o);

struct Request {
  // One tensor per engine input; each with the same dim 0 (the request's batch) when the
  // engine has a batch dimension.
  std::map<std::string, Tensor> inputs;
  // Zero = the batcher's default_timeout_us.
  int64_t timeout_us = 0;
  // Set to true (from any thread) to drop the request if it is still queued.
  std::shared_ptr<std::atomic<bool>> cancelled;
};

struct Response {
  Outcome outcome = Outcome::kOk;
  Status status;                // the reason when outcome != kOk
  std::vector<Tensor> outputs;  // in Engine::outputs() order, rows of this request only
  int64_t batch_size = 0;       // rows of the engine run this request was part of (padded)
  double queue_us = 0, compute_us = 0;
};

using Callback = std::function<void(Response)>;

// Counters and histograms of one batcher (cumulative since creation).
struct BatcherStats {
  uint64_t requests_ok = 0, requests_failed = 0, batches = 0, rows = 0, padded_rows = 0;
  size_t queue_depth = 0;
  std::map<Outcome, uint64_t> failures;  // by outcome
  // Prometheus-style cumulative histograms: counts[i] = observations <= bounds[i]; the last
  // count (+Inf) equals the total.
  struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // bounds.size() + 1
    double sum = 0;
    uint64_t count = 0;
  };
  Histogram queue_seconds, compute_seconds, batch_size;
};

// The batch sizes a CUDA batcher pads to by default: 1, 2, 4, 8, 16, then steps of
// max(8, max_batch/8 rounded up to 8) below max_batch, and max_batch; sizes below min_batch
// left out. Powers of two alone padded a 36-row batch to 64 (ResNet-50 on the H100: 2.7 ms
// instead of ~1.8 ms at 40); with steps the padding is at most one step.
std::vector<int64_t> autoBatchBuckets(int64_t max_batch, int64_t min_batch = 1);

class Batcher {
 public:
  static Result<std::unique_ptr<Batcher>> create(std::shared_ptr<Engine> engine, const BatcherOptions& options);
  // Several GPUs: the same plan loaded once per device; `instances` contexts on each, one queue.
  static Result<std::unique_ptr<Batcher>> create(std::vector<std::shared_ptr<Engine>> engines,
                                                 const BatcherOptions& options);
  virtual ~Batcher() = default;

  // Queues the request; `done` is called exactly once: inline when the request is rejected at
  // once (invalid, queue full, shutting down), otherwise on an instance thread. Keep it short.
  virtual void submit(Request request, Callback done) = 0;
  // Blocking convenience around submit().
  virtual Response infer(Request request) = 0;
  // Stops accepting, finishes every queued and running request, joins the instance threads.
  virtual void shutdown() = 0;

  virtual BatcherStats stats() const = 0;
  // An uninitialized tensor in the engine's staging memory for a request input (page-locked on a
  // GPU, recycled when released): filling it instead of a plain tensor makes the instance's
  // host-to-device copy a DMA. Plain memory when that memory cannot be had.
  virtual Tensor hostTensor(DataType dtype, std::vector<int64_t> dims) { return Tensor::uninitialized(dtype, std::move(dims)); }
  virtual const Engine& engine() const = 0;
  // Effective settings (max_batch resolved from the profile; 1 when the engine has no batch dim).
  virtual const BatcherOptions& options() const = 0;
  // True when the engine's inputs and outputs share a symbolic dim 0 that requests may vary.
  virtual bool hasBatchDim() const = 0;
};

// ---------------------------------------------------------------------------------------------
// KServe v2 / Open Inference Protocol: request and response bodies (HTTP/REST, JSON with the
// binary tensor data extension). Pure functions on bytes, so fuzzers and tests can call them.

// "FP32" <-> DataType; false / "" for types the protocol or ramjet cannot carry.
bool dataTypeFromKServe(std::string_view name, DataType* out);
const char* kserveDataTypeName(DataType t);

struct InferInputTensor {
  std::string name;
  Tensor tensor;  // dtype and shape from the request, data from JSON or the binary section
};
struct RequestedOutput {
  std::string name;
  bool binary = false;
};
struct InferRequestMessage {
  std::string id;
  std::vector<InferInputTensor> inputs;
  std::vector<RequestedOutput> outputs;  // empty = all outputs
  bool binary_output_default = false;    // parameters.binary_data_output
  int64_t timeout_us = 0;                // parameters.timeout (microseconds), 0 = none
};

// Parses an infer request body. `json_length` is the Inference-Header-Content-Length header
// value (the JSON part, binary tensor data follows), or -1 when the whole body is JSON.
// Limits: at most `max_elements` elements per tensor. Errors are kInvalidArgument naming the
// field and the reason. `alloc`, when given, makes the tensors of binary inputs (e.g.
// Batcher::hostTensor: page-locked memory); their bytes are then copied in.
using TensorAllocator = std::function<Tensor(DataType, std::vector<int64_t>)>;
Result<InferRequestMessage> parseInferRequestJson(std::string_view body, int64_t json_length,
                                                  int64_t max_elements = int64_t{1} << 30,
                                                  const TensorAllocator* alloc = nullptr);

struct OutputTensor {
  std::string name;
  const Tensor* tensor = nullptr;
  bool binary = false;
};
// Builds a response body; `*json_length` gets the JSON part's size (for
// Inference-Header-Content-Length) when any output is binary, else -1.
std::string encodeInferResponse(const std::string& model, const std::string& version, const std::string& id,
                                const std::vector<OutputTensor>& outputs, int64_t* json_length);

// ---------------------------------------------------------------------------------------------
// The server: a model repository served over HTTP/1.1 (and gRPC where built with RAMJET_GRPC).

struct ModelConfig {
  std::string name, plan_path;
  BatcherOptions batching;
  // GPUs to load the plan on (instances per device); empty = ServerOptions::load.device_index.
  std::vector<int> devices;
};

// Scans a repository folder: `<name>.plan` files, and `<name>/model.plan` folders; an optional
// `<name>.json` / `<name>/config.json` holds {"max_batch", "max_queue_delay_us", "instances",
// "max_queue_size", "dynamic_batching", "preferred_batch_sizes", "timeout_us", "devices"} overriding
// `defaults`. Unknown keys and wrong types are errors naming the file and key.
Result<std::vector<ModelConfig>> scanModelRepository(const std::string& dir, const BatcherOptions& defaults,
                                                     const std::vector<int>& default_devices = {});
// Applies a config JSON text onto `cfg` (and `devices` when given); `what` names the source in errors.
Status applyModelConfigJson(std::string_view json, const std::string& what, BatcherOptions* cfg,
                            std::vector<int>* devices = nullptr);

// The protocol-neutral core the HTTP and gRPC front ends share: the loaded models and infer.
class ModelHub {
 public:
  virtual ~ModelHub() = default;
  virtual bool ready() const = 0;  // every model loaded and not shutting down
  virtual std::vector<std::string> modelNames() const = 0;
  // nullptr when no such model; `version` "" or "1" (one version per model).
  virtual Batcher* find(const std::string& model, const std::string& version) const = 0;
  struct InferResult {
    Outcome outcome = Outcome::kOk;
    Status status;
    std::vector<OutputTensor> outputs;  // point into `tensors`
    std::vector<Tensor> tensors;
  };
  // Checks names against the model, queues, waits. kNotFound when the model does not exist.
  virtual InferResult infer(const std::string& model, const std::string& version, InferRequestMessage msg) = 0;
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  int http_port = 8000;  // 0 = pick a free port (see InferenceServer::httpPort)
  int grpc_port = -1;    // -1 = no gRPC
  int http_threads = 16;
  size_t max_body_bytes = size_t{256} << 20;
  int idle_timeout_ms = 60000;  // keep-alive connections idle longer are closed
  size_t max_connections = 1024;
  // SO_REUSEPORT: several server processes share one port; the kernel spreads connections.
  bool reuse_port = false;
  LoadOptions load;
  Logger* logger = nullptr;
};

class InferenceServer {
 public:
  // Loads every model and starts listening.
  static Result<std::unique_ptr<InferenceServer>> start(const std::vector<ModelConfig>& models,
                                                        const ServerOptions& options);
  virtual ~InferenceServer() = default;
  virtual int httpPort() const = 0;
  virtual int grpcPort() const = 0;  // -1 when gRPC is off
  // Graceful: stop accepting connections and new requests, finish in-flight ones, join.
  virtual void shutdown() = 0;
  // Prometheus text exposition of every model's batcher.
  virtual std::string metricsText() const = 0;
  virtual ModelHub& hub() = 0;
};

}  // namespace ramjet::serve
