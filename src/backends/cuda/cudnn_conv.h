// Convolution through cuDNN 9 (legacy cudnnConvolutionForward API): FP32 (optionally TF32) and
// FP16 with FP32 accumulation, NCHW or NHWC, 1-3 spatial dims, groups/depthwise, dilation,
// symmetric padding, optional bias and activation (ReLU fused by cuDNN where it can).
//
// Usage (builder):  auto conv = CudnnConv::create(handle, desc);    // validates, makes descriptors
//                   for (auto& a : conv->candidates(ws_limit)) time conv->run(a, ...);
//                   store the winner's ConvAlgo in the plan (algo id + math type + workspace).
// Usage (runtime):  CudnnConv::create(handle, desc) again, then run(saved_algo, ...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backends/cuda/cuda_ops.h"

struct cudnnContext;
typedef struct cudnnContext* cudnnHandle_t;

namespace ramjet::cuda {

// One cuDNN handle (cheap to share among the convolutions run on one stream at a time).
class CudnnHandle {
 public:
  static Result<std::unique_ptr<CudnnHandle>> create();
  ~CudnnHandle();
  cudnnHandle_t get() const { return h_; }
  static size_t version();  // cudnnGetVersion()

 private:
  CudnnHandle() = default;
  cudnnHandle_t h_ = nullptr;
};

struct ConvDesc {
  DataType dtype = DataType::kFloat32;  // x, w, bias, y (kFloat32 or kFloat16)
  Layout layout = Layout::kNCHW;        // x/y layout; w is KCRS for NCHW, KRSC for NHWC
  int spatial_rank = 2;                 // 1..3
  int64_t n = 1, c = 0, k = 0;          // batch, input channels, output channels
  int64_t in[3] = {1, 1, 1};            // input spatial extents
  int64_t kernel[3] = {1, 1, 1};
  int64_t pad[3] = {0, 0, 0};           // symmetric padding (asymmetric: pad the input first)
  int64_t stride[3] = {1, 1, 1};
  int64_t dilation[3] = {1, 1, 1};
  int64_t groups = 1;
  bool has_bias = false;
  UnaryOp activation = UnaryOp::kIdentity;  // applied after bias; any UnaryOp
  UnaryParams act_params;
  bool allow_tf32 = true;               // FP32 only: allow TF32 tensor cores
  std::string name;                     // for error messages ("Conv 'conv1'")
};

// A candidate algorithm; serializable as three integers.
struct ConvAlgo {
  int algo = 0;        // cudnnConvolutionFwdAlgo_t
  int math_type = 0;   // cudnnMathType_t
  size_t workspace = 0;
  std::string toString() const;
};

class CudnnConv {
 public:
  static Result<std::unique_ptr<CudnnConv>> create(cudnnHandle_t handle, const ConvDesc& desc);
  ~CudnnConv();

  const ConvDesc& desc() const { return desc_; }
  // Output spatial extents and the full output dims in the desc's layout.
  const std::vector<int64_t>& outputDims() const { return out_dims_; }
  // Heuristically ranked candidates that cuDNN says are supported and need at most
  // `max_workspace` bytes; the first is cuDNN's choice. Never empty on success.
  Result<std::vector<ConvAlgo>> candidates(size_t max_workspace) const;
  // Workspace bytes `algo` needs for this problem.
  Result<size_t> workspaceSize(const ConvAlgo& algo) const;
  // y = act(conv(x, w) + bias). workspace must hold algo.workspace bytes. Capture-safe.
  Status run(const ConvAlgo& algo, const void* x, const void* w, const void* bias, void* y,
             void* workspace, size_t workspace_bytes, cudaStream_t stream) const;
  // True while bias+ReLU go through cudnnConvolutionBiasActivationForward (one kernel); false
  // when the activation is applied by a separate biasActivation launch (other activations, or
  // cuDNN refused the fused call once).
  bool fusedActivation() const;

 private:
  CudnnConv() = default;
  struct Impl;
  ConvDesc desc_;
  std::vector<int64_t> out_dims_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ramjet::cuda
