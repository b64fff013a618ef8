// ramjet: optimize ONNX models into engines and run them.
#include <execinfo.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <iostream>

#include "commands.h"

namespace {
// A crash is a bug: say so on stderr with a raw backtrace (module+offset, resolvable with
// addr2line -f -C -e <unstripped ramjet>), then die of the same signal so the exit status is kept.
void onFatalSignal(int sig) {
  const char* name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" : "SIGILL";
  const char head[] = "\nramjet: fatal signal ";
  const char tail[] = " (a bug in ramjet; please report it with this backtrace)\n";
  (void)!write(2, head, sizeof(head) - 1);
  (void)!write(2, name, std::strlen(name));
  (void)!write(2, tail, sizeof(tail) - 1);
  void* frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, 2);
  signal(sig, SIG_DFL);
  raise(sig);
}
}  // namespace

int main(int argc, char** argv) {
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL}) signal(sig, onFatalSignal);
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
