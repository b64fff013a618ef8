// Dynamic batcher, KServe v2 request parsing, HTTP parsing and the server end to end (CPU).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "ramjet/engine.h"
#include "ramjet/graph.h"
#include "ramjet/serve.h"
#include "serve/http.h"

namespace ramjet::serve {
namespace {

using Clock = std::chrono::steady_clock;

// tiny_cnn (images [N,3,32,32] -> probs [N,10]) as a CPU plan with batch 1..16.
std::shared_ptr<Engine> tinyEngine(int64_t min_batch = 1) {
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  EXPECT_TRUE(g.ok()) << g.status().toString();
  BuildOptions opt;
  opt.device = DeviceKind::kCpu;
  opt.profiles = {{"images", {min_batch, 3, 32, 32}, {8, 3, 32, 32}, {16, 3, 32, 32}}};
  auto plan = build(*g, opt);
  EXPECT_TRUE(plan.ok()) << plan.status().toString();
  auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  EXPECT_TRUE(e.ok()) << e.status().toString();
  return std::shared_ptr<Engine>(std::move(*e));
}

Tensor randomImages(int64_t n, uint32_t seed) {
  Tensor t(DataType::kFloat32, {n, 3, 32, 32});
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

Request imagesRequest(const Tensor& t) {
  Request r;
  r.inputs["images"] = t;
  return r;
}

double maxAbsDiff(const Tensor& a, const Tensor& b) {
  if (a.dims() != b.dims()) return 1e30;
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, static_cast<double>(std::fabs(a.data<float>()[i] - b.data<float>()[i])));
  return m;
}

// Fires distinct requests from 16 threads at a 3-instance batcher and checks every response
// against the single-request result.
void checkConcurrentMatches() {
  auto engine = tinyEngine();
  // References: every request alone on its own context.
  const int kThreads = 16, kPerThread = 12;
  std::vector<Tensor> inputs, refs;
  auto ctx = engine->createContext();
  ASSERT_TRUE(ctx.ok());
  for (int i = 0; i < kThreads * kPerThread; ++i) {
    inputs.push_back(randomImages(1 + i % 3, 1000 + i));
    auto out = (*ctx)->infer({{"images", inputs.back()}});
    ASSERT_TRUE(out.ok()) << out.status().toString();
    refs.push_back((*out)[0]);
  }
  // Distinct inputs give clearly distinct outputs, so a mixed-up response cannot pass.
  EXPECT_GT(maxAbsDiff(refs[0], refs[3]), 1e-3);
  BatcherOptions bo;
  bo.max_batch = 16;
  bo.max_queue_delay_us = 2000;
  bo.eager_when_idle = false;  // this test needs requests to wait for a batch
  bo.instances = 3;
  auto b = Batcher::create(engine, bo);
  ASSERT_TRUE(b.ok()) << b.status().toString();
  std::vector<Response> got(inputs.size());
  std::vector<std::thread> th;
  for (int t = 0; t < kThreads; ++t)
    th.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        int i = t * kPerThread + k;
        got[i] = (*b)->infer(imagesRequest(inputs[i]));
      }
    });
  for (auto& x : th) x.join();
  double worst = 0;
  int64_t max_batch_seen = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].outcome, Outcome::kOk) << i << ": " << got[i].status.toString();
    ASSERT_EQ(got[i].outputs.size(), 1u);
    ASSERT_EQ(got[i].outputs[0].dims(), refs[i].dims()) << i;
    worst = std::max(worst, maxAbsDiff(got[i].outputs[0], refs[i]));
    max_batch_seen = std::max(max_batch_seen, got[i].batch_size);
  }
  EXPECT_LT(worst, 1e-5) << "max abs error batched vs single";
  BatcherStats s = (*b)->stats();
  EXPECT_EQ(s.requests_ok, got.size());
  EXPECT_EQ(s.requests_failed, 0u);
  EXPECT_LT(s.batches, got.size()) << "no requests were merged";
  EXPECT_GT(max_batch_seen, 3);
  EXPECT_LE(max_batch_seen, 16);
  std::printf("[batcher] %zu requests in %llu batches, max batch %lld, max abs error %.3g\n", got.size(),
              static_cast<unsigned long long>(s.batches), static_cast<long long>(max_batch_seen), worst);
}

