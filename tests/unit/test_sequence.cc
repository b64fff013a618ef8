// Sequence, optional and string values: Tensor payloads, the sequence/optional/string ops'
// inference + reference kernels on hand-checked cases, and the errors bad inputs must produce.
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

std::vector<float> floats(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

Tensor strings(std::vector<std::string> v, std::vector<int64_t> dims) {
  Tensor t(DataType::kString, std::move(dims));
  std::copy(v.begin(), v.end(), t.strings());
  return t;
}

std::vector<std::string> strs(const Tensor& t) { return std::vector<std::string>(t.strings(), t.strings() + t.numel()); }

TensorType seqOfFloat() { return TensorType::sequenceOf(TensorType(DataType::kFloat32, Shape::unknownRank())); }

}  // namespace

TEST(SequenceValue, PayloadsAndTypes) {
  Tensor a = Tensor::fromVector<float>({1, 2, 3});
  Tensor s = Tensor::sequence(TensorType(DataType::kFloat32, Shape::unknownRank()), {a, a});
  EXPECT_EQ(s.kind(), TypeKind::kSequence);
  EXPECT_TRUE(s.defined());
  EXPECT_EQ(s.elements().size(), 2u);
  EXPECT_EQ(s.type().kind, TypeKind::kSequence);
  EXPECT_NE(s.type().toString().find("seq("), std::string::npos);
  Tensor none = Tensor::optionalNone(s.type());
  EXPECT_FALSE(none.hasElement());
  EXPECT_EQ(none.type().elem->kind, TypeKind::kSequence);
  Tensor some = Tensor::optional(a);
  EXPECT_TRUE(some.hasElement());
  EXPECT_EQ(floats(some.elements()[0]), (std::vector<float>{1, 2, 3}));
  // Numeric tensors are unchanged: kind tensor, no elements.
  EXPECT_TRUE(a.isTensor());
  EXPECT_TRUE(a.elements().empty());

  Tensor t = strings({"ab", "c"}, {2});
  Tensor c = t.clone();
  c.strings()[0] = "zz";
  EXPECT_EQ(strs(t), (std::vector<std::string>{"ab", "c"}));  // clone is deep
  EXPECT_EQ(strs(t.reshaped({1, 2})), strs(t));
  EXPECT_EQ(compareTensors(t, strings({"ab", "c"}, {2}), 0, 0).mismatches, 0);
  EXPECT_EQ(compareTensors(t, strings({"ab", "d"}, {2}), 0, 0).mismatches, 1);
}

TEST(SequenceValue, CastStrings) {
  Tensor f = Tensor::fromVector<float>({0.5f, -2.f, 0.1f, 1e20f});
  Tensor s = f.cast(DataType::kString);
  EXPECT_EQ(strs(s), (std::vector<std::string>{"0.5", "-2", "0.1", "1e+20"}));
  Tensor back = strings({"0.25", "NaN", "-INF", "7"}, {4}).cast(DataType::kFloat32);
  EXPECT_EQ(back.data<float>()[0], 0.25f);
  EXPECT_TRUE(std::isnan(back.data<float>()[1]));
  EXPECT_TRUE(std::isinf(back.data<float>()[2]) && back.data<float>()[2] < 0);
  EXPECT_EQ(strings({"7", "-3"}, {2}).cast(DataType::kInt64).toInt64Vector(), (std::vector<int64_t>{7, -3}));
}

TEST(SequenceOps, SplitInsertEraseAtConcat) {
  Builder b;
  b.input("x", TensorType(DataType::kFloat32, Shape::fromDims({3, 2})));
  b.constant("zero", Tensor::scalar<int64_t>(0));
  b.constant("neg1", Tensor::scalar<int64_t>(-1));
  b.node("SplitToSequence", {b.value("x")}, {"seq"}, {{"axis", Attribute::fromInt(0)}, {"keepdims", Attribute::fromInt(0)}});
  b.node("SequenceAt", {b.value("seq"), b.value("neg1")}, {"last"});
  b.node("SequenceInsert", {b.value("seq"), b.value("last"), b.value("zero")}, {"seq2"});  // last row in front
  b.node("SequenceErase", {b.value("seq2")}, {"seq3"});                                     // drops the old last
  b.node("SequenceLength", {b.value("seq3")}, {"len"});
  b.node("ConcatFromSequence", {b.value("seq3")}, {"stacked"}, {{"axis", Attribute::fromInt(1)}, {"new_axis", Attribute::fromInt(1)}});
  b.node("ConcatFromSequence", {b.value("seq3")}, {"flat"}, {{"axis", Attribute::fromInt(0)}});
  b.output("len");
  b.output("stacked");
  b.output("flat");
  b.output("seq3");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, 2, 3, 4, 5, 6}, {3, 2})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].getInt(0), 3);
  EXPECT_EQ((*r)[1].dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(floats((*r)[1]), (std::vector<float>{5, 1, 3, 6, 2, 4}));
  EXPECT_EQ((*r)[2].dims(), (std::vector<int64_t>{6}));
  EXPECT_EQ(floats((*r)[2]), (std::vector<float>{5, 6, 1, 2, 3, 4}));
  EXPECT_EQ((*r)[3].kind(), TypeKind::kSequence);
  EXPECT_EQ((*r)[3].elements().size(), 3u);
}

