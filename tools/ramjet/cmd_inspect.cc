// `ramjet inspect model.onnx`: the imported graph, shapes inferred, as readable text.
#include <iostream>

#include "commands.h"
#include "ramjet/graph.h"

namespace ramjet::cli {

void addInspectCommand(CLI::App& app, Action* action) {
  auto* cmd = app.add_subcommand("inspect", "Print a model's graph: inputs, outputs, nodes and inferred shapes");
  auto model = std::make_shared<std::string>();
  cmd->add_option("model", *model, "ONNX model file")->required();
  cmd->callback([=] {
    *action = [=] {
      auto g = importOnnx(*model);
      if (!g.ok()) {
        std::cerr << "error: " << g.status().message() << "\n";
        return 1;
      }
      std::cout << g->dump();
      return 0;
    };
  });
}

}  // namespace ramjet::cli
