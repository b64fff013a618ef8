// The CPU backend's "cpu.fast" kernels: see fast_kernels.h.
#include "backends/cpu/fast_kernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <limits>

#include "backends/cpu/reference/gemm.h"
#include "ops/fused_conv.h"
#include "ops/nn_geometry.h"
#include "ops/tensor_util.h"

namespace ramjet::backend::cpufast {
namespace {

// ---- vectorizable math (Cephes-style expf: range reduction by ln2, degree-6 polynomial) ----
// Loops over plain arrays with no branches, so GCC vectorizes them; each is compiled for
// AVX2+FMA and for the baseline ISA and picked at run time (like the GEMM micro-kernel).
// Below -87 the result is 0 (exp(-inf) = 0 exactly, as a masked softmax needs), above 88 it
// saturates at exp(88); NaN stays NaN.
[[gnu::always_inline]] inline void expLoop(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float in = x[i];
    float v = std::min(88.0f, std::max(-87.0f, in));
    const float fx = std::floor(v * 1.44269504088896341f + 0.5f);
    v = v - fx * 0.693359375f + fx * 2.12194440e-4f;
    const float z = v * v;
    float y = 1.9875691500e-4f;
    y = y * v + 1.3981999507e-3f;
    y = y * v + 8.3334519073e-3f;
    y = y * v + 4.1665795894e-2f;
    y = y * v + 1.6666665459e-1f;
    y = y * v + 5.0000001201e-1f;
    y = y * z + v + 1.0f;
    const int32_t e = (static_cast<int32_t>(fx) + 127) << 23;
    const float r = y * std::bit_cast<float>(e);
    x[i] = in < -87.0f ? 0.0f : in != in ? in : r;
  }
}

// y <- 1 / (1 + exp(-y)) (sigmoid) or y * that (silu), in blocks through a stack buffer.
template <bool kSilu>
[[gnu::always_inline]] inline void sigmoidLoop(float* y, int64_t n) {
  constexpr int64_t kB = 256;
  float t[kB];
  for (int64_t b = 0; b < n; b += kB) {
    const int64_t m = std::min(kB, n - b);
    for (int64_t i = 0; i < m; ++i) t[i] = -y[b + i];
    expLoop(t, m);
    for (int64_t i = 0; i < m; ++i) y[b + i] = (kSilu ? y[b + i] : 1.0f) / (1.0f + t[i]);
  }
}

// One output row: y = act(y + bias + z).
[[gnu::always_inline]] inline void epilogueLoop(float* y, int64_t n, float bias, const float* z,
                                                const ops::ConvActivation& act) {
  if (z)
    for (int64_t i = 0; i < n; ++i) y[i] += bias + z[i];
  else if (bias != 0.f)
    for (int64_t i = 0; i < n; ++i) y[i] += bias;
  const float a = act.alpha, b = act.beta;
  switch (act.kind) {
    case ops::ConvAct::kNone: break;
    case ops::ConvAct::kRelu:
      for (int64_t i = 0; i < n; ++i) y[i] = std::max(y[i], 0.f);
      break;
    case ops::ConvAct::kLeakyRelu:
      for (int64_t i = 0; i < n; ++i) y[i] = y[i] >= 0.f ? y[i] : y[i] * a;
      break;
    case ops::ConvAct::kClip:
      for (int64_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i], a), b);
      break;
    case ops::ConvAct::kHardSwish:
      for (int64_t i = 0; i < n; ++i) y[i] = y[i] * std::min(1.f, std::max(0.f, y[i] / 6.f + 0.5f));
      break;
    case ops::ConvAct::kHardSigmoid:
      for (int64_t i = 0; i < n; ++i) y[i] = std::max(0.f, std::min(1.f, a * y[i] + b));
      break;
    case ops::ConvAct::kSigmoid: sigmoidLoop<false>(y, n); break;
    case ops::ConvAct::kSilu: sigmoidLoop<true>(y, n); break;
    default:  // tanh, mish, gelu: rare in CNNs; the reference formula in double
      for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(act(static_cast<double>(y[i])));
      break;
  }
}

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")
__attribute__((target("avx2,fma"))) void expAvx2(float* x, int64_t n) { expLoop(x, n); }
void expBase(float* x, int64_t n) { expLoop(x, n); }
__attribute__((target("avx2,fma"))) void sigmoidAvx2(float* x, int64_t n) { sigmoidLoop<false>(x, n); }
void sigmoidBase(float* x, int64_t n) { sigmoidLoop<false>(x, n); }
__attribute__((target("avx2,fma"))) void epilogueAvx2(float* y, int64_t n, float bias, const float* z,
                                                      const ops::ConvActivation& act) {
  epilogueLoop(y, n, bias, z, act);
}
void epilogueBase(float* y, int64_t n, float bias, const float* z, const ops::ConvActivation& act) {
  epilogueLoop(y, n, bias, z, act);
}
#pragma GCC pop_options

