// PatchifyConvToGemm: a 2-D Conv whose kernel equals its stride (no padding, no dilation, one
// group; a ViT/Swin/ConvNeXt patch embedding, e.g. 16x16 stride 16 from 3 channels) is a GEMM
// over non-overlapping patches:
//   X [N,C,H,W] -> Reshape [N,C,H/p,p,W/q,q] -> Transpose(0,2,4,1,3,5) -> Reshape [N,HW/pq,C*p*q]
//   -> MatMul W' [C*p*q, K] (+ bias) -> Transpose(0,2,1) -> Reshape [N,K,H/p,W/q]
// cuDNN runs such a convolution from 3 input channels far below tensor-core speed (ViT-B/16,
// batch 64, FP16 on the H100: 0.53 ms); the GEMM is a few hundredths of that, and the trailing
// transpose often cancels against the model's own flatten-and-transpose. Level 2, so MatMul +
// Add becomes a Gemm with its bias epilogue.
#include "passes/graph_rewrite.h"

namespace ramjet::passes {
namespace {

class PatchifyConvToGemm final : public Pass {
 public:
  const char* name() const override { return "PatchifyConvToGemm"; }
  const char* description() const override { return "Conv with kernel == stride (patch embedding) -> reshape/transpose + MatMul"; }
  Status run(Graph& g, const PassConfig& cfg, PassStats* stats) override {
    if (!cfg.canEmit("MatMul") || !cfg.canEmit("Transpose") || !cfg.canEmit("Reshape")) return Status::Ok();
    const std::set<std::string> outer = outerScopeNames(g);
    for (Node* conv : nodeList(g)) {
      if (conv->op_type != "Conv" || !conv->domain.empty() || conv->inputs.size() < 2) continue;
      Value* x = conv->inputs[0];
      const Value* w = conv->inputs[1];
      Value* b = conv->inputs.size() > 2 ? conv->inputs[2] : nullptr;
      if (b && !cfg.canEmit("Add")) continue;
      if (!x || !w || !w->constant || (b && !b->constant) || !isFloatType(x->type.dtype)) continue;
      if (w->constant->dtype() != x->type.dtype || (b && b->constant->dtype() != x->type.dtype)) continue;
      const Shape& xs = x->type.shape;
      const auto& wd = w->constant->dims();
      if (!xs.rank_known || xs.rank() != 4 || wd.size() != 4) continue;
      if (!xs.dims[1].known() || !xs.dims[2].known() || !xs.dims[3].known()) continue;
      const int64_t c = xs.dims[1].value, h = xs.dims[2].value, wi = xs.dims[3].value;
      const int64_t k = wd[0], p = wd[2], q = wd[3];
      if (wd[1] != c || p < 2 || q < 2 || h % p || wi % q || conv->attrInt("group", 1) != 1) continue;
      const std::vector<int64_t> ks = conv->attrInts("kernel_shape", {p, q}), st = conv->attrInts("strides", {1, 1});
      const std::vector<int64_t> dl = conv->attrInts("dilations", {1, 1}), pads = conv->attrInts("pads", {0, 0, 0, 0});
      const std::string ap = conv->attrString("auto_pad", "NOTSET");
      if (ks != std::vector<int64_t>{p, q} || st != std::vector<int64_t>{p, q} || dl != std::vector<int64_t>{1, 1} ||
          pads != std::vector<int64_t>{0, 0, 0, 0} || (ap != "NOTSET" && ap != "VALID"))
        continue;
      Value* y = conv->outputs[0];
      if (!y || outer.count(y->name)) continue;
      const int64_t hp = h / p, wq = wi / q, patch = c * p * q;
      // W [K, C, p, q] -> W' [C*p*q, K].
      Tensor wt = w->constant->dtype() == DataType::kFloat32 ? *w->constant : w->constant->cast(DataType::kFloat32);
      Tensor wm(DataType::kFloat32, {patch, k});
      for (int64_t o = 0; o < k; ++o)
        for (int64_t i = 0; i < patch; ++i) wm.data<float>()[i * k + o] = wt.data<float>()[o * patch + i];
      const std::string base = conv->name;
      auto shape = [&](std::vector<int64_t> d) {
        const int64_t n = static_cast<int64_t>(d.size());
        return makeConstant(g, base + "_shape", Tensor::fromVector<int64_t>(d, {n}));
      };
      Value* wv = makeConstant(g, w->name + "_patch_gemm", x->type.dtype == DataType::kFloat32 ? wm : wm.cast(x->type.dtype));
      g.removeNode(conv);
      Node* r1 = addNodeWithOutput(g, "Reshape", base + "_patches", {x, shape({0, c, hp, p, wq, q})});
      Node* t1 = addNodeWithOutput(g, "Transpose", base + "_patches_t", {r1->outputs[0]});
      t1->attrs["perm"] = Attribute::fromInts({0, 2, 4, 1, 3, 5});
      Node* r2 = addNodeWithOutput(g, "Reshape", base + "_rows", {t1->outputs[0], shape({0, hp * wq, patch})});
      Node* mm = addNodeWithOutput(g, "MatMul", base + "_gemm", {r2->outputs[0], wv});
      Value* z = mm->outputs[0];
      if (b) z = addNodeWithOutput(g, "Add", base + "_bias", {z, b})->outputs[0];
      Node* t2 = addNodeWithOutput(g, "Transpose", base + "_nchw", {z});
      t2->attrs["perm"] = Attribute::fromInts({0, 2, 1});
      g.addNode("Reshape", uniqueNodeName(g, base), {t2->outputs[0], shape({0, k, hp, wq})}, {y});
      stats->nodes_removed += 1;
      stats->nodes_added += b ? 7 : 6;
      stats->rewrites += 1;
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> createPatchifyConvToGemm() { return std::make_unique<PatchifyConvToGemm>(); }

}  // namespace ramjet::passes
