// kiln::onnx::save: traces a module's forward layer by layer into an opset-17 graph.
// Each known layer type (matched exactly, so a subclass with its own forward is refused)
// becomes its ONNX nodes, with its parameters and buffers as initializers under their
// state_dict names; the example input runs through each layer alongside, giving the
// shapes. The model must then pass ONNX's checker and strict shape inference, and the
// exported graph, run by kiln's importer, must reproduce module.forward(example).
#include <cmath>
#include <fstream>
#include <typeinfo>

#include "kiln/autograd.h"
#include "kiln/nn.h"
#include "kiln/onnx.h"
#include "kiln/ops.h"
#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"
#include "src/onnx/tensor_proto.h"

namespace kiln::onnx {

namespace {

constexpr const char* kOp = "onnx::save";
constexpr int64_t kOpset = 17;

std::string join(const std::string& prefix, const std::string& name) { return prefix.empty() ? name : prefix + "." + name; }

class Tracer {
 public:
  explicit Tracer(::onnx::GraphProto* g) : g_(g) {}

  // Emits m's nodes reading value `in` (whose example value is x); returns the output
  // value's name and advances x through m.
  std::string emit(nn::Module& m, const std::string& path, const std::string& in, Tensor& x) {
    const std::string out = trace(m, path, in, x);
    if (typeid(m) != typeid(nn::SequentialImpl)) x = m.forward(x);
    return out;
  }

 private:
  template <class M>
  static const M* as(const nn::Module& m) {
    return typeid(m) == typeid(M) ? static_cast<const M*>(&m) : nullptr;
  }

