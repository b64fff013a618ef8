// `ramjet calibrate --model m.onnx --data DIR --method entropy -o calib.cache`: collects
// activation statistics on the reference interpreter and writes the INT8 calibration cache.
#include <iostream>

#include "commands.h"
#include "precision/calibrator.h"
#include "precision_common.h"

namespace ramjet::cli {

void addCalibrateCommand(CLI::App& app, Action* action) {
  struct Opts {
    std::string model, data, output;
    size_t samples = 0;
    uint64_t seed = 0;
    CalibFlags calib;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = app.add_subcommand("calibrate", "INT8 calibration: per-tensor activation thresholds -> calibration cache");
  cmd->add_option("--model", o->model, "ONNX model file")->required();
  cmd->add_option("--data", o->data, "folder of .npy files or images, or 'random'")->required();
  cmd->add_option("-o,--output", o->output, "calibration cache file to write")->required();
  cmd->add_option("--samples", o->samples, "use at most N samples (batches); random data: N batches (default 8)");
  cmd->add_option("--seed", o->seed, "seed for --data random");
  cmd->add_flag("-q,--quiet", o->calib.quiet, "no progress display");
  o->calib.add(cmd);
  cmd->callback([=] {
    *action = [=]() -> int {
      auto fail = [](const std::string& m) {
        std::cerr << "error: " << m << "\n";
        return 1;
      };
      auto g = importOnnx(o->model);
      if (!g.ok()) return fail(g.status().message());
      precision::ImagePreprocess pre;
      std::string err;
      if (!o->calib.preprocess(&pre, &err, *g)) return fail(err);
      size_t n = o->samples ? o->samples : (o->data == "random" ? 8 : 0);
      auto calib = precision::makeCalibratorForSpec(*g, o->data, pre, n, o->seed);
      if (!calib.ok()) return fail(calib.status().message());
      auto table = precision::calibrate(*g, **calib, o->calib.options());
      if (!table.ok()) return fail(table.status().message());
      Status s = precision::saveCalibrationCache(o->output, *table);
      if (!s.ok()) return fail(s.message());
      if (!o->calib.quiet)
        std::cout << "calibrated " << table->amax.size() << " tensors on " << table->num_batches << " batches ("
                  << table->method << ", model " << table->model_hash << ") -> " << o->output << "\n";
      return 0;
    };
  });
}

}  // namespace ramjet::cli
