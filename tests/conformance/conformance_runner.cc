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

// ---- sequence / optional test data (onnx-data.proto's SequenceProto and OptionalProto) ----
// libonnx ships no onnx-data.proto, so the few fields needed are read from the wire format.
struct WireField {
  uint32_t number = 0;
  uint64_t varint = 0;
  const uint8_t* bytes = nullptr;  // length-delimited fields
  size_t size = 0;
};

bool readVarint(const uint8_t*& p, const uint8_t* end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && p < end; shift += 7) {
    uint8_t b = *p++;
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

Result<std::vector<WireField>> parseWire(const uint8_t* p, size_t size, const std::string& what) {
  std::vector<WireField> out;
  const uint8_t* end = p + size;
  while (p < end) {
    uint64_t key = 0;
    if (!readVarint(p, end, &key)) return makeError(StatusCode::kInvalidArgument, what, ": truncated field key");
    WireField f;
    f.number = static_cast<uint32_t>(key >> 3);
    switch (key & 7) {
      case 0: if (!readVarint(p, end, &f.varint)) return makeError(StatusCode::kInvalidArgument, what, ": truncated varint"); break;
      case 1: if (end - p < 8) return makeError(StatusCode::kInvalidArgument, what, ": truncated fixed64"); p += 8; break;
      case 5: if (end - p < 4) return makeError(StatusCode::kInvalidArgument, what, ": truncated fixed32"); p += 4; break;
      case 2: {
        uint64_t len = 0;
        if (!readVarint(p, end, &len) || len > static_cast<uint64_t>(end - p))
          return makeError(StatusCode::kInvalidArgument, what, ": bad length-delimited field");
        f.bytes = p;
        f.size = static_cast<size_t>(len);
        p += len;
        break;
      }
      default: return makeError(StatusCode::kInvalidArgument, what, ": unsupported wire type ", key & 7);
    }
    out.push_back(f);
  }
  return out;
}

// Reads a TensorProto, SequenceProto or OptionalProto, as `type` (the graph's declaration) says.
Result<Tensor> parseValue(const uint8_t* data, size_t size, const TensorType& type, const std::string& what) {
  if (type.isTensor()) return parseOnnxTensor(data, size);
  RJ_ASSIGN_OR_RETURN(std::vector<WireField> fields, parseWire(data, size, what));
  // SequenceProto / OptionalProto: 2 elem_type (1 tensor, 3 sequence, 5 optional), 3 tensor
  // value(s), 5 sequence value(s), 7 optional value(s); 4 and 6 (sparse, map) are unsupported.
  int64_t elem_type = 0;
  for (const auto& f : fields)
    if (f.number == 2) elem_type = static_cast<int64_t>(f.varint);
  TensorType inner = type.elem ? *type.elem : TensorType(type.dtype, Shape::unknownRank());
  std::vector<Tensor> values;
  for (const auto& f : fields) {
    if (f.number == 4 || f.number == 6) return makeError(StatusCode::kUnsupported, what, ": sparse/map values are not supported");
    if (f.number == 3 || f.number == 5 || f.number == 7) {
      TensorType vt = inner;
      if (f.number == 3) vt = TensorType(inner.dtype, Shape::unknownRank());
      else if (f.number == 5 && vt.kind != TypeKind::kSequence) vt = TensorType::sequenceOf(TensorType(inner.dtype, Shape::unknownRank()));
      else if (f.number == 7 && vt.kind != TypeKind::kOptional) vt = TensorType::optionalOf(TensorType(inner.dtype, Shape::unknownRank()));
      RJ_ASSIGN_OR_RETURN(Tensor v, parseValue(f.bytes, f.size, vt, what));
      values.push_back(std::move(v));
    }
  }
  if (inner.dtype == DataType::kUndefined && !values.empty()) inner = values[0].isTensor() ? TensorType(values[0].dtype(), Shape::unknownRank()) : values[0].type();
  if (type.kind == TypeKind::kSequence) return Tensor::sequence(inner, std::move(values));
  if (elem_type == 0 || values.empty()) return Tensor::optionalNone(inner);
  if (values.size() != 1) return makeError(StatusCode::kInvalidArgument, what, ": an optional holds ", values.size(), " values");
  return Tensor::optional(std::move(values[0]));
}

Result<Tensor> readValueFile(const std::string& path, const TensorType& type) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return makeError(StatusCode::kNotFound, "cannot open '", path, "'");
  std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto v = parseValue(reinterpret_cast<const uint8_t*>(buf.data()), buf.size(), type, "'" + path + "'");
  if (!v.ok()) return Status(v.status().code(), "'" + path + "': " + v.status().message());
  return v;
}

struct TestResult {
  Outcome outcome;
  std::string detail;
};

// Empty when `got` matches `ref` (tensors element-wise, sequences/optionals element by element).
std::string compareValues(const Tensor& got, Tensor ref, double* worst_abs) {
  if (got.kind() != ref.kind()) return "got " + got.type().toString() + ", expected " + ref.type().toString();
  if (!got.isTensor()) {
    const auto& a = got.elements();
    const auto& b = ref.elements();
    if (a.size() != b.size())
      return "got " + std::to_string(a.size()) + " element(s), expected " + std::to_string(b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      std::string why = compareValues(a[k], b[k], worst_abs);
      if (!why.empty()) return "element " + std::to_string(k) + ": " + why;
    }
    return "";
  }
  ref = asBFloat16IfBits(std::move(ref), got.dtype());
  double rtol = 1e-3, atol = 1e-5;
  if (ref.dtype() == DataType::kFloat16 || ref.dtype() == DataType::kBFloat16) { rtol = 1e-2; atol = 1e-3; }
  CompareResult c = compareTensors(got, ref, atol, rtol);
  *worst_abs = std::max(*worst_abs, c.max_abs);
  if (!c.dtype_match || !c.shape_match || c.mismatches > 0) {
    std::ostringstream os;
    os << "got " << dataTypeName(got.dtype()) << dimsToString(got.dims()) << " expected " << dataTypeName(ref.dtype())
       << dimsToString(ref.dims()) << "; " << c.toString();
    return os.str();
  }
  return "";
}

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
      auto t = readValueFile(p, g->inputs[i]->type);
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
      const Tensor& got = (*outs)[i];
      // The produced value's kind says how to read the expected file (If/Loop outputs carry
      // no declared sequence type); a kind mismatch then shows up as a parse or compare failure.
      TensorType want = g->outputs[i]->type;
      if (want.isTensor() && !got.isTensor()) want = got.type();
      auto ref = readValueFile(p, want);
      if (!ref.ok()) return {Outcome::kUnsupported, "expected output: " + ref.status().message()};
      std::string why = compareValues(got, *ref, &worst_abs);
      if (!why.empty()) return {Outcome::kFail, "output " + std::to_string(i) + " ('" + g->outputs[i]->name + "'): " + why};
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
