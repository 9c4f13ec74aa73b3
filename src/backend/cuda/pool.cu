// CUDA pooling over NCHW contiguous planes: max_pool2d (+ int64 indices, flat h * W + w in
// the plane; the first maximum wins, NaN beats everything, padding never does),
// avg_pool2d (PyTorch's divisor rules), adaptive_avg_pool2d, and their backward ops.
// max_pool2d (forward and backward) and avg_pool2d (forward) work on bands of a plane in
// shared memory (below); otherwise, and for the other forward ops, one thread per output.
// avg_pool2d and adaptive_avg_pool2d backward gather: one thread per input element sums
// the gradients of the windows covering it and writes grad_x once (no zeroing, no atomics).
// max_pool2d backward on planes too wide for the bands scatters with atomics into a
// float32 (float64) buffer, converted to the gradient's dtype at the end.
#include <cmath>

#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

struct Geom {
  int64_t planes, h, w, oh, ow;
};
Geom geom(const Tensor& big, const Tensor& small) {
  const int64_t d = big.dim();
  Geom g;
  g.h = big.size(d - 2);
  g.w = big.size(d - 1);
  g.oh = small.size(d - 2);
  g.ow = small.size(d - 1);
  g.planes = big.numel() / std::max<int64_t>(1, g.h * g.w);
  return g;
}

struct PoolP {
  int kh, kw, sh, sw, ph, pw, dh, dw;
  bool count_include_pad;
  int64_t divisor_override;
};
PoolP pool_params(const Pool2dAttrs& a) {
  return PoolP{int(a.kernel[0]), int(a.kernel[1]), int(a.stride[0]), int(a.stride[1]), int(a.padding[0]),
               int(a.padding[1]), int(a.dilation[0]), int(a.dilation[1]), a.count_include_pad, a.divisor_override};
}

#define KILN_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Forward kernels: grid.y walks planes, grid.x the outputs of a plane, with 32-bit index
// arithmetic inside a plane.
#define KILN_PLANE_LOOP(pl, o2, i, j)                                                              \
  for (int64_t pl = blockIdx.y; pl < g.planes; pl += gridDim.y)                                    \
    for (int o2 = int(blockIdx.x * blockDim.x + threadIdx.x), i = o2 / int(g.ow), j = o2 % int(g.ow); \
         o2 < int(g.oh * g.ow); o2 += int(gridDim.x * blockDim.x), i = o2 / int(g.ow), j = o2 % int(g.ow))

// grid.y: planes; grid.x: blocks over the per_plane elements of each (32-bit indices).
dim3 grid_over_planes(int64_t planes_total, int64_t elems, int dev) {
  const int64_t per_plane = (elems + kThreads - 1) / kThreads;
  const int64_t planes = std::min<int64_t>(planes_total, 65535);
  const int64_t want = int64_t(sm_count(dev)) * 32;
  const int64_t bx = std::max<int64_t>(1, std::min<int64_t>(per_plane, (want + planes - 1) / planes));
  return dim3(unsigned(std::max<int64_t>(bx, 1)), unsigned(std::max<int64_t>(planes, 1)));
}

dim3 plane_grid(const Geom& g, int dev) {
  KILN_CHECK(g.oh * g.ow < int64_t(INT32_MAX), "pool2d", "output planes of ", g.oh, " x ", g.ow, " are too large");
  return grid_over_planes(g.planes, g.oh * g.ow, dev);
}

// The same grid over the input planes (backward gathers: one thread per grad_x element).
dim3 input_plane_grid(const Geom& g, int dev) {
  KILN_CHECK(g.h * g.w < int64_t(INT32_MAX), "pool2d", "input planes of ", g.h, " x ", g.w, " are too large");
  return grid_over_planes(g.planes, g.h * g.w, dev);
}

