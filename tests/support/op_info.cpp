// The generated op-test procedure (see op_info.h): round samples to the dtype, compute
// the double-precision reference, lay the inputs out on the device, run, compare.
#include "tests/support/op_info.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace kiln::testing {

std::vector<OpInfo>& op_registry() {
  static std::vector<OpInfo> registry;
  return registry;
}

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::Contiguous: return "contiguous";
    case Layout::Transposed: return "transposed";
    case Layout::Strided: return "strided";
    case Layout::Broadcast: return "broadcast";
  }
  return "?";
}

Tolerance default_tolerance(DType t) {
  switch (t) {
    case DType::Float64: return {1e-10, 1e-10};
    case DType::Float32: return {1e-5, 1e-5};
    case DType::Float16: return {1e-3, 1e-3};
    case DType::BFloat16: return {1e-2, 1e-2};
    default: return {0, 0};
  }
}

Tensor ref_empty(const Shape& shape) { return empty(shape, TensorOptions(DType::Float64).device(kCpu)); }
Tensor ref_empty(const Shape& shape, DType dtype) { return empty(shape, TensorOptions(dtype).device(kCpu)); }

Tensor random_input(const Shape& shape, Generator& g, double lo, double hi) {
  Tensor t = rand(shape, TensorOptions(DType::Float64).device(kCpu), &g);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = lo + (hi - lo) * p[i];
  return t;
}

Tensor random_integers(const Shape& shape, Generator& g, int64_t lo, int64_t hi) {
  Tensor t = rand(shape, TensorOptions(DType::Float64).device(kCpu), &g);
  double* p = t.data<double>();
  const double span = double(hi - lo + 1);
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::min(double(hi), double(lo) + std::floor(span * p[i]));
  return t;
}

namespace {

bool contains(const std::vector<int>& v, size_t i) { return std::find(v.begin(), v.end(), int(i)) != v.end(); }

Shape expand_target(const OpSample& s, size_t i) { return i < s.expand_to.size() ? s.expand_to[i] : Shape{}; }

// Same values, memory laid out as the contiguous transpose of the last two dims.
Tensor transposed_layout(const Tensor& x) {
  if (x.dim() < 2) return x;
  return x.transpose(-1, -2).contiguous().transpose(-1, -2);
}

// Same values, every dim a step-2 slice (offset 1) of a buffer about twice as large,
// whose gaps hold NaN (floating) or a sentinel, so that a kernel reading them is caught.
Tensor strided_layout(const Tensor& x) {
  if (x.dim() == 0) return x;
  Shape big = x.shape();
  for (auto& n : big) n = 2 * n + 1;
  Tensor buf = empty(big, TensorOptions(x.dtype()).device(x.device()));
  if (is_floating(x.dtype())) buf.fill_(std::numeric_limits<double>::quiet_NaN());
  else if (x.dtype() == DType::Bool) buf.fill_(true);
  else buf.fill_(77);
  Tensor v = buf;
  for (int64_t d = 0; d < x.dim(); ++d) v = v.slice(d, 1, 1 + 2 * x.size(d), 2);
  v.copy_(x);
  return v;
}

Tensor apply_layout(const Tensor& x, Layout layout) {
  switch (layout) {
    case Layout::Transposed: return transposed_layout(x);
    case Layout::Strided: return strided_layout(x);
    default: return x;
  }
}

std::vector<double> host_values(const Tensor& t) { return t.to(kCpu).to(DType::Float64).contiguous().to_vector<double>(); }

bool same_value(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

std::string format_index(const Shape& shape, int64_t flat) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = shape[d] ? flat % shape[d] : 0;
    flat = shape[d] ? flat / shape[d] : 0;
  }
  return shape_str(idx);
}

DType expected_dtype(const OpInfo& info, DType dtype, const Tensor& ref) {
  if (info.result_dtype) return info.result_dtype(dtype);
  if (info.output_keeps_integer_dtype || ref.dtype() != DType::Float64) return ref.dtype();
  return dtype;
}

void compare(const std::string& ctx, const Tensor& got, const Tensor& want, DType out_dtype, Tolerance tol,
             bool exact) {
  // The best a kernel can do is the correctly rounded result: compare with the reference
  // rounded to the result dtype (this also makes overflow to inf agree).
  const Tensor want_rounded = (is_floating(out_dtype) && !exact) ? want.to(out_dtype) : want;
  const std::vector<double> g = host_values(got), w = host_values(want_rounded);
  ASSERT_EQ(g.size(), w.size()) << ctx;
  int reported = 0, bad = 0;
  double worst = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok;
    if (std::isnan(w[i]) || std::isnan(g[i])) {
      ok = std::isnan(w[i]) && std::isnan(g[i]);
    } else if (std::isinf(w[i]) || std::isinf(g[i])) {
      ok = g[i] == w[i];
    } else {
      const double err = std::abs(g[i] - w[i]);
      ok = exact && !(tol.atol > 0 || tol.rtol > 0) ? err == 0 : err <= tol.atol + tol.rtol * std::abs(w[i]);
      worst = std::max(worst, err);
    }
    if (!ok) {
      ++bad;
      if (reported++ < 5)
        ADD_FAILURE() << ctx << ": at " << format_index(want.shape(), int64_t(i)) << " got " << g[i] << ", want "
                      << w[i] << " (rtol " << tol.rtol << ", atol " << tol.atol << ")";
    }
  }
  if (bad > 5) ADD_FAILURE() << ctx << ": " << bad << " of " << g.size() << " elements differ (max abs err " << worst << ")";
}

}  // namespace

