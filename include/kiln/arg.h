#pragma once
// KILN_ARG(T, name): a chainable option, as libtorch's TORCH_ARG. Options classes use it
// so that `Conv2dOptions(1, 10, 5).stride(2).bias(false)` sets fields and
// `options.stride()` reads them.
#include <utility>

#define KILN_ARG(T, name)                                        \
 public:                                                         \
  inline auto name(const T& new_##name)->decltype(*this) {       \
    this->name##_ = new_##name;                                  \
    return *this;                                                \
  }                                                              \
  inline auto name(T&& new_##name)->decltype(*this) {            \
    this->name##_ = std::move(new_##name);                       \
    return *this;                                                \
  }                                                              \
  inline const T& name() const noexcept { return this->name##_; } \
  inline T& name() noexcept { return this->name##_; }            \
                                                                 \
 private:                                                        \
  T name##_
