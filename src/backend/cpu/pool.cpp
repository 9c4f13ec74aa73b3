// CPU kernels: max/avg/adaptive-avg pool2d forward and backward (NCHW contiguous).
// max_pool2d (on finite inputs; with indices for training, read from oneDNN's workspace)
// and avg_pool2d (where oneDNN's divisor rule is PyTorch's) run oneDNN pooling for
// float32/bfloat16; the rest are OpenMP loops over (n, c) planes, which is where
// pooling's memory-bound work splits without write conflicts.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kiln/op_attrs.h"
#include "src/backend/cpu/dnnl_utils.h"
#include "src/backend/cpu/linalg_family.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/parallel.h"

namespace kiln::cpu {

namespace {
namespace du = dnnl_utils;
using dims = dnnl::memory::dims;

struct PoolGeom {
  int64_t planes, h, w, oh, ow;
};
PoolGeom pool_geom(const Tensor& x, const Tensor& y) {
  return {x.shape()[0] * x.shape()[1], x.shape()[2], x.shape()[3], y.shape()[2], y.shape()[3]};
}

// Bottom/right padding that makes oneDNN's size rule give PyTorch's output size (ceil_mode included).
int64_t pad_r(int64_t in, int64_t out, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (out - 1) * s + (k - 1) * d + 1 - in - p;
}

// ------------------------------------------------------------------ oneDNN forward

struct PoolPrimitive {
  std::optional<dnnl::pooling_v2_forward> prim;
  dnnl::memory::desc scratchpad, workspace;  // workspace: training only
};

// The workspace of max pooling holds, per output, the argmax's position in its window
// (kh * KW + kw) as u8 or s32, laid out as the output. Turns it into PyTorch's index
// into the input plane (ih * W + iw).
template <typename W>
void window_to_plane_index(const W* ws, int64_t* idx, const PoolGeom& g, const Pool2dAttrs& a) {
  // offset[k]: the input position of window tap k relative to the window's corner
  std::vector<int64_t> offset(size_t(a.kernel[0] * a.kernel[1]));
  for (int64_t u = 0; u < a.kernel[0]; ++u)
    for (int64_t v = 0; v < a.kernel[1]; ++v)
      offset[size_t(u * a.kernel[1] + v)] = u * a.dilation[0] * g.w + v * a.dilation[1];
  const int64_t* off = offset.data();
  const int64_t taps = int64_t(offset.size()), oh = g.oh, ow = g.ow, w = g.w;  // locals: see max_pool_2x2
  const int64_t s0 = a.stride[0], s1 = a.stride[1], p0 = a.padding[0], p1 = a.padding[1];
#pragma omp parallel for if (g.planes * oh * ow > kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl)
    for (int64_t i = 0; i < oh; ++i) {
      const int64_t o = (pl * oh + i) * ow;
      const int64_t corner = (i * s0 - p0) * w - p1;
      for (int64_t j = 0; j < ow; ++j) idx[o + j] = corner + j * s1 + off[std::min(int64_t(ws[o + j]), taps - 1)];
    }
}

// y = pool(x) through oneDNN; with idx (max pooling only), also the argmax indices.
bool pool_dnnl(dnnl::algorithm alg, const Tensor& x, const Tensor& y, const Pool2dAttrs& a, int64_t* idx = nullptr) {
  const auto dt = du::dnnl_type(x.dtype());
  if (!dt || x.dtype() == DType::Float16) return false;
  const dims xd = du::to_dims(x.shape()), yd = du::to_dims(y.shape());
  const dims pr{pad_r(xd[2], yd[2], a.kernel[0], a.stride[0], a.padding[0], a.dilation[0]),
                pad_r(xd[3], yd[3], a.kernel[1], a.stride[1], a.padding[1], a.dilation[1])};
  const bool training = idx != nullptr;
  du::KeyBuilder key;
  key << "pool" << int(alg) << int(*dt) << training << xd << yd << a.kernel[0] << a.kernel[1] << a.stride[0]
      << a.stride[1] << a.padding[0] << a.padding[1] << a.dilation[0] << a.dilation[1];
  const dnnl::memory::desc xmd(xd, *dt, dnnl::memory::format_tag::nchw), ymd(yd, *dt, dnnl::memory::format_tag::nchw);
  auto entry = du::primitive_cache().get<PoolPrimitive>(key.str(), [&] {
    PoolPrimitive p;
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::pooling_v2_forward::primitive_desc pd(
          dnnl::pooling_v2_forward::desc(training ? dnnl::prop_kind::forward_training
                                                  : dnnl::prop_kind::forward_inference,
                                         alg, xmd, ymd, {a.stride[0], a.stride[1]}, {a.kernel[0], a.kernel[1]},
                                         {a.dilation[0] - 1, a.dilation[1] - 1}, {a.padding[0], a.padding[1]}, pr),
          attr, du::engine());
      p.scratchpad = pd.scratchpad_desc();
      if (training) {
        // Only a workspace laid out as the output (which oneDNN documents) is read here.
        const auto ws = pd.workspace_desc();
        using wdt = dnnl::memory::data_type;
        if (ws.data_type() != wdt::u8 && ws.data_type() != wdt::s32) return p;
        if (ws != dnnl::memory::desc(yd, ws.data_type(), dnnl::memory::format_tag::nchw)) return p;
        p.workspace = ws;
      }
      p.prim.emplace(pd);
    } catch (const dnnl::error&) {
    }
    return p;
  });
  if (!entry->prim) return false;
  std::unordered_map<int, dnnl::memory> margs{{DNNL_ARG_SRC, du::wrap(xmd, x)},
                                              {DNNL_ARG_DST, du::wrap(ymd, y)},
                                              {DNNL_ARG_SCRATCHPAD, du::scratchpad(entry->scratchpad)}};
  std::optional<du::TempMemory> ws;
  if (training) {
    ws = du::temp_memory(entry->workspace);
    margs.emplace(DNNL_ARG_WORKSPACE, ws->memory);
  }
  entry->prim->execute(du::stream(), margs);
  du::stream().wait();
  if (training) {
    const PoolGeom g = pool_geom(x, y);
    if (entry->workspace.data_type() == dnnl::memory::data_type::u8)
      window_to_plane_index(static_cast<const uint8_t*>(ws->memory.get_data_handle()), idx, g, a);
    else
      window_to_plane_index(static_cast<const int32_t*>(ws->memory.get_data_handle()), idx, g, a);
  }
  return true;
}

// ------------------------------------------------------------------ the plane walks

// Every pooling loop walks (n, c) planes in parallel (planes never share outputs or inputs).
// Forward: out(o, in, i, j) for every output (i, j) of each plane, o its flat index in y
// and in the plane of x.
template <typename T, typename F>
void for_each_output(const Tensor& x, const Tensor& y, F out) {
  const PoolGeom g = pool_geom(x, y);
  const T* px = x.data<T>();
#pragma omp parallel for if (g.planes * g.h * g.w > kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    const T* in = px + pl * g.h * g.w;
    for (int64_t i = 0; i < g.oh; ++i)
      for (int64_t j = 0; j < g.ow; ++j) out(pl * g.oh * g.ow + i * g.ow + j, in, i, j);
  }
}