template <typename T>
__global__ void max_pool_kernel(const T* x, T* y, int64_t* idx, Geom g, PoolP p) {
  using A = comp_t<T>;
  KILN_PLANE_LOOP(pl, o2, i, j) {
    const int64_t o = pl * g.oh * g.ow + o2;
    const T* in = x + pl * g.h * g.w;
    A best = A(-INFINITY);
    int64_t arg = -1;
    bool nan = false;
    for (int u = 0; u < p.kh && !nan; ++u) {
      const int64_t ih = i * p.sh - p.ph + int64_t(u) * p.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int v = 0; v < p.kw; ++v) {
        const int64_t iw = j * p.sw - p.pw + int64_t(v) * p.dw;
        if (iw < 0 || iw >= g.w) continue;
        const A val = convert<A>(in[ih * g.w + iw]);
        if (arg < 0 || val > best || val != val) {
          best = val;
          arg = ih * g.w + iw;
          if (val != val) {
            nan = true;
            break;
          }
        }
      }
    }
    y[o] = arg < 0 ? convert<T>(A(-INFINITY)) : in[arg];
    if (idx) idx[o] = arg;
  }
}

// ---- band-tiled max pooling ----
// A block owns one band of a plane. The forward copies the input rows its output rows
// read (one contiguous run of the NCHW plane) into shared memory with 16-byte loads, then
// computes each output from the tile: global memory is read once (plus a halo row per
// band) and written once, all coalesced. Index arithmetic is 32-bit within a plane and the
// output walk steps (i, j) without dividing.

