#pragma once
// ModuleHolder<Impl> and KILN_MODULE: libtorch's module holders. `KILN_MODULE(Net)`
// after `struct NetImpl : nn::Module {...}` declares `Net`, a shared handle to a NetImpl:
//   Net net;                        // makes a NetImpl with its default constructor
//   Net net(3, 4);                  // NetImpl(3, 4)
//   nn::Linear fc{nullptr};         // empty; assign later: fc = register_module("fc", nn::Linear(3, 4))
//   net->parameters(); net(x);      // -> reaches the module, () calls its forward
// Copies share the module, as copies of a std::shared_ptr do.
#include <concepts>
#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "kiln/error.h"

namespace kiln::nn {

namespace detail {
std::string demangled_type_name(const char* mangled);  // "kiln::nn::LinearImpl"
}  // namespace detail

template <class Impl>
class ModuleHolder {
 public:
  using ContainedType = Impl;

  // Default-constructs the module (only for modules with a default constructor).
  ModuleHolder()
    requires std::is_default_constructible_v<Impl>
      : impl_(std::make_shared<Impl>()) {}
  ModuleHolder(std::nullptr_t) {}  // NOLINT: `nn::Linear fc{nullptr}` / `= nullptr`
  // Forwards the arguments to Impl's constructor.
  template <class Head, class... Tail>
    requires(!std::derived_from<std::remove_cvref_t<Head>, ModuleHolder> &&
             !std::same_as<std::remove_cvref_t<Head>, std::shared_ptr<Impl>> &&
             !std::same_as<std::remove_cvref_t<Head>, std::nullptr_t> && std::constructible_from<Impl, Head, Tail...>)
  explicit ModuleHolder(Head&& head, Tail&&... tail)
      : impl_(std::make_shared<Impl>(std::forward<Head>(head), std::forward<Tail>(tail)...)) {}
  ModuleHolder(std::shared_ptr<Impl> module) : impl_(std::move(module)) {}  // NOLINT

  explicit operator bool() const noexcept { return impl_ != nullptr; }
  bool is_empty() const noexcept { return impl_ == nullptr; }

  Impl* operator->() const { return get(); }
  Impl& operator*() const { return *get(); }
  Impl* get() const {
    KILN_CHECK(impl_ != nullptr, "ModuleHolder", "accessing an empty ",
               detail::demangled_type_name(typeid(Impl).name()),
               " holder: it was constructed with nullptr and never assigned a module");
    return impl_.get();
  }
  const std::shared_ptr<Impl>& ptr() const { return impl_; }

  // net(x, ...) calls net->forward(x, ...).
  template <class... Args>
  decltype(auto) operator()(Args&&... args) const {
    return get()->forward(std::forward<Args>(args)...);
  }
  // seq[i], list[i]: the module's own operator[].
  template <class Arg>
  decltype(auto) operator[](Arg&& arg) const {
    return (*get())[std::forward<Arg>(arg)];
  }

 protected:
  std::shared_ptr<Impl> impl_;
};

template <class Impl>
std::ostream& operator<<(std::ostream& os, const ModuleHolder<Impl>& holder) {
  return os << *holder;
}

template <class T>
concept IsModuleHolder = requires { typename std::remove_cvref_t<T>::ContainedType; } &&
                         std::derived_from<std::remove_cvref_t<T>,
                                           ModuleHolder<typename std::remove_cvref_t<T>::ContainedType>>;

}  // namespace kiln::nn

// Declares `Name` as a holder of `ImplType`.
#define KILN_MODULE_IMPL(Name, ImplType)                               \
  class Name : public ::kiln::nn::ModuleHolder<ImplType> {             \
   public:                                                             \
    using ::kiln::nn::ModuleHolder<ImplType>::ModuleHolder;            \
    using Impl = ImplType;                                             \
  }

// Declares `Name` as a holder of `Name##Impl` (libtorch's TORCH_MODULE).
#define KILN_MODULE(Name) KILN_MODULE_IMPL(Name, Name##Impl)
