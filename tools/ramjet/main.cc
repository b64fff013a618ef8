// ramjet: optimize ONNX models into engines and run them.
#include <iostream>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"ramjet " RAMJET_VERSION " - ONNX model optimizer and runtime for NVIDIA GPUs and CPUs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ramjet ") + RAMJET_VERSION);
  ramjet::cli::Action action;
  ramjet::cli::addRunCommand(app, &action);
  ramjet::cli::addInspectCommand(app, &action);
  ramjet::cli::addBuildCommand(app, &action);
  ramjet::cli::addBenchCommand(app, &action);
  ramjet::cli::addOptimizeCommand(app, &action);
  ramjet::cli::addDetectCommand(app, &action);
  ramjet::cli::addEvalCommand(app, &action);
  ramjet::cli::addCalibrateCommand(app, &action);
  ramjet::cli::addValidateCommand(app, &action);
  ramjet::cli::addServeCommand(app, &action);
  ramjet::cli::addLoadgenCommand(app, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return action ? action() : 2;
}
