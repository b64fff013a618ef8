// The ONNX node conformance suite through CUDA engines: each test's model is built with
// `--device cuda` (no CPU fallback unless --fallback), run on the GPU, and compared with the
// expected outputs (the same tolerances as the CPU runner). The report says, per test, whether
// it passes on the GPU, which op kept it off the GPU, or what went wrong: the op-coverage
// check of the CUDA backend.
//
//   ramjet_cuda_conformance --suite DIR [--only LIST] [--filter SUBSTR] [--fallback] [--fp16]
//                           [--no-freeze] [--report FILE.md] [--timeout S] [--budget S] [-v]
//
// Small integer/float inputs of rank <= 1 (K, axes, pads, shapes, scales) are frozen into
// constants, as exporters do, unless --no-freeze: a graph input that a kernel must read on the
// host (TopK's K) is otherwise refused by design. The largest input always stays a graph input
// so the computation is not constant-folded away.
//
// Tests run in a forked worker that runs many tests (one CUDA initialisation, not one per
// test); a crash is recorded against the test that was running and a new worker continues
// with the next one. The parent never touches CUDA. Exit code: 77 without a CUDA device, 1 if
// a test crashed or timed out, else 0.
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cuda/cuda_ops.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

struct Options {
  std::string suite, filter, only, report;
  bool fallback = false, fp16 = false, freeze = true, verbose = false;
  int timeout_s = 60;
  double budget_s = 0;  // stop starting tests after this many seconds (0: no limit)
};

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}
bool exists(const std::string& p) { return access(p.c_str(), F_OK) == 0; }

Result<Tensor> readTensor(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "cannot open '", path, "'");
  std::string buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return parseOnnxTensor(buf.data(), buf.size());
}

// The Debian test data stores bf16 tensors as their uint16 bit patterns.
Tensor asDeclared(Tensor t, DataType want) {
  if (want != DataType::kBFloat16 || t.dtype() != DataType::kUInt16) return t;
  Tensor out(DataType::kBFloat16, t.dims());
  if (t.nbytes()) std::memcpy(out.raw(), t.raw(), t.nbytes());
  return out;
}

std::string oneLine(std::string s, size_t max = 300) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\t', ' ');
  return s.substr(0, max);
}

// "N node(s) cannot run on cuda (...):\n  Op 'name': reason" -> "Op: reason" of the first one.
std::string firstUnsupported(const std::string& msg, std::string* op) {
  size_t nl = msg.find("\n  ");
  std::string line = nl == std::string::npos ? msg : msg.substr(nl + 3);
  size_t end = line.find('\n');
  if (end != std::string::npos) line = line.substr(0, end);
  size_t sp = line.find(' ');
  *op = sp == std::string::npos ? "?" : line.substr(0, sp);
  if (msg.find("data-dependent shapes") != std::string::npos) *op = "(data-dependent shape)";
  return line;
}

struct Outcome {
  std::string kind;  // pass, fail, unsupported, skip, error
  std::string detail;
  std::string op;    // for unsupported: the op that kept the model off the GPU
};

