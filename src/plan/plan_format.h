// The plan file: a strict, versioned, checksummed binary format, mmap-able with 64-byte aligned
// weights. Layout (little-endian):
//
//   [0, 96)   header: magic "RJPLAN\r\n", u32 format version, u32 header size, u64 file size,
//             u64 meta offset, u64 meta size, u64 weights offset, u64 weights size,
//             u64 xxh64(meta), u64 xxh64(weights), u64 reserved, u64 xxh64(header[0,88))
//   meta      build info (ramjet version, device, GPU name + compute capability, CUDA/cuDNN/
//             cuBLAS versions, precision, profiles), the lowered graph (ops, attributes, types,
//             constants as references into the weights), the per-node placement and tactic, and
//             the memory plan at the profiles' max shapes.
//   weights   every constant, each at a 64-byte aligned file offset.
//
// Every read is bounds-checked; every count is checked against the bytes left, so a corrupted
// or hostile file yields a Status naming what is wrong, never a crash.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

namespace ramjet::plan {

constexpr char kMagic[8] = {'R', 'J', 'P', 'L', 'A', 'N', '\r', '\n'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 96;
constexpr size_t kWeightAlign = 64;

uint64_t xxh64(const void* data, size_t len, uint64_t seed = 0);

struct BuildMeta {
  std::string ramjet_version;
  DeviceKind device = DeviceKind::kCpu;
  Precision precision = Precision::kFP32;
  backend::DeviceInfo device_info;
  std::vector<ShapeProfile> profiles;
  bool allow_cpu_fallback = false;
  int64_t created_unix = 0;
};

// One top-level node in execution order.
struct NodeExec {
  uint32_t node_index = 0;  // into graph->nodes()
  backend::Placement placement = backend::Placement::kDevice;
  backend::Tactic tactic;
  double time_ms = -1;  // measured when the builder timed tactics
};

struct MemoryPlanRecord {
  MemoryReport report;
  std::vector<int64_t> value_offsets;  // per graph value index; -1 when not in the arena
};

struct PlanContents {
  BuildMeta meta;
  std::unique_ptr<Graph> graph;
  std::vector<NodeExec> exec;
  MemoryPlanRecord memory;
  size_t weight_bytes = 0;
  size_t file_bytes = 0;
};

std::vector<uint8_t> encode(const PlanContents& plan);
// `keepalive` owns `data` (an mmap or a buffer); constant tensors of the graph alias it.
Result<PlanContents> decode(const uint8_t* data, size_t size, std::shared_ptr<void> keepalive,
                            const std::string& what);

// ---- multi-profile container: several complete plans, one per optimization profile ----
// "RJMULTI1", u32 version 1, u32 count (1..64), u64 file size, then count x (u64 offset,
// u64 size), u64 xxh64 of everything before it; each plan starts at a 4096-aligned offset (its
// weights keep their alignment) and carries its own checksums.
constexpr char kMultiMagic[9] = "RJMULTI1";
constexpr size_t kMultiAlign = 4096, kMaxProfiles = 64;
bool isMultiProfile(const uint8_t* data, size_t size);
std::vector<uint8_t> encodeMultiProfile(const std::vector<std::vector<uint8_t>>& plans);
// (offset, size) of each plan; errors say what is wrong with the container.
Result<std::vector<std::pair<size_t, size_t>>> decodeMultiProfile(const uint8_t* data, size_t size,
                                                                  const std::string& what);

// Stand-alone graph (de)serialization, also used to copy a Graph (which is not copyable).
Result<std::unique_ptr<Graph>> cloneGraph(const Graph& g);

}  // namespace ramjet::plan
