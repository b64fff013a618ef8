// The KServe v2 inference server: model repository, REST routes, Prometheus metrics.
#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ramjet/serve.h"
#include "serve/grpc_hook.h"
#include "serve/http.h"

namespace ramjet::serve {

using json = nlohmann::json;

// ---- model repository ----

Status applyModelConfigJson(std::string_view text, const std::string& what, BatcherOptions* cfg,
                            std::vector<int>* devices) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return makeError(StatusCode::kInvalidArgument, what, ": not a JSON object");
  auto intKey = [&](const json& v, const std::string& key, int64_t lo, int64_t hi, int64_t* out) -> Status {
    if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
      return makeError(StatusCode::kInvalidArgument, what, ": '", key, "' must be an integer in ", lo, "..", hi,
                       ", got ", v.dump());
    *out = v.get<int64_t>();
    return Status::Ok();
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    int64_t v = 0;
    if (k == "max_batch") {
      RJ_RETURN_IF_ERROR(intKey(*it, k, 0, 1 << 20, &cfg->max_batch));
    } else if (k == "max_queue_delay_us") {
      RJ_RETURN_IF_ERROR(intKey(*it, k, 0, 10'000'000, &cfg->max_queue_delay_us));
    } else if (k == "instances") {
      RJ_RETURN_IF_ERROR(intKey(*it, k, 1, 256, &v));
      cfg->instances = static_cast<int>(v);
    } else if (k == "max_queue_size") {
      RJ_RETURN_IF_ERROR(intKey(*it, k, 1, 1 << 24, &v));
      cfg->max_queue_size = static_cast<size_t>(v);
    } else if (k == "timeout_us") {
      RJ_RETURN_IF_ERROR(intKey(*it, k, 0, INT64_MAX / 2, &cfg->default_timeout_us));
    } else if (k == "dynamic_batching") {
      if (!it->is_boolean()) return makeError(StatusCode::kInvalidArgument, what, ": 'dynamic_batching' must be a boolean");
      cfg->dynamic_batching = it->get<bool>();
    } else if (k == "auto_buckets" || k == "warmup" || k == "eager_when_idle") {
      if (!it->is_boolean()) return makeError(StatusCode::kInvalidArgument, what, ": '", k, "' must be a boolean");
      (k == "auto_buckets" ? cfg->auto_buckets : k == "warmup" ? cfg->warmup : cfg->eager_when_idle) = it->get<bool>();
    } else if (k == "preferred_batch_sizes") {
      if (!it->is_array())
        return makeError(StatusCode::kInvalidArgument, what, ": 'preferred_batch_sizes' must be an array of integers");
      cfg->preferred_batch_sizes.clear();
      for (const auto& e : *it) {
        RJ_RETURN_IF_ERROR(intKey(e, k, 1, 1 << 20, &v));
        cfg->preferred_batch_sizes.push_back(v);
      }
    } else if (k == "devices" && devices) {
      if (!it->is_array() || it->empty())
        return makeError(StatusCode::kInvalidArgument, what, ": 'devices' must be a non-empty array of GPU ordinals");
      devices->clear();
      for (const auto& e : *it) {
        RJ_RETURN_IF_ERROR(intKey(e, k, 0, 1023, &v));
        devices->push_back(static_cast<int>(v));
      }
    } else {
      return makeError(StatusCode::kInvalidArgument, what, ": unknown key '", k,
                       "' (known: max_batch, max_queue_delay_us, instances, max_queue_size, timeout_us, "
                       "dynamic_batching, preferred_batch_sizes, auto_buckets, warmup, eager_when_idle, devices)");
    }
  }
  return Status::Ok();
}

namespace {

bool isFile(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}
bool isDir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
Result<std::string> readFile(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) return makeError(StatusCode::kIoError, "cannot read '", p, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  if (s.size() > (1u << 20)) return makeError(StatusCode::kInvalidArgument, "'", p, "' is larger than 1 MiB");
  return s;
}
bool validModelName(const std::string& n) {
  if (n.empty() || n.size() > 128) return false;
  for (char c : n)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
  return n[0] != '.';
}

}  // namespace

