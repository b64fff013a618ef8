// FP8 E4M3 arithmetic shared by the precision lowering, the CPU reference kernel of Fp8Gemm and
// the tests. The format is OCP FP8 "E4M3FN" (Hopper's __nv_fp8_e4m3): 1 sign bit, 4 exponent bits
// (bias 7), 3 mantissa bits, no infinities, S.1111.111 = NaN, largest finite value 448, smallest
// normal 2^-6, subnormals m * 2^-9. Conversion from float rounds to nearest, ties to even, and
// saturates to +-448 (CUDA's __NV_SATFINITE): bit for bit what __nv_cvt_float_to_fp8 does, which
// the GPU tests check over every code and the rounding boundaries between them.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace ramjet::precision {

constexpr float kE4m3Max = 448.f;

inline uint8_t floatToE4m3(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  if (std::isnan(x)) return static_cast<uint8_t>(sign | 0x7Fu);
  const float a = std::fabs(x);
  if (a >= kE4m3Max) return static_cast<uint8_t>(sign | 0x7Eu);  // saturate (inf included)
  if (a < 0.015625f) {  // below 2^-6: subnormal steps of 2^-9 (a * 512 is exact)
    const float m = std::nearbyint(a * 512.f);  // ties to even in the default rounding mode
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(m));  // m == 8 is 2^-6, code 0x08
  }
  uint32_t ua = u & 0x7FFFFFFFu;
  // Round the 23-bit mantissa to 3 bits, ties to even; a carry moves into the exponent.
  ua += 0x7FFFFu + ((ua >> 20) & 1u);
  uint32_t code = (ua >> 20) - (120u << 3);  // float exponent bias 127 -> E4M3 bias 7
  if (code > 0x7Eu) code = 0x7Eu;            // rounded up past 448: saturate
  return static_cast<uint8_t>(sign | code);
}

inline float e4m3ToFloat(uint8_t b) {
  const int e = (b >> 3) & 0xF, m = b & 7;
  float v;
  if (e == 15 && m == 7) v = std::nanf("");
  else if (e == 0) v = std::ldexp(static_cast<float>(m), -9);
  else v = std::ldexp(1.f + static_cast<float>(m) / 8.f, e - 7);
  return (b & 0x80) ? -v : v;
}

}  // namespace ramjet::precision