// Copies src[0, count) into tile[shift + e] and returns shift, chosen so that the 16-byte
// aligned part of src lands 16-byte aligned in the tile (the tile holds count + V - 1).
template <typename T>
__device__ __forceinline__ int load_run(const T* __restrict__ src, int count, T* __restrict__ tile) {
  constexpr int V = 16 / sizeof(T);
  const int shift = int((reinterpret_cast<uintptr_t>(src) / sizeof(T)) % V);
  const int head = ::min(shift ? V - shift : 0, count);
  const int nvec = (count - head) / V;
  const int tid = threadIdx.x, bd = blockDim.x;
  for (int e = tid; e < head; e += bd) tile[shift + e] = src[e];
  const Vec<T, V>* vs = reinterpret_cast<const Vec<T, V>*>(src + head);
  Vec<T, V>* vd = reinterpret_cast<Vec<T, V>*>(tile + shift + head);
  // Four loads in flight per thread before their stores.
  for (int v = tid; v < nvec; v += 4 * bd) {
    Vec<T, V> r[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (v + k * bd < nvec) r[k] = vs[v + k * bd];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      if (v + k * bd < nvec) vd[v + k * bd] = r[k];
  }
  for (int e = head + nvec * V + tid; e < count; e += bd) tile[shift + e] = src[e];
  return shift;
}

struct BandPlan {
  int rows = 0, bands = 0;  // rows per band (the last may have fewer), bands per plane
};

// The window's maximum, in the CPU kernel's order: rows then columns, positions outside
// the input skipped, the first maximum wins, the first NaN beats everything. tile holds
// input rows from r_lo on.
template <typename T>
__device__ __forceinline__ void window_max(const T* tile, int r_lo, int H, int W, int hs, int ws, const PoolP& p,
                                           T* y, int64_t* idx) {
  using A = comp_t<T>;
  A best = A(-INFINITY);
  T best_stored = convert<T>(best);
  int arg = -1;
  bool nan = false;
  for (int u = 0; u < p.kh; ++u) {
    const int ih = hs + u * p.dh;
    if (ih < 0 || ih >= H) continue;
    const T* row = tile + (ih - r_lo) * W;
    for (int v = 0; v < p.kw; ++v) {
      const int iw = ws + v * p.dw;
      if (iw < 0 || iw >= W) continue;
      const T stored = row[iw];
      const A val = convert<A>(stored);
      if (!nan && (arg < 0 || val > best || val != val)) {
        best = val;
        best_stored = stored;
        arg = ih * W + iw;
        nan = val != val;
      }
    }
  }
  *y = best_stored;  // -inf when the window holds only padding
  if (idx) *idx = arg;
}

// The same for a KH x KW window without dilation: its rows and columns are clamped into
// the input instead of tested. A clamped tap repeats a position the window holds anyway,
// earlier in the walk than or equal to its first visit, so the winner and its index are
// unchanged; the first tap is always a real one, and each later tap is one compare:
// !(val <= best) is "greater or NaN", and a NaN best is never replaced.
template <typename T, int KH, int KW>
__device__ __forceinline__ void window_max_clamped(const T* tile, int r_lo, int H, int W, int hs, int ws, T* y,
                                                   int64_t* idx) {
  using A = comp_t<T>;
  int rows[KH], cols[KW];
#pragma unroll
  for (int u = 0; u < KH; ++u) rows[u] = ::min(::max(hs + u, 0), H - 1);
#pragma unroll
  for (int v = 0; v < KW; ++v) cols[v] = ::min(::max(ws + v, 0), W - 1);
  T best_stored = tile[(rows[0] - r_lo) * W + cols[0]];
  A best = convert<A>(best_stored);
  int bu = 0, bv = 0;
#pragma unroll
  for (int u = 0; u < KH; ++u) {
    const T* row = tile + (rows[u] - r_lo) * W;
#pragma unroll
    for (int v = 0; v < KW; ++v) {
      if (u == 0 && v == 0) continue;
      const T stored = row[cols[v]];
      const A val = convert<A>(stored);
      if (!(val <= best) && best == best) {
        best = val;
        best_stored = stored;
        bu = u;
        bv = v;
      }
    }
  }
  *y = best_stored;
  if (idx) *idx = ::min(::max(hs + bu, 0), H - 1) * W + ::min(::max(ws + bv, 0), W - 1);
}

// The band walk of the tiled forward kernels: stages the input rows that the block's band
// of output rows reads, then calls f(tile, r_lo, i, j, o) for each output (i, j) of the
// band, o its flat index in y; the tile holds input row ih at tile + (ih - r_lo) * W.
template <typename T, typename F>
__device__ __forceinline__ void for_each_band_output(const T* __restrict__ x, const Geom& g, const PoolP& p,
                                                     const BandPlan& plan, F f) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int H = int(g.h), W = int(g.w), OH = int(g.oh), OW = int(g.ow);
  const int64_t pl = blockIdx.x / unsigned(plan.bands);
  const int band = int(blockIdx.x % unsigned(plan.bands));
  const int i0 = band * plan.rows, i1 = ::min(OH, i0 + plan.rows);
  const int r_lo = ::max(0, i0 * p.sh - p.ph);
  const int r_hi = ::min(H, (i1 - 1) * p.sh - p.ph + (p.kh - 1) * p.dh + 1);
  const int shift = load_run(x + pl * g.h * g.w + int64_t(r_lo) * W, ::max(0, r_hi - r_lo) * W,
                             reinterpret_cast<T*>(smem_raw));
  __syncthreads();
  const T* tile = reinterpret_cast<const T*>(smem_raw) + shift;
  const int n = (i1 - i0) * OW;
  const int di = int(blockDim.x) / OW, dj = int(blockDim.x) % OW;
  int i = i0 + int(threadIdx.x) / OW, j = int(threadIdx.x) % OW;
  const int64_t obase = (pl * OH + i0) * int64_t(OW);
  for (int o = threadIdx.x; o < n; o += blockDim.x) {
    f(tile, r_lo, i, j, obase + o);
    i += di;
    j += dj;
    if (j >= OW) {
      j -= OW;
      ++i;
    }
  }
}

