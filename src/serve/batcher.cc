// Dynamic batcher: a bounded FIFO of requests, instance threads that each take the oldest
// request plus every queued request of the same shape signature that fits (waiting up to
// max_queue_delay_us for more to arrive), one engine run on the merged rows, outputs split back.
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "ramjet/serve.h"

namespace ramjet::serve {

const char* outcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk: return "ok";
    case Outcome::kInvalid: return "invalid";
    case Outcome::kQueueFull: return "queue_full";
    case Outcome::kTimedOut: return "timeout";
    case Outcome::kCancelled: return "cancelled";
    case Outcome::kShuttingDown: return "shutting_down";
    case Outcome::kFailed: return "failed";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;

BatcherStats::Histogram makeHistogram(std::vector<double> bounds) {
  BatcherStats::Histogram h;
  h.counts.assign(bounds.size() + 1, 0);
  h.bounds = std::move(bounds);
  return h;
}

void observe(BatcherStats::Histogram* h, double v) {
  for (size_t i = 0; i < h->bounds.size(); ++i)
    if (v <= h->bounds[i]) ++h->counts[i];
  ++h->counts.back();
  h->sum += v;
  ++h->count;
}

std::string dimsStr(const std::vector<int64_t>& d) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < d.size(); ++i) os << (i ? "," : "") << d[i];
  os << "]";
  return os.str();
}

Response failure(Outcome o, Status st) {
  Response r;
  r.outcome = o;
  r.status = std::move(st);
  return r;
}

struct Pending {
  Request rq;
  Callback done;
  Clock::time_point enqueued, deadline;  // deadline == time_point::max() when none
  int64_t rows = 1;
  std::string signature;  // non-batch dims of every input: requests merge only when equal
};

// Request buffers in the engine's staging memory (page-locked on a GPU: the instance's
// host-to-device copy is then a DMA at PCIe speed instead of a staged copy from pageable memory),
// recycled by size (64 KB classes) so steady traffic allocates nothing; at most kCacheBytes are
// kept free, beyond that buffers go back to the engine. Tensors keep the pool (and through it
// the engine) alive until they are released.
class HostPool : public std::enable_shared_from_this<HostPool> {
 public:
  static constexpr size_t kCacheBytes = size_t{256} << 20, kClass = size_t{64} << 10;
  explicit HostPool(std::shared_ptr<Engine> e) : engine_(std::move(e)) {}
  ~HostPool() {
    for (auto& [cls, v] : free_)
      for (void* p : v) engine_->releaseHost(p);
  }
  Tensor make(DataType dt, std::vector<int64_t> dims) {
    size_t bytes = dataTypeSize(dt);
    for (int64_t d : dims) bytes *= static_cast<size_t>(std::max<int64_t>(d, 0));
    if (bytes == 0 || bytes > kCacheBytes || dt == DataType::kString) return Tensor::uninitialized(dt, std::move(dims));
    const size_t cls = (bytes + kClass - 1) / kClass * kClass;
    void* p = nullptr;
    {
      std::lock_guard<std::mutex> lk(mu_);
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        p = it->second.back();
        it->second.pop_back();
        cached_ -= cls;
      }
    }
    if (!p) {
      auto r = engine_->allocateHost(cls);
      if (!r.ok()) return Tensor::uninitialized(dt, std::move(dims));  // pageable still works
      p = *r;
    }
    std::shared_ptr<HostPool> self = shared_from_this();
    std::shared_ptr<uint8_t> st(static_cast<uint8_t*>(p), [self, cls](uint8_t* q) { self->put(q, cls); });
    return Tensor(dt, std::move(dims), std::move(st));
  }

 private:
  void put(void* p, size_t cls) {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (cached_ + cls <= kCacheBytes) {
        free_[cls].push_back(p);
        cached_ += cls;
        return;
      }
    }
    engine_->releaseHost(p);
  }
  std::shared_ptr<Engine> engine_;
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

}  // namespace

std::vector<int64_t> autoBatchBuckets(int64_t max_batch, int64_t min_batch) {
  std::vector<int64_t> b;
  const int64_t step = std::max<int64_t>(8, (max_batch / 8 + 7) / 8 * 8);
  for (int64_t v = 1; v < max_batch; v = v < 16 ? v * 2 : v + step)
    if (v >= min_batch) b.push_back(v);
  b.push_back(max_batch);
  return b;
}