// Backward: spread(acc, o, i, j) adds output o's gradient into the plane's float64
// accumulator acc (zeroed), which then becomes the plane of grad_x.
template <typename T, typename F>
void accumulate_planes(const Tensor& gy, const Tensor& gx, F spread) {
  const PoolGeom g = pool_geom(gx, gy);
  T* pgx = gx.data<T>();
#pragma omp parallel for if (g.planes * g.h * g.w > kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    std::vector<double> acc(size_t(g.h * g.w), 0.0);
    for (int64_t i = 0; i < g.oh; ++i)
      for (int64_t j = 0; j < g.ow; ++j) spread(acc, pl * g.oh * g.ow + i * g.ow + j, i, j);
    T* out = pgx + pl * g.h * g.w;
    for (int64_t k = 0; k < g.h * g.w; ++k) out[k] = T(acc[size_t(k)]);
  }
}

// ------------------------------------------------------------------ max pool

// True when x (contiguous) holds a NaN or an infinity. oneDNN's max pooling drops NaN
// where PyTorch's propagates it, and starts from the lowest finite value (a window of -inf
// would give -FLT_MAX and no valid argmax), so such inputs take kiln's own loop. One
// branch-free pass per chunk (vectorised), chunks in parallel.
template <typename T>
bool holds_nonfinite(const Tensor& x) {
  constexpr int64_t kChunk = int64_t(1) << 14;
  const int64_t n = x.numel(), chunks = (n + kChunk - 1) / kChunk;
  const T* p = x.data<T>();
  int found = 0;
#pragma omp parallel for reduction(| : found) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = std::min(n, (c + 1) * kChunk);
    int hit = 0;
    if constexpr (std::is_same_v<T, BFloat16>) {
      for (int64_t i = c * kChunk; i < end; ++i) hit |= (p[i].bits & 0x7f80) == 0x7f80;
    } else {
      for (int64_t i = c * kChunk; i < end; ++i) hit |= !(std::fabs(p[i]) <= std::numeric_limits<T>::max());
    }
    found |= hit;
  }
  return found != 0;
}

