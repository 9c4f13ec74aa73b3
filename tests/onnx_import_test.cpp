// kiln::onnx::load: a small model built here with ONNX's protobuf classes runs against a
// double-precision loop reference, its initializers are trainable parameters (gradient
// checked by finite differences), it runs on every present device, and malformed or
// corrupted files give kiln::Error naming the node and op, never a crash.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "kiln/autograd.h"
#include "kiln/device_manager.h"
#include "kiln/onnx.h"
#include "kiln/ops.h"
#include "onnx/onnx_pb.h"
#include "tests/support/expect_error.h"

namespace kiln {
namespace {

using testing::expect_error;

constexpr int64_t kIn = 3, kHidden = 4, kOut = 2;

std::vector<float> values(int64_t n, float scale, float shift) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = scale * float((i * 7) % 11) - shift;
  return v;
}

void add_initializer(::onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                     const std::vector<float>& v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(::onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (float f : v) t->add_float_data(f);
}

void add_value(::onnx::ValueInfoProto* v, const std::string& name, const std::vector<std::string>& dims) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(::onnx::TensorProto::FLOAT);
  for (const auto& d : dims) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (std::isdigit(static_cast<unsigned char>(d[0]))) dim->set_dim_value(std::stoll(d));
    else dim->set_dim_param(d);
  }
}

::onnx::NodeProto* add_node(::onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& in,
                            const std::vector<std::string>& out, const std::string& name) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& s : in) n->add_input(s);
  for (const auto& s : out) n->add_output(s);
  return n;
}

// x [N, 3] -> Gemm(fc.weight [4, 3], fc.bias, transB) -> Relu -> Gemm(head.weight [2, 4], transB) -> Softmax
::onnx::ModelProto mlp_model() {
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("kiln-test");
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("mlp");
  add_value(g->add_input(), "x", {"N", "3"});
  add_value(g->add_output(), "probs", {"N", "2"});
  add_initializer(g, "fc.weight", {kHidden, kIn}, values(kHidden * kIn, 0.25f, 1.0f));
  add_initializer(g, "fc.bias", {kHidden}, values(kHidden, 0.1f, 0.3f));
  add_initializer(g, "head.weight", {kOut, kHidden}, values(kOut * kHidden, -0.2f, -0.9f));
  auto* gemm = add_node(g, "Gemm", {"x", "fc.weight", "fc.bias"}, {"h"}, "fc");
  auto* a = gemm->add_attribute();
  a->set_name("transB");
  a->set_type(::onnx::AttributeProto::INT);
  a->set_i(1);
  add_node(g, "Relu", {"h"}, {"r"}, "act");
  auto* head = add_node(g, "Gemm", {"r", "head.weight"}, {"logits"}, "head");
  *head->add_attribute() = *a;
  auto* sm = add_node(g, "Softmax", {"logits"}, {"probs"}, "softmax");
  auto* axis = sm->add_attribute();
  axis->set_name("axis");
  axis->set_type(::onnx::AttributeProto::INT);
  axis->set_i(1);
  return m;
}

