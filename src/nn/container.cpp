// Sequential and ModuleList: children named by position (or by the user).
#include "kiln/nn/container.h"

namespace kiln::nn {

namespace {
int64_t wrap_index(const char* what, int64_t index, size_t size) {
  const int64_t n = int64_t(size);
  KILN_CHECK(index >= -n && index < n, what, "index ", index, " out of range for ", n, " modules");
  return index < 0 ? index + n : index;
}
}  // namespace

Tensor SequentialImpl::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& e : entries_) y = e.forward(y);
  return y;
}

void SequentialImpl::add(const std::string& name, detail::AnyEntry entry) {
  add_child(name, entry.module);
  entries_.push_back(std::move(entry));
}

void SequentialImpl::extend(const SequentialImpl& other) {
  for (const auto& e : other.entries_) add(std::to_string(size()), e);
}

std::shared_ptr<Module> SequentialImpl::ptr(int64_t index) const {
  return entries_[size_t(wrap_index("Sequential", index, size()))].module;
}

void ModuleListImpl::add(std::shared_ptr<Module> m) {
  add_child(std::to_string(size()), m);
  modules_.push_back(std::move(m));
}

std::shared_ptr<Module> ModuleListImpl::ptr(int64_t index) const {
  return modules_[size_t(wrap_index("ModuleList", index, size()))];
}

FunctionalImpl::FunctionalImpl(Function function) : function_(std::move(function)) {
  KILN_CHECK(function_ != nullptr, "Functional", "the function is empty");
}

}  // namespace kiln::nn
