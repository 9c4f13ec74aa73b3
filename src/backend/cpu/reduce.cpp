// CPU kernels: sum, mean, amax/amin, var, max/min over a dim, argmax/argmin (softmax family
// in softmax.cpp). Each op is a policy for run_reduce (reduce_driver.h). Floating inputs
// accumulate in double across blocks (float blocks of kBlock elements in SIMD lanes, so a
// float32 sum of 64M elements stays accurate); integers accumulate in int64.
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "kiln/op_attrs.h"
#include "kiln/tensor.h"
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/reduce_driver.h"
#include "src/backend/cpu/reduce_layout.h"
#include "src/backend/cpu/vec_math.h"

namespace kiln::cpu {

void register_softmax(KernelRegistry& r);  // softmax.cpp

namespace {

constexpr int64_t kBlock = 1024;  // float partial sums per block before moving to double

template <typename T>
constexpr bool is_float_v = std::is_floating_point_v<T> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;

template <typename T>
inline bool is_nan(T v) {
  if constexpr (is_float_v<T>) return v != v;
  else return false;
}

// Sum of f(x[k]) over a row, accurate for float: lanes of float within a block, double across.
template <typename T, typename F>
KILN_SIMD_CLONES double sum_row_floating(const T* x, int64_t n, F f) {
  double total = 0;
  if constexpr (std::is_same_v<T, double>) {
#pragma omp simd reduction(+ : total)
    for (int64_t k = 0; k < n; ++k) total += f(x[k]);
  } else {
    for (int64_t b = 0; b < n; b += kBlock) {
      const int64_t e = std::min(n, b + kBlock);
      float s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t k = b; k < e; ++k) s += f(float(x[k]));
      total += s;
    }
  }
  return total;
}

// ---- sum and mean
template <typename T, bool kMean>
struct SumPolicy {
  using in_t = T;
  using out_t = std::conditional_t<is_float_v<T>, T, int64_t>;
  using acc_t = std::conditional_t<is_float_v<T>, double, int64_t>;
  out_t* out;
  acc_t init() const { return 0; }
  KILN_SIMD_CLONES void row(const T* x, int64_t n, int64_t, acc_t& a, int64_t) const {
    if constexpr (is_float_v<T>) {
      a += sum_row_floating(x, n, [](auto v) { return v; });
    } else {
      int64_t s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < n; ++k) s += int64_t(x[k]);
      a += s;
    }
  }
  KILN_SIMD_CLONES void col(const T* x, int64_t n, int64_t, acc_t* a, int64_t) const {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) a[j] += acc_t(x[j]);
  }
  void combine(acc_t& a, const acc_t& b) const { a += b; }
  void store(int64_t pos, const acc_t& a, int64_t count) const {
    if constexpr (kMean) out[pos] = out_t(compute_t<out_t>(double(a) / double(count)));
    else out[pos] = out_t(compute_t<out_t>(a));
  }
};

// Means into a double buffer (the first pass of var).
template <typename T>
struct MeanToBuffer : SumPolicy<T, true> {
  double* mean;
  void store(int64_t pos, const double& a, int64_t count) const { mean[pos] = a / double(count); }
};

// ---- var: sum of squared deviations from the mean of pass one, over N - correction
template <typename T>
struct VarPolicy {
  using in_t = T;
  using acc_t = double;
  T* out;
  const double* mean;
  double correction;
  acc_t init() const { return 0; }
  void row(const T* x, int64_t n, int64_t, acc_t& a, int64_t pos) const {
    if constexpr (std::is_same_v<T, double>) {
      const double m = mean[pos];
      a += sum_row_floating(x, n, [m](double v) { return (v - m) * (v - m); });
    } else {
      const float m = float(mean[pos]);  // deviations are small: float lanes are accurate here
      a += sum_row_floating(x, n, [m](float v) { return (v - m) * (v - m); });
    }
  }
  KILN_SIMD_CLONES void col(const T* x, int64_t n, int64_t, acc_t* a, int64_t pos0) const {
    const double* m = mean + pos0;
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const double d = double(x[j]) - m[j];
      a[j] += d * d;
    }
  }
  void combine(acc_t& a, const acc_t& b) const { a += b; }
  void store(int64_t pos, const acc_t& a, int64_t count) const {
    const double denom = std::max(0.0, double(count) - correction);
    out[pos] = T(compute_t<T>(a / denom));
  }
};

