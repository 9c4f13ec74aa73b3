// CPU kernels of the joining and indexing ops: cat, index_select, index_add, gather,
// scatter_add, one_hot, embedding and its backward. Tensor layouts are as ops.def says
// (contiguous); copies move whole rows with memcpy where the layout allows.
#include <algorithm>
#include <cstring>
#include <vector>

#include "kiln/op_attrs.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/nn_kernels.h"

namespace kiln::cpu {

void check_index_range(const char* op, const IndexReader& idx, int64_t n, int64_t bound, int64_t dim,
                       const Shape& indexed_shape) {
  int64_t bad = -1;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = idx[i];
    if (v < 0 || v >= bound) {
      bad = i;
      break;
    }
  }
  KILN_CHECK(bad < 0, op, "index ", idx[bad], " (at position ", bad, ") is out of range for dim ", dim,
             " of size ", bound, " (input shape ", shape_str(indexed_shape), ")");
}

namespace {

template <typename T> using C = compute_t<T>;

// [outer, size(dim), inner] view of a contiguous shape.
struct Split3 {
  int64_t outer = 1, mid = 1, inner = 1;
};
Split3 split3(const Shape& s, int64_t dim) {
  Split3 r;
  for (int64_t k = 0; k < int64_t(s.size()); ++k) {
    if (k < dim) r.outer *= s[size_t(k)];
    else if (k == dim) r.mid = s[size_t(k)];
    else r.inner *= s[size_t(k)];
  }
  return r;
}

void cat_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  const int64_t d = a.attr<DimAttrs>().dim;
  const Split3 o = split3(out.shape(), d);
  const int64_t es = int64_t(out.element_size());
  const int64_t out_row = o.mid * o.inner * es;  // bytes of one outer slice of out
  char* dst = static_cast<char*>(out.data_ptr());
  int64_t at = 0;  // byte offset of the current input within an outer slice
  for (const Tensor& t : a.inputs) {
    const int64_t row = t.size(d) * o.inner * es;
    const char* src = static_cast<const char*>(t.data_ptr());
#pragma omp parallel for if (o.outer * row > kParallelGrain * 4 && o.outer > 1)
    for (int64_t i = 0; i < o.outer; ++i) std::memcpy(dst + i * out_row + at, src + i * row, size_t(row));
    at += row;
  }
}

void index_select_kernel(const KernelArgs& a) {
  const Tensor& t = a.inputs[0];
  const IndexReader idx(a.inputs[1]);
  const Tensor& out = a.outputs[0];
  const int64_t d = a.attr<DimAttrs>().dim;
  const int64_t k = a.inputs[1].numel();
  const Split3 s = split3(t.shape(), d);
  check_index_range("index_select", idx, k, s.mid, d, t.shape());
  const int64_t es = int64_t(t.element_size());
  const int64_t row = s.inner * es;
  const char* src = static_cast<const char*>(t.data_ptr());
  char* dst = static_cast<char*>(out.data_ptr());
#pragma omp parallel for if (s.outer * k * s.inner > kParallelGrain)
  for (int64_t r = 0; r < s.outer * k; ++r) {
    const int64_t i = r / k, j = r % k;
    std::memcpy(dst + r * row, src + (i * s.mid + idx[j]) * row, size_t(row));
  }
}

template <typename T>
void index_add_typed(const KernelArgs& a) {
  const IndexReader idx(a.inputs[0]);
  const Tensor& src_t = a.inputs[1];
  const Tensor& out = a.outputs[0];
  const int64_t d = a.attr<DimAttrs>().dim;
  const int64_t k = a.inputs[0].numel();
  const Split3 s = split3(out.shape(), d);
  check_index_range("index_add", idx, k, s.mid, d, out.shape());
  const T* src = src_t.data<T>();
  T* dst = out.data<T>();
  // Indices may repeat, so each thread owns whole (outer, inner-block) columns and walks k serially.
  constexpr int64_t kBlock = 512;
  const int64_t nblocks = (s.inner + kBlock - 1) / kBlock;
#pragma omp parallel for if (s.outer * k * s.inner > kParallelGrain)
  for (int64_t b = 0; b < s.outer * nblocks; ++b) {
    const int64_t i = b / nblocks, j0 = (b % nblocks) * kBlock, j1 = std::min(s.inner, j0 + kBlock);
    for (int64_t q = 0; q < k; ++q) {
      T* o = dst + (i * s.mid + idx[q]) * s.inner;
      const T* x = src + (i * k + q) * s.inner;
      for (int64_t j = j0; j < j1; ++j) o[j] = T(C<T>(o[j]) + C<T>(x[j]));
    }
  }
}

