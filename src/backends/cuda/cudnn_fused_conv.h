// FusedConv on the GPU (src/ops/fused_conv.h: Y = act(conv(X, W) + B + Z), NCHW or NHWC).
// Two kinds of tactics, timed by the builder:
//   cuda.fused_conv.cudnn_graph #i  cuDNN 9 graph API (cudnn-frontend): conv_fprop -> add bias
//                                   -> [add Z] -> activation as ONE execution plan; i indexes
//                                   the engine configs of heuristics modes A + fallback.
//   cuda.fused_conv.cudnn #a        legacy cudnnConvolutionForward (algo*10 + math type), then
//                                   bias/residual/activation in one epilogue kernel (or
//                                   cuDNN's ConvBiasActivation for bias+ReLU without Z).
//   cuda.fused_conv.depthwise        own depthwise kernels (NCHW and NHWC) with the epilogue fused
//                                   (MobileNet/EfficientNet), offered for group == C == M.
//   cuda.fused_conv.direct           own NCHW direct 3x3 kernel for <= 8 input channels (first
//                                   layers), offered for one group, unit dilation, stride 1/2.
// Plans/descriptors are made on the host per input shape (workspaceBytes() runs before any
// capture) and cached; run() only launches, so the whole plan can be captured in a CUDA graph.
// Where the graph API has no engine for a pattern the legacy tactic remains: the build never
// fails for want of a fused engine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backends/cuda/cuda_ops.h"
#include "ramjet/status.h"

namespace ramjet::cuda {

// y = act(x + bias[c] + z) with x/z/y [outer, channels, inner] (NCHW: outer=N, inner=spatial;
// NHWC: outer=N*spatial, inner=1); bias and z may be null; x and y may alias. f32/f16,
// computed in float. kernels/fused_conv_epilogue.cu.
Status convEpilogue(DataType dtype, const void* x, const void* bias, const void* z, void* y,
                    int64_t outer, int64_t channels, int64_t inner, UnaryOp act,
                    const UnaryParams& p, cudaStream_t stream);

// Depthwise (group == C == M) channels-last 2-D convolution with the FusedConv epilogue:
// y[n,oh,ow,c] = act(sum_{kh,kw} x[n,ih,iw,c] * w[kh,kw,c] + bias[c] + z[n,oh,ow,c]).
// w is [KH, KW, C] (the kernel packs it so in prepare()); bias/z may be null. f32/f16 with
// float accumulation; channel vectors of up to 16 bytes per thread. kernels/fused_conv_epilogue.cu.
struct DepthwiseParams {
  int64_t n = 0, h = 0, w = 0, c = 0, oh = 0, ow = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
};
Status depthwiseConvNhwc(DataType dtype, const void* x, const void* w, const void* bias, const void* z,
                         void* y, const DepthwiseParams& p, UnaryOp act, const UnaryParams& ap,
                         cudaStream_t stream);

// NCHW depthwise convolution (x [N,C,H,W], w [C,KH,KW] as ONNX stores it), same epilogue.
Status depthwiseConvNchw(DataType dtype, const void* x, const void* w, const void* bias, const void* z,
                         void* y, const DepthwiseParams& p, UnaryOp act, const UnaryParams& ap,
                         cudaStream_t stream);

constexpr int kDirectOutChannels = 8;  // output channels per packed weight group
// Direct NCHW convolution for few input channels (first layers: 3 -> 16/32 channels), k x k
// window with unit dilation, one group, horizontal stride sw, the FusedConv epilogue; w_packed
// is FP32 [ceil(M/8), C, k, k, 8] (zero-padded, 16-byte aligned). directConvSupported says which
// (k, sw) are compiled (3x3 at horizontal stride 1 or 2).
struct DirectConvParams {
  int64_t n = 0, c = 0, m = 0, h = 0, w = 0, oh = 0, ow = 0;
  int64_t k = 3, sh = 1, sw = 1, ph = 0, pw = 0;
};
inline bool directConvSupported(int64_t k, int64_t sw) { return k == 3 && (sw == 1 || sw == 2); }
Status directConvNchw(DataType dtype, const void* x, const void* w_packed, const void* bias, const void* z,
                      void* y, const DirectConvParams& p, UnaryOp act, const UnaryParams& ap,
                      cudaStream_t stream);

// Version of the cudnn-frontend headers compiled in (e.g. 13200 for 1.32.0).
int cudnnFrontendVersion();

}  // namespace ramjet::cuda
