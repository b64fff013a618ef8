// Each subcommand lives in its own file and registers itself here (explicitly, from main.cc).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ramjet/graph.h"

namespace ramjet::cli {

// A subcommand's action returns the process exit code (0 ok, 1 failure, 2 bad usage).
using Action = std::function<int()>;

void addRunCommand(CLI::App& app, Action* action);
void addInspectCommand(CLI::App& app, Action* action);
void addBuildCommand(CLI::App& app, Action* action);
void addBenchCommand(CLI::App& app, Action* action);
void addOptimizeCommand(CLI::App& app, Action* action);  // graph passes (cmd_optimize.cc)
void addDetectCommand(CLI::App& app, Action* action);  // YOLO detection on images (cmd_detect.cc)
void addEvalCommand(CLI::App& app, Action* action);    // detector mAP (cmd_eval.cc)
void addCalibrateCommand(CLI::App& app, Action* action);  // INT8 calibration cache (cmd_calibrate.cc)
void addValidateCommand(CLI::App& app, Action* action);   // accuracy vs the FP32 reference (cmd_validate.cc)
void addServeCommand(CLI::App& app, Action* action);     // KServe v2 server (cmd_serve.cc)
void addLoadgenCommand(CLI::App& app, Action* action);   // HTTP load generator (cmd_loadgen.cc)
// Builds an engine for `device` ("cpu" or "cuda") with the feeds' shapes and runs it once.
int engineRun(const Graph& g, const std::map<std::string, Tensor>& feeds, const std::string& device,
              std::vector<Tensor>* outs, double* ms, std::string* err);

// Parses "name:1x3x224x224" (several, comma separated) into name -> dims; false on bad syntax.
bool parseShapeSpecs(const std::vector<std::string>& specs, std::map<std::string, std::vector<int64_t>>* out,
                     std::string* error);

}  // namespace ramjet::cli
