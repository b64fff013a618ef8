// Fault behaviour (issue #9): a plan cut at every offset or with any header/section-table byte
// flipped is rejected cleanly; a full disk while saving leaves no half-written plan at the
// target; the CPU interpreter refuses oversized tensors (RAMJET_MAX_TENSOR_BYTES) with
// kOutOfMemory instead of aborting. The GPU counterpart (refused device allocations during
// build and run) is tests/gpu/test_faults_gpu.cc.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <thread>

#include "backends/cpu/reference/interpreter.h"
#include "graph_builder.h"
#include "plan/plan_format.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;
namespace fs = std::filesystem;

namespace {

// A small CPU plan (a few KB: the every-offset loops below stay well under a second).
const std::vector<uint8_t>& smallPlan() {
  static const std::vector<uint8_t> bytes = [] {
    rjtest::Builder b;
    Value* x = b.input("x", DataType::kFloat32, {1, 4, 8, 8});
    Tensor w(DataType::kFloat32, {4, 4, 3, 3});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = 0.01f * static_cast<float>(i % 17) - 0.08f;
    Value* wv = b.constant("w", std::move(w));
    Tensor bias(DataType::kFloat32, {4});
    for (int64_t i = 0; i < 4; ++i) bias.data<float>()[i] = 0.5f * static_cast<float>(i);
    Value* bv = b.constant("b", std::move(bias));
    Attribute pads;
    pads.kind = Attribute::Kind::kInts;
    pads.ints = {1, 1, 1, 1};
    b.node("Conv", {x, wv, bv}, {"c"}, {{"pads", pads}});
    b.node("Relu", {b.value("c")}, {"y"});
    b.output("y");
    EXPECT_TRUE(b.g.verify().ok());
    EXPECT_TRUE(b.g.inferShapes().ok());
    BuildOptions opt;
    auto plan = build(b.g, opt);
    EXPECT_TRUE(plan.ok()) << plan.status().toString();
    return plan.ok() ? plan->bytes() : std::vector<uint8_t>{};
  }();
  return bytes;
}

Status loadBytes(const std::vector<uint8_t>& b) {
  auto e = Engine::loadFromMemory(b.data(), b.size());
  if (!e.ok()) return e.status();
  auto ctx = (*e)->createContext();
  return ctx.ok() ? Status::Ok() : ctx.status();
}

uint64_t get64(const std::vector<uint8_t>& b, size_t off) {
  uint64_t v;
  std::memcpy(&v, b.data() + off, 8);
  return v;
}
void put64(std::vector<uint8_t>& b, size_t off, uint64_t v) { std::memcpy(b.data() + off, &v, 8); }

std::vector<uint8_t> readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

fs::path scratchDir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("ramjet_faults_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

std::vector<std::string> listDir(const fs::path& d) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(d)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST(Faults, PlanTruncatedAtEveryOffsetIsRejected) {
  const auto& bytes = smallPlan();
  ASSERT_GT(bytes.size(), plan::kHeaderSize);
  ASSERT_TRUE(loadBytes(bytes).ok());
  std::printf("[faults] plan of %zu bytes: every cut 0..%zu\n", bytes.size(), bytes.size() - 1);
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<uint8_t> b(bytes.begin(), bytes.begin() + cut);
    Status s = loadBytes(b);
    ASSERT_FALSE(s.ok()) << "cut at " << cut << " loaded";
    ASSERT_EQ(s.code(), StatusCode::kInvalidPlan) << "cut " << cut << ": " << s.toString();
    if (cut >= 8) ASSERT_NE(s.message().find("truncated"), std::string::npos) << "cut " << cut << ": " << s.message();
  }
  // The same through a file (mmap path) at a few cuts, including the empty file.
  fs::path d = scratchDir("trunc");
  for (size_t cut : {size_t{0}, size_t{1}, size_t{95}, size_t{96}, bytes.size() / 2, bytes.size() - 1}) {
    std::string p = (d / ("cut" + std::to_string(cut) + ".plan")).string();
    {
      std::ofstream f(p, std::ios::binary);
      f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(cut));
    }
    auto e = Engine::load(p);
    ASSERT_FALSE(e.ok()) << "file cut at " << cut;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidPlan) << e.status().toString();
    EXPECT_NE(e.status().message().find(p), std::string::npos) << e.status().message();
  }
  fs::remove_all(d);
}

