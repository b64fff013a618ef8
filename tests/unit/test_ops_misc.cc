// Control flow, quantization, detection, loss and window ops: shape inference + reference kernels
// on small hand-checked cases, and the errors bad inputs must produce.
#include <gtest/gtest.h>

#include "graph_builder.h"

#include <cmath>
#include <map>

#include "backends/cpu/reference/interpreter.h"
#include "ops/op_registry.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

using rjtest::Builder;
using rjtest::graphAttr;
using rjtest::runGraph;

template <typename T>
std::vector<T> vec(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}


}  // namespace

TEST(Quantize, RoundsHalfToEvenAndSaturates) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {8});
  b.node("QuantizeLinear", {x, b.constant("s", Tensor::scalar<float>(1.f)), b.constant("z", Tensor::scalar<int8_t>(1))}, {"y"});
  b.output("y");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300.f, -300.f, 126.4f}, {8})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[0].dtype(), DataType::kInt8);
  // rint(x) + 1: 0+1, 2+1, 2+1, -0+1, -2+1, sat 127, sat -128, 126+1.
  EXPECT_EQ(vec<int8_t>((*r)[0]), (std::vector<int8_t>{1, 3, 3, 1, -1, 127, -128, 127}));
}

TEST(Quantize, DefaultsToUint8PerAxisAndBlocked) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2, 4});
  b.node("QuantizeLinear", {x, b.constant("s", Tensor::fromVector<float>({1.f, 2.f, 4.f, 8.f}, {4}))}, {"y"},
         {{"axis", Attribute::fromInt(1)}});
  // Blocks of 2 along axis 1: scale shape [2, 2].
  b.node("QuantizeLinear", {x, b.constant("bs", Tensor::fromVector<float>({1.f, 10.f, 2.f, 20.f}, {2, 2})),
                            b.constant("bz", Tensor::fromVector<int8_t>({0, 0, 0, 0}, {2, 2}))},
         {"yb"}, {{"axis", Attribute::fromInt(1)}, {"block_size", Attribute::fromInt(2)}});
  b.output("y");
  b.output("yb");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({8, 8, 8, 8, 40, 40, 40, 40}, {2, 4})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[0].dtype(), DataType::kUInt8);
  EXPECT_EQ(vec<uint8_t>((*r)[0]), (std::vector<uint8_t>{8, 4, 2, 1, 40, 20, 10, 5}));
  EXPECT_EQ(vec<int8_t>((*r)[1]), (std::vector<int8_t>{8, 8, 1, 1, 20, 20, 2, 2}));
}

TEST(Quantize, BadScaleShapeIsAnErrorNamingTheNode) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2, 3});
  b.node("QuantizeLinear", {x, b.constant("s", Tensor::fromVector<float>({1.f, 2.f}, {2}))}, {"y"});
  b.output("y");
  Status st = b.g.inferShapes();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("QuantizeLinear"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("scale has 2 entries"), std::string::npos) << st.message();
}

TEST(Dequantize, PerAxisInt32AndZeroPoint) {
  Builder b;
  Value* x = b.input("x", DataType::kUInt8, {2, 2});
  b.node("DequantizeLinear", {x, b.constant("s", Tensor::fromVector<float>({0.5f, 2.f}, {2})),
                              b.constant("z", Tensor::fromVector<uint8_t>({10, 20}, {2}))},
         {"y"}, {{"axis", Attribute::fromInt(0)}});
  b.output("y");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<uint8_t>({10, 14, 0, 255}, {2, 2})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(vec<float>((*r)[0]), (std::vector<float>{0.f, 2.f, -40.f, 470.f}));
}

TEST(DynamicQuantize, MatchesFormula) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {4});
  b.node("DynamicQuantizeLinear", {x}, {"y", "s", "z"});
  b.output("y"); b.output("s"); b.output("z");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({-1.f, 0.f, 1.f, 2.f}, {4})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  float s = (*r)[1].data<float>()[0];
  EXPECT_FLOAT_EQ(s, 3.f / 255.f);
  EXPECT_EQ((*r)[2].data<uint8_t>()[0], 85);
  EXPECT_EQ(vec<uint8_t>((*r)[0]), (std::vector<uint8_t>{0, 85, 170, 255}));
}

