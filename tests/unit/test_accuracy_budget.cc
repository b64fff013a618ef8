// INT8 accuracy budget (issue #6 item 6) on the CPU backend: the built-in losses, the search
// keeping exactly the layer that breaks accuracy in FP16, an unreachable budget, bad options.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>

#include "graph_builder.h"
#include "precision/accuracy_budget.h"
#include "precision/calibrator.h"
#include "ramjet/engine.h"

namespace {

using namespace ramjet;
using rjtest::Builder;

Tensor randomTensor(std::vector<int64_t> dims, float lo, float hi, uint32_t seed) {
  return rjtest::uniformTensor(std::move(dims), lo, hi, seed);
}

TEST(AccuracyLoss, BuiltInMetrics) {
  // Two rows of 3 classes: the candidate agrees on row 0's argmax only.
  Tensor ref = Tensor::fromVector<float>({0.1f, 0.7f, 0.2f, 0.5f, 0.3f, 0.2f}, {2, 3});
  Tensor got = Tensor::fromVector<float>({0.1f, 0.8f, 0.1f, 0.2f, 0.6f, 0.2f}, {2, 3});
  auto top1 = precision::accuracyLoss("top1", {{got}}, {{ref}});
  ASSERT_TRUE(top1.ok()) << top1.status().message();
  EXPECT_DOUBLE_EQ(*top1, 0.5);
  auto autom = precision::accuracyLoss("auto", {{got}}, {{ref}});  // [N, C]: top1
  ASSERT_TRUE(autom.ok());
  EXPECT_DOUBLE_EQ(*autom, 0.5);
  EXPECT_DOUBLE_EQ(*precision::accuracyLoss("top1", {{ref}}, {{ref}}), 0.0);
  EXPECT_NEAR(*precision::accuracyLoss("cosine", {{ref}}, {{ref}}), 0.0, 1e-12);
  // cosine of (1, 0) vs (1, 1): 1 - 1/sqrt(2); rel-l2: |(0, -1)| / |(1, 1)| = 1/sqrt(2).
  Tensor a = Tensor::fromVector<float>({1.f, 0.f}, {2}), b = Tensor::fromVector<float>({1.f, 1.f}, {2});
  EXPECT_NEAR(*precision::accuracyLoss("cosine", {{a}}, {{b}}), 1.0 - 1.0 / std::sqrt(2.0), 1e-9);
  EXPECT_NEAR(*precision::accuracyLoss("rel-l2", {{a}}, {{b}}), 1.0 / std::sqrt(2.0), 1e-9);
  Tensor nan = Tensor::fromVector<float>({NAN, 0.f}, {2});
  EXPECT_DOUBLE_EQ(*precision::accuracyLoss("cosine", {{nan}}, {{b}}), 1.0);
  // Errors name the problem.
  auto bad = precision::accuracyLoss("f1", {{a}}, {{b}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown accuracy metric 'f1'"), std::string::npos);
  auto shape = precision::accuracyLoss("cosine", {{a}}, {{ref}});
  ASSERT_FALSE(shape.ok());
  EXPECT_NE(shape.status().message().find("reference is"), std::string::npos) << shape.status().message();
  auto vec = precision::accuracyLoss("top1", {{a}}, {{b}});
  ASSERT_FALSE(vec.ok());
  EXPECT_NE(vec.status().message().find("[N, classes]"), std::string::npos);
}

// x [1, 8, 8, 8] -> conv_a -> Relu -> conv_b -> Relu -> conv_c -> y. conv_b's input gets an
// activation range 100x too small, so INT8 clips it to nothing: conv_b is the one layer whose
// INT8 breaks accuracy, and the budget must keep exactly it in FP16.
struct ChainModel {
  std::shared_ptr<Graph> g;
  std::string conv_b, relu_a_out = "ra";
};

ChainModel chainModel() {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {1, 8, 8, 8});
  std::map<std::string, Attribute> conv{{"pads", Attribute::fromInts({1, 1, 1, 1})},
                                        {"kernel_shape", Attribute::fromInts({3, 3})}};
  b.node("Conv", {x, b.constant("wa", randomTensor({8, 8, 3, 3}, -0.3f, 0.3f, 1))}, {"a"}, conv);
  b.node("Relu", {b.value("a")}, {"ra"});
  Node* nb = b.node("Conv", {b.value("ra"), b.constant("wb", randomTensor({8, 8, 3, 3}, -0.3f, 0.3f, 2))}, {"bb"}, conv);
  b.node("Relu", {b.value("bb")}, {"rb"});
  b.node("Conv", {b.value("rb"), b.constant("wc", randomTensor({8, 8, 3, 3}, -0.3f, 0.3f, 3))}, {"y"}, conv);
  b.output("y");
  EXPECT_TRUE(b.g.inferShapes().ok());
  return {b.owned, nb->name};
}

BuildOptions budgetOptions(precision::Calibrator* calib, double budget) {
  BuildOptions opt;
  opt.device = DeviceKind::kCpu;
  opt.precision = Precision::kINT8;
  opt.calibrator = calib;
  opt.accuracy_budget = budget;
  opt.accuracy_metric = "cosine";
  opt.accuracy_samples = 4;
  return opt;
}

TEST(AccuracyBudget, KeepsTheLayerThatBreaksAccuracyInFp16) {
  ChainModel m = chainModel();
  auto calib = precision::makeRandomCalibrator(*m.g, 8, 7);
  BuildOptions opt = budgetOptions(calib.get(), 0.002);
  opt.activation_amax[m.relu_a_out] = 0.01f;  // a broken range for conv_b's input

  auto r = precision::searchAccuracyBudget(*m.g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->int8_layers, 3u) << r->toString();
  EXPECT_GT(r->loss_int8, opt.accuracy_budget) << r->toString();
  ASSERT_EQ(r->kept_fp16, std::vector<std::string>{m.conv_b}) << r->toString();
  EXPECT_TRUE(r->met);
  EXPECT_LE(r->loss_final, opt.accuracy_budget);
  EXPECT_LT(r->loss_fp16, r->loss_final + 1e-12);
  ASSERT_EQ(r->layers.size(), 3u);
  EXPECT_EQ(r->layers[0].layer, m.conv_b);  // most sensitive first
  EXPECT_GT(r->layers[0].gain, r->layers[1].gain);
  EXPECT_EQ(r->samples, 4u);

  // build() applies it: conv_b runs FP16, the other two INT8, and the report says why.
  auto plan = build(*m.g, opt);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  const auto& rep = plan->report();
  EXPECT_EQ(rep.int8_layers.size(), 2u);
  EXPECT_EQ(std::count(rep.int8_layers.begin(), rep.int8_layers.end(), m.conv_b), 0);
  EXPECT_NE(rep.accuracy_budget.find(m.conv_b), std::string::npos) << rep.accuracy_budget;
  EXPECT_NE(rep.accuracy_budget.find("met"), std::string::npos) << rep.accuracy_budget;

  // The same plan's accuracy on fresh data (not the calibration batches) stays close to the
  // budget's measure, and far better than all-INT8.
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size()).value();
  auto ctx = engine->createContext().value();
  BuildOptions all = opt;
  all.accuracy_budget = 0;
  auto plan_all = build(*m.g, all);
  ASSERT_TRUE(plan_all.ok());
  auto engine_all = Engine::loadFromMemory(plan_all->bytes().data(), plan_all->bytes().size()).value();
  auto ctx_all = engine_all->createContext().value();
  std::vector<std::vector<Tensor>> got, got_all, ref;
  for (uint32_t s = 100; s < 104; ++s) {
    std::map<std::string, Tensor> f{{"x", randomTensor({1, 8, 8, 8}, -1, 1, s)}};
    got.push_back(ctx->infer(f).value());
    got_all.push_back(ctx_all->infer(f).value());
    ref.push_back(reference::run(*m.g, f).value());
  }
  double held = precision::accuracyLoss("cosine", got, ref).value();
  double held_all = precision::accuracyLoss("cosine", got_all, ref).value();
  EXPECT_LT(held, 2 * opt.accuracy_budget);
  EXPECT_GT(held_all, 10 * held);
}

TEST(AccuracyBudget, DecisionIsCachedBesideTheCalibrationCache) {
  ChainModel m = chainModel();
  auto calib = precision::makeRandomCalibrator(*m.g, 8, 7);
  BuildOptions opt = budgetOptions(calib.get(), 0.002);
  opt.activation_amax[m.relu_a_out] = 0.01f;
  opt.calibration_cache_path = ::testing::TempDir() + "/budget_test.calib";
  std::remove(opt.calibration_cache_path.c_str());
  std::remove((opt.calibration_cache_path + ".budget.json").c_str());
  auto first = precision::searchAccuracyBudget(*m.g, opt);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_GT(first->builds, 1u);
  EXPECT_TRUE(first->from_cache.empty());
  auto again = precision::searchAccuracyBudget(*m.g, opt);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->builds, 0u);
  EXPECT_EQ(again->from_cache, opt.calibration_cache_path + ".budget.json");
  EXPECT_EQ(again->kept_fp16, first->kept_fp16);
  EXPECT_EQ(again->loss_final, first->loss_final);
  EXPECT_NE(again->toString().find("reused"), std::string::npos) << again->toString();
  // The cached decision needs no calibration data, only the calibration cache.
  BuildOptions cache_only = opt;
  cache_only.calibrator = nullptr;
  auto from_file = precision::searchAccuracyBudget(*m.g, cache_only);
  ASSERT_TRUE(from_file.ok()) << from_file.status().message();
  EXPECT_EQ(from_file->kept_fp16, first->kept_fp16);
  EXPECT_EQ(from_file->builds, 0u);
  // Another budget is another decision.
  opt.accuracy_budget = 0.5;
  auto other = precision::searchAccuracyBudget(*m.g, opt);
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->from_cache.empty());
  EXPECT_TRUE(other->kept_fp16.empty());
  std::remove(opt.calibration_cache_path.c_str());
  std::remove((opt.calibration_cache_path + ".budget.json").c_str());
}