std::string bytes_of(const ::onnx::ModelProto& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

// The MLP in double precision, straight from the initializer values.
std::vector<double> reference_mlp(const std::vector<double>& x, int64_t n) {
  const auto w1 = values(kHidden * kIn, 0.25f, 1.0f), b1 = values(kHidden, 0.1f, 0.3f);
  const auto w2 = values(kOut * kHidden, -0.2f, -0.9f);
  std::vector<double> out;
  for (int64_t i = 0; i < n; ++i) {
    double h[kHidden], logits[kOut], mx = -1e300, z = 0;
    for (int64_t j = 0; j < kHidden; ++j) {
      double s = b1[size_t(j)];
      for (int64_t k = 0; k < kIn; ++k) s += double(w1[size_t(j * kIn + k)]) * x[size_t(i * kIn + k)];
      h[j] = s > 0 ? s : 0;
    }
    for (int64_t o = 0; o < kOut; ++o) {
      logits[o] = 0;
      for (int64_t j = 0; j < kHidden; ++j) logits[o] += double(w2[size_t(o * kHidden + j)]) * h[j];
      mx = std::max(mx, logits[o]);
    }
    for (double l : logits) z += std::exp(l - mx);
    for (double l : logits) out.push_back(std::exp(l - mx) / z);
  }
  return out;
}

Tensor sample_input() {
  return tensor<float>({0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.75f, -2.0f, 1.0f, 0.0f}, {3, kIn});
}

TEST(OnnxImport, RunsTheGraphOnEveryDevice) {
  auto model = onnx::load_from_bytes(bytes_of(mlp_model()), "mlp");
  ASSERT_EQ(model->inputs().size(), 1u);
  EXPECT_EQ(model->inputs()[0].name, "x");
  EXPECT_EQ(model->opset(), 13);
  const Tensor x = sample_input();
  const auto ref = reference_mlp(x.to_vector<double>(), 3);
  for (const Device d : device_manager().devices()) {
    model->to(d);
    NoGradGuard no_grad;
    const Tensor y = model->forward(x.to(d));
    EXPECT_EQ(y.device(), d);
    ASSERT_EQ(y.shape(), (Shape{3, kOut}));
    const auto got = y.to_vector<double>();
    for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-5) << d.str() << " element " << i;
  }
}

TEST(OnnxImport, InitializersAreNamedTrainableParameters) {
  auto model = onnx::load_from_bytes(bytes_of(mlp_model()), "mlp");
  std::vector<std::string> names;
  for (const auto& [name, t] : model->named_parameters()) {
    names.push_back(name);
    EXPECT_TRUE(t.requires_grad()) << name;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"fc.weight", "fc.bias", "head.weight"}));

  // d(sum(probs * c))/d(fc.bias) by autograd against central differences, in float64.
  model->to(DType::Float64);
  const Tensor x = sample_input().to(DType::Float64);
  const Tensor c = tensor<double>({1, -2, 0.5, 3, -1, 2}, {3, kOut});
  Tensor bias = model->named_parameters()[1].second;
  sum(mul(model->forward(x), c)).backward();
  const auto grad = bias.grad().to_vector<double>();
  NoGradGuard no_grad;
  for (int64_t j = 0; j < kHidden; ++j) {
    const double h = 1e-6, orig = bias.at({j}).to_double();
    auto loss_at = [&](double v) {
      Tensor e = bias.select(0, j);
      e.fill_(v);
      return sum(mul(model->forward(x), c)).item<double>();
    };
    const double fd = (loss_at(orig + h) - loss_at(orig - h)) / (2 * h);
    loss_at(orig);
    EXPECT_NEAR(grad[size_t(j)], fd, 1e-6) << "fc.bias[" << j << "]";
  }
}

