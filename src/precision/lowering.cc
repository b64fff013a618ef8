// Precision lowering: see lowering.h for what is decided and why.
#include "precision/lowering.h"

#include <functional>
#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "ops/op_registry.h"
#include "passes/graph_rewrite.h"
#include "precision/fp8_math.h"
#include "precision/int8_math.h"

namespace ramjet::precision {

const char* layerPrecisionName(LayerPrecision p) {
  switch (p) {
    case LayerPrecision::kFP16: return "fp16";
    case LayerPrecision::kBF16: return "bf16";
    case LayerPrecision::kINT8: return "int8";
    case LayerPrecision::kFP8: return "fp8";
    default: return "fp32";
  }
}

Result<LayerPrecision> parseLayerPrecision(const std::string& s) {
  if (s == "fp32") return LayerPrecision::kFP32;
  if (s == "fp16") return LayerPrecision::kFP16;
  if (s == "bf16") return LayerPrecision::kBF16;
  if (s == "int8") return LayerPrecision::kINT8;
  if (s == "fp8") return LayerPrecision::kFP8;
  return makeError(StatusCode::kInvalidArgument, "unknown precision '", s, "' (fp32, fp16, bf16, int8, fp8)");
}

Result<std::vector<PrecisionOverride>> parseOverrides(const std::vector<std::string>& specs) {
  std::vector<PrecisionOverride> out;
  for (const std::string& s : specs) {
    size_t colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
      return makeError(StatusCode::kInvalidArgument, "precision override '", s,
                       "' must be NAME_OR_OP:PRECISION, e.g. LayerNormalization:fp32");
    auto p = parseLayerPrecision(s.substr(colon + 1));
    if (!p.ok()) return makeError(StatusCode::kInvalidArgument, "precision override '", s, "': ", p.status().message());
    out.push_back({s.substr(0, colon), *p});
  }
  return out;
}

std::string LoweringReport::toString() const {
  std::ostringstream os;
  os << "layers:";
  for (const auto& [k, v] : layers) os << " " << k << "x" << v;
  os << "; " << casts << " casts";
  if (quantize || dequantize)
    os << ", " << quantize << " quantize, " << dequantize << " dequantize, " << int8_fused_activations
       << " fused activations, " << int8_fused_residuals << " fused residual adds";
  if (int8_moves) os << ", " << int8_moves << " concat/slice/split on int8";
  if (!fp8_layers.empty()) os << ", " << fp8_layers.size() << " fp8 GEMMs";
  if (fp8_gelu_tanh) os << " (" << fp8_gelu_tanh << " erf GELUs in the tanh form)";
  if (fp8_chained) os << ", " << fp8_chained << " passing E4M3 outputs on";
  if (calibrated) os << "; ranges from " << calibration_source;
  os << "\n";
  const size_t show = 40;
  for (size_t i = 0; i < kept.size() && i < show; ++i) os << "  " << kept[i] << "\n";
  if (kept.size() > show) os << "  ... and " << kept.size() - show << " more\n";
  return os.str();
}

// ---------------------------------------------------------------------------------------------
// Calibration

Result<CalibrationTable> obtainCalibration(const Graph& original, const BuildOptions& opt, bool required,
                                           std::string* source, Logger* logger) {
  auto warn = [&](const std::string& m) {
    if (logger) logger->log(Severity::kWarning, m);
  };
  CalibrationTable t;
  const std::string hash = graphHash(original);
  bool have = false;
  if (!opt.calibration_cache_path.empty() && std::ifstream(opt.calibration_cache_path).good()) {
    auto c = loadCalibrationCache(opt.calibration_cache_path, hash);
    if (c.ok()) {
      t = std::move(*c);
      have = true;
      *source = "cache " + opt.calibration_cache_path;
    } else if (opt.calibrator) {
      warn(c.status().message() + "; recalibrating");
    } else {
      return c.status();
    }
  }
  if (!have && opt.calibrator) {
    CalibrationOptions co;
    RJ_ASSIGN_OR_RETURN(co.threshold.method, parseCalibrationMethod(opt.calibration_method));
    co.max_batches = opt.calibration_batches;
    co.progress = opt.calibration_progress;
    // A calibrator used by an earlier build starts over when it can (else it must be fresh).
    Status rw = opt.calibrator->reset();
    if (!rw.ok() && rw.code() != StatusCode::kUnsupported) return rw.withContext("rewinding the calibrator");
    RJ_ASSIGN_OR_RETURN(t, calibrate(original, *opt.calibrator, co));
    t.model_hash = hash;
    have = true;
    *source = "calibrator (" + std::to_string(t.num_batches) + " batches, " + t.method + ")";
    if (!opt.calibration_cache_path.empty()) {
      Status st = saveCalibrationCache(opt.calibration_cache_path, t);
      if (!st.ok()) warn(st.message());
    }
  }
  for (const auto& [name, a] : opt.activation_amax) {
    if (!(a >= 0.f) || !std::isfinite(a))
      return makeError(StatusCode::kInvalidArgument, "activation range for '", name, "' must be finite and >= 0, got ", a);
    t.amax[name] = a;
  }
  if (!opt.activation_amax.empty()) *source += std::string(have ? " + " : "") + "explicit ranges";
  have = have || !opt.activation_amax.empty();
  if (!have && required)
    return makeError(StatusCode::kInvalidArgument, precisionName(opt.precision),
                     " needs activation ranges: give a calibrator (ramjet build --calib-data DIR|random), a "
                     "calibration cache (--calib-cache FILE from `ramjet calibrate`) or explicit ranges");
  return t;
}

Status quantizeWeightsPerChannel(const Tensor& w, Tensor* q, std::vector<float>* scales) {
  if (w.dtype() != DataType::kFloat32 || w.rank() < 1)
    return makeError(StatusCode::kInvalidArgument, "weights to quantize must be float32 of rank >= 1");
  RJ_ASSIGN_OR_RETURN(*scales, perChannelWeightScales(w, 0));
  *q = Tensor(DataType::kInt8, w.dims());
  const int64_t K = w.dim(0), inner = w.numel() / std::max<int64_t>(K, 1);
  const float* pw = w.data<float>();
  int8_t* pq = q->data<int8_t>();
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < inner; ++i) {
      float v = std::rint(pw[k * inner + i] / (*scales)[k]);
      pq[k * inner + i] = static_cast<int8_t>(std::clamp(v, -127.f, 127.f));
    }
  return Status::Ok();
}

namespace {

using passes::makeConstant;
using passes::setInput;
using passes::setOutput;

bool isFloat(DataType d) { return d == DataType::kFloat32 || d == DataType::kFloat16 || d == DataType::kBFloat16; }

DataType dtypeOf(LayerPrecision p) {
  switch (p) {
    case LayerPrecision::kFP16: return DataType::kFloat16;
    case LayerPrecision::kBF16: return DataType::kBFloat16;
    default: return DataType::kFloat32;
  }
}

bool hasSubgraph(const Node& n) {
  for (const auto& [k, a] : n.attrs)
    if (a.kind == Attribute::Kind::kGraph) return true;
  return false;
}

// Inputs read as parameters rather than data keep their ONNX-mandated float type.
bool keepInputType(const Node& n, size_t i) {
  if (n.op_type == "Resize" && (i == 1 || i == 2)) return true;
  if (n.op_type == "Int8Quantize") return true;  // reads any float type
  // Shape and Size read only the dims: a Cast feeding them would run a kernel for nothing (the
  // CUDA backend has no FP16 Shape kernel, so each dynamic-batch ViT layer got a dead FP32 copy).
  if (n.op_type == "Shape" || n.op_type == "Size") return true;
  return false;
}

// Ops whose output moves or selects input elements: they take their input's precision.
bool isFollowOp(const std::string& op) {
  static const std::set<std::string> s = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat",
                                          "Split", "Slice", "Gather", "Identity", "Expand", "Tile", "Pad",
                                          "MaxPool", "Relu", "Resize", "GlobalMaxPool", "DepthToSpace",
                                          "SpaceToDepth", "GatherElements", "ScatterElements", "Where",
                                          "Shape", "Size"};
  return s.count(op) > 0;
}

