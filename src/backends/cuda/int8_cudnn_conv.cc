// QConv as one cuDNN graph (see int8_cudnn_conv.h):
//   y = conv(x int8, w int8; int32 accumulation) -> float
//   v = y * mul[k] + bias[k]; [act]; v += res_int8 * res_scale; [act]   (act placement per node)
//   int8 output: v * (1 / out_scale), converted by cuDNN; float output: v (NHWC or NCHW)
// The same formulas as src/precision/int8_math.h, except v * (1 / out_scale) for the division;
// cuDNN's rounding may move an output by 1 LSB. Only cuDNN's runtime-fusion engines (NVRTC)
// take this graph; plans are built per input shape at workspace query (outside CUDA-graph
// capture) and shared through a per-backend cache.
#include "backends/cuda/int8_cudnn_conv.h"

#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <cudnn_frontend.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cudnn_graph_util.h"
#include "precision/int8_math.h"

namespace ramjet::cuda {
namespace {

namespace fe = cudnn_frontend;
using backend::Kernel;
using backend::RunArgs;
using backend::Tactic;

// Engine configurations timed per QConv: each is an NVRTC compile (0.1-0.7 s) at build time.
// RAMJET_CUDNN_INT8_PLANS=N (1..16) trades build time for a wider search; anything else keeps 2.
int maxPlans() {
  const char* e = std::getenv("RAMJET_CUDNN_INT8_PLANS");
  if (!e || !*e) return 2;
  char* end = nullptr;
  const long n = std::strtol(e, &end, 10);
  return *end == '\0' && n >= 1 && n <= 16 ? static_cast<int>(n) : 2;
}

struct Geometry {
  int64_t n = 0, h = 0, w = 0, c = 0, k = 0, r = 1, s = 1;
  int64_t stride[2] = {1, 1}, dil[2] = {1, 1}, pre[2] = {0, 0}, post[2] = {0, 0};
  int64_t oh = 0, ow = 0;
};

Result<Geometry> geometryOf(const Node& n, const std::vector<int64_t>& xd, const std::vector<int64_t>& wd) {
  if (xd.size() != 4 || wd.size() != 4) return makeError(StatusCode::kUnsupported, n.describe(), ": ranks");
  Geometry g;
  g.n = xd[0], g.h = xd[1], g.w = xd[2], g.c = xd[3];
  g.k = wd[0], g.r = wd[1], g.s = wd[2];
  if (wd[3] != g.c) return makeError(StatusCode::kInvalidArgument, n.describe(), ": channels");
  auto st = n.attrInts("strides"), pads = n.attrInts("pads"), dil = n.attrInts("dilations");
  for (int i = 0; i < 2; ++i) {
    g.stride[i] = st.size() == 2 ? st[i] : 1;
    g.dil[i] = dil.size() == 2 ? dil[i] : 1;
    g.pre[i] = pads.size() == 4 ? pads[i] : 0;
    g.post[i] = pads.size() == 4 ? pads[2 + i] : 0;
  }
  g.oh = (g.h + g.pre[0] + g.post[0] - g.dil[0] * (g.r - 1) - 1) / g.stride[0] + 1;
  g.ow = (g.w + g.pre[1] + g.post[1] - g.dil[1] * (g.s - 1) - 1) / g.stride[1] + 1;
  return g;
}

std::vector<int64_t> nhwcStrides(const std::vector<int64_t>& d) { return cudnnStrides(d, true); }

struct GraphQConv {
  std::shared_ptr<fe::graph::Graph> graph;
  std::shared_ptr<fe::graph::Tensor_attributes> x, w, mul, bias, z, res_scale, inv_out_scale, y;
  int64_t plan_count = 0;
  int64_t plan_index = -1;  // the built plan (-1: none yet)
  size_t workspace = 0;
};

struct EpilogueOf {
  int8::EpilogueParams p;
  explicit EpilogueOf(const Node& n)
      : p{static_cast<int32_t>(n.attrInt("activation", 0)), n.attrFloat("alpha", 0.f), n.attrFloat("beta", 0.f),
          n.attrInt("act_after_residual", 1) != 0, n.attrFloat("res_scale", 0.f), n.attrFloat("out_scale", 0.f)} {}
};

// Everything the graph depends on, as a cache key.
std::string graphKey(const Node& n, const Geometry& d, bool has_res, DataType out_type,
                     bool out_nchw) {
  const int8::EpilogueParams p = EpilogueOf(n).p;
  std::string k;
  for (int64_t v : {d.n, d.h, d.w, d.c, d.k, d.r, d.s, d.stride[0], d.stride[1], d.dil[0], d.dil[1], d.pre[0], d.pre[1],
                    d.post[0], d.post[1]})
    k += "," + std::to_string(v);
  k += "|" + std::to_string(p.act) + "," + std::to_string(p.alpha) + "," + std::to_string(p.beta) + "," +
       std::to_string(p.act_after_residual) + "," + std::to_string(has_res) + "," + std::to_string(p.out_scale > 0.f) +
       "," + std::to_string(static_cast<int>(out_type)) + "," + std::to_string(out_nchw);
  return k;
}

// The residual scale and 1/out_scale are device scalars ([1,1,1,1] tensors broadcast by cuDNN):
// cuDNN 9.14's runtime-fusion engines take neither compile-time constants nor, here, host values.
Result<std::unique_ptr<GraphQConv>> makeGraph(cudnnHandle_t handle, const Node& n, const Geometry& d, bool has_res,
                                              DataType out_type, bool out_nchw) {
  const std::string who = n.describe();
  const int8::EpilogueParams p = EpilogueOf(n).p;
  if (d.c % 4 != 0 || d.k % 4 != 0)
    return makeError(StatusCode::kUnsupported, who, ": cuDNN int8 convolution needs channels in multiples of 4");
  fe::DataType_t yt;
  if (p.out_scale > 0.f) yt = fe::DataType_t::INT8;
  else if (out_type == DataType::kFloat16) yt = fe::DataType_t::HALF;
  else if (out_type == DataType::kFloat32) yt = fe::DataType_t::FLOAT;
  else return makeError(StatusCode::kUnsupported, who, ": output ", dataTypeName(out_type));
  auto gc = std::make_unique<GraphQConv>();
  try {
    gc->graph = std::make_shared<fe::graph::Graph>();
    fe::graph::Graph& g = *gc->graph;
    g.set_io_data_type(fe::DataType_t::INT8)
        .set_intermediate_data_type(fe::DataType_t::FLOAT)
        .set_compute_data_type(fe::DataType_t::FLOAT);
    const std::vector<int64_t> xd = {d.n, d.c, d.h, d.w}, wd = {d.k, d.c, d.r, d.s}, yd = {d.n, d.k, d.oh, d.ow},
                               cd = {1, d.k, 1, 1}, sd = {1, 1, 1, 1};
    auto attr = [](const char* name, const std::vector<int64_t>& dims, const std::vector<int64_t>& strides,
                   fe::DataType_t t) {
      return fe::graph::Tensor_attributes().set_name(name).set_dim(dims).set_stride(strides).set_data_type(t);
    };
    gc->x = g.tensor(attr("x", xd, nhwcStrides(xd), fe::DataType_t::INT8));
    gc->w = g.tensor(attr("w", wd, nhwcStrides(wd), fe::DataType_t::INT8));
    auto conv = g.conv_fprop(gc->x, gc->w,
                             fe::graph::Conv_fprop_attributes()
                                 .set_pre_padding({d.pre[0], d.pre[1]})
                                 .set_post_padding({d.post[0], d.post[1]})
                                 .set_stride({d.stride[0], d.stride[1]})
                                 .set_dilation({d.dil[0], d.dil[1]})
                                 .set_compute_data_type(fe::DataType_t::INT32));
    conv->set_data_type(fe::DataType_t::FLOAT);
    auto pw = [](fe::PointwiseMode_t m) {
      return fe::graph::Pointwise_attributes().set_mode(m).set_compute_data_type(fe::DataType_t::FLOAT);
    };
    gc->mul = g.tensor(attr("mul", cd, nhwcStrides(cd), fe::DataType_t::FLOAT));
    gc->bias = g.tensor(attr("bias", cd, nhwcStrides(cd), fe::DataType_t::FLOAT));
    auto v = g.pointwise(conv, gc->mul, pw(fe::PointwiseMode_t::MUL));
    v = g.pointwise(v, gc->bias, pw(fe::PointwiseMode_t::ADD));
    auto act = [&](std::shared_ptr<fe::graph::Tensor_attributes> t) {
      switch (p.act) {
        case int8::kActRelu: return g.pointwise(t, pw(fe::PointwiseMode_t::RELU_FWD));
        case int8::kActSilu: return g.pointwise(t, pw(fe::PointwiseMode_t::SWISH_FWD).set_swish_beta(1.f));
        case int8::kActLeakyRelu:
          return g.pointwise(t, pw(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip_slope(p.alpha));
        case int8::kActClip:
          return g.pointwise(t, pw(fe::PointwiseMode_t::RELU_FWD).set_relu_lower_clip(p.alpha).set_relu_upper_clip(p.beta));
        default: return t;
      }
    };
    if (!p.act_after_residual) v = act(v);
    if (has_res) {
      gc->z = g.tensor(attr("z", yd, nhwcStrides(yd), fe::DataType_t::INT8));
      gc->res_scale = g.tensor(attr("res_scale", sd, sd, fe::DataType_t::FLOAT));
      auto r = g.pointwise(gc->z, gc->res_scale, pw(fe::PointwiseMode_t::MUL));
      v = g.pointwise(v, r, pw(fe::PointwiseMode_t::ADD));
    }
    if (p.act_after_residual) v = act(v);
    if (p.out_scale > 0.f) {
      gc->inv_out_scale = g.tensor(attr("inv_out_scale", sd, sd, fe::DataType_t::FLOAT));
      v = g.pointwise(v, gc->inv_out_scale, pw(fe::PointwiseMode_t::MUL));
    }
    v->set_output(true).set_data_type(yt).set_dim(yd).set_stride(cudnnStrides(yd, !out_nchw));
    gc->y = v;
    // Only runtime-fusion engines (kernels cuDNN generates and compiles with NVRTC, 0.1-0.7 s
    // a plan on the H100 machine) fuse an int8 convolution with this epilogue; the precompiled int8
    // engines take a plain convolution only and were 15-25x slower than these in the probe.
    RJ_RETURN_IF_ERROR(finalizeCudnnGraph(g, handle, who, /*runtime_compilation=*/true, &gc->plan_count));
  } catch (const std::exception& e) {
    return makeError(StatusCode::kUnsupported, who, ": cuDNN int8 graph: ", e.what());
  }
  return gc;
}

// Built graphs shared by one backend's kernels by (geometry, epilogue, plan index): identical
// convolutions (ResNet's repeated blocks) and a build's timing and workspace queries compile each
// runtime-fusion kernel once. Lives in the backend's Handles (plans are bound to its handle).
class GraphCache {
 public:
  static GraphCache& of(Handles& h) {
    std::lock_guard<std::mutex> l(h.caches_mu);
    auto& slot = h.caches["int8_conv_cudnn_graphs"];
    if (!slot) slot = std::make_shared<GraphCache>();
    return *static_cast<GraphCache*>(slot.get());
  }
  // The graph with plan `index` built (or the heuristics' first where that one fails); caller
  // holds the cuDNN handle's mutex.
  Result<std::shared_ptr<GraphQConv>> built(cudnnHandle_t handle, const Node& n, const Geometry& d, bool has_res,
                                           DataType out_type, bool out_nchw, int64_t index) {
    const std::string key = graphKey(n, d, has_res, out_type, out_nchw) + "#" + std::to_string(index);
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) return it->second;
    }
    RJ_ASSIGN_OR_RETURN(auto gc, makeGraph(handle, n, d, has_res, out_type, out_nchw));
    int64_t idx = index >= 0 && index < gc->plan_count ? index : 0;
    RJ_ASSIGN_OR_RETURN(gc->workspace, buildCudnnPlan(*gc->graph, &idx, n.describe()));
    gc->plan_index = idx;
    std::shared_ptr<GraphQConv> shared(std::move(gc));
    std::lock_guard<std::mutex> l(mu_);
    map_[key] = shared;
    return shared;
  }

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<GraphQConv>> map_;
};

bool outNchw(const Node& n) { return n.attrFloat("out_scale", 0.f) <= 0.f && n.attrInt("out_nchw", 0) != 0; }

class Int8ConvCudnnKernel final : public Kernel {
 public:
  Int8ConvCudnnKernel(const Node& n, const Tactic& t, Handles* h, std::unique_ptr<Kernel> fallback)
      : n_(n), h_(h), tactic_(t.id), tuned_(t.tuned_dims), fallback_(std::move(fallback)) {}
  ~Int8ConvCudnnKernel() override {
    if (scalars_) cudaFree(scalars_);
  }