void epilogue(float* y, int64_t n, float bias, const float* z, const ops::ConvActivation& act) {
  reference::cpuHasAvx2Fma() ? epilogueAvx2(y, n, bias, z, act) : epilogueBase(y, n, bias, z, act);
}

bool isF32(const TensorType& t, size_t rank) {
  return t.dtype == DataType::kFloat32 && t.shape.rank_known && t.shape.rank() == rank;
}

// ---- FusedConv, NCHW, 2-D ----
struct ConvShape {
  int64_t N, C, H, W, M, Cg, Mg, KH, KW, OH, OW, group;
  ops::WindowGeometry g;
  bool pointwise;
};

Result<ConvShape> convShape(const Node& node, const std::vector<int64_t>& xd, const std::vector<int64_t>& wd) {
  ConvShape s;
  if (xd.size() != 4 || wd.size() != 4) return makeError(StatusCode::kInvalidArgument, node.describe(), ": not 2-D");
  s.N = xd[0], s.C = xd[1], s.H = xd[2], s.W = xd[3];
  s.M = wd[0], s.Cg = wd[1], s.KH = wd[2], s.KW = wd[3];
  s.group = node.attrInt("group", 1);
  if (s.group < 1 || s.C != s.Cg * s.group || s.M % s.group != 0)
    return makeError(StatusCode::kInvalidArgument, node.describe(), ": X ", dimsToString(xd), " and W ",
                     dimsToString(wd), " do not fit group ", s.group);
  s.Mg = s.M / s.group;
  RJ_ASSIGN_OR_RETURN(s.g, ops::forwardWindow(node, {s.H, s.W}, {s.KH, s.KW}, false));
  s.OH = s.g.out[0], s.OW = s.g.out[1];
  s.pointwise = s.KH == 1 && s.KW == 1 && s.g.strides[0] == 1 && s.g.strides[1] == 1 && s.g.pads[0] == 0 &&
                s.g.pads[1] == 0 && s.g.pads[2] == 0 && s.g.pads[3] == 0;
  return s;
}

class FusedConvKernel final : public Kernel {
 public:
  FusedConvKernel(const Node& node, ops::ConvActivation act) : node_(node), act_(act) {}

  Status run(const RunArgs& args) override {
    const TensorRef& xr = args.inputs[0];
    const TensorRef& wr = args.inputs[1];
    RJ_ASSIGN_OR_RETURN(ConvShape s, convShape(node_, xr.dims, wr.dims));
    const TensorRef* br = args.inputs.size() > 2 && args.inputs[2].data ? &args.inputs[2] : nullptr;
    const TensorRef* zr = args.inputs.size() > 3 && args.inputs[3].data ? &args.inputs[3] : nullptr;
    const TensorRef& yr = args.outputs[0];
    const int64_t P = s.OH * s.OW;
    if (yr.dims != std::vector<int64_t>{s.N, s.M, s.OH, s.OW})
      return makeError(StatusCode::kInternal, node_.describe(), ": output ", dimsToString(yr.dims), " but the conv gives ",
                       dimsToString({s.N, s.M, s.OH, s.OW}));
    if (zr && zr->dims != yr.dims)
      return makeError(StatusCode::kInvalidArgument, node_.describe(), ": residual ", dimsToString(zr->dims),
                       " must have the output's shape ", dimsToString(yr.dims));
    const float* x = static_cast<const float*>(xr.data);
    const float* w = static_cast<const float*>(wr.data);
    const float* b = br ? static_cast<const float*>(br->data) : nullptr;
    const float* z = zr ? static_cast<const float*>(zr->data) : nullptr;
    float* y = static_cast<float*>(yr.data);
    const int64_t K = s.Cg * s.KH * s.KW;
    const reference::Im2colGeometry geo{s.Cg, s.H, s.W, s.KH, s.KW, s.OH, s.OW,
                                        s.g.strides[0], s.g.strides[1], s.g.pads[0], s.g.pads[1],
                                        s.g.dilations[0], s.g.dilations[1]};
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t gi = 0; gi < s.group; ++gi) {
        const float* xg = x + (n * s.C + gi * s.Cg) * s.H * s.W;
        float* yg = y + (n * s.M + gi * s.Mg) * P;
        // Pointwise: x is the B matrix itself; otherwise the GEMM gathers the windows from x
        // while packing (no im2col buffer).
        if (s.pointwise)
          reference::gemm(false, false, s.Mg, P, K, 1.f, w + gi * s.Mg * K, K, xg, P, 0.f, yg, P);
        else
          reference::gemmIm2col(s.Mg, w + gi * s.Mg * K, K, xg, geo, yg, P);
      }
    // Epilogue: rows of P, split finely enough that both cores share a layer with few channels.
    const int64_t rows = s.N * s.M;
    const int64_t piece = std::max<int64_t>(1024, std::min<int64_t>(P, 16384));
    const int64_t per_row = (P + piece - 1) / piece;
    reference::parallelRange(rows * per_row, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row = t / per_row, p0 = (t % per_row) * piece, len = std::min(piece, P - p0);
        const int64_t m = row % s.M;
        epilogue(y + row * P + p0, len, b ? b[m] : 0.f, z ? z + row * P + p0 : nullptr, act_);
      }
    });
    return Status::Ok();
  }

 private:
  const Node& node_;
  ops::ConvActivation act_;
};