TEST(QLinearMatMul, MatchesIntegerMath) {
  Builder b;
  Value* a = b.input("a", DataType::kUInt8, {2, 2});
  Value* w = b.input("w", DataType::kUInt8, {2, 1});
  b.node("QLinearMatMul", {a, b.constant("as", Tensor::scalar<float>(0.5f)), b.constant("az", Tensor::scalar<uint8_t>(1)), w,
                           b.constant("ws", Tensor::scalar<float>(2.f)), b.constant("wz", Tensor::scalar<uint8_t>(0)),
                           b.constant("ys", Tensor::scalar<float>(1.f)), b.constant("yz", Tensor::scalar<uint8_t>(3))},
         {"y"});
  b.output("y");
  auto r = runGraph(b.g, {{"a", Tensor::fromVector<uint8_t>({1, 3, 5, 200}, {2, 2})},
                          {"w", Tensor::fromVector<uint8_t>({2, 4}, {2, 1})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  // row0: (0*2 + 2*4) * 1 + 3 = 11; row1: (4*2 + 199*4) = 804 -> saturates at 255.
  EXPECT_EQ(vec<uint8_t>((*r)[0]), (std::vector<uint8_t>{11, 255}));
}

TEST(QLinearConv, OneByOneWithPaddingAndBias) {
  Builder b;
  Value* x = b.input("x", DataType::kUInt8, {1, 1, 2, 2});
  b.node("QLinearConv", {x, b.constant("xs", Tensor::scalar<float>(1.f)), b.constant("xz", Tensor::scalar<uint8_t>(10)),
                         b.constant("w", Tensor::fromVector<int8_t>({2}, {1, 1, 1, 1})), b.constant("ws", Tensor::scalar<float>(1.f)),
                         b.constant("wz", Tensor::scalar<int8_t>(0)), b.constant("ys", Tensor::scalar<float>(2.f)),
                         b.constant("yz", Tensor::scalar<uint8_t>(0)), b.constant("bias", Tensor::fromVector<int32_t>({1}, {1}))},
         {"y"}, {{"pads", Attribute::fromInts({1, 0, 0, 0})}});
  b.output("y");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<uint8_t>({10, 11, 13, 20}, {1, 1, 2, 2})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{1, 1, 3, 2}));
  // ((x - 10) * 2 + 1) / 2, rounded half to even: pad row -> 0.5 -> 0; 0.5->0, 1.5->2; 3.5->4, 10.5->10.
  EXPECT_EQ(vec<uint8_t>((*r)[0]), (std::vector<uint8_t>{0, 0, 0, 2, 4, 10}));
}

TEST(NonMaxSuppression, CornerAndCenterFormatsAgreeAndLimit) {
  for (int center : {0, 1}) {
    Builder b;
    // Three boxes: 0 and 1 overlap heavily, 2 is apart.
    std::vector<float> corners = {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, 5, 1, 6};  // y1 x1 y2 x2
    std::vector<float> centers = {0.5f, 0.5f, 1, 1, 0.6f, 0.5f, 1, 1, 5.5f, 0.5f, 1, 1};  // xc yc w h
    b.constant("boxes", Tensor::fromVector<float>(center ? centers : corners, {1, 3, 4}));
    Value* s = b.input("scores", DataType::kFloat32, {1, 1, 3});
    b.node("NonMaxSuppression", {b.g.findValue("boxes"), s, b.constant("m", Tensor::fromVector<int64_t>({5}, {1})),
                                 b.constant("iou", Tensor::fromVector<float>({0.5f}, {1})),
                                 b.constant("sth", Tensor::fromVector<float>({0.1f}, {1}))},
           {"sel"}, {{"center_point_box", Attribute::fromInt(center)}});
    b.output("sel");
    auto r = runGraph(b.g, {{"scores", Tensor::fromVector<float>({0.8f, 0.9f, 0.05f}, {1, 1, 3})}});
    ASSERT_TRUE(r.ok()) << r.status().toString();
    // Box 1 wins, box 0 is suppressed by IoU, box 2 falls under the score threshold.
    EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{1, 3})) << "center=" << center;
    EXPECT_EQ(vec<int64_t>((*r)[0]), (std::vector<int64_t>{0, 0, 1})) << "center=" << center;
  }
}

TEST(NonMaxSuppression, WrongBoxShapeIsAClearError) {
  Builder b;
  Value* bx = b.input("boxes", DataType::kFloat32, {1, 3, 5});
  Value* s = b.input("scores", DataType::kFloat32, {1, 1, 3});
  b.node("NonMaxSuppression", {bx, s}, {"sel"});
  b.output("sel");
  Status st = b.g.inferShapes();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("NonMaxSuppression"), std::string::npos);
  EXPECT_NE(st.message().find("boxes must be [batch, boxes, 4]"), std::string::npos) << st.message();
}