  // The fallback's weights, and the epilogue's device scalars {res_scale, 1 / out_scale}.
  Status prepare(const std::vector<const Tensor*>& consts) override {
    RJ_RETURN_IF_ERROR(fallback_->prepare(consts));
    const int8::EpilogueParams p = EpilogueOf(n_).p;
    const float host[2] = {p.res_scale, p.out_scale > 0.f ? 1.f / p.out_scale : 1.f};
    if (!scalars_) RJ_CUDA_CHECK(cudaMalloc(&scalars_, sizeof host));
    RJ_CUDA_CHECK(cudaMemcpy(scalars_, host, sizeof host, cudaMemcpyHostToDevice));
    return Status::Ok();
  }

  size_t workspaceBytes(const RunArgs& a) const override {
    auto e = entry(a);
    if (!e.ok()) return 0;
    return *e ? (*e)->workspace : fallback_->workspaceBytes(a);
  }

  Status run(const RunArgs& a) override {
    RJ_ASSIGN_OR_RETURN(GraphQConv * gc, entry(a));
    if (a.outputs[0].numel() == 0) return Status::Ok();
    if (!gc) return fallback_->run(a);
    if (gc->workspace > a.workspace_bytes)
      return makeError(StatusCode::kInternal, n_.describe(), ": workspace ", a.workspace_bytes, " < ", gc->workspace);
    if (!scalars_) return makeError(StatusCode::kInternal, n_.describe(), ": not prepared");
    std::lock_guard<std::mutex> lock(h_->cudnn_mu);
    RJ_CUDNN_CHECK(cudnnSetStream(h_->cudnn->get(), static_cast<cudaStream_t>(a.stream)));
    std::unordered_map<std::shared_ptr<fe::graph::Tensor_attributes>, void*> pack = {
        {gc->x, a.inputs[0].data}, {gc->w, a.inputs[1].data},    {gc->bias, a.inputs[2].data},
        {gc->mul, a.inputs[3].data}, {gc->y, a.outputs[0].data}};
    if (gc->z) pack[gc->z] = a.inputs[4].data, pack[gc->res_scale] = scalars_;
    if (gc->inv_out_scale) pack[gc->inv_out_scale] = scalars_ + 1;
    fe::error_t st = gc->graph->execute_plan_at_index(h_->cudnn->get(), pack, a.workspace, gc->plan_index);
    if (st.is_bad())
      return makeError(StatusCode::kDeviceError, n_.describe(), ": cuDNN int8 graph execute (plan ", gc->plan_index,
                       "): ", st.get_message());
    return Status::Ok();
  }

