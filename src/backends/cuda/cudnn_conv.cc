// cuDNN 9 convolution (legacy API). The descriptors are built once per problem; run() only
// sets the chosen algorithm's math type and enqueues, so it can be captured into a CUDA graph.
#include "backends/cuda/cudnn_conv.h"

#include <cudnn.h>

#include <sstream>

#include "backends/cuda/cuda_check.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

namespace ramjet::cuda {

Result<std::unique_ptr<CudnnHandle>> CudnnHandle::create() {
  std::unique_ptr<CudnnHandle> h(new CudnnHandle());
  RJ_CUDNN_CHECK(cudnnCreate(&h->h_));
  return h;
}
CudnnHandle::~CudnnHandle() {
  if (h_) cudnnDestroy(h_);
}
size_t CudnnHandle::version() { return cudnnGetVersion(); }

std::string ConvAlgo::toString() const {
  std::ostringstream os;
  os << "cudnn_fwd_algo=" << algo << " math=" << math_type << " ws=" << workspace;
  return os.str();
}

struct CudnnConv::Impl {
  cudnnHandle_t handle = nullptr;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  mutable bool fused_unsupported = false;  // cuDNN refused ConvBiasActivation once: stop trying
  ~Impl() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (bias) cudnnDestroyTensorDescriptor(bias);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
    if (act) cudnnDestroyActivationDescriptor(act);
  }
};

CudnnConv::~CudnnConv() = default;

