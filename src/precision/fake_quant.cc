// Simulated INT8 (quantize-dequantize) on the reference path.
#include "precision/fake_quant.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

namespace ramjet::precision {

Tensor fakeQuantize(const Tensor& x, float scale) {
  Tensor y = x.dtype() == DataType::kFloat32 ? x.clone() : x.cast(DataType::kFloat32);
  float* p = y.data<float>();
  for (int64_t i = 0; i < y.numel(); ++i) p[i] = std::clamp(std::nearbyint(p[i] / scale), -127.f, 127.f) * scale;
  return x.dtype() == DataType::kFloat32 ? y : y.cast(x.dtype());
}

Result<Tensor> fakeQuantizePerChannel(const Tensor& w, int axis) {
  RJ_ASSIGN_OR_RETURN(std::vector<float> scales, perChannelWeightScales(w, axis));
  const int r = static_cast<int>(w.rank());
  if (axis < 0) axis += r;
  int64_t outer = 1, inner = 1, ch = w.dim(axis);
  for (int i = 0; i < axis; ++i) outer *= w.dim(i);
  for (int i = axis + 1; i < r; ++i) inner *= w.dim(i);
  Tensor y = w.clone();
  float* p = y.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < ch; ++c) {
      float s = scales[c];
      float* q = p + (o * ch + c) * inner;
      for (int64_t k = 0; k < inner; ++k) q[k] = std::clamp(std::nearbyint(q[k] / s), -127.f, 127.f) * s;
    }
  return y;
}

std::string FakeQuantReport::toString() const {
  std::ostringstream os;
  os << weights << " weight tensors (per-channel) and " << activations << " activation tensors (per-tensor) quantized";
  if (!not_calibrated.empty()) os << "; " << not_calibrated.size() << " activation inputs without calibration left FP32";
  return os.str();
}

namespace {

// The weight input of a quantizable op and its output-channel axis; -1 when it has none.
int weightInput(const Node& n, int* axis) {
  const auto& w = n.hasInput(1) ? n.inputs[1] : nullptr;
  if (!w || !w->constant || w->constant->dtype() != DataType::kFloat32 || w->constant->rank() < 1) return -1;
  const int r = static_cast<int>(w->constant->rank());
  if (n.op_type == "Conv") {
    *axis = 0;
  } else if (n.op_type == "ConvTranspose") {
    *axis = n.attrInt("group", 1) == 1 && r >= 2 ? 1 : 0;  // weights are (C_in, C_out/group, k...)
  } else if (n.op_type == "Gemm") {
    if (r != 2) return -1;
    *axis = n.attrInt("transB", 0) ? 0 : 1;
  } else if (n.op_type == "MatMul") {
    *axis = r - 1;  // B is (..., K, N): one scale per output column
  } else {
    return -1;
  }
  return 1;
}

}  // namespace

Result<FakeQuantReport> applyFakeQuant(Graph& g, const CalibrationTable& table, const FakeQuantOptions& opt) {
  FakeQuantReport rep;
  std::map<Value*, Value*> wq, aq;  // original -> replacement (shared weights/activations once)
  std::vector<Node*> targets;
  for (const auto& n : g.nodes())
    if (n->domain.empty() && opt.ops.count(n->op_type)) targets.push_back(n.get());
  auto replaceInput = [](Node* n, size_t i, Value* nv) {
    Value* old = n->inputs[i];
    n->inputs[i] = nv;
    // Another input slot of the same node may still use `old`.
    if (std::find(n->inputs.begin(), n->inputs.end(), old) == n->inputs.end())
      old->consumers.erase(std::remove(old->consumers.begin(), old->consumers.end(), n), old->consumers.end());
    nv->consumers.push_back(n);
  };
  for (Node* n : targets) {
    int axis = 0;
    int wi = opt.weights ? weightInput(*n, &axis) : -1;
    if (wi >= 0) {
      Value* w = n->inputs[wi];
      auto it = wq.find(w);
      if (it == wq.end()) {
        auto q = fakeQuantizePerChannel(*w->constant, axis);
        if (!q.ok()) return q.status().withContext("fake-quantizing the weights of " + n->describe());
        Value* nv = g.addValue(g.uniqueValueName(w->name + "_int8sim"));
        nv->type = w->type;
        nv->constant = std::make_shared<Tensor>(std::move(*q));
        it = wq.emplace(w, nv).first;
        ++rep.weights;
      }
      replaceInput(n, wi, it->second);
    }
    if (!opt.activations) continue;
    size_t nin = n->op_type == "MatMul" ? 2 : 1;  // Conv/Gemm: X only (B/C are weights/bias)
    for (size_t i = 0; i < nin && i < n->inputs.size(); ++i) {
      Value* x = n->inputs[i];
      if (!x || x->constant) continue;
      if (x->type.dtype != DataType::kFloat32) continue;
      auto it = aq.find(x);
      if (it == aq.end()) {
        auto a = table.amax.find(x->name);
        if (a == table.amax.end() || !(a->second > 0)) {
          rep.not_calibrated.push_back(x->name);
          continue;
        }
        Value* scale = g.addValue(g.uniqueValueName(x->name + "_scale"));
        scale->constant = std::make_shared<Tensor>(Tensor::scalar<float>(a->second / 127.f));
        scale->type = scale->constant->type();
        Value* zp = g.addValue(g.uniqueValueName(x->name + "_zero_point"));
        zp->constant = std::make_shared<Tensor>(Tensor::scalar<int8_t>(0));
        zp->type = zp->constant->type();
        Value* q = g.addValue(g.uniqueValueName(x->name + "_int8"));
        q->type.dtype = DataType::kInt8;
        q->type.shape = x->type.shape;
        Value* dq = g.addValue(g.uniqueValueName(x->name + "_int8sim"));
        dq->type = x->type;
        g.addNode("QuantizeLinear", "int8sim_q/" + x->name, {x, scale, zp}, {q});
        g.addNode("DequantizeLinear", "int8sim_dq/" + x->name, {q, scale, zp}, {dq});
        it = aq.emplace(x, dq).first;
        ++rep.activations;
      }
      replaceInput(n, i, it->second);
    }
  }
  RJ_RETURN_IF_ERROR(g.verify().withContext("graph after inserting simulated INT8"));
  return rep;
}

}  // namespace ramjet::precision