TEST(Faults, EveryHeaderByteFlipIsRejected) {
  const auto& bytes = smallPlan();
  // Plain flips: the header checksum catches all of them (it covers [0, 88); [88, 96) is itself).
  int n = 0;
  for (size_t off = 0; off < plan::kHeaderSize; ++off) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x10}, uint8_t{0x80}, uint8_t{0xFF}}) {
      auto b = bytes;
      b[off] ^= mask;
      Status s = loadBytes(b);
      ASSERT_FALSE(s.ok()) << "flip 0x" << std::hex << int(mask) << " at " << std::dec << off;
      ASSERT_EQ(s.code(), StatusCode::kInvalidPlan) << off << ": " << s.toString();
      ++n;
    }
  }
  std::printf("[faults] %d header flips rejected\n", n);
}

TEST(Faults, EverySectionTableFlipWithResealedHeaderIsRejected) {
  // A hostile header with a correct header checksum: the magic, version, header size, file size,
  // section table and section checksums must each be checked on their own. Only the reserved
  // bytes [72, 88) may change freely.
  const auto& bytes = smallPlan();
  int rejected = 0, reserved_ok = 0;
  for (size_t off = 0; off < 88; ++off) {
    for (uint8_t mask : {uint8_t{0x01}, uint8_t{0x02}, uint8_t{0x40}, uint8_t{0x80}, uint8_t{0xFF}}) {
      auto b = bytes;
      b[off] ^= mask;
      put64(b, 88, plan::xxh64(b.data(), 88));
      Status s = loadBytes(b);
      if (off >= 72) {
        // Reserved: accepted, or rejected cleanly; never a crash.
        if (s.ok()) ++reserved_ok;
        else EXPECT_EQ(s.code(), StatusCode::kInvalidPlan) << s.toString();
        continue;
      }
      ASSERT_FALSE(s.ok()) << "resealed flip 0x" << std::hex << int(mask) << " at " << std::dec << off;
      ASSERT_EQ(s.code(), StatusCode::kInvalidPlan) << off << ": " << s.toString();
      EXPECT_FALSE(s.message().empty());
      ++rejected;
    }
  }
  std::printf("[faults] %d resealed header flips rejected, %d reserved-byte flips accepted\n", rejected, reserved_ok);
  // Section offsets/sizes pointing anywhere (incl. overflow) with every checksum recomputed.
  const uint64_t size = bytes.size();
  const uint64_t evil[] = {0, 1, 63, 64, 95, 96, 97, size - 1, size, size + 1, size + 64, UINT64_MAX,
                           UINT64_MAX - 95, UINT64_MAX / 2, uint64_t{1} << 32};
  int sections = 0;
  for (size_t field : {size_t{16}, size_t{24}, size_t{32}, size_t{40}, size_t{48}}) {
    for (uint64_t v : evil) {
      auto b = bytes;
      if (get64(b, field) == v) continue;
      put64(b, field, v);
      uint64_t mo = get64(b, 24), ms = get64(b, 32), wo = get64(b, 40), ws = get64(b, 48);
      if (mo <= size && ms <= size - mo) put64(b, 56, plan::xxh64(b.data() + mo, ms));
      if (wo <= size && ws <= size - wo) put64(b, 64, plan::xxh64(b.data() + wo, ws));
      put64(b, 88, plan::xxh64(b.data(), 88));
      Status s = loadBytes(b);
      ASSERT_FALSE(s.ok()) << "field " << field << " = " << v;
      ASSERT_EQ(s.code(), StatusCode::kInvalidPlan) << s.toString();
      ++sections;
    }
  }
  std::printf("[faults] %d hostile section tables rejected\n", sections);
}

