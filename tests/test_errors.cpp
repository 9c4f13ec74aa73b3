// Error paths of the core and the elementwise ops (issue 3 item 6): every bad input
// raises kiln::Error whose message starts with "[op]" and names the shapes / dtypes /
// devices at fault, and leaves every input unchanged (values, shape, strides, version).
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/ops.h"
#include "tests/support/fake_backend.h"

using namespace kiln;

namespace {

struct Snapshot {
  Tensor t;
  Shape shape;
  Strides strides;
  int64_t offset;
  DType dtype;
  uint64_t version;
  std::vector<double> values;
  explicit Snapshot(const Tensor& x)
      : t(x), shape(x.shape()), strides(x.strides()), offset(x.offset()), dtype(x.dtype()), version(x.version()),
        values(x.to_vector<double>()) {}
  void expect_unchanged(const std::string& what) const {
    EXPECT_EQ(t.shape(), shape) << what;
    EXPECT_EQ(t.strides(), strides) << what;
    EXPECT_EQ(t.offset(), offset) << what;
    EXPECT_EQ(t.dtype(), dtype) << what;
    EXPECT_EQ(t.version(), version) << what;
    EXPECT_EQ(t.to_vector<double>(), values) << what;
  }
};

// Runs f, which must throw kiln::Error mentioning every part; inputs must be unchanged.
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts,
                  const std::vector<Tensor>& inputs = {}) {
  std::vector<Snapshot> before;
  for (const Tensor& t : inputs) before.emplace_back(t);
  std::string message;
  try {
    f();
    ADD_FAILURE() << "expected kiln::Error mentioning " << (parts.empty() ? "" : parts[0]);
  } catch (const Error& e) {
    message = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected kiln::Error, got another exception: " << e.what();
  }
  if (!message.empty()) {
    EXPECT_EQ(message[0], '[') << message;  // "[op] ..."
    for (const std::string& p : parts) EXPECT_NE(message.find(p), std::string::npos) << "'" << p << "' not in: " << message;
  }
  for (size_t i = 0; i < before.size(); ++i) before[i].expect_unchanged("input " + std::to_string(i) + " (" + message + ")");
}

Tensor iota(const Shape& shape, DType dt = DType::Float32) {
  return arange(numel_of(shape), TensorOptions(dt)).view(shape);
}

}  // namespace

TEST(Errors, ShapeMismatch) {
  Tensor a = iota({2, 3}), b = iota({4});
  expect_error([&] { (void)add(a, b); }, {"[add]", "[2, 3]", "[4]"}, {a, b});
  expect_error([&] { (void)mul(a, b); }, {"[mul]", "[2, 3]", "[4]"}, {a, b});
  expect_error([&] { (void)(a - b); }, {"[sub]", "[2, 3]", "[4]"}, {a, b});
  expect_error([&] { (void)lt(a, b); }, {"[lt]", "[2, 3]", "[4]"}, {a, b});
  expect_error([&] { (void)maximum(a, b); }, {"[maximum]"}, {a, b});
  Tensor cond = gt(iota({5}), 1.0);
  expect_error([&] { (void)where(cond, a, a); }, {"[where]", "[5]", "[2, 3]"}, {cond, a});
  // in place: the result must fit the destination
  Tensor small = iota({3}), big = iota({2, 3});
  expect_error([&] { add_(small, big); }, {"[add_]", "[2, 3]", "[3]"}, {small, big});
  expect_error([&] { small.mul_(big); }, {"[mul_]", "[2, 3]", "[3]"}, {small, big});
  // copy_ needs a source that broadcasts to the destination
  Tensor dst = zeros({2, 3});
  expect_error([&] { dst.copy_(iota({3, 2})); }, {"[copy_]", "[3, 2]", "[2, 3]"}, {dst});
  // views
  expect_error([&] { (void)a.view({4, 2}); }, {"[view]", "[4, 2]", "[2, 3]"}, {a});
  expect_error([&] { (void)a.reshape({5}); }, {"[reshape]", "[5]", "[2, 3]"}, {a});
  expect_error([&] { (void)a.t().view({6}); }, {"[view]", "reshape"}, {a});
  expect_error([&] { (void)a.view({-1, -1}); }, {"[view]", "-1"}, {a});
  expect_error([&] { (void)a.expand({2, 4}); }, {"[expand]", "[2, 3]", "[2, 4]"}, {a});
  expect_error([&] { (void)a.expand({3}); }, {"[expand]"}, {a});
  expect_error([&] { (void)a.unflatten(1, {2, 2}); }, {"[unflatten]"}, {a});
  expect_error([&] { (void)a.permute({0}); }, {"[permute]", "[2, 3]"}, {a});
  expect_error([&] { (void)a.permute({1, 1}); }, {"[permute]", "repeats"}, {a});
  expect_error([&] { (void)tensor<float>({1, 2, 3}, {2, 2}); }, {"[tensor]", "[2, 2]"});
  expect_error([&] { (void)iota({2, 2, 2}).t(); }, {"[t]", "[2, 2, 2]"});
}