// KH, KW: the window's size when known at compile time (then its loops unroll), else 0.
// Launch bounds: 8 blocks of 256 per SM for 4- and 8-byte types, 5 for 2-byte ones (the
// most that compile without spills).
template <typename T, int KH, int KW>
__global__ void __launch_bounds__(256, sizeof(T) >= 4 ? 8 : 5)
    max_pool_tiled_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t* __restrict__ idx, Geom g, PoolP p,
                          BandPlan plan) {
  const int H = int(g.h), W = int(g.w);
  // Clamping is exact without dilation (the window is one run of rows and of columns).
  const bool clamped = KH > 0 && p.dh == 1 && p.dw == 1;
  for_each_band_output(x, g, p, plan, [&](const T* tile, int r_lo, int i, int j, int64_t o) {
    const int hs = i * p.sh - p.ph, ws = j * p.sw - p.pw;
    int64_t* io = idx ? idx + o : nullptr;
    if constexpr (KH > 0 && KW > 0) {
      if (clamped) window_max_clamped<T, KH, KW>(tile, r_lo, H, W, hs, ws, y + o, io);
      else window_max<T>(tile, r_lo, H, W, hs, ws, p, y + o, io);
    } else {
      window_max<T>(tile, r_lo, H, W, hs, ws, p, y + o, io);
    }
  });
}

// Backward (it has no attributes, so the windows are unknown): a block owns input rows
// [h0, h1) of a plane, accumulates in shared memory the gradient of every output of the
// plane whose index falls in them, then writes its rows of grad_x once, in grad_x's dtype.
// No zeroing pass and no global atomics; indices outside the plane are ignored.
template <typename T, typename A>
__global__ void max_pool_backward_tiled_kernel(const T* __restrict__ gy, const int64_t* __restrict__ idx,
                                               T* __restrict__ gx, Geom g, BandPlan plan) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  A* acc = reinterpret_cast<A*>(smem_raw);
  const int H = int(g.h), W = int(g.w), nout = int(g.oh * g.ow);
  const int64_t pl = blockIdx.x / unsigned(plan.bands);
  const int band = int(blockIdx.x % unsigned(plan.bands));
  const int h0 = band * plan.rows, h1 = ::min(H, h0 + plan.rows);
  const int lo = h0 * W, count = (h1 - h0) * W;
  for (int e = threadIdx.x; e < count; e += blockDim.x) acc[e] = A(0);
  __syncthreads();
  const int64_t* pi = idx + pl * nout;
  const T* pg = gy + pl * nout;
  for (int o = threadIdx.x; o < nout; o += blockDim.x) {
    const int64_t a = pi[o] - lo;
    if (a >= 0 && a < count) atomicAdd(acc + a, convert<A>(pg[o]));
  }
  __syncthreads();
  T* out = gx + pl * g.h * g.w + lo;
  for (int e = threadIdx.x; e < count; e += blockDim.x) out[e] = convert<T>(acc[e]);
}

constexpr int kTileBytes = 16 * 1024;       // forward tile budget (several blocks per SM)
constexpr int kBackwardTileBytes = 32 * 1024;
constexpr int kMaxBackwardBands = 8;        // each band block reads all of its plane's indices

// Output rows per band so that a band's input rows fit the tile; none when one row won't.
BandPlan forward_plan(const Geom& g, const PoolP& p, size_t elem) {
  const int64_t span = int64_t(p.kh - 1) * p.dh + 1;  // input rows of one output row
  const int64_t row_bytes = g.w * int64_t(elem);
  const int64_t fit = kTileBytes / row_bytes;          // input rows that fit
  if (fit < span || g.h * g.w >= INT32_MAX || g.oh * g.ow >= INT32_MAX) return {};
  const int64_t max_rows = std::max<int64_t>(1, (fit - span) / p.sh + 1);
  const int64_t bands = (g.oh + max_rows - 1) / max_rows;
  const int64_t rows = (g.oh + bands - 1) / bands;
  if (g.planes * bands >= INT32_MAX) return {};
  return {int(rows), int(bands)};
}

// Launch shape of a forward plan: the tile (its input rows plus room for the 16-byte
// alignment shift) and the threads (fewer for short bands).
size_t forward_smem(const Geom& g, const PoolP& p, const BandPlan& plan, size_t elem) {
  const int64_t rows_in = std::min<int64_t>(g.h, int64_t(plan.rows - 1) * p.sh + int64_t(p.kh - 1) * p.dh + 1);
  return (size_t(rows_in) * size_t(g.w) + 16 / elem) * elem;
}
int forward_threads(const Geom& g, const BandPlan& plan) { return plan.rows * g.ow >= 256 ? 256 : 128; }

