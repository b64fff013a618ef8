// `ramjet serve REPO`: a KServe v2 / Open Inference Protocol server (HTTP/REST, and gRPC where
// the plugin is built) with dynamic batching over a folder of plan files. SIGINT/SIGTERM stop it
// gracefully: no new connections, in-flight requests finish, then it exits.
#include <signal.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdlib>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "ramjet/serve.h"

namespace ramjet::cli {

void registerBackends();

namespace {

struct ServeArgs {
  std::string repository;
  std::vector<std::string> models;  // name=path.plan
  std::string host = "127.0.0.1";
  int http_port = 8000, grpc_port = -1, http_threads = 128, instances = 1, device_index = 0;
  int64_t max_batch = 0, delay_us = 100, timeout_us = 0;
  size_t max_queue = 1024;
  std::string preferred, devices;
  bool no_batching = false, verbose = false, reuse_port = false;
};

int runServe(const ServeArgs& a) {
#if defined(__GLIBC__)
  // glibc gives each of the up to 128 HTTP threads its own malloc arena (8 per core), and
  // request bodies of a few hundred KB freed in one arena are not reused by another: a loopback
  // soak's RSS grew ~0.3 MB/s with 32 clients of 602 KB requests (CPU and H100 alike) and
  // stayed flat with 2 arenas, at the same request rate. MALLOC_ARENA_MAX still overrides.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
#endif
  registerBackends();
  serve::BatcherOptions defaults;
  defaults.dynamic_batching = !a.no_batching;
  defaults.max_batch = a.max_batch;
  defaults.max_queue_delay_us = a.delay_us;
  defaults.instances = a.instances;
  defaults.max_queue_size = a.max_queue;
  defaults.default_timeout_us = a.timeout_us;
  if (!a.preferred.empty()) {
    std::stringstream ss(a.preferred);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      long long v = std::strtoll(item.c_str(), &end, 10);
      if (item.empty() || *end || v < 1) {
        std::cerr << "error: --preferred-batch-sizes: '" << item << "' is not a positive integer\n";
        return 2;
      }
      defaults.preferred_batch_sizes.push_back(v);
    }
  }
  std::vector<int> devices;
  if (!a.devices.empty()) {
    std::stringstream ss(a.devices);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      long v = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end || v < 0 || v > 1023) {
        std::cerr << "error: --devices: '" << item << "' is not a GPU ordinal\n";
        return 2;
      }
      devices.push_back(static_cast<int>(v));
    }
  }
  std::vector<serve::ModelConfig> models;
  if (!a.repository.empty()) {
    auto r = serve::scanModelRepository(a.repository, defaults, devices);
    if (!r.ok()) {
      std::cerr << "error: " << r.status().message() << "\n";
      return 1;
    }
    models = std::move(*r);
  }
  for (const std::string& spec : a.models) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
      std::cerr << "error: --model '" << spec << "' must be NAME=PATH.plan\n";
      return 2;
    }
    serve::ModelConfig mc;
    mc.name = spec.substr(0, eq);
    mc.plan_path = spec.substr(eq + 1);
    mc.batching = defaults;
    mc.devices = devices;
    models.push_back(mc);
  }
  if (models.empty()) {
    std::cerr << "error: give a model repository folder or --model NAME=PATH.plan\n";
    return 2;
  }
  // Block the stop signals in every thread the server starts; main waits for them with sigwait.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  StderrLogger logger(a.verbose ? Severity::kInfo : Severity::kWarning);
  serve::ServerOptions so;
  so.host = a.host;
  so.http_port = a.http_port;
  so.grpc_port = a.grpc_port;
  so.http_threads = a.http_threads;
  so.reuse_port = a.reuse_port;
  so.load.device_index = a.device_index;
  so.load.logger = &logger;
  so.logger = &logger;
  auto srv = serve::InferenceServer::start(models, so);
  if (!srv.ok()) {
    std::cerr << "error: " << srv.status().message() << "\n";
    return 1;
  }
  std::cout << "ramjet serve: " << models.size() << " model(s):";
  for (const auto& m : models) std::cout << " " << m.name;
  std::cout << "\nramjet serve: HTTP on " << a.host << ":" << (*srv)->httpPort() << "\n";
  if ((*srv)->grpcPort() >= 0) std::cout << "ramjet serve: gRPC on " << a.host << ":" << (*srv)->grpcPort() << "\n";
  std::cout << std::flush;
  int sig = 0;
  sigwait(&set, &sig);
  std::cout << "ramjet serve: " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
            << ": finishing in-flight requests" << std::endl;
  (*srv)->shutdown();
  uint64_t ok = 0, failed = 0;
  for (const std::string& n : (*srv)->hub().modelNames()) {
    serve::BatcherStats st = (*srv)->hub().find(n, "")->stats();
    ok += st.requests_ok;
    failed += st.requests_failed;
  }
  std::cout << "ramjet serve: stopped after " << ok << " requests (" << failed << " failed)" << std::endl;
  return 0;
}

}  // namespace

void addServeCommand(CLI::App& app, Action* action) {
  auto* cmd = app.add_subcommand("serve", "KServe v2 inference server (HTTP/REST + gRPC) with dynamic batching");
  auto a = std::make_shared<ServeArgs>();
  cmd->add_option("repository", a->repository,
                  "model repository folder: <name>.plan (+ <name>.json) or <name>/model.plan (+ config.json)");
  cmd->add_option("--model", a->models, "serve a plan as NAME=PATH.plan (repeatable)");
  cmd->add_option("--host", a->host, "address to listen on (default 127.0.0.1; 0.0.0.0 for all)");
  cmd->add_option("--http-port", a->http_port, "HTTP port (default 8000; 0 = any free port)")->check(CLI::Range(0, 65535));
  cmd->add_option("--grpc-port", a->grpc_port, "gRPC port (default off; needs the libramjet_grpc.so plugin)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--http-threads", a->http_threads,
                  "HTTP worker threads = requests served at once (default 128; >= client concurrency)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--max-batch", a->max_batch, "most rows per engine run (default: the plan's profile max)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--max-queue-delay-us", a->delay_us, "how long a request may wait for a batch to fill (default 100)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000000}));
  cmd->add_option("--instances", a->instances, "engine instances (contexts + streams) per model (default 1)")
      ->check(CLI::Range(1, 256));
  cmd->add_option("--max-queue-size", a->max_queue, "requests waiting beyond this are rejected with 503 (default 1024)")
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  cmd->add_option("--timeout-us", a->timeout_us, "default per-request queue timeout (0 = none)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--preferred-batch-sizes", a->preferred, "pad merged batches up to these sizes, e.g. 1,8,32");
  cmd->add_flag("--no-batching", a->no_batching, "run every request alone (for comparison)");
  cmd->add_option("--device-index", a->device_index, "GPU ordinal for CUDA plans");
  cmd->add_option("--devices", a->devices,
                  "several GPUs in one server: load each plan on these ordinals, e.g. 0,1 (--instances per device)");
  cmd->add_flag("--reuse-port", a->reuse_port,
                "SO_REUSEPORT: run several serve processes on one port; the kernel spreads connections");
  cmd->add_flag("-v,--verbose", a->verbose, "log model loading");
  cmd->callback([a, action] { *action = [a] { return runServe(*a); }; });
}

}  // namespace ramjet::cli
