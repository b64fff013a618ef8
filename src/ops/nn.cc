// Shape/type inference for the neural-network ops (see ops_nn.def), plus the window geometry,
// RNN activation and Einsum equation helpers that the reference kernels share.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "ops/nn_geometry.h"
#include "ops/op_registry.h"

namespace ramjet::ops {

namespace {

int64_t floorDiv(int64_t a, int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}
int64_t ceilDiv(int64_t a, int64_t b) {
  return -floorDiv(-a, b);
}

Status err(const Node& node, const std::string& what) {
  return makeError(StatusCode::kInvalidModel, node.describe(), ": ", what);
}

// Reads an ints attribute of exactly n values (default `def` repeated), each >= min_value.
Result<std::vector<int64_t>> intsAttr(const Node& node, const char* name, size_t n, int64_t def,
                                      int64_t min_value) {
  std::vector<int64_t> v = node.attrInts(name, std::vector<int64_t>(n, def));
  if (v.size() != n)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": attribute '", name, "' has ",
                     v.size(), " values; expected ", n);
  for (int64_t x : v)
    if (x < min_value)
      return makeError(StatusCode::kInvalidModel, node.describe(), ": attribute '", name,
                       "' value ", x, " must be >= ", min_value);
  return v;
}

Dim toDim(const InferContext& ctx, int64_t v, const char* hint) {
  return v >= 0 ? Dim(v) : ctx.newSymbol(hint);
}

// Input must have a known rank of at least `min_rank`.
Status needRank(const InferContext& ctx, size_t i, size_t min_rank, const char* what) {
  const Shape& s = ctx.shape(i);
  if (s.rank_known && s.rank() < min_rank)
    return ctx.error(what, " must have rank >= ", min_rank, ", got ", s.toString());
  return Status::Ok();
}

Status needFloat(const InferContext& ctx, size_t i, const char* what) {
  if (!isFloatType(ctx.dtype(i)))
    return ctx.error(what, " must be a float tensor, got ", dataTypeName(ctx.dtype(i)));
  return Status::Ok();
}

}  // namespace

std::vector<int64_t> spatialSizes(const Shape& s) {
  std::vector<int64_t> v;
  for (size_t i = 2; i < s.rank(); ++i) v.push_back(s.dims[i].known() ? s.dims[i].value : -1);
  return v;
}

Result<WindowGeometry> forwardWindow(const Node& node, const std::vector<int64_t>& in,
                                     const std::vector<int64_t>& kernel, bool allow_ceil,
                                     bool allow_dilations) {
  const size_t n = kernel.size();
  WindowGeometry g;
  g.kernel = kernel;
  for (int64_t k : kernel)
    if (k < 1) return err(node, "kernel size " + std::to_string(k) + " must be >= 1");
  if (in.size() != n)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": kernel has ", n,
                     " spatial dims but the input has ", in.size());
  RJ_ASSIGN_OR_RETURN(g.strides, intsAttr(node, "strides", n, 1, 1));
  RJ_ASSIGN_OR_RETURN(g.dilations, intsAttr(node, "dilations", n, 1, 1));
  if (!allow_dilations)
    for (int64_t d : g.dilations)
      if (d != 1) return err(node, "dilations are not supported by this op");
  const std::string auto_pad = node.attrString("auto_pad", "NOTSET");
  const bool ceil_mode = allow_ceil && node.attrInt("ceil_mode", 0) != 0;
  if (auto_pad == "NOTSET") {
    RJ_ASSIGN_OR_RETURN(g.pads, intsAttr(node, "pads", 2 * n, 0, 0));
  } else if (auto_pad == "VALID" || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    g.pads.assign(2 * n, 0);
  } else {
    return err(node, "unknown auto_pad '" + auto_pad + "'");
  }
  g.out.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t dk = (g.kernel[i] - 1) * g.dilations[i] + 1, s = g.strides[i];
    if (in[i] < 0) continue;
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t out = ceilDiv(in[i], s);
      const int64_t total = std::max<int64_t>(0, (out - 1) * s + dk - in[i]);
      const int64_t small = total / 2, big = total - small;
      g.pads[i] = auto_pad == "SAME_UPPER" ? small : big;
      g.pads[i + n] = auto_pad == "SAME_UPPER" ? big : small;
      g.out[i] = out;
      continue;
    }
    const int64_t span = in[i] + g.pads[i] + g.pads[i + n] - dk;
    if (span < 0)
      return makeError(StatusCode::kInvalidModel, node.describe(), ": window of size ", dk,
                       " (kernel ", g.kernel[i], ", dilation ", g.dilations[i],
                       ") is larger than the padded input size ", in[i] + g.pads[i] + g.pads[i + n],
                       " in spatial dim ", i);
    int64_t out = (ceil_mode ? ceilDiv(span, s) : span / s) + 1;
    // The last window must start inside the input or its begin padding.
    if (ceil_mode && (out - 1) * s >= in[i] + g.pads[i]) --out;
    g.out[i] = out;
  }
  return g;
}

