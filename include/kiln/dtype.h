#pragma once
// Element types and the scalar C++ types that carry them.
#include <cstdint>
#include <cstring>
#include <limits>
#include <ostream>
#include <string>

namespace kiln {

enum class DType : uint8_t { Float32, Float64, Float16, BFloat16, Int32, Int64, Bool };
inline constexpr int kNumDTypes = 7;

// IEEE binary16, stored as bits; arithmetic goes through float.
struct Half {
  uint16_t bits = 0;
  Half() = default;
  Half(float f) : bits(from_float(f)) {}  // NOLINT: implicit like a built-in float type
  operator float() const { return to_float(bits); }
  static uint16_t from_float(float f);
  static float to_float(uint16_t h);
};

// bfloat16: the top half of a float32, rounded to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float f) : bits(from_float(f)) {}  // NOLINT
  operator float() const {
    uint32_t u = uint32_t(bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  static uint16_t from_float(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return uint16_t(u >> 16);
  }
};

inline uint16_t Half::from_float(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t absx = x & 0x7fffffffu;
  if (absx >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0u));
  if (absx >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // overflow to inf
  if (absx < 0x38800000u) {                                  // subnormal or zero
    if (absx < 0x33000000u) return uint16_t(sign);
    const uint32_t shift = 126u - (absx >> 23);  // half subnormal unit is 2^-24
    const uint32_t mant = (absx & 0x7fffffu) | 0x800000u;
    uint32_t half = mant >> shift;
    const uint32_t dropped = mant & ((1u << shift) - 1u);  // round to nearest even
    const uint32_t halfway = 1u << (shift - 1u);
    if (dropped > halfway || (dropped == halfway && (half & 1u))) ++half;
    return uint16_t(sign | half);
  }
  uint32_t h = ((absx - 0x38000000u) >> 13);
  const uint32_t dropped = absx & 0x1fffu;
  if (dropped > 0x1000u || (dropped == 0x1000u && (h & 1u))) ++h;
  return uint16_t(sign | h);
}

inline float Half::to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t out;
  if (exp == 0x1f) {
    out = sign | 0x7f800000u | (mant << 13);
  } else if (exp == 0) {
    if (mant == 0) {
      out = sign;
    } else {  // normalise a subnormal
      exp = 113;
      while (!(mant & 0x400u)) { mant <<= 1; --exp; }
      out = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    out = sign | ((exp + 112u) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &out, 4);
  return f;
}

size_t element_size(DType t);
const char* dtype_name(DType t);  // "float32", "bfloat16", ... (PyTorch's names)
bool is_floating(DType t);
bool is_integral(DType t);         // int32, int64 (not bool)
// PyTorch's type promotion for two tensor operands: bool < int32 < int64 < float16/bf16 < float32 < float64;
// float16 with bfloat16 gives float32.
DType promote_types(DType a, DType b);
inline std::ostream& operator<<(std::ostream& os, DType t) { return os << dtype_name(t); }

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<Half> { static constexpr DType value = DType::Float16; };
template <> struct dtype_of<BFloat16> { static constexpr DType value = DType::BFloat16; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };
template <> struct dtype_of<bool> { static constexpr DType value = DType::Bool; };

// Arithmetic type used to compute on a storage type (half types compute in float).
template <typename T> struct compute_type { using type = T; };
template <> struct compute_type<Half> { using type = float; };
template <> struct compute_type<BFloat16> { using type = float; };
template <typename T> using compute_t = typename compute_type<T>::type;

// Floating-point to integer conversion with a defined result for every input: values
// whose truncation fits I convert as in C++; NaN, infinities and out-of-range values give
// I's minimum, which is what x86 (so PyTorch on x86 CPUs) produces, where C++ leaves the
// conversion undefined.
template <typename I, typename F> constexpr I float_to_int(F v) {
  constexpr F lo = F(std::numeric_limits<I>::min());  // -2^(bits-1): exact in F
  return (v >= lo && v < -lo) ? I(v) : std::numeric_limits<I>::min();
}

}  // namespace kiln

// KILN_DISPATCH_DTYPE(dtype, "op", [&]<typename scalar_t>() { ... }): calls the lambda
// with scalar_t bound to the C++ type of dtype.
#define KILN_DISPATCH_DTYPE(DT, OPNAME, ...)                                              \
  [&] {                                                                                 \
    auto&& kiln_fn_ = __VA_ARGS__;                                                      \
    switch (DT) {                                                                       \
      case ::kiln::DType::Float32: return kiln_fn_.template operator()<float>();        \
      case ::kiln::DType::Float64: return kiln_fn_.template operator()<double>();       \
      case ::kiln::DType::Float16: return kiln_fn_.template operator()<::kiln::Half>(); \
      case ::kiln::DType::BFloat16: return kiln_fn_.template operator()<::kiln::BFloat16>(); \
      case ::kiln::DType::Int32: return kiln_fn_.template operator()<int32_t>();        \
      case ::kiln::DType::Int64: return kiln_fn_.template operator()<int64_t>();        \
      case ::kiln::DType::Bool: return kiln_fn_.template operator()<bool>();            \
    }                                                                                   \
    KILN_FAIL(OPNAME, "unknown dtype");                                                 \
  }()

// Floating types only; other dtypes raise kiln::Error naming the op.
#define KILN_DISPATCH_FLOATING(DT, OPNAME, ...)                                          \
  [&] {                                                                                 \
    auto&& kiln_fn_ = __VA_ARGS__;                                                      \
    switch (DT) {                                                                       \
      case ::kiln::DType::Float32: return kiln_fn_.template operator()<float>();        \
      case ::kiln::DType::Float64: return kiln_fn_.template operator()<double>();       \
      case ::kiln::DType::Float16: return kiln_fn_.template operator()<::kiln::Half>(); \
      case ::kiln::DType::BFloat16: return kiln_fn_.template operator()<::kiln::BFloat16>(); \
      default: break;                                                                   \
    }                                                                                   \
    KILN_FAIL(OPNAME, "expected a floating dtype, got ", ::kiln::dtype_name(DT));       \
  }()
