#pragma once
// OrderedDict<Key, Value>: insertion-ordered map with libtorch's interface, returned by
// Module::named_parameters/named_buffers/named_children/named_modules.
//   for (auto& p : net->named_parameters()) std::cout << p.key() << p.value().sizes();
//   for (auto& [name, t] : net->named_parameters()) ...   // structured bindings work too
#include <cstddef>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "kiln/error.h"

namespace kiln {

template <class Key, class Value>
class OrderedDict {
 public:
  // Two public members, so that `auto& [k, v] = item` works; key()/value() as libtorch.
  struct Item {
    Key first;
    Value second;
    const Key& key() const noexcept { return first; }
    Value& value() noexcept { return second; }
    const Value& value() const noexcept { return second; }
    std::pair<Key, Value> pair() const { return {first, second}; }
  };

  OrderedDict() = default;
  explicit OrderedDict(std::string key_description) : key_description_(std::move(key_description)) {}

  // Adds key; raises kiln::Error if it is already present.
  Value& insert(Key key, Value value) {
    KILN_CHECK(index_.count(key) == 0, "OrderedDict", key_description_, " '", key, "' already defined");
    index_.emplace(key, items_.size());
    items_.push_back(Item{std::move(key), std::move(value)});
    return items_.back().second;
  }
  // Adds or replaces (a replaced key keeps its place).
  Value& insert_or_assign(Key key, Value value) {
    auto it = index_.find(key);
    if (it != index_.end()) return items_[it->second].second = std::move(value);
    return insert(std::move(key), std::move(value));
  }

  Value& operator[](const Key& key) { return at_key(key); }
  const Value& operator[](const Key& key) const { return const_cast<OrderedDict*>(this)->at_key(key); }
  Item& operator[](size_t index) { return at_index(index); }
  const Item& operator[](size_t index) const { return const_cast<OrderedDict*>(this)->at_index(index); }
  Value* find(const Key& key) {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &items_[it->second].second;
  }
  const Value* find(const Key& key) const { return const_cast<OrderedDict*>(this)->find(key); }
  bool contains(const Key& key) const { return index_.count(key) != 0; }

  size_t size() const noexcept { return items_.size(); }
  bool is_empty() const noexcept { return items_.empty(); }
  bool empty() const noexcept { return items_.empty(); }
  const std::vector<Item>& items() const noexcept { return items_; }
  std::vector<Key> keys() const {
    std::vector<Key> out;
    out.reserve(items_.size());
    for (const auto& i : items_) out.push_back(i.first);
    return out;
  }
  std::vector<Value> values() const {
    std::vector<Value> out;
    out.reserve(items_.size());
    for (const auto& i : items_) out.push_back(i.second);
    return out;
  }
  Item& front() { return at_index(0); }
  Item& back() { return at_index(items_.size() - 1); }
  void clear() {
    items_.clear();
    index_.clear();
  }

  auto begin() noexcept { return items_.begin(); }
  auto end() noexcept { return items_.end(); }
  auto begin() const noexcept { return items_.begin(); }
  auto end() const noexcept { return items_.end(); }

 private:
  Value& at_key(const Key& key) {
    auto it = index_.find(key);
    KILN_CHECK(it != index_.end(), "OrderedDict", key_description_, " '", key, "' is not defined");
    return items_[it->second].second;
  }
  Item& at_index(size_t index) {
    KILN_CHECK(index < items_.size(), "OrderedDict", "index ", index, " out of range for ", items_.size(),
               " items");
    return items_[index];
  }

  std::string key_description_ = "key";
  std::vector<Item> items_;
  std::unordered_map<Key, size_t> index_;
};

}  // namespace kiln
