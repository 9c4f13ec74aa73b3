#pragma once
// The CPU's primitives for the pointwise expressions (src/backend/pointwise/expr.h). With
// GCC on x86-64 the transcendental ones are declared SIMD-callable under libm's names, so
// a loop over an expression calls glibc's libmvec vector variants (_ZGV..._erff etc., within
// 4 ulp) and vectorises; elsewhere they are the scalar libm functions. float exp keeps the
// inline fast_expf (vec_math.h), which needs no call at all.
#include <cmath>

#include "src/backend/cpu/vec_math.h"

namespace kiln::cpu {

#if defined(KILN_HAVE_LIBMVEC) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
extern "C" {
#define KILN_MV(name) \
  __attribute__((simd("notinbranch"), const, nothrow)) double kiln_mv_##name(double) __asm__(#name); \
  __attribute__((simd("notinbranch"), const, nothrow)) float kiln_mv_##name##f(float) __asm__(#name "f");
#define KILN_MV2(name) \
  __attribute__((simd("notinbranch"), const, nothrow)) double kiln_mv_##name(double, double) __asm__(#name); \
  __attribute__((simd("notinbranch"), const, nothrow)) float kiln_mv_##name##f(float, float) __asm__(#name "f");
KILN_MV(exp) KILN_MV(log) KILN_MV(sin) KILN_MV(cos) KILN_MV(tanh) KILN_MV(erf) KILN_MV(erfc) KILN_MV(log1p)
KILN_MV(expm1) KILN_MV2(pow) KILN_MV2(atan2)
#undef KILN_MV
#undef KILN_MV2
}
#define KILN_CPU_PRIM(name) \
  static float name(float v) { return kiln_mv_##name##f(v); } \
  static double name(double v) { return kiln_mv_##name(v); }
#define KILN_CPU_PRIM2(name) \
  static float name(float a, float b) { return kiln_mv_##name##f(a, b); } \
  static double name(double a, double b) { return kiln_mv_##name(a, b); }
#else
#define KILN_CPU_PRIM(name) \
  static float name(float v) { return std::name(v); } \
  static double name(double v) { return std::name(v); }
#define KILN_CPU_PRIM2(name) \
  static float name(float a, float b) { return std::name(a, b); } \
  static double name(double a, double b) { return std::name(a, b); }
#endif

struct CpuLib {
  [[gnu::always_inline]] static float exp(float v) { return fast_expf(v); }
#if defined(KILN_HAVE_LIBMVEC) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
  static double exp(double v) { return kiln_mv_exp(v); }
#else
  static double exp(double v) { return std::exp(v); }
#endif
  KILN_CPU_PRIM(log) KILN_CPU_PRIM(sin) KILN_CPU_PRIM(cos) KILN_CPU_PRIM(tanh) KILN_CPU_PRIM(erf)
  KILN_CPU_PRIM(erfc) KILN_CPU_PRIM(log1p) KILN_CPU_PRIM(expm1) KILN_CPU_PRIM2(pow) KILN_CPU_PRIM2(atan2)
  template <class V> static V sqrt(V v) { return std::sqrt(v); }
  template <class V> static V floor(V v) { return std::floor(v); }
  template <class V> static V ceil(V v) { return std::ceil(v); }
  template <class V> static V round(V v) { return std::nearbyint(v); }  // half to even, as PyTorch
  template <class V> static V trunc(V v) { return std::trunc(v); }
  template <class V> static V fmod(V a, V b) { return std::fmod(a, b); }
};

#undef KILN_CPU_PRIM
#undef KILN_CPU_PRIM2

}  // namespace kiln::cpu
