#include "builder/timing_cache.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace ramjet::builder {

namespace {
const char kHeader[] = "# ramjet timing cache v1";
}

Status TimingCache::load(const std::string& path) {
  std::ifstream f(path);
  if (!f) return Status::Ok();
  std::string line;
  if (!std::getline(f, line) || line != kHeader)
    return makeError(StatusCode::kInvalidArgument, "timing cache '", path, "' is not a ramjet timing cache (v1)");
  int lineno = 1;
  while (std::getline(f, line)) {
    ++lineno;
    if (line.empty()) continue;
    size_t a = line.find('\t'), b = a == std::string::npos ? a : line.find('\t', a + 1),
           c = b == std::string::npos ? b : line.find('\t', b + 1);
    if (c == std::string::npos)
      return makeError(StatusCode::kInvalidArgument, "timing cache '", path, "' line ", lineno, " is malformed");
    Entry e;
    e.tactic.name = line.substr(a + 1, b - a - 1);
    char* end = nullptr;
    e.tactic.id = static_cast<int32_t>(std::strtol(line.c_str() + b + 1, &end, 10));
    e.ms = std::strtod(line.c_str() + c + 1, &end);
    entries_[line.substr(0, a)] = e;
  }
  return Status::Ok();
}

Status TimingCache::save(const std::string& path) const {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp);
    if (!f) return makeError(StatusCode::kIoError, "cannot write timing cache '", tmp, "'");
    f << kHeader << "\n" << std::setprecision(17);  // times round-trip exactly: same plan bytes
    for (const auto& [k, e] : entries_) f << k << "\t" << e.tactic.name << "\t" << e.tactic.id << "\t" << e.ms << "\n";
    if (!f) return makeError(StatusCode::kIoError, "writing timing cache '", tmp, "' failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return makeError(StatusCode::kIoError, "cannot rename '", tmp, "' to '", path, "'");
  return Status::Ok();
}

}  // namespace ramjet::builder
