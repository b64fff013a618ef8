// The CUDA kernel library: the contract between the kernels (src/backends/cuda/kernels,
// cudnn_conv, cublaslt_gemm) and the CUDA backend that lowers graph nodes onto them.
//
// Rules every function here follows:
//  - Plain data in: raw device pointers, dense row-major dims (std::vector<int64_t>), a DataType
//    and the caller's cudaStream_t. No graph types; the backend translates attributes.
//  - Everything is asynchronous on `stream` and capture-safe (no allocation, no host sync, no
//    cudaMalloc inside), so a whole plan can be recorded into one CUDA graph. Libraries that
//    need scratch memory take a workspace pointer + size from the caller.
//  - Returns Status: kInvalidArgument for bad shapes/attributes, kUnsupported for a valid case
//    this library does not handle (the backend then picks another tactic or the CPU), and
//    kDeviceError naming the CUDA/cuDNN/cuBLAS call, file and line when the device refuses.
//  - 16-bit floats are computed in float (FP32 accumulation everywhere).
//  - Empty tensors (a zero dim) are legal and launch nothing.
//  - Element types: "float" ops take kFloat32 and kFloat16; data movement (transpose, slice,
//    concat, gather, pad, expand, tile) takes any type by element size (1, 2, 4 or 8 bytes).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ramjet/status.h"
#include "ramjet/types.h"

