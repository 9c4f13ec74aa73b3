// In-place writes whose input overlaps the output (issue 10), following PyTorch: an
// output with internal overlap (an expanded tensor) and an input that partially overlaps
// the output raise kiln::Error and change nothing; the same view as input is fine; so are
// disjoint views of one storage. Expected values come from naive loops on copies.
#include <gtest/gtest.h>

#include <vector>

#include "kiln/ops.h"
#include "tests/support/expect_error.h"

using namespace kiln;
using kiln::testing::expect_error;

namespace {
Tensor iota(const Shape& s) { return arange(numel_of(s), DType::Float32).reshape(s).contiguous(); }

void expect_unchanged(const Tensor& t, const std::vector<float>& before) { EXPECT_EQ(t.to_vector<float>(), before); }
}  // namespace

TEST(MemOverlap, PartialOverlapOfInputAndOutputRaises) {
  Tensor a = iota({2, 2});  // [[0, 1], [2, 3]]
  // a.add_(a.t()) used to give [0, 3, 6, 6]-style answers that depend on the loop order.
  expect_error([&] { a.add_(a.t()); }, "add_", "single memory location");
  expect_unchanged(a, {0, 1, 2, 3});
  Tensor b = tensor(std::vector<float>{1, 2, 3, 4});
  expect_error([&] { b.slice(0, 1, 4).add_(b.slice(0, 0, 3)); }, "add_", "single memory location");
  expect_unchanged(b, {1, 2, 3, 4});
  expect_error([&] { b.slice(0, 1, 4).mul_(b.slice(0, 0, 3)); }, "mul_", "single memory location");
  // copy_ between overlapping views used to memcpy overlapping ranges.
  expect_error([&] { b.slice(0, 1, 4).copy_(b.slice(0, 0, 3)); }, "copy_", "single memory location");
  expect_unchanged(b, {1, 2, 3, 4});
  // Through autograd too (the result would be right there, but the rule is the same).
  Tensor w = iota({2, 2}).requires_grad_();
  Tensor y = w * 1.0f;
  expect_error([&] { y.add_(y.t()); }, "add_", "single memory location");
}

TEST(MemOverlap, SameViewAndDisjointViewsAreAllowed) {
  Tensor a = iota({2, 3});
  a.add_(a);  // full overlap: each element reads only itself
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0, 2, 4, 6, 8, 10}));
  Tensor same_view = a.slice(1, 0, 3);
  a.mul_(same_view);
  EXPECT_EQ(a.to_vector<float>(), (std::vector<float>{0, 4, 16, 36, 64, 100}));
  Tensor b = tensor(std::vector<float>{1, 2, 3, 4});
  b.slice(0, 2, 4).add_(b.slice(0, 0, 2));  // disjoint halves of one storage
  EXPECT_EQ(b.to_vector<float>(), (std::vector<float>{1, 2, 4, 6}));
  Tensor c = tensor(std::vector<float>{1, 2, 3, 4, 5, 6});
  c.slice(0, 0, 6, 2).add_(c.slice(0, 1, 6, 2));  // interleaved, never the same element
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{3, 2, 7, 4, 11, 6}));
  Tensor d = iota({2, 2});
  d.copy_(d);
  EXPECT_EQ(d.to_vector<float>(), (std::vector<float>{0, 1, 2, 3}));
}

TEST(MemOverlap, WritingIntoAnExpandedTensorRaises) {
  Tensor base = tensor(std::vector<float>{1, 2, 3});
  // Each element of base appears three times in the expanded view: add_ used to add 3.
  expect_error([&] { base.expand({3, 3}).add_(ones({3, 3})); }, "add_", "more than one element");
  expect_unchanged(base, {1, 2, 3});
  expect_error([&] { base.expand({2, 3}).copy_(ones({2, 3})); }, "copy_", "more than one element");
  expect_error([&] { base.expand({2, 3}).fill_(5); }, "fill_", "more than one element");
  expect_error([&] { base.expand({2, 3}).clamp_(0, 1); }, "clamp_", "more than one element");
  expect_error([&] { base.expand({2, 3}).relu_(); }, "relu_", "more than one element");
  expect_unchanged(base, {1, 2, 3});
  // Expanding a size-1 dim to size 1 is no overlap.
  Tensor single = tensor(std::vector<float>{4});
  single.expand({1}).add_(ones({1}));
  EXPECT_EQ(single.to_vector<float>(), std::vector<float>{5});
}
