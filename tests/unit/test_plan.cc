// Plan file format and memory planner: round trip, corruption of every kind, planner invariants.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <random>

#include "builder/memory_planner.h"
#include "plan/plan_format.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

std::vector<uint8_t> tinyPlanBytes() {
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  EXPECT_TRUE(g.ok());
  BuildOptions opt;
  opt.profiles = {{"images", {1, 3, 32, 32}, {1, 3, 32, 32}, {2, 3, 32, 32}}};
  auto plan = build(*g, opt);
  EXPECT_TRUE(plan.ok()) << plan.status().toString();
  return plan->bytes();
}

Status loadBytes(const std::vector<uint8_t>& b) {
  auto e = Engine::loadFromMemory(b.data(), b.size());
  return e.ok() ? Status::Ok() : e.status();
}

void put64(std::vector<uint8_t>& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }

}  // namespace

TEST(Plan, Xxh64KnownValues) {
  EXPECT_EQ(plan::xxh64("", 0), 0xEF46DB3751D8E999ULL);
  std::string s(100, 'x');
  EXPECT_NE(plan::xxh64(s.data(), s.size()), plan::xxh64(s.data(), s.size() - 1));
}

TEST(Plan, RoundTripKeepsGraphAndAlignment) {
  auto bytes = tinyPlanBytes();
  ASSERT_GT(bytes.size(), plan::kHeaderSize);
  EXPECT_EQ(std::memcmp(bytes.data(), plan::kMagic, 8), 0);
  auto keep = std::make_shared<std::vector<uint8_t>>(bytes);
  auto pc = plan::decode(keep->data(), keep->size(), keep, "test");
  ASSERT_TRUE(pc.ok()) << pc.status().toString();
  size_t n_const = 0;
  for (const auto& v : pc->graph->values()) {
    if (!v->constant) continue;
    ++n_const;
    size_t off = static_cast<const uint8_t*>(v->constant->raw()) - keep->data();
    EXPECT_EQ(off % 64, 0u) << v->name;  // 64-byte aligned in the file (mmap keeps it)
  }
  EXPECT_GT(n_const, 0u);
  // Re-encoding the decoded plan gives the same bytes.
  EXPECT_EQ(plan::encode(*pc), bytes);
  auto clone = plan::cloneGraph(*pc->graph);
  ASSERT_TRUE(clone.ok());
  EXPECT_EQ((*clone)->dump(), pc->graph->dump());
}

TEST(Plan, TruncatedFilesAreRejectedAtEveryLength) {
  auto bytes = tinyPlanBytes();
  std::vector<size_t> cuts = {0, 1, 7, 8, 20, 95, 96, 97, bytes.size() - 1};
  for (size_t k = 1; k < 64; ++k) cuts.push_back(bytes.size() * k / 64);
  for (size_t cut : cuts) {
    std::vector<uint8_t> b(bytes.begin(), bytes.begin() + cut);
    Status s = loadBytes(b);
    ASSERT_FALSE(s.ok()) << "cut at " << cut;
    EXPECT_EQ(s.code(), StatusCode::kInvalidPlan) << s.toString();
    if (cut >= 8) EXPECT_NE(s.message().find("truncated"), std::string::npos) << "cut " << cut << ": " << s.message();
  }
}

TEST(Plan, FlippedBytesGiveChecksumErrors) {
  auto bytes = tinyPlanBytes();
  for (size_t off : {size_t{100}, size_t{300}, bytes.size() / 2, bytes.size() - 3}) {
    auto b = bytes;
    b[off] ^= 0x40;
    Status s = loadBytes(b);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("checksum"), std::string::npos) << off << ": " << s.message();
  }
  auto b = bytes;
  b[20] ^= 1;  // inside the header
  Status s = loadBytes(b);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("header checksum"), std::string::npos) << s.message();
}