  std::string trace(nn::Module& m, const std::string& path, const std::string& in, Tensor& x) {
    const std::string where = path.empty() ? "the module" : "module '" + path + "'";
    if (typeid(m) == typeid(nn::SequentialImpl)) {
      std::string v = in;
      for (const auto& [name, child] : m.named_children()) v = emit(*child, join(path, name), v, x);
      return v;
    }
    if (as<nn::IdentityImpl>(m) || as<nn::DropoutImpl>(m)) return in;  // eval mode: identity
    if (as<nn::ReLUImpl>(m)) return node("Relu", {in}, path);
    if (as<nn::SiLUImpl>(m)) return node("Mul", {in, node("Sigmoid", {in}, path)}, path);
    if (const auto* l = as<nn::GELUImpl>(m)) return gelu(in, l->approximate, path);
    if (const auto* l = as<nn::LinearImpl>(m)) {
      const std::string w = initializer(join(path, "weight"), l->weight);
      if (x.dim() == 2) {
        std::vector<std::string> ins{in, w};
        if (l->bias.defined()) ins.push_back(initializer(join(path, "bias"), l->bias));
        return node("Gemm", ins, path, {int_attr("transB", 1)});
      }
      std::string y = node("MatMul", {in, node("Transpose", {w}, path, {ints_attr("perm", {1, 0})})}, path);
      if (l->bias.defined()) y = node("Add", {y, initializer(join(path, "bias"), l->bias)}, path);
      return y;
    }
    if (const auto* l = as<nn::Conv2dImpl>(m)) {
      std::vector<std::string> ins{in, initializer(join(path, "weight"), l->weight)};
      if (l->bias.defined()) ins.push_back(initializer(join(path, "bias"), l->bias));
      return node("Conv", ins, path,
                  {ints_attr("kernel_shape", {l->kernel_size[0], l->kernel_size[1]}),
                   ints_attr("strides", {l->stride[0], l->stride[1]}),
                   ints_attr("pads", {l->padding[0], l->padding[1], l->padding[0], l->padding[1]}),
                   ints_attr("dilations", {l->dilation[0], l->dilation[1]}), int_attr("group", l->groups)});
    }
    if (const auto* l = as<nn::ConvTranspose2dImpl>(m)) {
      std::vector<std::string> ins{in, initializer(join(path, "weight"), l->weight)};
      if (l->bias.defined()) ins.push_back(initializer(join(path, "bias"), l->bias));
      return node("ConvTranspose", ins, path,
                  {ints_attr("kernel_shape", {l->kernel_size[0], l->kernel_size[1]}),
                   ints_attr("strides", {l->stride[0], l->stride[1]}),
                   ints_attr("pads", {l->padding[0], l->padding[1], l->padding[0], l->padding[1]}),
                   ints_attr("output_padding", {l->output_padding[0], l->output_padding[1]}),
                   ints_attr("dilations", {l->dilation[0], l->dilation[1]}), int_attr("group", l->groups)});
    }
    if (const auto* l = as<nn::BatchNorm2dImpl>(m)) {
      KILN_CHECK(l->track_running_stats && l->running_mean.defined(), kOp, where,
                 ": BatchNorm2d without running statistics normalises with batch statistics, which ONNX inference "
                 "graphs do not express");
      const int64_t c = l->num_features;
      const Tensor ones_c = ones({c}, TensorOptions(l->running_mean.dtype())),
                   zeros_c = zeros({c}, TensorOptions(l->running_mean.dtype()));
      const std::string scale = l->weight.defined() ? initializer(join(path, "weight"), l->weight)
                                                    : initializer(join(path, "weight"), ones_c);
      const std::string bias = l->bias.defined() ? initializer(join(path, "bias"), l->bias)
                                                 : initializer(join(path, "bias"), zeros_c);
      return node("BatchNormalization",
                  {in, scale, bias, initializer(join(path, "running_mean"), l->running_mean),
                   initializer(join(path, "running_var"), l->running_var)},
                  path, {float_attr("epsilon", l->eps)});
    }
    if (const auto* l = as<nn::LayerNormImpl>(m)) {
      const int64_t rank = l->weight.defined() ? l->weight.dim() : 1;
      KILN_CHECK(l->weight.defined(), kOp, where, ": LayerNorm without elementwise_affine is not exported");
      std::vector<std::string> ins{in, initializer(join(path, "weight"), l->weight)};
      if (l->bias.defined()) ins.push_back(initializer(join(path, "bias"), l->bias));
      return node("LayerNormalization", ins, path, {int_attr("axis", -rank), float_attr("epsilon", l->eps)});
    }
    if (const auto* l = as<nn::MaxPool2dImpl>(m)) {
      const Pair s = l->stride[0] == 0 ? l->kernel_size : l->stride;
      return node("MaxPool", {in}, path,
                  {ints_attr("kernel_shape", {l->kernel_size[0], l->kernel_size[1]}), ints_attr("strides", {s[0], s[1]}),
                   ints_attr("pads", {l->padding[0], l->padding[1], l->padding[0], l->padding[1]}),
                   ints_attr("dilations", {l->dilation[0], l->dilation[1]}), int_attr("ceil_mode", l->ceil_mode)});
    }
    if (const auto* l = as<nn::AvgPool2dImpl>(m)) {
      const Pair s = l->stride[0] == 0 ? l->kernel_size : l->stride;
      return node("AveragePool", {in}, path,
                  {ints_attr("kernel_shape", {l->kernel_size[0], l->kernel_size[1]}), ints_attr("strides", {s[0], s[1]}),
                   ints_attr("pads", {l->padding[0], l->padding[1], l->padding[0], l->padding[1]}),
                   int_attr("ceil_mode", l->ceil_mode), int_attr("count_include_pad", l->count_include_pad)});
    }
    if (const auto* l = as<nn::AdaptiveAvgPool2dImpl>(m)) {
      KILN_CHECK(x.dim() == 4, kOp, where, ": AdaptiveAvgPool2d is exported for 4-D inputs, got ", shape_str(x.shape()));
      if (l->output_size[0] == 1 && l->output_size[1] == 1) return node("GlobalAveragePool", {in}, path);
      const int64_t h = x.size(2), w = x.size(3), oh = l->output_size[0], ow = l->output_size[1];
      KILN_CHECK(oh > 0 && ow > 0 && h % oh == 0 && w % ow == 0, kOp, where, ": AdaptiveAvgPool2d from ", h, "x", w,
                 " to ", oh, "x", ow, " has unequal windows, which ONNX's AveragePool cannot express");
      return node("AveragePool", {in}, path,
                  {ints_attr("kernel_shape", {h / oh, w / ow}), ints_attr("strides", {h / oh, w / ow})});
    }
    if (const auto* l = as<nn::FlattenImpl>(m)) {
      const int64_t r = x.dim();
      const int64_t s = l->start_dim < 0 ? l->start_dim + r : l->start_dim, e = l->end_dim < 0 ? l->end_dim + r : l->end_dim;
      if (e == r - 1 && s == 1) return node("Flatten", {in}, path, {int_attr("axis", s)});
      // Dims before start_dim copied (0), the flattened run inferred (-1), the rest kept.
      std::vector<int64_t> shape;
      for (int64_t d = 0; d < s; ++d) shape.push_back(0);
      shape.push_back(-1);
      for (int64_t d = e + 1; d < r; ++d) shape.push_back(x.size(d));
      return node("Reshape", {in, initializer(join(path, "shape"), tensor<int64_t>(shape, {int64_t(shape.size())}))}, path);
    }
    if (const auto* l = as<nn::EmbeddingImpl>(m)) {
      return node("Gather", {initializer(join(path, "weight"), l->weight), in}, path);
    }
    KILN_FAIL(kOp, "cannot export ", where, " of type ", m.type_name(),
              " (exported: Sequential, Linear, Conv2d, ConvTranspose2d, BatchNorm2d, LayerNorm, MaxPool2d, AvgPool2d, "
              "AdaptiveAvgPool2d, Flatten, Embedding, ReLU, GELU, SiLU, Dropout, Identity)");
  }

