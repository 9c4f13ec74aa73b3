#pragma once
// A number passed to an op (add(t, 2.5), full(shape, 7)): keeps whether it was
// integral or floating, so that type promotion follows PyTorch.
#include <cstdint>
#include <type_traits>

#include "kiln/dtype.h"

namespace kiln {

class Scalar {
 public:
  Scalar() = default;
  template <typename T, std::enable_if_t<std::is_arithmetic_v<T>, int> = 0>
  Scalar(T v) {  // NOLINT: numbers convert implicitly, as in PyTorch
    if constexpr (std::is_same_v<T, bool>) {
      kind_ = Kind::Bool; i_ = v; d_ = v;
    } else if constexpr (std::is_integral_v<T>) {
      kind_ = Kind::Int; i_ = int64_t(v); d_ = double(v);
    } else {
      kind_ = Kind::Float; d_ = double(v);  // no integer form: it would be inexact, or undefined
    }
  }
  Scalar(Half h) : Scalar(float(h)) {}          // NOLINT
  Scalar(BFloat16 h) : Scalar(float(h)) {}      // NOLINT

  bool is_floating() const { return kind_ == Kind::Float; }
  bool is_integral() const { return kind_ == Kind::Int; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  double to_double() const { return d_; }
  // Floating values truncate toward zero; NaN and out-of-range values give the integer
  // type's minimum (float_to_int), never undefined behaviour.
  int64_t to_int() const { return kind_ == Kind::Float ? float_to_int<int64_t>(d_) : i_; }
  template <typename T> T to() const {
    if constexpr (std::is_same_v<T, bool>) return d_ != 0.0;
    else if constexpr (std::is_integral_v<T>) return kind_ == Kind::Float ? float_to_int<T>(d_) : T(i_);
    else return T(static_cast<compute_t<T>>(d_));
  }
  // Whether the value converts to dtype without overflow (PyTorch's check before filling):
  // integer dtypes need a finite value in their range; floating dtypes and bool take any.
  bool fits(DType dtype) const {
    if (dtype != DType::Int32 && dtype != DType::Int64) return true;
    const double lo = dtype == DType::Int32 ? -2147483648.0 : -9223372036854775808.0;
    if (kind_ == Kind::Float) return d_ >= lo && d_ < -lo;
    return dtype == DType::Int64 || (i_ >= int64_t(lo) && i_ < -int64_t(lo));
  }
  // The dtype a tensor made from this scalar alone would have.
  DType natural_dtype() const {
    return kind_ == Kind::Float ? DType::Float32 : kind_ == Kind::Int ? DType::Int64 : DType::Bool;
  }

 private:
  enum class Kind : uint8_t { Float, Int, Bool };
  Kind kind_ = Kind::Int;
  double d_ = 0;
  int64_t i_ = 0;
};

}  // namespace kiln
