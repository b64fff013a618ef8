// ONNX importer robustness: malformed, truncated and empty files, external data problems, ops and
// opsets from the future, several problems reported together, every initializer encoding, Constant
// attributes and subgraphs reading outer-scope values. Every error must say what and why.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "backends/cpu/reference/interpreter.h"
#include "onnx.pb.h"
#include "ramjet/graph.h"

using namespace ramjet;

namespace {

onnx::ModelProto baseModel(int64_t opset = 13) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("ramjet-test");
  auto* os = m.add_opset_import();
  os->set_domain("");
  os->set_version(opset);
  m.mutable_graph()->set_name("g");
  return m;
}

void addValueInfo(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const std::string& name,
                  int elem_type, std::vector<int64_t> dims) {
  auto* vi = list->Add();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

onnx::NodeProto* addNode(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in,
                         std::vector<std::string> out, const std::string& name = "") {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (auto& s : in) n->add_input(s);
  for (auto& s : out) n->add_output(s);
  return n;
}

// y = Identity(x) over f32[2, 3] plus a 6-float initializer w, y2 = Add(x, w).
onnx::ModelProto simpleModel() {
  onnx::ModelProto m = baseModel();
  auto* g = m.mutable_graph();
  addValueInfo(g->mutable_input(), "x", onnx::TensorProto::FLOAT, {2, 3});
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->add_dims(3);
  for (int i = 0; i < 6; ++i) w->add_float_data(static_cast<float>(i));
  addNode(g, "Identity", {"x"}, {"y"}, "id");
  addNode(g, "Add", {"x", "w"}, {"y2"}, "add");
  addValueInfo(g->mutable_output(), "y", onnx::TensorProto::FLOAT, {2, 3});
  addValueInfo(g->mutable_output(), "y2", onnx::TensorProto::FLOAT, {2, 3});
  return m;
}

Result<Graph> importProto(const onnx::ModelProto& m, const ImportOptions& opts = {}) {
  std::string bytes = m.SerializeAsString();
  return importOnnxFromMemory(bytes.data(), bytes.size(), opts);
}

std::string tempDir(const std::string& leaf) {
  std::string d = ::testing::TempDir() + "/ramjet_importer_" + leaf;
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return d;
}

void writeFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(Importer, SimpleModelImportsAndRuns) {
  auto g = importProto(simpleModel());
  ASSERT_TRUE(g.ok()) << g.status().toString();
  auto r = reference::run(*g, {{"x", Tensor::fromVector<float>({1, 1, 1, 1, 1, 1}, {2, 3})}});
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ((*r)[1].data<float>()[5], 6.f);
}

TEST(Importer, RandomBytesAreRejectedWithAReason) {
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 50; ++trial) {
    std::string bytes(1 + rng() % 512, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    auto g = importOnnxFromMemory(bytes.data(), bytes.size());
    ASSERT_FALSE(g.ok()) << "trial " << trial;
    const std::string& msg = g.status().message();
    // Either protobuf refuses the bytes, or they happen to parse into a model with no graph.
    EXPECT_TRUE(contains(msg, "not a valid ONNX ModelProto") || contains(msg, "model has no graph")) << msg;
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidModel) << msg;
  }
}

TEST(Importer, TruncatedFilesAreRejected) {
  std::string bytes = simpleModel().SerializeAsString();
  std::string dir = tempDir("trunc");
  // The graph field dominates the file; cuts at these fractions fall inside it.
  for (double frac : {0.1, 0.25, 0.5, 0.75, 0.9}) {
    size_t cut = static_cast<size_t>(static_cast<double>(bytes.size()) * frac);
    std::string path = dir + "/m.onnx";
    writeFile(path, bytes.substr(0, cut));
    auto g = importOnnx(path);
    ASSERT_FALSE(g.ok()) << "cut at " << cut << " of " << bytes.size();
    EXPECT_TRUE(contains(g.status().message(), path)) << g.status().message();
    EXPECT_TRUE(contains(g.status().message(), "truncated") || contains(g.status().message(), "malformed") ||
                contains(g.status().message(), "produced by nothing"))
        << g.status().message();
  }
}

TEST(Importer, EmptyAndMissingFiles) {
  std::string dir = tempDir("empty");
  writeFile(dir + "/empty.onnx", "");
  auto g = importOnnx(dir + "/empty.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "is empty")) << g.status().message();
  g = importOnnxFromMemory("", 0);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "no graph")) << g.status().message();
  g = importOnnx(dir + "/nope.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(contains(g.status().message(), "does not exist")) << g.status().message();
  g = importOnnx(dir);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "is a directory")) << g.status().message();
}

