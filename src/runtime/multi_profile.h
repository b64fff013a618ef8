// An Engine over several single-profile engines (a multi-profile plan): see multi_profile.cc.
#pragma once

#include <memory>
#include <vector>

#include "ramjet/engine.h"

namespace ramjet::runtime {

// engines: one per optimization profile, same inputs/outputs and device (at least one).
std::unique_ptr<Engine> makeMultiProfileEngine(std::vector<std::unique_ptr<Engine>> engines);

}  // namespace ramjet::runtime
