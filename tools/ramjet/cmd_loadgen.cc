// `ramjet loadgen`: a bounded closed-loop load generator for KServe v2 HTTP servers. Each of
// N client threads keeps one keep-alive connection and sends binary-tensor infer requests back
// to back for --duration seconds; reports throughput and latency percentiles per concurrency.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "commands.h"
#include "ramjet/serve.h"

namespace ramjet::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct LoadArgs {
  std::string url = "127.0.0.1:8000";
  std::string model;
  std::string concurrency = "1,16,64";
  std::vector<std::string> shapes;  // name:1x3x224x224 for non-batch variable dims
  int64_t batch = 1;
  double duration = 5, warmup = 1;
  int64_t max_requests = 0;
  bool json_out = false, check = false;
  double check_tol = 1e-4;  // max abs difference, relative to max(1, max |first answer|)
  std::string label;
};

class Conn {
 public:
  ~Conn() { close(); }
  bool connect(const std::string& host, const std::string& port, std::string* err) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) {
      *err = std::string("cannot resolve ") + host + ": " + gai_strerror(rc);
      return false;
    }
    for (addrinfo* a = res; a; a = a->ai_next) {
      fd_ = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
      if (fd_ < 0) continue;
      if (::connect(fd_, a->ai_addr, a->ai_addrlen) == 0) break;
      ::close(fd_);
      fd_ = -1;
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) {
      *err = "cannot connect to " + host + ":" + port + ": " + std::strerror(errno);
      return false;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{60, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return true;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // One request/response on the keep-alive connection; false on a transport error.
  bool roundTrip(const std::string& req, int* status, std::string* body, std::string* err, int64_t* json_len = nullptr) {
    size_t off = 0;
    while (off < req.size()) {
      ssize_t n = ::send(fd_, req.data() + off, req.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        *err = std::string("send: ") + std::strerror(errno);
        return false;
      }
      off += static_cast<size_t>(n);
    }
    size_t hend;
    while ((hend = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill(err)) return false;
    std::string head = buf_.substr(0, hend);
    if (head.compare(0, 9, "HTTP/1.1 ") != 0 && head.compare(0, 9, "HTTP/1.0 ") != 0) {
      *err = "malformed response";
      return false;
    }
    *status = std::atoi(head.c_str() + 9);
    size_t len = 0;
    std::string lower = head;
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t cl = lower.find("\r\ncontent-length:");
    if (cl != std::string::npos) len = std::strtoull(lower.c_str() + cl + 17, nullptr, 10);
    if (json_len) {
      size_t ih = lower.find("\r\ninference-header-content-length:");
      *json_len = ih == std::string::npos ? -1 : std::strtoll(lower.c_str() + ih + 35, nullptr, 10);
    }
    while (buf_.size() < hend + 4 + len)
      if (!fill(err)) return false;
    *body = buf_.substr(hend + 4, len);
    buf_.erase(0, hend + 4 + len);
    if (lower.find("\r\nconnection: close") != std::string::npos) close();
    return true;
  }
  bool open() const { return fd_ >= 0; }

 private:
  bool fill(std::string* err) {
    char tmp[65536];
    ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      *err = n == 0 ? "connection closed by the server" : std::string("recv: ") + std::strerror(errno);
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  int fd_ = -1;
  std::string buf_;
};

std::string httpGet(const std::string& host, const std::string& port, const std::string& path, int* status,
                    std::string* err) {
  Conn c;
  if (!c.connect(host, port, err)) return "";
  std::string body;
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n";
  if (!c.roundTrip(req, status, &body, err)) return "";
  return body;
}

double pct(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5))];
}

