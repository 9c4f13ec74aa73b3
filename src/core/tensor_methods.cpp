// Tensor's elementwise math methods forward to the free functions of ops.h.
// (Each op family's source file defines the methods of its own family.)
#include "kiln/ops.h"

namespace kiln {

Tensor Tensor::add(const Tensor& o, Scalar alpha) const { return kiln::add(*this, o, alpha); }
Tensor Tensor::sub(const Tensor& o, Scalar alpha) const { return kiln::sub(*this, o, alpha); }
Tensor Tensor::mul(const Tensor& o) const { return kiln::mul(*this, o); }
Tensor Tensor::div(const Tensor& o) const { return kiln::div(*this, o); }
Tensor Tensor::pow(Scalar e) const { return kiln::pow(*this, e); }
Tensor Tensor::neg() const { return kiln::neg(*this); }
Tensor Tensor::abs() const { return kiln::abs(*this); }
Tensor Tensor::exp() const { return kiln::exp(*this); }
Tensor Tensor::log() const { return kiln::log(*this); }
Tensor Tensor::sqrt() const { return kiln::sqrt(*this); }
Tensor Tensor::relu() const { return kiln::relu(*this); }
Tensor Tensor::sigmoid() const { return kiln::sigmoid(*this); }
Tensor Tensor::tanh() const { return kiln::tanh(*this); }
Tensor& Tensor::add_(const Tensor& o, Scalar alpha) { return kiln::add_(*this, o, alpha); }
Tensor& Tensor::add_(Scalar s) { return kiln::add_(*this, s); }
Tensor& Tensor::sub_(const Tensor& o, Scalar alpha) { return kiln::sub_(*this, o, alpha); }
Tensor& Tensor::mul_(const Tensor& o) { return kiln::mul_(*this, o); }
Tensor& Tensor::mul_(Scalar s) { return kiln::mul_(*this, s); }
Tensor& Tensor::div_(const Tensor& o) { return kiln::div_(*this, o); }
Tensor& Tensor::div_(Scalar s) { return kiln::div_(*this, s); }
Tensor& Tensor::clamp_(std::optional<Scalar> lo, std::optional<Scalar> hi) { return kiln::clamp_(*this, lo, hi); }
Tensor& Tensor::relu_() { return kiln::relu_(*this); }

}  // namespace kiln