 private:
  // The built graph for these input dims; null where cuDNN has none (the fallback runs).
  Result<GraphQConv*> entry(const RunArgs& a) const {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& key = a.inputs[0].dims;
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second.get();
    RJ_ASSIGN_OR_RETURN(Geometry d, geometryOf(n_, a.inputs[0].dims, a.inputs[1].dims));
    const bool has_res = a.inputs.size() > 4 && a.inputs[4].dtype != DataType::kUndefined;
    // The timed engine config at the tuned shape; heuristics' first choice elsewhere.
    const int64_t idx = (tuned_.empty() || tuned_ == key) ? std::max<int32_t>(tactic_, 0) : 0;
    std::lock_guard<std::mutex> hl(h_->cudnn_mu);
    auto gc = GraphCache::of(*h_).built(h_->cudnn->get(), n_, d, has_res, a.outputs[0].dtype, outNchw(n_), idx);
    std::shared_ptr<GraphQConv> shared = gc.ok() ? *gc : nullptr;  // none: the cuBLASLt path
    cache_[key] = shared;
    return shared.get();
  }

  const Node& n_;
  Handles* h_;
  int32_t tactic_;
  std::vector<int64_t> tuned_;
  std::unique_ptr<Kernel> fallback_;  // cuBLASLt IMMA path for shapes cuDNN has no plan for
  float* scalars_ = nullptr;
  mutable std::mutex mu_;
  mutable std::map<std::vector<int64_t>, std::shared_ptr<GraphQConv>> cache_;
};

}  // namespace