namespace ramjet::cuda {

constexpr int kMaxRank = 8;

// ---------------------------------------------------------------- device / errors
// True when a CUDA device is usable (used by tests to skip, by the backend to register itself).
bool deviceAvailable();
// "NVIDIA H100 80GB HBM3 (sm_90), CUDA runtime 13000, driver 13000, cuDNN 91300, cuBLASLt 130000"
std::string deviceDescription();
// Returns the first error a kernel launch left behind (cudaGetLastError), naming `what`.
Status checkLaunch(const char* what);

// ---------------------------------------------------------------- elementwise
enum class UnaryOp {
  kRelu, kSigmoid, kTanh, kHardSigmoid, kHardSwish, kGelu /* erf form */, kGeluTanh, kErf,
  kExp, kLog, kSqrt, kReciprocal, kNeg, kAbs, kClip, kLeakyRelu, kElu, kSelu, kMish, kSoftplus,
  kSilu /* x*sigmoid(x) */, kFloor, kCeil, kRound /* half to even */, kSin, kCos, kSign,
  kIdentity,
};
// alpha/beta: HardSigmoid (alpha, beta), LeakyRelu/Elu (alpha), Selu (alpha, gamma=beta),
// Clip (min=alpha, max=beta; pass -inf/+inf for a missing bound).
struct UnaryParams {
  float alpha = 0.f, beta = 0.f;
};
const char* unaryOpName(UnaryOp op);
// y[i] = op(x[i]) for n elements; x and y may alias. dtype: f32/f16 (kNeg, kAbs, kSign, kRelu,
// kIdentity also i32/i64).
Status unary(UnaryOp op, DataType dtype, const void* x, void* y, int64_t n, const UnaryParams& p,
             cudaStream_t stream);

// Element-wise conversion; from/to in {f32, f16, i32, i64, i8, u8, bool}. float->int truncates
// toward zero like a C cast; ->bool is (x != 0).
Status cast(DataType from, const void* x, DataType to, void* y, int64_t n, cudaStream_t stream);

enum class BinaryOp {
  kAdd, kSub, kMul, kDiv, kPow, kMax, kMin, kMod /* fmod=0 semantics for ints, fmod for floats */,
  kEqual, kLess, kLessOrEqual, kGreater, kGreaterOrEqual,  // -> bool output
  kAnd, kOr, kXor,                                         // bool in, bool out
  kPRelu,  // a >= 0 ? a : a * b  (b = slope, broadcast)
};
const char* binaryOpName(BinaryOp op);
bool binaryOpIsComparison(BinaryOp op);  // output dtype is kBool
// out = a op b with numpy broadcasting; a_dims/b_dims are right-aligned against out_dims
// (rank <= 8 after the library merges dims). dtype is the input type: f32, f16, i32, i64
// (kAnd/kOr/kXor: bool). Comparisons write bool (1 byte).
Status binary(BinaryOp op, DataType dtype, const void* a, const std::vector<int64_t>& a_dims,
              const void* b, const std::vector<int64_t>& b_dims, void* out,
              const std::vector<int64_t>& out_dims, cudaStream_t stream);
// out = cond ? x : y, all three broadcast to out_dims; cond is bool; x/y/out of `dtype` (any).
Status where(DataType dtype, const void* cond, const std::vector<int64_t>& cond_dims,
             const void* x, const std::vector<int64_t>& x_dims, const void* y,
             const std::vector<int64_t>& y_dims, void* out, const std::vector<int64_t>& out_dims,
             cudaStream_t stream);

// y = act(x + bias[c]) where c is the channel of each element: NCHW-like layout
// [outer, channels, inner] (inner = spatial) or NHWC-like (inner == 1: [outer, channels]).
// bias may be null. Used after a convolution whose activation cuDNN cannot fuse, and for
// Gemm epilogues cuBLASLt lacks. x and y may alias.
Status biasActivation(DataType dtype, const void* x, const void* bias, void* y, int64_t outer,
                      int64_t channels, int64_t inner, UnaryOp act, const UnaryParams& p,
                      cudaStream_t stream);

// ---------------------------------------------------------------- data movement (any dtype)
// out = in broadcast to out_dims (Expand; also materializes broadcast operands).
Status broadcastCopy(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
                     void* out, const std::vector<int64_t>& out_dims, cudaStream_t stream);
// Tile: out dim d = in dim d * repeats[d].
Status tile(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
            const std::vector<int64_t>& repeats, void* out, cudaStream_t stream);
// out = transpose(in, perm); out dims are in_dims permuted. Adjacent dims that stay adjacent are
// merged first; a [B,R,C]->[B,C,R] pattern (NCHW<->NHWC) uses a tiled shared-memory kernel.
Status transpose(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
                 const std::vector<int64_t>& perm, void* out, cudaStream_t stream);
// Concat along `axis` of inputs with identical dims except at axis (lens[i] there).
Status concat(size_t elem_size, const std::vector<const void*>& inputs,
              const std::vector<int64_t>& lens, const std::vector<int64_t>& dims_except_axis,
              int axis, void* out, cudaStream_t stream);
// Split along `axis` into outputs of lens[i] (inverse of concat; dims as for concat).
Status split(size_t elem_size, const void* in, const std::vector<int64_t>& dims_except_axis,
             int axis, const std::vector<int64_t>& lens, const std::vector<void*>& outputs,
             cudaStream_t stream);
// out[i_0..] = in[starts[d] + i_d * steps[d]]; starts already clamped/normalized by the caller
// (ONNX Slice semantics resolved on the host); steps may be negative, never 0.
Status slice(size_t elem_size, const void* in, const std::vector<int64_t>& in_dims,
             const std::vector<int64_t>& starts, const std::vector<int64_t>& steps, void* out,
             const std::vector<int64_t>& out_dims, cudaStream_t stream);
// Gather along axis: in [outer, axis_len, inner] x indices (i32 or i64, n_indices of them,
// negative = from the end) -> out [outer, n_indices, inner]. An index out of [-axis_len,
// axis_len) writes zeros and, when error_flag (device int) is non-null, sets *error_flag = 1 so
// the caller can report it after synchronizing.
Status gather(size_t elem_size, const void* in, int64_t outer, int64_t axis_len, int64_t inner,
              DataType index_dtype, const void* indices, int64_t n_indices, void* out,
              int* error_flag, cudaStream_t stream);
enum class PadMode { kConstant, kReflect, kEdge, kWrap };
// pads = [begin_0..begin_{r-1}, end_0..end_{r-1}] (ONNX order; negative crops). The constant is
// given as a double and converted to dtype.
Status pad(DataType dtype, const void* in, const std::vector<int64_t>& in_dims,
           const std::vector<int64_t>& pads, PadMode mode, double constant, void* out,
           cudaStream_t stream);

// ---------------------------------------------------------------- reductions (f32/f16)
enum class ReduceOp { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kSumSquare, kLogSum, kLogSumExp };
const char* reduceOpName(ReduceOp op);
// Reduces `axes` (normalized, any order, may be empty = copy) of x[dims]; y has the kept dims
// (keepdims only changes the shape, not the data). A reduction over an empty axis gives the
// op's identity (0 for sum, -inf for max, ...), as the reference does.
Status reduce(ReduceOp op, DataType dtype, const void* x, const std::vector<int64_t>& dims,
              const std::vector<int64_t>& axes, void* y, cudaStream_t stream);
// ArgMax / ArgMin over the middle dim of x[outer, axis_len, inner] -> int64 y[outer, inner].
Status argReduce(bool is_max, bool select_last_index, DataType dtype, const void* x,
                 int64_t outer, int64_t axis_len, int64_t inner, int64_t* y, cudaStream_t stream);
// TopK over the middle dim of x[outer, axis_len, inner] -> values (dtype) and int64 indices,
// both [outer, k, inner], sorted; ties keep the lower index first (ONNX). k <= axis_len.
// O(k * axis_len) per row: meant for small k (detections, classification heads).
Status topK(DataType dtype, const void* x, int64_t outer, int64_t axis_len, int64_t inner,
            int64_t k, bool largest, void* values, int64_t* indices, cudaStream_t stream);
// Softmax / LogSoftmax over the middle dim of x[outer, axis_len, inner].
Status softmax(DataType dtype, const void* x, int64_t outer, int64_t axis_len, int64_t inner,
               bool log, void* y, cudaStream_t stream);

// ---------------------------------------------------------------- normalization (f32/f16)
// Parameters (scale, bias, mean, var) are of the same dtype as x.
// LayerNormalization over the last `cols` elements of each of `rows` rows; bias may be null.
// mean/inv_std outputs (f32, `rows` each) are optional (null).
Status layerNorm(DataType dtype, const void* x, const void* scale, const void* bias, void* y,
                 int64_t rows, int64_t cols, float epsilon, float* mean, float* inv_std,
                 cudaStream_t stream);
// BatchNormalization (inference): y = (x - mean[c]) / sqrt(var[c] + eps) * scale[c] + bias[c].
// Layout [outer, channels, inner] (NCHW: outer=N, inner=HW; NHWC: outer=N*HW, inner=1).
Status batchNormInference(DataType dtype, const void* x, const void* scale, const void* bias,
                          const void* mean, const void* var, void* y, int64_t outer,
                          int64_t channels, int64_t inner, float epsilon, cudaStream_t stream);
// GroupNorm / InstanceNorm (groups == channels) on NCHW-style x[n, channels, spatial]; statistics
// per (n, group); scale/bias per channel (the backend expands per-group scale of opset 18).
Status groupNorm(DataType dtype, const void* x, const void* scale, const void* bias, void* y,
                 int64_t n, int64_t channels, int64_t spatial, int64_t groups, float epsilon,
                 cudaStream_t stream);

// ---------------------------------------------------------------- pooling (f32/f16)
enum class Layout { kNCHW, kNHWC };  // channels-first / channels-last, any spatial rank
struct PoolParams {
  int spatial_rank = 2;                 // 1..3
  int64_t n = 0, c = 0;
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1};  // spatial extents (out from shape inference)
  int64_t kernel[3] = {1, 1, 1}, stride[3] = {1, 1, 1}, dilation[3] = {1, 1, 1};
  int64_t pad_begin[3] = {0, 0, 0};     // pad_end is implied by out (ceil_mode, auto_pad)
  int64_t pad_end[3] = {0, 0, 0};       // needed only for count_include_pad averages
  bool count_include_pad = false;
  Layout layout = Layout::kNCHW;
};
// MaxPool (optional int64 NCHW-flat indices output is not provided: kUnsupported for now) and
// AveragePool. GlobalAveragePool/GlobalMaxPool: use reduce over the spatial axes.
Status maxPool(DataType dtype, const void* x, void* y, const PoolParams& p, cudaStream_t stream);
Status averagePool(DataType dtype, const void* x, void* y, const PoolParams& p,
                   cudaStream_t stream);

// ---------------------------------------------------------------- resize (f32/f16)
enum class ResizeMode { kNearest, kLinear };
enum class CoordTransform { kHalfPixel, kAsymmetric, kAlignCorners, kPytorchHalfPixel,
                            kHalfPixelSymmetric };
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil };
// Resize x[in_dims] -> y[out_dims] (same rank <= 8); scales[d] as ONNX gives or derives them
// (out/in when only sizes are given). Linear interpolates every dim whose size or scale
// differs from 1:1 (at most 4 such dims; else kUnsupported). Cubic and tf_crop_and_resize:
// kUnsupported (the backend falls back).
struct ResizeParams {
  ResizeMode mode = ResizeMode::kNearest;
  CoordTransform coord = CoordTransform::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  std::vector<float> scales;  // one per dim
};
Status resize(DataType dtype, const void* x, const std::vector<int64_t>& in_dims, void* y,
              const std::vector<int64_t>& out_dims, const ResizeParams& p, cudaStream_t stream);

}  // namespace ramjet::cuda

// Convolution (cuDNN) and GEMM (cuBLASLt) have their own headers because they carry library
// handles and tuning state: see cudnn_conv.h and cublaslt_gemm.h.