TEST(SequenceOps, SplitSizesAndErrors) {
  Builder b;
  b.input("x", TensorType(DataType::kInt32, Shape::fromDims({5})));
  b.constant("two", Tensor::scalar<int64_t>(2));
  b.constant("pos", Tensor::scalar<int64_t>(7));
  b.node("SplitToSequence", {b.value("x"), b.value("two")}, {"seq"});
  b.node("SequenceLength", {b.value("seq")}, {"len"});
  b.node("SequenceAt", {b.value("seq"), b.value("pos")}, {"bad"});
  b.output("len");
  b.output("bad");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<int32_t>({1, 2, 3, 4, 5})}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("SequenceAt"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("out of range"), std::string::npos) << r.status().message();

  Builder c;
  c.input("x", TensorType(DataType::kInt32, Shape::fromDims({5})));
  c.constant("two", Tensor::scalar<int64_t>(2));
  c.node("SplitToSequence", {c.value("x"), c.value("two")}, {"seq"});
  c.node("ConcatFromSequence", {c.value("seq")}, {"y"}, {{"axis", Attribute::fromInt(0)}});
  c.node("SequenceLength", {c.value("seq")}, {"len"});
  c.output("y");
  c.output("len");
  auto ok = runGraph(c.g, {{"x", Tensor::fromVector<int32_t>({1, 2, 3, 4, 5})}});
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ((*ok)[1].getInt(0), 3);  // [1,2] [3,4] [5]
  EXPECT_EQ((*ok)[0].toInt64Vector(), (std::vector<int64_t>{1, 2, 3, 4, 5}));
}