Result<WindowGeometry> transposeWindow(const Node& node, const std::vector<int64_t>& in,
                                       const std::vector<int64_t>& kernel) {
  const size_t n = kernel.size();
  WindowGeometry g;
  g.kernel = kernel;
  for (int64_t k : kernel)
    if (k < 1) return err(node, "kernel size " + std::to_string(k) + " must be >= 1");
  RJ_ASSIGN_OR_RETURN(g.strides, intsAttr(node, "strides", n, 1, 1));
  RJ_ASSIGN_OR_RETURN(g.dilations, intsAttr(node, "dilations", n, 1, 1));
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> out_pad, intsAttr(node, "output_padding", n, 0, 0));
  std::vector<int64_t> out_shape = node.attrInts("output_shape");
  if (out_shape.size() == n + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);
  if (!out_shape.empty() && out_shape.size() != n)
    return makeError(StatusCode::kInvalidModel, node.describe(), ": output_shape has ",
                     out_shape.size(), " values; expected ", n);
  const std::string auto_pad = node.attrString("auto_pad", "NOTSET");
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  if (auto_pad == "NOTSET") {
    RJ_ASSIGN_OR_RETURN(g.pads, intsAttr(node, "pads", 2 * n, 0, 0));
  } else if (auto_pad == "VALID" || same) {
    g.pads.assign(2 * n, 0);
  } else {
    return err(node, "unknown auto_pad '" + auto_pad + "'");
  }
  g.out.assign(n, -1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t dk = (g.kernel[i] - 1) * g.dilations[i] + 1, s = g.strides[i];
    if (out_pad[i] >= std::max(s, g.dilations[i]))
      return makeError(StatusCode::kInvalidModel, node.describe(), ": output_padding ", out_pad[i],
                       " must be smaller than the stride or dilation in spatial dim ", i);
    if (in[i] < 0) {
      if (!out_shape.empty()) g.out[i] = out_shape[i];
      continue;
    }
    const int64_t full = s * (in[i] - 1) + out_pad[i] + dk;
    if (same) {
      const int64_t target = out_shape.empty() ? in[i] * s : out_shape[i];
      const int64_t total = full - target;
      if (auto_pad == "SAME_UPPER") {
        g.pads[i] = floorDiv(total, 2);
        g.pads[i + n] = total - floorDiv(total, 2);
      } else {
        g.pads[i] = total - floorDiv(total, 2);
        g.pads[i + n] = floorDiv(total, 2);
      }
      g.out[i] = target;
    } else {
      g.out[i] = out_shape.empty() ? full - g.pads[i] - g.pads[i + n] : out_shape[i];
    }
    if (g.out[i] < 1)
      return makeError(StatusCode::kInvalidModel, node.describe(), ": output spatial size ",
                       g.out[i], " in dim ", i, " is not positive");
  }
  return g;
}

// ---------------------------------------------------------------- RNN activations
double RnnActivation::operator()(double x) const {
  switch (kind) {
    case kSigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    case kTanh:
      return std::tanh(x);
    case kRelu:
      return x > 0 ? x : 0;
    case kAffine:
      return alpha * x + beta;
    case kLeakyRelu:
      return x < 0 ? alpha * x : x;
    case kThresholdedRelu:
      return x > alpha ? x : 0;
    case kScaledTanh:
      return alpha * std::tanh(beta * x);
    case kHardSigmoid:
      return std::max(0.0, std::min(1.0, alpha * x + beta));
    case kElu:
      return x < 0 ? alpha * (std::exp(x) - 1) : x;
    case kSoftsign:
      return x / (1 + std::fabs(x));
    case kSoftplus:
      return std::log1p(std::exp(x));
  }
  return x;
}

Result<std::vector<RnnActivation>> rnnActivations(const Node& node,
                                                  const std::vector<const char*>& defaults,
                                                  int64_t num_directions) {
  std::vector<std::string> names;
  auto it = node.attrs.find("activations");
  if (it != node.attrs.end()) names = it->second.strings;
  if (names.empty())
    for (int64_t d = 0; d < num_directions; ++d)
      for (const char* n : defaults) names.emplace_back(n);
  // One set given for a bidirectional node: both directions use it.
  if (num_directions == 2 && names.size() == defaults.size())
    names.insert(names.end(), names.begin(), names.end());
  if (names.size() != defaults.size() * static_cast<size_t>(num_directions))
    return makeError(StatusCode::kInvalidModel, node.describe(), ": 'activations' has ",
                     names.size(), " entries; expected ", defaults.size() * num_directions);
  std::vector<float> alphas = node.attrFloats("activation_alpha");
  std::vector<float> betas = node.attrFloats("activation_beta");
  size_t ai = 0, bi = 0;
  std::vector<RnnActivation> out;
  for (const std::string& raw : names) {
    std::string n;
    for (char c : raw) n += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    RnnActivation a;
    bool uses_alpha = false, uses_beta = false;
    float da = 0, db = 0;
    if (n == "sigmoid")
      a.kind = RnnActivation::kSigmoid;
    else if (n == "tanh")
      a.kind = RnnActivation::kTanh;
    else if (n == "relu")
      a.kind = RnnActivation::kRelu;
    else if (n == "affine") {
      a.kind = RnnActivation::kAffine;
      uses_alpha = uses_beta = true;
      da = 1;
      db = 0;
    } else if (n == "leakyrelu") {
      a.kind = RnnActivation::kLeakyRelu;
      uses_alpha = true;
      da = 0.01f;
    } else if (n == "thresholdedrelu") {
      a.kind = RnnActivation::kThresholdedRelu;
      uses_alpha = true;
      da = 1;
    } else if (n == "scaledtanh") {
      a.kind = RnnActivation::kScaledTanh;
      uses_alpha = uses_beta = true;
      da = 1;
      db = 1;
    } else if (n == "hardsigmoid") {
      a.kind = RnnActivation::kHardSigmoid;
      uses_alpha = uses_beta = true;
      da = 0.2f;
      db = 0.5f;
    } else if (n == "elu") {
      a.kind = RnnActivation::kElu;
      uses_alpha = true;
      da = 1;
    } else if (n == "softsign")
      a.kind = RnnActivation::kSoftsign;
    else if (n == "softplus")
      a.kind = RnnActivation::kSoftplus;
    else
      return err(node, "unknown activation '" + raw + "'");
    a.alpha = da;
    a.beta = db;
    if (uses_alpha && ai < alphas.size()) a.alpha = alphas[ai++];
    if (uses_beta && bi < betas.size()) a.beta = betas[bi++];
    out.push_back(a);
  }
  return out;
}