TEST(Errors, BadDim) {
  Tensor a = iota({2, 3});
  expect_error([&] { (void)a.transpose(0, 2); }, {"[transpose]", "2", "rank 2"}, {a});
  expect_error([&] { (void)a.select(-3, 0); }, {"[select]", "-3"}, {a});
  expect_error([&] { (void)a.narrow(5, 0, 1); }, {"[narrow]", "5"}, {a});
  expect_error([&] { (void)a.slice(2, 0, 1); }, {"[slice]", "2"}, {a});
  expect_error([&] { (void)a.squeeze(2); }, {"[squeeze]"}, {a});
  expect_error([&] { (void)a.unsqueeze(4); }, {"[unsqueeze]", "4"}, {a});
  expect_error([&] { (void)a.flatten(1, 0); }, {"[flatten]"}, {a});
  expect_error([&] { (void)a.flatten(0, 3); }, {"[flatten]", "3"}, {a});
  expect_error([&] { (void)a.size(2); }, {"[size]", "2"}, {a});
  expect_error([&] { (void)a.stride(-3); }, {"[stride]"}, {a});
  Tensor s = full({}, 1.0);
  expect_error([&] { (void)s.select(0, 0); }, {"[select]", "0-d"}, {s});
  expect_error([&] { (void)s.narrow(0, 0, 1); }, {"[narrow]", "0-d"}, {s});
}

TEST(Errors, UnsupportedDtype) {
  Tensor b = tensor<bool>({true, false});
  expect_error([&] { (void)sub(b, b); }, {"[sub]", "bool"}, {b});
  expect_error([&] { (void)neg(b); }, {"[neg]", "bool"}, {b});
  expect_error([&] { (void)(-b); }, {"[neg]", "bool"}, {b});
  expect_error([&] { (void)relu(b); }, {"[relu]", "bool"}, {b});
  Tensor f = iota({3});
  expect_error([&] { (void)where(f, f, f); }, {"[where]", "float32"}, {f});
  expect_error([&] { (void)rand({2}, DType::Int32); }, {"[rand]", "int32"});
  expect_error([&] { (void)randn({2}, DType::Bool); }, {"[randn]", "bool"});
  // in place can't change the destination's dtype category
  Tensor i = iota({3}, DType::Int32);
  expect_error([&] { add_(i, f); }, {"[add_]", "float32", "int32"}, {i, f});
  expect_error([&] { div_(i, i); }, {"[div_]", "int32"}, {i});
  expect_error([&] { (void)gelu(f, "fast"); }, {"[gelu]", "fast"}, {f});
  expect_error([&] { (void)clamp(f, std::nullopt, std::nullopt); }, {"[clamp]"}, {f});
  expect_error([&] { (void)f.data<double>(); }, {"[data]", "float32", "float64"}, {f});
}

TEST(Errors, DeviceMismatch) {
  kiln::testing::FakeGpuScope gpu;
  {
    Tensor c = iota({2, 2});
    Tensor g = iota({2, 2}).to(kiln::testing::kFakeGpu);
    expect_error([&] { (void)add(c, g); }, {"[add]", "cpu", "metal:0"}, {c, g});
    expect_error([&] { (void)mul(g, c); }, {"[mul]", "cpu", "metal:0"}, {c, g});
    expect_error([&] { (void)where(gt(c, 1.0), c, g); }, {"[where]", "cpu", "metal:0"}, {c, g});
    expect_error([&] { add_(c, g); }, {"[add_]", "cpu", "metal:0"}, {c, g});
  }
  expect_error([&] { set_device(Device(DeviceType::OpenCL, 0)); }, {"[set_device]", "opencl"});
  expect_error([&] { (void)Device::parse("tpu:0"); }, {"[device]", "tpu"});
  expect_error([&] { (void)zeros({2}, Device(DeviceType::WebGpu)); }, {"webgpu"});
}

