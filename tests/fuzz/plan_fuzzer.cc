// libFuzzer target for the plan loader: every input must give an engine or a Status, never a
// crash, hang or sanitizer report. Each input is tried as is (header, magic, version, size and
// checksum checks) and re-sealed with correct checksums, so the mutations reach the meta
// parser (graph, attributes, constants, exec records) behind the checksums.
//   build: cmake -DRAMJET_FUZZ=ON -DRAMJET_CUDA=OFF -DCMAKE_CXX_COMPILER=clang++ ...
//   run:   bin/plan_fuzzer -max_total_time=60 corpus/   (seed: any CPU plan file)
#include <cstdint>
#include <cstring>
#include <vector>

#include "plan/plan_format.h"
#include "ramjet/engine.h"

namespace {

void put64(std::vector<uint8_t>& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }
uint64_t get64(const std::vector<uint8_t>& b, size_t off) {
  uint64_t v;
  std::memcpy(&v, b.data() + off, 8);
  return v;
}

void tryLoad(const uint8_t* data, size_t size) {
  auto e = ramjet::Engine::loadFromMemory(data, size);
  if (e.ok()) (void)(*e)->createContext();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tryLoad(data, size);
  if (size < ramjet::plan::kHeaderSize) return 0;
  std::vector<uint8_t> b(data, data + size);
  std::memcpy(b.data(), ramjet::plan::kMagic, 8);
  uint32_t version = ramjet::plan::kFormatVersion, header = ramjet::plan::kHeaderSize;
  std::memcpy(b.data() + 8, &version, 4);
  std::memcpy(b.data() + 12, &header, 4);
  put64(b, 16, size);
  uint64_t meta_off = get64(b, 24), meta_size = get64(b, 32), w_off = get64(b, 40), w_size = get64(b, 48);
  if (meta_off <= size && meta_size <= size - meta_off) put64(b, 56, ramjet::plan::xxh64(b.data() + meta_off, meta_size));
  if (w_off <= size && w_size <= size - w_off) put64(b, 64, ramjet::plan::xxh64(b.data() + w_off, w_size));
  put64(b, 88, ramjet::plan::xxh64(b.data(), 88));
  tryLoad(b.data(), b.size());
  return 0;
}