TEST(Batcher, ConcurrentDistinctRequestsMatchSingleRequestResults) { checkConcurrentMatches(); }

// The GPU data path (requests copied straight into per-instance device buffers, outputs straight
// back per request; RAMJET_SERVE_IO=direct runs it on the CPU engine): the concurrency, padding
// and no-batching checks of the tests around it, on that path. The variable is restored even
// when an assertion returns early, so later tests see the default path.
void checkPadding();
void checkEveryRequestAlone();
TEST(Batcher, DirectDeviceIoPathMatchesSingleRequestResults) {
  struct Env {
    Env() { setenv("RAMJET_SERVE_IO", "direct", 1); }
    ~Env() { unsetenv("RAMJET_SERVE_IO"); }
  } env;
  checkConcurrentMatches();
  checkPadding();
  checkEveryRequestAlone();
  setenv("RAMJET_SERVE_IO", "Direct", 1);  // a typo is refused, not silently the default
  auto bad = Batcher::create(tinyEngine(), BatcherOptions{});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("RAMJET_SERVE_IO must be 'direct' or 'merge'"), std::string::npos)
      << bad.status().toString();
}

TEST(Batcher, InstancesSpreadOverSeveralEnginesOfOneModel) {
  // Stands in for one plan loaded on two GPUs: two engines, two instances each, one queue.
  auto e0 = tinyEngine(), e1 = tinyEngine();
  BatcherOptions bo;
  bo.instances = 2;
  bo.max_queue_delay_us = 500;
  auto b = Batcher::create(std::vector<std::shared_ptr<Engine>>{e0, e1}, bo);
  ASSERT_TRUE(b.ok()) << b.status().toString();
  auto ctx = e0->createContext();
  std::vector<std::thread> th;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t)
    th.emplace_back([&, t] {
      for (int k = 0; k < 5; ++k) {
        Tensor x = randomImages(1, 50 + t * 10 + k);
        Response r = (*b)->infer(imagesRequest(x));
        if (r.outcome == Outcome::kOk) ++ok;
      }
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_FALSE(Batcher::create(std::vector<std::shared_ptr<Engine>>{e0, nullptr}, bo).ok());
}

void checkEveryRequestAlone() {
  auto engine = tinyEngine();
  BatcherOptions bo;
  bo.dynamic_batching = false;
  bo.instances = 2;
  auto b = Batcher::create(engine, bo);
  ASSERT_TRUE(b.ok());
  std::vector<Tensor> inputs, refs;
  auto ctx = engine->createContext();
  for (int t = 0; t < 8; ++t) {
    inputs.push_back(randomImages(2, static_cast<uint32_t>(t)));
    auto out = (*ctx)->infer({{"images", inputs.back()}});
    ASSERT_TRUE(out.ok()) << out.status().toString();
    refs.push_back((*out)[0]);
  }
  std::vector<std::thread> th;
  std::atomic<int> ok{0};
  for (int t = 0; t < 8; ++t)
    th.emplace_back([&, t] {
      Response r = (*b)->infer(imagesRequest(inputs[t]));
      if (r.outcome == Outcome::kOk && r.batch_size == 2 && r.outputs[0].dims()[0] == 2 &&
          maxAbsDiff(r.outputs[0], refs[t]) < 1e-5)
        ++ok;
    });
  for (auto& x : th) x.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ((*b)->stats().batches, 8u);
}

TEST(Batcher, WithoutDynamicBatchingEveryRequestRunsAlone) { checkEveryRequestAlone(); }

void checkPadding() {
  auto engine = tinyEngine(/*min_batch=*/2);
  BatcherOptions bo;
  bo.preferred_batch_sizes = {4, 8};
  bo.max_queue_delay_us = 0;
  auto b = Batcher::create(engine, bo);
  ASSERT_TRUE(b.ok()) << b.status().toString();
  auto ctx = engine->createContext();
  // Rows -> the batch run: 3 -> 4 and 5 -> 8 (preferred sizes), 8 exact.
  for (auto [rows, run] : std::vector<std::pair<int64_t, int64_t>>{{3, 4}, {5, 8}, {8, 8}}) {
    Tensor x = randomImages(rows, 7 + static_cast<uint32_t>(rows));
    Response r = (*b)->infer(imagesRequest(x));
    ASSERT_EQ(r.outcome, Outcome::kOk) << r.status.toString();
    EXPECT_EQ(r.batch_size, run);
    ASSERT_EQ(r.outputs[0].dims(), (std::vector<int64_t>{rows, 10}));
    auto ref = (*ctx)->infer({{"images", x}});
    ASSERT_TRUE(ref.ok());
    EXPECT_LT(maxAbsDiff(r.outputs[0], (*ref)[0]), 1e-5) << rows << " rows";
  }
  // Batch 1 is below the profile minimum 2: padded, not refused.
  Response one = (*b)->infer(imagesRequest(randomImages(1, 8)));
  ASSERT_EQ(one.outcome, Outcome::kOk) << one.status.toString();
  EXPECT_EQ(one.outputs[0].dims()[0], 1);
  EXPECT_EQ(one.batch_size, 4);  // min 2, then the smallest preferred size
  EXPECT_EQ((*b)->stats().padded_rows, 1u + 3u + 0u + 3u);
}

TEST(Batcher, PadsToPreferredAndMinimumBatch) { checkPadding(); }

TEST(Batcher, InvalidRequestsAreRejectedWithAReason) {
  auto b = Batcher::create(tinyEngine(), BatcherOptions{});
  ASSERT_TRUE(b.ok());
  auto expectInvalid = [&](Request rq, const std::string& needle) {
    Response r = (*b)->infer(std::move(rq));
    EXPECT_EQ(r.outcome, Outcome::kInvalid);
    EXPECT_NE(r.status.message().find(needle), std::string::npos) << r.status.message();
  };
  expectInvalid(Request{}, "missing input 'images'");
  Request extra = imagesRequest(randomImages(1, 1));
  extra.inputs["other"] = randomImages(1, 1);
  expectInvalid(std::move(extra), "no input 'other'");
  expectInvalid(imagesRequest(Tensor(DataType::kInt32, {1, 3, 32, 32})), "must be FP32, got INT32");
  expectInvalid(imagesRequest(Tensor(DataType::kFloat32, {1, 3, 31, 32})), "dim 2 must be 32");
  expectInvalid(imagesRequest(Tensor(DataType::kFloat32, {1, 3, 32})), "rank 4");
  expectInvalid(imagesRequest(randomImages(17, 1)), "max_batch 16");
  expectInvalid(imagesRequest(Tensor(DataType::kFloat32, {0, 3, 32, 32})), "batch 0");
  // Options the engine cannot honour fail at creation.
  BatcherOptions too_big;
  too_big.max_batch = 64;
  auto bad = Batcher::create(tinyEngine(), too_big);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("profile maximum batch 16"), std::string::npos) << bad.status().message();
  BatcherOptions bad_pref;
  bad_pref.preferred_batch_sizes = {32};
  EXPECT_FALSE(Batcher::create(tinyEngine(), bad_pref).ok());
}

