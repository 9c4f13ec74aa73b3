#pragma once
// Containers: Sequential, ModuleList and Functional (libtorch's). Entries may be holders
// (nn::Linear(3, 4)), shared_ptrs or module values (moved in); a Sequential calls each
// entry's own forward(Tensor), so user modules whose forward is not the virtual one
// (`Tensor forward(Tensor x)` in a NetImpl) run too.
#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "kiln/nn/module.h"

namespace kiln::nn {

template <class M>
concept ModuleValue = std::derived_from<std::remove_cvref_t<M>, Module>;

namespace detail {

using TensorForward = std::function<Tensor(const Tensor&)>;

// A module entry as a Module pointer plus its own one-tensor forward.
struct AnyEntry {
  std::shared_ptr<Module> module;
  TensorForward forward;
};

template <class T>
TensorForward forward_of(const std::shared_ptr<T>& m) {
  if constexpr (requires(T& t, const Tensor& x) {
                  { t.forward(x) } -> std::convertible_to<Tensor>;
                }) {
    T* raw = m.get();  // the container owns the module through `module`
    return [raw](const Tensor& x) -> Tensor { return raw->forward(x); };
  } else {
    Module* raw = m.get();  // type unknown here: the virtual one-tensor forward
    return [raw](const Tensor& x) { return raw->forward(x); };
  }
}

template <class M>
AnyEntry make_entry(M&& m) {
  using D = std::remove_cvref_t<M>;
  if constexpr (IsModuleHolder<D>) {
    auto p = m.ptr();
    KILN_CHECK(p != nullptr, "Sequential", "cannot add an empty module holder");
    return {p, forward_of(p)};
  } else if constexpr (ModuleValue<D>) {
    auto p = std::make_shared<D>(std::forward<M>(m));
    return {p, forward_of(p)};
  } else {
    static_assert(requires { typename D::element_type; }, "expected a module, a holder or a shared_ptr to one");
    using T = typename D::element_type;
    static_assert(std::derived_from<T, Module>, "expected a shared_ptr to a Module");
    KILN_CHECK(m != nullptr, "Sequential", "cannot add a null module");
    return {m, forward_of<T>(m)};
  }
}

// The module class behind T: T::ContainedType for a holder, else T.
template <class T>
struct module_class { using type = T; };
template <IsModuleHolder T>
struct module_class<T> { using type = typename T::ContainedType; };

template <class M>
concept AnyModuleArg = ModuleValue<M> || IsModuleHolder<M> ||
                       std::convertible_to<std::remove_cvref_t<M>, std::shared_ptr<Module>>;

}  // namespace detail

// A named entry: nn::Sequential({{"conv", nn::Conv2d(1, 8, 3)}, {"relu", nn::ReLU()}}).
struct NamedModule {
  template <detail::AnyModuleArg M>
  NamedModule(std::string name, M&& m) : name(std::move(name)), entry(detail::make_entry(std::forward<M>(m))) {}
  std::string name;
  detail::AnyEntry entry;
};

// Modules applied in order; children are named "0", "1", ... unless named.
class SequentialImpl : public Module {
 public:
  SequentialImpl() = default;
  template <class... Ms>
    requires(sizeof...(Ms) > 0 && (detail::AnyModuleArg<Ms> && ...) &&
             !(sizeof...(Ms) == 1 && (std::same_as<std::remove_cvref_t<Ms>, SequentialImpl> && ...)))
  explicit SequentialImpl(Ms&&... ms) {
    (push_back(std::forward<Ms>(ms)), ...);
  }
  explicit SequentialImpl(std::initializer_list<NamedModule> named) {
    for (const auto& n : named) add(n.name, n.entry);
  }
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;

  template <detail::AnyModuleArg M>
  void push_back(M&& m) {
    add(std::to_string(size()), detail::make_entry(std::forward<M>(m)));
  }
  template <detail::AnyModuleArg M>
  void push_back(const std::string& name, M&& m) {
    add(name, detail::make_entry(std::forward<M>(m)));
  }
  // Appends every entry of other (sharing its modules).
  void extend(const SequentialImpl& other);