bool may_use_dnnl_max(const Tensor& x) {
  switch (x.dtype()) {
    case DType::Float32: return !holds_nonfinite<float>(x);
    case DType::BFloat16: return !holds_nonfinite<BFloat16>(x);
    default: return false;
  }
}

// NaN wins, as in PyTorch; padding never does (positions outside the input are skipped).
template <typename T>
void max_pool_loops(const Tensor& x, const Tensor& y, int64_t* idx, const Pool2dAttrs& a) {
  const int64_t h = x.shape()[2], w = x.shape()[3];
  T* py = y.data<T>();
  for_each_output<T>(x, y, [&](int64_t o, const T* in, int64_t i, int64_t j) {
    double best = -std::numeric_limits<double>::infinity();
    int64_t arg = -1;
    for (int64_t u = 0; u < a.kernel[0]; ++u) {
      const int64_t ih = i * a.stride[0] - a.padding[0] + u * a.dilation[0];
      if (ih < 0 || ih >= h) continue;
      for (int64_t v = 0; v < a.kernel[1]; ++v) {
        const int64_t iw = j * a.stride[1] - a.padding[1] + v * a.dilation[1];
        if (iw < 0 || iw >= w) continue;
        const double val = double(in[ih * w + iw]);
        if (arg < 0 || val > best || std::isnan(val)) {
          best = val;
          arg = ih * w + iw;
          if (std::isnan(val)) break;
        }
      }
      if (std::isnan(best)) break;
    }
    py[o] = arg < 0 ? T(-std::numeric_limits<float>::infinity()) : in[arg];
    if (idx) idx[o] = arg;
  });
}

// MaxPool2d(2) with indices (training's common case), float32, every window inside the
// input: one branch-free pass over x, in which the compiler vectorises across outputs.
// oneDNN's training kernel took twice its inference time here, plus the NaN scan and the
// workspace conversion. The first maximum wins; the first NaN beats every number.
bool max_pool_2x2(const Tensor& x, const Tensor& y, int64_t* idx, const Pool2dAttrs& a) {
  const PoolGeom g = pool_geom(x, y);
  if (x.dtype() != DType::Float32 || a.kernel != std::array<int64_t, 2>{2, 2} ||
      a.stride != std::array<int64_t, 2>{2, 2} || a.padding != std::array<int64_t, 2>{0, 0} ||
      a.dilation != std::array<int64_t, 2>{1, 1} || 2 * g.oh > g.h || 2 * g.ow > g.w || g.h * g.w > INT32_MAX)
    return false;
  const float* px = x.data<float>();
  float* py = y.data<float>();
  // locals, not g's fields: the vectoriser must know the trip count is not stored to
  const int64_t rows = g.planes * g.oh, oh = g.oh, ow = g.ow, h = g.h, wd = g.w;
#pragma omp parallel for if (rows * ow > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t pl = r / oh, i = r % oh;
    const float* r0 = px + (pl * h + 2 * i) * wd;
    const float* r1 = r0 + wd;
    float* yo = py + r * ow;
    int64_t* io = idx + r * ow;
    // int32 offsets (a plane's index fits) keep the float and index lanes the same width
    const int32_t w = int32_t(wd), corner = int32_t(2 * i * wd);
    for (int64_t j = 0; j < ow; ++j) {
      const float a0 = r0[2 * j], a1 = r0[2 * j + 1], b0 = r1[2 * j], b1 = r1[2 * j + 1];
      float m = a0;
      int32_t k = 0;
      bool t = a1 > m || (a1 != a1 && m == m);
      m = t ? a1 : m;
      k = t ? 1 : k;
      t = b0 > m || (b0 != b0 && m == m);
      m = t ? b0 : m;
      k = t ? w : k;
      t = b1 > m || (b1 != b1 && m == m);
      m = t ? b1 : m;
      k = t ? w + 1 : k;
      yo[j] = m;
      io[j] = int64_t(corner + 2 * int32_t(j) + k);
    }
  }
  return true;
}

