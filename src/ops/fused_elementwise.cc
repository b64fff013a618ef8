// FusedElementwise: program encoding/validation (elementwise_program.h) and its shape function.
#include <cmath>
#include <sstream>

#include "ops/elementwise_program.h"
#include "ops/op_registry.h"

namespace ramjet::ops {

namespace {
RJ_EW_APPLY_BODY(static inline)

struct EwInfo {
  const char* name;
  int arity;
};
const EwInfo kEwInfo[] = {
#define RJ_EW_INFO(Name, arity) {#Name, arity},
    RJ_EW_OPS(RJ_EW_INFO)
#undef RJ_EW_INFO
};

std::vector<std::string> splitComma(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s + ",") {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur += c;
    }
  }
  return out;
}
}  // namespace

const char* ewOpName(EwOp op) {
  const int i = static_cast<int>(op);
  return i >= 0 && i < static_cast<int>(EwOp::kCount) ? kEwInfo[i].name : "?";
}
int ewArity(EwOp op) {
  const int i = static_cast<int>(op);
  return i >= 0 && i < static_cast<int>(EwOp::kCount) ? kEwInfo[i].arity : 0;
}
bool ewOpFromName(const std::string& name, EwOp* op) {
  for (int i = 0; i < static_cast<int>(EwOp::kCount); ++i)
    if (name == kEwInfo[i].name) {
      *op = static_cast<EwOp>(i);
      return true;
    }
  return false;
}

std::string EwProgram::toString() const {
  std::ostringstream os;
  auto operand = [&](int32_t c) {
    if (c < num_inputs) return "i" + std::to_string(c);
    return "r" + std::to_string(c - num_inputs);
  };
  for (size_t j = 0; j < code.size(); ++j) {
    const EwInstr& in = code[j];
    os << (j ? ";" : "") << ewOpName(in.op) << "(" << operand(in.a);
    if (ewArity(in.op) == 2) os << "," << operand(in.b);
    os << ")";
  }
  return os.str();
}

Result<EwProgram> ewProgramFromNode(const Node& n, size_t num_inputs) {
  auto bad = [&](auto&&... why) {
    return makeError(StatusCode::kInvalidModel, n.describe(), ": FusedElementwise program: ", why...);
  };
  EwProgram p;
  p.num_inputs = static_cast<int32_t>(num_inputs);
  const std::vector<std::string> names = splitComma(n.attrString("ops", ""));
  const std::vector<int64_t> args = n.attrInts("args");
  const std::vector<float> params = n.attrFloats("params");
  if (names.empty()) return bad("attribute 'ops' is empty");
  if (args.size() != 2 * names.size())
    return bad("'args' has ", args.size(), " entries, expected 2 per instruction (", 2 * names.size(), ")");
  if (!params.empty() && params.size() != 2 * names.size())
    return bad("'params' has ", params.size(), " entries, expected 0 or ", 2 * names.size());
  if (names.size() > 64) return bad(names.size(), " instructions (at most 64)");
  for (size_t j = 0; j < names.size(); ++j) {
    EwInstr in;
    if (!ewOpFromName(names[j], &in.op)) return bad("unknown instruction '", names[j], "'");
    const int64_t limit = static_cast<int64_t>(num_inputs + j);
    for (int k = 0; k < 2; ++k) {
      const int64_t c = args[2 * j + static_cast<size_t>(k)];
      const bool needed = k < ewArity(in.op);
      if (needed && (c < 0 || c >= limit))
        return bad("instruction ", j, " (", names[j], ") operand ", k, " = ", c, " is not an input or an earlier result (< ", limit, ")");
      if (!needed && c != -1) return bad("instruction ", j, " (", names[j], ") has an extra operand ", c);
      (k == 0 ? in.a : in.b) = static_cast<int32_t>(c);
    }
    if (!params.empty()) {
      in.p0 = params[2 * j];
      in.p1 = params[2 * j + 1];
    }
    p.code.push_back(in);
  }
  return p;
}

void ewProgramToNode(const EwProgram& p, Node* n) {
  std::string ops;
  std::vector<int64_t> args;
  std::vector<float> params;
  for (const EwInstr& in : p.code) {
    ops += (ops.empty() ? "" : ",") + std::string(ewOpName(in.op));
    args.push_back(in.a);
    args.push_back(in.b);
    params.push_back(in.p0);
    params.push_back(in.p1);
  }
  n->attrs["ops"] = Attribute::fromString(ops);
  n->attrs["args"] = Attribute::fromInts(args);
  n->attrs["params"] = Attribute::fromFloats(params);
}

float ewEvalHost(const EwProgram& p, const float* inputs, float* regs) {
  auto get = [&](int32_t c) { return c < 0 ? 0.f : c < p.num_inputs ? inputs[c] : regs[c - p.num_inputs]; };
  for (size_t j = 0; j < p.code.size(); ++j) {
    const EwInstr& in = p.code[j];
    regs[j] = rjEwApply(static_cast<int>(in.op), get(in.a), get(in.b), in.p0, in.p1);
  }
  return regs[p.code.size() - 1];
}

// FusedElementwise(x0, x1, ...) -> broadcast of all inputs, element type of x0 (all inputs share
// one float type).
Status inferFusedElementwise(InferContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!isFloatType(dt)) return ctx.error("input 0 must be a float tensor, got ", dataTypeName(dt));
  std::vector<Shape> shapes;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    if (!ctx.hasInput(i)) return ctx.error("input ", i, " is missing");
    if (ctx.dtype(i) != dt)
      return ctx.error("input ", i, " is ", dataTypeName(ctx.dtype(i)), " but input 0 is ", dataTypeName(dt));
    shapes.push_back(ctx.shape(i));
  }
  RJ_RETURN_IF_ERROR(ewProgramFromNode(ctx.node(), ctx.numInputs()).status());
  RJ_ASSIGN_OR_RETURN(Shape out, broadcastShapes(shapes, ctx.node()));
  ctx.setOutput(0, dt, std::move(out));
  return Status::Ok();
}

}  // namespace ramjet::ops