// ---------------------------------------------------------------- Einsum equation
Result<EinsumLabels> einsumLabels(const Node& node, const std::vector<size_t>& ranks) {
  std::string eq;
  for (char c : node.attrString("equation", ""))
    if (!std::isspace(static_cast<unsigned char>(c))) eq += c;
  if (eq.empty()) return err(node, "missing 'equation' attribute");
  std::string lhs = eq, rhs;
  const bool explicit_out = eq.find("->") != std::string::npos;
  if (explicit_out) {
    lhs = eq.substr(0, eq.find("->"));
    rhs = eq.substr(eq.find("->") + 2);
  }
  std::vector<std::string> terms;
  size_t start = 0;
  while (true) {
    size_t comma = lhs.find(',', start);
    terms.push_back(
        lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != ranks.size())
    return makeError(StatusCode::kInvalidModel, node.describe(), ": equation '", eq, "' has ",
                     terms.size(), " operands but the node has ", ranks.size(), " inputs");
  auto letterId = [](char c) -> int {
    if (c >= 'a' && c <= 'z') return c - 'a';
    if (c >= 'A' && c <= 'Z') return 26 + (c - 'A');
    return -1;
  };
  // Split a term into letters and the ellipsis position.
  struct Term {
    std::vector<int> letters;
    int ell_pos = -1;
  };
  auto parseTerm = [&](const std::string& t, Term* out) -> Status {
    for (size_t i = 0; i < t.size();) {
      if (t.compare(i, 3, "...") == 0) {
        if (out->ell_pos >= 0) return err(node, "term '" + t + "' has two ellipses");
        out->ell_pos = static_cast<int>(out->letters.size());
        i += 3;
        continue;
      }
      int id = letterId(t[i]);
      if (id < 0)
        return err(node, std::string("invalid character '") + t[i] + "' in equation '" + eq + "'");
      out->letters.push_back(id);
      ++i;
    }
    return Status::Ok();
  };
  std::vector<Term> parsed(terms.size());
  int ell_rank = 0;
  for (size_t k = 0; k < terms.size(); ++k) {
    RJ_RETURN_IF_ERROR(parseTerm(terms[k], &parsed[k]));
    const int nl = static_cast<int>(parsed[k].letters.size());
    if (parsed[k].ell_pos < 0 && nl != static_cast<int>(ranks[k]))
      return makeError(StatusCode::kInvalidModel, node.describe(), ": term '", terms[k], "' has ",
                       nl, " labels but input ", k, " has rank ", ranks[k]);
    if (parsed[k].ell_pos >= 0) {
      if (nl > static_cast<int>(ranks[k]))
        return makeError(StatusCode::kInvalidModel, node.describe(), ": term '", terms[k],
                         "' has more labels than input ", k, " has dims (", ranks[k], ")");
      ell_rank = std::max(ell_rank, static_cast<int>(ranks[k]) - nl);
    }
  }
  EinsumLabels r;
  r.num_labels = 52 + ell_rank;
  for (size_t k = 0; k < terms.size(); ++k) {
    const Term& t = parsed[k];
    std::vector<int> ids;
    for (int i = 0; i < static_cast<int>(t.letters.size()); ++i) {
      if (i == t.ell_pos) {
        int e = static_cast<int>(ranks[k]) - static_cast<int>(t.letters.size());
        for (int j = ell_rank - e; j < ell_rank; ++j) ids.push_back(52 + j);
      }
      ids.push_back(t.letters[i]);
    }
    if (t.ell_pos == static_cast<int>(t.letters.size())) {
      int e = static_cast<int>(ranks[k]) - static_cast<int>(t.letters.size());
      for (int j = ell_rank - e; j < ell_rank; ++j) ids.push_back(52 + j);
    }
    r.in.push_back(ids);
  }
  if (explicit_out) {
    Term t;
    RJ_RETURN_IF_ERROR(parseTerm(rhs, &t));
    std::vector<int> seen(52, 0);
    for (int id : t.letters) {
      if (seen[id]++) return err(node, "output label repeated in equation '" + eq + "'");
      bool found = false;
      for (const Term& in : parsed)
        found |= std::find(in.letters.begin(), in.letters.end(), id) != in.letters.end();
      if (!found) return err(node, "output label not used by any input in equation '" + eq + "'");
    }
    for (int i = 0; i <= static_cast<int>(t.letters.size()); ++i) {
      if (i == t.ell_pos)
        for (int j = 0; j < ell_rank; ++j) r.out.push_back(52 + j);
      if (i < static_cast<int>(t.letters.size())) r.out.push_back(t.letters[i]);
    }
    if (t.ell_pos < 0 && ell_rank > 0) {
      // numpy allows dropping broadcast dims only when they are all size 1; keep it strict.
      bool any_ell = false;
      for (const Term& in : parsed) any_ell |= in.ell_pos >= 0;
      if (any_ell) return err(node, "equation '" + eq + "' drops the ellipsis dims in its output");
    }
  } else {
    std::vector<int> count(52, 0);
    for (const Term& in : parsed)
      for (int id : in.letters) ++count[id];
    for (int j = 0; j < ell_rank; ++j) r.out.push_back(52 + j);
    // Alphabetical: ASCII order puts upper case (ids 26..51) before lower case (0..25).
    for (int id = 26; id < 52; ++id)
      if (count[id] == 1) r.out.push_back(id);
    for (int id = 0; id < 26; ++id)
      if (count[id] == 1) r.out.push_back(id);
  }
  return r;
}

// ---------------------------------------------------------------- Conv family
namespace {

// Shared by Conv and ConvInteger: X [N, C, D...], W [M, C/group, k...].
Status inferConvLike(InferContext& ctx, DataType out_type) {
  const Shape& xs = ctx.shape(0);
  const Shape& ws = ctx.shape(1);
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 3, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 1, 3, "weights W"));
  if (!xs.rank_known && !ws.rank_known) {
    ctx.setOutput(0, out_type, Shape::unknownRank());
    return Status::Ok();
  }
  const size_t rank = xs.rank_known ? xs.rank() : ws.rank();
  if (xs.rank_known && ws.rank_known && xs.rank() != ws.rank())
    return ctx.error("X ", xs.toString(), " and W ", ws.toString(), " ranks differ");
  const int64_t group = ctx.node().attrInt("group", 1);
  if (group < 1) return ctx.error("group ", group, " must be >= 1");
  std::vector<int64_t> kernel = ctx.node().attrInts("kernel_shape");
  if (!kernel.empty() && kernel.size() != rank - 2)
    return ctx.error("kernel_shape has ", kernel.size(), " values; expected ", rank - 2);
  if (ws.rank_known) {
    if (kernel.empty()) kernel = spatialSizes(ws);
    for (size_t i = 2; i < rank; ++i)
      if (ws.dims[i].known() && ws.dims[i].value != kernel[i - 2])
        return ctx.error("kernel_shape ", dimsToString(kernel), " does not match W ",
                         ws.toString());
  }
  Dim batch = xs.rank_known ? xs.dims[0] : ctx.newSymbol("N");
  Dim m = ws.rank_known ? ws.dims[0] : ctx.newSymbol("M");
  if (xs.rank_known && ws.rank_known && xs.dims[1].known() && ws.dims[1].known() &&
      xs.dims[1].value != ws.dims[1].value * group)
    return ctx.error("X has ", xs.dims[1].value, " channels but W ", ws.toString(), " with group ",
                     group, " expects ", ws.dims[1].value * group);
  if (m.known() && m.value % group != 0)
    return ctx.error("W has ", m.value, " output channels, not divisible by group ", group);
  if (ctx.numInputs() > 2 && ctx.hasInput(2) && ctx.node().op_type == "Conv") {
    const Shape& bs = ctx.shape(2);
    if (bs.rank_known &&
        (bs.rank() != 1 || (bs.dims[0].known() && m.known() && bs.dims[0].value != m.value)))
      return ctx.error("bias B ", bs.toString(), " must be 1-D of size M = ", m.toString());
  }
  Shape out;
  out.dims = {batch, m};
  bool kernel_known = !kernel.empty() &&
                      std::all_of(kernel.begin(), kernel.end(), [](int64_t k) { return k >= 0; });
  std::vector<int64_t> in = xs.rank_known ? spatialSizes(xs) : std::vector<int64_t>(rank - 2, -1);
  if (kernel_known) {
    RJ_ASSIGN_OR_RETURN(WindowGeometry g, forwardWindow(ctx.node(), in, kernel, false));
    for (int64_t o : g.out) out.dims.push_back(toDim(ctx, o, "conv_out"));
  } else {
    for (size_t i = 2; i < rank; ++i) out.dims.push_back(ctx.newSymbol("conv_out"));
  }
  ctx.setOutput(0, out_type, out);
  return Status::Ok();
}

}  // namespace