TEST(RoiAlign, ConstantImageAveragesToTheConstant) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {1, 2, 4, 4});
  b.node("RoiAlign", {x, b.constant("rois", Tensor::fromVector<float>({0, 0, 3, 3, 1, 1, 2, 2}, {2, 4})),
                      b.constant("bi", Tensor::fromVector<int64_t>({0, 0}, {2}))},
         {"y"}, {{"output_height", Attribute::fromInt(2)}, {"output_width", Attribute::fromInt(2)}});
  b.output("y");
  Tensor in(DataType::kFloat32, {1, 2, 4, 4});
  for (int i = 0; i < 32; ++i) in.data<float>()[i] = i < 16 ? 3.f : -1.f;
  auto r = runGraph(b.g, {{"x", in}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  ASSERT_EQ((*r)[0].dims(), (std::vector<int64_t>{2, 2, 2, 2}));
  for (int i = 0; i < 16; ++i) EXPECT_NEAR((*r)[0].data<float>()[i], (i / 4) % 2 ? -1.f : 3.f, 1e-6) << i;
}

TEST(RoiAlign, BatchIndexOutOfRangeIsAnError) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {1, 1, 4, 4});
  b.node("RoiAlign", {x, b.constant("rois", Tensor::fromVector<float>({0, 0, 3, 3}, {1, 4})),
                      b.constant("bi", Tensor::fromVector<int64_t>({3}, {1}))}, {"y"});
  b.output("y");
  auto r = runGraph(b.g, {{"x", Tensor(DataType::kFloat32, {1, 1, 4, 4})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("batch_indices[0] = 3"), std::string::npos) << r.status().message();
}

TEST(GridSample, IdentityGridReproducesInputInEveryMode) {
  for (const char* mode : {"linear", "nearest", "cubic"}) {
    Builder b;
    Value* x = b.input("x", DataType::kFloat32, {1, 1, 3, 4});
    Value* grid = b.input("grid", DataType::kFloat32, {1, 3, 4, 2});
    b.node("GridSample", {x, grid}, {"y"}, {{"align_corners", Attribute::fromInt(1)}, {"mode", Attribute::fromString(mode)},
                                           {"padding_mode", Attribute::fromString("border")}});
    b.output("y");
    Tensor in(DataType::kFloat32, {1, 1, 3, 4}), gr(DataType::kFloat32, {1, 3, 4, 2});
    for (int i = 0; i < 12; ++i) in.data<float>()[i] = static_cast<float>(i * i);
    for (int h = 0; h < 3; ++h)
      for (int w = 0; w < 4; ++w) {
        gr.data<float>()[(h * 4 + w) * 2 + 0] = -1.f + 2.f * w / 3.f;  // x first
        gr.data<float>()[(h * 4 + w) * 2 + 1] = -1.f + 2.f * h / 2.f;
      }
    auto r = runGraph(b.g, {{"x", in}, {"grid", gr}});
    ASSERT_TRUE(r.ok()) << r.status().toString();
    for (int i = 0; i < 12; ++i) EXPECT_NEAR((*r)[0].data<float>()[i], i * i, 1e-3) << mode << " " << i;
  }
}

TEST(GridSample, ZerosPaddingOutsideIsZero) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {1, 1, 2, 2});
  Value* grid = b.input("grid", DataType::kFloat32, {1, 1, 1, 2});
  b.node("GridSample", {x, grid}, {"y"});
  b.output("y");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, 2, 3, 4}, {1, 1, 2, 2})},
                          {"grid", Tensor::fromVector<float>({5.f, 5.f}, {1, 1, 1, 2})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[0].data<float>()[0], 0.f);
}

