#pragma once
// Float32 exp and erfc written with plain arithmetic and selects, so that loops calling
// them vectorise (libm's expf/erff are opaque calls that keep a loop scalar).
// Accuracy: exp within ~2 ulp; erfc within ~1.2e-7 relative (Numerical Recipes'
// Chebyshev fit), which keeps gelu's 0.5*x*erfc(-x/sqrt2) accurate in relative terms
// for every x, including large negative x where 1 + erf(x) would cancel.
#include <cstdint>
#include <cstring>

namespace kiln::cpu::vmath {

[[gnu::always_inline]] inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

[[gnu::always_inline]] inline float exp_f32(float x) {
  const float hi = 88.7228f, lo = -87.3365f;  // outside: inf / 0 (no subnormal results)
  const float xc = x > hi ? hi : (x < lo ? lo : x);
  // Round to nearest by adding and subtracting 1.5 * 2^23 (no libm call, vectorises).
  const float n = (xc * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = xc - n * 0.693359375f;  // ln2 split in two for an exact first product
  r = r - n * -2.12194440e-4f;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  // 2^n assembled in two halves so that n = 128 (x near hi) does not overflow the exponent.
  const int32_t ni = int32_t(n);
  const float s1 = bits_to_float(uint32_t((ni / 2 + 127) << 23));
  const float s2 = bits_to_float(uint32_t((ni - ni / 2 + 127) << 23));
  float y = p * s1 * s2;
  y = x > hi ? __builtin_inff() : y;
  y = x < lo ? 0.f : y;
  return x != x ? x : y;
}

[[gnu::always_inline]] inline float erfc_nonneg(float z) {  // z >= 0
  const float t = 1.f / (1.f + 0.5f * z);
  float p = 0.17087277f;
  p = p * t - 0.82215223f;
  p = p * t + 1.48851587f;
  p = p * t - 1.13520398f;
  p = p * t + 0.27886807f;
  p = p * t - 0.18628806f;
  p = p * t + 0.09678418f;
  p = p * t + 0.37409196f;
  p = p * t + 1.00002368f;
  p = p * t - 1.26551223f;
  return t * exp_f32(-z * z + p);
}

[[gnu::always_inline]] inline float erfc_f32(float x) {
  const float e = erfc_nonneg(x < 0.f ? -x : x);
  return x < 0.f ? 2.f - e : e;
}

}  // namespace kiln::cpu::vmath
