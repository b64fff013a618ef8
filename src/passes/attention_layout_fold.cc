// AttentionLayoutFold: Attention(Q, K, V) whose inputs are exporter head splits and whose output
// is merged back -> MultiHeadAttention reading the packed projections directly:
//   sbh (torch nn.MultiheadAttention): X[S,B,W] [-> Slice(last axis)] -> Reshape[S,B*H,D]
//       -> Transpose(1,0,2) -> Attention -> Transpose(1,0,2)
//   bsh (HF-style):                    X[B,S,W] [-> Slice(last axis)] -> Reshape[B,S,H,D]
//       -> Transpose(0,2,1,3) -> Attention -> Transpose(0,2,1,3)
// The Slices, head-split Reshapes and the four Transposes per attention disappear (DCE); the
// output Transpose becomes a Reshape (an alias) back to the head-split shape. Level 4: after
// AttentionFusion and ReshapeChainSimplification settled the Transposes.
#include <cmath>

#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

bool sameDim(const Dim& a, const Dim& b) { return a == b && (a.known() || !a.symbol.empty()); }

struct HeadSource {
  Value* x = nullptr;   // the packed [S,B,W] / [B,S,W] tensor
  int64_t offset = 0;   // first column
  int64_t heads = 0, head_size = 0;
};

bool isPerm(const Node* t, const std::vector<int64_t>& perm) {
  return t && t->domain.empty() && t->attrInts("perm") == perm;
}

// Column range of a Slice over the last axis with step 1 on a tensor of known last dim.
bool lastAxisSlice(const Node* sl, int64_t* begin, int64_t* end) {
  if (!sl || sl->inputs.size() < 3) return false;
  const Shape& s = sl->inputs[0]->type.shape;
  if (!s.rank_known || s.rank() == 0 || !s.dims.back().known()) return false;
  const int64_t r = static_cast<int64_t>(s.rank()), w = s.dims.back().value;
  std::vector<int64_t> st, en, ax = {r - 1}, sp = {1};
  if (!constantInts(sl->inputs[1], &st) || !constantInts(sl->inputs[2], &en) || st.size() != 1 || en.size() != 1)
    return false;
  if (sl->inputs.size() > 3 && sl->inputs[3] && !constantInts(sl->inputs[3], &ax)) return false;
  if (sl->inputs.size() > 4 && sl->inputs[4] && !constantInts(sl->inputs[4], &sp)) return false;
  if (ax.size() != 1 || sp.size() != 1 || sp[0] != 1) return false;
  if (ax[0] < 0) ax[0] += r;
  if (ax[0] != r - 1) return false;
  int64_t b = st[0] < 0 ? st[0] + w : st[0], e = en[0] < 0 ? en[0] + w : en[0];
  b = std::clamp<int64_t>(b, 0, w);
  e = std::clamp<int64_t>(e, 0, w);
  if (e <= b) return false;
  *begin = b;
  *end = e;
  return true;
}

bool matchSource(Value* t, bool sbh, HeadSource* out) {
  Node* tr = producerOf(t, "Transpose");
  if (!isPerm(tr, sbh ? std::vector<int64_t>{1, 0, 2} : std::vector<int64_t>{0, 2, 1, 3})) return false;
  Node* rs = producerOf(tr->inputs[0], "Reshape");
  if (!rs) return false;
  Value* in = rs->inputs[0];
  const Shape& is = in->type.shape;
  const Shape& os = rs->outputs[0]->type.shape;
  if (!is.rank_known || !os.rank_known || is.rank() != 3 || os.rank() != (sbh ? 3u : 4u)) return false;
  if (!is.dims[2].known()) return false;
  const Dim& d = os.dims.back();
  if (!d.known() || d.value <= 0 || is.dims[2].value % d.value != 0) return false;
  if (sbh) {
    // [S, B, H*D] -> [S, B*H, D]: the element count fixes dim 1 = B*H.
    if (!sameDim(is.dims[0], os.dims[0])) return false;
  } else {
    if (!sameDim(is.dims[0], os.dims[0]) || !sameDim(is.dims[1], os.dims[1]) || !os.dims[2].known() ||
        os.dims[2].value * d.value != is.dims[2].value)
      return false;
  }
  out->head_size = d.value;
  out->heads = is.dims[2].value / d.value;
  out->x = in;
  out->offset = 0;
  int64_t b = 0, e = 0;
  if (Node* sl = producerOf(in, "Slice"); sl && lastAxisSlice(sl, &b, &e) && e - b == is.dims[2].value) {
    out->x = sl->inputs[0];
    out->offset = b;
  }
  return true;
}

