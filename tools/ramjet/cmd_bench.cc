// `ramjet bench model.plan|model.onnx`: trtexec-style latency/throughput of an engine, with GPU
// compute time (enqueue -> synchronize) separate from host<->device copies.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <sstream>

#include "commands.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

namespace ramjet::cli {

void registerBackends();
bool parseProfiles(const std::vector<std::string>& shapes, const std::vector<std::string>& min,
                   const std::vector<std::string>& opt, const std::vector<std::string>& max,
                   std::vector<ShapeProfile>* out, std::string* err);

namespace {

struct Stats {
  double min = 0, median = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};
Stats stats(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * (v.size() - 1) + 0.5))]; };
  s.min = v.front();
  s.max = v.back();
  s.median = pct(0.5);
  s.p90 = pct(0.9);
  s.p99 = pct(0.99);
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  return s;
}

bool endsWith(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

std::vector<int64_t> parseList(const std::string& s, bool* ok) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string item;
  *ok = true;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end || v <= 0) *ok = false;
    out.push_back(v);
  }
  if (out.empty()) *ok = false;
  return out;
}

std::string jsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) o += ' ';
    else o += c;
  }
  return o;
}

// Per-kernel table sorted by median time, then totals per op type.
void printProfile(const std::vector<ExecutionContext::KernelTiming>& prof, int64_t batch, int top, std::ostream* os) {
  if (!os) return;
  double total = 0;
  for (const auto& k : prof) total += k.median_ms;
  std::vector<const ExecutionContext::KernelTiming*> v;
  for (const auto& k : prof) v.push_back(&k);
  std::stable_sort(v.begin(), v.end(), [](auto* a, auto* b) { return a->median_ms > b->median_ms; });
  char buf[512];
  std::snprintf(buf, sizeof(buf), "profile batch %lld: %zu kernels, sum of medians %.4f ms (each kernel replayed alone from a CUDA graph)\n",
                static_cast<long long>(batch), prof.size(), total);
  *os << buf;
  *os << "  rank   median_ms   min_ms     %    cum%  op                   tactic                 node (fused from)\n";
  double cum = 0;
  size_t n = top > 0 ? std::min<size_t>(v.size(), static_cast<size_t>(top)) : v.size();
  for (size_t i = 0; i < n; ++i) {
    const auto& k = *v[i];
    cum += k.median_ms;
    std::string name = k.node;
    if (!k.fused_from.empty()) {
      name += " (";
      for (size_t j = 0; j < k.fused_from.size(); ++j) name += (j ? "," : "") + k.fused_from[j];
      name += ")";
    }
    if (name.size() > 90) name = name.substr(0, 87) + "...";
    std::snprintf(buf, sizeof(buf), "  %4zu %11.4f %8.4f %5.1f %6.1f  %-20s %-22s %s%s\n", i + 1, k.median_ms, k.min_ms,
                  total > 0 ? 100 * k.median_ms / total : 0, total > 0 ? 100 * cum / total : 0, k.op_type.c_str(),
                  k.tactic.c_str(), name.c_str(), k.placement == "device" ? "" : " [cpu-fallback]");
    *os << buf;
  }
  if (n < v.size()) *os << "  ... " << v.size() - n << " more kernels (--top 0 lists all)\n";
  std::map<std::string, std::pair<double, int>> by_op;
  for (const auto& k : prof) {
    by_op[k.op_type].first += k.median_ms;
    by_op[k.op_type].second++;
  }
  std::vector<std::pair<double, std::string>> ops;
  for (const auto& [op, t] : by_op) ops.push_back({t.first, op});
  std::sort(ops.rbegin(), ops.rend());
  *os << "  by op type:";
  for (const auto& [t, op] : ops) {
    std::snprintf(buf, sizeof(buf), " %s %.4f ms (%.1f%%, %dx);", op.c_str(), t, total > 0 ? 100 * t / total : 0,
                  by_op[op].second);
    *os << buf;
  }
  *os << "\n";
}

void appendProfileJson(const std::vector<ExecutionContext::KernelTiming>& prof, int64_t batch, std::ostringstream* js) {
  for (const auto& k : prof) {
    if (!js->str().empty()) *js << ",";
    *js << "{\"batch\":" << batch << ",\"position\":" << k.position << ",\"node\":\"" << jsonEscape(k.node)
        << "\",\"op\":\"" << jsonEscape(k.op_type) << "\",\"tactic\":\"" << jsonEscape(k.tactic)
        << "\",\"placement\":\"" << k.placement << "\",\"median_ms\":" << k.median_ms << ",\"min_ms\":" << k.min_ms
        << ",\"mean_ms\":" << k.mean_ms << ",\"fused_from\":[";
    for (size_t j = 0; j < k.fused_from.size(); ++j) *js << (j ? "," : "") << "\"" << jsonEscape(k.fused_from[j]) << "\"";
    *js << "]}";
  }
}