// ---- MaxPool, NCHW, 2-D: separable (rows, then columns) ----
class MaxPoolKernel final : public Kernel {
 public:
  explicit MaxPoolKernel(const Node& node) : node_(node) {}

  Status run(const RunArgs& args) override {
    const TensorRef& xr = args.inputs[0];
    const auto& xd = xr.dims;
    std::vector<int64_t> kernel = node_.attrInts("kernel_shape");
    if (xd.size() != 4 || kernel.size() != 2)
      return makeError(StatusCode::kInvalidArgument, node_.describe(), ": not a 2-D pool");
    RJ_ASSIGN_OR_RETURN(ops::WindowGeometry g, ops::forwardWindow(node_, {xd[2], xd[3]}, kernel, true));
    const int64_t H = xd[2], W = xd[3], OH = g.out[0], OW = g.out[1];
    const int64_t sh = g.strides[0], sw = g.strides[1], dh = g.dilations[0], dw = g.dilations[1];
    const int64_t pt = g.pads[0], pl = g.pads[1];
    const TensorRef& yr = args.outputs[0];
    if (yr.dims != std::vector<int64_t>{xd[0], xd[1], OH, OW})
      return makeError(StatusCode::kInternal, node_.describe(), ": output ", dimsToString(yr.dims), " but the pool gives ",
                       dimsToString({xd[0], xd[1], OH, OW}));
    const float* x = static_cast<const float*>(xr.data);
    float* y = static_cast<float*>(yr.data);
    const float lowest = -std::numeric_limits<float>::infinity();
    reference::parallelRange(xd[0] * xd[1], std::max<int64_t>(1, 4096 / std::max<int64_t>(H * W, 1)),
                             [&](int64_t p0, int64_t p1) {
      std::vector<float> rowmax(static_cast<size_t>(H * OW));
      for (int64_t p = p0; p < p1; ++p) {
        const float* xp = x + p * H * W;
        for (int64_t ih = 0; ih < H; ++ih)
          for (int64_t ow = 0; ow < OW; ++ow) {
            float m = lowest;
            for (int64_t k = 0; k < kernel[1]; ++k) {
              const int64_t iw = ow * sw - pl + k * dw;
              if (iw >= 0 && iw < W) m = std::max(m, xp[ih * W + iw]);
            }
            rowmax[ih * OW + ow] = m;
          }
        float* yp = y + p * OH * OW;
        for (int64_t oh = 0; oh < OH; ++oh) {
          float* d = yp + oh * OW;
          for (int64_t ow = 0; ow < OW; ++ow) d[ow] = lowest;
          for (int64_t k = 0; k < kernel[0]; ++k) {
            const int64_t ih = oh * sh - pt + k * dh;
            if (ih < 0 || ih >= H) continue;
            const float* r = rowmax.data() + ih * OW;
            for (int64_t ow = 0; ow < OW; ++ow) d[ow] = std::max(d[ow], r[ow]);
          }
        }
      }
    });
    return Status::Ok();
  }