TEST(SequenceOps, SequenceInputAndNonTensorGuard) {
  Builder b;
  b.input("s", seqOfFloat());
  b.node("Relu", {b.value("s")}, {"y"});
  b.output("y");
  Tensor seq = Tensor::sequence(TensorType(DataType::kFloat32, Shape::unknownRank()), {Tensor::fromVector<float>({1})});
  ASSERT_TRUE(b.g.verify().ok());
  auto r = reference::run(b.g, {{"s", seq}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("takes tensors only"), std::string::npos) << r.status().message();

  // A tensor where the graph declares a sequence is rejected by name.
  Builder c;
  c.input("s", seqOfFloat());
  c.node("SequenceLength", {c.value("s")}, {"n"});
  c.output("n");
  auto bad = runGraph(c.g, {{"s", Tensor::fromVector<float>({1, 2})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'s'"), std::string::npos) << bad.status().message();
  auto good = reference::run(c.g, {{"s", seq}});
  ASSERT_TRUE(good.ok()) << good.status().message();
  EXPECT_EQ((*good)[0].getInt(0), 1);
}

TEST(SequenceOps, SequenceMapWithTensorInput) {
  Builder b;
  b.input("s", seqOfFloat());
  b.input("t", TensorType(DataType::kFloat32, Shape::fromDims({1})));
  auto body = std::make_shared<Graph>();
  body->parent = &b.g;
  Value* x = body->addValue("bx");
  Value* y = body->addValue("by");
  x->is_graph_input = y->is_graph_input = true;
  body->inputs = {x, y};
  Value* z = body->addValue("bz");
  body->addNode("Add", "body_add", {x, y}, {z});
  z->is_graph_output = true;
  body->outputs = {z};
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = body;
  b.node("SequenceMap", {b.value("s"), b.value("t")}, {"out"}, {{"body", a}});
  b.output("out");
  Tensor seq = Tensor::sequence(TensorType(DataType::kFloat32, Shape::unknownRank()),
                                {Tensor::fromVector<float>({1, 2}), Tensor::fromVector<float>({5})});
  ASSERT_TRUE(b.g.verify().ok());
  auto r = reference::run(b.g, {{"s", seq}, {"t", Tensor::fromVector<float>({10}, {1})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ((*r)[0].elements().size(), 2u);
  EXPECT_EQ(floats((*r)[0].elements()[0]), (std::vector<float>{11, 12}));
  EXPECT_EQ(floats((*r)[0].elements()[1]), (std::vector<float>{15}));
}

TEST(OptionalOps, HasGetAndNone) {
  Builder b;
  b.input("x", TensorType(DataType::kFloat32, Shape::fromDims({2})));
  b.node("Optional", {b.value("x")}, {"o"});
  b.node("OptionalHasElement", {b.value("o")}, {"has"});
  b.node("OptionalGetElement", {b.value("o")}, {"v"});
  b.node("Optional", {}, {"none"}, {{"type", Attribute::fromTensor(Tensor::sequence(TensorType(DataType::kInt64, Shape::unknownRank()), {}))}});
  b.node("OptionalHasElement", {b.value("none")}, {"has_none"});
  b.output("has");
  b.output("v");
  b.output("has_none");
  b.output("none");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({3, 4})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ((*r)[0].getInt(0), 1);
  EXPECT_EQ(floats((*r)[1]), (std::vector<float>{3, 4}));
  EXPECT_EQ((*r)[2].getInt(0), 0);
  EXPECT_EQ((*r)[3].kind(), TypeKind::kOptional);
  EXPECT_EQ((*r)[3].type().elem->kind, TypeKind::kSequence);

  Builder c;
  c.node("Optional", {}, {"none"}, {{"type", Attribute::fromTensor(Tensor(DataType::kFloat32, {0}))}});
  c.node("OptionalGetElement", {c.value("none")}, {"v"});
  c.output("v");
  auto bad = runGraph(c.g);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("none"), std::string::npos) << bad.status().message();
}

TEST(StringOps, StringNormalizer) {
  Builder b;
  b.input("x", TensorType(DataType::kString, Shape::fromDims({4})));
  Attribute stops;
  stops.kind = Attribute::Kind::kStrings;
  stops.strings = {"the", "A"};
  b.node("StringNormalizer", {b.value("x")}, {"y"},
         {{"case_change_action", Attribute::fromString("UPPER")}, {"stopwords", stops}});
  b.output("y");
  auto r = runGraph(b.g, {{"x", strings({"The", "cat", "a", "Sat"}, {4})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(strs((*r)[0]), (std::vector<std::string>{"CAT", "SAT"}));  // case-insensitive stopwords

  auto all = runGraph(b.g, {{"x", strings({"the", "a", "THE", "A"}, {4})}});
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(strs((*all)[0]), (std::vector<std::string>{""}));
  auto wrong = reference::run(b.g, {{"x", Tensor::fromVector<float>({1, 2, 3, 4})}});
  EXPECT_FALSE(wrong.ok());
}

TEST(StringOps, TfIdfVectorizerIntsWithSkips) {
  Builder b;
  b.input("x", TensorType(DataType::kInt64, Shape::fromDims({6})));
  // Pool: unigrams {2, 3}, bigrams {(2,3), (4,5)}; columns 0..3.
  b.node("TfIdfVectorizer", {b.value("x")}, {"y"},
         {{"mode", Attribute::fromString("TF")},
          {"min_gram_length", Attribute::fromInt(1)},
          {"max_gram_length", Attribute::fromInt(2)},
          {"max_skip_count", Attribute::fromInt(1)},
          {"ngram_counts", Attribute::fromInts({0, 2})},
          {"ngram_indexes", Attribute::fromInts({0, 1, 2, 3})},
          {"pool_int64s", Attribute::fromInts({2, 3, 2, 3, 4, 5})}});
  b.output("y");
  // x = 2 3 4 2 5 3: unigram 2 twice, 3 twice; bigram (2,3) at skip 0 (pos 0,1) and skip 1
  // (pos 3,5); (4,5) at skip 1 (pos 2,4).
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<int64_t>({2, 3, 4, 2, 5, 3})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(floats((*r)[0]), (std::vector<float>{2, 2, 2, 1}));
}

TEST(SignalOps, DftAndStftHandChecked) {
  Builder b;
  b.input("x", TensorType(DataType::kFloat32, Shape::fromDims({1, 4, 1})));
  b.node("DFT", {b.value("x")}, {"y"});
  b.node("DFT", {b.value("y")}, {"back"}, {{"inverse", Attribute::fromInt(1)}});
  b.node("DFT", {b.value("x")}, {"half"}, {{"onesided", Attribute::fromInt(1)}});
  b.constant("step", Tensor::scalar<int64_t>(2));
  b.constant("len", Tensor::scalar<int64_t>(2));
  b.node("STFT", {b.value("x"), b.value("step"), nullptr, b.value("len")}, {"s"});
  b.output("y");
  b.output("back");
  b.output("half");
  b.output("s");
  auto r = runGraph(b.g, {{"x", Tensor::fromVector<float>({1, 2, 3, 4}, {1, 4, 1})}});
  ASSERT_TRUE(r.ok()) << r.status().message();
  // DFT([1,2,3,4]) = [10, -2+2i, -2, -2-2i].
  std::vector<float> want = {10, 0, -2, 2, -2, 0, -2, -2};
  std::vector<float> got = floats((*r)[0]);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << i;
  std::vector<float> back = floats((*r)[1]);
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(back[2 * i], i + 1, 1e-5);
    EXPECT_NEAR(back[2 * i + 1], 0, 1e-5);
  }
  EXPECT_EQ((*r)[2].dims(), (std::vector<int64_t>{1, 3, 2}));
  // STFT frames [1,2] and [3,4], onesided 2-point DFTs: [3, -1] and [7, -1].
  EXPECT_EQ((*r)[3].dims(), (std::vector<int64_t>{1, 2, 2, 2}));
  std::vector<float> s = floats((*r)[3]);
  std::vector<float> want_s = {3, 0, -1, 0, 7, 0, -1, 0};
  for (size_t i = 0; i < want_s.size(); ++i) EXPECT_NEAR(s[i], want_s[i], 1e-5) << i;
}