TEST(OnnxImport, ErrorsNameTheNodeAndOp) {
  auto m = mlp_model();
  m.mutable_graph()->mutable_node(1)->set_op_type("NoSuchOp");
  expect_error([&] { onnx::load_from_bytes(bytes_of(m), "bad.onnx"); }, "onnx::load");

  // An op kiln lacks, in a model ONNX's checker accepts.
  m = mlp_model();
  m.mutable_opset_import(0)->set_version(15);  // Bernoulli's first opset
  m.mutable_graph()->mutable_node(1)->set_op_type("Bernoulli");
  expect_error([&] { onnx::load_from_bytes(bytes_of(m), "bernoulli.onnx"); }, "onnx::load",
               "node 'act' (Bernoulli): operator Bernoulli is not supported");

  // Data that disagrees with the dims.
  m = mlp_model();
  m.mutable_graph()->mutable_initializer(1)->add_float_data(1.0f);
  expect_error([&] { onnx::load_from_bytes(bytes_of(m), "short.onnx"); }, "onnx::load", "fc.bias");

  // A value used before any node defines it.
  m = mlp_model();
  m.mutable_graph()->mutable_node(2)->set_input(0, "nowhere");
  expect_error([&] { onnx::load_from_bytes(bytes_of(m), "undefined.onnx"); }, "onnx::load");

  // Inconsistent shapes: head.weight no longer matches the hidden size. ONNX's Gemm shape
  // inference does not compare the inner dims, so the product names the node when it runs.
  m = mlp_model();
  auto* w = m.mutable_graph()->mutable_initializer(2);
  w->set_dims(1, kHidden + 1);
  w->add_float_data(0.f);
  w->add_float_data(0.f);
  auto inconsistent = onnx::load_from_bytes(bytes_of(m), "shapes.onnx");
  expect_error([&] { inconsistent->forward(zeros({2, kIn})); }, "onnx", "node 'head' (Gemm): [matmul]");

  // Running with a wrong input: the shape the model declares is named.
  auto model = onnx::load_from_bytes(bytes_of(mlp_model()), "mlp");
  expect_error([&] { model->forward(zeros({2, 5})); }, "onnx", "input 'x' must have shape [?, 3]");
  expect_error([&] { model->forward(zeros({2, 3}, DType::Int64)); }, "onnx", "must be float");
  expect_error([&] { model->forward(std::vector<Tensor>{}); }, "onnx", "takes 1 inputs");
  expect_error([&] { onnx::load("/nonexistent/model.onnx"); }, "onnx::load", "cannot open");
  expect_error([&] { onnx::load_from_bytes("not a model at all", "junk"); }, "onnx::load");
}

TEST(OnnxImport, RuntimeErrorsNameTheNode) {
  // Reshape to a shape whose size disagrees with the input: caught when it runs.
  ::onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(13);
  auto* g = m.mutable_graph();
  g->set_name("reshape");
  add_value(g->add_input(), "x", {"N"});
  add_value(g->add_output(), "y", {"A", "B"});
  auto* shape = g->add_initializer();
  shape->set_name("shape");
  shape->set_data_type(::onnx::TensorProto::INT64);
  shape->add_dims(2);
  shape->add_int64_data(2);
  shape->add_int64_data(2);
  add_node(g, "Reshape", {"x", "shape"}, {"y"}, "to2x2");
  auto model = onnx::load_from_bytes(bytes_of(m), "reshape");
  EXPECT_EQ(model->forward(arange(4, DType::Float32)).shape(), (Shape{2, 2}));
  expect_error([&] { model->forward(arange(5, DType::Float32)); }, "onnx", "node 'to2x2' (Reshape)");
}

// Truncations and byte flips of a valid file: each load (and run, when it loads) either
// works or raises kiln::Error. A crash or another exception type fails the test.
TEST(OnnxImport, CorruptedFilesNeverCrash) {
  const std::string good = bytes_of(mlp_model());
  std::mt19937 rng(1234);
  int loaded = 0, rejected = 0;
  auto attempt = [&](const std::string& bytes) {
    try {
      auto model = onnx::load_from_bytes(bytes, "corrupt");
      ++loaded;
      std::vector<Tensor> inputs;
      for (const auto& info : model->inputs()) {
        Shape s;
        for (int64_t d : info.dims) s.push_back(d < 0 ? 2 : std::min<int64_t>(d, 64));
        inputs.push_back(zeros(s));
      }
      NoGradGuard no_grad;
      model->forward(inputs);
    } catch (const Error&) {
      ++rejected;
    }
  };
  for (size_t len = 0; len < good.size(); len += 7) attempt(good.substr(0, len));
  for (int i = 0; i < 1500; ++i) {
    std::string bad = good;
    const int flips = 1 + int(rng() % 4);
    for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] = char(rng() & 0xff);
    attempt(bad);
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(loaded, 0);
}

}  // namespace
}  // namespace kiln
