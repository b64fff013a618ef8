// Tactic timings keyed by "device|op|input types|attributes", so a rebuild on the same GPU skips
// the timing runs. A small text file: one "key<TAB>tactic<TAB>id<TAB>ms" line per entry.
#pragma once

#include <map>
#include <string>

#include "backends/backend.h"

namespace ramjet::builder {

class TimingCache {
 public:
  struct Entry {
    backend::Tactic tactic;
    double ms = 0;
  };
  Status load(const std::string& path);  // a missing file is an empty cache
  Status save(const std::string& path) const;
  const Entry* find(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  void put(const std::string& key, const backend::Tactic& t, double ms) { entries_[key] = Entry{t, ms}; }
  size_t size() const { return entries_.size(); }

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace ramjet::builder