// With several optimization profiles the search runs once and every profile's engine gets
// its decision.
TEST(AccuracyBudget, OneSearchForEveryOptimizationProfile) {
  auto g = importOnnx(std::string(RAMJET_SOURCE_DIR) + "/models/tiny_cnn.onnx");
  ASSERT_TRUE(g.ok()) << g.status().message();
  auto calib = precision::makeRandomCalibrator(*g, 4, 5);
  BuildOptions opt = budgetOptions(calib.get(), 0.5);
  opt.profiles = {{"images", {1, 3, 32, 32}, {2, 3, 32, 32}, {2, 3, 32, 32}}};
  opt.extra_profiles = {{{"images", {4, 3, 32, 32}, {8, 3, 32, 32}, {8, 3, 32, 32}}}};
  int searches = 0;  // all-INT8 fits at once, so each search measures exactly one candidate
  opt.accuracy_metric = "custom";
  opt.accuracy_loss = [&searches](const std::vector<std::vector<Tensor>>&,
                                  const std::vector<std::vector<Tensor>>&) -> Result<double> {
    ++searches;
    return 0.0;
  };
  auto plan = build(*g, opt);
  EXPECT_EQ(searches, 1);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  EXPECT_EQ(plan->report().optimization_profiles, 2u);
  EXPECT_NE(plan->report().accuracy_budget.find(" met"), std::string::npos) << plan->report().accuracy_budget;
  EXPECT_EQ(plan->report().int8_layers.size(), 1u);
  auto engine = Engine::loadFromMemory(plan->bytes().data(), plan->bytes().size());
  ASSERT_TRUE(engine.ok()) << engine.status().message();
  EXPECT_EQ((*engine)->optimizationProfiles().size(), 2u);
  EXPECT_EQ((*engine)->info().precision, Precision::kINT8);
}