TEST(Plan, WrongMagicFutureVersionAndOnnxFiles) {
  auto bytes = tinyPlanBytes();
  auto b = bytes;
  b[0] = 'X';
  Status s = loadBytes(b);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("not a ramjet plan"), std::string::npos) << s.message();

  b = bytes;
  uint32_t v = plan::kFormatVersion + 1;
  std::memcpy(b.data() + 8, &v, 4);
  put64(b, 88, plan::xxh64(b.data(), 88));
  s = loadBytes(b);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("newer ramjet"), std::string::npos) << s.message();

  std::ifstream f(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx", std::ios::binary);
  std::vector<uint8_t> onnx((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  s = loadBytes(onnx);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("ONNX"), std::string::npos) << s.message();

  auto missing = Engine::load("/nonexistent/x.plan");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/x.plan"), std::string::npos);
}

TEST(Plan, CorruptedMetaWithValidChecksumsIsRejectedNotCrashing) {
  // A hostile file with correct checksums: mutate meta bytes and re-seal. Every mutation must
  // give an error or a loadable engine, never a crash (the fuzzer does this at scale).
  auto bytes = tinyPlanBytes();
  uint64_t meta_off, meta_size;
  std::memcpy(&meta_off, bytes.data() + 24, 8);
  std::memcpy(&meta_size, bytes.data() + 32, 8);
  std::mt19937 rng(42);
  int rejected = 0;
  for (int i = 0; i < 300; ++i) {
    auto b = bytes;
    size_t off = meta_off + rng() % meta_size;
    b[off] = static_cast<uint8_t>(rng());
    put64(b, 56, plan::xxh64(b.data() + meta_off, meta_size));
    put64(b, 88, plan::xxh64(b.data(), 88));
    rejected += loadBytes(b).ok() ? 0 : 1;
  }
  EXPECT_GT(rejected, 0);
}

TEST(MemoryPlanner, InvariantsOnRandomLifetimes) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<builder::BufferRequest> reqs;
    int steps = 5 + rng() % 60;
    int n = 1 + rng() % 80;
    for (int i = 0; i < n; ++i) {
      builder::BufferRequest r;
      r.first = rng() % steps;
      r.last = r.first + rng() % 6;
      r.bytes = (rng() % 4 == 0) ? 0 : 1 + rng() % 100000;
      reqs.push_back(r);
    }
    auto plan = builder::planMemory(reqs);
    ASSERT_TRUE(builder::verifyMemoryPlan(reqs, plan).ok()) << builder::verifyMemoryPlan(reqs, plan).toString();
    EXPECT_LE(plan.arena_bytes, plan.sum_bytes);
    EXPECT_GE(plan.arena_bytes, plan.peak_live_bytes);
  }
}

TEST(MemoryPlanner, ChainReusesMemory) {
  // A chain a->b->c->d of equal tensors needs two buffers, not four.
  std::vector<builder::BufferRequest> reqs;
  for (int i = 0; i < 4; ++i) reqs.push_back({1024, i, i + 1});
  auto plan = builder::planMemory(reqs);
  EXPECT_EQ(plan.arena_bytes, 2048u);
  EXPECT_EQ(plan.peak_live_bytes, 2048u);
  EXPECT_EQ(plan.sum_bytes, 4096u);
}

TEST(MemoryPlanner, DetectsOverlapInBrokenPlan) {
  std::vector<builder::BufferRequest> reqs = {{512, 0, 2}, {512, 1, 3}};
  builder::MemoryPlan bad;
  bad.offsets = {0, 256};
  bad.arena_bytes = 1024;
  EXPECT_FALSE(builder::verifyMemoryPlan(reqs, bad).ok());
}

#include "builder/timing_cache.h"

TEST(TimingCache, SaveLoadRoundTripAndBadFiles) {
  std::string path = "/tmp/ramjet_tc_" + std::to_string(::getpid());
  builder::TimingCache c;
  c.put("H100|Conv|f32[1,3,224,224];|group=1;", backend::Tactic{"cuda.conv.cudnn", 71}, 0.25);
  c.put("H100|MatMul|f16[8,64];|", backend::Tactic{"cuda.gemm.cublaslt", 2}, 0.01);
  ASSERT_TRUE(c.save(path).ok());
  builder::TimingCache d;
  ASSERT_TRUE(d.load(path).ok());
  EXPECT_EQ(d.size(), 2u);
  const auto* e = d.find("H100|Conv|f32[1,3,224,224];|group=1;");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->tactic.name, "cuda.conv.cudnn");
  EXPECT_EQ(e->tactic.id, 71);
  EXPECT_DOUBLE_EQ(e->ms, 0.25);
  EXPECT_EQ(d.find("nope"), nullptr);
  std::ofstream(path) << "garbage\n";
  builder::TimingCache bad;
  Status s = bad.load(path);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(path), std::string::npos);
  std::remove(path.c_str());
  builder::TimingCache missing;
  EXPECT_TRUE(missing.load(path).ok());  // a missing file is an empty cache
  EXPECT_EQ(missing.size(), 0u);
}
