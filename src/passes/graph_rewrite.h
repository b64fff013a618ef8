// Small graph-mutation helpers shared by the passes. Graph (include/ramjet/graph.h) owns nodes
// and values; these keep producer/consumer links, graph outputs and subgraph name references
// consistent while nodes are replaced.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "passes/pass.h"
#include "ramjet/graph.h"

namespace ramjet::passes {

// Names that If/Loop/Scan bodies read from this graph by name (outer-scope references). Such
// values must keep their name, so passes neither rename nor replace them.
std::set<std::string> outerScopeNames(const Graph& g);

// Makes every use of `from` read `to` instead. When `from` is a graph output it cannot simply
// disappear: if `to` is an ordinary intermediate, `to`'s producer is rewired to produce `from`
// (keeping the output's name). Returns false (and changes nothing) when neither is legal, e.g.
// `from` is referenced by a subgraph or both are graph outputs. Call it before removing the
// node that produced `from`.
bool replaceAllUses(Graph& g, Value* from, Value* to);

// Number of real uses of v: node inputs plus one if it is a graph output.
size_t useCount(const Value* v);
// The only consumer of v when v has exactly one use by a node and is not a graph output.
Node* soleConsumer(const Value* v);

// Node name not yet used in g, derived from base.
std::string uniqueNodeName(const Graph& g, const std::string& base);
// A new constant value holding t (type set from t).
Value* makeConstant(Graph& g, const std::string& base_name, Tensor t);
// A new node whose single output is a fresh value named after base; returns the node.
Node* addNodeWithOutput(Graph& g, const std::string& op, const std::string& base,
                        std::vector<Value*> inputs);

// Constant float scalar (any float dtype, any shape with one element) -> value; false otherwise.
bool scalarValue(const Value* v, double* out);
// True when v is a constant whose every element equals x within tol.
bool isConstantScalar(const Value* v, double x, double tol = 1e-6);
// Constant integer tensor -> values; false when v is not a constant integer tensor.
bool constantInts(const Value* v, std::vector<int64_t>* out);
// If n is a binary op with one constant input, returns the other input and sets *c to the
// constant one; null otherwise.
Value* splitConstOperand(const Node* n, Value** c);
// Producer of v when it has op type `op` (null otherwise).
Node* producerOf(const Value* v, const char* op);

}  // namespace ramjet::passes

namespace ramjet::passes {
// Rewires input i / output i of n to v, keeping consumer/producer links right.
void setInput(Node* n, size_t i, Value* v);
void setOutput(Node* n, size_t i, Value* v);
// The input of binary node n that is not `v` (null if n does not read v or is not binary).
Value* otherInput(const Node* n, const Value* v);
// True when none of n's outputs except output 0 is used.
bool onlyFirstOutputUsed(const Node* n);
// Float tensor of dtype dt from doubles.
Tensor tensorFromDoubles(DataType dt, std::vector<int64_t> dims, const std::vector<double>& v);
std::vector<double> toDoubles(const Tensor& t);
// Snapshot of the node list (passes erase nodes while walking).
std::vector<Node*> nodeList(const Graph& g);
// A node a pass removed, remembered by its outputs so a later replacement can still name it
// among the nodes it absorbed (`fused_from`).
struct RemovedNode {
  std::vector<std::string> names;  // its name, or what it had absorbed itself
  std::vector<const Value*> inputs;
};
// Replaces node `old` by a new node computing op(inputs) into old's output 0 (name and graph
// output status kept). Returns the new node. When it absorbs more than `old` (the nodes
// between `inputs` and old's output, including ones in `removed`), the new node gets a
// `fused_from` strings attribute naming them.
Node* replaceNode(Graph& g, Node* old, const std::string& op, std::vector<Value*> inputs,
                  const std::map<const Value*, RemovedNode>* removed = nullptr);
}  // namespace ramjet::passes

namespace ramjet::passes {
// Tracks removals while a pass walks a snapshot of the node list, so it never touches a node
// it has already deleted, and counts the edits for the pass report.
struct Rewriter {
  Graph& g;
  PassStats* stats;
  std::set<const Node*> dead;
  bool alive(const Node* n) const { return dead.count(n) == 0; }
  std::map<const Value*, RemovedNode> removed{};  // by output value, for fused_from
  void remove(Node* n) {
    RemovedNode r;
    auto f = n->attrs.find("fused_from");
    if (f != n->attrs.end() && f->second.kind == Attribute::Kind::kStrings) r.names = f->second.strings;
    else r.names = {n->name};
    r.inputs.assign(n->inputs.begin(), n->inputs.end());
    for (const Value* v : n->outputs)
      if (v) removed[v] = r;
    dead.insert(n);
    g.removeNode(n);
    ++stats->nodes_removed;
  }
  Node* replace(Node* old, const std::string& op, std::vector<Value*> inputs) {
    dead.insert(old);
    Node* n = replaceNode(g, old, op, std::move(inputs), &removed);
    ++stats->nodes_removed;
    ++stats->nodes_added;
    ++stats->rewrites;
    return n;
  }
  Node* add(const std::string& op, const std::string& base, std::vector<Value*> inputs) {
    ++stats->nodes_added;
    return addNodeWithOutput(g, op, base, std::move(inputs));
  }
};
}  // namespace ramjet::passes

namespace ramjet::passes {
// Output channels of a Conv/ConvTranspose with constant float weights (and constant or absent
// bias); 0 when not foldable.
int64_t convOutChannels(const Node* conv);
// Conv/ConvTranspose output channel c becomes scale[c] * y[c] + shift[c], folded into new
// weight and bias constants. False (nothing changed) when the weights are not foldable.
bool foldIntoConvChannels(Graph& g, Node* conv, const std::vector<double>& scale,
                          const std::vector<double>& shift);
// Per-channel values of a constant `c` combined elementwise with a tensor of `rank` dims whose
// channel axis is 1 and has `channels` entries: c must broadcast without changing that
// tensor's shape and vary at most along the channel axis.
bool perChannel(const Value* c, size_t rank, int64_t channels, std::vector<double>* out);
}  // namespace ramjet::passes