namespace {
onnx::ModelProto externalModel(const std::string& location, int64_t offset) {
  onnx::ModelProto m = baseModel();
  auto* g = m.mutable_graph();
  auto* w = g->add_initializer();
  w->set_name("w_ext");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(4);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* kv = w->add_external_data();
  kv->set_key("location");
  kv->set_value(location);
  kv = w->add_external_data();
  kv->set_key("offset");
  kv->set_value(std::to_string(offset));
  addNode(g, "Identity", {"w_ext"}, {"y"});
  addValueInfo(g->mutable_output(), "y", onnx::TensorProto::FLOAT, {4});
  return m;
}
}  // namespace

TEST(Importer, ExternalDataWorksAndItsProblemsAreNamed) {
  std::string dir = tempDir("ext");
  std::string weights(32, '\0');
  float vals[4] = {1.5f, 2.5f, 3.5f, 4.5f};
  std::memcpy(weights.data() + 16, vals, 16);
  writeFile(dir + "/weights.bin", weights);

  writeFile(dir + "/ok.onnx", externalModel("weights.bin", 16).SerializeAsString());
  auto g = importOnnx(dir + "/ok.onnx");
  ASSERT_TRUE(g.ok()) << g.status().toString();
  EXPECT_EQ(g->findValue("w_ext")->constant->data<float>()[3], 4.5f);

  writeFile(dir + "/missing.onnx", externalModel("nothere.bin", 0).SerializeAsString());
  g = importOnnx(dir + "/missing.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "tensor 'w_ext'")) << g.status().message();
  EXPECT_TRUE(contains(g.status().message(), "nothere.bin' cannot be opened")) << g.status().message();

  writeFile(dir + "/past.onnx", externalModel("weights.bin", 24).SerializeAsString());
  g = importOnnx(dir + "/past.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "runs past the end")) << g.status().message();
  EXPECT_TRUE(contains(g.status().message(), "(32 bytes)")) << g.status().message();

  writeFile(dir + "/escape.onnx", externalModel("../../etc/passwd", 0).SerializeAsString());
  g = importOnnx(dir + "/escape.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "must be a relative path inside")) << g.status().message();

  // From memory with no directory to resolve against.
  g = importProto(externalModel("weights.bin", 0));
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "no external_data_dir")) << g.status().message();
}

TEST(Importer, OpsAndOpsetsFromTheFuture) {
  onnx::ModelProto m = simpleModel();
  addNode(m.mutable_graph(), "FancyNewOp", {"x"}, {"z"}, "fancy");
  auto g = importProto(m);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(contains(g.status().message(), "op FancyNewOp (opset 13) at node 'fancy'")) << g.status().message();

  onnx::ModelProto m99 = simpleModel();
  m99.mutable_opset_import(0)->set_version(99);
  g = importProto(m99);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.status().code(), StatusCode::kUnsupported);
  EXPECT_TRUE(contains(g.status().message(), "opset 99, newer than the newest ramjet knows")) << g.status().message();

  onnx::ModelProto custom = simpleModel();
  auto* n = addNode(custom.mutable_graph(), "Foo", {"x"}, {"z"}, "custom");
  n->set_domain("com.example");
  g = importProto(custom);
  ASSERT_FALSE(g.ok());
  EXPECT_TRUE(contains(g.status().message(), "op com.example.Foo")) << g.status().message();
}

TEST(Importer, ThreeProblemsGiveOneErrorListingAll) {
  onnx::ModelProto m = simpleModel();
  auto* g = m.mutable_graph();
  addNode(g, "NotAnOp", {"x"}, {"q"}, "bad_op");                 // 1: unknown op
  g->mutable_initializer(0)->add_float_data(99.f);                // 2: 7 values for 6 elements
  addValueInfo(g->mutable_output(), "ghost", onnx::TensorProto::FLOAT, {1});  // 3: output nobody makes
  auto r = importProto(m);
  ASSERT_FALSE(r.ok());
  const std::string& msg = r.status().message();
  EXPECT_TRUE(contains(msg, "(1 unsupported, 2 malformed)")) << msg;
  EXPECT_TRUE(contains(msg, "op NotAnOp (opset 13) at node 'bad_op'")) << msg;
  EXPECT_TRUE(contains(msg, "tensor 'w': has 7 values, shape [2,3] needs 6")) << msg;
  EXPECT_TRUE(contains(msg, "output 'ghost' is produced by nothing")) << msg;
}