// Ops kept FP32 whatever the mode: their float outputs do not follow their float inputs, or
// they carry exact-arithmetic semantics.
bool alwaysFp32(const Node& n) {
  static const std::set<std::string> s = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                                          "QLinearConv", "QLinearMatMul", "RandomNormal", "RandomUniform",
                                          "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
                                          "EyeLike", "NonMaxSuppression", "RoiAlign", "Loss",
                                          "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss", "STFT",
                                          "DFT", "MelWeightMatrix", "Det"};
  return s.count(n.op_type) > 0 || hasSubgraph(n);
}

// FP16-specific: ops whose intermediate values overflow or lose too much in half precision.
const char* fp16Risk(const Node& n) {
  const std::string& op = n.op_type;
  // LayerNormalization is not here: every backend's kernel (CPU reference, CUDA, AddLayerNorm)
  // reads FP16 but accumulates mean and variance in FP32, so FP16 I/O loses nothing its FP16
  // producer has not already rounded; an input too large for FP16 is caught by the calibrated
  // range rule below. Keeping it FP32 cost two Casts per layer (ViT-B/16: 26 of 41 Casts).
  if (op == "InstanceNormalization" || op == "GroupNormalization" ||
      op == "LpNormalization" || op == "MeanVarianceNormalization" || op == "RMSNormalization" ||
      op == "SimplifiedLayerNormalization")
    return "normalization statistics";
  // (The fused Attention kernels keep their softmax in FP32 internally, so they stay FP16, as
  // PyTorch autocast does with scaled_dot_product_attention.)
  if (op == "Softmax" || op == "LogSoftmax" || op == "Exp" || op == "Pow") return "exp/pow input range";
  if (op == "ReduceSumSquare" || op == "ReduceL2" || op == "ReduceLogSumExp" || op == "ReduceProd" ||
      op == "ReduceLogSum")
    return "reduction of squares/exponentials/products";
  if (op == "ReduceSum" || op == "ReduceL1") {
    // Reduced element count: input elements / output elements when both are static.
    const Value* x = n.inputs.empty() ? nullptr : n.inputs[0];
    const Value* y = n.outputs.empty() ? nullptr : n.outputs[0];
    if (!x || !y || !x->type.shape.fullyKnown() || !y->type.shape.fullyKnown()) return "reduction over unknown axes";
    int64_t xn = numElements(x->type.shape.concrete()), yn = std::max<int64_t>(numElements(y->type.shape.concrete()), 1);
    if (xn / yn > 1024) return "sum over a large axis";
  }
  return nullptr;
}

// A float constant that FP16 cannot hold: finite values beyond 65504, or all nonzero values
// underflowing to zero (epsilons).
bool constantOutOfFp16(const Tensor& t) {
  if (!isFloat(t.dtype()) || t.dtype() == DataType::kFloat16) return false;
  bool any_nonzero = false, all_underflow = true;
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = std::fabs(t.getDouble(i));
    if (!std::isfinite(v)) continue;
    if (v > kFp16Max) return true;
    if (v != 0) {
      any_nonzero = true;
      if (v >= 6e-8) all_underflow = false;
    }
  }
  return any_nonzero && all_underflow;
}

struct Lowerer {
  Graph& g;
  const BuildOptions& opt;
  const LoweringEnv& env;
  const CalibrationTable& table;
  LoweringReport& rep;
  LayerPrecision mode;        // the float precision of the mode (fp16 for int8)
  std::vector<PrecisionOverride> overrides;
  std::map<const Node*, LayerPrecision> decided;
  std::map<const Node*, std::string> why;
  std::map<std::pair<Value*, DataType>, Value*> converted;

  std::map<std::string, float> amax_unified;  // ranges shared by tensors int8 moves connect

  float amax(const Value* v) const {
    auto u = amax_unified.find(v->name);
    if (u != amax_unified.end()) return u->second;
    auto it = table.amax.find(v->name);
    return it == table.amax.end() ? -1.f : it->second;
  }

  const PrecisionOverride* overrideFor(const Node& n) const {
    for (const auto& o : overrides)
      if (o.pattern == n.name) return &o;
    for (const auto& o : overrides)
      if (o.pattern == n.op_type) return &o;
    return nullptr;
  }

  void keep(const Node& n, LayerPrecision p, const std::string& reason) {
    decided[&n] = p;
    why[&n] = reason;
  }

  // Phase 1: a float precision for every node (INT8 candidates are chosen separately).
  void decideFloat(const std::vector<Node*>& order) {
    for (Node* n : order) {
      if (const PrecisionOverride* o = overrideFor(*n)) {
        LayerPrecision p = o->precision;
        if (p == LayerPrecision::kINT8 || p == LayerPrecision::kFP8) p = mode;  // quantizable ops are handled apart
        keep(*n, p, "override '" + o->pattern + ":" + layerPrecisionName(o->precision) + "'");
        continue;
      }
      if (alwaysFp32(*n)) {
        keep(*n, LayerPrecision::kFP32, "op kept fp32");
        continue;
      }
      if (mode == LayerPrecision::kFP16) {
        if (const char* r = fp16Risk(*n)) {
          keep(*n, LayerPrecision::kFP32, r);
          continue;
        }
        std::string reason;
        for (const Value* v : n->inputs)
          if (v && v->constant && constantOutOfFp16(*v->constant)) reason = "constant '" + v->name + "' outside the fp16 range";
        for (const auto* list : {&n->inputs, &n->outputs})
          for (const Value* v : *list) {
            if (!v || !isFloat(v->type.dtype) || !reason.empty()) continue;
            float a = amax(v);
            if (a > kFp16SafeMax) {
              std::ostringstream os;
              os << "calibrated |max| of '" << v->name << "' is " << a << " (> " << kFp16SafeMax << ")";
              reason = os.str();
            }
          }
        if (!reason.empty()) {
          keep(*n, LayerPrecision::kFP32, reason);
          continue;
        }
      }
      decided[n] = mode;
    }
  }

