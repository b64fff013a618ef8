// CUDA engines against the CPU reference: small graphs and the tiny CNN in FP32 and FP16, CUDA
// graph replay, dynamic batch, plan compatibility checks; zoo models when RAMJET_ZOO_DIR is set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "backends/cpu/reference/interpreter.h"
#include "backends/cuda/cuda_ops.h"
#include "plan/plan_format.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

class EngineGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::deviceAvailable()) GTEST_SKIP() << "no CUDA device";
    ASSERT_TRUE(registerCudaBackend().ok());
  }
};

Tensor randomFloat(std::vector<int64_t> dims, uint32_t seed) {
  Tensor t(DataType::kFloat32, dims);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

Result<Graph> tinyCnn() { return importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx"); }

void expectClose(const std::vector<Tensor>& got, const std::vector<Tensor>& want, double atol, double rtol,
                 double min_cos, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CompareResult c = compareTensors(got[i], want[i], atol, rtol);
    std::printf("[gpu-compare] %s output %zu: %s\n", what.c_str(), i, c.toString().c_str());
    EXPECT_TRUE(c.shape_match && c.dtype_match) << what << ": " << c.toString();
    EXPECT_EQ(c.mismatches, 0) << what << ": " << c.toString();
    EXPECT_GE(c.cosine, min_cos) << what << ": " << c.toString();
  }
}

}  // namespace

TEST_F(EngineGpu, TinyCnnFp32AndFp16MatchReference) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  for (Precision prec : {Precision::kFP32, Precision::kFP16}) {
    BuildOptions opt;
    opt.device = DeviceKind::kCuda;
    opt.precision = prec;
    opt.profiles = {{"images", {1, 3, 32, 32}, {4, 3, 32, 32}, {8, 3, 32, 32}}};
    auto plan = build(*g, opt);
    ASSERT_TRUE(plan.ok()) << plan.status().toString();
    std::printf("%s", plan->report().toString().c_str());
    auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ASSERT_TRUE(engine.ok()) << engine.status().toString();
    auto ctx = (*engine)->createContext().value();
    for (int64_t b : {1, 4, 8, 4, 4, 1}) {  // repeats: capture then CUDA-graph replay
      Tensor x = randomFloat({b, 3, 32, 32}, static_cast<uint32_t>(b));
      auto got = ctx->infer({{"images", x}});
      ASSERT_TRUE(got.ok()) << got.status().toString();
      auto want = reference::run(*g, {{"images", x}});
      ASSERT_TRUE(want.ok());
      if (prec == Precision::kFP32) expectClose(*got, *want, 2e-3, 2e-3, 0.9999, "tiny fp32 b" + std::to_string(b));
      else expectClose(*got, *want, 2e-2, 5e-2, 0.999, "tiny fp16 b" + std::to_string(b));
    }
  }
}

TEST_F(EngineGpu, EnqueueOnCallerStreamWithDeviceBuffers) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  opt.profiles = {{"images", {2, 3, 32, 32}, {2, 3, 32, 32}, {2, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  std::string path = "/tmp/ramjet_gpu_" + std::to_string(::getpid()) + ".plan";
  ASSERT_TRUE(plan->save(path).ok());
  auto engine = Engine::load(path);
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  Engine& e = **engine;
  auto ctx = e.createContext().value();
  void* stream = e.createStream().value();
  Tensor x = randomFloat({2, 3, 32, 32}, 3);
  void* din = e.allocate(x.nbytes()).value();
  void* dout = e.allocate(2 * 10 * 4).value();
  ASSERT_TRUE(e.copyToDevice(din, x.raw(), x.nbytes(), stream).ok());
  ASSERT_TRUE(ctx->setTensorAddress("images", din).ok());
  ASSERT_TRUE(ctx->setTensorAddress("probs", dout).ok());
  auto want = reference::run(*g, {{"images", x}});
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(ctx->enqueue(stream).ok());
    Tensor y(DataType::kFloat32, {2, 10});
    ASSERT_TRUE(e.copyToHost(y.raw(), dout, y.nbytes(), stream).ok());
    ASSERT_TRUE(e.synchronize(stream).ok());
    expectClose({y}, *want, 2e-3, 2e-3, 0.9999, "enqueue run " + std::to_string(i));
  }
  e.release(din);
  e.release(dout);
  e.destroyStream(stream);

  // The same plan claiming another GPU: a clear error naming both.
  std::vector<uint8_t> bytes = plan->bytes();
  auto keep = std::make_shared<std::vector<uint8_t>>(bytes);
  auto pc = plan::decode(keep->data(), keep->size(), keep, "t");
  ASSERT_TRUE(pc.ok());
  pc->meta.device_info.name = "NVIDIA Imaginary 9000";
  pc->meta.device_info.cc_major = 7;
  pc->meta.device_info.cc_minor = 5;
  auto other = plan::encode(*pc);
  auto bad = Engine::loadFromMemory(other.data(), other.size());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("NVIDIA Imaginary 9000 (sm_75)"), std::string::npos) << bad.status().message();
  std::remove(path.c_str());
}

