// dtypes: Half and BFloat16 conversions against known IEEE bit patterns (including
// subnormals, overflow, NaN and round-to-nearest-even), tensor casts, dtype properties,
// and promote_types against PyTorch's table (torch.promote_types).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "kiln/ops.h"

using namespace kiln;

namespace {
uint16_t half_bits(float f) { return Half(f).bits; }
uint16_t bf16_bits(float f) { return BFloat16(f).bits; }
float half_value(uint16_t bits) { return Half::to_float(bits); }
float bf16_value(uint16_t bits) {
  BFloat16 b;
  b.bits = bits;
  return float(b);
}
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr float kNaNF = std::numeric_limits<float>::quiet_NaN();
}  // namespace

TEST(Half, KnownBitPatterns) {
  EXPECT_EQ(half_bits(1.0f), 0x3C00);
  EXPECT_EQ(half_bits(-2.0f), 0xC000);
  EXPECT_EQ(half_bits(0.5f), 0x3800);
  EXPECT_EQ(half_bits(0.0f), 0x0000);
  EXPECT_EQ(half_bits(-0.0f), 0x8000);
  EXPECT_EQ(half_bits(65504.0f), 0x7BFF);         // largest finite
  EXPECT_EQ(half_bits(0.333333333f), 0x3555);
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(half_bits(std::ldexp(1023.0f, -24)), 0x03FF);  // largest subnormal
  EXPECT_EQ(half_bits(std::ldexp(3.0f, -24)), 0x0003);
}

TEST(Half, OverflowInfinityAndNaN) {
  EXPECT_EQ(half_bits(kInfF), 0x7C00);
  EXPECT_EQ(half_bits(-kInfF), 0xFC00);
  EXPECT_EQ(half_bits(65520.0f), 0x7C00);   // halfway to 65536: rounds (to even) up to inf
  EXPECT_EQ(half_bits(65519.0f), 0x7BFF);   // below halfway: stays finite
  EXPECT_EQ(half_bits(1e6f), 0x7C00);
  EXPECT_EQ(half_bits(-1e6f), 0xFC00);
  const uint16_t n = half_bits(kNaNF);
  EXPECT_EQ(n & 0x7C00, 0x7C00);  // exponent all ones
  EXPECT_NE(n & 0x03FF, 0);       // mantissa nonzero: NaN, not inf
  EXPECT_TRUE(std::isnan(half_value(n)));
}

