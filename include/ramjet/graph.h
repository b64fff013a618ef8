// The graph IR: Graph owns Nodes and Values; Values carry a TensorType and optional constant data.
// Ops are in their canonical (newest-opset) form: the ONNX importer upgrades older forms
// (Squeeze axes attribute -> input, Upsample -> Resize, ...), so nothing downstream looks at
// opset versions.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ramjet/status.h"
#include "ramjet/tensor.h"
#include "ramjet/types.h"

namespace ramjet {

class Graph;
class Node;

struct Attribute {
  enum class Kind { kInt, kFloat, kString, kTensor, kGraph, kInts, kFloats, kStrings };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  Tensor t;
  std::shared_ptr<Graph> g;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  std::vector<std::string> strings;

  static Attribute fromInt(int64_t v) { Attribute a; a.kind = Kind::kInt; a.i = v; return a; }
  static Attribute fromFloat(float v) { Attribute a; a.kind = Kind::kFloat; a.f = v; return a; }
  static Attribute fromString(std::string v) {
    Attribute a; a.kind = Kind::kString; a.s = std::move(v); return a;
  }
  static Attribute fromInts(std::vector<int64_t> v) {
    Attribute a; a.kind = Kind::kInts; a.ints = std::move(v); return a;
  }
  static Attribute fromFloats(std::vector<float> v) {
    Attribute a; a.kind = Kind::kFloats; a.floats = std::move(v); return a;
  }
  static Attribute fromTensor(Tensor v) { Attribute a; a.kind = Kind::kTensor; a.t = std::move(v); return a; }
  std::string toString() const;
};

class Value {
 public:
  std::string name;
  TensorType type;
  Node* producer = nullptr;            // null for graph inputs, initializers, outer-scope refs
  std::vector<Node*> consumers;
  std::shared_ptr<Tensor> constant;    // initializer / folded constant data, else null
  bool is_graph_input = false;
  bool is_graph_output = false;
  bool is_outer_scope = false;         // a subgraph's reference to an enclosing graph's value

  bool isConstant() const { return constant != nullptr; }
};

class Node {
 public:
  std::string op_type;   // canonical op name from src/ops/ops.def ("Conv", "Resize", ...)
  std::string domain;    // "" for ai.onnx
  std::string name;      // unique within the graph (the importer names unnamed nodes)
  std::vector<Value*> inputs;   // nullptr marks an omitted optional input
  std::vector<Value*> outputs;  // nullptr marks an omitted optional output
  std::map<std::string, Attribute> attrs;

  bool hasInput(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
  bool hasOutput(size_t i) const { return i < outputs.size() && outputs[i] != nullptr; }
  bool hasAttr(const std::string& k) const { return attrs.count(k) != 0; }
  int64_t attrInt(const std::string& k, int64_t def) const;
  float attrFloat(const std::string& k, float def) const;
  std::string attrString(const std::string& k, const std::string& def) const;
  std::vector<int64_t> attrInts(const std::string& k, std::vector<int64_t> def = {}) const;
  std::vector<float> attrFloats(const std::string& k, std::vector<float> def = {}) const;
  const Tensor* attrTensor(const std::string& k) const;
  const Graph* attrGraph(const std::string& k) const;
  std::string describe() const;  // "Conv 'conv1'"
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  // Moving re-points the subgraphs' `parent` at the new location (If/Loop bodies keep a raw
  // pointer to their enclosing graph for outer-scope lookups).
  Graph(Graph&& other) noexcept;
  Graph& operator=(Graph&& other) noexcept;

  std::string name;
  std::vector<Value*> inputs;   // runtime inputs only (initializers are not listed)
  std::vector<Value*> outputs;
  std::map<std::string, std::string> metadata;  // producer, doc string, model metadata_props
  std::map<std::string, int64_t> opsets;        // domain -> version the model was exported with
  Graph* parent = nullptr;                      // enclosing graph for If/Loop/Scan bodies

  // Ownership and lookup.
  Value* addValue(const std::string& name);     // name must be unique (checked)
  Value* findValue(const std::string& name) const;
  Node* addNode(std::string op_type, std::string name, std::vector<Value*> inputs,
                std::vector<Value*> outputs);
  void removeNode(Node* n);  // detaches from its values; values stay
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }
  std::string uniqueValueName(const std::string& base) const;

  // Topologically ordered nodes (stable w.r.t. insertion order); error if there is a cycle.
  Result<std::vector<Node*>> topoOrder() const;
  // Runs every op's shape/type inference in topological order, filling Value::type.
  Status inferShapes();
  // Structural checks: every input is produced once, names unique, ops known, arity, no cycle.
  Status verify() const;
  // Readable listing of inputs, outputs, initializers (summarised) and nodes.
  std::string dump() const;
  // Total bytes of constant data (weights).
  size_t weightBytes() const;

 private:
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::unique_ptr<Value>> values_;
  std::map<std::string, Value*> by_name_;
};

// ONNX import (src/onnx). Problems are collected and reported together in one error.
struct ImportOptions {
  // Directory used to resolve external-data locations; defaults to the model file's folder.
  std::string external_data_dir;
  // Name symbolic dims that have no name in the model ("unk__0" style) with this prefix.
  std::string unnamed_dim_prefix = "dim";
};
Result<Graph> importOnnx(const std::string& path, const ImportOptions& opts = {});
Result<Graph> importOnnxFromMemory(const void* data, size_t size, const ImportOptions& opts = {});
// ONNX TensorProto bytes (as in the conformance suite's input_0.pb) -> Tensor.
Result<Tensor> parseOnnxTensor(const void* data, size_t size, const std::string& base_dir = "");
Result<Tensor> readOnnxTensorFile(const std::string& path);

}  // namespace ramjet
