// GPU out-of-memory behaviour (issue #9): with RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES the CUDA
// backend refuses allocations beyond a budget, as a full device would. A build or a run that
// hits the refusal must return kOutOfMemory naming the allocation, free everything it took
// (cudaMemGetInfo before/after), and leave a context usable once memory is back.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "backends/cpu/reference/interpreter.h"
#include "backends/cuda/cuda_ops.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

constexpr const char* kKnob = "RAMJET_FAULT_DEVICE_ALLOC_LIMIT_BYTES";
constexpr size_t kMiB = size_t{1} << 20;

class FaultsGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    ::unsetenv(kKnob);
    if (!cuda::deviceAvailable()) GTEST_SKIP() << "no CUDA device";
    ASSERT_TRUE(registerCudaBackend().ok());
  }
  void TearDown() override { ::unsetenv(kKnob); }
};

void setBudget(size_t bytes) { ::setenv(kKnob, std::to_string(bytes).c_str(), 1); }

size_t freeDeviceBytes() {
  cudaDeviceSynchronize();
  size_t free_b = 0, total = 0;
  EXPECT_EQ(cudaMemGetInfo(&free_b, &total), cudaSuccess);
  return free_b;
}

// Two 64-channel 3x3 convolutions on 1x64x128x128 (4 MiB activations): every buffer the build
// or the run takes is big enough that a leak shows in cudaMemGetInfo.
Graph convNet(bool dynamic_batch = false) {
  Graph g;
  auto add = [&](const std::string& name, TensorType t) {
    Value* v = g.addValue(name);
    v->type = std::move(t);
    return v;
  };
  Shape xs = Shape::fromDims({1, 64, 128, 128});
  if (dynamic_batch) xs.dims[0] = Dim::symbolic("N");
  Value* x = add("x", TensorType{DataType::kFloat32, xs});
  x->is_graph_input = true;
  g.inputs.push_back(x);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-0.05f, 0.05f);
  auto weight = [&](const std::string& name) {
    Tensor w(DataType::kFloat32, {64, 64, 3, 3});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = u(rng);
    Value* v = add(name, w.type());
    v->constant = std::make_shared<Tensor>(std::move(w));
    return v;
  };
  Attribute pads;
  pads.kind = Attribute::Kind::kInts;
  pads.ints = {1, 1, 1, 1};
  Value* c1 = add("c1", {});
  Value* r1 = add("r1", {});
  Value* y = add("y", {});
  g.addNode("Conv", "conv1", {x, weight("w1")}, {c1})->attrs["pads"] = pads;
  g.addNode("Relu", "relu1", {c1}, {r1});
  g.addNode("Conv", "conv2", {r1, weight("w2")}, {y})->attrs["pads"] = pads;
  y->is_graph_output = true;
  g.outputs.push_back(y);
  EXPECT_TRUE(g.verify().ok());
  EXPECT_TRUE(g.inferShapes().ok());
  return g;
}