TEST(Batcher, QueueTimeoutFiresWhileWaitingForABatch) {
  BatcherOptions bo;
  bo.max_queue_delay_us = 2'000'000;  // the batch would wait 2 s to fill
  bo.eager_when_idle = false;  // this test needs requests to wait for a batch
  auto b = Batcher::create(tinyEngine(), bo);
  ASSERT_TRUE(b.ok());
  Request rq = imagesRequest(randomImages(1, 1));
  rq.timeout_us = 20'000;
  auto t0 = Clock::now();
  Response r = (*b)->infer(std::move(rq));
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  EXPECT_EQ(r.outcome, Outcome::kTimedOut) << r.status.toString();
  EXPECT_NE(r.status.message().find("timed out"), std::string::npos);
  EXPECT_LT(ms, 1000) << "the timeout should fire at ~20 ms, not when the batch runs";
  EXPECT_EQ((*b)->stats().failures[Outcome::kTimedOut], 1u);
}

TEST(Batcher, IdleInstancesDispatchAtOnceButBatchUnderLoad) {
  // eager_when_idle (the default): a lone request does not sit out max_queue_delay_us when
  // nothing is running; with the flag off it does.
  for (bool eager : {true, false}) {
    BatcherOptions bo;
    bo.max_queue_delay_us = 300'000;
    bo.eager_when_idle = eager;
    auto b = Batcher::create(tinyEngine(), bo);
    ASSERT_TRUE(b.ok());
    auto t0 = Clock::now();
    Response r = (*b)->infer(imagesRequest(randomImages(1, 1)));
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    ASSERT_EQ(r.outcome, Outcome::kOk) << r.status.toString();
    if (eager)
      EXPECT_LT(ms, 250) << "an idle batcher should run a lone request at once";
    else
      EXPECT_GE(ms, 290) << "without eager dispatch the request waits for the batch delay";
  }
}