Result<std::vector<ModelConfig>> scanModelRepository(const std::string& dir, const BatcherOptions& defaults,
                                                     const std::vector<int>& default_devices) {
  if (!isDir(dir)) return makeError(StatusCode::kNotFound, "model repository '", dir, "' is not a directory");
  DIR* d = ::opendir(dir.c_str());
  if (!d) return makeError(StatusCode::kIoError, "cannot open model repository '", dir, "'");
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.emplace_back(e->d_name);
  ::closedir(d);
  std::sort(names.begin(), names.end());
  std::vector<ModelConfig> out;
  for (const std::string& n : names) {
    if (n == "." || n == "..") continue;
    std::string path = dir + "/" + n;
    ModelConfig mc;
    mc.batching = defaults;
    mc.devices = default_devices;
    std::string cfg;
    if (isFile(path) && n.size() > 5 && n.compare(n.size() - 5, 5, ".plan") == 0) {
      mc.name = n.substr(0, n.size() - 5);
      mc.plan_path = path;
      cfg = dir + "/" + mc.name + ".json";
    } else if (isDir(path) && isFile(path + "/model.plan")) {
      mc.name = n;
      mc.plan_path = path + "/model.plan";
      cfg = path + "/config.json";
    } else {
      continue;
    }
    if (!validModelName(mc.name))
      return makeError(StatusCode::kInvalidArgument, "model name '", mc.name, "' (from '", path,
                       "') must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.'");
    for (const auto& m : out)
      if (m.name == mc.name)
        return makeError(StatusCode::kInvalidArgument, "model '", mc.name, "' appears twice in '", dir, "'");
    if (isFile(cfg)) {
      RJ_ASSIGN_OR_RETURN(std::string text, readFile(cfg));
      RJ_RETURN_IF_ERROR(applyModelConfigJson(text, "model config '" + cfg + "'", &mc.batching, &mc.devices));
    }
    out.push_back(std::move(mc));
  }
  if (out.empty())
    return makeError(StatusCode::kNotFound, "model repository '", dir,
                     "' has no models (<name>.plan files or <name>/model.plan folders)");
  return out;
}

