// Factories: empty, zeros, full, arange, linspace, eye, random tensors, from host data.
#include <cmath>
#include <cstring>

#include "kiln/dispatch.h"
#include "kiln/generator.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "src/core/memory_format.h"

namespace kiln {

namespace {
void check_shape(const char* op, const Shape& shape) {
  for (int64_t s : shape)
    KILN_CHECK(s >= 0, op, "negative dimension ", s, " in shape ", shape_str(shape));
}

Tensor finish(Tensor t, const TensorOptions& opts) {
  if (opts.requires_grad_) t.requires_grad_(true);
  return t;
}

Tensor random_tensor(OpId op, const Shape& shape, const TensorOptions& opts, Generator* gen, double a, double b) {
  Tensor t = empty(shape, TensorOptions(opts).requires_grad(false));
  if (t.numel() == 0) return finish(t, opts);
  Generator& g = gen ? *gen : default_generator();
  RandomAttrs attrs{a, b, g.seed(), g.advance(uint64_t(t.numel()))};
  Tensor out[] = {t};
  dispatch(op, t.dtype(), {}, out, &attrs);
  return finish(t, opts);
}
}  // namespace

namespace {
// A new tensor whose strides are dense (they cover exactly numel elements).
Tensor empty_dense(const char* op, const Shape& shape, Strides strides, const TensorOptions& opts) {
  check_shape(op, shape);
  auto impl = std::make_shared<TensorImpl>();
  const size_t nbytes = checked_nbytes(numel_of(shape), element_size(opts.dtype_), shape);
  impl->storage = std::make_shared<StorageImpl>(nbytes, opts.resolved_device());
  impl->shape = shape;
  impl->strides = std::move(strides);
  impl->dtype = opts.dtype_;
  return finish(Tensor(std::move(impl)), opts);
}
}  // namespace

Tensor empty(const Shape& shape, TensorOptions opts) {
  const OpNameScope scope("empty");
  check_shape("empty", shape);
  return empty_dense("empty", shape, contiguous_strides(shape), opts);
}

Tensor empty(const Shape& shape, TensorOptions opts, MemoryFormat fmt) {
  const OpNameScope scope("empty");
  switch (fmt) {
    case MemoryFormat::Contiguous: return empty(shape, opts);
    case MemoryFormat::ChannelsLast:
      KILN_CHECK(shape.size() == 4, "empty", "required rank 4 tensor to use channels_last format, got shape ",
                 shape_str(shape));
      return empty_dense("empty", shape, channels_last_strides(shape), opts);
    case MemoryFormat::Preserve: break;
  }
  KILN_FAIL("empty", "preserve_format needs a source tensor; use empty_like");
}

Tensor empty_strided(const Shape& shape, const Strides& strides, TensorOptions opts) {
  const OpNameScope scope("empty_strided");
  check_shape("empty_strided", shape);
  KILN_CHECK(shape.size() == strides.size(), "empty_strided", "shape ", shape_str(shape), " and strides ",
             shape_str(strides), " differ in rank");
  for (int64_t st : strides)
    KILN_CHECK(st >= 0, "empty_strided", "negative stride in ", shape_str(strides));
  int64_t extent = numel_of(shape) == 0 ? 0 : 1;
  for (size_t i = 0; i < shape.size() && extent; ++i)
    extent = checked_add("empty_strided", extent, checked_mul("empty_strided", shape[i] - 1, strides[i]));
  Tensor base = empty({extent}, TensorOptions(opts).requires_grad(false));
  return finish(base.as_strided(shape, strides, 0), opts);
}

Tensor full(const Shape& shape, Scalar value, TensorOptions opts) {
  const OpNameScope scope("full");
  Tensor t = empty(shape, TensorOptions(opts).requires_grad(false));
  t.fill_(value);
  return finish(t, opts);
}
Tensor zeros(const Shape& shape, TensorOptions opts) {
  const OpNameScope scope("zeros");
  return full(shape, 0, opts);
}
Tensor ones(const Shape& shape, TensorOptions opts) {
  const OpNameScope scope("ones");
  return full(shape, 1, opts);
}
Tensor empty_like(const Tensor& t, TensorOptions opts, MemoryFormat fmt) {
  const OpNameScope scope("empty_like");
  if (fmt != MemoryFormat::Preserve) return empty(t.shape(), opts, fmt);
  return empty_dense("empty_like", t.shape(), preserved_strides(t), opts);
}
Tensor empty_like(const Tensor& t, MemoryFormat fmt) {
  return empty_like(t, TensorOptions(t.dtype()).device(t.device()), fmt);
}
Tensor full_like(const Tensor& t, Scalar v, MemoryFormat fmt) {
  const OpNameScope scope("full_like");
  Tensor out = empty_like(t, fmt);
  out.fill_(v);
  return out;
}
Tensor zeros_like(const Tensor& t, MemoryFormat fmt) {
  const OpNameScope scope("zeros_like");
  return full_like(t, 0, fmt);
}
Tensor ones_like(const Tensor& t, MemoryFormat fmt) {
  const OpNameScope scope("ones_like");
  return full_like(t, 1, fmt);
}

Tensor arange(Scalar end, TensorOptions opts) { return arange(0, end, 1, opts); }

Tensor arange(Scalar start, Scalar end, Scalar step, TensorOptions opts) {
  const OpNameScope scope("arange");
  const double s = start.to_double(), e = end.to_double(), st = step.to_double();
  KILN_CHECK(std::isfinite(s) && std::isfinite(e), "arange", "unsupported range: ", s, " -> ", e);
  KILN_CHECK(st != 0, "arange", "step must be nonzero");
  KILN_CHECK((st > 0 && e >= s) || (st < 0 && e <= s), "arange", "upper bound ", e, " and lower bound ", s,
             " are inconsistent with step sign ", st);
  const double count = std::ceil((e - s) / st);
  KILN_CHECK(count < 9223372036854775808.0, "arange", "the range ", s, " -> ", e, " with step ", st, " holds ",
             count, " elements, more than int64 can count");
  const int64_t n = int64_t(count);
  const bool integral = !start.is_floating() && !end.is_floating() && !step.is_floating();
  const DType dt = opts.dtype_given_ ? opts.dtype_ : integral ? DType::Int64 : DType::Float32;
  Tensor t = empty({n}, opts.dtype(dt).requires_grad(false));
  if (n > 0) {
    RangeAttrs attrs{s, st};
    Tensor out[] = {t};
    dispatch(OpId::Arange, t.dtype(), {}, out, &attrs);
  }
  return finish(t, opts);
}

Tensor linspace(double start, double end, int64_t steps, TensorOptions opts) {
  const OpNameScope scope("linspace");
  KILN_CHECK(steps >= 0, "linspace", "number of steps must be non-negative, got ", steps);
  Tensor t = empty({steps}, TensorOptions(opts).requires_grad(false));
  if (steps > 0) {
    RangeAttrs attrs{start, steps > 1 ? (end - start) / double(steps - 1) : 0.0};
    Tensor out[] = {t};
    dispatch(OpId::Arange, t.dtype(), {}, out, &attrs);
  }
  return finish(t, opts);
}

Tensor eye(int64_t n, int64_t m, TensorOptions opts) {
  const OpNameScope scope("eye");
  if (m < 0) m = n;
  KILN_CHECK(n >= 0, "eye", "n must be non-negative, got ", n);
  Tensor t = zeros({n, m}, TensorOptions(opts).requires_grad(false));
  const int64_t k = std::min(n, m);
  if (k > 0) t.as_strided({k}, {m + 1}, 0).fill_(1);
  return finish(t, opts);
}

Tensor rand(const Shape& shape, TensorOptions opts, Generator* gen) {
  const OpNameScope scope("rand");
  KILN_CHECK(is_floating(opts.dtype_), "rand", "expected a floating dtype, got ", dtype_name(opts.dtype_));
  return random_tensor(OpId::RandomUniform, shape, opts, gen, 0.0, 1.0);
}
Tensor randn(const Shape& shape, TensorOptions opts, Generator* gen) {
  const OpNameScope scope("randn");
  KILN_CHECK(is_floating(opts.dtype_), "randn", "expected a floating dtype, got ", dtype_name(opts.dtype_));
  return random_tensor(OpId::RandomNormal, shape, opts, gen, 0.0, 1.0);
}
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts, Generator* gen) {
  const OpNameScope scope("randint");
  KILN_CHECK(high > low, "randint", "expected low < high, got low=", low, ", high=", high);
  return random_tensor(OpId::RandomInt, shape, opts, gen, double(low), double(high));
}
Tensor rand_like(const Tensor& t, Generator* gen) {
  const OpNameScope scope("rand_like");
  return rand(t.shape(), TensorOptions(t.dtype()).device(t.device()), gen);
}
Tensor randn_like(const Tensor& t, Generator* gen) {
  const OpNameScope scope("randn_like");
  return randn(t.shape(), TensorOptions(t.dtype()).device(t.device()), gen);
}