TEST(Batcher, CancelledRequestIsDropped) {
  BatcherOptions bo;
  bo.max_queue_delay_us = 2'000'000;
  bo.eager_when_idle = false;  // this test needs requests to wait for a batch
  auto b = Batcher::create(tinyEngine(), bo);
  ASSERT_TRUE(b.ok());
  Request rq = imagesRequest(randomImages(1, 1));
  rq.cancelled = std::make_shared<std::atomic<bool>>(false);
  auto flag = rq.cancelled;
  std::thread canceller([flag] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    *flag = true;
  });
  Response r = (*b)->infer(std::move(rq));
  canceller.join();
  EXPECT_EQ(r.outcome, Outcome::kCancelled) << r.status.toString();
}

TEST(Batcher, FullQueueRejectsAndShutdownDrainsQueuedRequests) {
  BatcherOptions bo;
  bo.max_queue_size = 2;
  bo.max_queue_delay_us = 5'000'000;  // queued requests wait for the batch until shutdown
  bo.eager_when_idle = false;  // this test needs requests to wait for a batch
  auto b = Batcher::create(tinyEngine(), bo);
  ASSERT_TRUE(b.ok());
  std::atomic<int> ok{0}, calls{0};
  for (int i = 0; i < 2; ++i)
    (*b)->submit(imagesRequest(randomImages(1, i)), [&](Response r) {
      ++calls;
      if (r.outcome == Outcome::kOk && r.outputs.size() == 1) ++ok;
    });
  Response full = (*b)->infer(imagesRequest(randomImages(1, 9)));
  EXPECT_EQ(full.outcome, Outcome::kQueueFull);
  EXPECT_NE(full.status.message().find("queue is full"), std::string::npos) << full.status.message();
  auto t0 = Clock::now();
  (*b)->shutdown();  // must not wait out the 5 s delay
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 2.0);
  EXPECT_EQ(calls.load(), 2);
  EXPECT_EQ(ok.load(), 2);
  Response late = (*b)->infer(imagesRequest(randomImages(1, 3)));
  EXPECT_EQ(late.outcome, Outcome::kShuttingDown);
  (*b)->shutdown();  // idempotent
}