TEST(Importer, InitializerEncodings) {
  onnx::ModelProto m = baseModel();
  auto* g = m.mutable_graph();
  auto add = [&](const std::string& name, int type) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    t->add_dims(2);
    addValueInfo(g->mutable_output(), name, type, {2});
    return t;
  };
  uint16_t h[2] = {Half(1.5f).bits, Half(-2.0f).bits};
  uint16_t bf[2] = {BFloat16(3.0f).bits, BFloat16(-0.5f).bits};
  add("f16_raw", onnx::TensorProto::FLOAT16)->set_raw_data(std::string(reinterpret_cast<char*>(h), 4));
  auto* t = add("f16_typed", onnx::TensorProto::FLOAT16);
  t->add_int32_data(h[0]);
  t->add_int32_data(h[1]);
  add("bf16_raw", onnx::TensorProto::BFLOAT16)->set_raw_data(std::string(reinterpret_cast<char*>(bf), 4));
  t = add("bf16_typed", onnx::TensorProto::BFLOAT16);
  t->add_int32_data(bf[0]);
  t->add_int32_data(bf[1]);
  int8_t i8[2] = {-7, 120};
  add("i8_raw", onnx::TensorProto::INT8)->set_raw_data(std::string(reinterpret_cast<char*>(i8), 2));
  t = add("i8_typed", onnx::TensorProto::INT8);
  t->add_int32_data(-7);
  t->add_int32_data(120);
  add("f16_short", onnx::TensorProto::FLOAT16)->set_raw_data(std::string(3, '\0'));  // wrong size
  auto r = importProto(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "tensor 'f16_short': raw_data has 3 bytes, shape [2] of f16 needs 4"))
      << r.status().message();
  g->mutable_output()->RemoveLast();
  g->mutable_initializer()->RemoveLast();
  r = importProto(m);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  for (const char* n : {"f16_raw", "f16_typed"}) {
    const Tensor& c = *r->findValue(n)->constant;
    ASSERT_EQ(c.dtype(), DataType::kFloat16) << n;
    EXPECT_EQ(static_cast<float>(c.data<Half>()[0]), 1.5f) << n;
    EXPECT_EQ(static_cast<float>(c.data<Half>()[1]), -2.0f) << n;
  }
  for (const char* n : {"bf16_raw", "bf16_typed"}) {
    const Tensor& c = *r->findValue(n)->constant;
    ASSERT_EQ(c.dtype(), DataType::kBFloat16) << n;
    EXPECT_EQ(static_cast<float>(c.data<BFloat16>()[0]), 3.0f) << n;
    EXPECT_EQ(static_cast<float>(c.data<BFloat16>()[1]), -0.5f) << n;
  }
  for (const char* n : {"i8_raw", "i8_typed"}) {
    const Tensor& c = *r->findValue(n)->constant;
    ASSERT_EQ(c.dtype(), DataType::kInt8) << n;
    EXPECT_EQ(c.data<int8_t>()[0], -7) << n;
    EXPECT_EQ(c.data<int8_t>()[1], 120) << n;
  }
}

TEST(Importer, ConstantValueFloatsAndBadConstants) {
  onnx::ModelProto m = baseModel();
  auto* g = m.mutable_graph();
  auto* c = addNode(g, "Constant", {}, {"cf"}, "const_floats");
  auto* a = c->add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  a->add_floats(0.25f);
  a->add_floats(-4.f);
  a->add_floats(8.f);
  addNode(g, "Identity", {"cf"}, {"y"});
  addValueInfo(g->mutable_output(), "y", onnx::TensorProto::FLOAT, {3});
  auto r = importProto(m);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  const Tensor& t = *r->findValue("cf")->constant;
  EXPECT_EQ(t.dims(), (std::vector<int64_t>{3}));
  EXPECT_EQ(t.data<float>()[1], -4.f);
  EXPECT_EQ(r->findValue("y")->type.shape.toString(), "[3]");

  a->set_name("value_sparse");  // not supported: must be named
  r = importProto(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "node 'const_floats' (Constant): attribute 'value_sparse' is not supported"))
      << r.status().message();
}