TEST(Errors, OutOfRangeIndex) {
  Tensor a = iota({2, 3});
  expect_error([&] { (void)a.select(1, 3); }, {"[select]", "3", "[2, 3]"}, {a});
  expect_error([&] { (void)a.select(0, -3); }, {"[select]", "-3"}, {a});
  expect_error([&] { (void)a[2]; }, {"[select]", "2"}, {a});
  expect_error([&] { (void)a.at({1, 3}); }, {"[at]", "3"}, {a});
  expect_error([&] { (void)a.at({1}); }, {"[at]", "[2, 3]"}, {a});
  expect_error([&] { (void)a.narrow(1, 2, 2); }, {"[narrow]", "[2, 3]"}, {a});
  expect_error([&] { (void)a.narrow(0, 0, -1); }, {"[narrow]"}, {a});
  expect_error([&] { (void)a.item(); }, {"[item]", "6", "[2, 3]"}, {a});
  expect_error([&] { (void)a.as_strided({3, 3}, {3, 1}, 0); }, {"[as_strided]", "[3, 3]"}, {a});
  expect_error([&] { (void)a.as_strided({2}, {1}, -1); }, {"[as_strided]"}, {a});
  expect_error([&] { (void)a.as_strided({2, 2}, {1}, 0); }, {"[as_strided]"}, {a});
}

TEST(Errors, NegativeSize) {
  expect_error([] { (void)empty({2, -1}); }, {"[empty]", "-1", "[2, -1]"});
  expect_error([] { (void)zeros({-3}); }, {"-3"});
  expect_error([] { (void)ones({4, -2}, DType::Int64); }, {"-2"});
  expect_error([] { (void)full({-1}, 2.0); }, {"-1"});
  expect_error([] { (void)rand({-5}); }, {"-5"});
  expect_error([] { (void)empty_strided({2, -2}, {1, 1}); }, {"[empty_strided]", "-2"});
  expect_error([] { (void)linspace(0, 1, -1); }, {"[linspace]", "-1"});
  expect_error([] { (void)eye(-2); }, {"[eye]", "-2"});
  expect_error([] { (void)arange(0, 5, 0); }, {"[arange]", "step"});
  expect_error([] { (void)arange(5, 0, 1); }, {"[arange]"});
  expect_error([] { (void)randint(3, 3, {2}); }, {"[randint]", "3"});
  Tensor a = iota({2, 3});
  expect_error([&] { (void)a.view({-2, 3}); }, {"[view]", "-2"}, {a});
  expect_error([&] { (void)a.reshape({3, -3}); }, {"[reshape]", "-3"}, {a});
  expect_error([&] { (void)a.expand({-2, 2, 3}); }, {"[expand]", "-2"}, {a});
  expect_error([&] { (void)a.as_strided({-1}, {1}, 0); }, {"[as_strided]", "negative"}, {a});
}

TEST(Errors, ZeroOrNegativeSliceStep) {
  Tensor a = iota({6});
  expect_error([&] { (void)a.slice(0, 0, 6, 0); }, {"[slice]", "step", "0"}, {a});
  expect_error([&] { (void)a.slice(0, 0, 6, -1); }, {"[slice]", "step", "-1"}, {a});
}

TEST(Errors, UndefinedTensors) {
  Tensor a = iota({2}), u;
  expect_error([&] { (void)add(a, u); }, {"[add]", "undefined"}, {a});
  expect_error([&] { (void)exp(u); }, {"[exp]", "undefined"});
  expect_error([&] { (void)u.shape(); }, {"undefined"});
  Tensor d = zeros({2});
  expect_error([&] { d.copy_(u); }, {"[copy_]", "undefined"}, {d});
}

// Errors name the op the user called (OpNameScope), not the op that happened to fail
// inside it (issue 10).
TEST(Errors, NameTheOpTheUserCalled) {
  Tensor a = iota({2, 3}), b = iota({3, 2});
  expect_error([&] { a.add_(b); }, {"[add_]", "[2, 3]"}, {a, b});
  expect_error([&] { sub_(a, b); }, {"[sub_]"}, {a, b});
  expect_error([] { (void)zeros({-3}); }, {"[zeros]", "-3"});
  expect_error([] { (void)ones({-3}); }, {"[ones]", "-3"});
  expect_error([] { (void)full({-1}, 2.0); }, {"[full]", "-1"});
  expect_error([] { (void)randn({-5}); }, {"[randn]", "-5"});
  expect_error([] { (void)rand({-5}); }, {"[rand]", "-5"});
  expect_error([&] { (void)a.at({0, 7}); }, {"[at]", "7"}, {a});
  // Only the outermost scope names the error; it ends with its call.
  expect_error([] { (void)empty({-1}); }, {"[empty]"});
  EXPECT_EQ(detail::user_op_name(), nullptr);
}