TEST(Batcher, ShutdownUnderLoadAnswersEveryRequestExactlyOnce) {
  BatcherOptions bo;
  bo.max_queue_delay_us = 500;
  bo.instances = 2;
  auto b = Batcher::create(tinyEngine(), bo);
  ASSERT_TRUE(b.ok());
  std::atomic<int> calls{0}, ok{0}, refused{0};
  std::vector<std::thread> th;
  for (int t = 0; t < 8; ++t)
    th.emplace_back([&, t] {
      for (int k = 0; k < 20; ++k)
        (*b)->submit(imagesRequest(randomImages(1, t * 100 + k)), [&](Response r) {
          ++calls;
          if (r.outcome == Outcome::kOk) ++ok;
          if (r.outcome == Outcome::kShuttingDown) ++refused;
        });
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  (*b)->shutdown();
  for (auto& x : th) x.join();
  EXPECT_EQ(calls.load(), 160);
  EXPECT_EQ(ok.load() + refused.load(), 160);
}

TEST(Batcher, AutoBucketsStepAboveSixteen) {
  EXPECT_EQ(autoBatchBuckets(64), (std::vector<int64_t>{1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64}));
  EXPECT_EQ(autoBatchBuckets(8), (std::vector<int64_t>{1, 2, 4, 8}));
  EXPECT_EQ(autoBatchBuckets(20), (std::vector<int64_t>{1, 2, 4, 8, 16, 20}));
  EXPECT_EQ(autoBatchBuckets(256), (std::vector<int64_t>{1, 2, 4, 8, 16, 48, 80, 112, 144, 176, 208, 240, 256}));
  EXPECT_EQ(autoBatchBuckets(64, 3), (std::vector<int64_t>{4, 8, 16, 24, 32, 40, 48, 56, 64}));
  EXPECT_EQ(autoBatchBuckets(1), (std::vector<int64_t>{1}));
}

// Request buffers from the batcher's staging pool: the right shape, recycled once released (the
// same bytes come back for the next request of that size), and a request made of them runs.
TEST(Batcher, HostTensorsAreRecycledAndRun) {
  auto b = Batcher::create(tinyEngine(), BatcherOptions{});
  ASSERT_TRUE(b.ok()) << b.status().toString();
  const void* first = nullptr;
  {
    Tensor t = (*b)->hostTensor(DataType::kFloat32, {1, 3, 32, 32});
    EXPECT_EQ(t.dims(), (std::vector<int64_t>{1, 3, 32, 32}));
    first = t.raw();
  }
  Tensor again = (*b)->hostTensor(DataType::kFloat32, {1, 3, 32, 32});
  EXPECT_EQ(again.raw(), first);  // the released buffer came back
  Tensor other = (*b)->hostTensor(DataType::kFloat32, {1, 3, 32, 32});
  EXPECT_NE(other.raw(), again.raw());  // both alive: distinct buffers
  EXPECT_EQ((*b)->hostTensor(DataType::kFloat32, {0, 3, 32, 32}).numel(), 0);
  Tensor img = randomImages(1, 5);
  std::memcpy(again.raw(), img.raw(), img.nbytes());
  Response want = (*b)->infer(imagesRequest(img));
  Response got = (*b)->infer(imagesRequest(again));
  ASSERT_EQ(got.outcome, Outcome::kOk) << got.status.toString();
  ASSERT_EQ(want.outcome, Outcome::kOk);
  EXPECT_EQ(compareTensors(got.outputs[0], want.outputs[0], 0, 0).max_abs, 0.0);
  (*b)->shutdown();
}

// ---- KServe v2 request bodies ----

TEST(KServe, ParsesJsonFlatNestedAndBinaryInputs) {
  auto m = parseInferRequestJson(
      R"({"id":"r1","inputs":[{"name":"a","datatype":"FP32","shape":[2,2],"data":[[1,2],[3,4.5]]},)"
      R"({"name":"b","datatype":"INT64","shape":[3],"data":[1,-2,3]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]})",
      -1);
  ASSERT_TRUE(m.ok()) << m.status().toString();
  EXPECT_EQ(m->id, "r1");
  ASSERT_EQ(m->inputs.size(), 2u);
  EXPECT_EQ(m->inputs[0].tensor.data<float>()[3], 4.5f);
  EXPECT_EQ(m->inputs[1].tensor.data<int64_t>()[1], -2);
  ASSERT_EQ(m->outputs.size(), 1u);
  EXPECT_TRUE(m->outputs[0].binary);
  // Binary extension: JSON header then raw little-endian bytes.
  std::string hdr = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,2],"parameters":{"binary_data_size":8}}]})";
  float vals[2] = {1.5f, -3.f};
  std::string body = hdr + std::string(reinterpret_cast<const char*>(vals), 8);
  auto bm = parseInferRequestJson(body, static_cast<int64_t>(hdr.size()));
  ASSERT_TRUE(bm.ok()) << bm.status().toString();
  EXPECT_EQ(bm->inputs[0].tensor.data<float>()[1], -3.f);
  // With an allocator, binary inputs land in the tensors it makes.
  std::vector<const void*> made;
  const TensorAllocator alloc = [&](DataType dt, std::vector<int64_t> dims) {
    Tensor t = Tensor::uninitialized(dt, std::move(dims));
    made.push_back(t.raw());
    return t;
  };
  auto am = parseInferRequestJson(body, static_cast<int64_t>(hdr.size()), int64_t{1} << 30, &alloc);
  ASSERT_TRUE(am.ok()) << am.status().toString();
  ASSERT_EQ(made.size(), 1u);
  EXPECT_EQ(am->inputs[0].tensor.raw(), made[0]);
  EXPECT_EQ(am->inputs[0].tensor.data<float>()[0], 1.5f);
}