TEST(Importer, IfBranchReadsOuterScopeValue) {
  onnx::ModelProto m = baseModel(13);
  auto* g = m.mutable_graph();
  addValueInfo(g->mutable_input(), "x", onnx::TensorProto::FLOAT, {2});
  addValueInfo(g->mutable_input(), "c", onnx::TensorProto::BOOL, {});
  addNode(g, "Add", {"x", "x"}, {"x2"}, "double");
  auto* n = addNode(g, "If", {"c"}, {"out"}, "branch");
  auto* then_a = n->add_attribute();
  then_a->set_name("then_branch");
  then_a->set_type(onnx::AttributeProto::GRAPH);
  auto* tg = then_a->mutable_g();
  tg->set_name("then");
  addNode(tg, "Add", {"x2", "x"}, {"t_out"}, "then_add");  // both from the enclosing graph
  addValueInfo(tg->mutable_output(), "t_out", onnx::TensorProto::FLOAT, {2});
  auto* else_a = n->add_attribute();
  else_a->set_name("else_branch");
  else_a->set_type(onnx::AttributeProto::GRAPH);
  auto* eg = else_a->mutable_g();
  eg->set_name("else");
  addNode(eg, "Identity", {"x"}, {"e_out"}, "else_id");
  addValueInfo(eg->mutable_output(), "e_out", onnx::TensorProto::FLOAT, {2});
  addValueInfo(g->mutable_output(), "out", onnx::TensorProto::FLOAT, {2});
  auto r = importProto(m);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  const Graph* then_g = nullptr;
  for (const auto& node : r->nodes())
    if (node->op_type == "If") then_g = node->attrGraph("then_branch");
  ASSERT_NE(then_g, nullptr);
  ASSERT_NE(then_g->findValue("x2"), nullptr);
  EXPECT_TRUE(then_g->findValue("x2")->is_outer_scope);
  EXPECT_EQ(r->findValue("out")->type.toString(), TensorType({DataType::kFloat32, Shape::fromDims({2})}).toString());
  auto run = reference::run(*r, {{"x", Tensor::fromVector<float>({1, 2}, {2})}, {"c", Tensor::scalar<bool>(true)}});
  ASSERT_TRUE(run.ok()) << run.status().toString();
  EXPECT_EQ((*run)[0].data<float>()[1], 6.f);
  run = reference::run(*r, {{"x", Tensor::fromVector<float>({1, 2}, {2})}, {"c", Tensor::scalar<bool>(false)}});
  ASSERT_TRUE(run.ok()) << run.status().toString();
  EXPECT_EQ((*run)[0].data<float>()[1], 2.f);

  // A branch reading a name that exists nowhere is reported with the node and the name.
  addNode(eg, "Identity", {"nowhere"}, {"e2"}, "else_bad");
  r = importProto(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "input 'nowhere' is produced by nothing")) << r.status().message();
  EXPECT_TRUE(contains(r.status().message(), "node 'branch' attribute 'else_branch'")) << r.status().message();
}

TEST(Importer, HugeDeclaredShapeWithoutDataIsAnErrorNotAnAllocation) {
  // 2^38 floats (1 TiB) declared, no data: must be refused before any storage is allocated.
  onnx::ModelProto m = baseModel();
  auto* g = m.mutable_graph();
  auto* w = g->add_initializer();
  w->set_name("huge");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(int64_t{1} << 38);
  addNode(g, "Identity", {"huge"}, {"y"});
  addValueInfo(g->mutable_output(), "y", onnx::TensorProto::FLOAT, {int64_t{1} << 38});
  auto r = importProto(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "tensor 'huge': has 0 values, shape [274877906944] needs 274877906944"))
      << r.status().message();
  w->set_raw_data(std::string(8, '\0'));
  r = importProto(m);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(contains(r.status().message(), "tensor 'huge': raw_data has 8 bytes")) << r.status().message();
}

// Inputs that once crashed the importer (found by tests/fuzz/onnx_import_fuzzer or these tests):
// each must now import or fail with a message, in the ordinary (non-fuzz) build too.
TEST(Importer, FuzzRegressionInputsDoNotCrash) {
  std::string dir = std::string(RAMJET_SOURCE_DIR) + "/tests/fuzz/regressions/onnx_import_fuzzer";
  std::string list = ::testing::TempDir() + "/ramjet_fuzz_regressions.txt";
  ASSERT_EQ(std::system(("ls '" + dir + "' > '" + list + "'").c_str()), 0);
  std::ifstream names(list);
  int n = 0;
  for (std::string name; std::getline(names, name);) {
    std::ifstream f(dir + "/" + name, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto g = importOnnxFromMemory(bytes.data(), bytes.size());
    if (!g.ok()) EXPECT_FALSE(g.status().message().empty()) << name;
    ++n;
  }
  EXPECT_GE(n, 1) << "no regression inputs found in " << dir;
}