  // Types n would have at precision p (float inputs/outputs retyped), for the device check.
  void typesAt(const Node& n, DataType dt, std::vector<TensorType>* in, std::vector<TensorType>* out) const {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Value* v = n.inputs[i];
      TensorType t = v ? v->type : TensorType{};
      if (v && isFloat(t.dtype) && !keepInputType(n, i)) t.dtype = dt;
      in->push_back(t);
    }
    for (const Value* v : n.outputs) {
      TensorType t = v ? v->type : TensorType{};
      if (v && isFloat(t.dtype)) t.dtype = dt;
      out->push_back(t);
    }
  }

  Value* convertedInput(Value* v, DataType dt, Node* consumer) {
    auto key = std::make_pair(v, dt);
    auto it = converted.find(key);
    if (it != converted.end()) return it->second;
    Value* nv;
    if (v->constant) {
      if (v->consumers.size() == 1 && v->consumers[0] == consumer && !v->is_graph_output) {
        v->constant = std::make_shared<Tensor>(v->constant->cast(dt));
        v->type.dtype = dt;
        return v;
      }
      nv = makeConstant(g, v->name + (dt == DataType::kFloat16 ? "__fp16" : dt == DataType::kBFloat16 ? "__bf16" : "__fp32"),
                        v->constant->cast(dt));
    } else {
      nv = g.addValue(g.uniqueValueName(v->name + "__to_" + dataTypeName(dt)));
      Node* c = g.addNode("Cast", nv->name, {v}, {nv});
      c->attrs["to"] = Attribute::fromInt(static_cast<int64_t>(dt));
      nv->type = v->type;
      nv->type.dtype = dt;
      ++rep.casts;
    }
    converted[key] = nv;
    return nv;
  }

  Status inferNode(Node& n) {
    const ops::OpSchema* s = ops::findOp(n.op_type);
    if (!s) return makeError(StatusCode::kInternal, n.describe(), ": unknown op in precision lowering");
    std::vector<TensorType> in;
    std::vector<const Tensor*> vals;
    for (const Value* v : n.inputs) {
      in.push_back(v ? v->type : TensorType{});
      vals.push_back(v && v->constant ? v->constant.get() : nullptr);
    }
    ops::InferContext ctx(n, in, vals);
    Status st = s->infer(ctx);
    if (!st.ok()) return makeError(st.code(), "precision lowering: ", st.message());
    for (size_t i = 0; i < n.outputs.size(); ++i)
      if (n.outputs[i] && ctx.outputs()[i].dtype != DataType::kUndefined) {
        // Keep symbolic dims the graph already resolved; take the (new) element type.
        n.outputs[i]->type.dtype = ctx.outputs()[i].dtype;
        if (!n.outputs[i]->type.shape.rank_known) n.outputs[i]->type.shape = ctx.outputs()[i].shape;
      }
    return Status::Ok();
  }

  // Phase 3: retype in topological order, inserting Casts where producer and consumer differ.
  Status apply() {
    // Reduced-precision I/O: float graph inputs arrive in the build precision (consumers kept in
    // FP32 get a Cast like any other mismatch).
    const DataType io_dt = opt.reduced_precision_io ? dtypeOf(mode) : DataType::kFloat32;
    if (io_dt != DataType::kFloat32)
      for (Value* v : g.inputs)
        if (v->type.dtype == DataType::kFloat32 && !v->constant) v->type.dtype = io_dt;
    RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topoOrder());
    for (Node* n : order) {
      const bool internal = n->op_type == "Int8Quantize" || n->op_type == "Int8Dequantize" ||
                            n->op_type == "QConv" || n->op_type == "QGemm";
      if (internal) {
        RJ_RETURN_IF_ERROR(inferNode(*n));
        ++rep.layers[n->op_type == "Int8Quantize" || n->op_type == "Int8Dequantize" ? "int8-boundary" : "int8"];
        continue;
      }
      if (int8_moves.count(n)) {
        RJ_RETURN_IF_ERROR(inferNode(*n));
        ++rep.layers["int8-move"];
        continue;
      }
      if (n->op_type == "Cast" && n->name.find("__to_") != std::string::npos && !decided.count(n)) {
        RJ_RETURN_IF_ERROR(inferNode(*n));  // our own casts
        continue;
      }
      LayerPrecision p = decided.count(n) ? decided[n] : mode;
      const bool overridden = why.count(n) && why[n].rfind("override", 0) == 0;
      if (!overridden && isFollowOp(n->op_type) && !why.count(n)) {
        // Follow the (agreeing) precision of the non-constant float inputs.
        DataType common = DataType::kUndefined;
        bool agree = true;
        for (size_t i = 0; i < n->inputs.size(); ++i) {
          const Value* v = n->inputs[i];
          if (!v || v->constant || !isFloat(v->type.dtype) || keepInputType(*n, i)) continue;
          if (common == DataType::kUndefined) common = v->type.dtype;
          else if (common != v->type.dtype) agree = false;
        }
        if (agree && common != DataType::kUndefined)
          p = common == DataType::kFloat16 ? LayerPrecision::kFP16
            : common == DataType::kBFloat16 ? LayerPrecision::kBF16 : LayerPrecision::kFP32;
      }
      DataType dt = dtypeOf(p);
      if (dt != DataType::kFloat32 && env.supports) {
        std::vector<TensorType> in, out;
        typesAt(*n, dt, &in, &out);
        Status s = env.supports(*n, in, out);
        if (!s.ok()) {
          keep(*n, LayerPrecision::kFP32, std::string("no ") + layerPrecisionName(p) + " kernel on the device");
          p = LayerPrecision::kFP32;
          dt = DataType::kFloat32;
        }
      }
      bool touches_float = false;
      for (size_t i = 0; i < n->inputs.size(); ++i) {
        Value* v = n->inputs[i];
        if (!v || !isFloat(v->type.dtype)) continue;
        touches_float = true;
        if (v->type.dtype == dt || keepInputType(*n, i) || v->is_outer_scope) continue;
        setInput(n, i, convertedInput(v, dt, n));
      }
      if (n->op_type == "Cast" && isFloat(static_cast<DataType>(n->attrInt("to", 0)))) {
        n->attrs["to"] = Attribute::fromInt(static_cast<int64_t>(dt));
        touches_float = true;
      }
      if (n->op_type == "ConstantOfShape" && n->hasAttr("value") && isFloat(n->attrs["value"].t.dtype())) {
        n->attrs["value"].t = n->attrs["value"].t.cast(dt);
        touches_float = true;
      }
      RJ_RETURN_IF_ERROR(inferNode(*n));
      for (const Value* v : n->outputs)
        if (v && isFloat(v->type.dtype)) touches_float = true;
      if (touches_float) {
        ++rep.layers[n->op_type == "Fp8Gemm" ? "fp8" : layerPrecisionName(p)];
        if (p == LayerPrecision::kFP32 && mode != LayerPrecision::kFP32 && why.count(n))
          rep.kept.push_back(n->describe() + ": fp32 (" + why[n] + ")");
        else if (why.count(n) && why[n].rfind("override", 0) == 0)
          rep.kept.push_back(n->describe() + ": " + layerPrecisionName(p) + " (" + why[n] + ")");
      }
    }
    // Graph outputs stay FP32 (or take the build precision with reduced-precision I/O): the
    // producer writes its own type, a Cast restores the name.
    for (Value*& out : g.outputs) {
      if (!isFloat(out->type.dtype) || out->type.dtype == io_dt || out->is_graph_input) continue;
      Node* prod = out->producer;
      if (!prod) continue;
      Value* h = g.addValue(g.uniqueValueName(out->name + "__" + dataTypeName(out->type.dtype)));
      h->type = out->type;
      std::vector<Node*> consumers = out->consumers;
      for (Node* c : consumers)
        for (size_t i = 0; i < c->inputs.size(); ++i)
          if (c->inputs[i] == out) setInput(c, i, h);
      for (size_t i = 0; i < prod->outputs.size(); ++i)
        if (prod->outputs[i] == out) setOutput(prod, i, h);
      out->type.dtype = io_dt;
      const std::string suffix = io_dt == DataType::kFloat32 ? "__to_fp32" : std::string("__to_") + dataTypeName(io_dt);
      Node* cast = g.addNode("Cast", out->name + suffix, {h}, {out});
      cast->attrs["to"] = Attribute::fromInt(static_cast<int64_t>(io_dt));
      ++rep.casts;
    }
    return Status::Ok();
  }

  // ---- FP8 ----
  // Why node n cannot be an FP8 GEMM (empty when it can): FusedGemm, Gemm or MatMul with constant
  // 2-D float weights, K and N multiples of 16 (cuBLASLt FP8), a calibrated input range, in the
  // mode's float precision (not kept in FP32 by a range check or an override).
  std::string fp8Blocker(const Node* n) const {
    const std::string& op = n->op_type;
    if (op != "FusedGemm" && op != "MatMul" && op != "Gemm") return "not a matrix multiply";
    if (!constInput(n, 1) || !isFloat(n->inputs[1]->constant->dtype()) || n->inputs[1]->constant->rank() != 2)
      return "weights not constant 2-D float";
    const Tensor& w = *n->inputs[1]->constant;
    const bool tb = transB(n);
    if (op == "Gemm") {
      if (n->attrInt("transA", 0)) return "transA";
      if (n->hasInput(2)) {
        const int64_t nb = tb ? w.dim(0) : w.dim(1);
        if (!constInput(n, 2) || n->attrFloat("beta", 1.f) != 1.f || n->inputs[2]->constant->rank() != 1 ||
            n->inputs[2]->constant->numel() != nb)
          return "C not a constant 1-D bias";
      }
    }
    const int64_t K = tb ? w.dim(1) : w.dim(0), N = tb ? w.dim(0) : w.dim(1);
    if (K % 16 != 0 || N % 16 != 0) return "K=" + std::to_string(K) + " or N=" + std::to_string(N) + " not a multiple of 16";
    const Value* x = n->inputs[0];
    if (!x->type.shape.rank_known || x->type.shape.rank() < 2) return "input rank";
    if (amax(x) <= 0.f) return "input '" + x->name + "' has no calibrated range";
    auto d = decided.find(n);
    const PrecisionOverride* o = overrideFor(*n);
    if (o && o->precision != LayerPrecision::kFP8) return "override '" + o->pattern + ":" + layerPrecisionName(o->precision) + "'";
    if (!o && d != decided.end() && d->second != mode) return "kept " + std::string(layerPrecisionName(d->second)) + " (" + why.at(n) + ")";
    if (env.supports) {
      std::vector<TensorType> in, out;
      for (size_t i = 0; i < n->inputs.size(); ++i) {
        TensorType t = n->inputs[i] ? n->inputs[i]->type : TensorType{};
        if (i == 1) t = TensorType{DataType::kUInt8, Shape(std::vector<Dim>{Dim(N), Dim(K)})};
        else if (n->inputs[i]) t.dtype = dtypeOf(mode);
        in.push_back(t);
      }
      out.push_back(TensorType{dtypeOf(mode), n->outputs[0]->type.shape});
      Node probe = *n;
      probe.op_type = "Fp8Gemm";
      Status s = env.supports(probe, in, out);
      if (!s.ok()) return "no fp8 kernel on the device (" + s.message() + ")";
    }
    return "";
  }

  static bool transB(const Node* n) {
    return (n->op_type == "FusedGemm" && n->attrInt("trans_b", 0)) || (n->op_type == "Gemm" && n->attrInt("transB", 0));
  }

  // FusedGemm/Gemm/MatMul -> Fp8Gemm in place: per-tensor E4M3 weights [N, K] (w_scale = max|W| / 448)
  // and the input's calibrated range as x_scale = amax / 448.
  Status lowerFp8() {
    RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topoOrder());
    std::vector<Node*> made;
    for (Node* n : order) {
      if (n->op_type != "FusedGemm" && n->op_type != "MatMul" && n->op_type != "Gemm") continue;
      const std::string b = fp8Blocker(n);
      if (!b.empty()) {
        // (Overridden and range-kept layers are reported by apply() with their reason.)
        if (b != "not a matrix multiply" && b.rfind("override", 0) != 0 && b.rfind("kept", 0) != 0)
          rep.kept.push_back(n->describe() + ": " + layerPrecisionName(decided.count(n) ? decided[n] : mode) + " (not fp8: " + b + ")");
        continue;
      }
      const Tensor w = n->inputs[1]->constant->cast(DataType::kFloat32);
      const bool tb = transB(n);
      const int64_t K = tb ? w.dim(1) : w.dim(0), N = tb ? w.dim(0) : w.dim(1);
      const float* pw = w.data<float>();
      float wmax = 0.f;
      for (int64_t i = 0; i < w.numel(); ++i) wmax = std::max(wmax, std::fabs(pw[i]));
      const float ws = wmax > 0.f && std::isfinite(wmax) ? wmax / kE4m3Max : 1.f;
      Tensor q(DataType::kUInt8, {N, K});
      uint8_t* pq = q.data<uint8_t>();
      for (int64_t nn = 0; nn < N; ++nn)
        for (int64_t k = 0; k < K; ++k) pq[nn * K + k] = floatToE4m3((tb ? pw[nn * K + k] : pw[k * N + nn]) / ws);
      setInput(n, 1, makeConstant(g, n->name.empty() ? n->outputs[0]->name + "__w_e4m3" : n->name + "__w_e4m3", std::move(q)));
      if (n->op_type != "FusedGemm") n->attrs["activation"] = Attribute::fromString("none");
      n->op_type = "Fp8Gemm";
      for (const char* a : {"trans_b", "transA", "transB", "beta"}) n->attrs.erase(a);
      n->attrs["x_scale"] = Attribute::fromFloat(amax(n->inputs[0]) / kE4m3Max);
      n->attrs["w_scale"] = Attribute::fromFloat(ws);
      // cuBLASLt has no erf-GELU epilogue: an erf GELU would cost a separate pass over the GEMM's
      // output (a third of fc1's time in ViT-B/16 at batch 64). FP8 builds take the tanh form,
      // which differs from erf by at most 4.7e-4 (absolute, at |x| near 2), far below the E4M3
      // rounding (up to 6% of each input) the layer has anyway.
      if (n->attrString("activation", "none") == "gelu") {
        n->attrs["activation"] = Attribute::fromString("gelu_tanh");
        ++rep.fp8_gelu_tanh;
      }
      rep.fp8_layers.push_back(n->name.empty() ? n->outputs[0]->name : n->name);
      made.push_back(n);
    }
    // Chains: an FP8 GEMM whose output feeds only FP8 GEMMs, each reading it once as its A,
    // writes E4M3 codes with their x_scale (cuBLASLt scales and converts in the epilogue) and
    // they use the codes as they are: no float tensor in between, no quantization pass (ViT's
    // fc1 -> fc2: half the bytes written, one kernel less per block).
    for (Node* n : made) {
      Value* y = n->outputs[0];
      if (!y || y->is_graph_output || y->is_outer_scope || y->consumers.empty()) continue;
      bool ok = true;
      for (Node* c : y->consumers)
        ok = ok && c->op_type == "Fp8Gemm" && c->inputs[0] == y &&
             std::count(c->inputs.begin(), c->inputs.end(), y) == 1;
      if (!ok) continue;
      n->attrs["out_scale"] = Attribute::fromFloat(y->consumers[0]->attrFloat("x_scale", 0.f));
      for (Node* c : y->consumers) c->attrs["to"] = Attribute::fromInt(static_cast<int64_t>(dtypeOf(mode)));
      ++rep.fp8_chained;
    }
    return Status::Ok();
  }

  // ---- INT8 ----
  struct Group {
    Node* gemm = nullptr;        // Conv, Gemm or MatMul
    std::vector<Node*> nodes;    // gemm + fused epilogue nodes, in order
    Value* x = nullptr;          // float input
    Value* residual = nullptr;   // float residual (Add's other input)
    Value* out = nullptr;        // the group's final float output
    int32_t act = int8::kActNone;
    float alpha = 0, beta = 0;
    bool act_after_residual = true;
    bool conv = false;
    size_t last_pos = 0;
  };

  static bool constInput(const Node* n, size_t i) { return n->hasInput(i) && n->inputs[i]->constant; }

  // The activation code of a fusable activation node; false when not fusable.
  static bool activationOf(const Node* n, int32_t* act, float* alpha, float* beta) {
    if (n->op_type == "Relu") return *act = int8::kActRelu, true;
    if (n->op_type == "Silu") return *act = int8::kActSilu, true;
    if (n->op_type == "LeakyRelu") return *act = int8::kActLeakyRelu, *alpha = n->attrFloat("alpha", 0.01f), true;
    if (n->op_type == "Clip") {
      double lo = -INFINITY, hi = INFINITY;
      if (n->hasInput(1) && !passes::scalarValue(n->inputs[1], &lo)) return false;
      if (n->hasInput(2) && !passes::scalarValue(n->inputs[2], &hi)) return false;
      *act = int8::kActClip;
      *alpha = static_cast<float>(lo);
      *beta = static_cast<float>(hi);
      return true;
    }
    return false;
  }

  // Why node n cannot be an INT8 layer (empty when it can).
  std::string int8Blocker(const Node* n) const {
    const std::string& op = n->op_type;
    if (op == "Conv") {
      if (!constInput(n, 1) || n->inputs[1]->constant->dtype() != DataType::kFloat32) return "weights not constant fp32";
      const Tensor& w = *n->inputs[1]->constant;
      if (w.rank() != 4) return "not a 2-D convolution";
      if (n->attrInt("group", 1) != 1) return "grouped convolution";
      if (n->hasInput(2) && !constInput(n, 2)) return "bias not constant";
      std::string ap = n->attrString("auto_pad", "NOTSET");
      if (ap != "NOTSET" && ap != "VALID") return "auto_pad " + ap;
      if (w.dim(1) % 4 != 0 || w.dim(0) % 4 != 0) return "channels not a multiple of 4 (in " + std::to_string(w.dim(1)) + ", out " + std::to_string(w.dim(0)) + ")";
      const Value* x = n->inputs[0];
      if (!x->type.shape.rank_known || x->type.shape.rank() != 4) return "input rank";
    } else if (op == "Gemm") {
      if (n->attrInt("transA", 0) || n->attrFloat("alpha", 1.f) != 1.f) return "transA/alpha";
      if (!constInput(n, 1) || n->inputs[1]->constant->dtype() != DataType::kFloat32 || n->inputs[1]->constant->rank() != 2)
        return "weights not constant fp32 2-D";
      if (n->hasInput(2)) {
        if (!constInput(n, 2) || n->attrFloat("beta", 1.f) != 1.f) return "C not a constant bias";
        const Tensor& c = *n->inputs[2]->constant;
        const Tensor& w = *n->inputs[1]->constant;
        int64_t N = n->attrInt("transB", 0) ? w.dim(0) : w.dim(1);
        if (c.numel() != N) return "C not a per-column bias";
      }
    } else if (op == "MatMul") {
      if (!constInput(n, 1) || n->inputs[1]->constant->dtype() != DataType::kFloat32 || n->inputs[1]->constant->rank() != 2)
        return "weights not constant fp32 2-D";
    } else {
      return "not a convolution or matrix multiply";
    }
    if (op != "Conv") {
      const Tensor& w = *n->inputs[1]->constant;
      int64_t K = (op == "Gemm" && n->attrInt("transB", 0)) ? w.dim(1) : w.dim(0);
      int64_t N = (op == "Gemm" && n->attrInt("transB", 0)) ? w.dim(0) : w.dim(1);
      if (K % 4 != 0 || N % 4 != 0) return "K or N not a multiple of 4";
      const Value* x = n->inputs[0];
      if (!x->type.shape.rank_known || x->type.shape.rank() < 2) return "input rank";
    }
    if (amax(n->inputs[0]) <= 0.f) return "input '" + n->inputs[0]->name + "' has no calibrated range";
    return "";
  }

  Result<std::vector<Group>> findGroups(const std::vector<Node*>& order) {
    std::map<const Node*, size_t> pos;
    for (size_t i = 0; i < order.size(); ++i) pos[order[i]] = i;
    std::vector<Group> groups;
    std::set<const Node*> used;
    for (Node* n : order) {
      if (n->op_type != "Conv" && n->op_type != "Gemm" && n->op_type != "MatMul") continue;
      const PrecisionOverride* o = overrideFor(*n);
      if (o && o->precision != LayerPrecision::kINT8) continue;
      std::string b = int8Blocker(n);
      if (!b.empty()) {
        if (mode == LayerPrecision::kFP16 && !why.count(n)) why[n] = "not int8: " + b;
        rep.kept.push_back(n->describe() + ": " + layerPrecisionName(decided.count(n) ? decided[n] : mode) + " (not int8: " + b + ")");
        continue;
      }
      Group gr;
      gr.gemm = n;
      gr.conv = n->op_type == "Conv";
      gr.nodes.push_back(n);
      gr.x = n->inputs[0];
      Value* y = n->outputs[0];
      auto fusable = [&](Node* c) {
        return c && !used.count(c) && !overrideFor(*c) && c->outputs.size() >= 1 && c->outputs[0];
      };
      Node* c = passes::soleConsumer(y);
      if (fusable(c) && activationOf(c, &gr.act, &gr.alpha, &gr.beta)) {
        gr.nodes.push_back(c);
        y = c->outputs[0];
        gr.act_after_residual = false;
        c = passes::soleConsumer(y);
      }
      if (gr.conv && fusable(c) && c->op_type == "Add" && c->inputs.size() == 2) {
        Value* r = passes::otherInput(c, y);
        if (r && r != y && !r->constant && r->type.shape == y->type.shape && amax(r) > 0.f) {
          gr.residual = r;
          gr.nodes.push_back(c);
          y = c->outputs[0];
          Node* a = passes::soleConsumer(y);
          if (gr.act == int8::kActNone && fusable(a) && activationOf(a, &gr.act, &gr.alpha, &gr.beta)) {
            gr.nodes.push_back(a);
            y = a->outputs[0];
            gr.act_after_residual = true;
          }
        }
      }
      gr.out = y;
      gr.last_pos = pos[gr.nodes.back()];
      for (Node* m : gr.nodes) used.insert(m);
      groups.push_back(gr);
    }
    std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.last_pos < b.last_pos; });
    return groups;
  }

  std::map<std::pair<Value*, bool>, Value*> qmap{};  // (float value, nhwc) -> its int8 version

  Value* quantized(Value* x, bool nhwc) {
    auto key = std::make_pair(x, nhwc);
    auto it = qmap.find(key);
    if (it != qmap.end()) return it->second;
    Value* q = g.addValue(g.uniqueValueName(x->name + "__int8"));
    Node* n = g.addNode("Int8Quantize", q->name, {x}, {q});
    n->attrs["scale"] = Attribute::fromFloat(amax(x) / 127.f);
    n->attrs["nhwc"] = Attribute::fromInt(nhwc ? 1 : 0);
    q->type.dtype = DataType::kInt8;
    q->type.shape = x->type.shape;
    if (nhwc && x->type.shape.rank_known && x->type.shape.rank() == 4) {
      const auto& d = x->type.shape.dims;
      q->type.shape = Shape(std::vector<Dim>{d[0], d[2], d[3], d[1]});
    }
    ++rep.quantize;
    qmap[key] = q;
    return q;
  }

  Status rewriteGroup(const Group& gr, const std::map<Value*, int>& qconsumers) {
    Node* n = gr.gemm;
    const std::string op = n->op_type;
    // Weights as [K_out, ...] float, then per-channel int8.
    Tensor w = *n->inputs[1]->constant;
    if (op == "Conv") {
      // KCRS -> KRSC
      const int64_t K = w.dim(0), C = w.dim(1), R = w.dim(2), S = w.dim(3);
      Tensor t(DataType::kFloat32, {K, R, S, C});
      const float* s = w.data<float>();
      float* d = t.data<float>();
      for (int64_t k = 0; k < K; ++k)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t r = 0; r < R; ++r)
            for (int64_t q = 0; q < S; ++q) d[((k * R + r) * S + q) * C + c] = s[((k * C + c) * R + r) * S + q];
      w = t;
    } else if (!(op == "Gemm" && n->attrInt("transB", 0))) {
      // [K, N] -> [N, K]
      const int64_t K = w.dim(0), N = w.dim(1);
      Tensor t(DataType::kFloat32, {N, K});
      for (int64_t k = 0; k < K; ++k)
        for (int64_t j = 0; j < N; ++j) t.data<float>()[j * K + k] = w.data<float>()[k * N + j];
      w = t;
    }
    Tensor wq;
    std::vector<float> ws;
    RJ_RETURN_IF_ERROR(quantizeWeightsPerChannel(w, &wq, &ws));
    const int64_t K = w.dim(0);
    const float sx = amax(gr.x) / 127.f;
    Tensor mul(DataType::kFloat32, {K}), bias(DataType::kFloat32, {K});
    for (int64_t k = 0; k < K; ++k) {
      mul.data<float>()[k] = sx * ws[k];
      bias.data<float>()[k] = 0.f;
    }
    if (n->hasInput(2)) {
      Tensor b = n->inputs[2]->constant->cast(DataType::kFloat32);
      if (b.numel() != K) return makeError(StatusCode::kInvalidModel, n->describe(), ": bias has ", b.numel(), " entries, expected ", K);
      for (int64_t k = 0; k < K; ++k) bias.data<float>()[k] = b.data<float>()[k];
    }
    std::vector<Value*> ins = {quantized(gr.x, gr.conv), makeConstant(g, n->name + "__wq", std::move(wq)),
                               makeConstant(g, n->name + "__bias", std::move(bias)),
                               makeConstant(g, n->name + "__mul", std::move(mul))};
    if (gr.residual) ins.push_back(quantized(gr.residual, true));
    Value* F = gr.out;
    const bool graph_out = F->is_graph_output;
    auto qc = qconsumers.find(F);
    const bool int8_out = qc != qconsumers.end() && amax(F) > 0.f;
    size_t float_uses = graph_out ? 1 : 0;
    for (Node* c : F->consumers) (void)c, ++float_uses;
    if (int8_out) float_uses -= std::min<size_t>(float_uses, static_cast<size_t>(qc->second));
    // Copy what is needed from the original nodes, then detach them (values stay: F keeps its
    // name and consumers).
    const std::string qname = n->name.empty() ? F->name : n->name;
    auto st = n->attrInts("strides"), pads = n->attrInts("pads"), dil = n->attrInts("dilations");
    if (n->attrString("auto_pad", "NOTSET") == "VALID") pads.clear();
    std::vector<Node*> nodes = gr.nodes;
    for (Node* m : nodes) {
      decided.erase(m);  // the address may be reused by a node made below
      why.erase(m);
      g.removeNode(m);
    }
    n = nullptr;
    Node* q;
    Value* qout = nullptr;
    if (int8_out) {
      qout = g.addValue(g.uniqueValueName(F->name + "__int8"));
      qout->type.dtype = DataType::kInt8;
      q = g.addNode(gr.conv ? "QConv" : "QGemm", qname, ins, {qout});
      q->attrs["out_scale"] = Attribute::fromFloat(amax(F) / 127.f);
      qmap[{F, gr.conv}] = qout;
    } else {
      q = g.addNode(gr.conv ? "QConv" : "QGemm", qname, ins, {F});
      q->attrs["to"] = Attribute::fromInt(static_cast<int64_t>(graph_out ? DataType::kFloat32 : dtypeOf(mode)));
      if (gr.conv) q->attrs["out_nchw"] = Attribute::fromInt(1);
    }
    if (gr.conv) {
      q->attrs["strides"] = Attribute::fromInts(st.empty() ? std::vector<int64_t>{1, 1} : st);
      q->attrs["pads"] = Attribute::fromInts(pads.empty() ? std::vector<int64_t>{0, 0, 0, 0} : pads);
      q->attrs["dilations"] = Attribute::fromInts(dil.empty() ? std::vector<int64_t>{1, 1} : dil);
    }
    rep.int8_layers.push_back(qname);
    q->attrs["activation"] = Attribute::fromInt(gr.act);
    q->attrs["alpha"] = Attribute::fromFloat(gr.alpha);
    q->attrs["beta"] = Attribute::fromFloat(gr.beta);
    q->attrs["act_after_residual"] = Attribute::fromInt(gr.act_after_residual ? 1 : 0);
    if (gr.residual) q->attrs["res_scale"] = Attribute::fromFloat(amax(gr.residual) / 127.f);
    if (gr.act != int8::kActNone) ++rep.int8_fused_activations;
    if (gr.residual) ++rep.int8_fused_residuals;
    if (int8_out && float_uses > 0) {
      Node* dq = g.addNode("Int8Dequantize", F->name + "__dequant", {qout}, {F});
      dq->attrs["scale"] = Attribute::fromFloat(amax(F) / 127.f);
      dq->attrs["nhwc"] = Attribute::fromInt(gr.conv ? 1 : 0);
      dq->attrs["to"] = Attribute::fromInt(static_cast<int64_t>(graph_out ? DataType::kFloat32 : dtypeOf(mode)));
      ++rep.dequantize;
    }
    return Status::Ok();
  }

  // ---- INT8 data movement (Concat / Slice / Split between INT8 layers) ----
  // Nodes that move int8 elements without arithmetic, created by lowerInt8.
  std::set<const Node*> int8_moves{};

  static bool rank4Float(const Value* v) {
    return v && v->type.shape.rank_known && v->type.shape.rank() == 4 && isFloat(v->type.dtype);
  }
  // Data inputs of a movement candidate (the tensors moved; the rest are constant parameters).
  static std::vector<Value*> movedInputs(const Node* n) {
    if (n->op_type == "Concat") return n->inputs;
    return {n->inputs[0]};
  }
  // Concat / Slice / Split on rank-4 float data with constant parameters: candidates to run on
  // the int8 NHWC tensors of the INT8 layers around them.
  static bool rank4Axis(int64_t a) { return a >= -4 && a < 4; }
  bool moveCandidate(const Node* n) const {
    if (!n->domain.empty() || n->outputs.empty() || n->inputs.empty() || overrideFor(*n)) return false;
    for (const Value* o : n->outputs)
      if (!rank4Float(o) || o->is_graph_output) return false;
    if (n->op_type == "Concat") {
      if (!rank4Axis(n->attrInt("axis", 0))) return false;
      for (const Value* v : n->inputs)
        if (!rank4Float(v) || v->constant) return false;
      return true;
    }
    if (n->op_type == "Slice") {
      if (!rank4Float(n->inputs[0]) || n->inputs.size() < 3 || !n->hasInput(1) || !n->hasInput(2)) return false;
      for (size_t i = 1; i < n->inputs.size(); ++i)
        if (n->inputs[i] && !n->inputs[i]->constant) return false;
      if (n->hasInput(3)) {
        const Tensor& axes = *n->inputs[3]->constant;
        for (int64_t i = 0; i < axes.numel(); ++i)
          if (!rank4Axis(axes.getInt(i))) return false;
      }
      return true;
    }
    if (n->op_type == "Split") {
      if (!rank4Float(n->inputs[0]) || !rank4Axis(n->attrInt("axis", 0))) return false;
      for (size_t i = 1; i < n->inputs.size(); ++i)
        if (n->inputs[i] && !n->inputs[i]->constant) return false;
      return true;
    }
    return false;
  }

  // The movement nodes that can run in int8: every moved input comes as int8 NHWC (an INT8 conv
  // layer's output or another such node's) and every output is read only by INT8 conv layers
  // (main input or residual) or other such nodes. Shrunk to a fixed point.
  std::vector<Node*> findInt8Moves(const std::vector<Node*>& order, const std::vector<Group>& groups) {
    std::set<const Value*> conv_out;
    std::map<const Node*, const Group*> gemm_of, add_of;
    for (const Group& gr : groups) {
      if (!gr.conv) continue;
      conv_out.insert(gr.out);
      gemm_of[gr.gemm] = &gr;
      for (Node* m : gr.nodes)
        if (m->op_type == "Add") add_of[m] = &gr;
    }
    std::set<const Node*> moves;
    for (Node* n : order)
      if (moveCandidate(n)) moves.insert(n);
    auto calibrated = [&](const Node* n) {
      for (const Value* v : movedInputs(n))
        if (amax(v) <= 0.f) return false;
      for (const Value* o : n->outputs)
        if (amax(o) <= 0.f) return false;
      return true;
    };
    for (bool changed = true; changed;) {
      changed = false;
      std::set<const Value*> avail = conv_out;
      for (Node* n : order) {
        if (!moves.count(n)) continue;
        bool all = calibrated(n);
        for (const Value* v : movedInputs(n)) all &= avail.count(v) > 0;
        if (all)
          for (const Value* o : n->outputs) avail.insert(o);
        else
          moves.erase(n), changed = true;
      }
      for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Node* n = *it;
        if (!moves.count(n)) continue;
        bool wanted = true;
        for (const Value* o : n->outputs) {
          if (o->consumers.empty()) wanted = false;
          for (const Node* c : o->consumers) {
            auto gi = gemm_of.find(c);
            auto ai = add_of.find(c);
            const bool as_x = gi != gemm_of.end() && gi->second->x == o;
            const bool as_res = ai != add_of.end() && ai->second->residual == o;
            const bool as_move = moves.count(c) > 0;
            if (!as_x && !as_res && !as_move) wanted = false;
          }
        }
        if (!wanted) moves.erase(n), changed = true;
      }
    }
    std::vector<Node*> out;
    for (Node* n : order)
      if (moves.count(n)) out.push_back(n);
    return out;
  }

  // One scale for every tensor a movement node touches (int8 elements are moved, not rescaled):
  // each connected set of moved tensors takes the largest calibrated range among them.
  void unifyScales(const std::vector<Node*>& moves) {
    std::map<const Value*, const Value*> parent;
    std::function<const Value*(const Value*)> find = [&](const Value* v) -> const Value* {
      auto it = parent.find(v);
      if (it == parent.end() || it->second == v) return parent[v] = v;
      return it->second = find(it->second);
    };
    for (const Node* n : moves) {
      const Value* root = find(n->outputs[0]);
      for (const Value* o : n->outputs) parent[find(o)] = root;
      for (const Value* v : movedInputs(n)) parent[find(v)] = find(root);
    }
    std::map<const Value*, float> top;
    for (const auto& [v, p] : parent) top[find(v)] = std::max(top[find(v)], amax(v));
    for (const auto& [v, p] : parent) amax_unified[v->name] = top[find(v)];
  }

  // The NHWC int8 version of a movement node, reading and writing the int8 values in qmap.
  Status rewriteMove(Node* n) {
    auto nhwcAxis = [](int64_t a) -> int64_t {  // a in [-4, 3] (moveCandidate)
      static const int64_t m[4] = {0, 3, 1, 2};
      return m[(a + 4) % 4];
    };
    std::vector<Value*> ins;
    for (Value* v : n->inputs) ins.push_back(v);
    for (Value* v : movedInputs(n)) {
      auto it = qmap.find({v, true});
      if (it == qmap.end()) return makeError(StatusCode::kInternal, n->describe(), ": no int8 value for '", v->name, "'");
      for (Value*& x : ins)
        if (x == v) x = it->second;
    }
    auto attrs = n->attrs;
    if (n->op_type == "Concat" || n->op_type == "Split") attrs["axis"] = Attribute::fromInt(nhwcAxis(n->attrInt("axis", 0)));
    if (n->op_type == "Slice") {
      const int64_t len = n->inputs[1]->constant->numel();
      std::vector<int64_t> axes;
      if (n->hasInput(3)) {
        const Tensor& a = *n->inputs[3]->constant;
        for (int64_t i = 0; i < a.numel(); ++i) axes.push_back(nhwcAxis(a.getInt(i)));
      } else {
        for (int64_t i = 0; i < len; ++i) axes.push_back(nhwcAxis(i));
      }
      Value* av = makeConstant(g, n->name + "__nhwc_axes", Tensor::fromVector<int64_t>(axes, {static_cast<int64_t>(axes.size())}));
      if (ins.size() < 4) ins.resize(4, nullptr);
      ins[3] = av;
    }
    std::vector<Value*> outs;
    for (Value* o : n->outputs) outs.push_back(qmap.at({o, true}));
    const std::string op = n->op_type, name = n->name;
    decided.erase(n);
    why.erase(n);
    g.removeNode(n);
    Node* m = g.addNode(op, name + "__int8", ins, outs);
    m->attrs = attrs;
    int8_moves.insert(m);
    ++rep.int8_moves;
    return Status::Ok();
  }

  Status lowerInt8() {
    RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topoOrder());
    RJ_ASSIGN_OR_RETURN(std::vector<Group> groups, findGroups(order));
    const char* env_moves = std::getenv("RAMJET_INT8_MOVES");
    std::vector<Node*> moves;
    if (!(env_moves && env_moves[0] == '0')) moves = findInt8Moves(order, groups);
    unifyScales(moves);
    // How many quantized consumers (main input in the same layout, residual, or an int8
    // movement node) each output has.
    std::map<Value*, int> qconsumers;
    std::map<Value*, bool> out_is_conv;
    for (const Group& gr : groups) out_is_conv[gr.out] = gr.conv;
    for (const Group& gr : groups) {
      auto it = out_is_conv.find(gr.x);
      if (it != out_is_conv.end() && it->second == gr.conv) ++qconsumers[gr.x];
      if (gr.residual) {
        auto r = out_is_conv.find(gr.residual);
        if (r != out_is_conv.end() && r->second) ++qconsumers[gr.residual];
      }
    }
    for (Node* n : moves)
      for (Value* v : movedInputs(n))
        if (out_is_conv.count(v)) ++qconsumers[v];
    // The movement nodes' int8 outputs exist before the layers reading them are rewritten.
    for (Node* n : moves)
      for (Value* o : n->outputs) {
        Value* q = g.addValue(g.uniqueValueName(o->name + "__int8"));
        q->type.dtype = DataType::kInt8;
        qmap[{o, true}] = q;
      }
    for (const Group& gr : groups) RJ_RETURN_IF_ERROR(rewriteGroup(gr, qconsumers));
    for (Node* n : moves) RJ_RETURN_IF_ERROR(rewriteMove(n));
    return Status::Ok();
  }
};

