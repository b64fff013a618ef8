// Whole models through import -> reference interpreter, checked against an independent runtime.
#include <gtest/gtest.h>

#include "backends/cpu/reference/interpreter.h"
#include "ramjet/graph.h"

using namespace ramjet;

TEST(Models, TinyCnnMatchesOnnxRuntime) {
  const std::string dir = std::string(RAMJET_SOURCE_DIR) + "/models/";
  auto g = importOnnx(dir + "tiny_cnn.onnx");
  ASSERT_TRUE(g.ok()) << g.status().toString();
  EXPECT_EQ(g->inputs[0]->type.shape.toString(), "[N,3,32,32]");
  EXPECT_EQ(g->outputs[0]->type.shape.toString(), "[N,10]");  // symbolic batch survives inference
  auto x = readNpy(dir + "tiny_cnn_input.npy");
  auto want = readNpy(dir + "tiny_cnn_expected_ort.npy");
  ASSERT_TRUE(x.ok() && want.ok());
  auto out = reference::run(*g, {{"images", *x}});
  ASSERT_TRUE(out.ok()) << out.status().toString();
  CompareResult c = compareTensors((*out)[0], *want, 1e-6, 1e-4);
  EXPECT_EQ(c.mismatches, 0) << c.toString();
  EXPECT_GT(c.cosine, 0.99999);
}