TEST(Loss, SoftmaxCrossEntropyMeanWithWeightsAndIgnoreIndex) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {3, 2});
  Value* t = b.input("t", DataType::kInt64, {3});
  b.node("SoftmaxCrossEntropyLoss", {x, t, b.constant("w", Tensor::fromVector<float>({1.f, 3.f}, {2}))}, {"loss", "logp"},
         {{"ignore_index", Attribute::fromInt(-1)}});
  b.node("NegativeLogLikelihoodLoss", {x, t}, {"nll"}, {{"ignore_index", Attribute::fromInt(-1)}, {"reduction", Attribute::fromString("sum")}});
  b.output("loss"); b.output("logp"); b.output("nll");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({0, 0, 1, 2, 5, 5}, {3, 2})},
                          {"t", Tensor::fromVector<int64_t>({0, 1, -1}, {3})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  double l0 = std::log(2.0), l1 = std::log(1 + std::exp(-1.0));
  EXPECT_NEAR((*r)[0].data<float>()[0], (1 * l0 + 3 * l1) / 4, 1e-6);
  EXPECT_NEAR((*r)[1].data<float>()[1], -l0, 1e-6);
  EXPECT_NEAR((*r)[2].data<float>()[0], -(0 + 2), 1e-6);
}

TEST(Loss, TargetOutOfRangeIsAnError) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {1, 2});
  Value* t = b.input("t", DataType::kInt64, {1});
  b.node("NegativeLogLikelihoodLoss", {x, t}, {"nll"});
  b.output("nll");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({0, 0}, {1, 2})}, {"t", Tensor::fromVector<int64_t>({7}, {1})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("target[0] = 7 is outside the 2 classes"), std::string::npos) << r.status().message();
}

TEST(Det, BatchedAndSingular) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {3, 3, 3});
  b.node("Det", {x}, {"d"});
  b.output("d");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({2, 0, 0, 0, 3, 0, 0, 0, 4,  // 24
                                                             0, 1, 0, 1, 0, 0, 0, 0, 1,  // swap: -1
                                                             1, 2, 3, 2, 4, 6, 0, 1, 1}, // singular
                                                            {3, 3, 3})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{3}));
  EXPECT_NEAR((*r)[0].data<float>()[0], 24, 1e-5);
  EXPECT_NEAR((*r)[0].data<float>()[1], -1, 1e-6);
  EXPECT_NEAR((*r)[0].data<float>()[2], 0, 1e-6);
}

TEST(Windows, HannSymmetricEndsAtZeroAndShapeFromConstant) {
  Builder b;
  b.node("HannWindow", {b.constant("n", Tensor::scalar<int64_t>(5))}, {"w"}, {{"periodic", Attribute::fromInt(0)}});
  b.node("HammingWindow", {b.constant("n2", Tensor::scalar<int32_t>(4))}, {"h"});
  b.output("w"); b.output("h");
  ASSERT_TRUE(b.g.inferShapes().ok());
  EXPECT_EQ(b.g.findValue("w")->type.shape.toString(), "[5]");
  auto r = runGraph(b.g);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_NEAR((*r)[0].data<float>()[0], 0, 1e-7);
  EXPECT_NEAR((*r)[0].data<float>()[2], 1, 1e-7);
  EXPECT_NEAR((*r)[0].data<float>()[4], 0, 1e-7);
  EXPECT_NEAR((*r)[1].data<float>()[0], 4.0 / 46.0, 1e-7);  // 25/46 - 21/46
}

TEST(Dropout, InferenceIsIdentityWithAllOnesMask) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {3});
  b.node("Dropout", {x, b.constant("r", Tensor::scalar<float>(0.7f))}, {"y", "mask"});
  b.output("y"); b.output("mask");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, 2, 3}, {3})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(vec<float>((*r)[0]), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(vec<bool>((*r)[1]), (std::vector<bool>{true, true, true}));
}

TEST(Dropout, TrainingModeIsUnsupportedNotSilentlyWrong) {
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {3});
  b.node("Dropout", {x, b.constant("r2", Tensor::scalar<float>(0.7f)), b.constant("t", Tensor::scalar<bool>(true))}, {"y2"});
  b.output("y2");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, 2, 3}, {3})}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(r.status().message().find("training-mode"), std::string::npos);
}

