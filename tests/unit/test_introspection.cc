// Introspection on the CPU (issue #5 item 6): fused nodes carry their ONNX origins
// (fused_from) into the plan, ExecutionContext::profile times every kernel, and the explain
// sink says why a fusion did not fire.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "plan/plan_format.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

// x -> Conv 'c' -> Relu 'r' -> y; with `extra` the conv output also feeds a Sigmoid output.
Graph convRelu(bool extra) {
  Graph g;
  Value* x = g.addValue("x");
  x->type = TensorType{DataType::kFloat32, Shape::fromDims({1, 2, 5, 5})};
  x->is_graph_input = true;
  g.inputs.push_back(x);
  Value* w = g.addValue("w");
  Tensor wt(DataType::kFloat32, {3, 2, 3, 3});
  for (int64_t i = 0; i < wt.numel(); ++i) wt.data<float>()[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
  w->constant = std::make_shared<Tensor>(wt);
  w->type = wt.type();
  Value* c = g.addValue("c");
  Value* y = g.addValue("y");
  g.addNode("Conv", "c", {x, w}, {c})->attrs["pads"] = Attribute::fromInts({1, 1, 1, 1});
  g.addNode("Relu", "r", {c}, {y});
  y->is_graph_output = true;
  g.outputs.push_back(y);
  if (extra) {
    Value* z = g.addValue("z");
    g.addNode("Sigmoid", "s", {c}, {z});
    z->is_graph_output = true;
    g.outputs.push_back(z);
  }
  EXPECT_TRUE(g.inferShapes().ok());
  return g;
}

}  // namespace

TEST(Introspection, FusedNodeRecordsOriginsInPlanAndProfile) {
  Graph g = convRelu(false);
  BuildOptions opt;
  auto plan = build(g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  std::vector<uint8_t> bytes = plan->bytes();
  auto pc = plan::decode(bytes.data(), bytes.size(), nullptr, "test plan");
  ASSERT_TRUE(pc.ok()) << pc.status().toString();
  bool found = false;
  for (const auto& n : pc->graph->nodes()) {
    auto it = n->attrs.find("fused_from");
    if (it == n->attrs.end()) continue;
    found = true;
    std::vector<std::string> want = {"c", "r"};
    EXPECT_EQ(it->second.strings, want) << n->describe();
  }
  if (!found) GTEST_SKIP() << "no Conv+Relu fusion in this build (ConvActivationFusion off?)";

  auto e = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(e.ok()) << e.status().toString();
  auto ctx = (*e)->createContext().value();
  Tensor x(DataType::kFloat32, {1, 2, 5, 5});
  Tensor y(DataType::kFloat32, {1, 3, 5, 5});
  ASSERT_TRUE(ctx->setTensorAddress("x", x.raw()).ok());
  ASSERT_TRUE(ctx->setTensorAddress("y", y.raw()).ok());
  auto prof = ctx->profile(nullptr, 3);
  ASSERT_TRUE(prof.ok()) << prof.status().toString();
  ASSERT_FALSE(prof->empty());
  bool fused_seen = false;
  for (const auto& k : *prof) {
    EXPECT_GE(k.median_ms, 0.0);
    EXPECT_LE(k.min_ms, k.median_ms);
    EXPECT_EQ(k.placement, "device");
    if (!k.fused_from.empty()) fused_seen = true;
  }
  EXPECT_TRUE(fused_seen);
  EXPECT_FALSE(ctx->profile(nullptr, 0).ok());  // iterations must be >= 1
}

TEST(Introspection, ExplainSaysWhyConvActivationDidNotFire) {
  Graph g = convRelu(true);
  BuildOptions opt;
  std::vector<std::string> why;
  opt.explain = [&why](const std::string& pass, const std::string& msg) { why.push_back(pass + ": " + msg); };
  auto plan = build(g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().toString();
  bool hit = std::any_of(why.begin(), why.end(), [](const std::string& s) {
    return s.find("ConvActivationFusion") != std::string::npos && s.find("Conv 'c'") != std::string::npos &&
           s.find("2 consumers") != std::string::npos;
  });
  EXPECT_TRUE(hit) << "explain lines: " << why.size();
  // Without a sink nothing changes.
  BuildOptions quiet;
  EXPECT_TRUE(build(g, quiet).ok());
}