TEST(Faults, EveryMetaByteFlipWithValidChecksumsLoadsOrIsRejected) {
  // Behind the checksums: each meta byte flipped and re-sealed gives an error or a usable engine.
  const auto& bytes = smallPlan();
  uint64_t mo = get64(bytes, 24), ms = get64(bytes, 32);
  int rejected = 0, loaded = 0;
  for (uint64_t off = mo; off < mo + ms; ++off) {
    auto b = bytes;
    b[off] ^= 0xFF;
    put64(b, 56, plan::xxh64(b.data() + mo, ms));
    put64(b, 88, plan::xxh64(b.data(), 88));
    Status s = loadBytes(b);
    if (s.ok()) {
      ++loaded;
    } else {
      ++rejected;
      EXPECT_FALSE(s.message().empty()) << off;
    }
  }
  std::printf("[faults] meta flips: %d rejected, %d still load\n", rejected, loaded);
  EXPECT_GT(rejected, 0);
}

// Runs `body` in a child process (resource limits and signal dispositions stay there) and
// returns its exit code; the child prints its own diagnostics.
int inChild(const std::function<int()>& body) {
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 1;
    rc = body();
    std::fflush(stdout);
    std::fflush(stderr);
    ::_exit(rc);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Faults, FullDiskWhileSavingLeavesNoPlanBehind) {
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  ASSERT_TRUE(g.ok()) << g.status().toString();
  BuildOptions opt;
  opt.profiles = {{"images", {1, 3, 32, 32}, {1, 3, 32, 32}, {1, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  const auto& old_bytes = smallPlan();
  ASSERT_NE(plan->bytes(), old_bytes);
  fs::path d = scratchDir("fulldisk");
  const std::string fresh = (d / "fresh.plan").string(), existing = (d / "existing.plan").string();
  {
    std::ofstream f(existing, std::ios::binary);
    f.write(reinterpret_cast<const char*>(old_bytes.data()), static_cast<std::streamsize>(old_bytes.size()));
  }
  // The disk "fills up" half way through the plan: RLIMIT_FSIZE makes write() fail with EFBIG
  // (SIGXFSZ ignored), as ENOSPC would.
  const rlim_t limit = plan->bytes().size() / 2;
  int rc = inChild([&] {
    ::signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl {limit, limit};
    if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) return 10;
    for (const std::string& target : {fresh, existing}) {
      Status s = plan->save(target);
      std::printf("[faults] save to %s with a %zu-byte file limit: %s\n", target.c_str(), static_cast<size_t>(limit),
                  s.toString().c_str());
      if (s.ok()) return 11;
      if (s.code() != StatusCode::kIoError) return 12;
      if (s.message().find(target) == std::string::npos) return 13;
    }
    return 0;
  });
  ASSERT_EQ(rc, 0) << "child failed (11: save succeeded, 12: wrong code, 13: message lacks the path)";
  // Nothing but the untouched old plan: no fresh.plan, no temp file, old bytes intact and loadable.
  EXPECT_EQ(listDir(d), std::vector<std::string>{"existing.plan"});
  EXPECT_EQ(readFile(existing), old_bytes);
  EXPECT_TRUE(Engine::load(existing).ok());
  // Without the limit the same save replaces the old plan atomically.
  ASSERT_TRUE(plan->save(existing).ok());
  EXPECT_EQ(readFile(existing), plan->bytes());
  EXPECT_EQ(listDir(d), std::vector<std::string>{"existing.plan"});
  // A directory that does not exist, and a target that is a directory: errors naming the path.
  Status s = plan->save((d / "no" / "such" / "dir.plan").string());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_NE(s.message().find("dir.plan"), std::string::npos) << s.message();
  fs::create_directories(d / "adir");
  s = plan->save((d / "adir").string());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("adir"), std::string::npos) << s.message();
  EXPECT_EQ(listDir(d), (std::vector<std::string>{"adir", "existing.plan"}));
  fs::remove_all(d);
}

TEST(Faults, CpuInterpreterRefusesTensorsOverTheByteLimit) {
  // RAMJET_MAX_TENSOR_BYTES is read once per process: set it in a child.
  int rc = inChild([] {
    ::setenv("RAMJET_MAX_TENSOR_BYTES", "4096", 1);
    rjtest::Builder b;
    Value* x = b.input("x", DataType::kFloat32, {1, 4});
    Tensor shape(DataType::kInt64, {2});
    shape.data<int64_t>()[0] = 64;
    shape.data<int64_t>()[1] = 4;  // 64x4 floats = 1024 bytes: under the limit
    b.node("Expand", {x, b.constant("s1", shape)}, {"small"});
    Tensor big(DataType::kInt64, {2});
    big.data<int64_t>()[0] = 1 << 20;
    big.data<int64_t>()[1] = 4;  // 16 MiB: over
    b.node("Expand", {x, b.constant("s2", big)}, {"y"});
    b.output("small");
    b.output("y");
    Tensor in(DataType::kFloat32, {1, 4});
    for (int64_t i = 0; i < 4; ++i) in.data<float>()[i] = 1.f;
    auto r = rjtest::runGraph(b.g, {{"x", in}});
    std::printf("[faults] 16 MiB Expand under a 4096-byte limit: %s\n",
                r.ok() ? "ran" : r.status().toString().c_str());
    if (r.ok()) return 20;
    if (r.status().code() != StatusCode::kOutOfMemory) return 21;
    const std::string& m = r.status().message();
    if (m.find("RAMJET_MAX_TENSOR_BYTES") == std::string::npos || m.find("Expand") == std::string::npos) return 22;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "20: ran, 21: wrong code, 22: message does not name the node and the limit";
}

// ---- Threads: what the ThreadSanitizer run (scripts/sanitize.sh tsan) exercises ----

namespace {
Tensor randomInput(std::vector<int64_t> dims, uint32_t seed) {
  Tensor t(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}
}  // namespace

TEST(Threads, ContextsOfOneEngineRunConcurrently) {
  // One engine (shared weights, kernels), one context per thread: results must equal the
  // single-threaded reference bit for bit.
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  ASSERT_TRUE(g.ok()) << g.status().toString();
  BuildOptions opt;
  opt.profiles = {{"images", {1, 3, 32, 32}, {2, 3, 32, 32}, {2, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  constexpr int kThreads = 4, kRuns = 3;
  std::vector<Tensor> inputs;
  std::vector<std::vector<Tensor>> want;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(randomInput({1 + t % 2, 3, 32, 32}, 100 + t));
    auto r = reference::run(*g, {{"images", inputs.back()}});
    ASSERT_TRUE(r.ok());
    want.push_back(std::move(*r));
  }
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto ctx = (*engine)->createContext();
      if (!ctx.ok()) { errors[t] = ctx.status().toString(); return; }
      for (int k = 0; k < kRuns; ++k) {
        auto got = (*ctx)->infer({{"images", inputs[t]}});
        if (!got.ok()) { errors[t] = got.status().toString(); return; }
        for (size_t o = 0; o < got->size(); ++o) {
          CompareResult c = compareTensors((*got)[o], want[t][o], 1e-5, 1e-5);
          if (c.mismatches || !c.shape_match) { errors[t] = "run " + std::to_string(k) + ": " + c.toString(); return; }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
}

TEST(Threads, ReferenceRunsShareTheThreadPool) {
  // Big enough that the convolution and GEMM go through parallelRange; two callers at once.
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  ASSERT_TRUE(g.ok()) << g.status().toString();
  Tensor x = randomInput({8, 3, 32, 32}, 5);
  auto want = reference::run(*g, {{"images", x}});
  ASSERT_TRUE(want.ok());
  std::vector<std::string> errors(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < 2; ++k) {
        auto got = reference::run(*g, {{"images", x}});
        if (!got.ok()) { errors[t] = got.status().toString(); return; }
        CompareResult c = compareTensors((*got)[0], (*want)[0], 0, 0);
        if (c.mismatches || !c.shape_match) { errors[t] = c.toString(); return; }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors[0], "");
  EXPECT_EQ(errors[1], "");
}