// ---- amax / amin (NaN propagates, as in PyTorch)
template <typename T, bool kMax>
struct ExtremePolicy {
  using in_t = T;
  using acc_t = std::conditional_t<std::is_same_v<T, bool>, bool, compute_t<T>>;
  T* out;
  acc_t init() const {
    if constexpr (std::is_same_v<T, bool>) return !kMax;
    else if constexpr (is_float_v<T>) return kMax ? -INFINITY : INFINITY;
    else return kMax ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
  }
  static acc_t pick(acc_t a, acc_t b) {
    if constexpr (kMax) return b > a ? b : a;
    else return b < a ? b : a;
  }
  KILN_SIMD_CLONES void row(const T* x, int64_t n, int64_t, acc_t& a, int64_t) const {
    if (is_nan(a)) return;
    acc_t m = a;
    if constexpr (is_float_v<T>) {
      int nan = 0;
      if constexpr (kMax) {
#pragma omp simd reduction(max : m) reduction(| : nan)
        for (int64_t k = 0; k < n; ++k) {
          const acc_t v = acc_t(x[k]);
          m = v > m ? v : m;
          nan |= v != v;
        }
      } else {
#pragma omp simd reduction(min : m) reduction(| : nan)
        for (int64_t k = 0; k < n; ++k) {
          const acc_t v = acc_t(x[k]);
          m = v < m ? v : m;
          nan |= v != v;
        }
      }
      a = nan ? acc_t(NAN) : m;
    } else {
      for (int64_t k = 0; k < n; ++k) m = pick(m, acc_t(x[k]));
      a = m;
    }
  }
  KILN_SIMD_CLONES void col(const T* x, int64_t n, int64_t, acc_t* a, int64_t) const {
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) {
      const acc_t v = acc_t(x[j]);
      // A NaN accumulator stays NaN; a NaN element replaces it.
      if constexpr (is_float_v<T>) a[j] = (v != v || a[j] != a[j]) ? (a[j] != a[j] ? a[j] : v) : pick(a[j], v);
      else a[j] = pick(a[j], v);
    }
  }
  void combine(acc_t& a, const acc_t& b) const {
    if (is_nan(a)) return;
    a = is_nan(b) ? b : pick(a, b);
  }
  void store(int64_t pos, const acc_t& a, int64_t) const { out[pos] = T(a); }
};

// ---- max/min over a dim with indices, argmax/argmin: the first extreme wins, the first NaN beats all.
template <typename T, bool kMax>
struct ArgPolicy {
  using in_t = T;
  using value_t = std::conditional_t<std::is_same_v<T, bool>, bool, compute_t<T>>;
  struct acc_t {
    value_t v{};
    int64_t i = -1;  // -1: nothing seen yet
  };
  T* values;  // null for argmax/argmin
  int64_t* indices;
  acc_t init() const { return {}; }
  static bool better(value_t v, const acc_t& a) {
    if (a.i < 0) return true;
    if constexpr (is_float_v<T>) {
      if (a.v != a.v) return false;
      if (v != v) return true;
    }
    if constexpr (kMax) return v > a.v;
    else return v < a.v;
  }
  // Blocks: a vectorised max (and NaN check) of the block, then, only when the block holds
  // a new best, a scan of the block (in L1) for its first position.
  KILN_SIMD_CLONES void row(const T* x, int64_t n, int64_t i0, acc_t& a, int64_t) const {
    if constexpr (std::is_same_v<T, bool>) {
      for (int64_t k = 0; k < n; ++k)
        if (better(x[k], a)) a = {x[k], i0 + k};
    } else {
      for (int64_t b = 0; b < n; b += kBlock) {
        if constexpr (is_float_v<T>)
          if (a.i >= 0 && a.v != a.v) return;  // a NaN beats everything after it
        const int64_t e = std::min(n, b + kBlock);
        value_t m = value_t(x[b]);
        int nan = 0;
        if constexpr (kMax) {
#pragma omp simd reduction(max : m) reduction(| : nan)
          for (int64_t k = b; k < e; ++k) {
            const value_t v = value_t(x[k]);
            m = v > m ? v : m;
            if constexpr (is_float_v<T>) nan |= v != v;
          }
        } else {
#pragma omp simd reduction(min : m) reduction(| : nan)
          for (int64_t k = b; k < e; ++k) {
            const value_t v = value_t(x[k]);
            m = v < m ? v : m;
            if constexpr (is_float_v<T>) nan |= v != v;
          }
        }
        if (!nan && !better(m, a)) continue;
        for (int64_t k = b; k < e; ++k) {
          const value_t v = value_t(x[k]);
          if (nan ? v != v : v == m) {
            a = {v, i0 + k};
            break;
          }
        }
      }
    }
  }
  void col(const T* x, int64_t n, int64_t i, acc_t* a, int64_t) const {
    for (int64_t j = 0; j < n; ++j) {
      const value_t v = value_t(x[j]);
      if (better(v, a[j])) a[j] = {v, i};
    }
  }
  // A column block as separate value and index arrays, so the compare-and-select vectorises.
  KILN_SIMD_CLONES void cols(const T* x, int64_t stride, int64_t r0, int64_t r1, int64_t n, acc_t* a) const {
    std::unique_ptr<value_t[]> best(new value_t[size_t(n)]);  // not std::vector: value_t may be bool
    std::unique_ptr<int64_t[]> idx(new int64_t[size_t(n)]);
    value_t* b = best.get();
    int64_t* id = idx.get();
    for (int64_t j = 0; j < n; ++j) b[j] = value_t(x[r0 * stride + j]), id[j] = r0;
    for (int64_t i = r0 + 1; i < r1; ++i) {
      const T* row = x + i * stride;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) {
        const value_t v = value_t(row[j]);
        bool take = kMax ? v > b[j] : v < b[j];
        if constexpr (is_float_v<T>) take = take || (v != v && b[j] == b[j]);
        b[j] = take ? v : b[j];
        id[j] = take ? i : id[j];
      }
    }
    for (int64_t j = 0; j < n; ++j) a[j] = {b[j], id[j]};
  }
  void combine(acc_t& a, const acc_t& b) const {
    if (b.i >= 0 && better(b.v, a)) a = b;
  }
  void store(int64_t pos, const acc_t& a, int64_t) const {
    if (values) values[pos] = T(a.v);
    indices[pos] = a.i;
  }
};