// A per-tensor symmetric int8 scale of a Q/DQ node (constant scalar scale, zero point absent
// or a zero int8); 0 when the node is anything else.
float qdqScale(const Node* n) {
  if (!n || n->inputs.size() < 2 || !n->inputs[1] || !n->inputs[1]->constant) return 0.f;
  const Tensor& sc = *n->inputs[1]->constant;
  if (sc.numel() != 1 || sc.dtype() != DataType::kFloat32) return 0.f;
  if (n->hasInput(2)) {
    const Value* zp = n->inputs[2];
    if (!zp->constant || zp->constant->dtype() != DataType::kInt8 || zp->constant->numel() != 1 || zp->constant->getInt(0) != 0)
      return 0.f;
  } else if (n->op_type == "QuantizeLinear" && n->hasAttr("output_dtype") &&
             n->attrInt("output_dtype", 0) != static_cast<int64_t>(DataType::kInt8)) {
    return 0.f;
  }
  const float s = static_cast<float>(sc.getDouble(0));
  return s > 0.f && std::isfinite(s) ? s : 0.f;
}

// Explicitly quantized (QDQ) models: an activation QuantizeLinear -> DequantizeLinear pair with
// one int8 scale s says "this tensor is int8 with scale s". The pair is removed (its consumers
// read x) and amax = 127 s is recorded for x and for the pair's output, so the INT8 lowering
// quantizes x with exactly that scale: Int8Quantize(x, s) is QuantizeLinear(x, s) bit for bit.
// A pair whose consumer ends up in floating point behaves as FP32 DequantizeLinear(QuantizeLinear)
// would not (the rounding step is skipped), so pairs are folded only in INT8 builds.
size_t foldQdqPairs(Graph& g, CalibrationTable* table) {
  size_t folded = 0;
  std::vector<Node*> dqs;
  for (const auto& n : g.nodes())
    if (n->op_type == "DequantizeLinear" && n->domain.empty()) dqs.push_back(n.get());
  for (Node* dq : dqs) {
    Value* qv = dq->inputs[0];
    Node* q = qv ? qv->producer : nullptr;
    if (!q || q->op_type != "QuantizeLinear" || qv->is_graph_output) continue;
    const float s = qdqScale(q);
    if (s == 0.f || qdqScale(dq) != s || dq->hasAttr("axis") || q->hasAttr("axis")) continue;
    Value* x = q->inputs[0];
    Value* y = dq->outputs[0];
    if (!x || !y || x->type.dtype != DataType::kFloat32 || y->is_graph_output) continue;
    table->amax[x->name] = std::max(table->amax.count(x->name) ? table->amax[x->name] : 0.f, 127.f * s);
    table->amax[y->name] = 127.f * s;
    if (!passes::replaceAllUses(g, y, x)) continue;
    g.removeNode(dq);
    if (qv->consumers.empty()) g.removeNode(q);
    ++folded;
  }
  return folded;
}

}  // namespace