namespace {

HttpResponse jsonResponse(int status, const json& j) {
  HttpResponse r;
  r.status = status;
  r.body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}
HttpResponse errorResponse(int status, const std::string& msg) { return jsonResponse(status, json{{"error", msg}}); }

int httpStatusFor(Outcome o, const Status& st) {
  switch (o) {
    case Outcome::kOk: return 200;
    case Outcome::kInvalid: return st.code() == StatusCode::kNotFound ? 404 : 400;
    case Outcome::kQueueFull: return 503;
    case Outcome::kTimedOut: return 504;
    case Outcome::kCancelled: return 503;
    case Outcome::kShuttingDown: return 503;
    case Outcome::kFailed: return 500;
  }
  return 500;
}

json shapeJson(const Shape& s) {
  json a = json::array();
  for (const Dim& d : s.dims) a.push_back(d.known() ? d.value : -1);
  return a;
}

json tensorsJson(const std::vector<TensorInfo>& ts) {
  json a = json::array();
  for (const auto& t : ts)
    a.push_back({{"name", t.name}, {"datatype", kserveDataTypeName(t.dtype)}, {"shape", shapeJson(t.shape)}});
  return a;
}

struct Loaded {
  ModelConfig cfg;
  std::unique_ptr<Batcher> batcher;
};

void writeHistogram(std::ostringstream& os, const std::string& name, const std::string& model,
                    const BatcherStats::Histogram& h) {
  for (size_t i = 0; i < h.bounds.size(); ++i)
    os << name << "_bucket{model=\"" << model << "\",le=\"" << h.bounds[i] << "\"} " << h.counts[i] << "\n";
  os << name << "_bucket{model=\"" << model << "\",le=\"+Inf\"} " << h.counts.back() << "\n";
  os << name << "_sum{model=\"" << model << "\"} " << h.sum << "\n";
  os << name << "_count{model=\"" << model << "\"} " << h.count << "\n";
}

class ServerImpl final : public InferenceServer, public ModelHub {
 public:
  Status init(const std::vector<ModelConfig>& models, const ServerOptions& o) {
    opt_ = o;
    if (models.empty()) return Status(StatusCode::kInvalidArgument, "no models to serve");
    for (const ModelConfig& mc : models) {
      // One engine per device (weights uploaded once per GPU); the batcher's instances spread
      // over them and share one queue.
      std::vector<int> devices = mc.devices;
      if (devices.empty()) devices.push_back(o.load.device_index);
      std::vector<std::shared_ptr<Engine>> engines;
      for (int d : devices) {
        LoadOptions lo = o.load;
        lo.device_index = d;
        auto eng = Engine::load(mc.plan_path, lo);
        if (!eng.ok())
          return eng.status().withContext("model '" + mc.name + "'" +
                                          (devices.size() > 1 ? " on device " + std::to_string(d) : ""));
        engines.emplace_back(std::move(*eng));
      }
      std::shared_ptr<Engine> shared = engines[0];
      auto b = Batcher::create(engines, mc.batching);
      if (!b.ok()) return b.status().withContext("model '" + mc.name + "'");
      models_.push_back(Loaded{mc, std::move(*b)});
      if (o.logger) {
        const auto& bo = models_.back().batcher->options();
        std::ostringstream os;
        os << "model '" << mc.name << "' (" << mc.plan_path << ", " << deviceKindName(shared->info().device)
           << "): max_batch " << bo.max_batch << ", dynamic batching " << (bo.dynamic_batching ? "on" : "off")
           << ", delay " << bo.max_queue_delay_us << " us, instances " << bo.instances << " x " << devices.size()
           << " device(s)";
        o.logger->log(Severity::kInfo, os.str());
      }
    }
    HttpServerOptions ho;
    ho.host = o.host;
    ho.port = o.http_port;
    ho.threads = o.http_threads;
    ho.max_body_bytes = o.max_body_bytes;
    ho.idle_timeout_ms = o.idle_timeout_ms;
    ho.max_connections = o.max_connections;
    ho.reuse_port = o.reuse_port;
    auto hs = HttpServer::start(ho, [this](const HttpRequest& rq) { return route(rq); });
    if (!hs.ok()) return hs.status();
    http_ = std::move(*hs);
    if (o.grpc_port >= 0) {
      auto g = startGrpcFrontend(*this, o.host, o.grpc_port);
      if (!g.ok()) {
        http_->shutdown();
        return g.status();
      }
      grpc_ = std::move(*g);
    }
    ready_ = true;
    return Status::Ok();
  }

  ~ServerImpl() override { shutdown(); }

  int httpPort() const override { return http_ ? http_->port() : -1; }
  int grpcPort() const override { return grpc_ ? grpc_->port() : -1; }
  ModelHub& hub() override { return *this; }

  void shutdown() override {
    std::lock_guard<std::mutex> lk(shutdown_mu_);
    ready_ = false;
    // Front ends first: they stop taking requests and wait for the ones in flight, which the
    // still-running batchers complete; then the batchers drain and stop.
    if (grpc_) grpc_->shutdown();
    if (http_) http_->shutdown();
    for (auto& m : models_) m.batcher->shutdown();
  }

  // ---- ModelHub ----
  bool ready() const override { return ready_; }
  std::vector<std::string> modelNames() const override {
    std::vector<std::string> n;
    for (const auto& m : models_) n.push_back(m.cfg.name);
    return n;
  }
  Batcher* find(const std::string& model, const std::string& version) const override {
    if (!version.empty() && version != "1") return nullptr;
    for (const auto& m : models_)
      if (m.cfg.name == model) return m.batcher.get();
    return nullptr;
  }

