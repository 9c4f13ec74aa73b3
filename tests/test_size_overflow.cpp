// Size arithmetic (issue 10): shapes whose element count, strides or byte count do not
// fit int64 raise kiln::Error naming the op the user called and the shape, instead of
// wrapping into small or negative sizes (and out-of-bounds writes).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kiln/ops.h"
#include "tests/support/expect_error.h"

using namespace kiln;
using kiln::testing::expect_error;

namespace {
constexpr int64_t k2p61 = int64_t(1) << 61;
constexpr int64_t k2p62 = int64_t(1) << 62;
}  // namespace

TEST(SizeOverflow, HelpersAgreeWithWideArithmetic) {
  // Reference: the same products in 128-bit arithmetic: of all dims (the element count)
  // and of all but the first (the largest contiguous stride).
  auto fits = [](const Shape& s, size_t from = 0) {
    __int128 acc = 1;
    for (size_t i = from; i < s.size(); ++i) {
      acc *= s[i] > 1 ? s[i] : 1;
      if (acc > INT64_MAX) return false;
    }
    return true;
  };
  const Shape shapes[] = {{}, {0}, {3, 4}, {k2p62}, {k2p62, 2}, {0, k2p62, k2p62}, {k2p62, k2p62, 0},
                          {3, k2p62}, {INT64_MAX}, {INT64_MAX, 1}, {2, INT64_MAX / 2}, {2, INT64_MAX / 2 + 1}};
  for (const Shape& s : shapes) {
    __int128 numel = 1;
    for (int64_t d : s) numel *= d;
    bool zero = false;
    for (int64_t d : s) zero |= d == 0;
    EXPECT_EQ(shape_overflows(s), !fits(s, 1) || (!zero && numel > INT64_MAX)) << shape_str(s);
    if (zero) {
      EXPECT_EQ(numel_of(s), 0) << shape_str(s);
    } else if (numel > INT64_MAX) {
      EXPECT_THROW((void)numel_of(s), Error) << shape_str(s);
    } else {
      EXPECT_EQ(numel_of(s), int64_t(numel)) << shape_str(s);
    }
    if (fits(s, 1)) {
      EXPECT_NO_THROW((void)contiguous_strides(s)) << shape_str(s);
    } else {
      EXPECT_THROW((void)contiguous_strides(s), Error) << shape_str(s);
    }
  }
  EXPECT_EQ(shape_overflows({-1}), true);
  EXPECT_EQ(checked_mul("x", INT64_MAX / 3, 3), INT64_MAX / 3 * 3);
  expect_error([] { (void)checked_mul("x", INT64_MAX / 2 + 1, 2); }, "x", "overflows");
  expect_error([] { (void)checked_add("x", INT64_MAX, 1); }, "x", "overflows");
  expect_error([] { (void)checked_nbytes(k2p61 + 1, 8, {k2p61 + 1}); }, "shape", "[2305843009213693953]");
}

TEST(SizeOverflow, FactoriesRaiseNamingTheOpAndTheShape) {
  // empty({2^62}) used to return a tensor over a 0-byte storage (2^62 * 4 bytes wraps to 0).
  expect_error([] { (void)empty({k2p62}); }, "empty", "[4611686018427387904]");
  expect_error([] { (void)zeros({k2p62}); }, "zeros", "[4611686018427387904]");
  // 8 * (2^61 + 1) wraps to 8 bytes; the fill used to write past them.
  expect_error([] { (void)full({k2p61 + 1}, 1.0, DType::Float64); }, "full", "[2305843009213693953]");
  expect_error([] { (void)ones({3, k2p62}); }, "ones", "[3, 4611686018427387904]");
  expect_error([] { (void)randn({k2p62, 4}); }, "randn", "overflows");
  expect_error([] { (void)rand({k2p62}); }, "rand", "[4611686018427387904]");
  expect_error([] { (void)eye(k2p62); }, "eye", "overflows");
  expect_error([] { (void)empty({0, k2p62, k2p62}); }, "empty", "stride");
  expect_error([] { (void)empty_strided({k2p62, 2}, {k2p62, 1}); }, "empty_strided", "overflows");
  expect_error([] { (void)empty({2, 2, k2p62, k2p62}, TensorOptions(), MemoryFormat::ChannelsLast); }, "empty",
               "overflows");
  expect_error([] { (void)arange(0, 1e19); }, "arange", "more than int64");
  expect_error([] { (void)arange(0.0, INFINITY); }, "arange", "unsupported range");
  expect_error([] { (void)one_hot(tensor(std::vector<int64_t>{0, 1}), k2p62); }, "one_hot", "overflows");
  // Zero-element tensors with huge dims are fine when their strides fit.
  EXPECT_EQ(empty({k2p62, 0}).numel(), 0);
}