int runLoadgen(const LoadArgs& a) {
  std::string host = a.url, port = "8000";
  if (host.rfind("http://", 0) == 0) host = host.substr(7);
  if (size_t s = host.find('/'); s != std::string::npos) host = host.substr(0, s);
  if (size_t c = host.rfind(':'); c != std::string::npos) {
    port = host.substr(c + 1);
    host = host.substr(0, c);
  }
  std::vector<int> levels;
  {
    std::stringstream ss(a.concurrency);
    std::string item;
    while (std::getline(ss, item, ',')) {
      char* end = nullptr;
      long v = std::strtol(item.c_str(), &end, 10);
      if (item.empty() || *end || v < 1 || v > 4096) {
        std::cerr << "error: --concurrency: '" << item << "' must be an integer in 1..4096\n";
        return 2;
      }
      levels.push_back(static_cast<int>(v));
    }
  }
  std::map<std::string, std::vector<int64_t>> fixed;
  std::string err;
  if (!parseShapeSpecs(a.shapes, &fixed, &err)) {
    std::cerr << "error: --shapes: " << err << "\n";
    return 2;
  }
  int status = 0;
  std::string meta = httpGet(host, port, "/v2/models/" + a.model, &status, &err);
  if (!err.empty() || status != 200) {
    std::cerr << "error: model metadata of '" << a.model << "' from " << host << ":" << port << ": "
              << (err.empty() ? meta : err) << "\n";
    return 1;
  }
  json m = json::parse(meta, nullptr, false);
  if (m.is_discarded() || !m.contains("inputs")) {
    std::cerr << "error: the server's model metadata is not valid JSON\n";
    return 1;
  }
  // Request bodies (JSON header + binary tensors): one per client with --check (distinct data
  // per client, so a response delivered to the wrong request is caught), else one for all.
  struct Input {
    std::string name, datatype;
    DataType dt;
    std::vector<int64_t> dims;
  };
  std::vector<Input> ins;
  for (const auto& in : m["inputs"]) {
    Input x;
    x.name = in["name"].get<std::string>();
    x.datatype = in["datatype"].get<std::string>();
    if (!serve::dataTypeFromKServe(x.datatype, &x.dt)) {
      std::cerr << "error: input '" << x.name << "' has a datatype loadgen cannot generate\n";
      return 1;
    }
    x.dims = in["shape"].get<std::vector<int64_t>>();
    if (auto it = fixed.find(x.name); it != fixed.end()) x.dims = it->second;
    for (size_t k = 0; k < x.dims.size(); ++k) {
      if (x.dims[k] >= 0) continue;
      if (k == 0) {
        x.dims[k] = a.batch;
      } else {
        std::cerr << "error: input '" << x.name << "' dim " << k << " is variable: give --shapes " << x.name << ":...\n";
        return 2;
      }
    }
    ins.push_back(x);
  }
  auto makeRequest = [&](uint32_t seed) {
    json hdr;
    hdr["inputs"] = json::array();
    std::string bin;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> uni(-1.f, 1.f);
    for (const Input& x : ins) {
      Tensor t(x.dt, x.dims);
      if (x.dt == DataType::kFloat32 || x.dt == DataType::kFloat16 || x.dt == DataType::kBFloat16) {
        Tensor f(DataType::kFloat32, x.dims);
        for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = uni(rng);
        t = x.dt == DataType::kFloat32 ? std::move(f) : f.cast(x.dt);  // FP16/BF16 models (--reduced-io)
      }
      bin.append(static_cast<const char*>(t.raw()), t.nbytes());
      hdr["inputs"].push_back({{"name", x.name},
                               {"datatype", x.datatype},
                               {"shape", x.dims},
                               {"parameters", {{"binary_data_size", t.nbytes()}}}});
    }
    hdr["parameters"] = {{"binary_data_output", true}};
    std::string hj = hdr.dump();
    std::string body = hj + bin;
    return "POST /v2/models/" + a.model + "/infer HTTP/1.1\r\nHost: " + host +
           "\r\nContent-Type: application/octet-stream\r\nInference-Header-Content-Length: " +
           std::to_string(hj.size()) + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
  // --check decodes the binary outputs as the model's float type (one for all outputs).
  DataType out_dt = DataType::kFloat32;
  if (a.check && m.contains("outputs")) {
    std::set<std::string> types;
    for (const auto& o : m["outputs"]) types.insert(o.value("datatype", std::string("?")));
    DataType dt = DataType::kUndefined;
    if (types.size() != 1 || !serve::dataTypeFromKServe(*types.begin(), &dt) ||
        (dt != DataType::kFloat32 && dt != DataType::kFloat16 && dt != DataType::kBFloat16)) {
      std::cerr << "error: --check needs outputs of one float type (FP32, FP16 or BF16)\n";
      return 2;
    }
    out_dt = dt;
  }
  const size_t out_es = out_dt == DataType::kFloat32 ? 4 : 2;
  auto outAt = [out_dt](const char* p) -> float {
    if (out_dt == DataType::kFloat32) {
      float f;
      std::memcpy(&f, p, 4);
      return f;
    }
    uint16_t b;
    std::memcpy(&b, p, 2);
    return out_dt == DataType::kFloat16 ? Half::toFloat(b) : BFloat16::toFloat(b);
  };
  int max_c = *std::max_element(levels.begin(), levels.end());
  std::vector<std::string> reqs;
  for (int i = 0; i < (a.check ? max_c : 1); ++i) reqs.push_back(makeRequest(1234u + static_cast<uint32_t>(i)));
  std::atomic<int64_t> mismatches{0}, checked{0};
  // Largest difference seen, relative to max(1, max |first answer|): rounding when batches of
  // other sizes run other kernels (~1e-3 with TF32/FP16), ~1 for a response mixed up with
  // another client's.
  std::atomic<double> max_rel_diff{0.0};

  json results = json::array();
  if (!a.json_out)
    std::cout << "| " << (a.label.empty() ? "" : a.label + " ") << "concurrency | requests | errors | req/s | rows/s | p50 ms | p90 ms | p99 ms | max ms |\n"
              << "|---|---|---|---|---|---|---|---|---|\n";
  for (int c : levels) {
    std::atomic<bool> measuring{false}, stop{false};
    std::atomic<int64_t> sent{0};
    std::vector<std::vector<double>> lat(static_cast<size_t>(c));
    std::vector<int64_t> errors(static_cast<size_t>(c), 0);
    std::vector<std::string> first_error(static_cast<size_t>(c));
    std::vector<std::thread> th;
    for (int i = 0; i < c; ++i)
      th.emplace_back([&, i] {
        Conn conn;
        std::string e, resp, first;
        int st = 0;
        int64_t jl = -1;
        const std::string& req = reqs[a.check ? static_cast<size_t>(i) : 0];
        while (!stop) {
          if (!conn.open() && !conn.connect(host, port, &e)) {
            ++errors[i];
            if (first_error[i].empty()) first_error[i] = e;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            continue;
          }
          if (a.max_requests > 0 && measuring && sent.fetch_add(1) >= a.max_requests) break;
          auto t0 = Clock::now();
          bool ok = conn.roundTrip(req, &st, &resp, &e, &jl);
          double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
          if (!measuring) continue;
          if (!ok || st != 200) {
            ++errors[i];
            if (first_error[i].empty()) first_error[i] = ok ? "HTTP " + std::to_string(st) + ": " + resp : e;
            if (!ok) conn.close();
            continue;
          }
          lat[i].push_back(ms);
          if (a.check && jl >= 0 && static_cast<size_t>(jl) <= resp.size()) {
            // Same input every time: the binary outputs must match this client's first answer
            // (within FP tolerance: batch composition may change the summation order).
            std::string out = resp.substr(static_cast<size_t>(jl));
            if (first.empty()) {
              first = out;
            } else {
              ++checked;
              bool same = out.size() == first.size();
              double diff = 0, scale = 1;
              for (size_t k = 0; same && k + out_es <= out.size(); k += out_es) {
                const float x = outAt(out.data() + k), y = outAt(first.data() + k);
                diff = std::max(diff, std::isnan(x - y) ? 1e30 : static_cast<double>(std::fabs(x - y)));
                scale = std::max(scale, static_cast<double>(std::fabs(y)));
              }
              const double rel = same ? diff / scale : 1e30;
              double seen = max_rel_diff.load();
              while (rel > seen && !max_rel_diff.compare_exchange_weak(seen, rel)) {
              }
              if (!same || diff > a.check_tol * scale) ++mismatches;
            }
          }
        }
      });
    std::this_thread::sleep_for(std::chrono::duration<double>(a.warmup));
    measuring = true;
    auto t0 = Clock::now();
    while (std::chrono::duration<double>(Clock::now() - t0).count() < a.duration) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      if (a.max_requests > 0 && sent.load() >= a.max_requests) break;
    }
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    stop = true;
    for (auto& t : th) t.join();
    std::vector<double> all;
    int64_t nerr = 0;
    std::string ferr;
    for (int i = 0; i < c; ++i) {
      all.insert(all.end(), lat[i].begin(), lat[i].end());
      nerr += errors[i];
      if (ferr.empty()) ferr = first_error[i];
    }
    std::sort(all.begin(), all.end());
    double rps = static_cast<double>(all.size()) / secs;
    json r = {{"concurrency", c},       {"requests", all.size()},        {"errors", nerr},
              {"seconds", secs},        {"req_per_s", rps},              {"rows_per_s", rps * static_cast<double>(a.batch)},
              {"p50_ms", pct(all, 0.5)}, {"p90_ms", pct(all, 0.9)},       {"p99_ms", pct(all, 0.99)},
              {"max_ms", all.empty() ? 0.0 : all.back()}};
    if (!a.label.empty()) r["label"] = a.label;
    if (a.check) {
      r["checked"] = checked.exchange(0);
      r["mismatches"] = mismatches.exchange(0);
      r["max_rel_diff"] = max_rel_diff.exchange(0.0);
    }
    if (!ferr.empty()) r["first_error"] = ferr;
    results.push_back(r);
    if (!a.json_out) {
      char line[256];
      std::snprintf(line, sizeof line, "| %d | %zu | %lld | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f |", c, all.size(),
                    static_cast<long long>(nerr), rps, rps * static_cast<double>(a.batch), pct(all, 0.5),
                    pct(all, 0.9), pct(all, 0.99), all.empty() ? 0.0 : all.back());
      std::cout << line << "\n";
      if (!ferr.empty()) std::cout << "  first error: " << ferr.substr(0, 300) << "\n";
      if (a.check)
        std::cout << "  checked " << r["checked"].get<int64_t>() << " responses against each client's first: "
                  << r["mismatches"].get<int64_t>() << " mismatched (tolerance " << a.check_tol
                  << "; largest difference " << r["max_rel_diff"].get<double>() << " of max(1, |output|))\n";
      std::cout << std::flush;
    }
  }
  if (a.json_out) std::cout << results.dump(1) << "\n";
  for (const auto& r : results)
    if (r["errors"].get<int64_t>() > 0 || r["requests"].get<size_t>() == 0 ||
        (r.contains("mismatches") && r["mismatches"].get<int64_t>() > 0))
      return 1;
  return 0;
}

}  // namespace

