// The generated-test harness itself (tests/support/op_info.cpp): it must catch wrong
// values, wrong dtypes, wrong shapes, NaN mismatches and modified inputs, hand the op
// inputs in the layout it claims, and pass a correct op.
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <cmath>

#include "tests/support/op_info.h"

using namespace kiln;
using namespace kiln::testing;

namespace {

std::vector<OpSample> samples_2d(Layout l, Generator& g) {
  switch (l) {
    case Layout::Contiguous: return {OpSample{{random_input({3, 4}, g)}, "[3, 4]"}};
    case Layout::Transposed: return {OpSample{{random_input({3, 4}, g)}, "[3, 4]"}};
    case Layout::Strided: return {OpSample{{random_input({3, 4}, g)}, "[3, 4]"}};
    case Layout::Broadcast: {
      OpSample s{{random_input({3, 1}, g)}, "[3, 1] expanded to [3, 4]"};
      s.expand_to = {{3, 4}};
      return {s};
    }
  }
  return {};
}

Tensor neg_reference(const std::vector<Tensor>& in) {
  Tensor out = ref_empty(in[0].shape());
  for (int64_t i = 0; i < out.numel(); ++i) out.data<double>()[i] = -ref_data(in[0])[i];
  return out;
}

OpInfo make(std::function<Tensor(const std::vector<Tensor>&)> op) {
  OpInfo o;
  o.name = "harness_check";
  o.samples = samples_2d;
  o.op = std::move(op);
  o.reference = neg_reference;
  return o;
}

const OpInfo g_correct = make([](const std::vector<Tensor>& in) { return neg(in[0]); });
const OpInfo g_off_by_a_bit = make([](const std::vector<Tensor>& in) { return add(neg(in[0]), 1e-3); });
const OpInfo g_wrong_dtype = make([](const std::vector<Tensor>& in) { return neg(in[0]).to(DType::Float64); });
const OpInfo g_wrong_shape = make([](const std::vector<Tensor>& in) { return neg(in[0]).unsqueeze(0); });
const OpInfo g_nan = make([](const std::vector<Tensor>& in) { return mul(div(neg(in[0]), gt(in[0], 10.0).to(in[0].dtype())), 0.0);
});
const OpInfo g_modifies = make([](const std::vector<Tensor>& in) {
  Tensor a = in[0];
  Tensor r = neg(a);
  a.fill_(0);
  return r;
});
const OpInfo g_throws = make([](const std::vector<Tensor>& in) { return in[0].view({5, 5}); });

// The failure messages run_op_test reports (captured, so they don't fail this test).
std::vector<std::string> failures(const OpInfo& info, DType t, Layout l) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    run_op_test(info, t, l, kCpu);
  }
  std::vector<std::string> out;
  for (int i = 0; i < results.size(); ++i) out.push_back(results.GetTestPartResult(i).message());
  return out;
}

bool any_contains(const std::vector<std::string>& msgs, const std::string& part) {
  for (const auto& m : msgs)
    if (m.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(OpHarness, PassesACorrectOpInEveryLayoutAndDtype) {
  for (DType t : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16})
    for (Layout l : {Layout::Contiguous, Layout::Transposed, Layout::Strided, Layout::Broadcast})
      EXPECT_TRUE(failures(g_correct, t, l).empty()) << dtype_name(t) << " " << layout_name(l);
}

TEST(OpHarness, CatchesWrongValues) {
  EXPECT_TRUE(any_contains(failures(g_off_by_a_bit, DType::Float32, Layout::Contiguous), "want"));
  EXPECT_TRUE(any_contains(failures(g_off_by_a_bit, DType::Float64, Layout::Strided), "want"));
  EXPECT_TRUE(any_contains(failures(g_off_by_a_bit, DType::Float32, Layout::Broadcast), "want"));
  // bfloat16's tolerance (1e-2) admits the same error
  EXPECT_TRUE(failures(g_off_by_a_bit, DType::BFloat16, Layout::Contiguous).empty());
}

TEST(OpHarness, CatchesWrongDtypeShapeAndNaN) {
  EXPECT_TRUE(any_contains(failures(g_wrong_dtype, DType::Float32, Layout::Contiguous), "dtype"));
  EXPECT_TRUE(any_contains(failures(g_wrong_shape, DType::Float32, Layout::Contiguous), "shape"));
  EXPECT_TRUE(any_contains(failures(g_nan, DType::Float32, Layout::Contiguous), "nan"));
}

TEST(OpHarness, CatchesModifiedInputsAndErrors) {
  EXPECT_TRUE(any_contains(failures(g_modifies, DType::Float32, Layout::Contiguous), "modified input 0"));
  EXPECT_TRUE(any_contains(failures(g_throws, DType::Float32, Layout::Contiguous), "[view]"));
}

namespace {
struct Seen {
  Shape shape;
  Strides strides;
  bool contiguous = true;
  std::vector<double> values;
};
Seen g_seen;
const OpInfo g_spy = make([](const std::vector<Tensor>& in) {
  g_seen = Seen{in[0].shape(), in[0].strides(), in[0].is_contiguous(), in[0].to_vector<double>()};
  return neg(in[0]);
});
}  // namespace

TEST(OpHarness, HandsInputsInTheLayoutItNames) {
  run_op_test(g_spy, DType::Float32, Layout::Contiguous, kCpu);
  EXPECT_EQ(g_seen.strides, (Strides{4, 1}));
  run_op_test(g_spy, DType::Float32, Layout::Transposed, kCpu);
  EXPECT_EQ(g_seen.shape, (Shape{3, 4}));
  EXPECT_EQ(g_seen.strides, (Strides{1, 3}));  // stored as the contiguous [4, 3] transpose
  run_op_test(g_spy, DType::Float32, Layout::Strided, kCpu);
  EXPECT_EQ(g_seen.shape, (Shape{3, 4}));
  EXPECT_EQ(g_seen.strides, (Strides{2 * 9, 2}));  // step 2 in a [7, 9] buffer
  for (double v : g_seen.values) EXPECT_FALSE(std::isnan(v));  // the NaN gaps are not part of the view
  run_op_test(g_spy, DType::Float32, Layout::Broadcast, kCpu);
  EXPECT_EQ(g_seen.shape, (Shape{3, 4}));
  EXPECT_EQ(g_seen.strides, (Strides{1, 0}));
  // the values are the samples rounded to the dtype: float16 has 11 significant bits
  run_op_test(g_spy, DType::Float16, Layout::Contiguous, kCpu);
  for (double v : g_seen.values) EXPECT_EQ(double(float(Half(float(v)))), v);
}

TEST(OpHarness, DefaultTolerances) {
  EXPECT_LE(default_tolerance(DType::Float64).rtol, 1e-10);
  EXPECT_LE(default_tolerance(DType::Float32).rtol, 1e-5);
  EXPECT_LE(default_tolerance(DType::Float16).rtol, 1e-3);
  EXPECT_LE(default_tolerance(DType::BFloat16).rtol, 1e-2);
  EXPECT_EQ(default_tolerance(DType::Int32).rtol, 0);
  EXPECT_EQ(default_tolerance(DType::Bool).atol, 0);
  EXPECT_STREQ(layout_name(Layout::Strided), "strided");
}