// in: x; outs: y, (indices)
void max_pool2d_kernel(const KernelArgs& args) {
  const auto& a = args.attr<Pool2dAttrs>();
  const Tensor &x = args.inputs[0], &y = args.outputs[0];
  int64_t* idx = args.outputs.size() > 1 ? args.outputs[1].data<int64_t>() : nullptr;
  if (idx && max_pool_2x2(x, y, idx, a)) return;
  if (may_use_dnnl_max(x) && pool_dnnl(dnnl::algorithm::pooling_max, x, y, a, idx)) return;
  KILN_DISPATCH_FLOATING(x.dtype(), "max_pool2d", [&]<typename T>() { max_pool_loops<T>(x, y, idx, a); });
}

// grad_x's planes zeroed, then each output's gradient added at its argmax.
template <typename T>
void max_pool_scatter(const Tensor& gy, const int64_t* pi, const Tensor& gx) {
  const PoolGeom g = pool_geom(gx, gy);
  const T* pgy = gy.data<T>();
  T* pgx = gx.data<T>();
#pragma omp parallel for if (g.planes * g.h * g.w > kParallelGrain)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
    T* out = pgx + pl * g.h * g.w;
    std::fill(out, out + g.h * g.w, T(0));
    for (int64_t o = pl * g.oh * g.ow; o < (pl + 1) * g.oh * g.ow; ++o)
      if (pi[o] >= 0) out[pi[o]] += pgy[o];
  }
}

// in: grad_y, indices; out: grad_x. float32/float64 add straight into grad_x (PyTorch's
// accumulation type for them); half types sum in double first.
void max_pool2d_backward_kernel(const KernelArgs& args) {
  const Tensor &gy = args.inputs[0], &idx = args.inputs[1], &gx = args.outputs[0];
  const int64_t* pi = idx.data<int64_t>();
  if (gy.dtype() == DType::Float32) return max_pool_scatter<float>(gy, pi, gx);
  if (gy.dtype() == DType::Float64) return max_pool_scatter<double>(gy, pi, gx);
  KILN_DISPATCH_FLOATING(gy.dtype(), "max_pool2d_backward", [&]<typename T>() {
    const T* pgy = gy.data<T>();
    accumulate_planes<T>(gy, gx, [&](std::vector<double>& acc, int64_t o, int64_t, int64_t) {
      if (pi[o] >= 0) acc[size_t(pi[o])] += double(pgy[o]);
    });
  });
}

// ------------------------------------------------------------------ avg and adaptive avg pool

// The input rows/cols [h0, h1) x [w0, w1) an output averages, and its divisor.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  double divisor;
};

// PyTorch's avg_pool2d window: clipped to the padded input for the divisor when counting
// padding, to the input itself otherwise; divisor_override replaces both.
AvgWindow avg_window(int64_t i, int64_t j, int64_t h, int64_t w, const Pool2dAttrs& a) {
  int64_t h0 = i * a.stride[0] - a.padding[0], w0 = j * a.stride[1] - a.padding[1];
  int64_t h1 = std::min(h0 + a.kernel[0], h + a.padding[0]), w1 = std::min(w0 + a.kernel[1], w + a.padding[1]);
  const int64_t padded_area = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min(h1, h);
  w1 = std::min(w1, w);
  double div = a.count_include_pad ? double(padded_area) : double((h1 - h0) * (w1 - w0));
  if (a.divisor_override) div = double(a.divisor_override);
  return {h0, h1, w0, w1, div};
}

// adaptive_avg_pool2d: output cell i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)),
// as in PyTorch, and divides by its area.
int64_t start_index(int64_t i, int64_t out, int64_t in) { return (i * in) / out; }
int64_t end_index(int64_t i, int64_t out, int64_t in) { return ((i + 1) * in + out - 1) / out; }
AvgWindow adaptive_window(int64_t i, int64_t j, const PoolGeom& g) {
  const int64_t h0 = start_index(i, g.oh, g.h), h1 = end_index(i, g.oh, g.h);
  const int64_t w0 = start_index(j, g.ow, g.w), w1 = end_index(j, g.ow, g.w);
  return {h0, h1, w0, w1, double((h1 - h0) * (w1 - w0))};
}

// y = the mean of each output's window (window(i, j) -> AvgWindow).
template <typename T, typename WindowOf>
void window_mean_loops(const Tensor& x, const Tensor& y, WindowOf window) {
  const int64_t w = x.shape()[3];
  T* py = y.data<T>();
  for_each_output<T>(x, y, [&](int64_t o, const T* in, int64_t i, int64_t j) {
    const AvgWindow win = window(i, j);
    double s = 0;
    for (int64_t r = win.h0; r < win.h1; ++r)
      for (int64_t c = win.w0; c < win.w1; ++c) s += double(in[r * w + c]);
    py[o] = T(s / win.divisor);
  });
}