Precision int8FallbackPrecision(const BuildOptions& opt) {
  return opt.int8_fallback.value_or(opt.device == DeviceKind::kCpu ? Precision::kFP32 : Precision::kFP16);
}

// A narrowing Cast right after a Transpose of the wider tensor: cast first, then move half the
// bytes. A CNN's FP32 NCHW input transposed to NHWC for FP16 convolutions otherwise moves the FP32
// image twice (YOLOv8n at batch 64, 640x640: 0.34 ms Transpose + 0.24 ms Cast on the H100). The
// two nodes swap roles and names in place; the tensor between them takes the Cast's type.
void castBeforeTranspose(Graph& g) {
  for (const auto& up : g.nodes()) {
    Node* c = up.get();
    if (c->op_type != "Cast" || !c->domain.empty() || !c->hasInput(0)) continue;
    Value* v = c->inputs[0];
    Node* m = v->producer;
    if (!m || m->op_type != "Transpose" || !m->domain.empty() || m->inputs.size() != 1 || !m->inputs[0]) continue;
    if (v->consumers.size() != 1 || v->is_graph_output || v->is_outer_scope) continue;
    const DataType from = v->type.dtype, to = static_cast<DataType>(c->attrInt("to", 0));
    if (!isFloat(from) || !isFloat(to) || dataTypeSize(to) >= dataTypeSize(from)) continue;
    Value* u = m->inputs[0];
    if (u->type.dtype != from) continue;
    std::map<std::string, Attribute> transpose_attrs = m->attrs;
    m->op_type = "Cast";
    m->attrs = c->attrs;
    c->op_type = "Transpose";
    c->attrs = std::move(transpose_attrs);
    std::swap(m->name, c->name);
    v->type = TensorType{to, u->type.shape};
  }
}

