// Sequential and ModuleList: children named by position.
#include "kiln/nn/layers.h"

namespace kiln::nn {

namespace {
int64_t wrap_index(const char* what, int64_t index, size_t size) {
  const int64_t n = int64_t(size);
  KILN_CHECK(index >= -n && index < n, what, "index ", index, " out of range for ", n, " modules");
  return index < 0 ? index + n : index;
}
}  // namespace

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [name, m] : named_children()) y = m->forward(y);
  return y;
}

void Sequential::push_back(std::shared_ptr<Module> m) { add_child(std::to_string(size()), std::move(m)); }

std::shared_ptr<Module> Sequential::operator[](int64_t index) const {
  return named_children()[size_t(wrap_index("Sequential", index, size()))].second;
}

void ModuleList::push_back(std::shared_ptr<Module> m) { add_child(std::to_string(size()), std::move(m)); }

std::shared_ptr<Module> ModuleList::operator[](int64_t index) const {
  return named_children()[size_t(wrap_index("ModuleList", index, size()))].second;
}

}  // namespace kiln::nn