TEST(SizeOverflow, ViewsRaiseInsteadOfWrapping) {
  Tensor one = tensor(std::vector<float>{1.f});
  // A negative size used to be accepted as the shape [-2].
  expect_error([&] { (void)one.expand({-2}); }, "expand", "-2");
  expect_error([&] { (void)one.expand({-2, 1}); }, "expand", "-2");
  expect_error([&] { (void)one.expand({k2p62, 4}); }, "expand", "overflows");
  // A view may have more elements than its storage (stride 0), but its copy must fit memory.
  Tensor wide = one.expand({k2p62});
  EXPECT_EQ(wide.numel(), k2p62);
  expect_error([&] { (void)wide.contiguous(); }, "contiguous", "4611686018427387904");
  // view/reshape: the product of the requested sizes used to wrap (signed overflow).
  Tensor four = zeros({4});
  expect_error([&] { (void)four.view({k2p62, 4}); }, "view", "is invalid");
  expect_error([&] { (void)four.reshape({-1, k2p62, 8}); }, "reshape", "is invalid");
  expect_error([&] { (void)four.view({k2p62, 4, 0, -1}); }, "view", "is invalid");
  EXPECT_EQ(zeros({0}).view({k2p62, 0}).shape(), (Shape{k2p62, 0}));
  // cat's output size and split's sizes are sums that must not wrap either.
  Tensor huge = one.expand({k2p62});
  expect_error([&] { (void)cat({huge, huge}); }, "cat", "overflows");
  expect_error([&] { (void)split(four, std::vector<int64_t>{INT64_MAX, 2}); }, "split", "overflows");
  Tensor a = zeros({4});
  expect_error([&] { (void)a.as_strided({2, 2}, {k2p62, k2p62}, 0); }, "as_strided", "overflows");
  expect_error([&] { (void)a.as_strided({2}, {1}, INT64_MAX); }, "as_strided", "overflows");
}

TEST(SizeOverflow, LayerShapeArithmeticIsChecked) {
  Tensor x = zeros({1, 1, 4, 4}), w = zeros({1, 1, 3, 3});
  // dilation * (k - 1) used to wrap, giving "negative dimension -9223372036854775808".
  expect_error([&] { (void)conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {k2p62, 1}); }, "conv2d", "overflows");
  expect_error([&] { (void)conv2d(x, w, Tensor(), {1, 1}, {k2p62, 0}, {1, 1}); }, "conv2d", "overflows");
  expect_error([&] { (void)conv_transpose2d(x, w, Tensor(), {k2p62, 1}, {0, 0}, {0, 0}, 1, {1, 1}); },
               "conv_transpose2d", "overflows");
  expect_error([&] { (void)max_pool2d(x, {3, 3}, {1, 1}, {0, 0}, {k2p62, 1}); }, "max_pool2d", "overflows");
}

TEST(SizeOverflow, FailedAllocationNamesTheOpTheUserCalled) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer aborts on allocations this large";
#else
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
  GTEST_SKIP() << "AddressSanitizer aborts on allocations this large";
#endif
#endif
  // 2^62 bytes is a valid size but more than any address space: the allocator fails, and
  // the error used to read "[alloc]".
  expect_error([] { (void)zeros({int64_t(1) << 60}); }, "zeros", "out of");
  expect_error([] { (void)empty({int64_t(1) << 59}, DType::Float64); }, "empty", "out of");
  // An op's output: the broadcast view holds one element, the result would hold 2^60.
  Tensor one = tensor(std::vector<float>{1.f});
  expect_error([&] { (void)add(one.expand({int64_t(1) << 60}), one); }, "add", "out of");
  expect_error([&] { (void)exp(one.expand({int64_t(1) << 60})); }, "exp", "out of");
#endif
}
