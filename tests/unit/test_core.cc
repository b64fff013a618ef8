#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

#include "backends/cpu/reference/interpreter.h"
#include "ramjet/graph.h"
#include "ramjet/tensor.h"

using namespace ramjet;

TEST(Half, RoundTripsAndRounds) {
  for (float f : {0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f, 0.1f}) {
    float back = Half(f);
    EXPECT_NEAR(back, f, std::fabs(f) * 1e-3 + 1e-7) << f;
  }
  EXPECT_TRUE(std::isinf(static_cast<float>(Half(70000.f))));
  EXPECT_TRUE(std::isnan(static_cast<float>(Half(NAN))));
  EXPECT_EQ(Half(1.0f).bits, 0x3c00);
  EXPECT_EQ(Half(-2.0f).bits, 0xc000);
  EXPECT_EQ(BFloat16(1.0f).bits, 0x3f80);
  EXPECT_EQ(static_cast<float>(BFloat16(3.0f)), 3.0f);
}

TEST(Npy, WriteReadRoundTrip) {
  Tensor t = Tensor::fromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  std::string p = ::testing::TempDir() + "/rt.npy";
  ASSERT_TRUE(writeNpy(p, t).ok());
  auto r = readNpy(p);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r->data<float>()[5], 6.f);
}

TEST(Npy, RejectsGarbageAndTruncation) {
  std::string p = ::testing::TempDir() + "/bad.npy";
  FILE* f = fopen(p.c_str(), "wb");
  fputs("not a numpy file at all", f);
  fclose(f);
  auto r = readNpy(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("magic"), std::string::npos);
  Tensor t = Tensor::fromVector<float>({1, 2, 3, 4}, {4});
  ASSERT_TRUE(writeNpy(p, t).ok());
  ASSERT_EQ(truncate(p.c_str(), 128 + 4), 0);
  r = readNpy(p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("truncated"), std::string::npos) << r.status().message();
  EXPECT_FALSE(readNpy("/nonexistent/x.npy").ok());
}

// A shape whose byte count wraps 128-bit arithmetic to 0 passed the size check and reached a
// negative-size memcpy (npy_fuzzer, CI 2026-11-26); it must be rejected as too large.
TEST(Npy, RejectsShapeWhoseSizeOverflows) {
  auto make = [](const std::string& shape) {
    std::string h = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }\n";
    std::vector<uint8_t> b = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<uint8_t>(h.size()), 0};
    b.insert(b.end(), h.begin(), h.end());
    for (int i = 0; i < 16; ++i) b.push_back(0);
    return b;
  };
  auto big = make("(4294967296, 4294967296, 4294967296, 4294967296)");
  auto r = parseNpy(big.data(), big.size(), "big.npy");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("too large"), std::string::npos) << r.status().message();
  // A zero dim makes any other dims legal: the array is empty.
  auto empty = make("(1099511627776, 1099511627776, 0)");
  r = parseNpy(empty.data(), empty.size(), "empty.npy");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->nbytes(), 0u);
  auto four = make("(2, 2)");
  r = parseNpy(four.data(), four.size(), "four.npy");
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->numel(), 4);
}

TEST(Graph, BuildInferRunAdd) {
  Graph g;
  Value* a = g.addValue("a");
  a->type = TensorType{DataType::kFloat32, Shape({Dim::symbolic("N"), Dim(3)})};
  a->is_graph_input = true;
  Value* b = g.addValue("b");
  b->constant = std::make_shared<Tensor>(Tensor::fromVector<float>({10, 20, 30}, {3}));
  b->type = b->constant->type();
  Value* c = g.addValue("c");
  g.addNode("Add", "add0", {a, b}, {c});
  g.inputs = {a};
  g.outputs = {c};
  ASSERT_TRUE(g.verify().ok());
  ASSERT_TRUE(g.inferShapes().ok());
  EXPECT_EQ(c->type.shape.toString(), "[N,3]");
  auto out = reference::run(g, {{"a", Tensor::fromVector<float>({1, 2, 3, 4, 5, 6}, {2, 3})}});
  ASSERT_TRUE(out.ok()) << out.status().toString();
  EXPECT_EQ((*out)[0].data<float>()[4], 25.f);
  // Wrong rank, wrong dtype and a missing input are clear errors.
  auto bad = reference::run(g, {{"a", Tensor::fromVector<float>({1, 2, 3}, {3})}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("input 'a'"), std::string::npos);
  EXPECT_FALSE(reference::run(g, {{"a", Tensor::fromVector<int64_t>({1, 2, 3}, {1, 3})}}).ok());
  EXPECT_FALSE(reference::run(g, {}).ok());
}

TEST(Graph, MoveKeepsSubgraphParents) {
  Graph g;
  g.name = "outer";
  Value* x = g.addValue("x");
  auto body = std::make_shared<Graph>();
  Value* y = g.addValue("y");
  Node* n = g.addNode("If", "if0", {x}, {y});
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = body;
  body->parent = &g;
  n->attrs["then_branch"] = a;
  Graph moved = std::move(g);
  EXPECT_EQ(body->parent, &moved);
  Graph assigned;
  assigned = std::move(moved);
  EXPECT_EQ(body->parent, &assigned);
}

TEST(Interpreter, RefusesAbsurdOutputSizes) {
  // ConstantOfShape of [2^20, 2^20, 2^20] must be an error, not an abort.
  Graph g;
  Value* shape = g.addValue("shape");
  shape->constant = std::make_shared<Tensor>(Tensor::fromVector<int64_t>({1 << 20, 1 << 20, 1 << 20}, {3}));
  shape->type = shape->constant->type();
  Value* out = g.addValue("out");
  g.addNode("ConstantOfShape", "cos", {shape}, {out});
  g.outputs = {out};
  auto r = reference::run(g, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("tensor limit"), std::string::npos) << r.status().message();
}