namespace {

class BatcherImpl final : public Batcher {
 public:
  Tensor hostTensor(DataType dtype, std::vector<int64_t> dims) override { return host_->make(dtype, std::move(dims)); }
  Status init(std::vector<std::shared_ptr<Engine>> engines, const BatcherOptions& o) {
    engines_ = std::move(engines);
    engine_ = engines_[0];
    opt_ = o;
    if (engine_) host_ = std::make_shared<HostPool>(engine_);
    for (const auto& e : engines_) {
      if (!e) return Status(StatusCode::kInvalidArgument, "Batcher::create: null engine");
      bool same = e->inputs().size() == engine_->inputs().size() && e->outputs().size() == engine_->outputs().size();
      for (size_t i = 0; same && i < e->inputs().size(); ++i)
        same = e->inputs()[i].name == engine_->inputs()[i].name && e->inputs()[i].dtype == engine_->inputs()[i].dtype;
      for (size_t i = 0; same && i < e->outputs().size(); ++i)
        same = e->outputs()[i].name == engine_->outputs()[i].name && e->outputs()[i].dtype == engine_->outputs()[i].dtype;
      if (!same) return Status(StatusCode::kInvalidArgument, "the engines of one model must have the same inputs and outputs");
    }
    if (opt_.instances < 1 || opt_.instances > 256)
      return makeError(StatusCode::kInvalidArgument, "instances must be in 1..256, got ", opt_.instances);
    if (opt_.max_queue_size < 1) return Status(StatusCode::kInvalidArgument, "max_queue_size must be at least 1");
    if (opt_.max_queue_delay_us < 0 || opt_.max_queue_delay_us > 10'000'000)
      return makeError(StatusCode::kInvalidArgument, "max_queue_delay_us must be in 0..10000000, got ",
                       opt_.max_queue_delay_us);
    if (opt_.default_timeout_us < 0)
      return makeError(StatusCode::kInvalidArgument, "timeout must not be negative, got ", opt_.default_timeout_us);
    if (opt_.max_batch < 0) return makeError(StatusCode::kInvalidArgument, "max_batch must not be negative");
    const auto& ins = engine_->inputs();
    const auto& outs = engine_->outputs();
    if (ins.empty()) return Status(StatusCode::kInvalidArgument, "the engine has no inputs");
    // A batch dim: every input and output starts with the same symbolic dim.
    std::string sym;
    has_batch_ = true;
    for (const auto* list : {&ins, &outs})
      for (const TensorInfo& t : *list) {
        if (!t.shape.rank_known || t.shape.rank() == 0 || t.shape.dims[0].known()) {
          has_batch_ = false;
          continue;
        }
        if (sym.empty()) sym = t.shape.dims[0].symbol;
        if (t.shape.dims[0].symbol != sym) has_batch_ = false;
      }
    for (const TensorInfo& t : ins)
      if (dataTypeSize(t.dtype) == 0)
        return makeError(StatusCode::kUnsupported, "input '", t.name, "' has type ", dataTypeName(t.dtype),
                         ", which the batcher cannot carry");
    // Profile range of dim 0.
    profile_min_ = 1;
    int64_t pmax = has_batch_ ? INT64_MAX : 1;
    for (const TensorInfo& t : ins) {
      const ShapeProfile* p = profileOf(t.name);
      if (!has_batch_) continue;
      if (!p || p->max.empty()) {
        pmax = 1;  // symbolic dims without a profile are fixed at 1
        continue;
      }
      pmax = std::min(pmax, p->max[0]);
      profile_min_ = std::max(profile_min_, p->min[0]);
    }
    if (!has_batch_) {
      if (opt_.max_batch > 1)
        return makeError(StatusCode::kInvalidArgument, "max_batch ", opt_.max_batch,
                         " needs an engine whose inputs and outputs share a symbolic batch dim 0; this one has none");
      opt_.dynamic_batching = false;
      opt_.max_batch = 1;
    } else if (opt_.max_batch == 0) {
      opt_.max_batch = pmax;
    } else if (opt_.max_batch > pmax) {
      return makeError(StatusCode::kInvalidArgument, "max_batch ", opt_.max_batch,
                       " exceeds the plan's profile maximum batch ", pmax, ": rebuild with a larger --max-shapes");
    }
    if (opt_.max_batch < profile_min_)
      return makeError(StatusCode::kInvalidArgument, "max_batch ", opt_.max_batch, " is below the profile's minimum batch ",
                       profile_min_);
    if (opt_.preferred_batch_sizes.empty() && opt_.auto_buckets && opt_.dynamic_batching && has_batch_ &&
        engine_->info().device == DeviceKind::kCuda) {
      opt_.preferred_batch_sizes = autoBatchBuckets(opt_.max_batch, profile_min_);
    }
    std::sort(opt_.preferred_batch_sizes.begin(), opt_.preferred_batch_sizes.end());
    for (int64_t b : opt_.preferred_batch_sizes)
      if (b < 1 || b > opt_.max_batch)
        return makeError(StatusCode::kInvalidArgument, "preferred batch size ", b, " is outside 1..max_batch (",
                         opt_.max_batch, ")");
    stats_.queue_seconds =
        makeHistogram({5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1, 2.5, 5});
    stats_.compute_seconds = makeHistogram(stats_.queue_seconds.bounds);
    stats_.batch_size = makeHistogram({1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
    // `instances` contexts per engine (per device); the instance threads share one queue.
    for (const auto& e : engines_)
      for (int i = 0; i < opt_.instances; ++i) {
        RJ_ASSIGN_OR_RETURN(auto ctx, e->createContext());
        contexts_.push_back(std::move(ctx));
        auto io = std::make_unique<DeviceIo>();
        io->engine = e.get();
        // RAMJET_SERVE_IO=merge|direct overrides the default (direct on a GPU, merged host tensors
        // on the CPU, where inputs are used in place): tests run the direct path on the CPU.
        const std::string mode = std::getenv("RAMJET_SERVE_IO") ? std::getenv("RAMJET_SERVE_IO") : "";
        if (!mode.empty() && mode != "direct" && mode != "merge")
          return makeError(StatusCode::kInvalidArgument, "RAMJET_SERVE_IO must be 'direct' or 'merge', got '", mode, "'");
        io->direct = mode.empty() ? e->info().device != DeviceKind::kCpu : mode == "direct";
        if (io->direct) {
          RJ_ASSIGN_OR_RETURN(io->stream, e->createStream());
        }
        io_.push_back(std::move(io));
      }
    if (opt_.warmup) RJ_RETURN_IF_ERROR(warmup());
    for (size_t i = 0; i < contexts_.size(); ++i) workers_.emplace_back([this, i] { workerLoop(static_cast<int>(i)); });
    reaper_ = std::thread([this] { reaperLoop(); });
    return Status::Ok();
  }

  ~BatcherImpl() override { shutdown(); }

  void submit(Request rq, Callback done) override {
    Pending p;
    Status st = validate(rq, &p.rows, &p.signature);
    if (!st.ok()) return finish(done, failure(Outcome::kInvalid, st), 0);
    p.enqueued = Clock::now();
    int64_t to = rq.timeout_us > 0 ? rq.timeout_us : opt_.default_timeout_us;
    p.deadline = to > 0 ? p.enqueued + std::chrono::microseconds(to) : Clock::time_point::max();
    p.rq = std::move(rq);
    p.done = std::move(done);
    {
      std::unique_lock<std::mutex> lk(mu_);
      if (stopping_) {
        lk.unlock();
        return finish(p.done, failure(Outcome::kShuttingDown, Status(StatusCode::kUnsupported, "the server is shutting down")), 0);
      }
      if (queue_.size() >= opt_.max_queue_size) {
        lk.unlock();
        return finish(p.done,
                      failure(Outcome::kQueueFull, makeError(StatusCode::kOutOfMemory, "the request queue is full (",
                                                             opt_.max_queue_size, " requests waiting): retry later")),
                      0);
      }
      queue_.push_back(std::move(p));
    }
    cv_.notify_all();
  }

  Response infer(Request rq) override {
    auto prom = std::make_shared<std::promise<Response>>();
    auto fut = prom->get_future();
    submit(std::move(rq), [prom](Response r) { prom->set_value(std::move(r)); });
    return fut.get();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (stopping_ && workers_.empty()) return;
      stopping_ = true;
    }
    cv_.notify_all();
    std::lock_guard<std::mutex> jl(join_mu_);
    for (auto& t : workers_)
      if (t.joinable()) t.join();
    if (reaper_.joinable()) reaper_.join();
    std::lock_guard<std::mutex> lk(mu_);
    workers_.clear();
  }

  BatcherStats stats() const override {
    std::lock_guard<std::mutex> lk(stats_mu_);
    BatcherStats s = stats_;
    std::lock_guard<std::mutex> lq(mu_);
    s.queue_depth = queue_.size();
    return s;
  }
  const Engine& engine() const override { return *engine_; }
  const BatcherOptions& options() const override { return opt_; }
  bool hasBatchDim() const override { return has_batch_; }

 private:
  // One run per instance of every batch size this batcher can form, on zero inputs whose
  // non-batch symbolic dims take the profile's opt values.
  Status warmup() {
    std::vector<int64_t> sizes;
    if (!has_batch_) {
      sizes = {1};
    } else if (!opt_.preferred_batch_sizes.empty()) {
      sizes = opt_.preferred_batch_sizes;
      if (opt_.max_batch > sizes.back()) sizes.push_back(opt_.max_batch);  // beyond the largest: exact
    } else {
      sizes = {std::max<int64_t>(1, profile_min_), opt_.max_batch};
    }
    for (auto& ctx : contexts_)
      for (int64_t b : sizes) {
        std::map<std::string, Tensor> feeds;
        for (const TensorInfo& t : engine_->inputs()) {
          if (!t.shape.rank_known) return Status::Ok();  // nothing sensible to make: skip warm-up
          const ShapeProfile* p = profileOf(t.name);
          std::vector<int64_t> dims;
          for (size_t k = 0; k < t.shape.rank(); ++k) {
            const Dim& d = t.shape.dims[k];
            if (k == 0 && has_batch_) dims.push_back(b);
            else if (d.known()) dims.push_back(d.value);
            else dims.push_back(p && k < p->opt.size() ? p->opt[k] : 1);
          }
          feeds.emplace(t.name, Tensor(t.dtype, dims));
        }
        const size_t idx = static_cast<size_t>(&ctx - contexts_.data());
        Status st = io_[idx]->direct ? runDirect(idx, {&feeds}, {has_batch_ ? b : 1}, has_batch_ ? b : 1).status()
                                     : ctx->infer(feeds).status();
        if (!st.ok()) return makeError(StatusCode::kInternal, "warm-up run at batch ", b, " failed: ", st.toString());
      }
    return Status::Ok();
  }

  // Device buffers and a stream per instance: on a GPU, requests are copied straight into the
  // instance's device input buffers at their row offsets and each request's output rows straight
  // back into its own tensors (no merged host batch: that was one single-threaded copy of the
  // whole batch in and one out, as long as the host-to-device copy itself). Buffers grow to the
  // largest batch seen and keep their addresses, so the context's CUDA graphs stay valid.
  struct DeviceIo {
    Engine* engine = nullptr;
    bool direct = false;
    void* stream = nullptr;
    std::vector<void*> bufs;  // inputs then outputs
    std::vector<size_t> caps;
    std::vector<void*> host_out;  // per output: the batch's rows, page-locked (one DMA back)
    std::vector<size_t> host_caps;
    std::vector<uint8_t> zeros;  // padding rows
    ~DeviceIo() {
      if (!engine) return;
      if (stream) engine->synchronize(stream).ok();
      for (void* b : bufs)
        if (b) engine->release(b);
      for (void* h : host_out)
        if (h) engine->releaseHost(h);
      if (stream) engine->destroyStream(stream);
    }
  };

  Result<void*> ioBuffer(DeviceIo& io, size_t k, size_t bytes) {
    if (io.bufs.size() <= k) io.bufs.resize(k + 1, nullptr), io.caps.resize(k + 1, 0);
    if (io.bufs[k] && io.caps[k] >= bytes) return io.bufs[k];
    if (io.bufs[k]) {
      RJ_RETURN_IF_ERROR(io.engine->synchronize(io.stream));
      io.engine->release(io.bufs[k]);
      io.bufs[k] = nullptr;
    }
    RJ_ASSIGN_OR_RETURN(io.bufs[k], io.engine->allocate(std::max<size_t>(bytes, 256)));
    io.caps[k] = std::max<size_t>(bytes, 256);
    return io.bufs[k];
  }

  // Runs `parts` (requests of part_rows[i] rows each, in order) as one batch of run_rows rows
  // (zero rows pad the rest) on instance idx; returns each part's outputs (dim 0 = its rows).
  Result<std::vector<std::vector<Tensor>>> runDirect(size_t idx, const std::vector<const std::map<std::string, Tensor>*>& parts,
                                                     const std::vector<int64_t>& part_rows, int64_t run_rows) {
    DeviceIo& io = *io_[idx];
    ExecutionContext& ctx = *contexts_[idx];
    const auto& ins = engine_->inputs();
    const auto& outs = engine_->outputs();
    for (size_t i = 0; i < ins.size(); ++i) {
      const Tensor& first = parts[0]->at(ins[i].name);
      std::vector<int64_t> dims = first.dims();
      size_t row_bytes = first.nbytes();
      if (has_batch_) {
        row_bytes = dims[0] ? first.nbytes() / static_cast<size_t>(dims[0]) : 0;
        dims[0] = run_rows;
      }
      const size_t need = has_batch_ ? row_bytes * static_cast<size_t>(run_rows) : first.nbytes();
      RJ_ASSIGN_OR_RETURN(void* buf, ioBuffer(io, i, need));
      size_t off = 0;
      for (const auto* part : parts) {
        const Tensor& t = part->at(ins[i].name);
        if (off + t.nbytes() > need)  // validate() merges only requests of one row shape
          return makeError(StatusCode::kInternal, "input '", ins[i].name, "': the batch's requests have different row sizes");
        if (t.nbytes()) RJ_RETURN_IF_ERROR(io.engine->copyToDevice(static_cast<uint8_t*>(buf) + off, t.raw(), t.nbytes(), io.stream));
        off += t.nbytes();
      }
      if (off < need) {
        if (io.zeros.size() < need - off) io.zeros.assign(need - off, 0);
        RJ_RETURN_IF_ERROR(io.engine->copyToDevice(static_cast<uint8_t*>(buf) + off, io.zeros.data(), need - off, io.stream));
      }
      RJ_RETURN_IF_ERROR(ctx.setInputShape(ins[i].name, dims));
      RJ_RETURN_IF_ERROR(ctx.setTensorAddress(ins[i].name, buf));
    }
    std::vector<std::vector<int64_t>> out_dims(outs.size());
    for (size_t o = 0; o < outs.size(); ++o) {
      RJ_ASSIGN_OR_RETURN(out_dims[o], ctx.tensorShape(outs[o].name));
      if (has_batch_ && (out_dims[o].empty() || out_dims[o][0] != run_rows))
        return makeError(StatusCode::kInternal, "output '", outs[o].name, "' has shape ", dimsStr(out_dims[o]),
                         ", whose dim 0 is not the batch ", run_rows, ": cannot split it");
      size_t bytes = dataTypeSize(outs[o].dtype);
      for (int64_t d : out_dims[o]) bytes *= static_cast<size_t>(d);
      RJ_ASSIGN_OR_RETURN(void* buf, ioBuffer(io, ins.size() + o, bytes));
      RJ_RETURN_IF_ERROR(ctx.setTensorAddress(outs[o].name, buf));
    }
    RJ_RETURN_IF_ERROR(ctx.enqueue(io.stream));
    // Each output's real rows come back in one copy into page-locked memory (one DMA instead of a
    // synchronous copy per request), then split on the host after the stream is done.
    if (io.host_out.size() < outs.size()) io.host_out.resize(outs.size(), nullptr), io.host_caps.resize(outs.size(), 0);
    std::vector<size_t> row_bytes(outs.size()), real_bytes(outs.size());
    for (size_t o = 0; o < outs.size(); ++o) {
      row_bytes[o] = dataTypeSize(outs[o].dtype);
      for (size_t k = has_batch_ ? 1 : 0; k < out_dims[o].size(); ++k) row_bytes[o] *= static_cast<size_t>(out_dims[o][k]);
      size_t rows = 1;  // without a batch dim, row_bytes is the whole output
      if (has_batch_) {
        rows = 0;
        for (int64_t r : part_rows) rows += static_cast<size_t>(r);
      }
      real_bytes[o] = row_bytes[o] * rows;
      if (!real_bytes[o]) continue;
      if (io.host_caps[o] < real_bytes[o]) {
        if (io.host_out[o]) {
          RJ_RETURN_IF_ERROR(io.engine->synchronize(io.stream));
          io.engine->releaseHost(io.host_out[o]);
          io.host_out[o] = nullptr, io.host_caps[o] = 0;
        }
        RJ_ASSIGN_OR_RETURN(io.host_out[o], io.engine->allocateHost(real_bytes[o]));
        io.host_caps[o] = real_bytes[o];
      }
      RJ_RETURN_IF_ERROR(io.engine->copyToHost(io.host_out[o], io.bufs[ins.size() + o], real_bytes[o], io.stream));
    }
    RJ_RETURN_IF_ERROR(io.engine->synchronize(io.stream));
    std::vector<std::vector<Tensor>> result(parts.size());
    for (size_t o = 0; o < outs.size(); ++o) {
      size_t off = 0;
      for (size_t k = 0; k < parts.size(); ++k) {
        std::vector<int64_t> dims = out_dims[o];
        if (has_batch_) dims[0] = part_rows[k];
        Tensor piece = Tensor::uninitialized(outs[o].dtype, dims);  // filled below, completely
        const size_t n = has_batch_ ? row_bytes[o] * static_cast<size_t>(part_rows[k]) : piece.nbytes();
        if (off + n > real_bytes[o]) return makeError(StatusCode::kInternal, "output '", outs[o].name, "': split past the copied rows");
        if (n) std::memcpy(piece.raw(), static_cast<const uint8_t*>(io.host_out[o]) + off, n);
        if (has_batch_) off += n;
        result[k].push_back(std::move(piece));
      }
    }
    return result;
  }

  const ShapeProfile* profileOf(const std::string& name) const {
    for (const auto& p : engine_->info().profiles)
      if (p.input == name) return &p;
    return nullptr;
  }

  Status validate(const Request& rq, int64_t* rows, std::string* sig) const {
    const auto& ins = engine_->inputs();
    for (const auto& [name, t] : rq.inputs) {
      bool found = false;
      for (const auto& i : ins) found |= i.name == name;
      if (!found) {
        std::string names;
        for (const auto& i : ins) names += (names.empty() ? "" : ", ") + i.name;
        return makeError(StatusCode::kInvalidArgument, "the model has no input '", name, "' (inputs: ", names, ")");
      }
    }
    *rows = -1;
    std::ostringstream os;
    for (const TensorInfo& info : ins) {
      auto it = rq.inputs.find(info.name);
      if (it == rq.inputs.end())
        return makeError(StatusCode::kInvalidArgument, "missing input '", info.name, "' (", dataTypeName(info.dtype), " ",
                         info.shape.toString(), ")");
      const Tensor& t = it->second;
      if (!t.isTensor() || t.dtype() != info.dtype) {
        // Protocol names (FP16, FP32, ...) where KServe has one: what clients put in "datatype".
        auto name = [](DataType d) {
          const char* k = kserveDataTypeName(d);
          return std::string(k && *k ? k : dataTypeName(d));
        };
        return makeError(StatusCode::kInvalidArgument, "input '", info.name, "' must be ", name(info.dtype), ", got ",
                         t.isTensor() ? name(t.dtype()) : std::string("a sequence or map"));
      }
      if (info.shape.rank_known && t.rank() != info.shape.rank())
        return makeError(StatusCode::kInvalidArgument, "input '", info.name, "' must have rank ", info.shape.rank(), " ",
                         info.shape.toString(), ", got shape ", dimsStr(t.dims()));
      const ShapeProfile* p = profileOf(info.name);
      for (size_t k = 0; k < t.rank(); ++k) {
        int64_t d = t.dims()[k];
        if (d < 0) return makeError(StatusCode::kInvalidArgument, "input '", info.name, "' has a negative dim");
        const Dim& want = info.shape.dims[k];
        if (want.known() && want.value != d)
          return makeError(StatusCode::kInvalidArgument, "input '", info.name, "' dim ", k, " must be ", want.value,
                           " ", info.shape.toString(), ", got shape ", dimsStr(t.dims()));
        if (!want.known() && !(has_batch_ && k == 0)) {
          int64_t lo = p && k < p->min.size() ? p->min[k] : 1, hi = p && k < p->max.size() ? p->max[k] : 1;
          if (d < lo || d > hi)
            return makeError(StatusCode::kInvalidArgument, "input '", info.name, "' dim ", k, " is ", d,
                             ", outside the plan's profile range ", lo, "..", hi);
        }
      }
      if (has_batch_) {
        int64_t b = t.dims()[0];
        if (*rows >= 0 && b != *rows)
          return makeError(StatusCode::kInvalidArgument, "inputs disagree on the batch (dim 0): '", info.name, "' has ",
                           b, ", others ", *rows);
        *rows = b;
        if (b < 1) return makeError(StatusCode::kInvalidArgument, "input '", info.name, "' has batch 0");
        if (b > opt_.max_batch)
          return makeError(StatusCode::kInvalidArgument, "input '", info.name, "' has batch ", b,
                           ", more than the model's max_batch ", opt_.max_batch);
      }
      os << dimsStr(std::vector<int64_t>(t.dims().begin() + (has_batch_ ? 1 : 0), t.dims().end())) << ";";
    }
    if (!has_batch_) *rows = 1;
    *sig = os.str();
    return Status::Ok();
  }

  void finish(const Callback& done, Response r, int64_t) {
    {
      std::lock_guard<std::mutex> lk(stats_mu_);
      if (r.outcome == Outcome::kOk) {
        ++stats_.requests_ok;
      } else {
        ++stats_.requests_failed;
        ++stats_.failures[r.outcome];
      }
    }
    if (done) done(std::move(r));
  }

  bool dead(const Pending& p, Clock::time_point now, Outcome* why) const {
    if (p.rq.cancelled && p.rq.cancelled->load()) {
      *why = Outcome::kCancelled;
      return true;
    }
    if (now >= p.deadline) {
      *why = Outcome::kTimedOut;
      return true;
    }
    return false;
  }

  // Moves cancelled / expired requests out of the queue (caller holds mu_).
  void collectDead(Clock::time_point now, std::vector<std::pair<Pending, Outcome>>* out) {
    for (auto it = queue_.begin(); it != queue_.end();) {
      Outcome why;
      if (dead(*it, now, &why)) {
        out->emplace_back(std::move(*it), why);
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
  }

  void failDead(std::vector<std::pair<Pending, Outcome>>* dead_list) {
    for (auto& [p, why] : *dead_list) {
      double waited = std::chrono::duration<double, std::micro>(Clock::now() - p.enqueued).count();
      Status st = why == Outcome::kCancelled
                      ? Status(StatusCode::kUnsupported, "the request was cancelled")
                      : makeError(StatusCode::kUnsupported, "the request timed out after ", static_cast<int64_t>(waited),
                                  " us in the queue");
      Response r = failure(why, st);
      r.queue_us = waited;
      finish(p.done, std::move(r), 0);
    }
    dead_list->clear();
  }

  void reaperLoop() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!stopping_) {  // once stopping, the draining workers expire requests themselves
      auto earliest = Clock::time_point::max();
      bool any_cancellable = false;
      for (const auto& p : queue_) {
        earliest = std::min(earliest, p.deadline);
        any_cancellable |= static_cast<bool>(p.rq.cancelled);
      }
      // Cancellation flags do not notify: poll them every 20 ms while such requests wait.
      if (any_cancellable) earliest = std::min(earliest, Clock::now() + std::chrono::milliseconds(20));
      if (earliest == Clock::time_point::max())
        cv_.wait(lk);
      else
        cv_.wait_until(lk, earliest);
      std::vector<std::pair<Pending, Outcome>> dl;
      collectDead(Clock::now(), &dl);
      if (!dl.empty()) {
        lk.unlock();
        failDead(&dl);
        lk.lock();
      }
    }
  }

  // Takes the next batch (caller holds mu_). Empty when the oldest request should wait longer.
  std::vector<Pending> takeBatch(Clock::time_point now, Clock::time_point* wake) {
    std::vector<Pending> batch;
    if (queue_.empty()) return batch;
    const Pending& head = queue_.front();
    if (!opt_.dynamic_batching) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
      return batch;
    }
    int64_t rows = 0;
    std::vector<size_t> picks;
    for (size_t i = 0; i < queue_.size(); ++i) {
      const Pending& p = queue_[i];
      if (p.signature != head.signature) continue;
      if (rows + p.rows > opt_.max_batch) break;  // keep FIFO order within a signature
      rows += p.rows;
      picks.push_back(i);
      if (rows == opt_.max_batch) break;
    }
    auto due = head.enqueued + std::chrono::microseconds(opt_.max_queue_delay_us);
    const bool idle = opt_.eager_when_idle && running_ == 0;
    if (rows < opt_.max_batch && now < due && !stopping_ && !idle) {
      *wake = due;
      return batch;
    }
    for (size_t k = picks.size(); k-- > 0;) {
      batch.push_back(std::move(queue_[picks[k]]));
      queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(picks[k]));
    }
    std::reverse(batch.begin(), batch.end());
    return batch;
  }