std::vector<Tactic> int8ConvCudnnTactics(const Node& n, const std::vector<TensorType>& in,
                                         const std::vector<TensorType>& out, Handles& h) {
  std::vector<Tactic> t;
  if (in.size() < 4 || !in[0].shape.fullyKnown() || !in[1].shape.fullyKnown() || out.empty()) return t;
  auto d = geometryOf(n, in[0].shape.concrete(), in[1].shape.concrete());
  if (!d.ok()) return t;
  const bool has_res = in.size() > 4 && in[4].dtype != DataType::kUndefined;
  std::lock_guard<std::mutex> lock(h.cudnn_mu);
  auto gc = makeGraph(h.cudnn->get(), n, *d, has_res, out[0].dtype, outNchw(n));
  if (!gc.ok()) return t;
  const int64_t n_plans = std::min<int64_t>((*gc)->plan_count, maxPlans());
  for (int64_t i = 0; i < n_plans; ++i) t.push_back(Tactic{kInt8ConvCudnnTactic, static_cast<int32_t>(i)});
  return t;
}

std::unique_ptr<Kernel> makeInt8ConvCudnnKernel(const Node& n, const Tactic& t, Handles* h,
                                                std::unique_ptr<Kernel> fallback) {
  return std::unique_ptr<Kernel>(new Int8ConvCudnnKernel(n, t, h, std::move(fallback)));
}

}  // namespace ramjet::cuda