TEST(KServe, MalformedRequestsNameTheProblem) {
  auto expectErr = [](const std::string& body, int64_t jl, const std::string& needle) {
    auto m = parseInferRequestJson(body, jl);
    ASSERT_FALSE(m.ok()) << body;
    EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(m.status().message().find(needle), std::string::npos) << m.status().message();
  };
  expectErr("{not json", -1, "not valid JSON");
  expectErr("[]", -1, "JSON object");
  expectErr(R"({"inputs":3})", -1, "'inputs' must be an array");
  expectErr(R"({"inputs":[{"datatype":"FP32","shape":[1],"data":[1]}]})", -1, "'name'");
  expectErr(R"({"inputs":[{"name":"x","datatype":"FP99","shape":[1],"data":[1]}]})", -1, "FP99");
  expectErr(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[-1],"data":[1]}]})", -1, "non-negative");
  expectErr(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"data":[1]}]})", -1, "1 elements, the shape needs 2");
  expectErr(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":["a"]}]})", -1, "not a valid value");
  expectErr(R"({"inputs":[{"name":"x","datatype":"UINT8","shape":[1],"data":[300]}]})", -1, "not a valid value");
  expectErr(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1000000000,1000000000],"data":[1]}]})", -1,
            "more than");
  expectErr(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[100000],"data":[1]}]})", -1, "needs more data");
  expectErr(R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1]},{"name":"x","datatype":"FP32","shape":[1],"data":[1]}]})",
            -1, "twice");
  expectErr(std::string(100, '['), -1, "nests deeper");
  std::string hdr = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]})";
  expectErr(hdr + "1234", static_cast<int64_t>(hdr.size()), "needs more data");
  expectErr(hdr + "12345678xx", static_cast<int64_t>(hdr.size()), "no input's binary_data_size");
  expectErr(hdr, -1, "no Inference-Header-Content-Length");
  expectErr(hdr, 100000, "exceeds the body size");
  std::string wrong = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":7}}]})";
  expectErr(wrong + "1234567", static_cast<int64_t>(wrong.size()), "needs more data");
}

