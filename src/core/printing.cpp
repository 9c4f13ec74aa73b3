// operator<< for tensors, in PyTorch's style: tensor([[1.0000, 2.0000], ...], dtype=...).
#include <cmath>
#include <iomanip>
#include <sstream>

#include "kiln/tensor.h"

namespace kiln {

namespace {
constexpr int64_t kSummarizeAbove = 1000;  // elements; larger tensors show edge items only
constexpr int64_t kEdgeItems = 3;

void print_rec(std::ostream& os, const Tensor& t, const std::vector<double>& flat, int64_t base, int64_t d,
               bool summarize, int indent, bool floating) {
  const int64_t n = t.shape()[size_t(d)];
  const int64_t step = numel_of(Shape(t.shape().begin() + d + 1, t.shape().end()));
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      os << (d + 1 == t.dim() ? "..., " : "...,\n" + std::string(size_t(indent + 1), ' '));
      i = n - kEdgeItems;
    }
    if (d + 1 == t.dim()) {
      const double v = flat[size_t(base + i)];
      if (t.dtype() == DType::Bool) os << (v != 0 ? "True" : "False");
      else if (floating) os << std::fixed << std::setprecision(4) << v;
      else os << int64_t(v);
    } else {
      print_rec(os, t, flat, base + i * step, d + 1, summarize, indent + 1, floating);
    }
    if (i + 1 < n) os << (d + 1 == t.dim() ? ", " : ",\n" + std::string(size_t(indent + 1), ' '));
  }
  os << ']';
}
}  // namespace

std::ostream& operator<<(std::ostream& os, const Tensor& t) {
  if (!t.defined()) return os << "tensor(undefined)";
  const std::vector<double> flat = t.detach().to_vector<double>();
  const bool floating = is_floating(t.dtype());
  std::ostringstream body;
  if (t.dim() == 0) {
    if (floating) body << std::fixed << std::setprecision(4) << flat[0];
    else if (t.dtype() == DType::Bool) body << (flat[0] != 0 ? "True" : "False");
    else body << int64_t(flat[0]);
  } else {
    print_rec(body, t, flat, 0, 0, t.numel() > kSummarizeAbove, 7, floating);
  }
  os << "tensor(" << body.str();
  if (t.dim() > 0 && t.numel() > kSummarizeAbove) os << ", size=" << shape_str(t.shape());
  if (t.dtype() != DType::Float32 && t.dtype() != DType::Int64) os << ", dtype=" << dtype_name(t.dtype());
  if (!t.device().is_cpu()) os << ", device='" << t.device().str() << "'";
  if (t.requires_grad()) os << ", requires_grad=True";
  return os << ')';
}

}  // namespace kiln
