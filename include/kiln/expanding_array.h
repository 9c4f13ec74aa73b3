#pragma once
// ExpandingArray<N>: N sizes given as one number (expanded to all N) or as N numbers,
// as libtorch's kernel_size/stride/padding arguments: Conv2dOptions(1, 8, 3) or {3, 5}.
#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <vector>

#include "kiln/error.h"

namespace kiln {

template <size_t N>
class ExpandingArray {
 public:
  ExpandingArray(int64_t v) { values_.fill(v); }  // NOLINT: implicit, as libtorch
  ExpandingArray(std::initializer_list<int64_t> list) : ExpandingArray(std::vector<int64_t>(list)) {}  // NOLINT
  ExpandingArray(const std::vector<int64_t>& v) {  // NOLINT
    KILN_CHECK(v.size() == N, "ExpandingArray", "expected ", N, " values, got ", v.size());
    std::copy(v.begin(), v.end(), values_.begin());
  }
  ExpandingArray(const std::array<int64_t, N>& a) : values_(a) {}  // NOLINT

  operator std::array<int64_t, N>() const { return values_; }  // NOLINT: to the ops' Pair
  const std::array<int64_t, N>& operator*() const { return values_; }
  int64_t operator[](size_t i) const { return values_[i]; }
  int64_t& operator[](size_t i) { return values_[i]; }
  std::vector<int64_t> vec() const { return {values_.begin(), values_.end()}; }
  size_t size() const { return N; }
  friend bool operator==(const ExpandingArray&, const ExpandingArray&) = default;

 private:
  std::array<int64_t, N> values_{};
};

template <size_t N>
std::ostream& operator<<(std::ostream& os, const ExpandingArray<N>& a) {
  os << "[";
  for (size_t i = 0; i < N; ++i) os << (i ? ", " : "") << a[i];
  return os << "]";
}

}  // namespace kiln