Status inferConv(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  if (ctx.dtype(1) != ctx.dtype(0))
    return ctx.error("W is ", dataTypeName(ctx.dtype(1)), " but X is ", dataTypeName(ctx.dtype(0)));
  if (ctx.hasInput(2) && ctx.dtype(2) != ctx.dtype(0))
    return ctx.error("B is ", dataTypeName(ctx.dtype(2)), " but X is ", dataTypeName(ctx.dtype(0)));
  return inferConvLike(ctx, ctx.dtype(0));
}

Status inferConvInteger(InferContext& ctx) {
  for (size_t i = 0; i < 2; ++i)
    if (ctx.dtype(i) != DataType::kInt8 && ctx.dtype(i) != DataType::kUInt8)
      return ctx.error("input ", i, " must be int8 or uint8, got ", dataTypeName(ctx.dtype(i)));
  return inferConvLike(ctx, DataType::kInt32);
}

// X [N, C, D...], W [C, M/group, k...] -> [N, M, out...].
Status inferConvTranspose(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  if (ctx.dtype(1) != ctx.dtype(0))
    return ctx.error("W is ", dataTypeName(ctx.dtype(1)), " but X is ", dataTypeName(ctx.dtype(0)));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 3, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 1, 3, "weights W"));
  const Shape& xs = ctx.shape(0);
  const Shape& ws = ctx.shape(1);
  if (!xs.rank_known || !ws.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  if (xs.rank() != ws.rank())
    return ctx.error("X ", xs.toString(), " and W ", ws.toString(), " ranks differ");
  const int64_t group = ctx.node().attrInt("group", 1);
  if (group < 1) return ctx.error("group ", group, " must be >= 1");
  if (xs.dims[1].known() && ws.dims[0].known() && xs.dims[1].value != ws.dims[0].value)
    return ctx.error("X has ", xs.dims[1].value, " channels but W ", ws.toString(), " expects ",
                     ws.dims[0].value);
  if (ws.dims[0].known() && ws.dims[0].value % group != 0)
    return ctx.error("W has ", ws.dims[0].value, " input channels, not divisible by group ", group);
  std::vector<int64_t> kernel = ctx.node().attrInts("kernel_shape");
  if (kernel.empty()) kernel = spatialSizes(ws);
  if (kernel.size() != xs.rank() - 2)
    return ctx.error("kernel_shape has ", kernel.size(), " values; expected ", xs.rank() - 2);
  for (size_t i = 2; i < ws.rank(); ++i)
    if (ws.dims[i].known() && ws.dims[i].value != kernel[i - 2])
      return ctx.error("kernel_shape ", dimsToString(kernel), " does not match W ", ws.toString());
  Dim m = ws.dims[1].known() ? Dim(ws.dims[1].value * group) : ctx.newSymbol("M");
  if (ctx.hasInput(2)) {
    const Shape& bs = ctx.shape(2);
    if (bs.rank_known &&
        (bs.rank() != 1 || (bs.dims[0].known() && m.known() && bs.dims[0].value != m.value)))
      return ctx.error("bias B ", bs.toString(), " must be 1-D of size M = ", m.toString());
  }
  Shape out;
  out.dims = {xs.dims[0], m};
  if (std::all_of(kernel.begin(), kernel.end(), [](int64_t k) { return k >= 0; })) {
    RJ_ASSIGN_OR_RETURN(WindowGeometry g, transposeWindow(ctx.node(), spatialSizes(xs), kernel));
    for (int64_t o : g.out) out.dims.push_back(toDim(ctx, o, "convT_out"));
  } else {
    for (size_t i = 2; i < xs.rank(); ++i) out.dims.push_back(ctx.newSymbol("convT_out"));
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

// ---------------------------------------------------------------- pooling
namespace {

Status inferPool(InferContext& ctx, bool allow_ceil, bool numeric_ok) {
  if (!numeric_ok) RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 3, "input X"));
  const Shape& xs = ctx.shape(0);
  std::vector<int64_t> kernel = ctx.node().attrInts("kernel_shape");
  if (kernel.empty()) return ctx.error("missing required attribute 'kernel_shape'");
  if (!xs.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    if (ctx.numOutputs() > 1) ctx.setOutput(1, DataType::kInt64, Shape::unknownRank());
    return Status::Ok();
  }
  if (kernel.size() != xs.rank() - 2)
    return ctx.error("kernel_shape ", dimsToString(kernel), " has ", kernel.size(), " dims but X ",
                     xs.toString(), " has ", xs.rank() - 2, " spatial dims");
  RJ_ASSIGN_OR_RETURN(WindowGeometry g,
                      forwardWindow(ctx.node(), spatialSizes(xs), kernel, allow_ceil));
  Shape out;
  out.dims = {xs.dims[0], xs.dims[1]};
  for (int64_t o : g.out) out.dims.push_back(toDim(ctx, o, "pool_out"));
  ctx.setOutput(0, ctx.dtype(0), out);
  if (ctx.numOutputs() > 1) ctx.setOutput(1, DataType::kInt64, out);
  return Status::Ok();
}

Status inferGlobalPool(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 2, "input X"));
  const Shape& xs = ctx.shape(0);
  if (!xs.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  Shape out = xs;
  for (size_t i = 2; i < out.rank(); ++i) out.dims[i] = Dim(1);
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

}  // namespace

