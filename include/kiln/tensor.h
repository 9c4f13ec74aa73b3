#pragma once
// kiln::Tensor: a strided view (shape, strides, offset, dtype) over shared storage on
// one device, with optional autograd state. Copying a Tensor copies the handle, as in
// PyTorch; clone() copies the data.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/error.h"
#include "kiln/scalar.h"
#include "kiln/shape.h"
#include "kiln/storage.h"

namespace kiln {

struct AutogradMeta;  // src/autograd: grad, grad_fn, requires_grad
class Generator;

// How a tensor's elements are laid out in memory (PyTorch's torch.memory_format).
// Contiguous: row-major. ChannelsLast: a 4-D [N, C, H, W] tensor stored as NHWC, strides
// (H*W*C, 1, W*C, C). Preserve (clone, to, *_like): keep the source's strides when it is
// dense and non-overlapping, else its permutation of dims (PyTorch's rules).
enum class MemoryFormat { Contiguous, ChannelsLast, Preserve };
const char* memory_format_name(MemoryFormat f);

// dtype, device and requires_grad for factories: zeros({2, 3}, DType::Float64).
struct TensorOptions {
  DType dtype_ = DType::Float32;
  bool dtype_given_ = false;       // false: dtype_ is the default (arange infers its own, as PyTorch)
  std::optional<Device> device_;   // empty: DeviceManager's current device
  bool requires_grad_ = false;