  InferResult infer(const std::string& model, const std::string& version, InferRequestMessage msg) override {
    InferResult res;
    Batcher* b = find(model, version);
    if (!b) {
      res.outcome = Outcome::kInvalid;
      res.status = makeError(StatusCode::kNotFound, "no model '", model, "'",
                             version.empty() ? "" : " version '" + version + "'", " (models: ", joined(), ")");
      return res;
    }
    const auto& outs = b->engine().outputs();
    std::vector<RequestedOutput> want = msg.outputs;
    if (want.empty())
      for (const auto& o : outs) want.push_back({o.name, msg.binary_output_default});
    std::vector<size_t> idx;
    for (const auto& w : want) {
      size_t k = 0;
      while (k < outs.size() && outs[k].name != w.name) ++k;
      if (k == outs.size()) {
        res.outcome = Outcome::kInvalid;
        std::string names;
        for (const auto& o : outs) names += (names.empty() ? "" : ", ") + o.name;
        res.status = makeError(StatusCode::kInvalidArgument, "model '", model, "' has no output '", w.name,
                               "' (outputs: ", names, ")");
        return res;
      }
      idx.push_back(k);
    }
    Request rq;
    rq.timeout_us = msg.timeout_us;
    for (auto& in : msg.inputs) {
      if (!rq.inputs.emplace(in.name, std::move(in.tensor)).second) {
        res.outcome = Outcome::kInvalid;
        res.status = makeError(StatusCode::kInvalidArgument, "input '", in.name, "' appears twice");
        return res;
      }
    }
    Response r = b->infer(std::move(rq));
    res.outcome = r.outcome;
    res.status = r.status;
    if (r.outcome != Outcome::kOk) return res;
    res.tensors = std::move(r.outputs);
    for (size_t i = 0; i < want.size(); ++i)
      res.outputs.push_back({want[i].name, &res.tensors[idx[i]], want[i].binary});
    return res;
  }

  std::string metricsText() const override {
    std::ostringstream os;
    os << "# HELP ramjet_requests_total Inference requests by outcome.\n# TYPE ramjet_requests_total counter\n";
    std::vector<std::pair<std::string, BatcherStats>> all;
    for (const auto& m : models_) all.emplace_back(m.cfg.name, m.batcher->stats());
    for (const auto& [n, s] : all) {
      os << "ramjet_requests_total{model=\"" << n << "\",outcome=\"ok\"} " << s.requests_ok << "\n";
      for (Outcome o : {Outcome::kInvalid, Outcome::kQueueFull, Outcome::kTimedOut, Outcome::kCancelled,
                        Outcome::kShuttingDown, Outcome::kFailed}) {
        auto it = s.failures.find(o);
        os << "ramjet_requests_total{model=\"" << n << "\",outcome=\"" << outcomeName(o) << "\"} "
           << (it == s.failures.end() ? 0 : it->second) << "\n";
      }
    }
    os << "# HELP ramjet_request_failures_total Inference requests that did not succeed.\n"
          "# TYPE ramjet_request_failures_total counter\n";
    for (const auto& [n, s] : all) os << "ramjet_request_failures_total{model=\"" << n << "\"} " << s.requests_failed << "\n";
    os << "# HELP ramjet_batches_total Engine runs.\n# TYPE ramjet_batches_total counter\n";
    for (const auto& [n, s] : all) os << "ramjet_batches_total{model=\"" << n << "\"} " << s.batches << "\n";
    os << "# HELP ramjet_padded_rows_total Zero rows added to reach a preferred or minimum batch.\n"
          "# TYPE ramjet_padded_rows_total counter\n";
    for (const auto& [n, s] : all) os << "ramjet_padded_rows_total{model=\"" << n << "\"} " << s.padded_rows << "\n";
    os << "# HELP ramjet_queue_depth Requests waiting for an instance.\n# TYPE ramjet_queue_depth gauge\n";
    for (const auto& [n, s] : all) os << "ramjet_queue_depth{model=\"" << n << "\"} " << s.queue_depth << "\n";
    os << "# HELP ramjet_queue_duration_seconds Time from arrival to the start of the request's batch.\n"
          "# TYPE ramjet_queue_duration_seconds histogram\n";
    for (const auto& [n, s] : all) writeHistogram(os, "ramjet_queue_duration_seconds", n, s.queue_seconds);
    os << "# HELP ramjet_compute_duration_seconds Engine time per batch (copies included).\n"
          "# TYPE ramjet_compute_duration_seconds histogram\n";
    for (const auto& [n, s] : all) writeHistogram(os, "ramjet_compute_duration_seconds", n, s.compute_seconds);
    os << "# HELP ramjet_batch_size Rows per engine run (after padding).\n# TYPE ramjet_batch_size histogram\n";
    for (const auto& [n, s] : all) writeHistogram(os, "ramjet_batch_size", n, s.batch_size);
    return os.str();
  }