Status inferMaxPool(InferContext& ctx) {
  const DataType t = ctx.dtype(0);
  if (!isFloatType(t) && t != DataType::kInt8 && t != DataType::kUInt8)
    return ctx.error("input X must be a float or 8-bit integer tensor, got ", dataTypeName(t));
  const int64_t so = ctx.node().attrInt("storage_order", 0);
  if (so != 0 && so != 1) return ctx.error("storage_order ", so, " must be 0 or 1");
  return inferPool(ctx, true, true);
}
Status inferAveragePool(InferContext& ctx) {
  return inferPool(ctx, true, false);
}
Status inferLpPool(InferContext& ctx) {
  if (ctx.node().attrInt("p", 2) < 1) return ctx.error("p must be >= 1");
  return inferPool(ctx, true, false);
}
Status inferGlobalAveragePool(InferContext& ctx) {
  return inferGlobalPool(ctx);
}
Status inferGlobalMaxPool(InferContext& ctx) {
  return inferGlobalPool(ctx);
}

// MaxUnpool(X, I, output_shape?): default output size (in-1)*stride + kernel - pads.
Status inferMaxUnpool(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  if (ctx.dtype(1) != DataType::kInt64)
    return ctx.error("indices I must be int64, got ", dataTypeName(ctx.dtype(1)));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 3, "input X"));
  const Shape& xs = ctx.shape(0);
  std::vector<int64_t> kernel = ctx.node().attrInts("kernel_shape");
  if (kernel.empty()) return ctx.error("missing required attribute 'kernel_shape'");
  if (ctx.hasInput(2)) {
    const Tensor* v = ctx.value(2);
    if (v) {
      std::vector<int64_t> d = v->toInt64Vector();
      if (xs.rank_known && d.size() != xs.rank())
        return ctx.error("output_shape ", dimsToString(d), " must have rank ", xs.rank());
      for (int64_t x : d)
        if (x < 0) return ctx.error("output_shape ", dimsToString(d), " has a negative dim");
      ctx.setOutput(0, ctx.dtype(0), Shape::fromDims(d));
    } else {
      const Shape& ss = ctx.shape(2);
      Shape out;
      if (ss.rank_known && ss.rank() == 1 && ss.dims[0].known()) {
        for (int64_t i = 0; i < ss.dims[0].value; ++i) out.dims.push_back(ctx.newSymbol("unpool"));
      } else {
        out = Shape::unknownRank();
      }
      ctx.setOutput(0, ctx.dtype(0), out);
    }
    return Status::Ok();
  }
  if (!xs.rank_known) {
    ctx.setOutput(0, ctx.dtype(0), Shape::unknownRank());
    return Status::Ok();
  }
  const size_t n = xs.rank() - 2;
  if (kernel.size() != n)
    return ctx.error("kernel_shape ", dimsToString(kernel), " must have ", n, " dims");
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> strides, intsAttr(ctx.node(), "strides", n, 1, 1));
  RJ_ASSIGN_OR_RETURN(std::vector<int64_t> pads, intsAttr(ctx.node(), "pads", 2 * n, 0, 0));
  Shape out;
  out.dims = {xs.dims[0], xs.dims[1]};
  for (size_t i = 0; i < n; ++i) {
    const Dim& d = xs.dims[i + 2];
    out.dims.push_back(d.known()
                           ? Dim((d.value - 1) * strides[i] + kernel[i] - pads[i] - pads[i + n])
                           : ctx.newSymbol("unpool"));
  }
  ctx.setOutput(0, ctx.dtype(0), out);
  return Status::Ok();
}

// ---------------------------------------------------------------- normalization
namespace {

// Input `i` must be 1-D of `c` elements when both are known.
Status needPerChannel(const InferContext& ctx, size_t i, const Dim& c, const char* what) {
  if (!ctx.hasInput(i)) return Status::Ok();
  const Shape& s = ctx.shape(i);
  if (!s.rank_known) return Status::Ok();
  if (s.rank() != 1) return ctx.error(what, " ", s.toString(), " must be 1-D");
  if (c.known() && s.dims[0].known() && s.dims[0].value != c.value)
    return ctx.error(what, " ", s.toString(), " must have ", c.value,
                     " elements (the channel count)");
  return Status::Ok();
}

}  // namespace

