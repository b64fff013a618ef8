// FusedConv kernels for the CUDA backend (see cudnn_fused_conv.h), registered in the extension
// table (cuda_op_table.h).
#include "backends/cuda/cudnn_fused_conv.h"

#include <cudnn.h>
#include <cudnn_frontend.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_op_table.h"
#include "backends/cuda/cudnn_conv.h"
#include "backends/cuda/cudnn_graph_util.h"
#include "ops/fused_conv.h"
#include "ops/nn_geometry.h"

namespace ramjet::cuda {

int cudnnFrontendVersion() { return CUDNN_FRONTEND_VERSION; }

namespace {

namespace fe = cudnn_frontend;
using backend::Kernel;
using backend::RunArgs;
using backend::Tactic;
using ops::ConvAct;

constexpr const char* kGraphTactic = "cuda.fused_conv.cudnn_graph";
constexpr const char* kLegacyTactic = "cuda.fused_conv.cudnn";
constexpr const char* kDepthwiseTactic = "cuda.fused_conv.depthwise";
constexpr const char* kDirectTactic = "cuda.fused_conv.direct";
constexpr int64_t kDirectMaxC = 8;

// Few input channels, square window the direct kernel compiles, one group, unit dilation, NCHW.
bool isDirectNchw(const ConvDesc& d) {
  return d.layout == Layout::kNCHW && d.spatial_rank == 2 && d.groups == 1 && d.c <= kDirectMaxC &&
         d.kernel[0] == d.kernel[1] && directConvSupported(d.kernel[0], d.stride[1]) && d.dilation[0] == 1 &&
         d.dilation[1] == 1;
}

constexpr int kMaxGraphPlans = 3;
constexpr int kMaxLegacyAlgos = 3;

bool isF(DataType d) { return d == DataType::kFloat32 || d == DataType::kFloat16; }

struct Act {
  UnaryOp op = UnaryOp::kIdentity;
  UnaryParams p;
  ConvAct kind = ConvAct::kNone;
};

Result<Act> nodeAct(const Node& n) {
  RJ_ASSIGN_OR_RETURN(ops::ConvActivation a, ops::parseConvActivation(n));
  Act r;
  r.kind = a.kind;
  r.p.alpha = a.alpha;
  r.p.beta = a.beta;
  switch (a.kind) {
    case ConvAct::kNone: r.op = UnaryOp::kIdentity; break;
    case ConvAct::kRelu: r.op = UnaryOp::kRelu; break;
    case ConvAct::kLeakyRelu: r.op = UnaryOp::kLeakyRelu; break;
    case ConvAct::kSigmoid: r.op = UnaryOp::kSigmoid; break;
    case ConvAct::kTanh: r.op = UnaryOp::kTanh; break;
    case ConvAct::kSilu: r.op = UnaryOp::kSilu; break;
    case ConvAct::kHardSwish: r.op = UnaryOp::kHardSwish; break;
    case ConvAct::kHardSigmoid: r.op = UnaryOp::kHardSigmoid; break;
    case ConvAct::kClip: r.op = UnaryOp::kClip; break;
    case ConvAct::kMish: r.op = UnaryOp::kMish; break;
    case ConvAct::kGelu: r.op = UnaryOp::kGelu; break;
  }
  return r;
}

// The node's convolution in cuDNN terms. x/w/y dims are physical (NHWC: [N, D..., C] and W
// [K, k..., C/g]).
Result<ConvDesc> fusedConvDesc(const Node& n, const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                               const std::vector<int64_t>& y, DataType dt, bool has_bias, bool nhwc) {
  ConvDesc d;
  d.name = n.describe();
  d.dtype = dt;
  d.layout = nhwc ? Layout::kNHWC : Layout::kNCHW;
  if (x.size() < 3 || x.size() > 5 || w.size() != x.size() || y.size() != x.size())
    return makeError(StatusCode::kUnsupported, n.describe(), ": convolution of rank ", x.size());
  const int sr = static_cast<int>(x.size()) - 2;
  const size_t sp0 = nhwc ? 1 : 2;  // first spatial axis
  d.spatial_rank = sr;
  d.n = x[0];
  d.c = nhwc ? x.back() : x[1];
  d.k = w[0];
  d.groups = n.attrInt("group", 1);
  d.has_bias = has_bias;
  auto s = n.attrInts("strides"), dl = n.attrInts("dilations"), pads = n.attrInts("pads");
  const std::string ap = n.attrString("auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "VALID")
    return makeError(StatusCode::kUnsupported, n.describe(), ": auto_pad ", ap);
  for (int i = 0; i < sr; ++i) {
    d.in[i] = x[sp0 + i];
    d.kernel[i] = w[sp0 + i];
    d.stride[i] = i < static_cast<int>(s.size()) ? s[i] : 1;
    d.dilation[i] = i < static_cast<int>(dl.size()) ? dl[i] : 1;
    int64_t b = 0, e = 0;
    if (ap == "NOTSET" && pads.size() == static_cast<size_t>(2 * sr)) {
      b = pads[i];
      e = pads[sr + i];
    }
    if (b != e) return makeError(StatusCode::kUnsupported, n.describe(), ": asymmetric padding");
    d.pad[i] = b;
  }
  return d;
}

// ---------------------------------------------------------------- cuDNN graph API
struct GraphConv {
  std::shared_ptr<fe::graph::Graph> graph;
  std::shared_ptr<fe::graph::Tensor_attributes> x, w, b, z, y;
  int64_t plan_count = 0;
};

bool graphActivation(ConvAct a) {
  switch (a) {
    case ConvAct::kNone: case ConvAct::kRelu: case ConvAct::kLeakyRelu: case ConvAct::kClip:
    case ConvAct::kSigmoid: case ConvAct::kTanh: case ConvAct::kSilu: case ConvAct::kGelu:
      return true;
    default:
      return false;
  }
}

// Builds the op graph and its engine-config candidates (no plan compiled yet). kUnsupported
// when cuDNN has no engine for the pattern.
Result<std::unique_ptr<GraphConv>> makeGraphConv(cudnnHandle_t handle, const ConvDesc& d, bool has_z,
                                                 const Act& act) {
  const std::string who = d.name;
  if (d.spatial_rank != 2) return makeError(StatusCode::kUnsupported, who, ": graph API path is 2-D only");
  if (!graphActivation(act.kind))
    return makeError(StatusCode::kUnsupported, who, ": activation ", ops::convActName(act.kind),
                     " has no cuDNN pointwise mode");
  auto gc = std::make_unique<GraphConv>();
  try {
    gc->graph = std::make_shared<fe::graph::Graph>();
    fe::graph::Graph& g = *gc->graph;
    const fe::DataType_t io = d.dtype == DataType::kFloat16 ? fe::DataType_t::HALF : fe::DataType_t::FLOAT;
    g.set_io_data_type(io).set_intermediate_data_type(fe::DataType_t::FLOAT).set_compute_data_type(fe::DataType_t::FLOAT);
    const bool nhwc = d.layout == Layout::kNHWC;
    std::vector<int64_t> xd = {d.n, d.c, d.in[0], d.in[1]};
    std::vector<int64_t> wd = {d.k, d.c / d.groups, d.kernel[0], d.kernel[1]};
    std::vector<int64_t> yd = {d.n, d.k};
    for (int i = 0; i < 2; ++i)
      yd.push_back((d.in[i] + 2 * d.pad[i] - (d.dilation[i] * (d.kernel[i] - 1) + 1)) / d.stride[i] + 1);
    gc->x = g.tensor(fe::graph::Tensor_attributes().set_name("x").set_dim(xd).set_stride(cudnnStrides(xd, nhwc)).set_data_type(io));
    gc->w = g.tensor(fe::graph::Tensor_attributes().set_name("w").set_dim(wd).set_stride(cudnnStrides(wd, nhwc)).set_data_type(io));
    auto opts = fe::graph::Conv_fprop_attributes()
                    .set_padding({d.pad[0], d.pad[1]})
                    .set_stride({d.stride[0], d.stride[1]})
                    .set_dilation({d.dilation[0], d.dilation[1]})
                    .set_compute_data_type(fe::DataType_t::FLOAT);
    auto cur = g.conv_fprop(gc->x, gc->w, opts);
    auto pw = [](fe::PointwiseMode_t m) {
      return fe::graph::Pointwise_attributes().set_mode(m).set_compute_data_type(fe::DataType_t::FLOAT);
    };
    if (d.has_bias) {
      std::vector<int64_t> bd = {1, d.k, 1, 1};
      gc->b = g.tensor(fe::graph::Tensor_attributes().set_name("b").set_dim(bd).set_stride(cudnnStrides(bd, nhwc)).set_data_type(io));
      cur = g.pointwise(cur, gc->b, pw(fe::PointwiseMode_t::ADD));
    }
    if (has_z) {
      gc->z = g.tensor(fe::graph::Tensor_attributes().set_name("z").set_dim(yd).set_stride(cudnnStrides(yd, nhwc)).set_data_type(io));
      cur = g.pointwise(cur, gc->z, pw(fe::PointwiseMode_t::ADD));
    }
    switch (act.kind) {
      case ConvAct::kNone: break;
      case ConvAct::kRelu: cur = g.pointwise(cur, pw(fe::PointwiseMode_t::RELU_FWD)); break;
      case ConvAct::kLeakyRelu:
        cur = g.pointwise(cur, pw(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip_slope(act.p.alpha));
        break;
      case ConvAct::kClip:
        cur = g.pointwise(cur, pw(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip(act.p.alpha).set_relu_upper_clip(act.p.beta));
        break;
      case ConvAct::kSigmoid: cur = g.pointwise(cur, pw(fe::PointwiseMode_t::SIGMOID_FWD)); break;
      case ConvAct::kTanh: cur = g.pointwise(cur, pw(fe::PointwiseMode_t::TANH_FWD)); break;
      case ConvAct::kSilu: cur = g.pointwise(cur, pw(fe::PointwiseMode_t::SWISH_FWD).set_swish_beta(1.f)); break;
      case ConvAct::kGelu: cur = g.pointwise(cur, pw(fe::PointwiseMode_t::GELU_FWD)); break;
      default: break;
    }
    cur->set_output(true).set_data_type(io).set_dim(yd).set_stride(cudnnStrides(yd, nhwc));
    gc->y = cur;
    // Runtime-compiled (NVRTC) engines cost seconds per plan at build and load time: opt-in.
    const char* rt = std::getenv("RAMJET_CUDNN_RUNTIME_FUSION");
    RJ_RETURN_IF_ERROR(finalizeCudnnGraph(g, handle, who, rt && rt[0] == '1', &gc->plan_count));
  } catch (const std::exception& e) {
    return makeError(StatusCode::kUnsupported, who, ": cuDNN graph: ", e.what());
  }
  return gc;
}

// ---------------------------------------------------------------- the kernel
class FusedConvKernel final : public Kernel {
 public:
  FusedConvKernel(const Node& n, Handles* h, const Tactic& t)
      : n_(n), h_(h), graph_(t.name == kGraphTactic), depthwise_(t.name == kDepthwiseTactic),
        direct_(t.name == kDirectTactic), tactic_(t.id),
        tuned_(t.tuned_dims) {}
  ~FusedConvKernel() override {
    if (dw_weights_) cudaFree(dw_weights_);
  }

  // The depthwise tactic packs W [C, KH, KW, 1] (NHWC) as [KH, KW, C] once per engine; NCHW
  // weights [C, 1, KH, KW] are used as they are.
  // The direct tactic packs W [M, C, KH, KW] (NCHW) as FP32 [ceil(M/8), C*KH*KW, 8]
  // (zero-padded): 8 output channels' weights of one tap side by side.
  Status prepare(const std::vector<const Tensor*>& consts) override {
    if (direct_) {
      if (consts.size() < 2 || !consts[1] || consts[1]->rank() != 4)
        return makeError(StatusCode::kUnsupported, n_.describe(), ": direct tactic needs constant 4-D weights");
      RJ_ASSIGN_OR_RETURN(bool nhwc, ops::parseConvLayoutNhwc(n_));
      if (nhwc) return makeError(StatusCode::kUnsupported, n_.describe(), ": the direct tactic is NCHW");
      const Tensor w = consts[1]->dtype() == DataType::kFloat32 ? *consts[1] : consts[1]->cast(DataType::kFloat32);
      const int64_t m = w.dim(0), c = w.dim(1) * w.dim(2) * w.dim(3);
      const int64_t co = kDirectOutChannels, groups = (m + co - 1) / co;
      std::vector<float> packed(static_cast<size_t>(groups * c * co), 0.f);
      const float* src = w.data<float>();
      for (int64_t mi = 0; mi < m; ++mi)
        for (int64_t ci = 0; ci < c; ++ci)
          packed[static_cast<size_t>(((mi / co) * c + ci) * co + mi % co)] = src[mi * c + ci];
      return uploadWeights(packed.data(), packed.size() * sizeof(float), consts[1]->dtype());
    }
    if (!depthwise_) return Status::Ok();
    if (consts.size() < 2 || !consts[1] || consts[1]->rank() != 4)
      return makeError(StatusCode::kUnsupported, n_.describe(), ": depthwise tactic needs constant 4-D weights");
    RJ_ASSIGN_OR_RETURN(bool nhwc, ops::parseConvLayoutNhwc(n_));
    const Tensor& w = *consts[1];
    Tensor packed;
    if (nhwc) {
      const int64_t c = w.dim(0), k = w.dim(1) * w.dim(2);
      if (w.dim(3) != 1) return makeError(StatusCode::kUnsupported, n_.describe(), ": not depthwise");
      packed = ops::permuteTensor(w.reshaped({c, k}), {1, 0});
    } else {
      if (w.dim(1) != 1) return makeError(StatusCode::kUnsupported, n_.describe(), ": not depthwise");
      packed = w;
    }
    return uploadWeights(packed.raw(), packed.nbytes(), w.dtype());
  }

  // The packed weights to the device, once per engine; `dtype` is the model's weight type (the
  // kernels check it against the activations').
  Status uploadWeights(const void* data, size_t bytes, DataType dtype) {
    if (dw_weights_) cudaFree(dw_weights_);
    dw_weights_ = nullptr;
    RJ_CUDA_CHECK(cudaMalloc(&dw_weights_, std::max<size_t>(bytes, 1)));
    RJ_CUDA_CHECK(cudaMemcpy(dw_weights_, data, bytes, cudaMemcpyHostToDevice));
    dw_dtype_ = dtype;
    return Status::Ok();
  }

  size_t workspaceBytes(const RunArgs& a) const override {
    auto e = entry(a);
    return e.ok() ? (*e)->workspace : 0;
  }

  Status run(const RunArgs& a) override {
    RJ_ASSIGN_OR_RETURN(Entry * e, entry(a));
    if (a.outputs[0].numel() == 0) return Status::Ok();
    if (e->workspace > a.workspace_bytes)
      return makeError(StatusCode::kInternal, n_.describe(), ": workspace ", a.workspace_bytes, " < ", e->workspace);
    const void* bias = e->has_bias ? a.inputs[2].data : nullptr;
    const void* z = e->has_z ? a.inputs[3].data : nullptr;
    cudaStream_t s = static_cast<cudaStream_t>(a.stream);
    if (e->direct) {
      if (!dw_weights_ || dw_dtype_ != e->desc.dtype)
        return makeError(StatusCode::kInternal, n_.describe(), ": direct weights not prepared");
      return directConvNchw(e->desc.dtype, a.inputs[0].data, dw_weights_, bias, z, a.outputs[0].data, e->dcp,
                            e->act.op, e->act.p, s);
    }
    if (e->dw) {
      if (!dw_weights_ || dw_dtype_ != e->desc.dtype)
        return makeError(StatusCode::kInternal, n_.describe(), ": depthwise weights not prepared");
      return e->dw_nhwc ? depthwiseConvNhwc(e->desc.dtype, a.inputs[0].data, dw_weights_, bias, z, a.outputs[0].data,
                                            e->dwp, e->act.op, e->act.p, s)
                        : depthwiseConvNchw(e->desc.dtype, a.inputs[0].data, dw_weights_, bias, z, a.outputs[0].data,
                                            e->dwp, e->act.op, e->act.p, s);
    }
    std::lock_guard<std::mutex> lock(h_->cudnn_mu);
    if (e->gc) {
      RJ_CUDNN_CHECK(cudnnSetStream(h_->cudnn->get(), s));
      std::unordered_map<std::shared_ptr<fe::graph::Tensor_attributes>, void*> pack = {
          {e->gc->x, a.inputs[0].data}, {e->gc->w, a.inputs[1].data}, {e->gc->y, a.outputs[0].data}};
      if (e->gc->b) pack[e->gc->b] = const_cast<void*>(bias);
      if (e->gc->z) pack[e->gc->z] = const_cast<void*>(z);
      fe::error_t st = e->gc->graph->execute_plan_at_index(h_->cudnn->get(), pack, a.workspace, e->plan_index);
      if (st.is_bad())
        return makeError(StatusCode::kDeviceError, n_.describe(), ": cuDNN graph execute (plan ", e->plan_index,
                         "): ", st.get_message());
      return Status::Ok();
    }
    RJ_RETURN_IF_ERROR(e->conv->run(e->algo, a.inputs[0].data, a.inputs[1].data, e->conv_bias ? bias : nullptr,
                                    a.outputs[0].data, a.workspace, a.workspace_bytes, s));
    if (e->epilogue)
      RJ_RETURN_IF_ERROR(convEpilogue(e->desc.dtype, a.outputs[0].data, bias, z, a.outputs[0].data, e->outer,
                                      e->desc.k, e->inner, e->act.op, e->act.p, s));
    return Status::Ok();
  }

  struct Entry {
    ConvDesc desc;
    Act act;
    bool has_bias = false, has_z = false;
    size_t workspace = 0;
    // own depthwise kernel
    bool dw = false, dw_nhwc = true;
    DepthwiseParams dwp;
    // own direct kernel
    bool direct = false;
    DirectConvParams dcp;
    // graph API
    std::unique_ptr<GraphConv> gc;
    int64_t plan_index = 0;
    // legacy
    std::unique_ptr<CudnnConv> conv;
    ConvAlgo algo;
    bool conv_bias = false;  // bias (+activation) applied by CudnnConv itself
    bool epilogue = false;   // convEpilogue after the convolution
    int64_t outer = 0, inner = 0;
  };

  Result<Entry*> entry(const RunArgs& a) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& key = a.inputs[0].dims;
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second.get();
    auto e = std::make_unique<Entry>();
    RJ_ASSIGN_OR_RETURN(bool nhwc, ops::parseConvLayoutNhwc(n_));
    RJ_ASSIGN_OR_RETURN(e->act, nodeAct(n_));
    e->has_bias = a.inputs.size() > 2 && a.inputs[2].dtype != DataType::kUndefined && a.inputs[2].data;
    e->has_z = a.inputs.size() > 3 && a.inputs[3].dtype != DataType::kUndefined;
    RJ_ASSIGN_OR_RETURN(e->desc, fusedConvDesc(n_, a.inputs[0].dims, a.inputs[1].dims, a.outputs[0].dims,
                                               a.inputs[0].dtype, e->has_bias, nhwc));
    const bool tuned_here = tuned_.empty() || tuned_ == key;
    const ConvDesc& d = e->desc;
    if (depthwise_ && d.spatial_rank == 2 && d.groups == d.c && d.k == d.c) {
      e->dw = true;
      e->dw_nhwc = nhwc;
      DepthwiseParams& p = e->dwp;
      p.n = d.n, p.h = d.in[0], p.w = d.in[1], p.c = d.c;
      p.oh = a.outputs[0].dims[nhwc ? 1 : 2], p.ow = a.outputs[0].dims[nhwc ? 2 : 3];
      p.kh = d.kernel[0], p.kw = d.kernel[1], p.sh = d.stride[0], p.sw = d.stride[1];
      p.ph = d.pad[0], p.pw = d.pad[1], p.dh = d.dilation[0], p.dw = d.dilation[1];
      Entry* raw = e.get();
      cache_[key] = std::move(e);
      return raw;
    }
    if (direct_ && isDirectNchw(d)) {
      e->direct = true;
      DirectConvParams& p = e->dcp;
      p.n = d.n, p.c = d.c, p.m = d.k, p.h = d.in[0], p.w = d.in[1];
      p.oh = a.outputs[0].dims[2], p.ow = a.outputs[0].dims[3];
      p.k = d.kernel[0], p.sh = d.stride[0], p.sw = d.stride[1], p.ph = d.pad[0], p.pw = d.pad[1];
      Entry* raw = e.get();
      cache_[key] = std::move(e);
      return raw;
    }
    if (graph_) {
      std::lock_guard<std::mutex> hl(h_->cudnn_mu);
      auto gc = makeGraphConv(h_->cudnn->get(), e->desc, e->has_z, e->act);
      if (gc.ok()) {
        // The timed engine config at the tuned shape; heuristics' first choice elsewhere.
        int64_t idx = tuned_here ? std::max<int64_t>(tactic_, 0) : 0;
        if (idx >= (*gc)->plan_count) idx = 0;
        auto ws = buildCudnnPlan(*(*gc)->graph, &idx, n_.describe());
        if (ws.ok()) {
          e->gc = std::move(*gc);
          e->plan_index = idx;
          e->workspace = *ws;
        }
      }
      // No graph engine for this shape: the legacy path below.
    }
    if (!e->gc) {
      ConvDesc cd = e->desc;
      // Bias (+activation) inside CudnnConv when there is no residual; else conv alone and the
      // residual, bias and activation in one epilogue pass.
      e->conv_bias = !e->has_z;
      cd.has_bias = e->has_bias && e->conv_bias;
      cd.activation = e->has_z ? UnaryOp::kIdentity : e->act.op;
      cd.act_params = e->act.p;
      e->epilogue = e->has_z;
      RJ_ASSIGN_OR_RETURN(e->conv, CudnnConv::create(h_->cudnn->get(), cd));
      RJ_ASSIGN_OR_RETURN(auto cands, e->conv->candidates(size_t{1} << 30));
      e->algo = cands[0];
      if (!graph_ && tuned_here)
        for (const auto& c : cands)
          if (c.algo * 10 + c.math_type == tactic_) e->algo = c;
      e->workspace = e->algo.workspace;
      const auto& y = e->conv->outputDims();
      int64_t sp = 1;
      for (size_t i = nhwc ? 1 : 2; i < (nhwc ? y.size() - 1 : y.size()); ++i) sp *= y[i];
      e->outer = nhwc ? e->desc.n * sp : e->desc.n;
      e->inner = nhwc ? 1 : sp;
    }
    Entry* raw = e.get();
    cache_[key] = std::move(e);
    return raw;
  }

 private:
  const Node& n_;
  Handles* h_;
  bool graph_;
  bool depthwise_;
  bool direct_;
  void* dw_weights_ = nullptr;  // the depthwise or direct tactic's packed weights
  DataType dw_dtype_ = DataType::kUndefined;
  int32_t tactic_;
  std::vector<int64_t> tuned_;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, std::unique_ptr<Entry>> cache_;
};

Status supportsFusedConv(const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out) {
  auto no = [&](auto&&... why) { return makeError(StatusCode::kUnsupported, n.describe(), ": ", why...); };
  const DataType dt = in.empty() ? DataType::kUndefined : in[0].dtype;
  if (!isF(dt)) return no(dataTypeName(dt), " convolution");
  if (in.size() < 2 || !n.hasInput(1) || !n.inputs[1]->constant) return no("weights must be constant");
  RJ_RETURN_IF_ERROR(nodeAct(n).status());
  RJ_RETURN_IF_ERROR(ops::parseConvLayoutNhwc(n).status());
  const std::string ap = n.attrString("auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "VALID") return no("auto_pad ", ap);
  auto pads = n.attrInts("pads");
  const size_t sr = pads.size() / 2;
  for (size_t i = 0; i < sr; ++i)
    if (pads[i] != pads[sr + i]) return no("asymmetric padding");
  if (in[0].shape.rank_known && (in[0].shape.rank() < 3 || in[0].shape.rank() > 5))
    return no("rank ", in[0].shape.rank());
  return Status::Ok();
}

std::vector<Tactic> fusedConvTactics(const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>& out,
                                     Handles& h) {
  std::vector<Tactic> t;
  if (in.size() >= 2 && in[0].shape.fullyKnown() && in[1].shape.fullyKnown() && !out.empty() &&
      out[0].shape.fullyKnown()) {
    auto nhwc = ops::parseConvLayoutNhwc(n);
    auto act = nodeAct(n);
    const bool bias = in.size() > 2 && in[2].dtype != DataType::kUndefined;
    const bool z = in.size() > 3 && in[3].dtype != DataType::kUndefined;
    if (nhwc.ok() && act.ok()) {
      auto d = fusedConvDesc(n, in[0].shape.concrete(), in[1].shape.concrete(), out[0].shape.concrete(), in[0].dtype,
                             bias, *nhwc);
      if (d.ok()) {
        // RAMJET_CONV_TACTIC=depthwise|direct: only the project's kernel where it applies (tests
        // check it whatever the timing would choose).
        const char* env = std::getenv("RAMJET_CONV_TACTIC");
        const std::string force = env ? env : "";
        if (d->spatial_rank == 2 && d->groups == d->c && d->k == d->c) {
          t.push_back(Tactic{kDepthwiseTactic, 0});
          if (force == "depthwise") return t;
        }
        if (isDirectNchw(*d)) {
          t.push_back(Tactic{kDirectTactic, 0});
          if (force == "direct") return t;
        }
        std::lock_guard<std::mutex> lock(h.cudnn_mu);
        auto gc = makeGraphConv(h.cudnn->get(), *d, z, *act);
        if (gc.ok())
          for (int64_t i = 0; i < (*gc)->plan_count && i < kMaxGraphPlans; ++i)
            t.push_back(Tactic{kGraphTactic, static_cast<int32_t>(i)});
        ConvDesc cd = *d;
        cd.has_bias = bias && !z;
        cd.activation = z ? UnaryOp::kIdentity : act->op;
        auto conv = CudnnConv::create(h.cudnn->get(), cd);
        if (conv.ok()) {
          auto cands = (*conv)->candidates(size_t{1} << 30);
          if (cands.ok())
            for (size_t i = 0; i < cands->size() && static_cast<int>(i) < kMaxLegacyAlgos; ++i)
              t.push_back(Tactic{kLegacyTactic, (*cands)[i].algo * 10 + (*cands)[i].math_type});
        }
      }
    }
  }
  // Legacy with cuDNN's own heuristic choice: always last, always possible.
  t.push_back(Tactic{kLegacyTactic, -1});
  return t;
}

// ---------------------------------------------------------------- PoolNhwc
// Channels-last Max/AveragePool through the project's pooling kernels (Layout::kNHWC).
class PoolNhwcKernel final : public Kernel {
 public:
  explicit PoolNhwcKernel(const Node& n) : n_(n) {}
  Status run(const RunArgs& a) override {
    const auto& x = a.inputs[0].dims;
    const auto& y = a.outputs[0].dims;
    if (x.size() < 3 || x.size() > 5 || y.size() != x.size())
      return makeError(StatusCode::kUnsupported, n_.describe(), ": pooling rank ", x.size());
    const int sr = static_cast<int>(x.size()) - 2;
    std::vector<int64_t> in(x.begin() + 1, x.end() - 1);
    auto k = n_.attrInts("kernel_shape");
    RJ_ASSIGN_OR_RETURN(ops::WindowGeometry g, ops::forwardWindow(n_, in, k, true));
    PoolParams p;
    p.layout = Layout::kNHWC;
    p.spatial_rank = sr;
    p.n = x[0];
    p.c = x.back();
    for (int i = 0; i < sr; ++i) {
      p.in[i] = x[1 + i];
      p.out[i] = y[1 + i];
      p.kernel[i] = g.kernel[i];
      p.stride[i] = g.strides[i];
      p.dilation[i] = g.dilations[i];
      p.pad_begin[i] = g.pads[i];
      p.pad_end[i] = g.pads[sr + i];
    }
    p.count_include_pad = n_.attrInt("count_include_pad", 0) != 0;
    if (a.outputs[0].numel() == 0) return Status::Ok();
    cudaStream_t s = static_cast<cudaStream_t>(a.stream);
    return n_.attrString("mode", "") == "max"
               ? maxPool(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, p, s)
               : averagePool(a.inputs[0].dtype, a.inputs[0].data, a.outputs[0].data, p, s);
  }

 private:
  const Node& n_;
};

}  // namespace

void registerFusedConvOps(CudaOpTable& t) {
  {
    CudaOpHandler h;
    h.supports = [](const Node& n, const std::vector<TensorType>& in, const std::vector<TensorType>&) -> Status {
      const DataType dt = in.empty() ? DataType::kUndefined : in[0].dtype;
      if (!isF(dt)) return makeError(StatusCode::kUnsupported, n.describe(), ": ", dataTypeName(dt), " pooling");
      const std::string m = n.attrString("mode", "");
      if (m != "max" && m != "average") return makeError(StatusCode::kUnsupported, n.describe(), ": mode ", m);
      return Status::Ok();
    };
    h.create = [](const Node& n, const Tactic&, Handles&) -> Result<std::unique_ptr<Kernel>> {
      return std::unique_ptr<Kernel>(new PoolNhwcKernel(n));
    };
    t.add("PoolNhwc", std::move(h));
  }
  CudaOpHandler h;
  h.supports = supportsFusedConv;
  h.tactics = fusedConvTactics;
  h.create = [](const Node& n, const Tactic& tac, Handles& hs) -> Result<std::unique_ptr<Kernel>> {
    if (tac.name != kGraphTactic && tac.name != kLegacyTactic && tac.name != kDepthwiseTactic &&
        tac.name != kDirectTactic)
      return makeError(StatusCode::kInvalidPlan, n.describe(), ": unknown FusedConv tactic '", tac.name, "'");
    return std::unique_ptr<Kernel>(new FusedConvKernel(n, &hs, tac));
  };
  t.add("FusedConv", std::move(h));
}

}  // namespace ramjet::cuda