 private:
  const Node& node_;
};

// ---- Softmax (float32) along `axis` (opset 13) or over the flattened tail (coerce_2d) ----
class SoftmaxKernel final : public Kernel {
 public:
  explicit SoftmaxKernel(const Node& node) : node_(node) {}

  Status run(const RunArgs& args) override {
    const auto& d = args.inputs[0].dims;
    const int64_t rank = static_cast<int64_t>(d.size());
    int64_t axis = node_.attrInt("axis", -1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return makeError(StatusCode::kInvalidArgument, node_.describe(), ": axis out of range");
    const bool coerce = node_.attrInt("coerce_2d", 0) != 0;
    int64_t outer = 1, n = 1, inner = 1;
    for (int64_t k = 0; k < rank; ++k) (k < axis ? outer : (k == axis || coerce) ? n : inner) *= d[k];
    const float* x = static_cast<const float*>(args.inputs[0].data);
    float* y = static_cast<float*>(args.outputs[0].data);
    if (n == 0 || outer * inner == 0) return Status::Ok();
    auto vexp = [](float* p, int64_t len) { reference::cpuHasAvx2Fma() ? expAvx2(p, len) : expBase(p, len); };
    if (inner == 1) {  // contiguous rows
      reference::parallelRange(outer, std::max<int64_t>(1, 8192 / n), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          const float* s = x + r * n;
          float* o = y + r * n;
          float mx = s[0];
          for (int64_t k = 1; k < n; ++k) mx = std::max(mx, s[k]);
          for (int64_t k = 0; k < n; ++k) o[k] = s[k] - mx;
          vexp(o, n);
          float sum = 0.f;
          for (int64_t k = 0; k < n; ++k) sum += o[k];
          const float inv = 1.f / sum;
          for (int64_t k = 0; k < n; ++k) o[k] *= inv;
        }
      });
      return Status::Ok();
    }
    // Strided: blocks of `inner` columns, vectorized across them.
    constexpr int64_t kCols = 512;
    const int64_t blocks_per = (inner + kCols - 1) / kCols;
    reference::parallelRange(outer * blocks_per, 1, [&](int64_t t0, int64_t t1) {
      float mx[kCols], sum[kCols];
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t o = t / blocks_per, c0 = (t % blocks_per) * kCols, len = std::min(kCols, inner - c0);
        const float* s = x + o * n * inner + c0;
        float* out = y + o * n * inner + c0;
        for (int64_t i = 0; i < len; ++i) mx[i] = s[i], sum[i] = 0.f;
        for (int64_t k = 1; k < n; ++k)
          for (int64_t i = 0; i < len; ++i) mx[i] = std::max(mx[i], s[k * inner + i]);
        for (int64_t k = 0; k < n; ++k) {
          float* r = out + k * inner;
          for (int64_t i = 0; i < len; ++i) r[i] = s[k * inner + i] - mx[i];
          vexp(r, len);
          for (int64_t i = 0; i < len; ++i) sum[i] += r[i];
        }
        for (int64_t i = 0; i < len; ++i) sum[i] = 1.f / sum[i];
        for (int64_t k = 0; k < n; ++k)
          for (int64_t i = 0; i < len; ++i) out[k * inner + i] *= sum[i];
      }
    });
    return Status::Ok();
  }

 private:
  const Node& node_;
};

// ---- Resize, nearest, float32 rank 4: a gather with the reference's own source indices ----
class ResizeNearestKernel final : public Kernel {
 public:
  explicit ResizeNearestKernel(const Node& node) : node_(node) {}