Status inferBatchNormalization(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 2, "input X"));
  const Shape& xs = ctx.shape(0);
  Dim c = xs.rank_known ? xs.dims[1] : ctx.newSymbol("C");
  const char* names[] = {"", "scale", "B", "input_mean", "input_var"};
  for (size_t i = 1; i < 5; ++i) {
    RJ_RETURN_IF_ERROR(needFloat(ctx, i, names[i]));
    RJ_RETURN_IF_ERROR(needPerChannel(ctx, i, c, names[i]));
  }
  const bool training = ctx.node().attrInt("training_mode", 0) != 0;
  if (!training && ctx.numOutputs() > 1)
    for (size_t i = 1; i < ctx.numOutputs(); ++i)
      if (ctx.node().hasOutput(i))
        return ctx.error("outputs running_mean/running_var need training_mode=1");
  ctx.setOutput(0, ctx.dtype(0), xs);
  for (size_t i = 1; i < ctx.numOutputs(); ++i) ctx.setOutput(i, ctx.dtype(3), Shape({c}));
  return Status::Ok();
}

Status inferInstanceNormalization(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 3, "input X"));
  const Shape& xs = ctx.shape(0);
  Dim c = xs.rank_known ? xs.dims[1] : ctx.newSymbol("C");
  RJ_RETURN_IF_ERROR(needPerChannel(ctx, 1, c, "scale"));
  RJ_RETURN_IF_ERROR(needPerChannel(ctx, 2, c, "B"));
  ctx.setOutput(0, ctx.dtype(0), xs);
  return Status::Ok();
}

// Mean / InvStdDev: X's dims before `axis`, then ones.
Status inferLayerNormalization(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  const Shape& xs = ctx.shape(0);
  ctx.setOutput(0, ctx.dtype(0), xs);
  const int64_t stash = ctx.node().attrInt("stash_type", 1);
  const DataType u =
      stash == 1 && ctx.dtype(0) != DataType::kFloat64 ? DataType::kFloat32 : ctx.dtype(0);
  if (!xs.rank_known) {
    for (size_t i = 1; i < ctx.numOutputs(); ++i) ctx.setOutput(i, u, Shape::unknownRank());
    return Status::Ok();
  }
  int64_t axis = ctx.node().attrInt("axis", -1);
  const int64_t rank = static_cast<int64_t>(xs.rank());
  if (rank == 0) return ctx.error("input X must have rank >= 1");
  RJ_RETURN_IF_ERROR(normalizeAxis(&axis, rank, ctx.node()));
  // Scale and B must broadcast to X's normalized dims.
  Shape norm;
  norm.dims.assign(xs.dims.begin() + axis, xs.dims.end());
  for (size_t i = 1; i < 3; ++i) {
    if (!ctx.hasInput(i)) continue;
    const Shape& s = ctx.shape(i);
    if (!s.rank_known) continue;
    if (s.rank() > norm.rank())
      return ctx.error(i == 1 ? "Scale " : "B ", s.toString(),
                       " has more dims than the normalized shape ", norm.toString());
    RJ_ASSIGN_OR_RETURN(Shape b, broadcastShapes({norm, s}, ctx.node()));
    if (b.rank() != norm.rank()) return ctx.error("Scale/B do not broadcast to ", norm.toString());
    for (size_t d = 0; d < b.rank(); ++d)
      if (b.dims[d].known() && norm.dims[d].known() && b.dims[d].value != norm.dims[d].value)
        return ctx.error(i == 1 ? "Scale " : "B ", s.toString(), " does not broadcast to ",
                         norm.toString());
  }
  Shape stat = xs;
  for (int64_t d = axis; d < rank; ++d) stat.dims[d] = Dim(1);
  for (size_t i = 1; i < ctx.numOutputs(); ++i) ctx.setOutput(i, u, stat);
  return Status::Ok();
}

// Canonical form: scale/bias per channel ([C], opset 21). The importer marks opset 18-20 nodes
// (scale/bias per group, [num_groups]) with affine_per_group=1.
Status inferGroupNormalization(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 2, "input X"));
  const Shape& xs = ctx.shape(0);
  const int64_t groups = ctx.node().attrInt("num_groups", 0);
  if (groups < 1) return ctx.error("num_groups ", groups, " must be >= 1");
  Dim c = xs.rank_known ? xs.dims[1] : ctx.newSymbol("C");
  if (c.known() && c.value % groups != 0)
    return ctx.error("channel count ", c.value, " is not divisible by num_groups ", groups);
  const bool per_group = ctx.node().attrInt("affine_per_group", 0) != 0;
  RJ_RETURN_IF_ERROR(needPerChannel(ctx, 1, per_group ? Dim(groups) : c, "scale"));
  RJ_RETURN_IF_ERROR(needPerChannel(ctx, 2, per_group ? Dim(groups) : c, "bias"));
  ctx.setOutput(0, ctx.dtype(0), xs);
  return Status::Ok();
}

Status inferMeanVarianceNormalization(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  const Shape& xs = ctx.shape(0);
  if (xs.rank_known) {
    for (int64_t a : ctx.node().attrInts("axes", {0, 2, 3})) {
      RJ_RETURN_IF_ERROR(normalizeAxis(&a, static_cast<int64_t>(xs.rank()), ctx.node()));
    }
  }
  ctx.setOutput(0, ctx.dtype(0), xs);
  return Status::Ok();
}

Status inferLRN(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  RJ_RETURN_IF_ERROR(needRank(ctx, 0, 2, "input X"));
  if (ctx.node().attrInt("size", 0) < 1) return ctx.error("attribute 'size' must be >= 1");
  ctx.setOutput(0, ctx.dtype(0), ctx.shape(0));
  return Status::Ok();
}