Result<std::unique_ptr<CudnnConv>> CudnnConv::create(cudnnHandle_t handle, const ConvDesc& d) {
  const std::string who = d.name.empty() ? std::string("Conv") : d.name;
  auto bad = [&](auto... parts) { return makeError(StatusCode::kInvalidArgument, who, ": ", parts...); };
  if (d.dtype != DataType::kFloat32 && d.dtype != DataType::kFloat16)
    return makeError(StatusCode::kUnsupported, who, ": cuDNN convolution of ", dataTypeName(d.dtype));
  if (d.spatial_rank < 1 || d.spatial_rank > 3)
    return makeError(StatusCode::kUnsupported, who, ": ", d.spatial_rank, " spatial dims (1-3 supported)");
  if (d.n < 0 || d.c <= 0 || d.k <= 0 || d.groups <= 0) return bad("bad batch/channel/group counts");
  if (d.c % d.groups || d.k % d.groups)
    return bad(d.c, " input and ", d.k, " output channels do not divide into ", d.groups, " groups");
  std::unique_ptr<CudnnConv> c(new CudnnConv());
  c->desc_ = d;
  c->impl_ = std::make_unique<Impl>();
  Impl& im = *c->impl_;
  im.handle = handle;

  // cuDNN wants >= 2 spatial dims: a 1-D convolution becomes H=1.
  int sr = d.spatial_rank == 1 ? 2 : d.spatial_rank;
  int off = d.spatial_rank == 1 ? 1 : 0;
  std::vector<int> xd = {static_cast<int>(d.n), static_cast<int>(d.c)};
  std::vector<int> wd = {static_cast<int>(d.k), static_cast<int>(d.c / d.groups)};
  std::vector<int> yd = {static_cast<int>(d.n), static_cast<int>(d.k)};
  std::vector<int> pad(sr, 0), stride(sr, 1), dil(sr, 1);
  std::vector<int64_t> out_sp;
  for (int i = 0; i < sr; ++i) {
    int s = i - off;  // index into desc arrays; -1 for the inserted H=1
    int64_t in = s < 0 ? 1 : d.in[s], k = s < 0 ? 1 : d.kernel[s];
    int64_t p = s < 0 ? 0 : d.pad[s], st = s < 0 ? 1 : d.stride[s], dl = s < 0 ? 1 : d.dilation[s];
    if (k < 1 || st < 1 || dl < 1 || p < 0 || in < 0) return bad("bad kernel/stride/dilation/pad on spatial axis ", s);
    int64_t eff = dl * (k - 1) + 1;
    int64_t o = (in + 2 * p - eff) / st + 1;
    if (in + 2 * p < eff) return bad("kernel ", eff, " larger than padded input ", in + 2 * p, " on spatial axis ", s);
    xd.push_back(static_cast<int>(in));
    wd.push_back(static_cast<int>(k));
    yd.push_back(static_cast<int>(o));
    pad[i] = static_cast<int>(p);
    stride[i] = static_cast<int>(st);
    dil[i] = static_cast<int>(dl);
    if (s >= 0) out_sp.push_back(o);
  }
  if (d.layout == Layout::kNCHW) {
    c->out_dims_ = {d.n, d.k};
    c->out_dims_.insert(c->out_dims_.end(), out_sp.begin(), out_sp.end());
  } else {
    c->out_dims_ = {d.n};
    c->out_dims_.insert(c->out_dims_.end(), out_sp.begin(), out_sp.end());
    c->out_dims_.push_back(d.k);
  }
  cudnnDataType_t dt = d.dtype == DataType::kFloat16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t fmt = d.layout == Layout::kNHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  int nb = sr + 2;
  RJ_CUDNN_CHECK(cudnnCreateTensorDescriptor(&im.x));
  RJ_CUDNN_CHECK(cudnnCreateTensorDescriptor(&im.y));
  RJ_CUDNN_CHECK(cudnnCreateFilterDescriptor(&im.w));
  RJ_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&im.conv));
  RJ_CUDNN_CHECK(cudnnSetTensorNdDescriptorEx(im.x, fmt, dt, nb, xd.data()));
  RJ_CUDNN_CHECK(cudnnSetTensorNdDescriptorEx(im.y, fmt, dt, nb, yd.data()));
  RJ_CUDNN_CHECK(cudnnSetFilterNdDescriptor(im.w, dt, fmt, nb, wd.data()));
  // FP32 accumulation for both FP32 and FP16 data.
  RJ_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(im.conv, sr, pad.data(), stride.data(), dil.data(),
                                                 CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  RJ_CUDNN_CHECK(cudnnSetConvolutionGroupCount(im.conv, static_cast<int>(d.groups)));
  cudnnMathType_t math = d.dtype == DataType::kFloat16 ? CUDNN_TENSOR_OP_MATH
                         : d.allow_tf32                ? CUDNN_DEFAULT_MATH
                                                       : CUDNN_FMA_MATH;
  RJ_CUDNN_CHECK(cudnnSetConvolutionMathType(im.conv, math));
  if (d.has_bias) {
    std::vector<int> bd(nb, 1);
    bd[1] = static_cast<int>(d.k);
    RJ_CUDNN_CHECK(cudnnCreateTensorDescriptor(&im.bias));
    RJ_CUDNN_CHECK(cudnnSetTensorNdDescriptorEx(im.bias, CUDNN_TENSOR_NCHW, dt, nb, bd.data()));
  }
  if (d.has_bias && d.activation == UnaryOp::kRelu) {
    RJ_CUDNN_CHECK(cudnnCreateActivationDescriptor(&im.act));
    RJ_CUDNN_CHECK(cudnnSetActivationDescriptor(im.act, CUDNN_ACTIVATION_RELU, CUDNN_PROPAGATE_NAN, 0.0));
  }
  return c;
}

Result<std::vector<ConvAlgo>> CudnnConv::candidates(size_t max_workspace) const {
  const Impl& im = *impl_;
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int count = 0;
  RJ_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(im.handle, im.x, im.w, im.conv, im.y,
                                                        CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
  std::vector<ConvAlgo> out;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS) continue;
    // FP32 data converted to FP16 inside cuDNN loses more than TF32: never offered.
    if (desc_.dtype == DataType::kFloat32 && perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (desc_.dtype == DataType::kFloat32 && !desc_.allow_tf32 && perf[i].mathType != CUDNN_FMA_MATH &&
        perf[i].mathType != CUDNN_DEFAULT_MATH)
      continue;
    ConvAlgo a;
    a.algo = static_cast<int>(perf[i].algo);
    a.math_type = static_cast<int>(perf[i].mathType);
    auto ws = workspaceSize(a);
    if (!ws.ok()) continue;
    a.workspace = *ws;
    if (a.workspace > max_workspace) continue;
    bool dup = false;
    for (const auto& o : out) dup |= o.algo == a.algo && o.math_type == a.math_type;
    if (!dup) out.push_back(a);
  }
  if (out.empty())
    return makeError(StatusCode::kUnsupported, desc_.name.empty() ? "Conv" : desc_.name,
                     ": cuDNN offers no forward algorithm within ", max_workspace, " bytes of workspace");
  return out;
}