 private:
  std::string joined() const {
    std::string s;
    for (const auto& m : models_) s += (s.empty() ? "" : ", ") + m.cfg.name;
    return s;
  }

  json modelMetadata(const std::string& name, const Batcher& b) const {
    return {{"name", name},
            {"versions", json::array({"1"})},
            {"platform", std::string("ramjet_") + deviceKindName(b.engine().info().device)},
            {"inputs", tensorsJson(b.engine().inputs())},
            {"outputs", tensorsJson(b.engine().outputs())}};
  }

  json modelConfig(const std::string& name, const Batcher& b) const {
    const auto& o = b.options();
    json c = {{"name", name},
              {"platform", std::string("ramjet_") + deviceKindName(b.engine().info().device)},
              {"max_batch_size", b.hasBatchDim() ? o.max_batch : 0},
              {"input", tensorsJson(b.engine().inputs())},
              {"output", tensorsJson(b.engine().outputs())},
              {"instance_group", json::array({{{"count", o.instances}}})}};
    if (o.dynamic_batching)
      c["dynamic_batching"] = {{"max_queue_delay_microseconds", o.max_queue_delay_us},
                               {"preferred_batch_size", o.preferred_batch_sizes},
                               {"max_queue_size", o.max_queue_size}};
    return c;
  }