void addLoadgenCommand(CLI::App& app, Action* action) {
  auto* cmd = app.add_subcommand("loadgen", "closed-loop load generator for a KServe v2 HTTP server (latency percentiles, throughput)");
  auto a = std::make_shared<LoadArgs>();
  cmd->add_option("--url", a->url, "server host:port (default 127.0.0.1:8000)");
  cmd->add_option("-m,--model", a->model, "model name")->required();
  cmd->add_option("-c,--concurrency", a->concurrency, "client counts to sweep (default 1,16,64)");
  cmd->add_option("-b,--batch", a->batch, "rows per request (default 1)")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--shapes", a->shapes, "shapes for inputs with variable non-batch dims: name:1x3x224x224");
  cmd->add_option("-d,--duration", a->duration, "measured seconds per concurrency (default 5)")
      ->check(CLI::Range(0.05, 3600.0));
  cmd->add_option("--warmup", a->warmup, "unmeasured seconds first (default 1)")->check(CLI::Range(0.0, 600.0));
  cmd->add_option("--max-requests", a->max_requests, "stop a level after this many measured requests")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--label", a->label, "label printed in the table / JSON");
  cmd->add_flag("--json", a->json_out, "print results as JSON");
  cmd->add_flag("--check", a->check,
                "distinct inputs per client; every response must match the client's first (FP32/FP16/BF16 outputs)");
  cmd->add_option("--check-tol", a->check_tol, "--check tolerance: max abs difference / max(1, max |output|) (default 1e-4)")
      ->check(CLI::Range(0.0, 1.0));
  cmd->callback([a, action] { *action = [a] { return runLoadgen(*a); }; });
}

}  // namespace ramjet::cli