  std::string gelu(const std::string& in, const std::string& approximate, const std::string& path) {
    const DType t = DType::Float32;
    if (approximate == "tanh") {
      // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      const std::string x3 = node("Mul", {in, node("Mul", {in, in}, path)}, path);
      const std::string inner = node("Mul", {node("Add", {in, node("Mul", {x3, constant(0.044715, t, path)}, path)}, path),
                                            constant(std::sqrt(2.0 / M_PI), t, path)},
                                     path);
      const std::string half_x = node("Mul", {in, constant(0.5, t, path)}, path);
      return node("Mul", {half_x, node("Add", {node("Tanh", {inner}, path), constant(1.0, t, path)}, path)}, path);
    }
    // 0.5 x (1 + erf(x / sqrt(2)))
    const std::string e = node("Erf", {node("Mul", {in, constant(M_SQRT1_2, t, path)}, path)}, path);
    const std::string half_x = node("Mul", {in, constant(0.5, t, path)}, path);
    return node("Mul", {half_x, node("Add", {e, constant(1.0, t, path)}, path)}, path);
  }

  ::onnx::AttributeProto int_attr(const std::string& name, int64_t v) {
    ::onnx::AttributeProto a;
    a.set_name(name);
    a.set_type(::onnx::AttributeProto::INT);
    a.set_i(v);
    return a;
  }
  ::onnx::AttributeProto float_attr(const std::string& name, double v) {
    ::onnx::AttributeProto a;
    a.set_name(name);
    a.set_type(::onnx::AttributeProto::FLOAT);
    a.set_f(float(v));
    return a;
  }
  ::onnx::AttributeProto ints_attr(const std::string& name, const std::vector<int64_t>& v) {
    ::onnx::AttributeProto a;
    a.set_name(name);
    a.set_type(::onnx::AttributeProto::INTS);
    for (int64_t i : v) a.add_ints(i);
    return a;
  }

