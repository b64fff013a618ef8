// `ramjet optimize model.onnx`: runs the graph passes (src/passes) and reports what each did;
// --dump prints the optimized graph, --compare runs both graphs on the CPU reference with
// random inputs and prints the largest output difference.
#include <iostream>
#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "commands.h"
#include "passes/pass_manager.h"
#include "ramjet/graph.h"

namespace ramjet::cli {
namespace {

// Random inputs for g's inputs; symbolic dims become 1.
Result<std::map<std::string, Tensor>> randomFeeds(const Graph& g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::map<std::string, Tensor> feeds;
  for (Value* v : g.inputs) {
    if (!v->type.shape.rank_known)
      return makeError(StatusCode::kUnsupported, "input '", v->name,
                       "' has an unknown rank; --compare needs shapes");
    std::vector<int64_t> dims;
    for (const Dim& d : v->type.shape.dims) dims.push_back(d.known() ? d.value : 1);
    Tensor t(DataType::kFloat32, dims);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = nd(rng);
    if (v->type.dtype != DataType::kFloat32) {
      if (isIntegerType(v->type.dtype) || v->type.dtype == DataType::kBool) {
        Tensor z(v->type.dtype, dims);  // zeros: valid indices/ids for any table
        feeds[v->name] = z;
        continue;
      }
      t = t.cast(v->type.dtype);
    }
    feeds[v->name] = t;
  }
  return feeds;
}

}  // namespace

void addOptimizeCommand(CLI::App& app, Action* action) {
  auto* cmd =
      app.add_subcommand("optimize", "Run the graph passes on a model and report what they did");
  auto model = std::make_shared<std::string>();
  auto disable = std::make_shared<std::string>();
  auto list = std::make_shared<bool>(false);
  auto dump = std::make_shared<bool>(false);
  auto compare = std::make_shared<bool>(false);
  cmd->add_option("model", *model, "ONNX model file");
  cmd->add_option(
      "--disable", *disable,
      "Comma-separated pass names to skip ('all' for every pass); also RAMJET_DISABLE_PASSES");
  cmd->add_flag("--list-passes", *list, "List the passes in run order and exit");
  cmd->add_flag("--dump", *dump, "Print the optimized graph");
  cmd->add_flag(
      "--compare", *compare,
      "Run original and optimized graphs on the CPU reference (random inputs, symbolic dims = 1) "
      "and print the max abs difference per output");
  cmd->callback([=] {
    *action = [=] {
      const passes::PassManager pm = passes::PassManager::createDefault();
      if (*list) {
        std::cout << pm.listPasses();
        return 0;
      }
      if (model->empty()) {
        std::cerr << "error: optimize needs a model file (or --list-passes)\n";
        return 2;
      }
      auto g = importOnnx(*model);
      if (!g.ok()) {
        std::cerr << "error: " << g.status().message() << "\n";
        return 1;
      }
      std::map<std::string, Tensor> feeds;
      std::vector<Tensor> before;
      if (*compare) {
        auto f = randomFeeds(*g, 1234);
        if (!f.ok()) {
          std::cerr << "error: " << f.status().message() << "\n";
          return 1;
        }
        feeds = std::move(f).value();
        auto r = reference::run(*g, feeds);
        if (!r.ok()) {
          std::cerr << "error: the original graph failed on the reference: " << r.status().message()
                    << "\n";
          return 1;
        }
        before = std::move(r).value();
      }
      passes::PassOptions opts;
      opts.disabled = passes::parsePassList(*disable);
      passes::PassReport report;
      Status st = pm.run(*g, opts, &report);
      if (!st.ok()) {
        std::cerr << "error: " << st.message() << "\n";
        return 1;
      }
      std::cout << report.toString();
      std::map<std::string, int> ops;
      for (const auto& n : g->nodes()) ++ops[n->op_type];
      std::cout << "ops after:";
      for (const auto& [op, c] : ops) std::cout << " " << op << "=" << c;
      std::cout << "\n";
      if (*compare) {
        auto r = reference::run(*g, feeds);
        if (!r.ok()) {
          std::cerr << "error: the optimized graph failed on the reference: "
                    << r.status().message() << "\n";
          return 1;
        }
        for (size_t i = 0; i < before.size(); ++i) {
          CompareResult c = compareTensors((*r)[i], before[i], 1e-4, 1e-3);
          std::cout << "output '" << g->outputs[i]->name << "': max abs diff " << c.max_abs
                    << ", max rel " << c.max_rel << ", cosine " << c.cosine
                    << (c.shape_match ? "" : " SHAPE MISMATCH") << "\n";
        }
      }
      if (*dump) std::cout << g->dump();
      return 0;
    };
  });
}

}  // namespace ramjet::cli