Outcome runTest(const std::string& dir, const Options& o) {
  auto g = importOnnx(dir + "/model.onnx");
  if (!g.ok()) return {"skip", "import: " + oneLine(g.status().message()), ""};
  std::vector<std::string> sets;
  for (const auto& s : listDir(dir))
    if (s.rfind("test_data_set_", 0) == 0) sets.push_back(s);
  if (sets.empty()) return {"error", "no test_data_set_*", ""};
  for (const Value* v : g->inputs)
    if (!v->type.isTensor()) return {"skip", "non-tensor input '" + v->name + "'", ""};
  for (const Value* v : g->outputs)
    if (!v->type.isTensor()) return {"skip", "non-tensor output '" + v->name + "'", ""};
  // Inputs of the first data set decide freezing and the profile.
  std::vector<Tensor> first;
  for (size_t i = 0; i < g->inputs.size(); ++i) {
    auto t = readTensor(dir + "/" + sets[0] + "/input_" + std::to_string(i) + ".pb");
    if (!t.ok()) return {"skip", "input " + std::to_string(i) + ": " + oneLine(t.status().message()), ""};
    first.push_back(asDeclared(std::move(*t), g->inputs[i]->type.dtype));
  }
  std::set<size_t> frozen;
  if (o.freeze && sets.size() == 1 && g->inputs.size() > 1) {
    size_t largest = 0;
    for (size_t i = 0; i < first.size(); ++i)
      if (first[i].numel() > first[largest].numel()) largest = i;
    for (size_t i = 0; i < first.size(); ++i)
      if (i != largest && first[i].rank() <= 1 && first[i].numel() <= 8) frozen.insert(i);
  }
  std::vector<Value*> keep;
  for (size_t i = 0; i < g->inputs.size(); ++i) {
    Value* v = g->inputs[i];
    if (!frozen.count(i)) {
      keep.push_back(v);
      continue;
    }
    v->is_graph_input = false;
    v->constant = std::make_shared<Tensor>(first[i]);
    v->type = first[i].type();
  }
  g->inputs = keep;
  if (!frozen.empty()) {
    Status st = g->inferShapes();
    if (!st.ok()) return {"error", "shape inference after freezing inputs: " + oneLine(st.message()), ""};
  }
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  opt.precision = o.fp16 ? Precision::kFP16 : Precision::kFP32;
  opt.allow_cpu_fallback = o.fallback;
  opt.timing_iterations = 2;
  for (size_t i = 0, k = 0; i < first.size(); ++i) {
    if (frozen.count(i)) continue;
    const Value* v = keep[k++];
    if (!v->type.shape.fullyKnown())
      opt.profiles.push_back({v->name, first[i].dims(), first[i].dims(), first[i].dims()});
  }
  auto plan = build(*g, opt);
  if (!plan.ok()) {
    if (plan.status().code() == StatusCode::kUnsupported) {
      std::string op;
      std::string why = firstUnsupported(plan.status().message(), &op);
      return {"unsupported", oneLine(why), op};
    }
    return {"error", "build: " + oneLine(plan.status().message()), ""};
  }
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  if (!engine.ok()) return {"error", "load: " + oneLine(engine.status().message()), ""};
  auto ctx = (*engine)->createContext();
  if (!ctx.ok()) return {"error", "context: " + oneLine(ctx.status().message()), ""};
  double worst = 0;
  for (size_t si = 0; si < sets.size(); ++si) {
    std::map<std::string, Tensor> feeds;
    for (size_t i = 0, k = 0; i < first.size(); ++i) {
      if (frozen.count(i)) continue;
      Tensor t = first[i];
      if (si > 0) {
        auto r = readTensor(dir + "/" + sets[si] + "/input_" + std::to_string(i) + ".pb");
        if (!r.ok()) return {"skip", oneLine(r.status().message()), ""};
        t = asDeclared(std::move(*r), keep[k]->type.dtype);
      }
      feeds[keep[k++]->name] = std::move(t);
    }
    auto outs = (*ctx)->infer(feeds);
    if (!outs.ok()) return {"error", "run: " + oneLine(outs.status().message()), ""};
    for (size_t i = 0; i < g->outputs.size(); ++i) {
      std::string p = dir + "/" + sets[si] + "/output_" + std::to_string(i) + ".pb";
      if (!exists(p)) continue;
      auto ref = readTensor(p);
      if (!ref.ok()) return {"skip", "expected output: " + oneLine(ref.status().message()), ""};
      Tensor want = asDeclared(std::move(*ref), (*outs)[i].dtype());
      double rtol = 1e-3, atol = 1e-5;
      if (want.dtype() == DataType::kFloat16 || want.dtype() == DataType::kBFloat16 || o.fp16) rtol = 1e-2, atol = 1e-2;
      CompareResult c = compareTensors((*outs)[i], want, atol, rtol);
      if (std::isfinite(c.max_abs)) worst = std::max(worst, c.max_abs);
      if (!c.dtype_match || !c.shape_match || c.mismatches > 0)
        return {"fail", "output " + std::to_string(i) + ": got " + dataTypeName((*outs)[i].dtype()) +
                            dimsToString((*outs)[i].dims()) + " want " + dataTypeName(want.dtype()) +
                            dimsToString(want.dims()) + "; " + oneLine(c.toString()), ""};
    }
  }
  std::ostringstream os;
  os << "max_abs=" << worst;
  if (!frozen.empty()) os << ", " << frozen.size() << " input(s) frozen";
  if (plan->report().fallback_nodes) os << ", " << plan->report().fallback_nodes << " CPU-fallback node(s)";
  return {"pass", os.str(), ""};
}

