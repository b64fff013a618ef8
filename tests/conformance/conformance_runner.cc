// Runs an ONNX backend-test folder (model.onnx + test_data_set_*/{input,output}_*.pb per test)
// through import -> reference interpreter and compares with the expected outputs.
// Each test runs in a forked child so a crash is recorded as a crash, not the end of the run.
//
//   ramjet_conformance --suite DIR [--filter SUBSTR] [--expect-pass FILE] [--write-pass FILE]
//                      [--report FILE.md] [--verbose]
#include <dirent.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cpu/reference/interpreter.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool exists(const std::string& p) {
  struct stat st {};
  return stat(p.c_str(), &st) == 0;
}

enum class Outcome { kPass, kFail, kUnsupported, kError, kCrash, kTimeout };
const char* outcomeName(Outcome o) {
  switch (o) {
    case Outcome::kPass: return "pass";
    case Outcome::kFail: return "fail";
    case Outcome::kUnsupported: return "unsupported";
    case Outcome::kError: return "error";
    case Outcome::kCrash: return "crash";
    case Outcome::kTimeout: return "timeout";
  }
  return "?";
}

// The Debian test data predates onnx's bfloat16 TensorProto support and stores bf16 tensors as
// their uint16 bit patterns; reinterpret them (same bits) when the model says bf16.
Tensor asBFloat16IfBits(Tensor t, DataType want) {
  if (want != DataType::kBFloat16 || t.dtype() != DataType::kUInt16) return t;
  Tensor out(DataType::kBFloat16, t.dims());
  if (t.nbytes()) std::memcpy(out.raw(), t.raw(), t.nbytes());
  return out;
}

struct TestResult {
  Outcome outcome;
  std::string detail;
};

// Runs one test in-process. rtol/atol follow onnx's backend runner defaults, loosened slightly
// for float32 accumulation-order differences.
TestResult runTest(const std::string& dir) {
  auto g = importOnnx(dir + "/model.onnx");
  if (!g.ok()) {
    Outcome o = g.status().code() == StatusCode::kUnsupported ? Outcome::kUnsupported : Outcome::kError;
    std::string m = g.status().message();
    auto nl = m.find("\n  unsupported: ");
    if (o == Outcome::kUnsupported && nl != std::string::npos) m = m.substr(nl + 3);
    std::replace(m.begin(), m.end(), '\n', ' ');
    return {o, "import: " + m.substr(0, 300)};
  }
  int sets = 0;
  double worst_abs = 0;
  for (const auto& ds : listDir(dir)) {
    if (ds.rfind("test_data_set_", 0) != 0) continue;
    ++sets;
    std::map<std::string, Tensor> inputs;
    for (size_t i = 0; i < g->inputs.size(); ++i) {
      std::string p = dir + "/" + ds + "/input_" + std::to_string(i) + ".pb";
      if (!exists(p)) {
        // Optional trailing inputs may be absent from the data set.
        return {Outcome::kError, "missing " + p};
      }
      auto t = readOnnxTensorFile(p);
      if (!t.ok()) return {Outcome::kUnsupported, "input: " + t.status().message()};
      inputs[g->inputs[i]->name] = asBFloat16IfBits(std::move(*t), g->inputs[i]->type.dtype);
    }
    auto outs = reference::run(*g, inputs);
    if (!outs.ok()) {
      Outcome o = outs.status().code() == StatusCode::kUnsupported ? Outcome::kUnsupported : Outcome::kError;
      std::string m = outs.status().message();
      std::replace(m.begin(), m.end(), '\n', ' ');
      return {o, "run: " + m.substr(0, 300)};
    }
    for (size_t i = 0; i < g->outputs.size(); ++i) {
      std::string p = dir + "/" + ds + "/output_" + std::to_string(i) + ".pb";
      if (!exists(p)) continue;
      auto ref = readOnnxTensorFile(p);
      if (!ref.ok()) return {Outcome::kUnsupported, "expected output: " + ref.status().message()};
      const Tensor& got = (*outs)[i];
      *ref = asBFloat16IfBits(std::move(*ref), got.dtype());
      double rtol = 1e-3, atol = 1e-5;
      if (ref->dtype() == DataType::kFloat16 || ref->dtype() == DataType::kBFloat16) { rtol = 1e-2; atol = 1e-3; }
      Tensor cmp_got = got;
      CompareResult c = compareTensors(cmp_got, *ref, atol, rtol);
      worst_abs = std::max(worst_abs, c.max_abs);
      if (!c.dtype_match || !c.shape_match || c.mismatches > 0) {
        std::ostringstream os;
        os << "output " << i << " ('" << g->outputs[i]->name << "'): got " << dataTypeName(got.dtype())
           << dimsToString(got.dims()) << " expected " << dataTypeName(ref->dtype()) << dimsToString(ref->dims())
           << "; " << c.toString();
        return {Outcome::kFail, os.str()};
      }
    }
  }
  if (sets == 0) return {Outcome::kError, "no test_data_set_* folder"};
  std::ostringstream os;
  os << "max_abs=" << worst_abs;
  return {Outcome::kPass, os.str()};
}