Result<LoweringReport> lowerPrecision(Graph& g, const Graph& original, const BuildOptions& opt, const LoweringEnv& env) {
  LoweringReport rep;
  if (opt.reduced_precision_io && opt.precision != Precision::kFP16 && opt.precision != Precision::kBF16)
    return makeError(StatusCode::kInvalidArgument, "reduced-precision inputs/outputs need an fp16 or bf16 build (this one is ",
                     precisionName(opt.precision), ")");
  RJ_ASSIGN_OR_RETURN(std::vector<PrecisionOverride> overrides, parseOverrides(opt.precision_overrides));
  // Every override must name something: a typo would silently do nothing.
  for (const auto& o : overrides) {
    bool found = false;
    for (const Graph* gr : {static_cast<const Graph*>(&g), &original})
      for (const auto& n : gr->nodes())
        if (n->name == o.pattern || n->op_type == o.pattern) found = true;
    if (!found)
      return makeError(StatusCode::kInvalidArgument, "precision override '", o.pattern, ":",
                       layerPrecisionName(o.precision), "' matches no node name or op type of the model");
  }
  if (opt.precision == Precision::kFP32 && overrides.empty()) return rep;
  if (!ops::findOp("Cast")) return Status(StatusCode::kUnsupported, "precision lowering needs the Cast op");

  const bool int8 = opt.precision == Precision::kINT8;
  const bool fp8 = opt.precision == Precision::kFP8;
  // Ranges: required for INT8 (unless the model carries its own Q/DQ scales); used for FP16 range
  // checks when the user gave any source.
  CalibrationTable table;
  size_t qdq = 0;
  if (int8) {
    CalibrationTable from_qdq;
    qdq = foldQdqPairs(g, &from_qdq);
    if (qdq) {
      RJ_RETURN_IF_ERROR(g.inferShapes());
      table = from_qdq;
    }
  }
  const bool any_source = opt.calibrator || !opt.activation_amax.empty() ||
                          (!opt.calibration_cache_path.empty() && std::ifstream(opt.calibration_cache_path).good());
  if (int8 || fp8 || (opt.precision == Precision::kFP16 && any_source)) {
    if (qdq && !any_source) {
      rep.calibration_source = std::to_string(qdq) + " Q/DQ pairs of the model";
    } else {
      RJ_ASSIGN_OR_RETURN(CalibrationTable t, obtainCalibration(original, opt, (int8 && !qdq) || fp8, &rep.calibration_source, env.logger));
      for (const auto& [k, v] : table.amax) t.amax[k] = v;  // the model's own scales win
      table = std::move(t);
      if (qdq) rep.calibration_source += " + " + std::to_string(qdq) + " Q/DQ pairs";
    }
    rep.calibrated = true;
  }
  Lowerer L{g, opt, env, table, rep, LayerPrecision::kFP32, overrides, {}, {}, {}, {}};
  switch (opt.precision) {
    case Precision::kFP16: L.mode = LayerPrecision::kFP16; break;
    case Precision::kINT8:
      L.mode = int8FallbackPrecision(opt) == Precision::kFP32 ? LayerPrecision::kFP32 : LayerPrecision::kFP16;
      break;
    case Precision::kBF16: L.mode = LayerPrecision::kBF16; break;
    case Precision::kFP8:  // FP8 GEMMs; FP16 elsewhere (FP32 on the CPU, whose FP16 is emulated)
      L.mode = opt.device == DeviceKind::kCpu ? LayerPrecision::kFP32 : LayerPrecision::kFP16;
      break;
    default: L.mode = LayerPrecision::kFP32; break;
  }
  RJ_ASSIGN_OR_RETURN(std::vector<Node*> order, g.topoOrder());
  L.decideFloat(order);
  if (int8) RJ_RETURN_IF_ERROR(L.lowerInt8());
  if (fp8) RJ_RETURN_IF_ERROR(L.lowerFp8());
  RJ_RETURN_IF_ERROR(L.apply());
  castBeforeTranspose(g);
  // Weights replaced by converted or quantized copies are no longer used: drop their data so the
  // plan does not carry both.
  for (const auto& v : g.values())
    if (v->constant && v->consumers.empty() && !v->is_graph_output && !v->is_graph_input && !v->is_outer_scope)
      v->constant.reset();
  Status st = g.inferShapes();
  if (!st.ok()) return makeError(StatusCode::kInternal, "precision lowering left an inconsistent graph: ", st.message());
  if (env.logger) env.logger->log(Severity::kInfo, "precision: " + rep.toString());
  return rep;
}

}  // namespace ramjet::precision