// Worker: runs tests[from..] writing "S idx" before and "R idx kind op detail" after each.
[[noreturn]] void worker(const std::vector<std::string>& dirs, size_t from, const Options& o, int fd,
                         std::chrono::steady_clock::time_point start) {
  FILE* out = fdopen(fd, "w");
  if (!cuda::deviceAvailable()) {
    std::fprintf(out, "NODEVICE\n");
    std::fflush(out);
    _exit(0);
  }
  Status reg = registerCudaBackend();
  if (!reg.ok()) {
    std::fprintf(out, "NODEVICE\n");
    std::fflush(out);
    _exit(0);
  }
  for (size_t i = from; i < dirs.size(); ++i) {
    if (o.budget_s > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > o.budget_s)
      break;
    std::fprintf(out, "S\t%zu\n", i);
    std::fflush(out);
    alarm(static_cast<unsigned>(o.timeout_s));
    Outcome r = runTest(dirs[i], o);
    alarm(0);
    std::fprintf(out, "R\t%zu\t%s\t%s\t%s\n", i, r.kind.c_str(), r.op.empty() ? "-" : r.op.c_str(),
                 oneLine(r.detail, 400).c_str());
    std::fflush(out);
  }
  _exit(0);
}

std::set<std::string> readList(const std::string& path) {
  std::set<std::string> s;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line))
    if (!line.empty() && line[0] != '#') s.insert(line);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--suite") o.suite = next();
    else if (a == "--filter") o.filter = next();
    else if (a == "--only") o.only = next();
    else if (a == "--report") o.report = next();
    else if (a == "--timeout") o.timeout_s = std::atoi(next().c_str());
    else if (a == "--budget") o.budget_s = std::atof(next().c_str());
    else if (a == "--fallback") o.fallback = true;
    else if (a == "--fp16") o.fp16 = true;
    else if (a == "--no-freeze") o.freeze = false;
    else if (a == "-v" || a == "--verbose") o.verbose = true;
    else {
      std::cerr << "unknown flag '" << a << "'\n";
      return 2;
    }
  }
  if (o.suite.empty()) {
    std::cerr << "usage: ramjet_cuda_conformance --suite DIR [--only LIST] [--filter S] [--fallback] [--fp16] "
                 "[--no-freeze] [--report FILE.md] [--timeout S] [-v]\n";
    return 2;
  }
  if (!exists(o.suite)) {
    std::cerr << "suite folder '" << o.suite << "' does not exist\n";
    return 2;
  }
  if (o.timeout_s < 1) {
    std::cerr << "--timeout must be a positive number of seconds\n";
    return 2;
  }
  std::set<std::string> only;
  if (!o.only.empty()) {
    if (!exists(o.only)) {
      std::cerr << "--only list '" << o.only << "' does not exist\n";
      return 2;
    }
    only = readList(o.only);
  }
  std::vector<std::string> names, dirs;
  for (const auto& n : listDir(o.suite)) {
    if (!exists(o.suite + "/" + n + "/model.onnx")) continue;
    if (!o.filter.empty() && n.find(o.filter) == std::string::npos) continue;
    if (!only.empty() && !only.count(n)) continue;
    names.push_back(n);
    dirs.push_back(o.suite + "/" + n);
  }
  std::vector<Outcome> results(names.size(), Outcome{"not run", "", ""});
  auto t0 = std::chrono::steady_clock::now();
  size_t next_test = 0;
  while (next_test < names.size()) {
    int fds[2];
    if (pipe(fds) != 0) {
      std::perror("pipe");
      return 2;
    }
    std::cout.flush();
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      worker(dirs, next_test, o, fds[1], t0);
    }
    close(fds[1]);
    FILE* in = fdopen(fds[0], "r");
    char* line = nullptr;
    size_t cap = 0;
    long running = -1;
    bool nodevice = false;
    while (getline(&line, &cap, in) > 0) {
      std::string l(line);
      if (!l.empty() && l.back() == '\n') l.pop_back();
      if (l == "NODEVICE") {
        nodevice = true;
        break;
      }
      std::vector<std::string> f;
      std::stringstream ss(l);
      std::string x;
      while (std::getline(ss, x, '\t')) f.push_back(x);
      if (f.size() >= 2 && f[0] == "S") running = std::stol(f[1]);
      if (f.size() >= 4 && f[0] == "R") {
        size_t idx = std::stoul(f[1]);
        results[idx] = {f[2], f.size() > 4 ? f[4] : "", f[3] == "-" ? "" : f[3]};
        if (o.verbose) std::cout << f[2] << "  " << names[idx] << "  " << results[idx].detail << "\n";
        running = -1;
        next_test = idx + 1;
      }
    }
    free(line);
    fclose(in);
    int status = 0;
    waitpid(pid, &status, 0);
    if (nodevice) {
      std::cout << "no CUDA device: the CUDA conformance run is skipped\n";
      return 77;
    }
    if (running >= 0) {
      bool timeout = WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM;
      results[running] = {timeout ? "timeout" : "crash",
                          timeout ? "exceeded " + std::to_string(o.timeout_s) + " s"
                                  : WIFSIGNALED(status) ? std::string("signal ") + strsignal(WTERMSIG(status))
                                                        : "worker exited " + std::to_string(WEXITSTATUS(status)),
                          ""};
      if (o.verbose) std::cout << results[running].kind << "  " << names[running] << "\n";
      next_test = static_cast<size_t>(running) + 1;
    } else if (next_test < names.size() && results[next_test].kind == "not run") {
      if (o.budget_s <= 0) {
        std::cerr << "the worker stopped before test " << names[next_test] << "\n";
        return 2;
      }
      break;  // the time budget ran out
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::map<std::string, int> counts;
  std::map<std::string, int> missing_ops;
  for (const auto& r : results) {
    counts[r.kind]++;
    if (r.kind == "unsupported") missing_ops[r.op]++;
  }
  std::cout << "cuda conformance " << o.suite << (o.fp16 ? " (fp16)" : " (fp32)")
            << (o.fallback ? " with CPU fallback" : " without CPU fallback") << ": " << names.size() << " tests in "
            << secs << " s\n";
  for (const char* k : {"pass", "fail", "unsupported", "skip", "error", "crash", "timeout", "not run"})
    std::cout << "  " << k << ": " << counts[k] << "\n";
  std::vector<std::pair<int, std::string>> ops;
  for (const auto& [op, n] : missing_ops) ops.push_back({n, op});
  std::sort(ops.rbegin(), ops.rend());
  std::cout << "  ops keeping tests off the GPU (tests):";
  for (size_t i = 0; i < ops.size() && i < 40; ++i) std::cout << " " << ops[i].second << "(" << ops[i].first << ")";
  std::cout << "\n";
  for (size_t i = 0; i < names.size(); ++i)
    if (results[i].kind == "fail" || results[i].kind == "error" || results[i].kind == "crash" ||
        results[i].kind == "timeout")
      std::cout << results[i].kind << "  " << names[i] << "  " << results[i].detail << "\n";
  if (!o.report.empty()) {
    std::ofstream f(o.report);
    f << "# CUDA conformance: " << o.suite << "\n\n" << counts["pass"] << " / " << names.size() << " pass\n\n";
    f << "| test | outcome | detail |\n|---|---|---|\n";
    for (size_t i = 0; i < names.size(); ++i) {
      std::string d = results[i].detail;
      std::replace(d.begin(), d.end(), '|', '/');
      f << "| " << names[i] << " | " << results[i].kind << " | " << d << " |\n";
    }
  }
  std::cout << "cuda conformance total: " << counts["pass"] << " of " << names.size() << " pass on the GPU, "
            << counts["crash"] + counts["timeout"] << " crashes or timeouts\n";
  return counts["crash"] + counts["timeout"] ? 1 : 0;
}