TEST(KServe, EncodesJsonAndBinaryResponses) {
  Tensor t = Tensor::fromVector<float>({1.f, 2.5f}, {1, 2});
  int64_t jl = 0;
  std::string js = encodeInferResponse("m", "1", "id7", {{"y", &t, false}}, &jl);
  EXPECT_EQ(jl, -1);
  EXPECT_NE(js.find(R"("data":[1.0,2.5])"), std::string::npos) << js;
  EXPECT_NE(js.find(R"("id":"id7")"), std::string::npos);
  std::string bin = encodeInferResponse("m", "1", "", {{"y", &t, true}}, &jl);
  ASSERT_GT(jl, 0);
  ASSERT_EQ(bin.size(), static_cast<size_t>(jl) + 8);
  float back[2];
  std::memcpy(back, bin.data() + jl, 8);
  EXPECT_EQ(back[1], 2.5f);
}

TEST(KServe, ModelConfigJsonIsChecked) {
  BatcherOptions o;
  ASSERT_TRUE(applyModelConfigJson(R"({"max_batch":8,"instances":2,"preferred_batch_sizes":[4,8]})", "cfg", &o).ok());
  EXPECT_EQ(o.max_batch, 8);
  EXPECT_EQ(o.instances, 2);
  Status s = applyModelConfigJson(R"({"max_bach":8})", "cfg.json", &o);
  EXPECT_NE(s.message().find("unknown key 'max_bach'"), std::string::npos) << s.message();
  std::vector<int> devices;
  ASSERT_TRUE(applyModelConfigJson(R"({"devices":[0,1]})", "cfg", &o, &devices).ok());
  EXPECT_EQ(devices, (std::vector<int>{0, 1}));
  EXPECT_FALSE(applyModelConfigJson(R"({"devices":[]})", "cfg", &o, &devices).ok());
  s = applyModelConfigJson(R"({"instances":0})", "cfg.json", &o);
  EXPECT_NE(s.message().find("'instances' must be an integer in 1..256"), std::string::npos) << s.message();
  // The batching-policy switches default on and are read as booleans only.
  BatcherOptions p;
  EXPECT_TRUE(p.auto_buckets && p.warmup && p.eager_when_idle);
  ASSERT_TRUE(applyModelConfigJson(R"({"auto_buckets":false,"warmup":false,"eager_when_idle":false})", "cfg", &p).ok());
  EXPECT_FALSE(p.auto_buckets || p.warmup || p.eager_when_idle);
  s = applyModelConfigJson(R"({"warmup":1})", "cfg.json", &p);
  EXPECT_NE(s.message().find("'warmup' must be a boolean"), std::string::npos) << s.message();
}

// ---- HTTP ----

TEST(Http, ParsesRequestsIncrementallyAndRejectsMalformedOnes) {
  HttpRequest rq;
  std::string full = "POST /v2/models/m/infer?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbodyGET";
  EXPECT_EQ(parseHttpRequest(full.substr(0, 20), 65536, 1 << 20, &rq).state, ParseState::kNeedMore);
  EXPECT_EQ(parseHttpRequest(full.substr(0, full.size() - 6), 65536, 1 << 20, &rq).state, ParseState::kNeedMore);
  ParseResult r = parseHttpRequest(full, 65536, 1 << 20, &rq);
  ASSERT_EQ(r.state, ParseState::kDone);
  EXPECT_EQ(r.consumed, full.size() - 3);
  EXPECT_EQ(rq.path, "/v2/models/m/infer");
  EXPECT_EQ(rq.query, "x=1");
  EXPECT_EQ(rq.body, "body");
  EXPECT_EQ(rq.bodyView(), "body");
  EXPECT_TRUE(rq.keep_alive);
  // The server's in-place form: the body as a view into the buffer, nothing copied.
  HttpRequest view;
  ParseResult rv = parseHttpRequest(full, 65536, 1 << 20, &view, /*copy_body=*/false);
  ASSERT_EQ(rv.state, ParseState::kDone);
  EXPECT_TRUE(view.body.empty());
  EXPECT_EQ(view.bodyView(), "body");
  EXPECT_EQ(view.bodyView().data(), full.data() + full.find("bodyGET"));
  // Headers complete, body pending: the whole request's size is known.
  EXPECT_EQ(parseHttpRequest(full.substr(0, full.size() - 6), 65536, 1 << 20, &view).total, full.size() - 3);
  auto status = [](const std::string& s) {
    HttpRequest q;
    ParseResult p = parseHttpRequest(s, 1024, 100, &q);
    return p.state == ParseState::kError ? p.error_status : 0;
  };
  EXPECT_EQ(status("GARBAGE\r\n\r\n"), 400);
  EXPECT_EQ(status("GET x HTTP/1.1\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/2.0\r\n\r\n"), 505);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400);
  EXPECT_EQ(status("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n"), 413);
  EXPECT_EQ(status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), 411);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nbad header\r\n\r\n"), 400);
  EXPECT_EQ(status("GET / HTTP/1.1\r\nX: " + std::string(2000, 'a')), 431);
  HttpRequest q10;
  ASSERT_EQ(parseHttpRequest("GET / HTTP/1.0\r\n\r\n", 1024, 0, &q10).state, ParseState::kDone);
  EXPECT_FALSE(q10.keep_alive);
}

