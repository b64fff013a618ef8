// Value propagation through the elementwise ops that shape subgraphs use (Cast, Add, Mul, Div,
// Equal, Where, ...). Their shape functions belong to the elementwise family; this evaluates
// their *values* on TensorType::shape_value after inference, so that e.g. yolov8n's
// Shape -> Gather -> Add -> Div -> Slice or ViT's Equal/Where around Expand give exact dims.
// Symbols are kept only where the result is certain (x*1, x+0, Equal(x, -1) is false as dims
// are >= 0); anything else leaves the value unknown.
#include <optional>

#include "ops/op_registry.h"
#include "ops/tensor_util.h"

namespace ramjet::ops {

namespace {

bool isNum(const Dim& d) { return d.symbol.empty(); }

// Elementwise binary op on values of length 1 or n (numpy broadcasting for rank <= 1).
template <typename F>
std::optional<std::vector<Dim>> binary(const std::vector<Dim>& a, const std::vector<Dim>& b, F f) {
  size_t n = std::max(a.size(), b.size());
  if ((a.size() != n && a.size() != 1) || (b.size() != n && b.size() != 1)) return std::nullopt;
  std::vector<Dim> out;
  for (size_t i = 0; i < n; ++i) {
    std::optional<Dim> r = f(a[a.size() == 1 ? 0 : i], b[b.size() == 1 ? 0 : i]);
    if (!r) return std::nullopt;
    out.push_back(*r);
  }
  return out;
}

std::optional<Dim> add(const Dim& x, const Dim& y) {
  if (isNum(x) && isNum(y)) return Dim(x.value + y.value);
  if (isNum(y) && y.value == 0) return x;
  if (isNum(x) && x.value == 0) return y;
  return std::nullopt;
}
std::optional<Dim> sub(const Dim& x, const Dim& y) {
  if (isNum(x) && isNum(y)) return Dim(x.value - y.value);
  if (isNum(y) && y.value == 0) return x;
  if (x == y) return Dim(0);
  return std::nullopt;
}
std::optional<Dim> mul(const Dim& x, const Dim& y) {
  if (isNum(x) && isNum(y)) return Dim(x.value * y.value);
  if (!isNum(x) && !isNum(y)) return std::nullopt;
  const Dim& s = isNum(x) ? y : x;
  int64_t k = isNum(x) ? x.value : y.value;
  if (k < 0) return std::nullopt;
  auto [base, f] = splitSymbol(s.symbol);
  return scaledSymbol(base, f * k);  // batch * 12 -> "batch*12"
}
std::optional<Dim> div(const Dim& x, const Dim& y) {
  if (isNum(y) && y.value == 0) return std::nullopt;
  if (isNum(x) && isNum(y)) return Dim(x.value / y.value);  // C++ truncation, like onnxruntime
  if (x == y) return Dim(1);
  if (!isNum(x) && isNum(y) && y.value > 0) {
    auto [base, f] = splitSymbol(x.symbol);
    if (f % y.value == 0) return scaledSymbol(base, f / y.value);  // "batch*12" / 12 -> batch
  }
  return std::nullopt;
}
std::optional<Dim> equal(const Dim& x, const Dim& y) {
  if (isNum(x) && isNum(y)) return Dim(x.value == y.value ? 1 : 0);
  if (x == y) return Dim(1);
  // A symbol is a size (>= 0): it never equals a negative number.
  if ((isNum(x) && x.value < 0) || (isNum(y) && y.value < 0)) return Dim(0);
  return std::nullopt;
}
std::optional<Dim> maxOf(const Dim& x, const Dim& y) {
  if (isNum(x) && isNum(y)) return Dim(std::max(x.value, y.value));
  if (x == y) return x;
  return std::nullopt;
}
std::optional<Dim> minOf(const Dim& x, const Dim& y) {
  if (isNum(x) && isNum(y)) return Dim(std::min(x.value, y.value));
  if (x == y) return x;
  return std::nullopt;
}

bool intLike(DataType dt) {
  return dt == DataType::kInt64 || dt == DataType::kInt32 || dt == DataType::kBool;
}

}  // namespace

void propagateShapeValues(InferContext& ctx) {
  const std::string& op = ctx.node().op_type;
  if (ctx.numOutputs() != 1 || ctx.outputs()[0].shape_value || !intLike(ctx.outputs()[0].dtype)) return;
  const Shape& os = ctx.outputs()[0].shape;
  if (!os.rank_known || os.rank() > 1) return;
  for (size_t i = 0; i < ctx.numInputs(); ++i)
    if (ctx.hasInput(i) && !intLike(ctx.dtype(i)) && !(op == "Where" && i > 0)) return;
  auto in = [&](size_t i) { return knownDims(ctx, i); };
  std::optional<std::vector<Dim>> out;
  if (op == "Cast" || op == "Identity") {
    auto a = in(0);
    if (!a) return;
    if (ctx.outputs()[0].dtype == DataType::kBool) {
      std::vector<Dim> v;
      for (const Dim& d : *a) {
        if (!isNum(d)) return;
        v.push_back(Dim(d.value != 0 ? 1 : 0));
      }
      out = v;
    } else {
      out = a;
    }
  } else if (op == "Neg" || op == "Abs") {
    auto a = in(0);
    if (!a) return;
    std::vector<Dim> v;
    for (const Dim& d : *a) {
      if (!isNum(d)) {
        if (op == "Neg") return;
        v.push_back(d);  // |size| = size
      } else {
        v.push_back(Dim(op == "Neg" ? -d.value : std::abs(d.value)));
      }
    }
    out = v;
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div" || op == "Equal" || op == "Max" ||
             op == "Min") {
    if (ctx.numInputs() != 2) return;
    auto a = in(0), b = in(1);
    if (!a || !b) return;
    if (op == "Add") out = binary(*a, *b, add);
    else if (op == "Sub") out = binary(*a, *b, sub);
    else if (op == "Mul") out = binary(*a, *b, mul);
    else if (op == "Div") out = binary(*a, *b, div);
    else if (op == "Equal") out = binary(*a, *b, equal);
    else if (op == "Max") out = binary(*a, *b, maxOf);
    else out = binary(*a, *b, minOf);
  } else if (op == "Where") {
    auto c = in(0), a = in(1), b = in(2);
    if (!c || !a || !b) return;
    size_t n = std::max({c->size(), a->size(), b->size()});
    for (auto* v : {&*c, &*a, &*b})
      if (v->size() != n && v->size() != 1) return;
    std::vector<Dim> v;
    for (size_t i = 0; i < n; ++i) {
      const Dim& ci = (*c)[c->size() == 1 ? 0 : i];
      if (!isNum(ci)) return;
      v.push_back(ci.value ? (*a)[a->size() == 1 ? 0 : i] : (*b)[b->size() == 1 ? 0 : i]);
    }
    out = v;
  }
  if (!out) return;
  // The value must agree with the inferred shape (a scalar or a vector of that length).
  size_t want = os.rank() == 0 ? 1 : (os.dims[0].known() ? os.dims[0].value : out->size());
  if (out->size() != want) return;
  setShapeValue(ctx, 0, *out);
}

}  // namespace ramjet::ops
