#pragma once
// StateDict: an ordered map from dotted names ("0.weight", "state.3.exp_avg") to
// tensors, the currency of Module::state_dict(), Optimizer::state_dict() and the
// safetensors checkpoints. Insertion order is kept, as in PyTorch's OrderedDict.
#include <cstddef>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

class StateDict {
 public:
  using Item = std::pair<std::string, Tensor>;

  StateDict() = default;
  // From and to the std::map the safetensors functions take (kiln/io/safetensors.h):
  // save_safetensors(path, model.state_dict()); model.load_state_dict(load_safetensors(path)).
  StateDict(const std::map<std::string, Tensor>& m) {  // NOLINT: implicit by design
    for (const auto& [k, t] : m) insert(k, t);
  }
  operator std::map<std::string, Tensor>() const {  // NOLINT
    return std::map<std::string, Tensor>(items_.begin(), items_.end());
  }
  const std::vector<Item>& items() const { return items_; }

  // Adds or replaces; a replaced key keeps its place.
  void insert(const std::string& key, Tensor value) {
    auto it = index_.find(key);
    if (it != index_.end()) {
      items_[it->second].second = std::move(value);
      return;
    }
    index_.emplace(key, items_.size());
    items_.emplace_back(key, std::move(value));
  }
  bool contains(const std::string& key) const { return index_.count(key) != 0; }
  size_t count(const std::string& key) const { return index_.count(key); }
  const Tensor& at(const std::string& key) const {
    auto it = index_.find(key);
    KILN_CHECK(it != index_.end(), "state_dict", "no key '", key, "'");
    return items_[it->second].second;
  }
  const Tensor* find(const std::string& key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &items_[it->second].second;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> k;
    k.reserve(items_.size());
    for (const auto& item : items_) k.push_back(item.first);
    return k;
  }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  auto begin() const { return items_.begin(); }
  auto end() const { return items_.end(); }

 private:
  std::vector<Item> items_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace kiln