// torch.nn.MultiheadAttention's packed-QKV split as exported by torch 2.x:
//   R = Reshape(X[..., K*W] -> [..., K, W]); U = Unsqueeze(R, 0); T = Transpose(U, [n,1..n-1,0,n+1]);
//   S = Squeeze(T, [n]); G_i = Gather(S, i, axis 0)
// G_i is the column block X[..., i*W:(i+1)*W]: it becomes Slice(X) over the last axis, which the
// fold below then reads in place. Returns the Slice or null.
Node* gatherSplitToSlice(Graph& g, Rewriter& rw, Node* ga) {
  if (ga->op_type != "Gather" || !ga->domain.empty() || ga->attrInt("axis", 0) != 0 || ga->inputs.size() != 2) return nullptr;
  std::vector<int64_t> idx;
  if (!constantInts(ga->inputs[1], &idx) || idx.size() != 1 || !ga->inputs[1]->type.shape.rank_known ||
      ga->inputs[1]->type.shape.rank() != 0)
    return nullptr;
  Node* sq = producerOf(ga->inputs[0], "Squeeze");
  if (!sq || sq->inputs.size() < 2) return nullptr;
  Node* tr = producerOf(sq->inputs[0], "Transpose");
  if (!tr) return nullptr;
  // U = Unsqueeze(Reshape(X), 0), or one Reshape straight to [1, ..., K, W] (what
  // ReshapeChainSimplification makes of the pair).
  Node* un = producerOf(tr->inputs[0], "Unsqueeze");
  Node* rs = un ? (un->inputs.size() >= 2 ? producerOf(un->inputs[0], "Reshape") : nullptr)
                : producerOf(tr->inputs[0], "Reshape");
  if (!rs) return nullptr;
  if (un) {
    std::vector<int64_t> ua;
    if (!constantInts(un->inputs[1], &ua) || ua != std::vector<int64_t>{0}) return nullptr;
  }
  Value* x = rs->inputs[0];
  const Shape& xs = x->type.shape;
  const Shape& us = tr->inputs[0]->type.shape;  // [1, X0..X(n-2), K, W]
  if (!xs.rank_known || !us.rank_known || xs.rank() < 2 || us.rank() != xs.rank() + 2) return nullptr;
  const int64_t n = static_cast<int64_t>(xs.rank());
  if (!us.dims[0].known() || us.dims[0].value != 1) return nullptr;
  const Dim& kd = us.dims[static_cast<size_t>(n)];
  const Dim& wd = us.dims[static_cast<size_t>(n + 1)];
  if (!xs.dims.back().known() || !kd.known() || !wd.known() || kd.value * wd.value != xs.dims.back().value) return nullptr;
  for (int64_t k = 0; k + 1 < n; ++k)
    if (!sameDim(xs.dims[static_cast<size_t>(k)], us.dims[static_cast<size_t>(k + 1)])) return nullptr;
  std::vector<int64_t> sa;
  if (!constantInts(sq->inputs[1], &sa) || sa.size() != 1 || (sa[0] != n && sa[0] != -2)) return nullptr;
  std::vector<int64_t> perm = {n};
  for (int64_t k = 1; k < n; ++k) perm.push_back(k);
  perm.push_back(0);
  perm.push_back(n + 1);
  if (!isPerm(tr, perm)) return nullptr;
  int64_t i = idx[0] < 0 ? idx[0] + kd.value : idx[0];
  if (i < 0 || i >= kd.value) return nullptr;
  auto c = [&](const std::string& nm, int64_t v) {
    Tensor t(DataType::kInt64, {1});
    t.data<int64_t>()[0] = v;
    return makeConstant(g, ga->name + nm, t);
  };
  return rw.replace(ga, "Slice", {x, c("_start", i * wd.value), c("_end", (i + 1) * wd.value), c("_axis", n - 1)});
}

