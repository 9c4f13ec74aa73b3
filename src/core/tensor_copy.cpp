// Tensor methods that move or copy data: contiguous, clone, to, copy_, fill_, item.
#include <algorithm>
#include <cstring>

#include "kiln/backend.h"
#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/profiler.h"
#include "kiln/tensor.h"
#include "src/autograd/record.h"
#include "src/core/memory_format.h"

namespace kiln {

namespace {
// Raw byte copy of a contiguous tensor into a contiguous tensor of the same dtype and
// size on another device, through the GPU side's backend.
void copy_bytes_across(const Tensor& dst, const Tensor& src, bool non_blocking) {
  const Device gpu = dst.device().is_gpu() ? dst.device() : src.device();
  Backend* b = backend_for(gpu.type);
  if (dst.device().is_gpu() && src.device().is_gpu() && dst.device().type != src.device().type) {
    // Two different GPU backends: go through the host.
    Tensor host = src.to(kCpu);
    copy_bytes_across(dst, host, false);
    return;
  }
  // Recorded as a copy_ op queued on the GPU side (host-device copies in the profile).
  const profiler::OpScope profile_scope(OpId::Copy, src.device(), gpu, {&src, 1}, {&dst, 1});
  b->copy(dst.data_ptr(), dst.device(), src.data_ptr(), src.device(), dst.nbytes(), non_blocking);
}
}  // namespace

Tensor Tensor::contiguous(MemoryFormat fmt) const {
  const OpNameScope scope("contiguous");
  KILN_CHECK(fmt != MemoryFormat::Preserve, "contiguous", "preserve_format is not supported by contiguous()");
  if (is_contiguous(fmt)) return *this;
  KILN_CHECK(fmt != MemoryFormat::ChannelsLast || dim() == 4, "contiguous",
             "required rank 4 tensor to use channels_last format, got shape ", shape_str(shape()));
  return clone(fmt);
}

Tensor Tensor::clone(MemoryFormat fmt) const {
  const OpNameScope scope("clone");
  Tensor out = empty_like(*this, fmt);
  Tensor src = detach();
  out.copy_(src);
  return autograd::record_copy(out, *this);
}

Tensor Tensor::to(DType t) const {
  const OpNameScope scope("to");
  if (t == dtype()) return *this;
  Tensor out = empty_like(*this, TensorOptions(t).device(device()));
  out.copy_(detach());
  return autograd::record_copy(out, *this);
}

Tensor Tensor::to(Device d, bool non_blocking) const {
  const OpNameScope scope("to");
  if (d == device()) return *this;
  Tensor out = empty_like(*this, TensorOptions(dtype()).device(d));
  out.copy_(detach(), non_blocking);
  return autograd::record_copy(out, *this);
}

// PyTorch's rule: no copy when the tensor already suggests fmt (so a transposed matrix
// stays as it is under to(Contiguous)); otherwise a copy in fmt, which, unlike
// contiguous(fmt), also restrides ambiguous size-1 dims.
Tensor Tensor::to(MemoryFormat fmt) const {
  const OpNameScope scope("to");
  if (fmt == MemoryFormat::Preserve || suggest_memory_format() == fmt) return *this;
  return clone(fmt);
}

Tensor Tensor::to(Device d, DType t) const { return to(d).to(t); }

Tensor& Tensor::copy_(const Tensor& src, bool non_blocking) {
  const OpNameScope scope("copy_");
  KILN_CHECK(src.defined(), "copy_", "source tensor is undefined");
  KILN_CHECK(broadcast_shapes("copy_", shape(), src.shape()) == shape(), "copy_", "source of shape ",
             shape_str(src.shape()), " does not broadcast to destination shape ", shape_str(shape()));
  if (autograd::inplace_through_autograd("copy_", *this, {&src}, [&](const Tensor&) {
        return src.to(device()).to(dtype()).expand(shape()).clone();
      }, /*needs_old_value=*/false))
    return *this;
  Tensor s = src.expand(shape());
  if (numel() == 0) return *this;
  if (s.device() == device()) {
    const Tensor in[] = {s};
    Tensor out[] = {*this};
    dispatch(OpId::Copy, in, out);
  } else {
    // Make the source dense in our layout and of our dtype on its own device, move the
    // bytes, then scatter into our strides if they are not dense.
    const bool same_dense_layout =
        s.strides() == strides() && is_non_overlapping_and_dense() && s.is_non_overlapping_and_dense();
    const Tensor packed = same_dense_layout ? s.to(dtype()) : s.contiguous().to(dtype());
    if (same_dense_layout || is_contiguous()) {
      copy_bytes_across(*this, packed, non_blocking);
    } else {
      Tensor staging = empty(shape(), TensorOptions(dtype()).device(device()));
      copy_bytes_across(staging, packed, false);
      const Tensor in[] = {staging};
      Tensor out[] = {*this};
      dispatch(OpId::Copy, in, out);
    }
  }
  storage()->bump_version();
  return *this;
}

Tensor& Tensor::fill_(Scalar value) {
  const OpNameScope scope("fill_");
  KILN_CHECK(value.fits(dtype()), "fill_", "value ", value.to_double(), " cannot be converted to ", dtype_name(dtype()),
             " without overflow (tensor of shape ", shape_str(shape()), ")");
  if (autograd::inplace_through_autograd("fill_", *this, {}, [&](const Tensor&) {
        return full(shape(), value, TensorOptions(dtype()).device(device()));
      }, /*needs_old_value=*/false))
    return *this;
  if (numel() == 0) return *this;
  ScalarAttrs attrs{value};
  Tensor out[] = {*this};
  dispatch(OpId::Fill, dtype(), {}, out, &attrs);
  storage()->bump_version();
  return *this;
}

Scalar Tensor::item() const {
  KILN_CHECK(numel() == 1, "item", "a tensor with ", numel(), " elements (shape ", shape_str(shape()),
             ") cannot be converted to a scalar");
  Tensor host = to(kCpu).contiguous();
  return KILN_DISPATCH_DTYPE(dtype(), "item", [&]<typename T>() -> Scalar {
    return Scalar(*static_cast<const T*>(host.data_ptr()));
  });
}

Scalar Tensor::at(std::initializer_list<int64_t> index) const {
  const OpNameScope scope("at");
  KILN_CHECK(int64_t(index.size()) == dim(), "at", "expected ", dim(), " indices for shape ", shape_str(shape()),
             ", got ", index.size());
  Tensor v = *this;
  for (int64_t i : index) v = v.select(0, i);
  return v.item();
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor host = to(kCpu).to(dtype_of<T>::value).contiguous();
  std::vector<T> out(size_t(host.numel()));
  if (!out.empty()) {
    if constexpr (std::is_same_v<T, bool>) {
      const bool* p = static_cast<const bool*>(host.data_ptr());
      for (size_t i = 0; i < out.size(); ++i) out[i] = p[i];
    } else {
      std::memcpy(out.data(), host.data_ptr(), out.size() * sizeof(T));
    }
  }
  return out;
}
template std::vector<float> Tensor::to_vector<float>() const;
template std::vector<double> Tensor::to_vector<double>() const;
template std::vector<Half> Tensor::to_vector<Half>() const;
template std::vector<BFloat16> Tensor::to_vector<BFloat16>() const;
template std::vector<int32_t> Tensor::to_vector<int32_t>() const;
template std::vector<int64_t> Tensor::to_vector<int64_t>() const;
template std::vector<bool> Tensor::to_vector<bool>() const;

}  // namespace kiln
