// Tensor metadata and views: everything here only rearranges shape/strides/offset.
#include "kiln/tensor.h"

#include <algorithm>
#include <sstream>

#include "kiln/device_manager.h"
#include "src/autograd/record.h"

namespace kiln {

namespace {
Tensor make_view(const Tensor& base, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// Resolves one -1 in a requested shape against numel.
Shape infer_shape(const char* op, const Shape& req, int64_t numel, const Shape& from) {
  Shape out = req;
  int64_t known = 1, infer_at = -1;
  bool overflow = false;  // the known sizes multiply past int64: more than any tensor holds
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      KILN_CHECK(infer_at < 0, op, "only one dimension can be -1, got ", shape_str(req));
      infer_at = int64_t(i);
    } else {
      KILN_CHECK(out[i] >= 0, op, "invalid size ", out[i], " in shape ", shape_str(req));
      overflow |= __builtin_mul_overflow(known, out[i], &known);
    }
  }
  for (int64_t s : out) overflow &= s != 0;  // a zero size makes the product 0 after all
  if (infer_at >= 0) {
    KILN_CHECK(known != 0 && !overflow && numel % known == 0, op, "shape ", shape_str(req),
               " is invalid for input of shape ", shape_str(from), " (", numel, " elements)");
    out[size_t(infer_at)] = numel / known;
  }
  KILN_CHECK(infer_at >= 0 || (!overflow && known == numel), op, "shape ", shape_str(req),
             " is invalid for input of shape ", shape_str(from), " (", numel, " elements)");
  return out;
}

// Strides for viewing (shape, strides) as new_shape without copying, if possible
// (PyTorch's computeStride): empty optional when the memory layout does not allow it.
std::optional<Strides> view_strides(const Shape& shape, const Strides& strides, const Shape& new_shape) {
  Strides out(new_shape.size());
  if (numel_of(shape) == 0 || shape.empty()) return contiguous_strides(new_shape);  // empty or 0-d: any layout
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[size_t(d)];
    if (d == 0 || (shape[size_t(d - 1)] != 1 && strides[size_t(d - 1)] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[size_t(view_d)] == 1)) {
        out[size_t(view_d)] = view_numel * chunk_base_stride;
        view_numel *= new_shape[size_t(view_d)];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[size_t(d - 1)];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}
}  // namespace

Device TensorOptions::resolved_device() const { return device_ ? *device_ : current_device(); }

int64_t Tensor::size(int64_t d) const { return shape()[size_t(normalize_dim("size", d, dim()))]; }
int64_t Tensor::stride(int64_t d) const { return strides()[size_t(normalize_dim("stride", d, dim()))]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    const int64_t s = shape()[size_t(d)];
    if (s == 1) continue;
    if (s == 0) return true;
    if (strides()[size_t(d)] != expected) return false;
    expected *= s;
  }
  return true;
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(storage()->data()) + offset() * int64_t(element_size());
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor" << shape_str(shape()) << ' ' << dtype_name(dtype()) << ' ' << device().str();
  return os.str();
}

Tensor Tensor::view(const Shape& req) const {
  const Shape s = infer_shape("view", req, numel(), shape());
  auto st = view_strides(shape(), strides(), s);
  KILN_CHECK(st.has_value(), "view", "view shape ", shape_str(s), " is not compatible with input of shape ",
             shape_str(shape()), " and strides ", shape_str(strides()), "; use reshape()");
  return autograd::record_reshape(make_view(*this, s, *st, offset()), *this);
}

Tensor Tensor::reshape(const Shape& req) const {
  const Shape s = infer_shape("reshape", req, numel(), shape());
  if (auto st = view_strides(shape(), strides(), s))
    return autograd::record_reshape(make_view(*this, s, *st, offset()), *this);
  return contiguous().view(s);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  KILN_CHECK(int64_t(dims.size()) == dim(), "permute", "expected ", dim(), " dims for a tensor of shape ",
             shape_str(shape()), ", got ", shape_str(dims));
  Shape s(dims.size());
  Strides st(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = normalize_dim("permute", dims[i], dim());
    KILN_CHECK(!seen[size_t(d)], "permute", "dim ", d, " repeats in ", shape_str(dims));
    seen[size_t(d)] = true;
    s[i] = shape()[size_t(d)];
    st[i] = strides()[size_t(d)];
  }
  return autograd::record_permute(make_view(*this, s, st, offset()), *this, dims);
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  if (dim() == 0) return *this;
  d0 = normalize_dim("transpose", d0, dim());
  d1 = normalize_dim("transpose", d1, dim());
  Shape s = shape();
  Strides st = strides();
  std::swap(s[size_t(d0)], s[size_t(d1)]);
  std::swap(st[size_t(d0)], st[size_t(d1)]);
  return autograd::record_transpose(make_view(*this, s, st, offset()), *this, d0, d1);
}