TEST_F(EngineGpu, UnsupportedNodesAreListedUnlessFallbackAllowed) {
  Graph g;
  Value* x = g.addValue("x");
  x->type = TensorType{DataType::kFloat32, Shape::fromDims({4, 5})};
  x->is_graph_input = true;
  g.inputs.push_back(x);
  Value* y = g.addValue("y");
  Value* z = g.addValue("z");
  // An op the CUDA backend has no kernel for (CumSum was one until more_ops.cc).
  g.addNode("MeanVarianceNormalization", "mvn", {x}, {y})->attrs["axes"] = Attribute::fromInts({0, 1});
  g.addNode("Relu", "r", {y}, {z});
  z->is_graph_output = true;
  g.outputs.push_back(z);
  if (!g.inferShapes().ok()) GTEST_SKIP() << "MeanVarianceNormalization not in the op registry";
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  auto p = build(g, opt);
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("MeanVarianceNormalization 'mvn'"), std::string::npos) << p.status().message();
  opt.allow_cpu_fallback = true;
  p = build(g, opt);
  ASSERT_TRUE(p.ok()) << p.status().toString();
  auto e = Engine::loadFromMemory(p->bytes().data(), p->bytes().size());
  ASSERT_TRUE(e.ok()) << e.status().toString();
  Tensor xin = randomFloat({4, 5}, 1);
  auto got = (*e)->createContext().value()->infer({{"x", xin}});
  ASSERT_TRUE(got.ok()) << got.status().toString();
  expectClose(*got, *reference::run(g, {{"x", xin}}), 1e-5, 1e-5, 0.99999, "fallback");
}

TEST_F(EngineGpu, ZooModelsMatchReference) {
  const char* dir = std::getenv("RAMJET_ZOO_DIR");
  if (!dir) GTEST_SKIP() << "set RAMJET_ZOO_DIR to a folder of zoo .onnx files";
  for (const auto& ent : std::filesystem::directory_iterator(dir)) {
    if (ent.path().extension() != ".onnx") continue;
    auto g = importOnnx(ent.path().string());
    ASSERT_TRUE(g.ok()) << g.status().toString();
    std::vector<int64_t> dims;
    for (const Dim& d : g->inputs[0]->type.shape.dims) dims.push_back(d.known() ? d.value : 1);
    Tensor x = randomFloat(dims, 5);
    auto want = reference::run(*g, {{g->inputs[0]->name, x}});
    ASSERT_TRUE(want.ok()) << want.status().toString();
    for (Precision prec : {Precision::kFP32, Precision::kFP16}) {
      BuildOptions opt;
      opt.device = DeviceKind::kCuda;
      opt.precision = prec;
      opt.profiles = {{g->inputs[0]->name, dims, dims, dims}};
      auto plan = build(*g, opt);
      ASSERT_TRUE(plan.ok()) << ent.path() << ": " << plan.status().toString();
      auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
      ASSERT_TRUE(e.ok()) << e.status().toString();
      auto got = (*e)->createContext().value()->infer({{g->inputs[0]->name, x}});
      ASSERT_TRUE(got.ok()) << ent.path() << ": " << got.status().toString();
      std::string what = ent.path().stem().string() + (prec == Precision::kFP16 ? " fp16" : " fp32");
      for (size_t i = 0; i < got->size(); ++i) {
        CompareResult c = compareTensors((*got)[i], (*want)[i], 1e-2, 1e-2);
        std::printf("[zoo] %s output %zu: %s\n", what.c_str(), i, c.toString().c_str());
        EXPECT_GT(c.cosine, prec == Precision::kFP16 ? 0.99 : 0.999) << what;
      }
    }
  }
}