// grad_x: each output's gradient divided by its divisor, spread over its window.
template <typename T, typename WindowOf>
void window_mean_backward_loops(const Tensor& gy, const Tensor& gx, WindowOf window) {
  const int64_t w = gx.shape()[3];
  const T* pgy = gy.data<T>();
  accumulate_planes<T>(gy, gx, [&](std::vector<double>& acc, int64_t o, int64_t i, int64_t j) {
    const AvgWindow win = window(i, j);
    const double v = double(pgy[o]) / win.divisor;
    for (int64_t r = win.h0; r < win.h1; ++r)
      for (int64_t c = win.w0; c < win.w1; ++c) acc[size_t(r * w + c)] += v;
  });
}

// oneDNN counts every position past the input as padding; PyTorch's count_include_pad
// counts only the declared padding, so the two agree unless ceil_mode adds more.
bool avg_matches_dnnl(const Tensor& x, const Tensor& y, const Pool2dAttrs& a) {
  if (a.divisor_override) return false;
  if (!a.count_include_pad) return true;
  for (size_t i = 0; i < 2; ++i)
    if (pad_r(x.shape()[i + 2], y.shape()[i + 2], a.kernel[i], a.stride[i], a.padding[i], 1) > a.padding[i])
      return false;
  return true;
}

// in: x; out: y
void avg_pool2d_kernel(const KernelArgs& args) {
  const auto& a = args.attr<Pool2dAttrs>();
  const Tensor &x = args.inputs[0], &y = args.outputs[0];
  const auto alg = a.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                       : dnnl::algorithm::pooling_avg_exclude_padding;
  if (avg_matches_dnnl(x, y, a) && pool_dnnl(alg, x, y, a)) return;
  const int64_t h = x.shape()[2], w = x.shape()[3];
  KILN_DISPATCH_FLOATING(x.dtype(), "avg_pool2d", [&]<typename T>() {
    window_mean_loops<T>(x, y, [&](int64_t i, int64_t j) { return avg_window(i, j, h, w, a); });
  });
}

// in: grad_y; out: grad_x
void avg_pool2d_backward_kernel(const KernelArgs& args) {
  const auto& a = args.attr<Pool2dAttrs>();
  const Tensor &gy = args.inputs[0], &gx = args.outputs[0];
  const int64_t h = gx.shape()[2], w = gx.shape()[3];
  KILN_DISPATCH_FLOATING(gy.dtype(), "avg_pool2d_backward", [&]<typename T>() {
    window_mean_backward_loops<T>(gy, gx, [&](int64_t i, int64_t j) { return avg_window(i, j, h, w, a); });
  });
}

void adaptive_avg_pool2d_kernel(const KernelArgs& args) {
  const Tensor &x = args.inputs[0], &y = args.outputs[0];
  const PoolGeom g = pool_geom(x, y);
  KILN_DISPATCH_FLOATING(x.dtype(), "adaptive_avg_pool2d", [&]<typename T>() {
    window_mean_loops<T>(x, y, [&](int64_t i, int64_t j) { return adaptive_window(i, j, g); });
  });
}

void adaptive_avg_pool2d_backward_kernel(const KernelArgs& args) {
  const Tensor &gy = args.inputs[0], &gx = args.outputs[0];
  const PoolGeom g = pool_geom(gx, gy);
  KILN_DISPATCH_FLOATING(gy.dtype(), "adaptive_avg_pool2d_backward", [&]<typename T>() {
    window_mean_backward_loops<T>(gy, gx, [&](int64_t i, int64_t j) { return adaptive_window(i, j, g); });
  });
}
}  // namespace

void register_pool_kernels(KernelRegistry& r) {
  r.add(DeviceType::Cpu, OpId::MaxPool2d, max_pool2d_kernel);
  r.add(DeviceType::Cpu, OpId::MaxPool2dBackward, max_pool2d_backward_kernel);
  r.add(DeviceType::Cpu, OpId::AvgPool2d, avg_pool2d_kernel);
  r.add(DeviceType::Cpu, OpId::AvgPool2dBackward, avg_pool2d_backward_kernel);
  r.add(DeviceType::Cpu, OpId::AdaptiveAvgPool2d, adaptive_avg_pool2d_kernel);
  r.add(DeviceType::Cpu, OpId::AdaptiveAvgPool2dBackward, adaptive_avg_pool2d_backward_kernel);
}

}  // namespace kiln::cpu