BandPlan backward_plan(const Geom& g, size_t acc_elem) {
  const int64_t row_bytes = g.w * int64_t(acc_elem);
  const int64_t fit = kBackwardTileBytes / row_bytes;
  if (fit < 1 || g.h * g.w >= INT32_MAX) return {};
  const int64_t bands = (g.h + fit - 1) / fit;
  if (bands > kMaxBackwardBands || g.planes * bands >= INT32_MAX) return {};
  return {int((g.h + bands - 1) / bands), int(bands)};
}

template <typename T, typename A>
__global__ void max_pool_backward_kernel(const T* gy, const int64_t* idx, A* acc, Geom g) {
  KILN_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t pl = o / (g.ow * g.oh);
    if (idx[o] >= 0) atomicAdd(acc + pl * g.h * g.w + idx[o], convert<A>(gy[o]));
  }
}

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

struct Window {
  int64_t h0, h1, w0, w1;
  double divisor;
};
__device__ Window avg_window(int64_t i, int64_t j, const Geom& g, const PoolP& p) {
  int64_t h0 = i * p.sh - p.ph, w0 = j * p.sw - p.pw;
  int64_t h1 = imin(h0 + p.kh, g.h + p.ph), w1 = imin(w0 + p.kw, g.w + p.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = imax(h0, 0);
  w0 = imax(w0, 0);
  h1 = imin(h1, g.h);
  w1 = imin(w1, g.w);
  double div = p.count_include_pad ? double(padded) : double((h1 - h0) * (w1 - w0));
  if (p.divisor_override) div = double(p.divisor_override);
  return {h0, h1, w0, w1, div};
}

template <typename T>
__global__ void avg_pool_kernel(const T* x, T* y, Geom g, PoolP p) {
  using A = comp_t<T>;
  KILN_PLANE_LOOP(pl, o2, i, j) {
    const int64_t o = pl * g.oh * g.ow + o2;
    const T* in = x + pl * g.h * g.w;
    const Window win = avg_window(i, j, g, p);
    A s = A(0);
    for (int64_t r = win.h0; r < win.h1; ++r)
      for (int64_t c = win.w0; c < win.w1; ++c) s += convert<A>(in[r * g.w + c]);
    y[o] = convert<T>(A(double(s) / win.divisor));
  }
}

// avg_pool2d over the band tile (for_each_band_output): the same sums and divisor as
// avg_pool_kernel, read from shared memory.
template <typename T>
__global__ void __launch_bounds__(256, sizeof(T) >= 4 ? 8 : 5)
    avg_pool_tiled_kernel(const T* __restrict__ x, T* __restrict__ y, Geom g, PoolP p, BandPlan plan) {
  using A = comp_t<T>;
  const int W = int(g.w);
  for_each_band_output(x, g, p, plan, [&](const T* tile, int r_lo, int i, int j, int64_t o) {
    const Window win = avg_window(i, j, g, p);
    A s = A(0);
    for (int r = int(win.h0); r < int(win.h1); ++r) {
      const T* row = tile + (r - r_lo) * W;
      for (int c = int(win.w0); c < int(win.w1); ++c) s += convert<A>(row[c]);
    }
    y[o] = convert<T>(A(double(s) / win.divisor));
  });
}

// Backward gathers: grid.y walks planes, grid.x the input elements e = r * W + c of a plane.
#define KILN_INPUT_PLANE_LOOP(pl, e, r, c)                                                          \
  for (int64_t pl = blockIdx.y; pl < g.planes; pl += gridDim.y)                                     \
    for (int e = int(blockIdx.x * blockDim.x + threadIdx.x), r = e / int(g.w), c = e % int(g.w);    \
         e < int(g.h * g.w); e += int(gridDim.x * blockDim.x), r = e / int(g.w), c = e % int(g.w))

// The outputs [*lo, *hi] along one axis whose avg_pool2d window covers input position x:
// o * s - pad <= x < o * s - pad + k (a window clipped to the padded input still reaches
// every input position below o * s - pad + k). Empty (lo > hi) where windows leave gaps.
__device__ __forceinline__ void covering_outputs(int x, int k, int s, int pad, int64_t out, int* lo, int* hi) {
  const int before = x + pad - k;  // o * s > before
  *lo = before < 0 ? 0 : before / s + 1;
  *hi = int(imin((x + pad) / s, out - 1));
}

// grad_x[r, c] = sum of grad_y[i, j] / divisor(i, j) over the windows (i, j) covering (r, c),
// in the accumulation type (float for float/half types, as PyTorch's kernel).
template <typename T>
__global__ void avg_pool_backward_gather_kernel(const T* __restrict__ gy, T* __restrict__ gx, Geom g, PoolP p) {
  using A = comp_t<T>;
  KILN_INPUT_PLANE_LOOP(pl, e, r, c) {
    int i0, i1, j0, j1;
    covering_outputs(r, p.kh, p.sh, p.ph, g.oh, &i0, &i1);
    covering_outputs(c, p.kw, p.sw, p.pw, g.ow, &j0, &j1);
    const T* gp = gy + pl * g.oh * g.ow;
    A s = A(0);
    for (int i = i0; i <= i1; ++i)
      for (int j = j0; j <= j1; ++j) s += convert<A>(gp[i * g.ow + j]) / A(avg_window(i, j, g, p).divisor);
    gx[pl * g.h * g.w + e] = convert<T>(s);
  }
}

// Output cell i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)).
__device__ __forceinline__ int64_t start_of(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
__device__ __forceinline__ int64_t end_of(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

template <typename T>
__global__ void adaptive_avg_kernel(const T* x, T* y, Geom g) {
  using A = comp_t<T>;
  KILN_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t j = o % g.ow, i = (o / g.ow) % g.oh, pl = o / (g.ow * g.oh);
    const int64_t h0 = start_of(i, g.h, g.oh), h1 = end_of(i, g.h, g.oh);
    const int64_t w0 = start_of(j, g.w, g.ow), w1 = end_of(j, g.w, g.ow);
    const T* in = x + pl * g.h * g.w;
    A s = A(0);
    for (int64_t r = h0; r < h1; ++r)
      for (int64_t c = w0; c < w1; ++c) s += convert<A>(in[r * g.w + c]);
    y[o] = convert<T>(s / A((h1 - h0) * (w1 - w0)));
  }
}

// Input row r lies in output rows [floor(r*OH/H), ceil((r+1)*OH/H)) (the cells of the
// rule above that contain r, exactly); grad_x[r, c] sums their grad / area.
template <typename T>
__global__ void adaptive_avg_backward_gather_kernel(const T* __restrict__ gy, T* __restrict__ gx, Geom g) {
  using A = comp_t<T>;
  KILN_INPUT_PLANE_LOOP(pl, e, r, c) {
    const int64_t i0 = start_of(r, g.oh, g.h), i1 = end_of(r, g.oh, g.h);
    const int64_t j0 = start_of(c, g.ow, g.w), j1 = end_of(c, g.ow, g.w);
    const T* gp = gy + pl * g.oh * g.ow;
    A s = A(0);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t rows = end_of(i, g.h, g.oh) - start_of(i, g.h, g.oh);
      for (int64_t j = j0; j < j1; ++j)
        s += convert<A>(gp[i * g.ow + j]) / A(rows * (end_of(j, g.w, g.ow) - start_of(j, g.w, g.ow)));
    }
    gx[pl * g.h * g.w + e] = convert<T>(s);
  }
}

template <typename P>
P* ptr(const Tensor& t) {
  return static_cast<P*>(t.data_ptr());
}

void max_pool_entry(const KernelArgs& k) {
  const Tensor &x = k.inputs[0], &y = k.outputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const Geom g = geom(x, y);
  if (y.numel() == 0) return;
  const PoolP p = pool_params(k.attr<Pool2dAttrs>());
  int64_t* idx = k.outputs.size() > 1 ? ptr<int64_t>(k.outputs[1]) : nullptr;
  KILN_DISPATCH_FLOATING(x.dtype(), "max_pool2d", [&]<typename TK>() {
    using T = dev_t<TK>;
    const BandPlan plan = forward_plan(g, p, sizeof(T));
    if (plan.bands > 0) {
      auto launch = [&]<int KH, int KW>() {
        max_pool_tiled_kernel<T, KH, KW><<<unsigned(g.planes * plan.bands), forward_threads(g, plan),
                                           forward_smem(g, p, plan, sizeof(T)), current_stream(dev)>>>(
            ptr<const T>(x), ptr<T>(y), idx, g, p, plan);
      };
      if (p.kh == 3 && p.kw == 3) launch.template operator()<3, 3>();
      else if (p.kh == 2 && p.kw == 2) launch.template operator()<2, 2>();
      else launch.template operator()<0, 0>();
    } else {
      max_pool_kernel<T><<<plane_grid(g, dev), kThreads, 0, current_stream(dev)>>>(ptr<const T>(x), ptr<T>(y), idx,
                                                                                   g, p);
    }
    KILN_CUDA_CHECK_LAUNCH("max_pool2d");
  });
}

void avg_pool_entry(const KernelArgs& k) {
  const Tensor &x = k.inputs[0], &y = k.outputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  if (y.numel() == 0) return;
  const Geom g = geom(x, y);
  const PoolP p = pool_params(k.attr<Pool2dAttrs>());
  KILN_DISPATCH_FLOATING(x.dtype(), "avg_pool2d", [&]<typename TK>() {
    using T = dev_t<TK>;
    const BandPlan plan = forward_plan(g, p, sizeof(T));
    if (plan.bands > 0) {
      avg_pool_tiled_kernel<T><<<unsigned(g.planes * plan.bands), forward_threads(g, plan),
                                 forward_smem(g, p, plan, sizeof(T)), current_stream(dev)>>>(ptr<const T>(x),
                                                                                             ptr<T>(y), g, p, plan);
    } else {
      avg_pool_kernel<T><<<plane_grid(g, dev), kThreads, 0, current_stream(dev)>>>(ptr<const T>(x), ptr<T>(y), g, p);
    }
    KILN_CUDA_CHECK_LAUNCH("avg_pool2d");
  });
}

void adaptive_avg_entry(const KernelArgs& k) {
  const Tensor &x = k.inputs[0], &y = k.outputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  if (y.numel() == 0) return;
  KILN_DISPATCH_FLOATING(x.dtype(), "adaptive_avg_pool2d", [&]<typename TK>() {
    using T = dev_t<TK>;
    adaptive_avg_kernel<T><<<blocks_for(y.numel(), dev, 32), kThreads, 0, current_stream(dev)>>>(
        ptr<const T>(x), ptr<T>(y), geom(x, y));
    KILN_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d");
  });
}

// Backward ops: scatter into a zeroed accumulation buffer, then convert into grad_x.
template <typename Launch>
void scatter_backward(const char* op, const Tensor& gy, const Tensor& gx, int dev, Launch launch) {
  CudaDeviceGuard guard(dev);
  Tensor gxo = gx;
  const DType acc = gy.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  Tensor buf = gx.dtype() == acc ? gxo : empty(gx.shape(), TensorOptions(acc).device(gx.device()));
  buf.zero_();
  if (gy.numel() > 0) {
    KILN_DISPATCH_FLOATING(gy.dtype(), op, [&]<typename TK>() {
      using T = dev_t<TK>;
      if (acc == DType::Float64) launch.template operator()<T, double>(ptr<const T>(gy), ptr<double>(buf));
      else launch.template operator()<T, float>(ptr<const T>(gy), ptr<float>(buf));
    });
    KILN_CUDA_CHECK_LAUNCH(op);
  }
  if (!buf.is_same(gxo)) gxo.copy_(buf);
}

void max_pool_backward_entry(const KernelArgs& k) {
  const Tensor &gy = k.inputs[0], &idx = k.inputs[1], &gx = k.outputs[0];
  const int dev = k.device.index;
  const Geom g = geom(gx, gy);
  const bool f64 = gy.dtype() == DType::Float64;
  const BandPlan plan = backward_plan(g, f64 ? sizeof(double) : sizeof(float));
  if (plan.bands > 0 && gx.numel() > 0) {
    CudaDeviceGuard guard(dev);
    const size_t smem = size_t(plan.rows) * size_t(g.w) * (f64 ? sizeof(double) : sizeof(float));
    KILN_DISPATCH_FLOATING(gy.dtype(), "max_pool2d_backward", [&]<typename TK>() {
      using T = dev_t<TK>;
      using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
      max_pool_backward_tiled_kernel<T, A><<<unsigned(g.planes * plan.bands), kThreads, smem, current_stream(dev)>>>(
          ptr<const T>(gy), ptr<const int64_t>(idx), ptr<T>(gx), g, plan);
    });
    KILN_CUDA_CHECK_LAUNCH("max_pool2d_backward");
    return;
  }
  // Planes too wide for the shared-memory bands: atomics into a zeroed buffer.
  scatter_backward("max_pool2d_backward", gy, gx, dev, [&]<typename T, typename A>(const T* pgy, A* acc) {
    if constexpr (std::is_same_v<A, double> == std::is_same_v<T, double>)
      max_pool_backward_kernel<T, A><<<blocks_for(gy.numel(), dev, 32), kThreads, 0, current_stream(dev)>>>(
          pgy, ptr<const int64_t>(idx), acc, g);
  });
}

void avg_pool_backward_entry(const KernelArgs& k) {
  const Tensor &gy = k.inputs[0], &gx = k.outputs[0];
  if (gx.numel() == 0) return;
  const int dev = k.device.index;
  const Geom g = geom(gx, gy);
  const PoolP p = pool_params(k.attr<Pool2dAttrs>());
  CudaDeviceGuard guard(dev);
  KILN_DISPATCH_FLOATING(gy.dtype(), "avg_pool2d_backward", [&]<typename TK>() {
    using T = dev_t<TK>;
    avg_pool_backward_gather_kernel<T><<<input_plane_grid(g, dev), kThreads, 0, current_stream(dev)>>>(
        ptr<const T>(gy), ptr<T>(gx), g, p);
  });
  KILN_CUDA_CHECK_LAUNCH("avg_pool2d_backward");
}

void adaptive_avg_backward_entry(const KernelArgs& k) {
  const Tensor &gy = k.inputs[0], &gx = k.outputs[0];
  if (gx.numel() == 0) return;
  const int dev = k.device.index;
  const Geom g = geom(gx, gy);
  CudaDeviceGuard guard(dev);
  KILN_DISPATCH_FLOATING(gy.dtype(), "adaptive_avg_pool2d_backward", [&]<typename TK>() {
    using T = dev_t<TK>;
    adaptive_avg_backward_gather_kernel<T><<<input_plane_grid(g, dev), kThreads, 0, current_stream(dev)>>>(
        ptr<const T>(gy), ptr<T>(gx), g);
  });
  KILN_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d_backward");
}

}  // namespace

void register_pool(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  r.add(cu, OpId::MaxPool2d, max_pool_entry);
  r.add(cu, OpId::MaxPool2dBackward, max_pool_backward_entry);
  r.add(cu, OpId::AvgPool2d, avg_pool_entry);
  r.add(cu, OpId::AvgPool2dBackward, avg_pool_backward_entry);
  r.add(cu, OpId::AdaptiveAvgPool2d, adaptive_avg_entry);
  r.add(cu, OpId::AdaptiveAvgPool2dBackward, adaptive_avg_backward_entry);
}

}  // namespace kiln::cuda
