// `ramjet run model.onnx`: inputs from .npy files or seeded random data; each output saved as
// <output-dir>/<name>.npy and summarised.
#include <sys/stat.h>

#include <chrono>
#include <iostream>
#include <map>
#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "commands.h"
#include "core/dispatch.h"
#include "ramjet/graph.h"

namespace ramjet::cli {

bool parseShapeSpecs(const std::vector<std::string>& specs, std::map<std::string, std::vector<int64_t>>* out,
                     std::string* error) {
  for (const auto& spec0 : specs) {
    std::string rest = spec0;
    while (!rest.empty()) {
      // Split on ',' between specs: "a:1x3,b:2x4".
      size_t comma = rest.find(',');
      std::string spec = rest.substr(0, comma);
      rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
      size_t colon = spec.rfind(':');
      if (colon == std::string::npos || colon == 0 || colon + 1 == spec.size()) {
        *error = "shape '" + spec + "' must look like name:1x3x224x224";
        return false;
      }
      std::vector<int64_t> dims;
      std::string d = spec.substr(colon + 1);
      size_t pos = 0;
      while (pos <= d.size()) {
        size_t x = d.find('x', pos);
        std::string num = d.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
        char* end = nullptr;
        long long v = std::strtoll(num.c_str(), &end, 10);
        if (num.empty() || *end != '\0' || v < 0 || v > (1LL << 31)) {
          *error = "shape '" + spec + "': '" + num + "' is not a dimension";
          return false;
        }
        dims.push_back(v);
        if (x == std::string::npos) break;
        pos = x + 1;
      }
      (*out)[spec.substr(0, colon)] = dims;
    }
  }
  return true;
}

namespace {

std::string safeFileName(const std::string& name) {
  std::string s = name.empty() ? "output" : name;
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) c = '_';
  if (s == "." || s == "..") s = "_";
  return s;
}

Tensor randomTensor(DataType dt, const std::vector<int64_t>& dims, std::mt19937_64& rng) {
  Tensor t(dt, dims);
  std::uniform_real_distribution<double> uf(-1.0, 1.0);
  std::uniform_int_distribution<int> ui(0, 9);
  visitType(dt, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_same_v<T, bool>) p[i] = ui(rng) % 2;
      else if constexpr (std::is_integral_v<T>) p[i] = static_cast<T>(ui(rng));
      else p[i] = static_cast<T>(static_cast<float>(uf(rng)));
    }
  });
  return t;
}

}  // namespace

void addRunCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::string model, output_dir = "ramjet_out", device = "cpu";
    std::vector<std::string> inputs, shapes;
    uint64_t seed = 0;
    bool quiet = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("run", "Run a model once on .npy or random inputs and save its outputs as .npy");
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("-i,--input", o->inputs, "NAME=file.npy (repeatable)");
  cmd->add_option("--shapes", o->shapes, "concrete shapes for random inputs with symbolic dims: name:1x3x224x224[,..]");
  cmd->add_option("--seed", o->seed, "seed for random inputs");
  cmd->add_option("-o,--output-dir", o->output_dir, "folder for <output>.npy files");
  cmd->add_option("--device", o->device, "cpu (the reference interpreter), cpu-engine or cuda (built into an engine)")
      ->check(CLI::IsMember({"cpu", "cpu-engine", "cuda"}));
  cmd->add_flag("-q,--quiet", o->quiet, "print only errors");
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const std::string& m) {
        std::cerr << "error: " << m << "\n";
        return 1;
      };
      auto g = importOnnx(o->model);
      if (!g.ok()) return fail(g.status().message());
      std::map<std::string, std::vector<int64_t>> shapes;
      std::string err;
      if (!parseShapeSpecs(o->shapes, &shapes, &err)) return fail(err);
      for (const auto& [name, dims] : shapes)
        if (!g->findValue(name) || !g->findValue(name)->is_graph_input) return fail("--shapes names '" + name + "', which is not a model input");
      std::map<std::string, Tensor> feeds;
      for (const auto& spec : o->inputs) {
        auto eq = spec.find('=');
        if (eq == std::string::npos || eq == 0) return fail("--input '" + spec + "' must look like NAME=file.npy");
        std::string name = spec.substr(0, eq);
        Value* v = g->findValue(name);
        if (!v || !v->is_graph_input) {
          std::string names;
          for (Value* in : g->inputs) names += (names.empty() ? "" : ", ") + in->name;
          return fail("--input names '" + name + "', but the model's inputs are: " + names);
        }
        auto t = readNpy(spec.substr(eq + 1));
        if (!t.ok()) return fail(t.status().message());
        feeds[name] = std::move(*t);
      }
      std::mt19937_64 rng(o->seed);
      for (Value* v : g->inputs) {
        if (feeds.count(v->name)) continue;
        if (!v->type.shape.rank_known) return fail("input '" + v->name + "' has unknown rank: give it with --input or --shapes");
        std::vector<int64_t> dims;
        if (shapes.count(v->name)) {
          dims = shapes[v->name];
        } else {
          for (const auto& d : v->type.shape.dims) dims.push_back(d.known() ? d.value : 1);  // symbolic -> 1
        }
        feeds[v->name] = randomTensor(v->type.dtype, dims, rng);
        if (!o->quiet) std::cout << "input  " << v->name << ": random " << feeds[v->name].summary() << "\n";
      }
      auto t0 = std::chrono::steady_clock::now();
      Result<std::vector<Tensor>> outs = Status(StatusCode::kInternal, "not run");
      double ms = 0;
      if (o->device == "cpu") {
        outs = reference::run(*g, feeds);
        ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      } else {  // an engine built in memory for the feeds' shapes
        std::vector<Tensor> engine_outs;
        std::string engine_err;
        if (engineRun(*g, feeds, o->device == "cuda" ? "cuda" : "cpu", &engine_outs, &ms, &engine_err) != 0)
          return fail(engine_err);
        outs = std::move(engine_outs);
      }
      if (!outs.ok()) return fail(outs.status().message());
      mkdir(o->output_dir.c_str(), 0755);
      struct stat st {};
      if (stat(o->output_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return fail("cannot create output folder '" + o->output_dir + "'");
      for (size_t i = 0; i < outs->size(); ++i) {
        std::string path = o->output_dir + "/" + safeFileName(g->outputs[i]->name) + ".npy";
        Status s = writeNpy(path, (*outs)[i]);
        if (!s.ok()) return fail(s.message());
        if (!o->quiet) std::cout << "output " << g->outputs[i]->name << ": " << (*outs)[i].summary() << " -> " << path << "\n";
      }
      if (!o->quiet) std::cout << "ran on " << o->device << (o->device == "cpu" ? " (reference)" : " (engine)") << " in " << ms << " ms\n";
      return 0;
    };
  });
}

}  // namespace ramjet::cli