  TensorOptions() = default;
  TensorOptions(DType t) : dtype_(t), dtype_given_(true) {}  // NOLINT
  TensorOptions(Device d) : device_(d) {}               // NOLINT
  TensorOptions(DeviceType d) : device_(Device(d)) {}   // NOLINT
  TensorOptions dtype(DType t) const { auto o = *this; o.dtype_ = t; o.dtype_given_ = true; return o; }
  TensorOptions device(Device d) const { auto o = *this; o.device_ = d; return o; }
  TensorOptions requires_grad(bool r = true) const { auto o = *this; o.requires_grad_ = r; return o; }
  Device resolved_device() const;
};

struct TensorImpl {
  Storage storage;
  Shape shape;
  Strides strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;
  std::shared_ptr<AutogradMeta> autograd;  // null until autograd touches the tensor
};

class Tensor {
 public:
  Tensor() = default;  // undefined: an absent optional tensor
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- metadata
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& sizes() const { return impl().shape; }
  int64_t size(int64_t dim) const;
  const Strides& strides() const { return impl().strides; }
  int64_t stride(int64_t dim) const;
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return int64_t(impl().shape.size()); }
  int64_t numel() const { return numel_of(impl().shape); }
  DType dtype() const { return impl().dtype; }
  size_t element_size() const { return kiln::element_size(dtype()); }
  size_t nbytes() const { return size_t(numel()) * element_size(); }
  Device device() const { return impl().storage->device(); }
  // This tensor's dtype and device (requires_grad false), for factories: zeros(s, x.options()).
  TensorOptions options() const { return TensorOptions().dtype(dtype()).device(device()); }
  DType scalar_type() const { return dtype(); }  // libtorch's name
  bool is_contiguous() const;
  // Contiguous in that format; ChannelsLast is false for non-4-D tensors; Preserve throws.
  bool is_contiguous(MemoryFormat fmt) const;
  // ChannelsLast when the strides look like NHWC (PyTorch's rule, ambiguous size-1 cases
  // are Contiguous), else Contiguous. Ops pick their output layout from it.
  MemoryFormat suggest_memory_format() const;
  bool is_non_overlapping_and_dense() const;
  const Storage& storage() const { return impl().storage; }
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }
  bool shares_storage(const Tensor& o) const { return storage() == o.storage(); }
  std::string str() const;  // "Tensor[2, 3] float32 cpu"

  // Raw pointer to element 0 of the view (device memory for GPU tensors).
  void* data_ptr() const;
  template <typename T> T* data() const {
    KILN_CHECK(dtype_of<T>::value == dtype(), "data", "tensor is ", dtype_name(dtype()), ", asked for ",
               dtype_name(dtype_of<T>::value));
    return static_cast<T*>(data_ptr());
  }

  // ---- element access (any device: copies through the host for GPU tensors)
  Scalar item() const;                       // the one element of a 1-element tensor
  template <typename T> T item() const { return item().to<T>(); }
  Scalar at(std::initializer_list<int64_t> index) const;  // one element
  template <typename T> std::vector<T> to_vector() const;  // all elements, row-major, as T

  // ---- views (share storage; no copy)
  Tensor view(const Shape& shape) const;      // -1 infers one dim; needs compatible strides
  Tensor reshape(const Shape& shape) const;   // a view when possible, else a copy
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;                           // 2-D transpose (0-D, 1-D unchanged)
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, int64_t start, int64_t end, int64_t step = 1) const;  // PyTorch clamps end
  Tensor select(int64_t dim, int64_t index) const;
  Tensor operator[](int64_t index) const { return select(0, index); }
  Tensor expand(const Shape& shape) const;    // -1 keeps a dim; new dims in front
  Tensor expand_as(const Tensor& other) const { return expand(other.shape()); }
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor unflatten(int64_t dim, const Shape& sizes) const;
  Tensor as_strided(const Shape& shape, const Strides& strides, int64_t offset) const;
  Tensor contiguous(MemoryFormat fmt = MemoryFormat::Contiguous) const;  // this tensor when already so
  Tensor detach() const;                      // same data, no autograd history

  // ---- copies and conversion
  // clone and to() keep the memory format (MemoryFormat::Preserve), as in PyTorch.
  Tensor clone(MemoryFormat fmt = MemoryFormat::Preserve) const;
  Tensor to(DType dtype) const;               // this tensor when already of that dtype
  Tensor to(Device device, bool non_blocking = false) const;
  Tensor to(Device device, DType dtype) const;
  // This tensor when it already suggests fmt (or fmt is Preserve), else clone(fmt).
  Tensor to(MemoryFormat fmt) const;
  Tensor cpu() const { return to(kCpu); }
  Tensor cuda(int index = 0) const { return to(Device(DeviceType::Cuda, index)); }
  Tensor& copy_(const Tensor& src, bool non_blocking = false);  // broadcasts src, casts dtype, crosses devices
  Tensor& fill_(Scalar value);
  Tensor& zero_() { return fill_(0); }

  // ---- autograd (src/autograd)
  bool requires_grad() const;
  Tensor& requires_grad_(bool required = true);
  Tensor grad() const;                        // undefined when none
  void set_grad(const Tensor& g);
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  void retain_grad() const;
  bool is_leaf() const;
  uint64_t version() const { return storage()->version(); }
  AutogradMeta* autograd_meta() const { return impl().autograd.get(); }
  std::shared_ptr<AutogradMeta>& mutable_autograd_meta() { return impl().autograd; }

  // ---- math as methods (defined in ops.h; PyTorch names)
  Tensor add(const Tensor& o, Scalar alpha = 1) const;
  Tensor sub(const Tensor& o, Scalar alpha = 1) const;
  Tensor mul(const Tensor& o) const;
  Tensor div(const Tensor& o) const;
  Tensor pow(Scalar e) const;
  Tensor neg() const;
  Tensor abs() const;
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor relu() const;
  Tensor sigmoid() const;
  Tensor tanh() const;
  Tensor sum() const;
  Tensor sum(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor mean() const;
  Tensor mean(const std::vector<int64_t>& dims, bool keepdim = false) const;
  Tensor max() const;
  Tensor min() const;
  Tensor argmax() const;
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor matmul(const Tensor& o) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;
  Tensor& add_(const Tensor& o, Scalar alpha = 1);
  Tensor& add_(Scalar s);
  Tensor& sub_(const Tensor& o, Scalar alpha = 1);
  Tensor& mul_(const Tensor& o);
  Tensor& mul_(Scalar s);
  Tensor& div_(const Tensor& o);
  Tensor& div_(Scalar s);
  Tensor& clamp_(std::optional<Scalar> min, std::optional<Scalar> max);
  Tensor& relu_();

  TensorImpl& impl() const {
    KILN_CHECK(impl_ != nullptr, "tensor", "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// ---- factories (creation.cpp)
Tensor empty(const Shape& shape, TensorOptions opts = {});
Tensor empty(const Shape& shape, TensorOptions opts, MemoryFormat fmt);  // Preserve throws
Tensor empty_strided(const Shape& shape, const Strides& strides, TensorOptions opts = {});
Tensor zeros(const Shape& shape, TensorOptions opts = {});
Tensor ones(const Shape& shape, TensorOptions opts = {});
Tensor full(const Shape& shape, Scalar value, TensorOptions opts = {});
// *_like keep t's memory format by default (PyTorch's MemoryFormat::Preserve).
Tensor empty_like(const Tensor& t, MemoryFormat fmt = MemoryFormat::Preserve);
Tensor empty_like(const Tensor& t, TensorOptions opts, MemoryFormat fmt = MemoryFormat::Preserve);
Tensor zeros_like(const Tensor& t, MemoryFormat fmt = MemoryFormat::Preserve);
Tensor ones_like(const Tensor& t, MemoryFormat fmt = MemoryFormat::Preserve);
Tensor full_like(const Tensor& t, Scalar value, MemoryFormat fmt = MemoryFormat::Preserve);
// Without a dtype in opts, arange's dtype is PyTorch's: int64 when start, end and step are
// all integers, float32 (the default dtype) when any is floating.
Tensor arange(Scalar end, TensorOptions opts = {});
Tensor arange(Scalar start, Scalar end, Scalar step = 1, TensorOptions opts = {});
Tensor linspace(double start, double end, int64_t steps, TensorOptions opts = {});
Tensor eye(int64_t n, int64_t m = -1, TensorOptions opts = {});
Tensor rand(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor randn(const Shape& shape, TensorOptions opts = {}, Generator* gen = nullptr);
Tensor randint(int64_t low, int64_t high, const Shape& shape, TensorOptions opts = DType::Int64,
               Generator* gen = nullptr);
Tensor rand_like(const Tensor& t, Generator* gen = nullptr);
Tensor randn_like(const Tensor& t, Generator* gen = nullptr);
// Copies host data; shape defaults to 1-D. Without opts the dtype is T's; with opts, opts' dtype.
template <typename T>
Tensor tensor(const std::vector<T>& values, const Shape& shape = {}, std::optional<TensorOptions> opts = {});
template <typename T>
Tensor tensor(std::initializer_list<T> values, const Shape& shape = {}, std::optional<TensorOptions> opts = {}) {
  return tensor(std::vector<T>(values), shape, opts);
}
Tensor scalar_tensor(Scalar value, TensorOptions opts = {});
// Wraps existing memory without copying; deleter (may be empty) runs when the last view goes.
Tensor from_blob(void* data, const Shape& shape, DType dtype, Device device = kCpu,
                 std::function<void(void*)> deleter = {});

}  // namespace kiln