  size_t size() const { return entries_.size(); }
  bool is_empty() const { return entries_.empty(); }
  std::shared_ptr<Module> operator[](int64_t index) const { return ptr(index); }
  std::shared_ptr<Module> ptr(int64_t index) const;
  template <class T>
  auto ptr(int64_t index) const {
    return checked<T>(index);
  }
  // Entry `index` as a T (a layer class, or a holder such as nn::Linear); kiln::Error if not.
  template <class T>
  auto& at(int64_t index) const {
    return *checked<T>(index);
  }

 private:
  void add(const std::string& name, detail::AnyEntry entry);
  template <class T>
  auto checked(int64_t index) const {
    using Impl = typename detail::module_class<T>::type;
    auto m = std::dynamic_pointer_cast<Impl>(ptr(index));
    KILN_CHECK(m != nullptr, "Sequential", "module ", index, " is a ", ptr(index)->type_name(),
               ", not the type asked for");
    return m;
  }
  std::vector<detail::AnyEntry> entries_;
};

class Sequential : public ModuleHolder<SequentialImpl> {
 public:
  using ModuleHolder<SequentialImpl>::ModuleHolder;
  using Impl = SequentialImpl;
  Sequential() : ModuleHolder(std::make_shared<SequentialImpl>()) {}
  Sequential(std::initializer_list<NamedModule> named)  // NOLINT
      : ModuleHolder(std::make_shared<SequentialImpl>(named)) {}
};

// Holds modules (named "0", "1", ...) without a forward of its own.
class ModuleListImpl : public Module {
 public:
  ModuleListImpl() = default;
  template <class... Ms>
    requires(sizeof...(Ms) > 0 && (detail::AnyModuleArg<Ms> && ...) &&
             !(sizeof...(Ms) == 1 && (std::same_as<std::remove_cvref_t<Ms>, ModuleListImpl> && ...)))
  explicit ModuleListImpl(Ms&&... ms) {
    (push_back(std::forward<Ms>(ms)), ...);
  }
  std::string type_name() const override { return "ModuleList"; }
  template <detail::AnyModuleArg M>
  void push_back(M&& m) {
    add(detail::make_entry(std::forward<M>(m)).module);
  }
  size_t size() const { return child_list().size(); }
  bool is_empty() const { return child_list().empty(); }
  std::shared_ptr<Module> operator[](int64_t index) const { return ptr(index); }
  std::shared_ptr<Module> ptr(int64_t index) const;
  template <class T>
  auto ptr(int64_t index) const {
    return checked<T>(index);
  }
  template <class T>
  auto& at(int64_t index) const {
    return *checked<T>(index);
  }
  auto begin() const { return modules_.begin(); }
  auto end() const { return modules_.end(); }

 private:
  void add(std::shared_ptr<Module> m);
  template <class T>
  auto checked(int64_t index) const {
    using Impl = typename detail::module_class<T>::type;
    auto m = std::dynamic_pointer_cast<Impl>(ptr(index));
    KILN_CHECK(m != nullptr, "ModuleList", "module ", index, " is a ", ptr(index)->type_name(),
               ", not the type asked for");
    return m;
  }
  std::vector<std::shared_ptr<Module>> modules_;
};
KILN_MODULE(ModuleList);

// Wraps a function as a module: nn::Functional(kiln::relu), or with trailing arguments
// bound, nn::Functional(kiln::log_softmax, 1).
class FunctionalImpl : public Module {
 public:
  using Function = std::function<Tensor(Tensor)>;
  explicit FunctionalImpl(Function function);
  template <class F, class... Args>
    requires(sizeof...(Args) > 0)
  explicit FunctionalImpl(F function, Args&&... args)
      : FunctionalImpl(Function([function, ... bound = std::forward<Args>(args)](Tensor x) {
          return function(std::move(x), bound...);
        })) {}
  std::string type_name() const override { return "Functional"; }
  Tensor forward(const Tensor& x) override { return function_(x); }

 private:
  Function function_;
};
KILN_MODULE(Functional);

}  // namespace kiln::nn
