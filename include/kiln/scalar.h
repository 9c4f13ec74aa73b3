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
      kind_ = Kind::Float; d_ = double(v); i_ = int64_t(v);
    }
  }
  Scalar(Half h) : Scalar(float(h)) {}          // NOLINT
  Scalar(BFloat16 h) : Scalar(float(h)) {}      // NOLINT

  bool is_floating() const { return kind_ == Kind::Float; }
  bool is_integral() const { return kind_ == Kind::Int; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  double to_double() const { return d_; }
  int64_t to_int() const { return i_; }
  template <typename T> T to() const {
    if constexpr (std::is_same_v<T, bool>) return d_ != 0.0;
    else if constexpr (std::is_integral_v<T>) return T(kind_ == Kind::Float ? int64_t(d_) : i_);
    else return T(static_cast<compute_t<T>>(d_));
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
