// PassManager: ordered levels of passes, each level run to a fixed point, with kill switches
// by name (PassOptions::disabled and the environment variable RAMJET_DISABLE_PASSES=a,b).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "passes/pass.h"

namespace ramjet::passes {

struct PassOptions {
  std::set<std::string> disabled;  // pass names (see PassManager::passNames()); "all" disables all
  bool use_env = true;             // also read RAMJET_DISABLE_PASSES
  int max_iterations = 8;          // per level, and for the whole pipeline
  bool verify = true;              // Graph::verify() + inferShapes() after every changing pass
  PassConfig config;
};

struct PassReportEntry {
  std::string name;
  int level = 0;
  bool disabled = false;
  int runs = 0;
  PassStats stats;
};

struct PassReport {
  size_t nodes_before = 0, nodes_after = 0;
  std::vector<PassReportEntry> passes;
  std::string toString() const;  // a table: pass, level, runs, removed, added, rewrites
};

class PassManager {
 public:
  // The default pipeline (levels and order documented in docs/PASSES.md and pass_manager.cc).
  static PassManager createDefault();

  void addPass(int level, std::unique_ptr<Pass> pass);
  // Every registered pass name with its level and description, in run order.
  std::vector<std::string> passNames() const;
  std::string listPasses() const;

  // Unknown names in opts.disabled (or the environment) are an error naming them.
  Status run(Graph& g, const PassOptions& opts = {}, PassReport* report = nullptr) const;

 private:
  struct Entry {
    int level;
    std::unique_ptr<Pass> pass;
  };
  std::vector<Entry> passes_;
};

// Convenience: the default pipeline.
Status optimizeGraph(Graph& g, const PassOptions& opts = {}, PassReport* report = nullptr);

// Parses "a,b,c" into names (empty items ignored).
std::set<std::string> parsePassList(const std::string& list);

}  // namespace ramjet::passes