TEST(ControlFlow, LoopDoublesAndCollectsScanOutputs) {
  // body(i, cond, x) -> (cond, x + x, x)
  auto body = std::make_unique<Builder>();
  Value* bi = body->input("i", DataType::kInt64, {});
  (void)bi;
  Value* bc = body->input("cond_in", DataType::kBool, {});
  Value* bx = body->input("x_in", DataType::kFloat32, {2});
  body->node("Add", {bx, bx}, {"x_out"});
  body->node("Identity", {bc}, {"cond_out"});
  body->node("Identity", {bx}, {"scan_out"});
  body->output("cond_out"); body->output("x_out"); body->output("scan_out");
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2});
  Node* loop = b.node("Loop", {b.constant("M", Tensor::scalar<int64_t>(3)), nullptr, x}, {"xf", "scans"});
  body->g.parent = &b.g;
  loop->attrs["body"] = graphAttr(std::move(body->owned));
  b.output("xf"); b.output("scans");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, -2}, {2})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(vec<float>((*r)[0]), (std::vector<float>{8, -16}));
  EXPECT_EQ((*r)[1].dims(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(vec<float>((*r)[1]), (std::vector<float>{1, -2, 2, -4, 4, -8}));
}

TEST(ControlFlow, IfReadsAnOuterValueWhoseLastDirectUseCameEarlier) {
  // y = Add(x, x) is consumed first by 'early' and then only implicitly by the If branch: the
  // interpreter must not free it before the If runs.
  Builder b;
  Value* x = b.input("x", DataType::kFloat32, {2});
  Value* c = b.input("c", DataType::kBool, {});
  b.node("Add", {x, x}, {"y"});
  b.node("Identity", {b.g.findValue("y")}, {"early"});
  auto then_b = std::make_unique<Builder>();
  then_b->g.parent = &b.g;
  Value* outer = then_b->g.addValue("y");
  outer->is_outer_scope = true;
  outer->type = TensorType{DataType::kFloat32, Shape::fromDims({2})};
  then_b->node("Add", {outer, outer}, {"t"});
  then_b->output("t");
  auto else_b = std::make_unique<Builder>();
  else_b->g.parent = &b.g;
  else_b->constant("e", Tensor::fromVector<float>({0, 0}, {2}));
  else_b->output("e");
  Node* n = b.node("If", {c}, {"z"});
  n->attrs["then_branch"] = graphAttr(std::move(then_b->owned));
  n->attrs["else_branch"] = graphAttr(std::move(else_b->owned));
  b.output("early");
  b.output("z");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, 2}, {2})}, {"c", Tensor::scalar<bool>(true)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(vec<float>((*r)[1]), (std::vector<float>{4, 8}));
  r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, 2}, {2})}, {"c", Tensor::scalar<bool>(false)}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(vec<float>((*r)[1]), (std::vector<float>{0, 0}));
}

TEST(ControlFlow, IfBranchesWithDifferentTypesAreRejected) {
  Builder b;
  Value* c = b.input("c", DataType::kBool, {});
  auto t = std::make_unique<Builder>();
  t->constant("a", Tensor::fromVector<float>({1}, {1}));
  t->output("a");
  auto e = std::make_unique<Builder>();
  e->constant("b", Tensor::fromVector<int64_t>({1}, {1}));
  e->output("b");
  Node* n = b.node("If", {c}, {"z"});
  n->attrs["then_branch"] = graphAttr(std::move(t->owned));
  n->attrs["else_branch"] = graphAttr(std::move(e->owned));
  b.output("z");
  Status st = b.g.inferShapes();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("output 0 is f32 in then_branch but i64 in else_branch"), std::string::npos) << st.message();
}

TEST(ControlFlow, ScanSumsRowsBothDirections) {
  for (int reverse : {0, 1}) {
    auto body = std::make_unique<Builder>();
    Value* s = body->input("s", DataType::kFloat32, {2});
    Value* xi = body->input("xi", DataType::kFloat32, {2});
    body->node("Add", {s, xi}, {"s_out"});
    body->node("Identity", {body->g.findValue("s_out")}, {"y"});
    body->output("s_out"); body->output("y");
    Builder b;
    Value* init = b.input("init", DataType::kFloat32, {2});
    Value* x = b.input("x", DataType::kFloat32, {3, 2});
    Node* n = b.node("Scan", {init, x}, {"final", "ys"},
                     {{"num_scan_inputs", Attribute::fromInt(1)}, {"scan_input_directions", Attribute::fromInts({reverse})}});
    n->attrs["body"] = graphAttr(std::move(body->owned));
    b.output("final"); b.output("ys");
    auto r = runGraph(b.g, {{"init", Tensor::fromVector<float>({0, 0}, {2})},
                            {"x", Tensor::fromVector<float>({1, 2, 3, 4, 5, 6}, {3, 2})}});
    ASSERT_TRUE(r.ok()) << r.status().toString();
    EXPECT_EQ(vec<float>((*r)[0]), (std::vector<float>{9, 12}));
    EXPECT_EQ(vec<float>((*r)[1]), reverse ? (std::vector<float>{5, 6, 8, 10, 9, 12}) : (std::vector<float>{1, 2, 4, 6, 9, 12}));
  }
}