Tensor input(int64_t batch = 1) {
  Tensor t(DataType::kFloat32, {batch, 64, 128, 128});
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

BuildOptions cudaOptions() {
  BuildOptions opt;
  opt.device = DeviceKind::kCuda;
  opt.timing_iterations = 2;
  return opt;
}

void expectOom(const Status& s, const std::string& what) {
  ASSERT_FALSE(s.ok()) << what;
  EXPECT_EQ(s.code(), StatusCode::kOutOfMemory) << what << ": " << s.toString();
  EXPECT_NE(s.message().find("cudaMalloc"), std::string::npos) << what << ": " << s.message();
  std::printf("[faults-gpu] %s: %s\n", what.c_str(), s.toString().c_str());
}

// One full build + load + run with no budget, so lazily loaded modules and library state do not
// count as leaks in the measurements that follow.
void warmUp(const Graph& g) {
  auto plan = build(g, cudaOptions());
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(e.ok()) << e.status().toString();
  auto ctx = (*e)->createContext();
  ASSERT_TRUE(ctx.ok());
  auto r = (*ctx)->infer({{"x", input()}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
}

}  // namespace

TEST_F(FaultsGpu, BuildUnderRefusedAllocationFailsCleanlyWithoutLeaks) {
  Graph g = convNet();
  warmUp(g);
  const size_t before = freeDeviceBytes();
  // 0: the first timing buffer is refused; 5 MiB: the input buffer fits, the output is refused
  // (the input must be freed); 9 MiB: input and output fit, later ones are refused.
  for (size_t budget : {size_t{0}, 5 * kMiB, 9 * kMiB}) {
    setBudget(budget);
    auto plan = build(g, cudaOptions());
    ::unsetenv(kKnob);
    if (budget == 0) {
      ASSERT_FALSE(plan.ok()) << "a build that times tactics needs device memory";
      expectOom(plan.status(), "build with a 0-byte budget");
    } else if (!plan.ok()) {
      expectOom(plan.status(), "build with a " + std::to_string(budget / kMiB) + " MiB budget");
    } else {
      std::printf("[faults-gpu] build with a %zu MiB budget succeeded\n", budget / kMiB);
    }
  }
  const size_t after = freeDeviceBytes();
  std::printf("[faults-gpu] build faults: device free before %zu, after %zu (diff %lld bytes)\n", before, after,
              static_cast<long long>(before) - static_cast<long long>(after));
  EXPECT_GE(after + 2 * kMiB, before) << "device memory leaked by failed builds";
  // The device is still usable: an unconstrained build works.
  EXPECT_TRUE(build(g, cudaOptions()).ok());
}

TEST_F(FaultsGpu, RunUnderRefusedAllocationFailsCleanlyAndRecovers) {
  Graph g = convNet();
  warmUp(g);
  auto plan = build(g, cudaOptions());
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  const Tensor x = input();
  auto want = reference::run(g, {{"x", x}});
  ASSERT_TRUE(want.ok());
  const size_t before = freeDeviceBytes();
  int load_fail = 0, run_fail = 0, ok = 0;
  for (int rep = 0; rep < 3; ++rep) {
    for (size_t budget : {size_t{0}, size_t{256} * 1024, 1 * kMiB, 5 * kMiB, 9 * kMiB, 13 * kMiB, 256 * kMiB}) {
      setBudget(budget);
      const std::string what = std::to_string(budget) + "-byte budget";
      auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
      if (!e.ok()) {
        ::unsetenv(kKnob);
        if (rep == 0) expectOom(e.status(), "load with a " + what);
        ++load_fail;
        continue;
      }
      auto ctx = (*e)->createContext();
      ASSERT_TRUE(ctx.ok()) << ctx.status().toString();
      auto r = (*ctx)->infer({{"x", x}});
      ::unsetenv(kKnob);
      if (!r.ok()) {
        if (rep == 0) expectOom(r.status(), "infer with a " + what);
        ++run_fail;
        // Memory is back: the same context runs and gets the right answer.
        r = (*ctx)->infer({{"x", x}});
        ASSERT_TRUE(r.ok()) << "context unusable after an out-of-memory run: " << r.status().toString();
      } else {
        ++ok;
      }
      CompareResult c = compareTensors((*r)[0], (*want)[0], 2e-3, 2e-3);
      EXPECT_EQ(c.mismatches, 0) << what << ": " << c.toString();
    }
  }
  std::printf("[faults-gpu] %d loads refused, %d runs refused (then recovered), %d ran\n", load_fail, run_fail, ok);
  EXPECT_GT(load_fail, 0);
  EXPECT_GT(run_fail, 0);
  EXPECT_GT(ok, 0);
  const size_t after = freeDeviceBytes();
  std::printf("[faults-gpu] run faults: device free before %zu, after %zu (diff %lld bytes)\n", before, after,
              static_cast<long long>(before) - static_cast<long long>(after));
  EXPECT_GE(after + 2 * kMiB, before) << "device memory leaked by failed loads/runs";
}

TEST_F(FaultsGpu, MalformedBudgetIsAnError) {
  Graph g = convNet();
  auto plan = build(g, cudaOptions());
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  for (const char* bad : {"lots", "-1", "12MB"}) {
    ::setenv(kKnob, bad, 1);
    auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
    ::unsetenv(kKnob);
    ASSERT_FALSE(e.ok()) << bad;
    EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument) << e.status().toString();
    EXPECT_NE(e.status().message().find(kKnob), std::string::npos) << e.status().message();
  }
}

TEST_F(FaultsGpu, RefusedGrowthForALargerShapeLeavesSmallerShapesRunning) {
  // Dynamic batch 1..4 on caller-owned device buffers (so only the context's own arena and
  // workspace can be refused): run batch 1, then batch 4 with nothing left to grow into, then
  // batch 1 again with memory back. The context must not run on memory it released for the
  // failed growth (it used to keep instances pointing at a freed arena/workspace).
  Graph g = convNet(/*dynamic_batch=*/true);
  BuildOptions opt = cudaOptions();
  opt.profiles = {{"x", {1, 64, 128, 128}, {1, 64, 128, 128}, {4, 64, 128, 128}}};
  auto plan = build(g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  auto eng = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(eng.ok()) << eng.status().toString();
  Engine& e = **eng;
  auto ctx = e.createContext().value();
  const Tensor x1 = input(1), x4 = input(4);
  auto want1 = reference::run(g, {{"x", x1}});
  ASSERT_TRUE(want1.ok()) << want1.status().toString();
  void* din = e.allocate(x4.nbytes()).value();
  void* dout = e.allocate(x4.nbytes()).value();
  ASSERT_TRUE(ctx->setTensorAddress("x", din).ok());
  ASSERT_TRUE(ctx->setTensorAddress("y", dout).ok());
  auto run = [&](const Tensor& x) -> Result<Tensor> {
    RJ_RETURN_IF_ERROR(ctx->setInputShape("x", x.dims()));
    RJ_RETURN_IF_ERROR(e.copyToDevice(din, x.raw(), x.nbytes()));
    RJ_RETURN_IF_ERROR(ctx->enqueue());
    Tensor y(DataType::kFloat32, x.dims());
    RJ_RETURN_IF_ERROR(e.copyToHost(y.raw(), dout, y.nbytes()));
    RJ_RETURN_IF_ERROR(e.synchronize());
    return y;
  };
  auto check1 = [&](const std::string& what) {
    auto y = run(x1);
    ASSERT_TRUE(y.ok()) << what << ": " << y.status().toString();
    CompareResult c = compareTensors(*y, (*want1)[0], 2e-3, 2e-3);
    EXPECT_TRUE(c.shape_match && c.mismatches == 0) << what << ": " << c.toString();
  };
  check1("batch 1");
  setBudget(0);  // nothing more may be allocated
  auto big = run(x4);
  ::unsetenv(kKnob);
  if (big.ok()) {
    std::printf("[faults-gpu] batch 4 needed no new device memory (arena and workspace sized at the profile max)\n");
  } else {
    expectOom(big.status(), "batch 4 with nothing left to grow into");
  }
  check1("batch 1 after the refused growth");
  check1("batch 1 again");
  auto y4 = run(x4);
  ASSERT_TRUE(y4.ok()) << "batch 4 once memory is back: " << y4.status().toString();
  e.release(din);
  e.release(dout);
}