TEST(AccuracyBudget, AllInt8ThatFitsKeepsNothing) {
  ChainModel m = chainModel();
  auto calib = precision::makeRandomCalibrator(*m.g, 8, 7);
  auto r = precision::searchAccuracyBudget(*m.g, budgetOptions(calib.get(), 0.05));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r->met) << r->toString();
  EXPECT_TRUE(r->kept_fp16.empty());
  EXPECT_EQ(r->builds, 1u);  // one measurement was enough
}

TEST(AccuracyBudget, UnreachableBudgetKeepsEveryLayerFp16AndSaysSo) {
  ChainModel m = chainModel();
  auto calib = precision::makeRandomCalibrator(*m.g, 8, 7);
  BuildOptions opt = budgetOptions(calib.get(), 0.01);
  opt.accuracy_metric = "custom";
  int calls = 0;
  opt.accuracy_loss = [&calls](const std::vector<std::vector<Tensor>>& got,
                               const std::vector<std::vector<Tensor>>& ref) -> Result<double> {
    ++calls;
    EXPECT_EQ(got.size(), ref.size());
    return 0.5;  // nothing is ever good enough
  };
  auto r = precision::searchAccuracyBudget(*m.g, opt);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FALSE(r->met);
  EXPECT_EQ(r->kept_fp16.size(), 3u);
  EXPECT_EQ(calls, 2);  // all-INT8, then the all-FP16 floor
  EXPECT_NE(r->toString().find("NOT met"), std::string::npos) << r->toString();
}

TEST(AccuracyBudget, BadOptionsAreRefused) {
  ChainModel m = chainModel();
  auto calib = precision::makeRandomCalibrator(*m.g, 8, 7);
  auto msg = [&](BuildOptions o) {
    auto p = build(*m.g, o);
    return p.ok() ? std::string("built") : p.status().message();
  };
  BuildOptions o = budgetOptions(calib.get(), 0.01);
  o.precision = Precision::kFP16;
  EXPECT_NE(msg(o).find("applies to INT8"), std::string::npos) << msg(o);
  o = budgetOptions(nullptr, 0.01);
  EXPECT_NE(msg(o).find("needs calibration data"), std::string::npos) << msg(o);
  o = budgetOptions(calib.get(), 1.5);
  EXPECT_NE(msg(o).find("fraction in (0, 1)"), std::string::npos) << msg(o);
  o = budgetOptions(calib.get(), 0.01);
  o.accuracy_metric = "custom";
  EXPECT_NE(msg(o).find("accuracy_loss"), std::string::npos) << msg(o);
  o = budgetOptions(calib.get(), 0.01);
  o.accuracy_metric = "f1";
  EXPECT_NE(msg(o).find("unknown accuracy metric"), std::string::npos) << msg(o);
}

}  // namespace