void run_op_test(const OpInfo& info, DType dtype, Layout layout, Device device) {
  Generator gen(std::hash<std::string>{}(info.name) ^ 0x9e3779b97f4a7c15ULL);
  const std::vector<OpSample> samples = info.samples(layout, gen);
  if (samples.empty()) GTEST_SKIP() << "layout " << layout_name(layout) << " does not apply to " << info.name;

  for (const OpSample& s : samples) {
    std::ostringstream ctxs;
    ctxs << info.name << " " << dtype_name(dtype) << " " << layout_name(layout) << " on " << device.str() << ", sample "
         << s.description;
    const std::string ctx = ctxs.str();
    SCOPED_TRACE(ctx);

    // 1-2. Rounded inputs and the reference on them.
    std::vector<Tensor> rounded, ref_in;
    for (size_t i = 0; i < s.inputs.size(); ++i) {
      const Tensor& x = s.inputs[i];
      const Tensor r = (contains(s.fixed_dtype_inputs, i) || !x.defined()) ? x : x.to(dtype);
      rounded.push_back(r);
      if (!r.defined()) {
        ref_in.push_back(r);
        continue;
      }
      Tensor ri = contains(s.fixed_dtype_inputs, i) ? r : r.to(DType::Float64);
      const Shape target = expand_target(s, i);
      if (!target.empty()) ri = ri.expand(target);
      ref_in.push_back(ri.contiguous().clone());
    }
    Tensor want;
    try {
      want = info.reference(ref_in);
    } catch (const std::exception& e) {
      FAIL() << ctx << ": the reference threw: " << e.what();
    }

    // 3. Device inputs in the layout.
    std::vector<Tensor> in;
    std::vector<std::vector<double>> before;
    for (size_t i = 0; i < rounded.size(); ++i) {
      if (!rounded[i].defined()) {
        in.emplace_back();
        before.emplace_back();
        continue;
      }
      Tensor d = apply_layout(rounded[i].to(device), layout);
      const Shape target = expand_target(s, i);
      if (!target.empty()) d = d.expand(target);
      in.push_back(d);
      before.push_back(host_values(d));
    }
    std::vector<Shape> shapes_before;
    std::vector<Strides> strides_before;
    for (const Tensor& t : in) {
      shapes_before.push_back(t.defined() ? t.shape() : Shape{});
      strides_before.push_back(t.defined() ? t.strides() : Strides{});
    }

    // 4. Run and compare.
    Tensor got;
    try {
      got = info.op(in);
    } catch (const Error& e) {
      FAIL() << ctx << ": kiln::Error: " << e.what();
    }
    ASSERT_TRUE(got.defined()) << ctx << ": the op returned an undefined tensor";
    const DType out_dtype = expected_dtype(info, dtype, want);
    EXPECT_EQ(got.dtype(), out_dtype) << ctx;
    EXPECT_EQ(got.device(), device) << ctx;
    ASSERT_EQ(got.shape(), want.shape()) << ctx << ": got shape " << shape_str(got.shape()) << ", want "
                                         << shape_str(want.shape());
    const bool exact = info.output_keeps_integer_dtype || !is_floating(out_dtype);
    Tolerance tol = info.tolerance ? info.tolerance(dtype) : default_tolerance(out_dtype);
    compare(ctx, got, want, out_dtype, tol, exact);

    for (size_t i = 0; i < in.size(); ++i) {
      if (!in[i].defined() || contains(info.modified_inputs, i)) continue;
      EXPECT_EQ(in[i].shape(), shapes_before[i]) << ctx << ": input " << i << " changed shape";
      EXPECT_EQ(in[i].strides(), strides_before[i]) << ctx << ": input " << i << " changed strides";
      const std::vector<double> after = host_values(in[i]);
      bool same = after.size() == before[i].size();
      for (size_t k = 0; same && k < after.size(); ++k) same = same_value(after[k], before[i][k]);
      EXPECT_TRUE(same) << ctx << ": the op modified input " << i;
    }
  }
}

}  // namespace kiln::testing