  // A node with one output; returns the output's name.
  std::string node(const std::string& op, const std::vector<std::string>& inputs, const std::string& path,
                   const std::vector<::onnx::AttributeProto>& attrs = {}) {
    auto* n = g_->add_node();
    n->set_op_type(op);
    const std::string id = std::to_string(counter_++);
    n->set_name((path.empty() ? "" : "/" + path + "/") + op + "_" + id);
    for (const auto& i : inputs) n->add_input(i);
    const std::string out = op + "_" + id;
    n->add_output(out);
    for (const auto& a : attrs) *n->add_attribute() = a;
    return out;
  }

  std::string initializer(const std::string& name, const Tensor& t) {
    detail::tensor_to_proto(t, name, *g_->add_initializer());
    return name;
  }

  std::string constant(double v, DType t, const std::string& path) {
    return initializer("const_" + std::to_string(counter_++), full({}, v, TensorOptions(t)));
  }

  ::onnx::GraphProto* g_;
  int counter_ = 0;
};

void set_value_info(::onnx::ValueInfoProto* v, const std::string& name, const Tensor& t) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(detail::onnx_from_dtype(t.dtype()));
  auto* shape = tt->mutable_shape();
  for (int64_t d = 0; d < t.dim(); ++d) {
    auto* dim = shape->add_dim();
    if (d == 0) dim->set_dim_param("batch");  // the batch size stays free
    else dim->set_dim_value(t.size(d));
  }
}

}  // namespace

void save(nn::Module& module, const std::vector<Tensor>& example_inputs, const std::string& path) {
  KILN_CHECK(example_inputs.size() == 1 && example_inputs[0].defined(), kOp,
             "modules with one input are exported; got ", example_inputs.size(), " example inputs");
  const bool was_training = module.is_training();
  module.eval();
  struct Restore {
    nn::Module& m;
    bool training;
    ~Restore() { m.train(training); }
  } restore{module, was_training};
  NoGradGuard no_grad;

  ::onnx::ModelProto model;
  model.set_ir_version(8);
  model.set_producer_name("kiln");
  model.set_producer_version(KILN_VERSION);
  model.add_opset_import()->set_version(kOpset);
  auto* g = model.mutable_graph();
  g->set_name(module.type_name());
  // The example runs through each layer on the module's device, giving the shapes.
  const Device device = [&] {
    const auto params = module.parameters();
    return params.empty() ? example_inputs[0].device() : params[0].device();
  }();
  const Tensor example = example_inputs[0].to(device);
  set_value_info(g->add_input(), "input", example);
  Tensor x = example;
  Tracer tracer(g);
  const std::string out = tracer.emit(module, "", "input", x);
  auto* identity = g->add_node();  // name the graph output "output"
  identity->set_op_type("Identity");
  identity->set_name("/output");
  identity->add_input(out);
  identity->add_output("output");
  set_value_info(g->add_output(), "output", x);

  try {
    ::onnx::checker::check_model(model);
    ::onnx::ShapeInferenceOptions options(true, 1, false);
    ::onnx::shape_inference::InferShapes(model, ::onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    KILN_FAIL(kOp, "the exported graph fails ONNX's checks (a kiln bug): ", e.what());
  }
  std::string bytes;
  KILN_CHECK(model.SerializeToString(&bytes), kOp, "cannot serialise the model (over 2 GiB?)");

  // The graph must compute what the module's own forward computes.
  auto reloaded = load_from_bytes(bytes, path);
  reloaded->to(device);
  const Tensor want = module.forward(example), got = reloaded->forward(example);
  KILN_CHECK(got.shape() == want.shape() && allclose(got.to(want.dtype()), want, 1e-4, 1e-5), kOp,
             "the exported graph does not reproduce the module's forward (a layer with a custom forward?)");

  std::ofstream f(path, std::ios::binary);
  KILN_CHECK(f.good(), kOp, "cannot write '", path, "'");
  f.write(bytes.data(), std::streamsize(bytes.size()));
  KILN_CHECK(f.good(), kOp, "cannot write '", path, "'");
}

}  // namespace kiln::onnx