// ---------------------------------------------------------------- Gemm / MatMul
Status inferGemm(InferContext& ctx) {
  const DataType t = ctx.dtype(0);
  if (t == DataType::kBool || t == DataType::kString)
    return ctx.error("unsupported element type ", dataTypeName(t));
  if (ctx.dtype(1) != t)
    return ctx.error("A is ", dataTypeName(t), " but B is ", dataTypeName(ctx.dtype(1)));
  if (ctx.hasInput(2) && ctx.dtype(2) != t)
    return ctx.error("C is ", dataTypeName(ctx.dtype(2)), " but A is ", dataTypeName(t));
  const Shape& as = ctx.shape(0);
  const Shape& bs = ctx.shape(1);
  if (as.rank_known && as.rank() != 2) return ctx.error("A ", as.toString(), " must be 2-D");
  if (bs.rank_known && bs.rank() != 2) return ctx.error("B ", bs.toString(), " must be 2-D");
  const bool ta = ctx.node().attrInt("transA", 0) != 0, tb = ctx.node().attrInt("transB", 0) != 0;
  Dim m = as.rank_known ? as.dims[ta ? 1 : 0] : ctx.newSymbol("M");
  Dim ka = as.rank_known ? as.dims[ta ? 0 : 1] : Dim::symbolic("?");
  Dim kb = bs.rank_known ? bs.dims[tb ? 1 : 0] : Dim::symbolic("?");
  Dim n = bs.rank_known ? bs.dims[tb ? 0 : 1] : ctx.newSymbol("N");
  if (ka.known() && kb.known() && ka.value != kb.value)
    return ctx.error("inner dims differ: A ", as.toString(), (ta ? " (transposed)" : ""), " vs B ",
                     bs.toString(), (tb ? " (transposed)" : ""));
  if (ctx.hasInput(2)) {
    const Shape& cs = ctx.shape(2);
    if (cs.rank_known) {
      if (cs.rank() > 2) return ctx.error("C ", cs.toString(), " must have rank <= 2");
      Shape mn({m, n});
      RJ_ASSIGN_OR_RETURN(Shape b, broadcastShapes({mn, cs}, ctx.node()));
      for (size_t d = 0; d < 2; ++d)
        if (b.dims[d].known() && mn.dims[d].known() && b.dims[d].value != mn.dims[d].value)
          return ctx.error("C ", cs.toString(), " does not broadcast to [", m.toString(), ",",
                           n.toString(), "]");
    }
  }
  ctx.setOutput(0, t, Shape({m, n}));
  return Status::Ok();
}

namespace {

Result<Shape> matmulShape(const InferContext& ctx) {
  Shape a = ctx.shape(0), b = ctx.shape(1);
  if (!a.rank_known || !b.rank_known) return Shape::unknownRank();
  if (a.rank() == 0 || b.rank() == 0) return ctx.error("operands must not be scalars");
  const bool a1 = a.rank() == 1, b1 = b.rank() == 1;
  if (a1) a.dims.insert(a.dims.begin(), Dim(1));
  if (b1) b.dims.push_back(Dim(1));
  const Dim& ka = a.dims.back();
  const Dim& kb = b.dims[b.rank() - 2];
  if (ka.known() && kb.known() && ka.value != kb.value)
    return ctx.error("inner dims differ: A ", ctx.shape(0).toString(), " vs B ",
                     ctx.shape(1).toString());
  Shape ab, bb;
  ab.dims.assign(a.dims.begin(), a.dims.end() - 2);
  bb.dims.assign(b.dims.begin(), b.dims.end() - 2);
  RJ_ASSIGN_OR_RETURN(Shape out, broadcastShapes({ab, bb}, ctx.node()));
  if (!a1) out.dims.push_back(a.dims[a.rank() - 2]);
  if (!b1) out.dims.push_back(b.dims.back());
  return out;
}

}  // namespace

Status inferMatMul(InferContext& ctx) {
  const DataType t = ctx.dtype(0);
  if (t == DataType::kBool || t == DataType::kString)
    return ctx.error("unsupported element type ", dataTypeName(t));
  if (ctx.dtype(1) != t)
    return ctx.error("A is ", dataTypeName(t), " but B is ", dataTypeName(ctx.dtype(1)));
  RJ_ASSIGN_OR_RETURN(Shape out, matmulShape(ctx));
  ctx.setOutput(0, t, out);
  return Status::Ok();
}

Status inferMatMulInteger(InferContext& ctx) {
  for (size_t i = 0; i < 2; ++i)
    if (ctx.dtype(i) != DataType::kInt8 && ctx.dtype(i) != DataType::kUInt8)
      return ctx.error("input ", i, " must be int8 or uint8, got ", dataTypeName(ctx.dtype(i)));
  RJ_ASSIGN_OR_RETURN(Shape out, matmulShape(ctx));
  ctx.setOutput(0, DataType::kInt32, out);
  return Status::Ok();
}

// ---------------------------------------------------------------- Softmax family
namespace {

Status inferSoftmaxLike(InferContext& ctx) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input"));
  const Shape& xs = ctx.shape(0);
  if (xs.rank_known) {
    int64_t axis = ctx.node().attrInt("axis", -1);
    const int64_t rank = static_cast<int64_t>(xs.rank());
    // coerce_2d allows axis == rank (everything in one row? no: [prod(all), 1]... ) only < rank.
    RJ_RETURN_IF_ERROR(normalizeAxis(&axis, rank, ctx.node()));
  }
  ctx.setOutput(0, ctx.dtype(0), xs);
  return Status::Ok();
}

}  // namespace

Status inferSoftmax(InferContext& ctx) {
  return inferSoftmaxLike(ctx);
}
Status inferLogSoftmax(InferContext& ctx) {
  return inferSoftmaxLike(ctx);
}
Status inferHardmax(InferContext& ctx) {
  return inferSoftmaxLike(ctx);
}
Status inferLpNormalization(InferContext& ctx) {
  const int64_t p = ctx.node().attrInt("p", 2);
  if (p != 1 && p != 2) return ctx.error("p must be 1 or 2, got ", p);
  return inferSoftmaxLike(ctx);
}

