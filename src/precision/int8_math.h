// The arithmetic of ramjet's INT8 ops, shared verbatim by the CPU reference kernels
// (src/backends/cpu/reference/int8.cc) and the CUDA kernels (src/backends/cuda/int8_kernels.cu)
// so both round identically:
//   quantize:   q = saturate_int8(rint(x / scale))            (IEEE division, half to even)
//   dequantize: y = float(q) * scale
//   epilogue:   v = fma(float(acc_int32), mul[k], bias[k])     (mul[k] = s_x * s_w[k])
//               [act] then v = fma(float(res_int8), res_scale, v) then [act]
//               int8 output: quantize(v, out_scale); float output: v
// fma and the division are correctly rounded on both sides (no contraction ambiguity); only
// SiLU's expf may differ by an ulp between host and device, which can move a result by 1 LSB.
#pragma once

#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define RJ_HD __host__ __device__ __forceinline__
#else
#define RJ_HD inline
#endif

namespace ramjet::int8 {

enum Activation : int32_t { kActNone = 0, kActRelu = 1, kActSilu = 2, kActLeakyRelu = 3, kActClip = 4 };

struct EpilogueParams {
  int32_t act = kActNone;
  float alpha = 0.f, beta = 0.f;  // LeakyRelu slope (alpha); Clip bounds (alpha, beta)
  bool act_after_residual = true;
  float res_scale = 0.f;          // residual input's scale (0: no residual)
  float out_scale = 0.f;          // > 0: int8 output with this scale; 0: float output
};

RJ_HD float applyActivation(float v, const EpilogueParams& p) {
  switch (p.act) {
    case kActRelu: return v > 0.f ? v : 0.f;
    case kActSilu: return v / (1.f + expf(-v));
    case kActLeakyRelu: return v >= 0.f ? v : v * p.alpha;
    case kActClip: return fminf(fmaxf(v, p.alpha), p.beta);
    default: return v;
  }
}

RJ_HD int8_t quantizeInt8(float x, float scale) {
#ifdef __CUDA_ARCH__
  float q = rintf(__fdiv_rn(x, scale));
#else
  float q = std::rint(x / scale);
#endif
  q = fminf(fmaxf(q, -128.f), 127.f);  // NaN -> -128 on both sides
  return static_cast<int8_t>(static_cast<int32_t>(q));
}

RJ_HD float dequantizeInt8(int8_t q, float scale) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(static_cast<float>(q), scale);
#else
  return static_cast<float>(q) * scale;
#endif
}

// The real-valued result of one output element before output quantization.
RJ_HD float epilogue(int32_t acc, float mul, float bias, bool has_res, int8_t res, const EpilogueParams& p) {
  float v = fmaf(static_cast<float>(acc), mul, bias);
  if (!p.act_after_residual) v = applyActivation(v, p);
  if (has_res) v = fmaf(static_cast<float>(res), p.res_scale, v);
  if (p.act_after_residual) v = applyActivation(v, p);
  return v;
}

}  // namespace ramjet::int8