// Issue #5: with a timing cache a rebuild skips the timing runs and gives the same plan bytes.
TEST_F(EngineGpu, TimingCacheRebuildIsDeterministicAndSkipsTiming) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  std::string cache = "/tmp/ramjet_gpu_timing_cache_" + std::to_string(::getpid()) + ".txt";
  std::filesystem::remove(cache);
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  opt.precision = Precision::kFP16;
  opt.timing_cache_path = cache;
  opt.profiles = {{"images", {4, 3, 32, 32}, {4, 3, 32, 32}, {4, 3, 32, 32}}};
  auto a = build(*g, opt);
  ASSERT_TRUE(a.ok()) << a.status().toString();
  auto b = build(*g, opt);
  ASSERT_TRUE(b.ok()) << b.status().toString();
  auto c = build(*g, opt);
  ASSERT_TRUE(c.ok()) << c.status().toString();
  std::printf("[timing-cache] cold build %.1f ms (%zu timed), cached %.1f ms / %.1f ms (%zu hits)\n",
              a->report().build_ms, a->report().tactics_timed, b->report().build_ms, c->report().build_ms,
              b->report().timing_cache_hits);
  EXPECT_GT(a->report().tactics_timed, 0u);
  EXPECT_EQ(b->report().tactics_timed, 0u);
  EXPECT_GT(b->report().timing_cache_hits, 0u);
  EXPECT_TRUE(b->bytes() == c->bytes()) << "two builds from the same timing cache differ";
  std::filesystem::remove(cache);
}

// profile() times each kernel replayed from a CUDA graph of its own. The kernels must land in
// that graph: a profile whose kernels ran on the context's stream instead timed empty graphs
// (~2 us each whatever the work; the ViT-B/16 batch-64 profile summed to 0.2 ms of an 8.6 ms run).
TEST_F(EngineGpu, ProfileTimesTheKernelsItLists) {
  auto g = tinyCnn();
  ASSERT_TRUE(g.ok());
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  opt.profiles = {{"images", {512, 3, 32, 32}, {512, 3, 32, 32}, {512, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().toString();
  Engine& e = **engine;
  auto ctx = e.createContext().value();
  void* stream = e.createStream().value();
  Tensor x = randomFloat({512, 3, 32, 32}, 5);
  void* din = e.allocate(x.nbytes()).value();
  void* dout = e.allocate(512 * 10 * 4).value();
  ASSERT_TRUE(e.copyToDevice(din, x.raw(), x.nbytes(), stream).ok());
  ASSERT_TRUE(ctx->setTensorAddress("images", din).ok());
  ASSERT_TRUE(ctx->setTensorAddress("probs", dout).ok());
  // Whole-engine GPU time: CUDA-graph replays between two events.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ctx->enqueue(stream).ok());
  ASSERT_TRUE(e.synchronize(stream).ok());
  cudaEvent_t a, b;
  ASSERT_EQ(cudaEventCreate(&a), cudaSuccess);
  ASSERT_EQ(cudaEventCreate(&b), cudaSuccess);
  constexpr int kRuns = 20;
  cudaEventRecord(a, static_cast<cudaStream_t>(stream));
  for (int i = 0; i < kRuns; ++i) ASSERT_TRUE(ctx->enqueue(stream).ok());
  cudaEventRecord(b, static_cast<cudaStream_t>(stream));
  ASSERT_EQ(cudaEventSynchronize(b), cudaSuccess);
  float total = 0;
  cudaEventElapsedTime(&total, a, b);
  const double run_ms = total / kRuns;
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  auto prof = ctx->profile(stream, 5);
  ASSERT_TRUE(prof.ok()) << prof.status().toString();
  double sum = 0;
  for (const auto& k : *prof) sum += k.median_ms;
  std::printf("[profile] tiny CNN batch 512: %zu kernels, sum of medians %.4f ms, graph replay %.4f ms\n",
              prof->size(), sum, run_ms);
  EXPECT_GT(sum, 0.5 * run_ms) << "the per-kernel times do not add up to the run they profile";
  EXPECT_LT(sum, 3.0 * run_ms + 0.05);
  // Profiling leaves the context usable and its outputs right.
  ASSERT_TRUE(ctx->enqueue(stream).ok());
  Tensor y(DataType::kFloat32, {512, 10});
  ASSERT_TRUE(e.copyToHost(y.raw(), dout, y.nbytes(), stream).ok());
  ASSERT_TRUE(e.synchronize(stream).ok());
  auto want = reference::run(*g, {{"images", x}});
  ASSERT_TRUE(want.ok());
  expectClose({y}, *want, 2e-3, 2e-3, 0.9999, "after profile");
  e.release(din);
  e.release(dout);
  e.destroyStream(stream);
}