// Walks the positions p of index (shape ishape, contiguous) and calls f(p_linear, offset of
// p with index[p] along dim in a contiguous tensor of shape tshape), after checking ranges.
template <typename F>
void for_each_gather(const char* op, const IndexReader& idx, const Shape& ishape, const Shape& tshape, int64_t d,
                     bool parallel_rows, F f) {
  const int64_t n = numel_of(ishape);
  check_index_range(op, idx, n, tshape[size_t(d)], d, tshape);
  const Strides ts = contiguous_strides(tshape);
  const int64_t nd = int64_t(ishape.size());
  const int64_t last = ishape[size_t(nd - 1)];
  const int64_t rows = last == 0 ? 0 : n / last;
  auto run_row = [&](int64_t r) {
    int64_t rem = r, base = 0;
    for (int64_t k = nd - 2; k >= 0; --k) {
      const int64_t c = rem % ishape[size_t(k)];
      rem /= ishape[size_t(k)];
      if (k != d) base += c * ts[size_t(k)];
    }
    const int64_t p0 = r * last;
    if (d == nd - 1) {
      for (int64_t j = 0; j < last; ++j) f(p0 + j, base + idx[p0 + j]);
    } else {
      const int64_t sd = ts[size_t(d)];
      for (int64_t j = 0; j < last; ++j) f(p0 + j, base + j + idx[p0 + j] * sd);
    }
  };
  if (parallel_rows) {
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t r = 0; r < rows; ++r) run_row(r);
  } else {
    for (int64_t r = 0; r < rows; ++r) run_row(r);
  }
}

template <typename T>
void gather_typed(const KernelArgs& a) {
  const T* src = a.inputs[0].data<T>();
  T* dst = a.outputs[0].data<T>();
  for_each_gather("gather", IndexReader(a.inputs[1]), a.inputs[1].shape(), a.inputs[0].shape(),
                  a.attr<DimAttrs>().dim, true, [&](int64_t p, int64_t off) { dst[p] = src[off]; });
}

template <typename T>
void scatter_add_typed(const KernelArgs& a) {
  const T* src = a.inputs[1].data<T>();
  T* dst = a.outputs[0].data<T>();
  // Distinct positions may land on one target, so the walk is serial.
  for_each_gather("scatter_add", IndexReader(a.inputs[0]), a.inputs[0].shape(), a.outputs[0].shape(),
                  a.attr<DimAttrs>().dim, false,
                  [&](int64_t p, int64_t off) { dst[off] = T(C<T>(dst[off]) + C<T>(src[p])); });
}

void one_hot_kernel(const KernelArgs& a) {
  const IndexReader idx(a.inputs[0]);
  const int64_t n = a.inputs[0].numel();
  const int64_t c = a.attr<OneHotAttrs>().num_classes;
  check_index_range("one_hot", idx, n, c, 0, {c});
  int64_t* out = a.outputs[0].data<int64_t>();
  std::memset(out, 0, size_t(n * c) * sizeof(int64_t));
  for (int64_t i = 0; i < n; ++i) out[i * c + idx[i]] = 1;
}

void embedding_kernel(const KernelArgs& a) {
  const Tensor& w = a.inputs[0];
  const IndexReader idx(a.inputs[1]);
  const int64_t n = a.inputs[1].numel();
  check_index_range("embedding", idx, n, w.size(0), 0, w.shape());
  const int64_t row = w.size(1) * int64_t(w.element_size());
  const char* src = static_cast<const char*>(w.data_ptr());
  char* dst = static_cast<char*>(a.outputs[0].data_ptr());
#pragma omp parallel for if (n * w.size(1) > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * row, src + idx[i] * row, size_t(row));
}

template <typename T>
void embedding_backward_typed(const KernelArgs& a) {
  const T* g = a.inputs[0].data<T>();
  const IndexReader idx(a.inputs[1]);
  const Tensor& out = a.outputs[0];
  const int64_t n = a.inputs[1].numel(), v = out.size(0), dim = out.size(1);
  check_index_range("embedding_backward", idx, n, v, 0, out.shape());
  // Accumulate in the compute type (float for half types), columns split across threads
  // because indices repeat.
  std::vector<C<T>> acc(size_t(v * dim), C<T>(0));
#pragma omp parallel for if (n * dim > kParallelGrain)
  for (int64_t j = 0; j < dim; ++j)
    for (int64_t i = 0; i < n; ++i) acc[size_t(idx[i] * dim + j)] += C<T>(g[i * dim + j]);
  T* o = out.data<T>();
  for (int64_t i = 0; i < v * dim; ++i) o[i] = T(acc[size_t(i)]);
}

}  // namespace

void register_nn_index(KernelRegistry& r) {
  constexpr DeviceType cpu = DeviceType::Cpu;
  r.add(cpu, OpId::Cat, cat_kernel);
  r.add(cpu, OpId::IndexSelect, index_select_kernel);
  r.add(cpu, OpId::Embedding, embedding_kernel);
  r.add(cpu, OpId::OneHot, one_hot_kernel);
  r.add(cpu, OpId::Gather, [](const KernelArgs& a) {
    KILN_DISPATCH_DTYPE(a.inputs[0].dtype(), "gather", [&]<typename T>() { gather_typed<T>(a); });
  });
  r.add(cpu, OpId::IndexAdd, [](const KernelArgs& a) {
    KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), "index_add", [&]<typename T>() {
      if constexpr (std::is_same_v<T, bool>) KILN_FAIL("index_add", "not supported for bool");
      else index_add_typed<T>(a);
    });
  });
  r.add(cpu, OpId::ScatterAdd, [](const KernelArgs& a) {
    KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), "scatter_add", [&]<typename T>() {
      if constexpr (std::is_same_v<T, bool>) KILN_FAIL("scatter_add", "not supported for bool");
      else scatter_add_typed<T>(a);
    });
  });
  r.add(cpu, OpId::EmbeddingBackward, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "embedding_backward",
                           [&]<typename T>() { embedding_backward_typed<T>(a); });
  });
}

}  // namespace kiln::cpu
