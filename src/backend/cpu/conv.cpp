// CPU kernels: conv2d forward, backward data, backward weights (+ bias) and
// conv_transpose2d. float32/bfloat16 run oneDNN primitives in its preferred (blocked)
// layouts, reordering from and to the tensors' layout (NCHW/OIHW, or NHWC/OHWI when
// Conv2dAttrs::channels_last); float16 goes through float32 where oneDNN lacks it;
// float64 (and any case oneDNN rejects) uses plain OpenMP loops over NCHW copies.
//
// conv_transpose2d is the backward-data pass of the convolution whose input is its
// output, so both share one path; its bias is added afterwards.
#include <array>
#include <vector>

#include "kiln/op_attrs.h"
#include "src/backend/cpu/dnnl_utils.h"
#include "src/backend/cpu/dnnl_weight_cache.h"
#include "src/backend/cpu/linalg_family.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/parallel.h"

namespace kiln::cpu {

namespace {
namespace du = dnnl_utils;
using dims = dnnl::memory::dims;
using tag = dnnl::memory::format_tag;

enum class Pass { Forward, BackwardData, BackwardWeights };

// Geometry of the convolution x [n, c, h, w] * w [o, c/g, kh, kw] -> y [n, o, oh, ow].
struct Geom {
  int64_t n, c, h, w, o, oh, ow, kh, kw, g;
  std::array<int64_t, 2> s, p, d, pr;  // pr: bottom/right padding that makes the sizes exact (oneDNN's rule)
  bool cl;                             // tensors are NHWC / weights OHWI
};

Geom geometry(const Shape& x, const Shape& wt, const Shape& y, const Conv2dAttrs& a) {
  Geom q{x[0], x[1], x[2], x[3], wt[0], y[2], y[3], wt[2], wt[3], a.groups, a.stride, a.padding, a.dilation, {},
         a.channels_last};
  const int64_t in[2] = {q.h, q.w}, out[2] = {q.oh, q.ow}, k[2] = {q.kh, q.kw};
  for (int i = 0; i < 2; ++i) q.pr[size_t(i)] = (out[i] - 1) * q.s[size_t(i)] + (k[i] - 1) * q.d[size_t(i)] + 1 - in[i] - q.p[size_t(i)];
  return q;
}

// ------------------------------------------------------------------ oneDNN path

struct Arg {
  int id;                            // DNNL_ARG_*
  int tensor;                        // index into the call's tensors (inputs then outputs)
  bool output;
  dnnl::memory::desc user, prim;     // NCHW/OIHW as kiln stores it; what the primitive wants
  std::optional<dnnl::reorder> reorder;  // user -> prim for inputs, prim -> user for outputs
};

struct ConvPrimitive {
  std::optional<dnnl::primitive> prim;  // empty: oneDNN has no implementation
  std::vector<Arg> args;
  dnnl::memory::desc scratchpad;
};

dnnl::memory::desc weights_md(const Geom& q, dnnl::memory::data_type dt, bool any) {
  const int64_t og = q.o / q.g, cg = q.c / q.g;
  if (q.cl && !any) {  // OHWI: [o][kh][kw][c/g], seen as [g][o/g][c/g][kh][kw] when grouped
    const int64_t so = q.kh * q.kw * cg, sc = 1, sh = q.kw * cg, sw = cg;
    if (q.g == 1) return dnnl::memory::desc(dims{q.o, q.c, q.kh, q.kw}, dt, dims{so, sc, sh, sw});
    return dnnl::memory::desc(dims{q.g, og, cg, q.kh, q.kw}, dt, dims{og * so, so, sc, sh, sw});
  }
  if (q.g == 1) return dnnl::memory::desc(dims{q.o, q.c, q.kh, q.kw}, dt, any ? tag::any : tag::oihw);
  return dnnl::memory::desc(dims{q.g, og, cg, q.kh, q.kw}, dt, any ? tag::any : tag::goihw);
}

void add_arg(ConvPrimitive& p, int id, int tensor, bool output, const dnnl::memory::desc& user,
             const dnnl::memory::desc& prim) {
  Arg a{id, tensor, output, user, prim, std::nullopt};
  if (user != prim)
    a.reorder.emplace(output ? dnnl::reorder::primitive_desc(du::engine(), prim, du::engine(), user)
                             : dnnl::reorder::primitive_desc(du::engine(), user, du::engine(), prim));
  p.args.push_back(std::move(a));
}

// Tensors of one call, in the order the Arg indices use: for Forward x, w, (bias), y;
// BackwardData dy, w, dx; BackwardWeights dy, x, dw, (dbias).
ConvPrimitive build(Pass pass, const Geom& q, dnnl::memory::data_type dt, bool bias) {
  ConvPrimitive p;
  const dnnl::memory::desc x_any(dims{q.n, q.c, q.h, q.w}, dt, tag::any), y_any(dims{q.n, q.o, q.oh, q.ow}, dt, tag::any);
  const tag act = q.cl ? tag::nhwc : tag::nchw;
  const dnnl::memory::desc x_user(dims{q.n, q.c, q.h, q.w}, dt, act), y_user(dims{q.n, q.o, q.oh, q.ow}, dt, act);
  const dnnl::memory::desc w_any = weights_md(q, dt, true), w_user = weights_md(q, dt, false);
  const dnnl::memory::desc b_md = bias ? dnnl::memory::desc(dims{q.o}, dt, tag::x) : dnnl::memory::desc();
  const dims strides{q.s[0], q.s[1]}, dil{q.d[0] - 1, q.d[1] - 1}, pl{q.p[0], q.p[1]}, pr{q.pr[0], q.pr[1]};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto alg = dnnl::algorithm::convolution_direct;
  try {
    const auto prop = pass == Pass::Forward ? dnnl::prop_kind::forward_inference : dnnl::prop_kind::forward_training;
    dnnl::convolution_forward::primitive_desc fwd(
        dnnl::convolution_forward::desc(prop, alg, x_any, w_any, pass == Pass::Forward ? b_md : dnnl::memory::desc(),
                                        y_any, strides, dil, pl, pr),
        attr, du::engine());
    if (pass == Pass::Forward) {
      add_arg(p, DNNL_ARG_SRC, 0, false, x_user, fwd.src_desc());
      add_arg(p, DNNL_ARG_WEIGHTS, 1, false, w_user, fwd.weights_desc());
      if (bias) add_arg(p, DNNL_ARG_BIAS, 2, false, b_md, fwd.bias_desc());
      add_arg(p, DNNL_ARG_DST, bias ? 3 : 2, true, y_user, fwd.dst_desc());
      p.scratchpad = fwd.scratchpad_desc();
      p.prim.emplace(dnnl::convolution_forward(fwd));
    } else if (pass == Pass::BackwardData) {
      dnnl::convolution_backward_data::primitive_desc bwd(
          dnnl::convolution_backward_data::desc(alg, x_any, w_any, y_any, strides, dil, pl, pr), attr, du::engine(),
          fwd);
      add_arg(p, DNNL_ARG_DIFF_DST, 0, false, y_user, bwd.diff_dst_desc());
      add_arg(p, DNNL_ARG_WEIGHTS, 1, false, w_user, bwd.weights_desc());
      add_arg(p, DNNL_ARG_DIFF_SRC, 2, true, x_user, bwd.diff_src_desc());
      p.scratchpad = bwd.scratchpad_desc();
      p.prim.emplace(dnnl::convolution_backward_data(bwd));
    } else {
      dnnl::convolution_backward_weights::primitive_desc bwd(
          dnnl::convolution_backward_weights::desc(alg, x_any, w_any, b_md, y_any, strides, dil, pl, pr), attr,
          du::engine(), fwd);
      add_arg(p, DNNL_ARG_DIFF_DST, 0, false, y_user, bwd.diff_dst_desc());
      add_arg(p, DNNL_ARG_SRC, 1, false, x_user, bwd.src_desc());
      add_arg(p, DNNL_ARG_DIFF_WEIGHTS, 2, true, w_user, bwd.diff_weights_desc());
      if (bias) add_arg(p, DNNL_ARG_DIFF_BIAS, 3, true, b_md, bwd.diff_bias_desc());
      p.scratchpad = bwd.scratchpad_desc();
      p.prim.emplace(dnnl::convolution_backward_weights(bwd));
    }
  } catch (const dnnl::error&) {
    p.prim.reset();
    p.args.clear();
  }
  return p;
}

// Runs the pass through oneDNN; false when oneDNN can't (the caller falls back).
bool run_dnnl(Pass pass, const Geom& q, const std::vector<Tensor>& tensors, bool bias) {
  const auto dt = du::dnnl_type(tensors[0].dtype());
  if (!dt) return false;
  du::KeyBuilder key;
  key << "conv" << int(pass) << int(*dt) << bias << q.n << q.c << q.h << q.w << q.o << q.oh << q.ow << q.kh << q.kw
      << q.g << q.s[0] << q.s[1] << q.p[0] << q.p[1] << q.d[0] << q.d[1] << q.pr[0] << q.pr[1] << q.cl;
  auto entry = du::primitive_cache().get<ConvPrimitive>(key.str(), [&] { return build(pass, q, *dt, bias); });
  if (!entry->prim) return false;
  auto& strm = du::stream();
  std::unordered_map<int, dnnl::memory> margs;
  std::vector<du::TempMemory> temps;                          // reorder buffers of this call
  std::vector<std::pair<const Arg*, dnnl::memory>> pending;  // outputs computed in another layout
  for (const Arg& a : entry->args) {
    const Tensor& t = tensors[size_t(a.tensor)];
    if (!a.reorder) {
      margs.emplace(a.id, du::wrap(a.user, t));
      continue;
    }
    if (a.id == DNNL_ARG_WEIGHTS) {  // an input: reordered once per weight version
      temps.push_back(du::reordered_weights(t, a.user, a.prim, *a.reorder));
      margs.emplace(a.id, temps.back().memory);
      continue;
    }
    temps.push_back(du::temp_memory(a.prim));
    dnnl::memory tmp = temps.back().memory, user = du::wrap(a.user, t);
    if (!a.output) a.reorder->execute(strm, user, tmp);
    else pending.emplace_back(&a, user);
    margs.emplace(a.id, tmp);
  }
  margs.emplace(DNNL_ARG_SCRATCHPAD, du::scratchpad(entry->scratchpad));
  entry->prim->execute(strm, margs);
  for (auto& [a, user] : pending) a->reorder->execute(strm, margs.at(a->id), user);
  strm.wait();
  return true;
}

// ------------------------------------------------------------------ loops (float64, fallback)

template <typename T>
void forward_loops(const Geom& q, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = q.c / q.g, og = q.o / q.g;
#pragma omp parallel for collapse(2) if (q.n * q.o * q.oh * q.ow * cg * q.kh * q.kw > kParallelGrain)
  for (int64_t n = 0; n < q.n; ++n)
    for (int64_t o = 0; o < q.o; ++o) {
      const int64_t g = o / og;
      for (int64_t i = 0; i < q.oh; ++i)
        for (int64_t j = 0; j < q.ow; ++j) {
          double acc = b ? double(b[o]) : 0.0;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t u = 0; u < q.kh; ++u) {
              const int64_t ih = i * q.s[0] - q.p[0] + u * q.d[0];
              if (ih < 0 || ih >= q.h) continue;
              for (int64_t v = 0; v < q.kw; ++v) {
                const int64_t iw = j * q.s[1] - q.p[1] + v * q.d[1];
                if (iw < 0 || iw >= q.w) continue;
                acc += double(x[((n * q.c + g * cg + c) * q.h + ih) * q.w + iw]) *
                       double(w[((o * cg + c) * q.kh + u) * q.kw + v]);
              }
            }
          y[((n * q.o + o) * q.oh + i) * q.ow + j] = T(acc);
        }
    }
}

// dx[n, c] gathers from every (o, position) that read it; one thread per (n, c) plane.
template <typename T>
void backward_data_loops(const Geom& q, const T* dy, const T* w, T* dx) {
  const int64_t cg = q.c / q.g, og = q.o / q.g;
#pragma omp parallel for collapse(2) if (q.n * q.o * q.oh * q.ow * cg * q.kh * q.kw > kParallelGrain)
  for (int64_t n = 0; n < q.n; ++n)
    for (int64_t c = 0; c < q.c; ++c) {
      const int64_t g = c / cg, cl = c % cg;
      std::vector<double> acc(size_t(q.h * q.w), 0.0);
      for (int64_t ol = 0; ol < og; ++ol) {
        const int64_t o = g * og + ol;
        for (int64_t i = 0; i < q.oh; ++i)
          for (int64_t j = 0; j < q.ow; ++j) {
            const double gy = double(dy[((n * q.o + o) * q.oh + i) * q.ow + j]);
            for (int64_t u = 0; u < q.kh; ++u) {
              const int64_t ih = i * q.s[0] - q.p[0] + u * q.d[0];
              if (ih < 0 || ih >= q.h) continue;
              for (int64_t v = 0; v < q.kw; ++v) {
                const int64_t iw = j * q.s[1] - q.p[1] + v * q.d[1];
                if (iw < 0 || iw >= q.w) continue;
                acc[size_t(ih * q.w + iw)] += gy * double(w[((o * cg + cl) * q.kh + u) * q.kw + v]);
              }
            }
          }
      }
      T* out = dx + (n * q.c + c) * q.h * q.w;
      for (int64_t k = 0; k < q.h * q.w; ++k) out[k] = T(acc[size_t(k)]);
    }
}

template <typename T>
void backward_weights_loops(const Geom& q, const T* dy, const T* x, T* dw, T* db) {
  const int64_t cg = q.c / q.g, og = q.o / q.g;
#pragma omp parallel for if (q.n * q.o * q.oh * q.ow * cg * q.kh * q.kw > kParallelGrain)
  for (int64_t o = 0; o < q.o; ++o) {
    const int64_t g = o / og;
    for (int64_t c = 0; c < cg; ++c)
      for (int64_t u = 0; u < q.kh; ++u)
        for (int64_t v = 0; v < q.kw; ++v) {
          double acc = 0;
          for (int64_t n = 0; n < q.n; ++n)
            for (int64_t i = 0; i < q.oh; ++i) {
              const int64_t ih = i * q.s[0] - q.p[0] + u * q.d[0];
              if (ih < 0 || ih >= q.h) continue;
              for (int64_t j = 0; j < q.ow; ++j) {
                const int64_t iw = j * q.s[1] - q.p[1] + v * q.d[1];
                if (iw < 0 || iw >= q.w) continue;
                acc += double(dy[((n * q.o + o) * q.oh + i) * q.ow + j]) *
                       double(x[((n * q.c + g * cg + c) * q.h + ih) * q.w + iw]);
              }
            }
          dw[((o * cg + c) * q.kh + u) * q.kw + v] = T(acc);
        }
    if (db) {
      double acc = 0;
      for (int64_t n = 0; n < q.n; ++n)
        for (int64_t k = 0; k < q.oh * q.ow; ++k) acc += double(dy[(n * q.o + o) * q.oh * q.ow + k]);
      db[o] = T(acc);
    }
  }
}

template <typename T>
void run_loops(Pass pass, const Geom& q, const std::vector<Tensor>& t, bool bias) {
  auto p = [&](size_t i) { return t[i].data<T>(); };
  switch (pass) {
    case Pass::Forward: return forward_loops<T>(q, p(0), p(1), bias ? p(2) : nullptr, p(bias ? 3 : 2));
    case Pass::BackwardData: return backward_data_loops<T>(q, p(0), p(1), p(2));
    case Pass::BackwardWeights: return backward_weights_loops<T>(q, p(0), p(1), p(2), bias ? p(3) : nullptr);
  }
}

size_t output_count(Pass pass, bool bias) { return (pass == Pass::BackwardWeights && bias) ? 2 : 1; }

// Runs the pass on copies of t made by `convert`, then copies the outputs back.
template <typename F>
void run_on_copies(Pass pass, const Geom& q, const std::vector<Tensor>& t, bool bias, F convert);

// tensors: the pass's inputs then outputs (see build()); all contiguous in q's layout, one dtype.
void run_pass(Pass pass, const Geom& q, const std::vector<Tensor>& t, bool bias) {
  const DType dt = t[0].dtype();
  if ((dt == DType::Float32 || dt == DType::BFloat16 || dt == DType::Float16) && run_dnnl(pass, q, t, bias)) return;
  if (dt == DType::Float16 || dt == DType::BFloat16) {  // compute in float32 (same layout), round once
    run_on_copies(pass, q, t, bias, [](const Tensor& x) { return x.to(DType::Float32); });
    return;
  }
  if (q.cl) {  // the loops index NCHW
    Geom nchw = q;
    nchw.cl = false;
    run_on_copies(pass, nchw, t, bias, [](const Tensor& x) { return x.contiguous(); });
    return;
  }
  KILN_DISPATCH_FLOATING(dt, "conv2d", [&]<typename T>() { run_loops<T>(pass, q, t, bias); });
}

template <typename F>
void run_on_copies(Pass pass, const Geom& q, const std::vector<Tensor>& t, bool bias, F convert) {
  std::vector<Tensor> copies;
  for (const Tensor& x : t) copies.push_back(convert(x));
  run_pass(pass, q, copies, bias);
  for (size_t i = t.size() - output_count(pass, bias); i < t.size(); ++i) {
    Tensor dst = t[i];
    if (!dst.is_same(copies[i])) dst.copy_(copies[i]);
  }
}

// ------------------------------------------------------------------ kernels

std::vector<Tensor> gather(const KernelArgs& a) {
  std::vector<Tensor> t(a.inputs.begin(), a.inputs.end());
  t.insert(t.end(), a.outputs.begin(), a.outputs.end());
  return t;
}

// in: x, w, (bias); out: y
void conv2d_kernel(const KernelArgs& a) {
  const auto& at = a.attr<Conv2dAttrs>();
  const Geom q = geometry(a.inputs[0].shape(), a.inputs[1].shape(), a.outputs[0].shape(), at);
  run_pass(Pass::Forward, q, gather(a), at.has_bias);
}

// in: grad_y, w; out: grad_x
void conv2d_backward_input_kernel(const KernelArgs& a) {
  const auto& at = a.attr<Conv2dAttrs>();
  const Geom q = geometry(a.outputs[0].shape(), a.inputs[1].shape(), a.inputs[0].shape(), at);
  run_pass(Pass::BackwardData, q, gather(a), false);
}

// in: grad_y, x; out: grad_w, (grad_bias)
void conv2d_backward_weight_kernel(const KernelArgs& a) {
  const auto& at = a.attr<Conv2dAttrs>();
  const Geom q = geometry(a.inputs[1].shape(), a.outputs[0].shape(), a.inputs[0].shape(), at);
  run_pass(Pass::BackwardWeights, q, gather(a), at.has_bias);
}

// y[n, c, :, :] += bias[c]; y is NCHW, or NHWC when channels_last.
template <typename T>
void add_channel_bias(const Tensor& y, const Tensor& bias, bool channels_last) {
  const int64_t c = y.shape()[1], hw = y.shape()[2] * y.shape()[3];
  T* py = y.data<T>();
  const T* pb = bias.data<T>();
  if (channels_last) {
#pragma omp parallel for if (y.numel() > kParallelGrain)
    for (int64_t p = 0; p < y.shape()[0] * hw; ++p)
      for (int64_t k = 0; k < c; ++k) py[p * c + k] = T(static_cast<compute_t<T>>(py[p * c + k]) + static_cast<compute_t<T>>(pb[k]));
    return;
  }
  const int64_t planes = y.shape()[0] * c;
#pragma omp parallel for if (y.numel() > kParallelGrain)
  for (int64_t p = 0; p < planes; ++p) {
    const auto bv = static_cast<compute_t<T>>(pb[p % c]);
    for (int64_t k = 0; k < hw; ++k) py[p * hw + k] = T(static_cast<compute_t<T>>(py[p * hw + k]) + bv);
  }
}

// in: x [n, cin, h, w], w [cin, cout/g, kh, kw], (bias [cout]); out: y [n, cout, oh, ow].
// y is the gradient of the convolution y -> x with the same weight (o = cin, c = cout).
void conv_transpose2d_kernel(const KernelArgs& a) {
  const auto& at = a.attr<Conv2dAttrs>();
  const Tensor &x = a.inputs[0], &w = a.inputs[1], &y = a.outputs[0];
  const Geom q = geometry(y.shape(), w.shape(), x.shape(), at);
  run_pass(Pass::BackwardData, q, {x, w, y}, false);
  if (!at.has_bias) return;
  KILN_DISPATCH_FLOATING(y.dtype(), "conv_transpose2d", [&]<typename T>() { add_channel_bias<T>(y, a.inputs[2], at.channels_last); });
}
}  // namespace

void register_conv_kernels(KernelRegistry& r) {
  r.add(DeviceType::Cpu, OpId::Conv2d, conv2d_kernel);
  r.add(DeviceType::Cpu, OpId::Conv2dBackwardInput, conv2d_backward_input_kernel);
  r.add(DeviceType::Cpu, OpId::Conv2dBackwardWeight, conv2d_backward_weight_kernel);
  r.add(DeviceType::Cpu, OpId::ConvTranspose2d, conv_transpose2d_kernel);
}

}  // namespace kiln::cpu