TEST(Half, RoundsToNearestEven) {
  // 1 + 2^-11 lies halfway between 1 (0x3C00, even) and 1 + 2^-10 (0x3C01): rounds to even.
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // 1 + 3 * 2^-11 lies halfway between 0x3C01 and 0x3C02 (even).
  EXPECT_EQ(half_bits(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  // a little above halfway rounds up
  EXPECT_EQ(half_bits(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3C01);
  // subnormals: 2^-25 is halfway between 0 and 2^-24 -> 0 (even); 1.5 * 2^-24 -> 2 * 2^-24
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(half_bits(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -25) * 1.01f), 0x0001);
  EXPECT_EQ(half_bits(std::ldexp(1.0f, -26)), 0x0000);  // underflows to zero
  EXPECT_EQ(half_bits(-std::ldexp(1.0f, -26)), 0x8000);  // keeps the sign
}

TEST(Half, ToFloat) {
  EXPECT_EQ(half_value(0x3C00), 1.0f);
  EXPECT_EQ(half_value(0xC000), -2.0f);
  EXPECT_EQ(half_value(0x7BFF), 65504.0f);
  EXPECT_EQ(half_value(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_value(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(half_value(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(half_value(0x3555), 0.333251953125f);
  EXPECT_EQ(half_value(0x7C00), kInfF);
  EXPECT_EQ(half_value(0xFC00), -kInfF);
  EXPECT_TRUE(std::isnan(half_value(0x7E00)));
  EXPECT_TRUE(std::signbit(half_value(0x8000)));
  // every finite half round-trips exactly through float
  for (uint32_t b = 0; b < 0x10000; ++b) {
    if ((b & 0x7C00) == 0x7C00) continue;
    ASSERT_EQ(half_bits(half_value(uint16_t(b))), b) << std::hex << b;
  }
}

TEST(BFloat16, KnownBitPatternsAndRounding) {
  EXPECT_EQ(bf16_bits(1.0f), 0x3F80);
  EXPECT_EQ(bf16_bits(-2.0f), 0xC000);
  EXPECT_EQ(bf16_bits(3.140625f), 0x4049);
  EXPECT_EQ(bf16_bits(0.0f), 0x0000);
  EXPECT_EQ(bf16_bits(-0.0f), 0x8000);
  EXPECT_EQ(bf16_bits(kInfF), 0x7F80);
  EXPECT_EQ(bf16_bits(-kInfF), 0xFF80);
  // 1 + 2^-8 is halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81)
  EXPECT_EQ(bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  EXPECT_EQ(bf16_bits(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  EXPECT_EQ(bf16_bits(from_bits(0x3F808001)), 0x3F81);  // just above halfway
  EXPECT_EQ(bf16_bits(std::numeric_limits<float>::max()), 0x7F80);  // rounds up to inf
  EXPECT_EQ(bf16_bits(from_bits(0x00010000)), 0x0001);              // subnormals keep their top bits
  const uint16_t n = bf16_bits(kNaNF);
  EXPECT_EQ(n & 0x7F80, 0x7F80);
  EXPECT_NE(n & 0x007F, 0);
  // a NaN whose payload sits only in the low bits must stay NaN (not become inf)
  EXPECT_TRUE(std::isnan(bf16_value(bf16_bits(from_bits(0x7F800001)))));
  EXPECT_EQ(bf16_value(0x3F80), 1.0f);
  EXPECT_EQ(bf16_value(0x4049), 3.140625f);
  EXPECT_EQ(bf16_value(0xFF80), -kInfF);
}

TEST(DType, TensorCastsUseTheSameRounding) {
  Tensor src = tensor<float>({1.0f, 65504.0f, 65520.0f, std::ldexp(1.0f, -24), 1.0f + std::ldexp(1.0f, -11), -0.0f});
  Tensor h = src.to(DType::Float16).contiguous();
  const Half* hp = h.data<Half>();
  const uint16_t want[] = {0x3C00, 0x7BFF, 0x7C00, 0x0001, 0x3C00, 0x8000};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(hp[i].bits, want[i]) << i;
  Tensor b = tensor<float>({1.0f, -2.0f, 1.0f + std::ldexp(1.0f, -8)}).to(DType::BFloat16);
  const BFloat16* bp = b.data<BFloat16>();
  EXPECT_EQ(bp[0].bits, 0x3F80);
  EXPECT_EQ(bp[1].bits, 0xC000);
  EXPECT_EQ(bp[2].bits, 0x3F80);
  // float64 -> float16 goes straight to the nearest half
  Tensor d = tensor<double>({0.1}).to(DType::Float16);
  EXPECT_EQ(d.data<Half>()[0].bits, 0x2E66);
  // bool conversions: nonzero -> true; true -> 1
  EXPECT_EQ(tensor<float>({0.0f, -0.5f, 2.0f}).to(DType::Bool).to_vector<bool>(),
            (std::vector<bool>{false, true, true}));
  EXPECT_EQ(tensor<bool>({true, false}).to(DType::Float16).to_vector<float>(), (std::vector<float>{1, 0}));
  // float -> int truncates toward zero
  EXPECT_EQ(tensor<float>({2.9f, -2.9f}).to(DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{2, -2}));
}

TEST(DType, Properties) {
  struct Row { DType t; size_t size; const char* name; bool floating, integral; };
  const Row rows[] = {{DType::Float32, 4, "float32", true, false},  {DType::Float64, 8, "float64", true, false},
                      {DType::Float16, 2, "float16", true, false},  {DType::BFloat16, 2, "bfloat16", true, false},
                      {DType::Int32, 4, "int32", false, true},      {DType::Int64, 8, "int64", false, true},
                      {DType::Bool, 1, "bool", false, false}};
  for (const Row& r : rows) {
    EXPECT_EQ(element_size(r.t), r.size) << r.name;
    EXPECT_STREQ(dtype_name(r.t), r.name);
    EXPECT_EQ(is_floating(r.t), r.floating) << r.name;
    EXPECT_EQ(is_integral(r.t), r.integral) << r.name;
    EXPECT_EQ(zeros({3}, r.t).nbytes(), 3 * r.size) << r.name;
  }
}

TEST(DType, PromoteTypesMatchesPyTorch) {
  // torch.promote_types(row, col), order: f32 f64 f16 bf16 i32 i64 bool
  using D = DType;
  const D order[] = {D::Float32, D::Float64, D::Float16, D::BFloat16, D::Int32, D::Int64, D::Bool};
  const D table[7][7] = {
      /* f32  */ {D::Float32, D::Float64, D::Float32, D::Float32, D::Float32, D::Float32, D::Float32},
      /* f64  */ {D::Float64, D::Float64, D::Float64, D::Float64, D::Float64, D::Float64, D::Float64},
      /* f16  */ {D::Float32, D::Float64, D::Float16, D::Float32, D::Float16, D::Float16, D::Float16},
      /* bf16 */ {D::Float32, D::Float64, D::Float32, D::BFloat16, D::BFloat16, D::BFloat16, D::BFloat16},
      /* i32  */ {D::Float32, D::Float64, D::Float16, D::BFloat16, D::Int32, D::Int64, D::Int32},
      /* i64  */ {D::Float32, D::Float64, D::Float16, D::BFloat16, D::Int64, D::Int64, D::Int64},
      /* bool */ {D::Float32, D::Float64, D::Float16, D::BFloat16, D::Int32, D::Int64, D::Bool},
  };
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 7; ++j)
      EXPECT_EQ(promote_types(order[i], order[j]), table[i][j])
          << dtype_name(order[i]) << " with " << dtype_name(order[j]);
}

TEST(DType, OpsFollowPromotion) {
  // tensor-tensor: the promoted dtype; tensor-scalar: the tensor's dtype within its category
  EXPECT_EQ(add(ones({2}, DType::Int32), ones({2}, DType::Float16)).dtype(), DType::Float16);
  EXPECT_EQ(add(ones({2}, DType::Float16), ones({2}, DType::BFloat16)).dtype(), DType::Float32);
  EXPECT_EQ(mul(ones({2}, DType::Int32), ones({2}, DType::Int64)).dtype(), DType::Int64);
  EXPECT_EQ(add(ones({2}, DType::Float16), 2.5).dtype(), DType::Float16);
  EXPECT_EQ(add(ones({2}, DType::Int32), 2).dtype(), DType::Int32);
  EXPECT_EQ(add(ones({2}, DType::Int32), 2.5).dtype(), DType::Float32);
  EXPECT_EQ(div(ones({2}, DType::Int64), ones({2}, DType::Int64)).dtype(), DType::Float32);
  EXPECT_EQ(gt(ones({2}, DType::Float64), 0.5).dtype(), DType::Bool);
}