  void workerLoop(int idx) {
    std::unique_lock<std::mutex> lk(mu_);
    while (true) {
      if (queue_.empty()) {
        if (stopping_) return;
        cv_.wait(lk);
        continue;
      }
      auto now = Clock::now();
      std::vector<std::pair<Pending, Outcome>> dl;
      collectDead(now, &dl);
      if (!dl.empty()) {
        lk.unlock();
        failDead(&dl);
        lk.lock();
        continue;
      }
      Clock::time_point wake;
      std::vector<Pending> batch = takeBatch(now, &wake);
      if (batch.empty()) {
        cv_.wait_until(lk, wake);
        continue;
      }
      bool more = !queue_.empty();
      ++running_;
      lk.unlock();
      if (more) cv_.notify_all();  // another idle instance may take the rest
      runBatch(idx, &batch);
      lk.lock();
      --running_;
      if (!queue_.empty()) cv_.notify_all();  // waiting instances may dispatch now that one is free
    }
  }

  int64_t paddedRows(int64_t rows) const {
    int64_t target = std::max(rows, profile_min_);
    for (int64_t b : opt_.preferred_batch_sizes)
      if (b >= target) return b;
    return target;
  }

  void runBatch(int idx, std::vector<Pending>* batch) {
    auto t_start = Clock::now();
    int64_t rows = 0;
    for (const auto& p : *batch) rows += p.rows;
    int64_t run_rows = has_batch_ ? paddedRows(rows) : 1;
    ExecutionContext& ctx = *contexts_[idx];
    if (io_[static_cast<size_t>(idx)]->direct) {
      std::vector<const std::map<std::string, Tensor>*> parts;
      std::vector<int64_t> part_rows;
      for (const auto& p : *batch) parts.push_back(&p.rq.inputs), part_rows.push_back(p.rows);
      auto r = runDirect(static_cast<size_t>(idx), parts, part_rows, run_rows);
      // Like the merged path: from the batch's start to its outputs on the host.
      const double compute_us = std::chrono::duration<double, std::micro>(Clock::now() - t_start).count();
      std::vector<Response> resp(batch->size());
      for (size_t k = 0; k < resp.size(); ++k) {
        if (r.ok()) resp[k].outputs = std::move((*r)[k]);
        else resp[k] = failure(Outcome::kFailed, r.status());
      }
      return finishBatch(batch, std::move(resp), rows, run_rows, t_start, compute_us);
    }
    Result<std::vector<Tensor>> outs = Status(StatusCode::kInternal, "not run");
    bool single = batch->size() == 1 && run_rows == rows;
    if (single) {
      outs = ctx.infer((*batch)[0].rq.inputs);
    } else {
      std::map<std::string, Tensor> merged;
      for (const TensorInfo& info : engine_->inputs()) {
        const Tensor& first = (*batch)[0].rq.inputs.at(info.name);
        std::vector<int64_t> dims = first.dims();
        dims[0] = run_rows;
        Tensor m = Tensor::uninitialized(info.dtype, dims);
        size_t off = 0;
        for (const auto& p : *batch) {
          const Tensor& t = p.rq.inputs.at(info.name);
          if (t.nbytes()) std::memcpy(static_cast<uint8_t*>(m.raw()) + off, t.raw(), t.nbytes());
          off += t.nbytes();
        }
        if (off < m.nbytes()) std::memset(static_cast<uint8_t*>(m.raw()) + off, 0, m.nbytes() - off);  // padding rows
        merged.emplace(info.name, std::move(m));
      }
      outs = ctx.infer(merged);
    }
    auto t_end = Clock::now();
    double compute_us = std::chrono::duration<double, std::micro>(t_end - t_start).count();
    std::vector<Response> resp(batch->size());
    if (!outs.ok()) {
      for (auto& r : resp) r = failure(Outcome::kFailed, outs.status());
    } else if (single) {
      resp[0].outputs = std::move(*outs);
    } else {
      // Split every output's rows back to the requests, in queue order.
      const auto& ov = *outs;
      Status bad;
      for (size_t o = 0; o < ov.size() && bad.ok(); ++o)
        if (ov[o].rank() == 0 || ov[o].dims()[0] != run_rows)
          bad = makeError(StatusCode::kInternal, "output '", engine_->outputs()[o].name, "' has shape ",
                          dimsStr(ov[o].dims()), ", whose dim 0 is not the batch ", run_rows, ": cannot split it");
      if (!bad.ok()) {
        for (auto& r : resp) r = failure(Outcome::kFailed, bad);
      } else {
        for (const Tensor& out : ov) {
          size_t row_bytes = run_rows ? out.nbytes() / static_cast<size_t>(run_rows) : 0;
          size_t off = 0;
          for (size_t k = 0; k < batch->size(); ++k) {
            std::vector<int64_t> dims = out.dims();
            dims[0] = (*batch)[k].rows;
            Tensor piece = Tensor::uninitialized(out.dtype(), dims);  // filled below, completely
            size_t n = row_bytes * static_cast<size_t>((*batch)[k].rows);
            if (n) std::memcpy(piece.raw(), static_cast<const uint8_t*>(out.raw()) + off, n);
            off += n;
            resp[k].outputs.push_back(std::move(piece));
          }
        }
      }
    }
    finishBatch(batch, std::move(resp), rows, run_rows, t_start, compute_us);
  }