template <typename T>
Tensor tensor(const std::vector<T>& values, const Shape& shape, std::optional<TensorOptions> opts) {
  const OpNameScope scope("tensor");
  const Shape s = shape.empty() ? Shape{int64_t(values.size())} : shape;
  check_shape("tensor", s);
  KILN_CHECK(numel_of(s) == int64_t(values.size()), "tensor", "shape ", shape_str(s), " needs ", numel_of(s),
             " values, got ", values.size());
  // Build on the host in T's own dtype, then convert and move as asked.
  Tensor host = empty(s, TensorOptions(dtype_of<T>::value).device(kCpu));
  if constexpr (std::is_same_v<T, bool>) {
    bool* p = static_cast<bool*>(host.data_ptr());
    for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  } else if (!values.empty()) {
    std::memcpy(host.data_ptr(), values.data(), values.size() * sizeof(T));
  }
  const TensorOptions o = opts ? *opts : TensorOptions(dtype_of<T>::value);
  return finish(host.to(o.resolved_device()).to(o.dtype_), o);
}
template Tensor tensor<float>(const std::vector<float>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor<double>(const std::vector<double>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor<Half>(const std::vector<Half>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor<BFloat16>(const std::vector<BFloat16>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor<int32_t>(const std::vector<int32_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor<int64_t>(const std::vector<int64_t>&, const Shape&, std::optional<TensorOptions>);
template Tensor tensor<bool>(const std::vector<bool>&, const Shape&, std::optional<TensorOptions>);

Tensor scalar_tensor(Scalar value, TensorOptions opts) {
  const OpNameScope scope("scalar_tensor");
  return full({}, value, opts);
}

Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device, std::function<void(void*)> deleter) {
  const OpNameScope scope("from_blob");
  check_shape("from_blob", shape);
  auto impl = std::make_shared<TensorImpl>();
  const size_t nbytes = checked_nbytes(numel_of(shape), element_size(dtype), shape);
  impl->storage = std::make_shared<StorageImpl>(data, nbytes, device, std::move(deleter));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

}  // namespace kiln