  Status run(const RunArgs& args) override {
    const auto& d = args.inputs[0].dims;
    // scales (input 2) and sizes (input 3): host constants, or host memory on the CPU.
    auto values = [&](size_t i) {
      std::vector<double> v;
      if (i >= args.inputs.size()) return v;
      const TensorRef& r = args.inputs[i];
      if (r.host) {
        for (int64_t k = 0; k < r.host->numel(); ++k) v.push_back(r.host->getDouble(k));
      } else if (r.data && r.numel() > 0) {
        Tensor t(r.dtype, r.dims, std::shared_ptr<uint8_t>(std::shared_ptr<uint8_t>(), static_cast<uint8_t*>(r.data)));
        for (int64_t k = 0; k < t.numel(); ++k) v.push_back(t.getDouble(k));
      }
      return v;
    };
    const std::vector<double> scales = values(2), size_values = values(3);
    const std::vector<int64_t> sizes(size_values.begin(), size_values.end());
    std::vector<int64_t> od;
    RJ_ASSIGN_OR_RETURN(auto idx, ops::nearestResizeIndices(node_, d, scales, sizes, &od));
    const TensorRef& yr = args.outputs[0];
    if (yr.dims != od)
      return makeError(StatusCode::kInternal, node_.describe(), ": output ", dimsToString(yr.dims), " but the resize gives ",
                       dimsToString(od));
    const float* x = static_cast<const float*>(args.inputs[0].data);
    float* y = static_cast<float*>(yr.data);
    const int64_t H = d[2], W = d[3], OH = od[2], OW = od[3];
    reference::parallelRange(od[0] * od[1] * OH, std::max<int64_t>(1, 4096 / std::max<int64_t>(OW, 1)),
                             [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t oy = r % OH, plane = r / OH, oc = plane % od[1], on = plane / od[1];
        const float* src = x + ((idx[0][on] * d[1] + idx[1][oc]) * H + idx[2][oy]) * W;
        float* dst = y + r * OW;
        const int64_t* ix = idx[3].data();
        for (int64_t ox = 0; ox < OW; ++ox) dst[ox] = src[ix[ox]];
      }
    });
    return Status::Ok();
  }

 private:
  const Node& node_;
};

}  // namespace

void expInPlace(float* x, int64_t n) { reference::cpuHasAvx2Fma() ? expAvx2(x, n) : expBase(x, n); }
void sigmoidInPlace(float* x, int64_t n) { reference::cpuHasAvx2Fma() ? sigmoidAvx2(x, n) : sigmoidBase(x, n); }

bool applies(const Node& node, const std::vector<TensorType>& in, const std::vector<TensorType>& out) {
  if (!node.domain.empty() && node.domain != "ai.onnx") return false;
  if (out.empty() || in.empty()) return false;
  if (const char* only = std::getenv("RAMJET_CPU_FAST_OPS"); only && std::string(only).find(node.op_type) == std::string::npos)
    return false;
  if (node.op_type == "FusedConv") {
    if (node.attrString("layout", "NCHW") != "NCHW" || !ops::parseConvActivation(node).ok()) return false;
    if (in.size() < 2 || !isF32(in[0], 4) || !isF32(in[1], 4) || !isF32(out[0], 4)) return false;
    if (in.size() > 2 && in[2].dtype != DataType::kUndefined && !isF32(in[2], 1)) return false;
    if (in.size() > 3 && in[3].dtype != DataType::kUndefined && !isF32(in[3], 4)) return false;
    return true;
  }
  if (node.op_type == "MaxPool") {
    if (node.outputs.size() > 1 && node.outputs[1]) return false;  // Indices wanted
    return isF32(in[0], 4) && isF32(out[0], 4) && node.attrInts("kernel_shape").size() == 2;
  }
  if (node.op_type == "Resize") {
    return isF32(in[0], 4) && isF32(out[0], 4) && node.attrString("mode", "nearest") == "nearest" &&
           node.attrString("coordinate_transformation_mode", "half_pixel") != "tf_crop_and_resize" &&
           node.attrInt("antialias", 0) == 0;
  }
  if (node.op_type == "Softmax") {
    return in[0].dtype == DataType::kFloat32 && out[0].dtype == DataType::kFloat32 && in[0].shape.rank_known &&
           in[0].shape.rank() >= 1;
  }
  return false;
}

Result<std::unique_ptr<Kernel>> create(const Node& node) {
  if (node.op_type == "FusedConv") {
    RJ_ASSIGN_OR_RETURN(ops::ConvActivation act, ops::parseConvActivation(node));
    return std::unique_ptr<Kernel>(new FusedConvKernel(node, act));
  }
  if (node.op_type == "MaxPool") return std::unique_ptr<Kernel>(new MaxPoolKernel(node));
  if (node.op_type == "Softmax") return std::unique_ptr<Kernel>(new SoftmaxKernel(node));
  if (node.op_type == "Resize") return std::unique_ptr<Kernel>(new ResizeNearestKernel(node));
  return makeError(StatusCode::kInvalidPlan, node.describe(), ": no cpu.fast kernel for ", node.op_type);
}

}  // namespace ramjet::backend::cpufast