  void finishBatch(std::vector<Pending>* batch, std::vector<Response> resp, int64_t rows, int64_t run_rows,
                   Clock::time_point t_start, double compute_us) {
    {
      std::lock_guard<std::mutex> lk(stats_mu_);
      ++stats_.batches;
      stats_.rows += static_cast<uint64_t>(rows);
      stats_.padded_rows += static_cast<uint64_t>(run_rows - (has_batch_ ? rows : 1));
      observe(&stats_.batch_size, static_cast<double>(run_rows));
      observe(&stats_.compute_seconds, compute_us * 1e-6);
      for (const auto& p : *batch)
        observe(&stats_.queue_seconds, std::chrono::duration<double>(t_start - p.enqueued).count());
    }
    for (size_t k = 0; k < batch->size(); ++k) {
      Pending& p = (*batch)[k];
      resp[k].batch_size = run_rows;
      resp[k].compute_us = compute_us;
      resp[k].queue_us = std::chrono::duration<double, std::micro>(t_start - p.enqueued).count();
      finish(p.done, std::move(resp[k]), 0);
    }
  }

  std::vector<std::shared_ptr<Engine>> engines_;  // one per device
  std::shared_ptr<Engine> engine_;                 // engines_[0]: the model's description
  std::shared_ptr<HostPool> host_;                 // request buffers (engines_[0]'s staging memory)
  BatcherOptions opt_;
  bool has_batch_ = false;
  int64_t profile_min_ = 1;
  std::vector<std::unique_ptr<ExecutionContext>> contexts_;
  std::vector<std::unique_ptr<DeviceIo>> io_;  // one per context

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  int running_ = 0;  // batches being run by instances (guarded by mu_)
  std::vector<std::thread> workers_;
  std::thread reaper_;
  std::mutex join_mu_;

  mutable std::mutex stats_mu_;
  BatcherStats stats_;
};

}  // namespace

Result<std::unique_ptr<Batcher>> Batcher::create(std::shared_ptr<Engine> engine, const BatcherOptions& options) {
  if (!engine) return Status(StatusCode::kInvalidArgument, "Batcher::create: no engine");
  return create(std::vector<std::shared_ptr<Engine>>{std::move(engine)}, options);
}

Result<std::unique_ptr<Batcher>> Batcher::create(std::vector<std::shared_ptr<Engine>> engines,
                                                 const BatcherOptions& options) {
  if (engines.empty()) return Status(StatusCode::kInvalidArgument, "Batcher::create: no engine");
  auto b = std::make_unique<BatcherImpl>();
  Status st = b->init(std::move(engines), options);
  if (!st.ok()) return st;
  return std::unique_ptr<Batcher>(std::move(b));
}

}  // namespace ramjet::serve