// Forks, runs the test in the child, ships the result back through a shared page.
TestResult runIsolated(const std::string& dir, int timeout_s) {
  const size_t kBuf = 4096;
  void* mem = mmap(nullptr, kBuf, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  std::memset(mem, 0, kBuf);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(static_cast<unsigned>(timeout_s));
    TestResult r = runTest(dir);
    char* p = static_cast<char*>(mem);
    p[0] = static_cast<char>(r.outcome);
    std::strncpy(p + 1, r.detail.c_str(), kBuf - 2);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  TestResult r;
  const char* p = static_cast<const char*>(mem);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    r.outcome = static_cast<Outcome>(p[0]);
    r.detail = std::string(p + 1);
  } else if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
    r = {Outcome::kTimeout, "exceeded " + std::to_string(timeout_s) + " s"};
  } else {
    r = {Outcome::kCrash, WIFSIGNALED(status) ? std::string("signal ") + strsignal(WTERMSIG(status))
                                              : "exit code " + std::to_string(WEXITSTATUS(status))};
  }
  munmap(mem, kBuf);
  return r;
}

std::set<std::string> readList(const std::string& path) {
  std::set<std::string> s;
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    s.insert(line);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string suite, filter, expect, write_pass, report;
  bool verbose = false, isolate = true;
  int timeout_s = 120;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) { std::cerr << a << " needs a value\n"; std::exit(2); }
      return argv[++i];
    };
    if (a == "--suite") suite = next();
    else if (a == "--filter") filter = next();
    else if (a == "--expect-pass") expect = next();
    else if (a == "--write-pass") write_pass = next();
    else if (a == "--report") report = next();
    else if (a == "--timeout") timeout_s = std::stoi(next());
    else if (a == "--no-isolate") isolate = false;
    else if (a == "--verbose" || a == "-v") verbose = true;
    else { std::cerr << "unknown flag " << a << "\n"; return 2; }
  }
  if (suite.empty()) { std::cerr << "usage: ramjet_conformance --suite DIR [...]\n"; return 2; }
  if (!exists(suite)) { std::cerr << "suite folder '" << suite << "' does not exist\n"; return 2; }
  std::map<Outcome, int> counts;
  std::vector<std::string> passing;
  std::vector<std::pair<std::string, TestResult>> results;
  auto t0 = std::chrono::steady_clock::now();
  for (const auto& name : listDir(suite)) {
    std::string dir = suite + "/" + name;
    if (!exists(dir + "/model.onnx")) continue;
    if (!filter.empty() && name.find(filter) == std::string::npos) continue;
    TestResult r = isolate ? runIsolated(dir, timeout_s) : runTest(dir);
    counts[r.outcome]++;
    if (r.outcome == Outcome::kPass) passing.push_back(name);
    if (verbose || (r.outcome != Outcome::kPass && !filter.empty()))
      std::cout << outcomeName(r.outcome) << "  " << name << "  " << r.detail << "\n";
    results.emplace_back(name, r);
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int total = static_cast<int>(results.size());
  std::cout << "suite " << suite << ": " << total << " tests in " << secs << " s\n";
  for (auto o : {Outcome::kPass, Outcome::kFail, Outcome::kUnsupported, Outcome::kError, Outcome::kCrash, Outcome::kTimeout})
    std::cout << "  " << outcomeName(o) << ": " << counts[o] << "\n";
  if (!report.empty()) {
    std::ofstream f(report);
    f << "# Conformance: " << suite << "\n\n" << counts[Outcome::kPass] << " / " << total << " pass\n\n";
    f << "| test | outcome | detail |\n|---|---|---|\n";
    for (const auto& [n, r] : results) {
      std::string d = r.detail;
      std::replace(d.begin(), d.end(), '|', '/');
      f << "| " << n << " | " << outcomeName(r.outcome) << " | " << d << " |\n";
    }
  }
  if (!write_pass.empty()) {
    std::ofstream f(write_pass);
    f << "# tests of " << suite << " that pass; CI fails if one stops passing\n";
    for (const auto& n : passing) f << n << "\n";
  }
  int failures = counts[Outcome::kCrash] + counts[Outcome::kTimeout];
  if (!expect.empty()) {
    std::set<std::string> want = readList(expect);
    std::set<std::string> got(passing.begin(), passing.end());
    for (const auto& w : want) {
      if (got.count(w)) continue;
      ++failures;
      std::string detail = "not run";
      for (const auto& [n, r] : results)
        if (n == w) detail = std::string(outcomeName(r.outcome)) + ": " + r.detail;
      std::cout << "REGRESSION " << w << ": " << detail << "\n";
    }
  }
  std::cout << "conformance total: " << counts[Outcome::kPass] << " of " << total << " pass, " << failures << " regressions or crashes\n";
  return failures ? 1 : 0;
}