template <typename T>
const T* data_of(const Tensor& t) {
  return static_cast<const T*>(t.data_ptr());
}
template <typename T>
T* out_of(const Tensor& t) {
  return static_cast<T*>(t.data_ptr());
}

template <template <typename> class Make>
void with_layout(const KernelArgs& args) {
  const auto& attrs = args.attr<ReduceAttrs>();
  const ReduceLayout l = reduce_layout(args.inputs[0], attrs.dims);
  KILN_DISPATCH_DTYPE(l.src.dtype(), op_name(args.op), [&]<typename T>() {
    Make<T>::run(args, data_of<T>(l.src), l.outer, l.reduce, l.inner);
  });
}

template <typename T>
struct SumRun {
  static void run(const KernelArgs& a, const T* x, int64_t o, int64_t r, int64_t i) {
    using P = SumPolicy<T, false>;
    run_reduce(P{out_of<typename P::out_t>(a.outputs[0])}, x, o, r, i);
  }
};
template <typename T>
struct MeanRun {
  static void run(const KernelArgs& a, const T* x, int64_t o, int64_t r, int64_t i) {
    if constexpr (is_float_v<T>) run_reduce(SumPolicy<T, true>{out_of<T>(a.outputs[0])}, x, o, r, i);
    else KILN_FAIL("mean", "expected a floating input, got ", dtype_name(dtype_of<T>::value));
  }
};
template <typename T>
struct VarRun {
  static void run(const KernelArgs& a, const T* x, int64_t o, int64_t r, int64_t i) {
    if constexpr (is_float_v<T>) {
      std::vector<double> mean(size_t(o * i));
      MeanToBuffer<T> first;
      first.mean = mean.data();
      run_reduce(first, x, o, r, i);
      run_reduce(VarPolicy<T>{out_of<T>(a.outputs[0]), mean.data(), double(a.attr<ReduceAttrs>().correction)}, x,
                 o, r, i);
    } else {
      KILN_FAIL("var", "expected a floating input, got ", dtype_name(dtype_of<T>::value));
    }
  }
};
template <bool kMax>
struct Extreme {
  template <typename T>
  struct Run {
    static void run(const KernelArgs& a, const T* x, int64_t o, int64_t r, int64_t i) {
      run_reduce(ExtremePolicy<T, kMax>{out_of<T>(a.outputs[0])}, x, o, r, i);
    }
  };
};
template <bool kMax, bool kValues>
struct Arg {
  template <typename T>
  struct Run {
    static void run(const KernelArgs& a, const T* x, int64_t o, int64_t r, int64_t i) {
      T* values = kValues ? out_of<T>(a.outputs[0]) : nullptr;
      int64_t* idx = out_of<int64_t>(a.outputs[kValues ? 1 : 0]);
      run_reduce(ArgPolicy<T, kMax>{values, idx}, x, o, r, i);
    }
  };
};

}  // namespace

void register_reduce(KernelRegistry& r) {
  const auto cpu = DeviceType::Cpu;
  r.add(cpu, OpId::Sum, with_layout<SumRun>);
  r.add(cpu, OpId::Mean, with_layout<MeanRun>);
  r.add(cpu, OpId::Var, with_layout<VarRun>);
  r.add(cpu, OpId::Amax, with_layout<Extreme<true>::Run>);
  r.add(cpu, OpId::Amin, with_layout<Extreme<false>::Run>);
  r.add(cpu, OpId::MaxDim, with_layout<Arg<true, true>::Run>);
  r.add(cpu, OpId::MinDim, with_layout<Arg<false, true>::Run>);
  r.add(cpu, OpId::Argmax, with_layout<Arg<true, false>::Run>);
  r.add(cpu, OpId::Argmin, with_layout<Arg<false, false>::Run>);
  register_softmax(r);
}

}  // namespace kiln::cpu
