// A small graph builder over the IR for op tests: declare inputs/constants, add nodes by op
// name, mark outputs, then runGraph() verifies, infers shapes and runs the reference backend.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/reference/interpreter.h"
#include "ramjet/engine.h"
#include "ramjet/graph.h"

namespace rjtest {

using namespace ramjet;

struct Builder {
  std::shared_ptr<Graph> owned = std::make_shared<Graph>();
  Graph& g = *owned;

  Value* input(const std::string& name, TensorType t) {
    Value* v = g.addValue(name);
    v->type = std::move(t);
    v->is_graph_input = true;
    g.inputs.push_back(v);
    return v;
  }
  Value* input(const std::string& name, DataType dt, std::vector<int64_t> dims) {
    return input(name, TensorType{dt, Shape::fromDims(dims)});
  }
  Value* constant(const std::string& name, Tensor t) {
    Value* v = g.addValue(name);
    v->type = t.type();
    v->constant = std::make_shared<Tensor>(std::move(t));
    return v;
  }
  Value* value(const std::string& name) {
    Value* v = g.findValue(name);
    return v ? v : g.addValue(name);
  }
  // An empty output name marks an omitted optional output.
  Node* node(const std::string& op, std::vector<Value*> ins, std::vector<std::string> outs,
             std::map<std::string, Attribute> attrs = {}) {
    std::vector<Value*> ov;
    for (auto& o : outs) ov.push_back(o.empty() ? nullptr : value(o));
    Node* n = g.addNode(op, op + "_" + std::to_string(g.nodes().size()), ins, ov);
    n->attrs = std::move(attrs);
    return n;
  }
  void output(const std::string& name) {
    Value* v = g.findValue(name);
    v->is_graph_output = true;
    g.outputs.push_back(v);
  }
};

// Seeded uniform [lo, hi) float32 data.
inline Tensor uniformTensor(std::vector<int64_t> dims, float lo, float hi, uint32_t seed) {
  Tensor t(DataType::kFloat32, std::move(dims));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = u(rng);
  return t;
}

inline Result<std::vector<Tensor>> runGraph(Graph& g, const std::map<std::string, Tensor>& in = {}) {
  RJ_RETURN_IF_ERROR(g.verify());
  RJ_RETURN_IF_ERROR(g.inferShapes());
  return reference::run(g, in);
}

// Builds `g` for the CPU backend with `opt`, loads the plan and runs `feeds` once; `report` gets
// the build's precision report.
inline Result<std::vector<Tensor>> buildAndRun(const Graph& g, BuildOptions opt, const std::map<std::string, Tensor>& feeds,
                                               std::string* report = nullptr) {
  opt.device = DeviceKind::kCpu;
  RJ_ASSIGN_OR_RETURN(Plan plan, build(g, opt));
  if (report) *report = plan.report().precision;
  RJ_ASSIGN_OR_RETURN(auto engine, Engine::loadFromMemory(plan.bytes().data(), plan.bytes().size()));
  RJ_ASSIGN_OR_RETURN(auto ctx, engine->createContext());
  return ctx->infer(feeds);
}

inline Attribute graphAttr(std::shared_ptr<Graph> g) {
  Attribute a;
  a.kind = Attribute::Kind::kGraph;
  a.g = std::move(g);
  return a;
}

}  // namespace rjtest