Result<size_t> CudnnConv::workspaceSize(const ConvAlgo& algo) const {
  const Impl& im = *impl_;
  RJ_CUDNN_CHECK(cudnnSetConvolutionMathType(im.conv, static_cast<cudnnMathType_t>(algo.math_type)));
  size_t bytes = 0;
  RJ_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(
      im.handle, im.x, im.w, im.conv, im.y, static_cast<cudnnConvolutionFwdAlgo_t>(algo.algo), &bytes));
  return bytes;
}

bool CudnnConv::fusedActivation() const { return impl_->act && !impl_->fused_unsupported; }

Status CudnnConv::run(const ConvAlgo& algo, const void* x, const void* w, const void* bias, void* y,
                      void* workspace, size_t workspace_bytes, cudaStream_t stream) const {
  const Impl& im = *impl_;
  const ConvDesc& d = desc_;
  if (workspace_bytes < algo.workspace)
    return makeError(StatusCode::kInvalidArgument, d.name.empty() ? "Conv" : d.name, ": workspace of ",
                     workspace_bytes, " bytes, algorithm needs ", algo.workspace);
  if (d.has_bias && !bias)
    return makeError(StatusCode::kInvalidArgument, d.name.empty() ? "Conv" : d.name, ": bias pointer is null");
  if (d.n == 0) return Status::Ok();
  RJ_CUDNN_CHECK(cudnnSetStream(im.handle, stream));
  RJ_CUDNN_CHECK(cudnnSetConvolutionMathType(im.conv, static_cast<cudnnMathType_t>(algo.math_type)));
  auto fwd = static_cast<cudnnConvolutionFwdAlgo_t>(algo.algo);
  float one = 1.f, zero = 0.f;
  if (im.act && !im.fused_unsupported) {
    cudnnStatus_t st = cudnnConvolutionBiasActivationForward(
        im.handle, &one, im.x, x, im.w, w, im.conv, fwd, workspace, workspace_bytes, &zero, im.y, y,
        im.bias, bias, im.act, im.y, y);
    if (st == CUDNN_STATUS_SUCCESS) return Status::Ok();
    if (st != CUDNN_STATUS_NOT_SUPPORTED && st != CUDNN_STATUS_BAD_PARAM)
      RJ_CUDNN_CHECK(st);
    im.fused_unsupported = true;  // fall through to the unfused path
  }
  RJ_CUDNN_CHECK(cudnnConvolutionForward(im.handle, &one, im.x, x, im.w, w, im.conv, fwd, workspace,
                                         workspace_bytes, &zero, im.y, y));
  if (d.has_bias || d.activation != UnaryOp::kIdentity) {
    int64_t sp = 1;
    size_t r = out_dims_.size();
    for (size_t i = 0; i < r; ++i)
      if (i != 0 && i != (d.layout == Layout::kNCHW ? 1 : r - 1)) sp *= out_dims_[i];
    int64_t outer = d.layout == Layout::kNCHW ? d.n : d.n * sp;
    int64_t inner = d.layout == Layout::kNCHW ? sp : 1;
    RJ_RETURN_IF_ERROR(biasActivation(d.dtype, y, d.has_bias ? bias : nullptr, y, outer, d.k, inner,
                                      d.activation, d.act_params, stream));
  }
  return Status::Ok();
}

}  // namespace ramjet::cuda
