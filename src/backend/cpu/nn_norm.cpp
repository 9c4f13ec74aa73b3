// CPU kernels of batch_norm and layer_norm, forward and backward (contracts in ops.def).
// Own loops rather than oneDNN so that every floating dtype works the same way: values
// compute in float (double for float64), statistics accumulate in double.
#include <cmath>
#include <vector>

#include "kiln/op_attrs.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/nn_kernels.h"

namespace kiln::cpu {

namespace {

template <typename T> using C = compute_t<T>;

// Small per-channel/per-feature parameters of any floating dtype, as doubles.
std::vector<double> read_params(const Tensor& p) {
  return KILN_DISPATCH_FLOATING(p.dtype(), "batch_norm", [&]<typename P>() {
    const P* d = p.data<P>();
    std::vector<double> v(size_t(p.numel()));
    for (size_t i = 0; i < v.size(); ++i) v[i] = double(C<P>(d[i]));
    return v;
  });
}
void write_params(const Tensor& p, const std::vector<double>& v) {
  KILN_DISPATCH_FLOATING(p.dtype(), "batch_norm", [&]<typename P>() {
    P* d = p.data<P>();
    for (size_t i = 0; i < v.size(); ++i) d[i] = P(C<P>(v[i]));
  });
}

// Sum of a contiguous row in the row's compute type, widened at the end.
template <typename T>
double row_sum(const T* x, int64_t n) {
  C<T> s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += C<T>(x[i]);
  return double(s);
}
template <typename T>
double row_sq_dev(const T* x, int64_t n, C<T> mean) {
  C<T> s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) {
    const C<T> d = C<T>(x[i]) - mean;
    s += d * d;
  }
  return double(s);
}

// ---- batch_norm: x [N, C, HW]

struct BnDims { int64_t n, c, hw; };
BnDims bn_dims(const Tensor& x) {
  BnDims d{x.size(0), x.size(1), 1};
  for (int64_t k = 2; k < x.dim(); ++k) d.hw *= x.size(k);
  return d;
}

template <typename T>
void bn_apply(const T* x, T* y, const BnDims& d, const std::vector<double>& mean, const std::vector<double>& scale,
              const std::vector<double>& bias) {
#pragma omp parallel for if (d.n * d.c * d.hw > kParallelGrain)
  for (int64_t r = 0; r < d.n * d.c; ++r) {
    const int64_t c = r % d.c;
    const C<T> m = C<T>(mean[size_t(c)]), a = C<T>(scale[size_t(c)]), b = C<T>(bias[size_t(c)]);
    const T* xr = x + r * d.hw;
    T* yr = y + r * d.hw;
    for (int64_t i = 0; i < d.hw; ++i) yr[i] = T((C<T>(xr[i]) - m) * a + b);
  }
}

template <typename T>
void batch_norm_typed(const KernelArgs& a) {
  const BatchNormAttrs& at = a.attr<BatchNormAttrs>();
  const Tensor& xt = a.inputs[0];
  const BnDims d = bn_dims(xt);
  const T* x = xt.data<T>();
  T* y = a.outputs[0].data<T>();
  const std::vector<double> w = read_params(a.inputs[1]), b = read_params(a.inputs[2]);
  std::vector<double> mean(size_t(d.c)), var(size_t(d.c));
  if (!at.training) {
    mean = read_params(a.inputs[3]);
    var = read_params(a.inputs[4]);
  } else {
    const double count = double(d.n * d.hw);
#pragma omp parallel for if (d.n * d.c * d.hw > kParallelGrain)
    for (int64_t c = 0; c < d.c; ++c) {
      double s = 0;
      for (int64_t n = 0; n < d.n; ++n) s += row_sum(x + (n * d.c + c) * d.hw, d.hw);
      const double m = s / count;
      double q = 0;
      for (int64_t n = 0; n < d.n; ++n) q += row_sq_dev(x + (n * d.c + c) * d.hw, d.hw, C<T>(m));
      mean[size_t(c)] = m;
      var[size_t(c)] = q / count;
    }
  }
  std::vector<double> invstd(size_t(d.c)), scale(size_t(d.c));
  for (int64_t c = 0; c < d.c; ++c) {
    invstd[size_t(c)] = 1.0 / std::sqrt(var[size_t(c)] + at.eps);
    scale[size_t(c)] = w[size_t(c)] * invstd[size_t(c)];
  }
  bn_apply(x, y, d, mean, scale, b);
  if (!at.training) return;
  write_params(a.outputs[1], mean);
  write_params(a.outputs[2], invstd);
  if (at.has_running) {
    std::vector<double> rm = read_params(a.outputs[3]), rv = read_params(a.outputs[4]);
    const double count = double(d.n * d.hw), unbias = count > 1 ? count / (count - 1) : 1.0;
    for (int64_t c = 0; c < d.c; ++c) {
      rm[size_t(c)] = (1 - at.momentum) * rm[size_t(c)] + at.momentum * mean[size_t(c)];
      rv[size_t(c)] = (1 - at.momentum) * rv[size_t(c)] + at.momentum * var[size_t(c)] * unbias;
    }
    write_params(a.outputs[3], rm);
    write_params(a.outputs[4], rv);
  }
}

template <typename T>
void batch_norm_backward_typed(const KernelArgs& a) {
  const bool training = a.attr<BatchNormAttrs>().training;
  const T* g = a.inputs[0].data<T>();
  const T* x = a.inputs[1].data<T>();
  const BnDims d = bn_dims(a.inputs[1]);
  const std::vector<double> w = read_params(a.inputs[2]), mean = read_params(a.inputs[3]),
                            invstd = read_params(a.inputs[4]);
  T* gx = a.outputs[0].data<T>();
  std::vector<double> sum_g(size_t(d.c)), sum_gd(size_t(d.c));  // sum(g), sum(g * (x - mean))
#pragma omp parallel for if (d.n * d.c * d.hw > kParallelGrain)
  for (int64_t c = 0; c < d.c; ++c) {
    const C<T> m = C<T>(mean[size_t(c)]);
    double sg = 0, sgd = 0;
    for (int64_t n = 0; n < d.n; ++n) {
      const T* gr = g + (n * d.c + c) * d.hw;
      const T* xr = x + (n * d.c + c) * d.hw;
      C<T> a0 = 0, a1 = 0;
#pragma omp simd reduction(+ : a0, a1)
      for (int64_t i = 0; i < d.hw; ++i) {
        const C<T> gi = C<T>(gr[i]);
        a0 += gi;
        a1 += gi * (C<T>(xr[i]) - m);
      }
      sg += double(a0);
      sgd += double(a1);
    }
    sum_g[size_t(c)] = sg;
    sum_gd[size_t(c)] = sgd;
  }
  // grad_x = k * g + k2 * (x - mean) + k3 per channel (training); k * g (eval).
  const double count = double(d.n * d.hw);
  std::vector<double> k(size_t(d.c)), k2(size_t(d.c), 0.0), k3(size_t(d.c), 0.0), gw(size_t(d.c));
  for (int64_t c = 0; c < d.c; ++c) {
    const double is = invstd[size_t(c)];
    k[size_t(c)] = w[size_t(c)] * is;
    gw[size_t(c)] = sum_gd[size_t(c)] * is;
    if (training) {
      k2[size_t(c)] = -k[size_t(c)] * is * is * sum_gd[size_t(c)] / count;
      k3[size_t(c)] = -k[size_t(c)] * sum_g[size_t(c)] / count;
    }
  }
#pragma omp parallel for if (d.n * d.c * d.hw > kParallelGrain)
  for (int64_t r = 0; r < d.n * d.c; ++r) {
    const int64_t c = r % d.c;
    const C<T> kk = C<T>(k[size_t(c)]), kk2 = C<T>(k2[size_t(c)]), kk3 = C<T>(k3[size_t(c)]);
    const C<T> m = C<T>(mean[size_t(c)]);
    const T* gr = g + r * d.hw;
    const T* xr = x + r * d.hw;
    T* o = gx + r * d.hw;
    for (int64_t i = 0; i < d.hw; ++i) o[i] = T(kk * C<T>(gr[i]) + kk2 * (C<T>(xr[i]) - m) + kk3);
  }
  write_params(a.outputs[1], gw);
  write_params(a.outputs[2], sum_g);
}

// ---- layer_norm: x [M, N]

template <typename T>
std::vector<C<T>> read_as(const Tensor& p) {
  const std::vector<double> v = read_params(p);
  return std::vector<C<T>>(v.begin(), v.end());
}

template <typename T>
void layer_norm_typed(const KernelArgs& a) {
  using A = C<T>;  // the acc dtype's C++ type: float, or double for float64
  const Tensor& xt = a.inputs[0];
  const int64_t m = xt.size(0), n = xt.size(1);
  const double eps = a.attr<LayerNormAttrs>().eps;
  const T* x = xt.data<T>();
  const std::vector<A> w = read_as<T>(a.inputs[1]), b = read_as<T>(a.inputs[2]);
  T* y = a.outputs[0].data<T>();
  A* mean = a.outputs[1].data<A>();
  A* rstd = a.outputs[2].data<A>();
#pragma omp parallel for if (m * n > kParallelGrain)
  for (int64_t r = 0; r < m; ++r) {
    const T* xr = x + r * n;
    const double mu = row_sum(xr, n) / double(n);
    const double var = row_sq_dev(xr, n, A(mu)) / double(n);
    const A rs = A(1.0 / std::sqrt(var + eps)), mf = A(mu);
    T* yr = y + r * n;
    for (int64_t j = 0; j < n; ++j) yr[j] = T((A(xr[j]) - mf) * rs * w[size_t(j)] + b[size_t(j)]);
    mean[r] = mf;
    rstd[r] = rs;
  }
}

template <typename T>
void layer_norm_backward_typed(const KernelArgs& a) {
  using A = C<T>;
  const T* g = a.inputs[0].data<T>();
  const T* x = a.inputs[1].data<T>();
  const A* mean = a.inputs[2].data<A>();
  const A* rstd = a.inputs[3].data<A>();
  const std::vector<A> w = read_as<T>(a.inputs[4]);
  const int64_t m = a.inputs[1].size(0), n = a.inputs[1].size(1);
  T* gx = a.outputs[0].data<T>();
  // Parameter gradients reduce over rows: one partial per thread, summed after.
  const int nt = max_threads();
  std::vector<double> pw(size_t(nt) * size_t(n), 0.0), pb(size_t(nt) * size_t(n), 0.0);
#pragma omp parallel if (m * n > kParallelGrain)
  {
    double* my_w = pw.data() + size_t(omp_id()) * size_t(n);
    double* my_b = pb.data() + size_t(omp_id()) * size_t(n);
#pragma omp for
    for (int64_t r = 0; r < m; ++r) {
      const T* gr = g + r * n;
      const T* xr = x + r * n;
      const A mu = mean[r], rs = rstd[r];
      A s1 = 0, s2 = 0;  // sum(g*w), sum(g*w*xhat)
      for (int64_t j = 0; j < n; ++j) {
        const A gj = A(gr[j]), xh = (A(xr[j]) - mu) * rs, gw = gj * w[size_t(j)];
        s1 += gw;
        s2 += gw * xh;
        my_w[j] += double(gj * xh);
        my_b[j] += double(gj);
      }
      const A c1 = s1 / A(n), c2 = s2 / A(n);
      T* o = gx + r * n;
      for (int64_t j = 0; j < n; ++j) {
        const A xh = (A(xr[j]) - mu) * rs;
        o[j] = T(rs * (A(gr[j]) * w[size_t(j)] - c1 - xh * c2));
      }
    }
  }
  std::vector<double> gw(size_t(n), 0.0), gb(size_t(n), 0.0);
  for (int t = 0; t < nt; ++t)
    for (int64_t j = 0; j < n; ++j) {
      gw[size_t(j)] += pw[size_t(t) * size_t(n) + size_t(j)];
      gb[size_t(j)] += pb[size_t(t) * size_t(n) + size_t(j)];
    }
  write_params(a.outputs[1], gw);
  write_params(a.outputs[2], gb);
}

}  // namespace

void register_nn_norm(KernelRegistry& r) {
  constexpr DeviceType cpu = DeviceType::Cpu;
  r.add(cpu, OpId::BatchNorm, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "batch_norm", [&]<typename T>() { batch_norm_typed<T>(a); });
  });
  r.add(cpu, OpId::BatchNormBackward, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[1].dtype(), "batch_norm_backward",
                           [&]<typename T>() { batch_norm_backward_typed<T>(a); });
  });
  r.add(cpu, OpId::LayerNorm, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "layer_norm", [&]<typename T>() { layer_norm_typed<T>(a); });
  });
  r.add(cpu, OpId::LayerNormBackward, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[1].dtype(), "layer_norm_backward",
                           [&]<typename T>() { layer_norm_backward_typed<T>(a); });
  });
}

}  // namespace kiln::cpu
