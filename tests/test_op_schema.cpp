// The op schema (include/kiln/ops.def through dispatch.h): typed attributes, families,
// result and gradient rules, checked against lists written out here independently.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "kiln/dispatch.h"
#include "kiln/ops.h"

namespace {
using namespace kiln;

// Compile-time: each op's attribute struct comes from the schema.
static_assert(std::is_same_v<OpTraits<OpId::Clamp>::Attrs, ClampAttrs>);
static_assert(std::is_same_v<OpTraits<OpId::Conv2d>::Attrs, Conv2dAttrs>);
static_assert(std::is_same_v<OpTraits<OpId::Mul>::Attrs, NoAttrs>);
static_assert(OpTraits<OpId::Div>::result == ResultRule::Float);
static_assert(OpTraits<OpId::Eq>::result == ResultRule::Bool);
static_assert(OpTraits<OpId::Eq>::grad == GradRule::NoGrad);

TEST(OpSchema, NamesAreUniqueAndEveryOpHasDTypes) {
  std::set<std::string> names;
  for (int o = 0; o < kNumOps; ++o) {
    const OpId op = OpId(o);
    EXPECT_TRUE(names.insert(op_name(op)).second) << "duplicate name " << op_name(op);
    EXPECT_NE(op_dtypes(op), 0u) << op_name(op);
  }
}

TEST(OpSchema, FamilyListsMatchTheOpsOfEachFamily) {
  const std::set<OpId> pool{OpId::MaxPool2d,         OpId::MaxPool2dBackward,
                            OpId::AvgPool2d,         OpId::AvgPool2dBackward,
                            OpId::AdaptiveAvgPool2d, OpId::AdaptiveAvgPool2dBackward};
  const auto& listed = kFamilyOps<OpFamily::Pool>;
  EXPECT_EQ(std::set<OpId>(listed.begin(), listed.end()), pool);
  const std::set<OpId> compare{OpId::Eq, OpId::Ne, OpId::Lt, OpId::Le, OpId::Gt, OpId::Ge, OpId::LogicalAnd,
                               OpId::LogicalOr};
  const auto& cmp = kFamilyOps<OpFamily::Compare>;
  EXPECT_EQ(std::set<OpId>(cmp.begin(), cmp.end()), compare);
  int visited = 0;
  for_each_family_op<OpFamily::Compare>([&]<OpId Op>() {
    static_assert(OpTraits<Op>::family == OpFamily::Compare);
    ++visited;
  });
  EXPECT_EQ(visited, 8);
}

TEST(OpSchema, DispatchingTheWrongAttributeStructRaisesNamingTheOp) {
  Tensor t = zeros({3});
  Tensor outs[] = {t};
  const DimAttrs wrong{0};
  try {
    dispatch(OpId::Fill, {}, outs, &wrong);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[fill_]", 0), 0u) << msg;
    EXPECT_NE(msg.find("DimAttrs"), std::string::npos) << msg;
    EXPECT_NE(msg.find("ScalarAttrs"), std::string::npos) << msg;
  }
  EXPECT_EQ(t.sum().item<double>(), 0.0);  // unchanged
}

TEST(OpSchema, KernelReadingTheWrongAttributeStructRaises) {
  const DimAttrs dim{1};
  const KernelArgs args{OpId::Softmax, kCpu, {}, {}, &dim};
  EXPECT_EQ(args.attr<DimAttrs>().dim, 1);
  EXPECT_EQ(args.attrs_of<OpId::Softmax>().dim, 1);
  EXPECT_THROW(args.attr<ReduceAttrs>(), Error);
  const KernelArgs none{OpId::Softmax, kCpu, {}, {}, nullptr};
  EXPECT_THROW(none.attr<DimAttrs>(), Error);
}

}  // namespace
