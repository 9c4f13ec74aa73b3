#pragma once
// Branch-free float math that GCC vectorises inside loops (libm's expf/erfcf are opaque
// calls that keep a loop scalar). exp within about 2 ulp (softmax, sigmoid, silu);
// erfc within ~1.2e-7 relative (Numerical Recipes' Chebyshev fit), which keeps gelu's
// 0.5*x*erfc(-x/sqrt2) accurate in relative terms for every x, including large negative
// x where 1 + erf(x) would cancel.
#include <bit>
#include <cstdint>

// Hot loops compile once per instruction set and pick the best at load time (GCC's
// function multiversioning): the library itself is built for baseline x86-64 (SSE2).
// Not under ThreadSanitizer: its instrumented ifunc resolvers run before its runtime starts.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
#define KILN_SIMD_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KILN_SIMD_CLONES
#endif

namespace kiln::cpu {

// exp(x) for float: x = k*ln2 + r with |r| <= ln2/2, exp(r) by its Taylor series to r^7,
// 2^k built in the exponent bits. Underflows to exactly 0 below -87.3, overflows to inf above 88.72; NaN stays NaN.
[[gnu::always_inline]] inline float fast_expf(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693145751953125f;   // ln2 split so that k*kLn2Hi is exact
  constexpr float kLn2Lo = 1.42860682030941723e-6f;
  constexpr float kRound = 12582912.0f;           // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kLow = -87.33654f, kHigh = 88.72283f;
  const bool under = x < kLow, over = x > kHigh;
  float xc = x > kHigh ? kHigh : x;               // comparisons keep NaN (both false)
  xc = xc < kLow ? kLow : xc;
  const float t = xc * kLog2e + kRound;           // round(x*log2e) + kRound
  const float k = t - kRound;
  const int32_t ki = int32_t(std::bit_cast<uint32_t>(t) - std::bit_cast<uint32_t>(kRound));
  const float r = (xc - k * kLn2Hi) - k * kLn2Lo;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^k as two factors so that k = 128 (x near kHigh) does not overflow the exponent field.
  const int32_t k1 = ki >> 1, k2 = ki - k1;
  const float s1 = std::bit_cast<float>(uint32_t(k1 + 127) << 23);
  const float s2 = std::bit_cast<float>(uint32_t(k2 + 127) << 23);
  const float y = p * s1 * s2;
  return under ? 0.0f : over ? __builtin_inff() : y;
}

// erfc(z) for z >= 0.
[[gnu::always_inline]] inline float erfc_nonneg(float z) {
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
  return t * fast_expf(-z * z + p);
}

[[gnu::always_inline]] inline float fast_erfcf(float x) {
  const float e = erfc_nonneg(x < 0.f ? -x : x);
  return x < 0.f ? 2.f - e : e;
}

}  // namespace kiln::cpu
