// libFuzzer target: parseNpy must reject any malformed .npy bytes with a Status, never crash,
// and a tensor it accepts must be self-consistent.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ramjet/tensor.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto t = ramjet::parseNpy(data, size, "fuzz.npy");
  if (!t.ok()) {
    if (t.status().message().empty()) std::abort();  // every error must say why
    return 0;
  }
  // Touch every byte so ASan sees any storage/shape mismatch.
  const auto* p = static_cast<const uint8_t*>(t->raw());
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < t->nbytes(); ++i) sink ^= p[i];
  (void)t->summary();
  return 0;
}