// A raw HTTP exchange with the in-process server on loopback.
std::string httpExchange(int port, const std::string& req) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return "";
  }
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

TEST(Server, ServesHealthMetadataInferAndErrorsOverHttp) {
  auto engine = tinyEngine();
  std::string dir = ::testing::TempDir() + "/ramjet_serve_repo_" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  BuildOptions opt;
  opt.profiles = {{"images", {1, 3, 32, 32}, {4, 3, 32, 32}, {8, 3, 32, 32}}};
  auto plan = build(*g, opt);
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(plan->save(dir + "/tiny.plan").ok());
  auto models = scanModelRepository(dir, BatcherOptions{});
  ASSERT_TRUE(models.ok()) << models.status().toString();
  ServerOptions so;
  so.http_port = 0;
  so.http_threads = 4;
  auto srv = InferenceServer::start(*models, so);
  ASSERT_TRUE(srv.ok()) << srv.status().toString();
  int port = (*srv)->httpPort();
  auto get = [&](const std::string& path) {
    return httpExchange(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  };
  EXPECT_NE(get("/v2/health/ready").find("200 OK"), std::string::npos);
  EXPECT_NE(get("/v2/models/tiny").find(R"("shape":[-1,3,32,32])"), std::string::npos);
  EXPECT_NE(get("/v2/models/nope").find("404"), std::string::npos);
  EXPECT_NE(get("/nowhere").find("404"), std::string::npos);
  std::string body = R"({"inputs":[{"name":"images","datatype":"FP32","shape":[1,3,32,32],"data":[)";
  for (int i = 0; i < 3 * 32 * 32; ++i) body += (i ? ",0.5" : "0.5");
  body += "]}]}";
  auto post = [&](const std::string& b) {
    return httpExchange(port, "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: " +
                              std::to_string(b.size()) + "\r\n\r\n" + b);
  };
  std::string ok = post(body);
  EXPECT_NE(ok.find("200 OK"), std::string::npos) << ok.substr(0, 300);
  EXPECT_NE(ok.find(R"("shape":[1,10])"), std::string::npos) << ok.substr(0, 300);
  std::string bad = post(R"({"inputs":[{"name":"images","datatype":"FP32","shape":[1,3,32,31],"data":[1]}]})");
  EXPECT_NE(bad.find("400 Bad Request"), std::string::npos) << bad;
  EXPECT_NE(post("{").find("400"), std::string::npos);
  std::string metrics = get("/metrics");
  EXPECT_NE(metrics.find(R"(ramjet_requests_total{model="tiny",outcome="ok"} 1)"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("ramjet_batch_size_bucket"), std::string::npos);
  (*srv)->shutdown();
  EXPECT_EQ(get("/v2/health/live"), "") << "closed after shutdown";
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace ramjet::serve