  HttpResponse route(const HttpRequest& rq) {
    const std::string& p = rq.path;
    auto get = rq.method == "GET" || rq.method == "HEAD";
    auto post = rq.method == "POST";
    auto methodNotAllowed = [&] { return errorResponse(405, "method " + rq.method + " is not allowed on " + p); };
    if (p == "/v2/health/live") return get ? jsonResponse(200, {{"live", true}}) : methodNotAllowed();
    if (p == "/v2/health/ready") {
      if (!get) return methodNotAllowed();
      return jsonResponse(ready_ ? 200 : 503, {{"ready", ready_.load()}});
    }
    if (p == "/v2" || p == "/v2/") {
      if (!get) return methodNotAllowed();
      return jsonResponse(200, {{"name", "ramjet"},
                                {"version", RAMJET_VERSION},
                                {"extensions", json::array({"binary_tensor_data", "model_repository"})}});
    }
    if (p == "/metrics") {
      if (!get) return methodNotAllowed();
      HttpResponse r;
      r.content_type = "text/plain; version=0.0.4";
      r.body = metricsText();
      return r;
    }
    if (p == "/v2/repository/index") {
      if (!post && !get) return methodNotAllowed();
      json a = json::array();
      for (const auto& m : models_) a.push_back({{"name", m.cfg.name}, {"version", "1"}, {"state", "READY"}});
      return jsonResponse(200, a);
    }
    const std::string prefix = "/v2/models/";
    if (p.compare(0, prefix.size(), prefix) != 0) return errorResponse(404, "no route " + p);
    // /v2/models/<m>[/versions/<v>][/ready|/infer|/config|/stats]
    std::vector<std::string> parts;
    {
      std::string rest = p.substr(prefix.size());
      size_t s = 0;
      while (true) {
        size_t e = rest.find('/', s);
        parts.push_back(rest.substr(s, e == std::string::npos ? std::string::npos : e - s));
        if (e == std::string::npos) break;
        s = e + 1;
      }
    }
    if (parts.empty() || parts[0].empty()) return errorResponse(404, "no model named in " + p);
    std::string model = parts[0], version, action;
    size_t k = 1;
    if (k + 1 < parts.size() + 1 && k < parts.size() && parts[k] == "versions") {
      if (k + 1 >= parts.size() || parts[k + 1].empty()) return errorResponse(404, "no version named in " + p);
      version = parts[k + 1];
      k += 2;
    }
    if (k < parts.size()) action = parts[k++];
    if (k < parts.size()) return errorResponse(404, "no route " + p);
    Batcher* b = find(model, version);
    if (!b)
      return errorResponse(404, "no model '" + model + "'" + (version.empty() ? "" : " version '" + version + "'") +
                                    " (models: " + joined() + ")");
    if (action.empty()) return get ? jsonResponse(200, modelMetadata(model, *b)) : methodNotAllowed();
    if (action == "ready") {
      if (!get) return methodNotAllowed();
      return jsonResponse(ready_ ? 200 : 503, {{"name", model}, {"ready", ready_.load()}});
    }
    if (action == "config") return get ? jsonResponse(200, modelConfig(model, *b)) : methodNotAllowed();
    if (action != "infer") return errorResponse(404, "no route " + p);
    if (!post) return methodNotAllowed();
    if (!ready_) return errorResponse(503, "the server is shutting down");
    int64_t json_len = -1;
    if (const std::string* h = rq.header("inference-header-content-length")) {
      if (h->empty() || h->size() > 18 || !std::all_of(h->begin(), h->end(), ::isdigit))
        return errorResponse(400, "Inference-Header-Content-Length must be a decimal number");
      json_len = std::stoll(*h);
    }
    // Binary tensors land in the model's page-locked staging buffers (GPU engines).
    const TensorAllocator alloc = [b](DataType dt, std::vector<int64_t> dims) { return b->hostTensor(dt, std::move(dims)); };
    auto msg = parseInferRequestJson(rq.bodyView(), json_len, int64_t{1} << 30, &alloc);
    if (!msg.ok()) return errorResponse(400, msg.status().message());
    std::string id = msg->id;
    InferResult r = infer(model, version, std::move(*msg));
    if (r.outcome != Outcome::kOk) return errorResponse(httpStatusFor(r.outcome, r.status), r.status.message());
    HttpResponse resp;
    int64_t jl = -1;
    resp.body = encodeInferResponse(model, "1", id, r.outputs, &jl);
    if (jl >= 0) {
      resp.content_type = "application/octet-stream";
      resp.headers.emplace_back("Inference-Header-Content-Length", std::to_string(jl));
    }
    return resp;
  }

  ServerOptions opt_;
  std::vector<Loaded> models_;
  std::unique_ptr<HttpServer> http_;
  std::unique_ptr<GrpcFrontend> grpc_;
  std::atomic<bool> ready_{false};
  std::mutex shutdown_mu_;
};

}  // namespace

Result<std::unique_ptr<InferenceServer>> InferenceServer::start(const std::vector<ModelConfig>& models,
                                                                const ServerOptions& options) {
  auto s = std::make_unique<ServerImpl>();
  Status st = s->init(models, options);
  if (!st.ok()) return st;
  return std::unique_ptr<InferenceServer>(std::move(s));
}

}  // namespace ramjet::serve