Tensor Tensor::t() const {
  KILN_CHECK(dim() <= 2, "t", "expects a tensor of rank <= 2, got shape ", shape_str(shape()));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  KILN_CHECK(dim() > 0, "narrow", "cannot narrow a 0-d tensor");
  d = normalize_dim("narrow", d, dim());
  const int64_t n = shape()[size_t(d)];
  if (start < 0) start += n;
  KILN_CHECK(start >= 0 && length >= 0 && start + length <= n, "narrow", "start ", start, " length ", length,
             " out of range for dim ", d, " of size ", n, " (shape ", shape_str(shape()), ")");
  Shape s = shape();
  s[size_t(d)] = length;
  return autograd::record_slice(make_view(*this, s, strides(), offset() + start * strides()[size_t(d)]), *this, d,
                                start, start + length, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  KILN_CHECK(dim() > 0, "slice", "cannot slice a 0-d tensor");
  KILN_CHECK(step > 0, "slice", "step must be positive, got ", step);
  d = normalize_dim("slice", d, dim());
  const int64_t n = shape()[size_t(d)];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape s = shape();
  Strides st = strides();
  s[size_t(d)] = (end - start + step - 1) / step;
  const int64_t off = offset() + start * st[size_t(d)];
  st[size_t(d)] *= step;
  return autograd::record_slice(make_view(*this, s, st, off), *this, d, start, end, step);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  KILN_CHECK(dim() > 0, "select", "cannot select from a 0-d tensor");
  d = normalize_dim("select", d, dim());
  const int64_t n = shape()[size_t(d)];
  KILN_CHECK(index >= -n && index < n, "select", "index ", index, " out of range for dim ", d, " of size ", n,
             " (shape ", shape_str(shape()), ")");
  if (index < 0) index += n;
  Shape s = shape();
  Strides st = strides();
  const int64_t off = offset() + index * st[size_t(d)];
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return autograd::record_select(make_view(*this, s, st, off), *this, d, index);
}

Tensor Tensor::expand(const Shape& req) const {
  const OpNameScope scope("expand");
  KILN_CHECK(req.size() >= shape().size(), "expand", "cannot expand shape ", shape_str(shape()), " to ",
             shape_str(req), " (fewer dims)");
  const size_t lead = req.size() - shape().size();
  Shape s(req.size());
  Strides st(req.size());
  for (size_t i = 0; i < req.size(); ++i) {
    if (i < lead) {
      KILN_CHECK(req[i] >= 0, "expand", "new leading dim ", i, " must be non-negative in ", shape_str(req));
      s[i] = req[i];
      st[i] = 0;
      continue;
    }
    const int64_t cur = shape()[i - lead];
    const int64_t want = req[i] == -1 ? cur : req[i];
    KILN_CHECK(want >= 0, "expand", "size ", req[i], " of dim ", i, " in ", shape_str(req),
               " is negative (only -1, keeping the size, is allowed)");
    KILN_CHECK(want == cur || cur == 1, "expand", "cannot expand shape ", shape_str(shape()), " to ",
               shape_str(req), " (dim ", i, ": ", cur, " -> ", want, ")");
    s[i] = want;
    st[i] = (want == cur) ? strides()[i - lead] : 0;
  }
  (void)numel_of(s);  // raises when the element count overflows
  return autograd::record_expand(make_view(*this, s, st, offset()), *this);
}

Tensor Tensor::squeeze() const {
  Shape s;
  Strides st;
  for (int64_t i = 0; i < dim(); ++i)
    if (shape()[size_t(i)] != 1) {
      s.push_back(shape()[size_t(i)]);
      st.push_back(strides()[size_t(i)]);
    }
  return autograd::record_reshape(make_view(*this, s, st, offset()), *this);
}

Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  d = normalize_dim("squeeze", d, dim());
  if (shape()[size_t(d)] != 1) return *this;
  Shape s = shape();
  Strides st = strides();
  s.erase(s.begin() + d);
  st.erase(st.begin() + d);
  return autograd::record_reshape(make_view(*this, s, st, offset()), *this);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = normalize_dim("unsqueeze", d, dim() + 1);
  Shape s = shape();
  Strides st = strides();
  const int64_t stride = d < dim() ? shape()[size_t(d)] * strides()[size_t(d)] : 1;
  s.insert(s.begin() + d, 1);
  st.insert(st.begin() + d, stride);
  return autograd::record_reshape(make_view(*this, s, st, offset()), *this);
}

Tensor Tensor::flatten(int64_t start, int64_t end) const {
  if (dim() == 0) return reshape({1});
  start = normalize_dim("flatten", start, dim());
  end = normalize_dim("flatten", end, dim());
  KILN_CHECK(start <= end, "flatten", "start_dim ", start, " must not exceed end_dim ", end);
  Shape s(shape().begin(), shape().begin() + start);
  int64_t n = 1;
  for (int64_t i = start; i <= end; ++i) n *= shape()[size_t(i)];
  s.push_back(n);
  s.insert(s.end(), shape().begin() + end + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::unflatten(int64_t d, const Shape& sizes) const {
  d = normalize_dim("unflatten", d, dim());
  Shape s(shape().begin(), shape().begin() + d);
  const Shape inner = infer_shape("unflatten", sizes, shape()[size_t(d)], {shape()[size_t(d)]});
  s.insert(s.end(), inner.begin(), inner.end());
  s.insert(s.end(), shape().begin() + d + 1, shape().end());
  return view(s);
}

Tensor Tensor::as_strided(const Shape& s, const Strides& st, int64_t off) const {
  KILN_CHECK(s.size() == st.size(), "as_strided", "shape ", shape_str(s), " and strides ", shape_str(st),
             " differ in rank");
  const OpNameScope scope("as_strided");
  int64_t last = off;
  for (size_t i = 0; i < s.size(); ++i) {
    KILN_CHECK(s[i] >= 0 && st[i] >= 0, "as_strided", "negative size or stride in ", shape_str(s), " / ",
               shape_str(st));
    if (s[i] > 0) last = checked_add("as_strided", last, checked_mul("as_strided", s[i] - 1, st[i]));
  }
  KILN_CHECK(off >= 0 && (numel_of(s) == 0 ||
                          checked_mul("as_strided", checked_add("as_strided", last, 1), int64_t(element_size())) <=
                              int64_t(storage()->nbytes())),
             "as_strided", "view ", shape_str(s), " / ", shape_str(st), " at offset ", off,
             " reaches past the storage of ", storage()->nbytes(), " bytes");
  return autograd::record_as_strided(make_view(*this, s, st, off), *this);
}

}  // namespace kiln