// Chrome trace "complete" events laid end to end in execution order (one stream runs the
// kernels in order), one track per batch size; durations are the medians.
void appendTrace(const std::vector<ExecutionContext::KernelTiming>& prof, int64_t batch, int track,
                 std::ostringstream* tr) {
  if (!tr->str().empty()) *tr << ",";
  *tr << "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":1,\"tid\":" << track
      << ",\"args\":{\"name\":\"batch " << batch << "\"}}";
  double t_us = 0;
  for (const auto& k : prof) {
    double dur = k.median_ms * 1000.0;
    *tr << ",{\"name\":\"" << jsonEscape(k.op_type + " " + k.node) << "\",\"cat\":\"" << jsonEscape(k.op_type)
        << "\",\"ph\":\"X\",\"pid\":1,\"tid\":" << track << ",\"ts\":" << t_us << ",\"dur\":" << dur
        << ",\"args\":{\"tactic\":\"" << jsonEscape(k.tactic) << "\",\"placement\":\"" << k.placement
        << "\",\"min_ms\":" << k.min_ms << ",\"fused_from\":\"";
    for (size_t j = 0; j < k.fused_from.size(); ++j) *tr << (j ? "," : "") << jsonEscape(k.fused_from[j]);
    *tr << "\"}}";
    t_us += dur;
  }
}

}  // namespace

void addBenchCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::string model, device = "cuda", batches, json_path;
    std::vector<std::string> shapes;
    int iterations = 0, warmup = 10;
    double duration = 3.0;
    bool fp16 = false, json = false;
    bool profile = false;
    int profile_iterations = 20, top = 25;
    std::string trace;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("bench", "Measure latency and throughput of a plan (or an ONNX model built on the fly)");
  cmd->add_option("model", o->model, "plan file, or ONNX model (built in memory)")->required();
  cmd->add_option("--device", o->device, "for ONNX input: cuda (default) or cpu")->check(CLI::IsMember({"cuda", "cpu"}));
  cmd->add_flag("--fp16", o->fp16, "for ONNX input: build in FP16");
  cmd->add_option("--batch", o->batches, "batch sizes to sweep (first dim of every input), e.g. 1,8,32");
  cmd->add_option("--shapes", o->shapes, "input shapes name:1x3x224x224 (default: the profile's opt)");
  cmd->add_option("--iterations", o->iterations, "timed iterations per batch (default: run for --duration)");
  cmd->add_option("--duration", o->duration, "seconds per batch when --iterations is not given");
  cmd->add_option("--warmup", o->warmup, "untimed iterations first");
  cmd->add_flag("--json", o->json, "print the results as JSON");
  cmd->add_flag("--profile", o->profile, "per-kernel GPU times (each kernel replayed alone): table by time and op-type totals");
  cmd->add_option("--profile-iterations", o->profile_iterations, "profiled runs per batch (median per kernel)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--top", o->top, "kernels listed in the profile table (0: all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--trace", o->trace, "write the profile as a Chrome trace JSON (chrome://tracing, Perfetto); implies --profile");
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const std::string& m) {
        std::cerr << "error: " << m << "\n";
        return 1;
      };
      registerBackends();
      std::vector<int64_t> batches;
      if (!o->batches.empty()) {
        bool ok;
        batches = parseList(o->batches, &ok);
        if (!ok) return fail("--batch '" + o->batches + "' must be a list of positive integers like 1,8,32");
      }
      std::map<std::string, std::vector<int64_t>> shapes;
      std::string err;
      if (!parseShapeSpecs(o->shapes, &shapes, &err)) return fail(err);
      std::unique_ptr<Engine> engine;
      double load_ms = 0;
      auto tl = std::chrono::steady_clock::now();
      if (endsWith(o->model, ".onnx")) {
        auto g = importOnnx(o->model);
        if (!g.ok()) return fail(g.status().message());
        BuildOptions opt;
        opt.device = o->device == "cuda" ? DeviceKind::kCuda : DeviceKind::kCpu;
        opt.precision = o->fp16 ? Precision::kFP16 : Precision::kFP32;
        int64_t bmax = batches.empty() ? 1 : *std::max_element(batches.begin(), batches.end());
        int64_t bmin = batches.empty() ? 1 : *std::min_element(batches.begin(), batches.end());
        for (const Value* v : g->inputs) {
          if (shapes.count(v->name)) {
            auto d = shapes[v->name];
            ShapeProfile p{v->name, d, d, d};
            if (!batches.empty() && !d.empty()) p.min[0] = bmin, p.opt[0] = bmax, p.max[0] = bmax;
            opt.profiles.push_back(p);
            continue;
          }
          bool symbolic = false;
          std::vector<int64_t> d;
          for (const Dim& x : v->type.shape.dims) {
            symbolic |= !x.known();
            d.push_back(x.known() ? x.value : 1);
          }
          if (!symbolic) continue;
          ShapeProfile p{v->name, d, d, d};
          if (!batches.empty() && !d.empty()) p.min[0] = bmin, p.opt[0] = bmax, p.max[0] = bmax;
          opt.profiles.push_back(p);
        }
        auto plan = build(*g, opt);
        if (!plan.ok()) return fail(plan.status().message());
        tl = std::chrono::steady_clock::now();
        auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
        if (!e.ok()) return fail(e.status().message());
        engine = std::move(*e);
      } else {
        auto e = Engine::load(o->model);
        if (!e.ok()) return fail(e.status().message());
        engine = std::move(*e);
      }
      load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - tl).count();
      const PlanInfo& info = engine->info();
      auto ctxr = engine->createContext();
      if (!ctxr.ok()) return fail(ctxr.status().message());
      ExecutionContext& ctx = **ctxr;
      auto sr = engine->createStream();
      if (!sr.ok()) return fail(sr.status().message());
      void* stream = *sr;
      if (batches.empty()) batches.push_back(-1);  // the profile's / model's own shapes

      std::ostringstream json;
      json << "{\"model\":\"" << o->model << "\",\"device\":\"" << deviceKindName(info.device) << "\",\"gpu\":\""
           << info.gpu_name << "\",\"precision\":\"" << precisionName(info.precision) << "\",\"load_ms\":" << load_ms
           << ",\"results\":[";
      if (!o->json)
        std::cout << "engine: " << deviceKindName(info.device) << (info.gpu_name.empty() ? "" : " " + info.gpu_name)
                  << ", " << precisionName(info.precision) << ", load " << load_ms << " ms\n";
      std::mt19937 rng(1);
      std::vector<void*> dev_bufs;
      auto freeBufs = [&] {
        engine->synchronize(stream).ok();
        for (void* p : dev_bufs) engine->release(p);
        dev_bufs.clear();
      };
      int rc = 0;
      std::ostringstream profile_json, trace_events;
      for (size_t bi = 0; bi < batches.size() && rc == 0; ++bi) {
        int64_t b = batches[bi];
        std::vector<std::vector<uint8_t>> host_in, host_out;
        std::vector<void*> din, dout;
        auto step = [&]() -> Status {
          for (const auto& in : engine->inputs()) {
            std::vector<int64_t> d;
            if (shapes.count(in.name)) {
              d = shapes[in.name];
            } else {
              bool found = false;
              for (const auto& p : info.profiles)
                if (p.input == in.name) d = p.opt, found = true;
              if (!found)
                for (const Dim& x : in.shape.dims) d.push_back(x.known() ? x.value : 1);
            }
            if (b > 0 && !d.empty()) d[0] = b;
            RJ_RETURN_IF_ERROR(ctx.setInputShape(in.name, d));
            size_t nb = static_cast<size_t>(numElements(d)) * dataTypeSize(in.dtype);
            std::vector<uint8_t> h(nb);
            if (in.dtype == DataType::kFloat32) {
              std::uniform_real_distribution<float> u(-1.f, 1.f);
              for (size_t i = 0; i + 4 <= nb; i += 4) {
                float f = u(rng);
                std::memcpy(h.data() + i, &f, 4);
              }
            }
            RJ_ASSIGN_OR_RETURN(void* p, engine->allocate(std::max<size_t>(nb, 1)));
            dev_bufs.push_back(p);
            din.push_back(p);
            host_in.push_back(std::move(h));
            RJ_RETURN_IF_ERROR(ctx.setTensorAddress(in.name, p));
          }
          for (const auto& out : engine->outputs()) {
            RJ_ASSIGN_OR_RETURN(auto d, ctx.tensorShape(out.name));
            size_t nb = static_cast<size_t>(numElements(d)) * dataTypeSize(out.dtype);
            RJ_ASSIGN_OR_RETURN(void* p, engine->allocate(std::max<size_t>(nb, 1)));
            dev_bufs.push_back(p);
            dout.push_back(p);
            host_out.emplace_back(nb);
            RJ_RETURN_IF_ERROR(ctx.setTensorAddress(out.name, p));
          }
          return Status::Ok();
        };
        Status st = step();
        if (!st.ok()) {
          rc = fail(st.message());
          break;
        }
        using clock = std::chrono::steady_clock;
        auto ms = [](clock::time_point a, clock::time_point c) {
          return std::chrono::duration<double, std::milli>(c - a).count();
        };
        std::vector<double> compute, h2d, d2h, e2e;
        auto once = [&](bool record) -> Status {
          auto t0 = clock::now();
          for (size_t i = 0; i < din.size(); ++i)
            if (!host_in[i].empty()) RJ_RETURN_IF_ERROR(engine->copyToDevice(din[i], host_in[i].data(), host_in[i].size(), stream));
          RJ_RETURN_IF_ERROR(engine->synchronize(stream));
          auto t1 = clock::now();
          RJ_RETURN_IF_ERROR(ctx.enqueue(stream));
          RJ_RETURN_IF_ERROR(engine->synchronize(stream));
          auto t2 = clock::now();
          for (size_t i = 0; i < dout.size(); ++i)
            if (!host_out[i].empty()) RJ_RETURN_IF_ERROR(engine->copyToHost(host_out[i].data(), dout[i], host_out[i].size(), stream));
          RJ_RETURN_IF_ERROR(engine->synchronize(stream));
          auto t3 = clock::now();
          if (record) {
            h2d.push_back(ms(t0, t1));
            compute.push_back(ms(t1, t2));
            d2h.push_back(ms(t2, t3));
            e2e.push_back(ms(t0, t3));
          }
          return Status::Ok();
        };
        for (int i = 0; i < o->warmup && st.ok(); ++i) st = once(false);
        auto start = clock::now();
        for (int i = 0; st.ok(); ++i) {
          if (o->iterations > 0 ? i >= o->iterations : ms(start, clock::now()) >= o->duration * 1000) break;
          st = once(true);
        }
        std::vector<ExecutionContext::KernelTiming> prof;
        if (st.ok() && (o->profile || !o->trace.empty())) {
          auto pr = ctx.profile(stream, o->profile_iterations);
          if (pr.ok()) prof = std::move(*pr);
          else st = pr.status().withContext("profiling");
        }
        freeBufs();
        if (!st.ok()) {
          rc = fail(st.message());
          break;
        }
        Stats c = stats(compute), hs = stats(h2d), ds = stats(d2h), es = stats(e2e);
        int64_t bs = b > 0 ? b : 1;
        double thr = c.mean > 0 ? bs * 1000.0 / c.mean : 0;
        if (o->json) {
          json << (bi ? "," : "") << "{\"batch\":" << bs << ",\"iterations\":" << compute.size()
               << ",\"compute_ms\":{\"min\":" << c.min << ",\"median\":" << c.median << ",\"p90\":" << c.p90
               << ",\"p99\":" << c.p99 << ",\"max\":" << c.max << ",\"mean\":" << c.mean << "},\"h2d_ms\":" << hs.mean
               << ",\"d2h_ms\":" << ds.mean << ",\"end_to_end_ms\":" << es.mean << ",\"throughput_per_s\":" << thr
               << "}";
        } else {
          char buf[512];
          std::snprintf(buf, sizeof(buf),
                        "batch %lld: %zu iterations; compute ms min %.4f median %.4f p90 %.4f p99 %.4f max %.4f "
                        "(mean %.4f); H2D %.4f ms, D2H %.4f ms, end-to-end %.4f ms; throughput %.1f/s\n",
                        static_cast<long long>(bs), compute.size(), c.min, c.median, c.p90, c.p99, c.max, c.mean,
                        hs.mean, ds.mean, es.mean, thr);
          std::cout << buf;
        }
        if (!prof.empty()) {
          int64_t bsz = b > 0 ? b : 1;
          printProfile(prof, bsz, o->top, o->json ? nullptr : &std::cout);
          appendProfileJson(prof, bsz, &profile_json);
          appendTrace(prof, bsz, static_cast<int>(bi), &trace_events);
        }
      }
      json << "]";
      if (!profile_json.str().empty()) json << ",\"profile\":[" << profile_json.str() << "]";
      json << "}";
      if (rc == 0 && !o->trace.empty()) {
        std::ofstream tf(o->trace);
        tf << "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[" << trace_events.str() << "]}\n";
        if (!tf) rc = fail("cannot write the trace to '" + o->trace + "'");
        else if (!o->json) std::cout << "trace: " << o->trace << " (open in https://ui.perfetto.dev or chrome://tracing)\n";
      }
      if (o->json && rc == 0) std::cout << json.str() << "\n";
      engine->destroyStream(stream);
      return rc;
    };
  });
}

}  // namespace ramjet::cli
