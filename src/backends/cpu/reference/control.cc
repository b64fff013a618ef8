// Reference kernels for If, Loop and Scan: the bodies run through the interpreter's
// SubgraphRunner, so outer-scope names resolve to the caller's values.
#include <algorithm>
#include <cstring>
#include <limits>

#include "ops/misc_shapes.h"
#include "ops/op_registry.h"

namespace ramjet::ops {
namespace {

// Guards against a body that never sets cond=false with no trip count.
constexpr int64_t kMaxUnboundedIterations = int64_t{1} << 31;

Status needRunner(const KernelContext& ctx) {
  if (!ctx.subgraphs) return makeError(StatusCode::kInternal, ctx.node.describe(), ": no subgraph runner");
  return Status::Ok();
}

Result<bool> boolScalar(const KernelContext& ctx, const Tensor& t, const char* what) {
  if (t.numel() != 1)
    return ctx.error(what, " must hold exactly one value, got ", t.type().toString());
  return t.getInt(0) != 0;
}

// Slice `index` along `axis` (the axis is removed).
Tensor sliceAlong(const Tensor& t, int64_t axis, int64_t index) {
  std::vector<int64_t> dims = t.dims();
  const int64_t len = dims[axis];
  const size_t elem = dataTypeSize(t.dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= dims[i];
  for (size_t i = axis + 1; i < dims.size(); ++i) inner *= dims[i];
  dims.erase(dims.begin() + axis);
  Tensor out(t.dtype(), dims);
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.raw());
  const size_t row = static_cast<size_t>(inner) * elem;
  for (int64_t o = 0; o < outer; ++o)
    if (row) std::memcpy(dst + o * row, src + (o * len + index) * row, row);
  return out;
}

// Stacks equally shaped tensors along a new `axis`.
Result<Tensor> stackAlong(const KernelContext& ctx, const std::vector<Tensor>& parts, int64_t axis,
                          DataType dtype, const char* what) {
  if (parts.empty()) return Tensor(dtype, {0});
  const Tensor& first = parts[0];
  for (const Tensor& p : parts)
    if (p.dims() != first.dims() || p.dtype() != first.dtype())
      return ctx.error(what, " changes shape or type between iterations: ", first.type().toString(), " vs ",
                       p.type().toString());
  const int64_t rank = static_cast<int64_t>(first.rank());
  if (axis < 0) axis += rank + 1;
  if (axis < 0 || axis > rank) return ctx.error(what, ": axis out of range for rank ", rank + 1);
  std::vector<int64_t> dims = first.dims();
  dims.insert(dims.begin() + axis, static_cast<int64_t>(parts.size()));
  Tensor out(first.dtype(), dims);
  const size_t elem = dataTypeSize(first.dtype());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= first.dims()[i];
  for (int64_t i = axis; i < rank; ++i) inner *= first.dims()[i];
  const size_t row = static_cast<size_t>(inner) * elem;
  const int64_t len = static_cast<int64_t>(parts.size());
  auto* dst = static_cast<uint8_t*>(out.raw());
  for (int64_t t = 0; t < len; ++t) {
    const auto* src = static_cast<const uint8_t*>(parts[t].raw());
    for (int64_t o = 0; o < outer; ++o)
      if (row) std::memcpy(dst + (o * len + t) * row, src + o * row, row);
  }
  return out;
}

}  // namespace

Status refIf(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(needRunner(ctx));
  RJ_ASSIGN_OR_RETURN(bool cond, boolScalar(ctx, ctx.input(0), "cond"));
  const Graph* branch = ctx.node.attrGraph(cond ? "then_branch" : "else_branch");
  if (!branch) return ctx.error("missing ", cond ? "then_branch" : "else_branch");
  auto outs = ctx.subgraphs->run(*branch, {});
  if (!outs.ok()) return outs.status().withContext(ctx.node.describe() + (cond ? " then_branch" : " else_branch"));
  if (outs->size() != ctx.outputs.size())
    return ctx.error("branch produced ", outs->size(), " outputs, node has ", ctx.outputs.size());
  for (size_t i = 0; i < outs->size(); ++i) ctx.outputs[i] = (*outs)[i];
  return Status::Ok();
}

Status refLoop(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(needRunner(ctx));
  const Graph* body = ctx.node.attrGraph("body");
  if (!body) return ctx.error("missing body");
  const size_t n_carried = ctx.inputs.size() - 2;
  const size_t n_scan = ctx.outputs.size() - n_carried;
  int64_t trip = std::numeric_limits<int64_t>::max();
  if (ctx.hasInput(0)) {
    if (ctx.input(0).numel() != 1) return ctx.error("M must be a scalar, got ", ctx.input(0).type().toString());
    trip = ctx.input(0).getInt(0);
  }
  bool cond = true;
  if (ctx.hasInput(1)) { RJ_ASSIGN_OR_RETURN(cond, boolScalar(ctx, ctx.input(1), "cond")); }
  if (!ctx.hasInput(0) && !ctx.hasInput(1)) return ctx.unsupported("a Loop with neither M nor cond never ends");
  std::vector<Tensor> carried;
  for (size_t i = 0; i < n_carried; ++i) {
    if (!ctx.hasInput(2 + i)) return ctx.error("loop-carried input ", i, " is missing");
    carried.push_back(ctx.input(2 + i));
  }
  std::vector<std::vector<Tensor>> scans(n_scan);
  for (int64_t it = 0; it < trip && cond; ++it) {
    if (it >= kMaxUnboundedIterations) return ctx.error("ran ", it, " iterations without finishing");
    std::vector<Tensor> in;
    in.push_back(Tensor::scalar<int64_t>(it));
    in.push_back(Tensor::scalar<bool>(cond));
    for (auto& c : carried) in.push_back(c);
    auto outs = ctx.subgraphs->run(*body, in);
    if (!outs.ok()) return outs.status().withContext(ctx.node.describe() + " body, iteration " + std::to_string(it));
    if (outs->size() != 1 + n_carried + n_scan)
      return ctx.error("body produced ", outs->size(), " outputs, expected ", 1 + n_carried + n_scan);
    RJ_ASSIGN_OR_RETURN(cond, boolScalar(ctx, (*outs)[0], "body output cond"));
    for (size_t i = 0; i < n_carried; ++i) carried[i] = (*outs)[1 + i];
    for (size_t k = 0; k < n_scan; ++k) scans[k].push_back((*outs)[1 + n_carried + k]);
  }
  for (size_t i = 0; i < n_carried; ++i) ctx.outputs[i] = carried[i];
  for (size_t k = 0; k < n_scan; ++k) {
    DataType dt = misc::bodyOutputType(*body, 1 + n_carried + k).dtype;
    RJ_ASSIGN_OR_RETURN(ctx.outputs[n_carried + k], stackAlong(ctx, scans[k], 0, dt, "scan output"));
  }
  return Status::Ok();
}

namespace {

// One Scan-9+ execution over unbatched inputs.
Status scanOnce(KernelContext& ctx, const Graph& body, const std::vector<Tensor>& states_in,
                const std::vector<Tensor>& scan_in, const std::vector<int64_t>& in_axes,
                const std::vector<int64_t>& in_dirs, const std::vector<int64_t>& out_axes,
                const std::vector<int64_t>& out_dirs, size_t n_scan_out, std::vector<Tensor>* results) {
  std::vector<Tensor> states = states_in;
  int64_t len = -1;
  std::vector<int64_t> axes = in_axes;
  for (size_t j = 0; j < scan_in.size(); ++j) {
    int64_t r = static_cast<int64_t>(scan_in[j].rank());
    if (axes[j] < -r || axes[j] >= r) return ctx.error("scan_input_axes[", j, "] = ", axes[j], " is out of range for rank ", r);
    if (axes[j] < 0) axes[j] += r;
    int64_t l = scan_in[j].dims()[axes[j]];
    if (len >= 0 && l != len) return ctx.error("scan inputs have different sequence lengths (", len, " vs ", l, ")");
    len = l;
  }
  std::vector<std::vector<Tensor>> outs(n_scan_out);
  for (int64_t t = 0; t < len; ++t) {
    std::vector<Tensor> in = states;
    for (size_t j = 0; j < scan_in.size(); ++j)
      in.push_back(sliceAlong(scan_in[j], axes[j], in_dirs[j] ? len - 1 - t : t));
    auto r = ctx.subgraphs->run(body, in);
    if (!r.ok()) return r.status().withContext(ctx.node.describe() + " body, step " + std::to_string(t));
    if (r->size() != states.size() + n_scan_out)
      return ctx.error("body produced ", r->size(), " outputs, expected ", states.size() + n_scan_out);
    for (size_t i = 0; i < states.size(); ++i) states[i] = (*r)[i];
    for (size_t k = 0; k < n_scan_out; ++k) outs[k].push_back((*r)[states.size() + k]);
  }
  *results = states;
  for (size_t k = 0; k < n_scan_out; ++k) {
    if (out_dirs[k]) std::reverse(outs[k].begin(), outs[k].end());
    DataType dt = misc::bodyOutputType(body, states.size() + k).dtype;
    int64_t ax = out_axes[k];
    if (!outs[k].empty() && ax < 0) ax += static_cast<int64_t>(outs[k][0].rank()) + 1;
    RJ_ASSIGN_OR_RETURN(Tensor s, stackAlong(ctx, outs[k], ax, dt, "scan output"));
    results->push_back(std::move(s));
  }
  return Status::Ok();
}

}  // namespace

Status refScan(KernelContext& ctx) {
  RJ_RETURN_IF_ERROR(needRunner(ctx));
  const Graph* body = ctx.node.attrGraph("body");
  if (!body) return ctx.error("missing body");
  const bool v8 = ctx.node.attrInt("scan8_batched", 0) != 0;
  const size_t first = v8 && ctx.node.attrInt("scan8_lens", 0) ? 1 : 0;
  const size_t m = static_cast<size_t>(ctx.node.attrInt("num_scan_inputs", 0));
  const size_t n_state = ctx.inputs.size() - first - m;
  const size_t n_scan_out = ctx.outputs.size() - n_state;
  auto dirs_or = [&](const char* a, const char* legacy, size_t n) {
    std::vector<int64_t> v = ctx.node.attrInts(a, ctx.node.attrInts(legacy, std::vector<int64_t>(n, 0)));
    return v;
  };
  std::vector<int64_t> in_axes = ctx.node.attrInts("scan_input_axes", std::vector<int64_t>(m, 0));
  std::vector<int64_t> in_dirs = dirs_or("scan_input_directions", "directions", m);
  std::vector<int64_t> out_axes = ctx.node.attrInts("scan_output_axes", std::vector<int64_t>(n_scan_out, 0));
  std::vector<int64_t> out_dirs = ctx.node.attrInts("scan_output_directions", std::vector<int64_t>(n_scan_out, 0));
  if (in_axes.size() != m || in_dirs.size() != m || out_axes.size() != n_scan_out || out_dirs.size() != n_scan_out)
    return ctx.error("scan axes/directions attributes have the wrong length");
  std::vector<Tensor> states, scans;
  for (size_t i = 0; i < n_state; ++i) states.push_back(ctx.input(first + i));
  for (size_t j = 0; j < m; ++j) scans.push_back(ctx.input(first + n_state + j));
  if (!v8) return scanOnce(ctx, *body, states, scans, in_axes, in_dirs, out_axes, out_dirs, n_scan_out, &ctx.outputs);

  // Scan-8: every input has a leading batch axis; scan inputs scan along axis 1 of the batch.
  int64_t batch = -1;
  for (const Tensor* t : ctx.inputs) {
    if (!t || (first && t == ctx.inputs[0])) continue;
    if (t->rank() < 1) return ctx.error("Scan-8 inputs must have a batch axis");
    if (batch >= 0 && t->dims()[0] != batch) return ctx.error("Scan-8 inputs disagree on the batch size");
    batch = t->dims()[0];
  }
  for (const Tensor& s : scans)
    if (s.rank() < 2) return ctx.error("Scan-8 scan inputs must be [batch, sequence, ...]");
  if (first) {
    const Tensor& lens = ctx.input(0);
    for (int64_t b = 0; b < lens.numel(); ++b)
      if (lens.getInt(b) != scans[0].dims()[1])
        return ctx.unsupported("sequence_lens shorter than the scan inputs are not supported");
  }
  std::vector<std::vector<Tensor>> per_batch(ctx.outputs.size());
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<Tensor> st, sc, res;
    for (auto& s : states) st.push_back(sliceAlong(s, 0, b));
    for (auto& s : scans) sc.push_back(sliceAlong(s, 0, b));
    RJ_RETURN_IF_ERROR(scanOnce(ctx, *body, st, sc, in_axes, in_dirs, out_axes, out_dirs, n_scan_out, &res));
    for (size_t i = 0; i < res.size(); ++i) per_batch[i].push_back(std::move(res[i]));
  }
  for (size_t i = 0; i < ctx.outputs.size(); ++i) {
    DataType dt = misc::bodyOutputType(*body, i).dtype;
    RJ_ASSIGN_OR_RETURN(ctx.outputs[i], stackAlong(ctx, per_batch[i], 0, dt, "Scan-8 output"));
  }
  return Status::Ok();
}

}  // namespace ramjet::ops