// ---------------------------------------------------------------- Einsum
Status inferEinsum(InferContext& ctx) {
  const DataType t = ctx.dtype(0);
  if (t == DataType::kBool || t == DataType::kString)
    return ctx.error("unsupported element type ", dataTypeName(t));
  std::vector<size_t> ranks;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    if (ctx.dtype(i) != t)
      return ctx.error("input ", i, " is ", dataTypeName(ctx.dtype(i)), " but input 0 is ",
                       dataTypeName(t));
    if (!ctx.shape(i).rank_known) {
      ctx.setOutput(0, t, Shape::unknownRank());
      return Status::Ok();
    }
    ranks.push_back(ctx.shape(i).rank());
  }
  RJ_ASSIGN_OR_RETURN(EinsumLabels L, einsumLabels(ctx.node(), ranks));
  std::vector<Dim> size(static_cast<size_t>(L.num_labels), Dim(1));
  std::vector<bool> seen(static_cast<size_t>(L.num_labels), false);
  for (size_t k = 0; k < L.in.size(); ++k) {
    const Shape& s = ctx.shape(k);
    for (size_t a = 0; a < L.in[k].size(); ++a) {
      const int id = L.in[k][a];
      const Dim& d = s.dims[a];
      const bool ell = id >= 52;
      if (!seen[id]) {
        size[id] = d;
        seen[id] = true;
        continue;
      }
      Dim& cur = size[id];
      if (d == cur) continue;
      if (ell && d.known() && d.value == 1) continue;
      if (ell && cur.known() && cur.value == 1) {
        cur = d;
        continue;
      }
      if (d.known() && cur.known())
        return ctx.error("label size mismatch: dim ", a, " of input ", k, " is ", d.value,
                         " but the same label elsewhere is ", cur.value);
      if (d.known()) cur = d;
    }
  }
  Shape out;
  for (int id : L.out) out.dims.push_back(size[id]);
  ctx.setOutput(0, t, out);
  return Status::Ok();
}

// ---------------------------------------------------------------- RNNs
namespace {

// X [seq, batch, input] (layout 0) or [batch, seq, input]; W [dirs, gates*H, input].
Status inferRnnLike(InferContext& ctx, int64_t gates, size_t num_outputs) {
  RJ_RETURN_IF_ERROR(needFloat(ctx, 0, "input X"));
  for (size_t i = 1; i < 3; ++i)
    if (ctx.dtype(i) != ctx.dtype(0))
      return ctx.error(i == 1 ? "W" : "R", " is ", dataTypeName(ctx.dtype(i)), " but X is ",
                       dataTypeName(ctx.dtype(0)));
  const Node& n = ctx.node();
  const std::string dir = n.attrString("direction", "forward");
  if (dir != "forward" && dir != "reverse" && dir != "bidirectional")
    return ctx.error("unknown direction '", dir, "'");
  const int64_t dirs = dir == "bidirectional" ? 2 : 1;
  const int64_t layout = n.attrInt("layout", 0);
  if (layout != 0 && layout != 1) return ctx.error("layout ", layout, " must be 0 or 1");
  const Shape& xs = ctx.shape(0);
  const Shape& ws = ctx.shape(1);
  const Shape& rs = ctx.shape(2);
  if (xs.rank_known && xs.rank() != 3) return ctx.error("X ", xs.toString(), " must be 3-D");
  if (ws.rank_known && ws.rank() != 3) return ctx.error("W ", ws.toString(), " must be 3-D");
  if (rs.rank_known && rs.rank() != 3) return ctx.error("R ", rs.toString(), " must be 3-D");
  Dim hidden = n.hasAttr("hidden_size") ? Dim(n.attrInt("hidden_size", 0))
               : rs.rank_known          ? rs.dims[2]
                                        : ctx.newSymbol("hidden");
  if (hidden.known() && hidden.value < 1) return ctx.error("hidden_size must be >= 1");
  if (ws.rank_known && ws.dims[0].known() && ws.dims[0].value != dirs)
    return ctx.error("W ", ws.toString(), " must have ", dirs, " directions");
  if (ws.rank_known && hidden.known() && ws.dims[1].known() &&
      ws.dims[1].value != gates * hidden.value)
    return ctx.error("W ", ws.toString(), " dim 1 must be ", gates,
                     " * hidden_size = ", gates * hidden.value);
  if (rs.rank_known && hidden.known() &&
      ((rs.dims[1].known() && rs.dims[1].value != gates * hidden.value) ||
       (rs.dims[2].known() && rs.dims[2].value != hidden.value)))
    return ctx.error("R ", rs.toString(), " must be [", dirs, ", ", gates * hidden.value, ", ",
                     hidden.value, "]");
  if (xs.rank_known && ws.rank_known && xs.dims[2].known() && ws.dims[2].known() &&
      xs.dims[2].value != ws.dims[2].value)
    return ctx.error("X ", xs.toString(), " input size differs from W ", ws.toString());
  Dim seq = xs.rank_known ? xs.dims[layout == 0 ? 0 : 1] : ctx.newSymbol("seq");
  Dim batch = xs.rank_known ? xs.dims[layout == 0 ? 1 : 0] : ctx.newSymbol("batch");
  const DataType t = ctx.dtype(0);
  if (num_outputs > 0 && ctx.numOutputs() > 0)
    ctx.setOutput(0, t,
                  layout == 0 ? Shape({seq, Dim(dirs), batch, hidden})
                              : Shape({batch, seq, Dim(dirs), hidden}));
  for (size_t i = 1; i < std::min(num_outputs, ctx.numOutputs()); ++i)
    ctx.setOutput(
        i, t, layout == 0 ? Shape({Dim(dirs), batch, hidden}) : Shape({batch, Dim(dirs), hidden}));
  return Status::Ok();
}

}  // namespace

Status inferLSTM(InferContext& ctx) {
  return inferRnnLike(ctx, 4, 3);
}
Status inferGRU(InferContext& ctx) {
  return inferRnnLike(ctx, 3, 2);
}
Status inferRNN(InferContext& ctx) {
  return inferRnnLike(ctx, 1, 2);
}

}  // namespace ramjet::ops