class AttentionLayoutFold final : public Pass {
 public:
  const char* name() const override { return "AttentionLayoutFold"; }
  const char* description() const override {
    return "head-split Slice/Reshape/Transpose around Attention -> MultiHeadAttention on packed QKV";
  }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    // A device lowering: only for a target that asked for it (the builder sets can_emit).
    if (!cfg.can_emit || !cfg.canEmit("MultiHeadAttention")) return Status::Ok();
    Rewriter rw{g, stats, {}};
    if (cfg.canEmit("Slice"))
      for (Node* n : nodeList(g))
        if (rw.alive(n) && n->op_type == "Gather") gatherSplitToSlice(g, rw, n);
    for (Node* att : nodeList(g)) {
      if (!rw.alive(att) || att->op_type != "Attention" || !att->domain.empty()) continue;
      if (att->inputs.size() > 3 && att->inputs[3]) continue;  // masks stay with Attention
      const Shape& qs = att->inputs[0]->type.shape;
      if (!qs.rank_known || (qs.rank() != 3 && qs.rank() != 4)) continue;
      bool sbh = qs.rank() == 3;
      HeadSource src[3];
      bool ok = true;
      for (int i = 0; i < 3 && ok; ++i) ok = matchSource(att->inputs[static_cast<size_t>(i)], sbh, &src[i]);
      // torch 2.x MHA: the sbh split [B*H,S,D] reshaped to [B,H,S,D] before Attention, merged
      // back through Transpose(2,0,1,3) -> [S,B,H,D].
      bool via_reshape = false;
      if (!ok && qs.rank() == 4) {
        ok = true;
        for (int i = 0; i < 3 && ok; ++i) {
          Value* in = att->inputs[static_cast<size_t>(i)];
          Node* r = producerOf(in, "Reshape");
          const Shape& os = in->type.shape;
          const Shape* is = r ? &r->inputs[0]->type.shape : nullptr;
          ok = r && is->rank_known && is->rank() == 3 && os.rank_known && os.rank() == 4 &&
               sameDim(os.dims[2], is->dims[1]) && sameDim(os.dims[3], is->dims[2]) && os.dims[1].known() &&
               matchSource(r->inputs[0], true, &src[i]) && src[i].heads == os.dims[1].value;
        }
        sbh = via_reshape = ok;
      }
      if (!ok) continue;
      if (src[0].heads != src[1].heads || src[0].heads != src[2].heads || src[0].head_size != src[1].head_size)
        continue;
      // Batch dims of the packed tensors must agree (so B*H means the same everywhere).
      const int bdim = sbh ? 1 : 0;
      const Dim& b0 = src[0].x->type.shape.dims[bdim];
      if (!sameDim(b0, src[1].x->type.shape.dims[bdim]) || !sameDim(b0, src[2].x->type.shape.dims[bdim])) continue;
      Node* ot = soleConsumer(att->outputs[0]);
      if (!ot || !rw.alive(ot) || ot->op_type != "Transpose" ||
          !isPerm(ot, via_reshape ? std::vector<int64_t>{2, 0, 1, 3}
                      : sbh       ? std::vector<int64_t>{1, 0, 2}
                                  : std::vector<int64_t>{0, 2, 1, 3}))
        continue;
      const DataType dt = att->inputs[0]->type.dtype;
      if (src[0].x->type.dtype != dt || src[1].x->type.dtype != dt || src[2].x->type.dtype != dt) continue;
      const int64_t heads = src[0].heads, d = src[0].head_size, dv = src[2].head_size;
      Node* mha = rw.add("MultiHeadAttention", att->name + "_mha", {src[0].x, src[1].x, src[2].x});
      mha->attrs["layout"] = Attribute::fromString(sbh ? "sbh" : "bsh");
      mha->attrs["num_heads"] = Attribute::fromInt(heads);
      mha->attrs["head_size"] = Attribute::fromInt(d);
      mha->attrs["v_head_size"] = Attribute::fromInt(dv);
      mha->attrs["q_offset"] = Attribute::fromInt(src[0].offset);
      mha->attrs["k_offset"] = Attribute::fromInt(src[1].offset);
      mha->attrs["v_offset"] = Attribute::fromInt(src[2].offset);
      mha->attrs["scale"] = Attribute::fromFloat(
          att->hasAttr("scale") ? att->attrFloat("scale", 1.f) : 1.f / std::sqrt(static_cast<float>(d)));
      // [Sq, B, H*Dv] -> [Sq, B*H, Dv] (sbh) or [B, Sq, H*Dv] -> [B, Sq, H, Dv] (bsh).
      // via_reshape: [Sq, B, H*Dv] -> [Sq, B, H, Dv], the merge Transpose's output.
      std::vector<int64_t> shape = via_reshape ? std::vector<int64_t>{0, 0, heads, dv}
                                   : sbh       ? std::vector<int64_t>{0, -1, dv}
                                               : std::vector<int64_t>{0, 0, heads, dv};
      Tensor st(DataType::kInt64, {static_cast<int64_t>(shape.size())});
      std::copy(shape.begin(), shape.end(), st.data<int64_t>());
      Value* sv = makeConstant(g, ot->name + "_heads", st);
      Node* r = rw.replace(ot, "Reshape", {mha->outputs[0], sv});
      r->attrs["allowzero"] = Attribute::fromInt(0);
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createAttentionLayoutFold() { return std::make_unique<AttentionLayoutFold>(); }

}  // namespace ramjet::passes
