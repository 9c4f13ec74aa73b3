#pragma once
// Naive double-precision convolution written from the definition, for tests:
// y[n,o,i,j] = b[o] + sum_{c,u,v} x[n, g*cg + c, i*s - p + u*d, j*s - p + v*d] * w[o, c, u, v]
// x, w, y are row-major NCHW / OIHW value lists (logical order, whatever the tensor layout).
#include <cstdint>
#include <vector>

#include "kiln/ops.h"

namespace kiln::testing {

struct ConvGeometry {
  int64_t n, c, h, w, o, kh, kw, g;
  Pair s, p, d;
  int64_t oh() const { return (h + 2 * p[0] - d[0] * (kh - 1) - 1) / s[0] + 1; }
  int64_t ow() const { return (w + 2 * p[1] - d[1] * (kw - 1) - 1) / s[1] + 1; }
  Shape x_shape() const { return {n, c, h, w}; }
  Shape w_shape() const { return {o, c / g, kh, kw}; }
  Shape y_shape() const { return {n, o, oh(), ow()}; }
};

inline std::vector<double> reference_conv2d(const ConvGeometry& k, const std::vector<double>& x,
                                            const std::vector<double>& w, const std::vector<double>* b) {
  const int64_t cg = k.c / k.g, og = k.o / k.g, oh = k.oh(), ow = k.ow();
  std::vector<double> y(size_t(k.n * k.o * oh * ow));
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t o = 0; o < k.o; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b ? (*b)[size_t(o)] : 0.0;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t u = 0; u < k.kh; ++u)
              for (int64_t v = 0; v < k.kw; ++v) {
                const int64_t ih = i * k.s[0] - k.p[0] + u * k.d[0], iw = j * k.s[1] - k.p[1] + v * k.d[1];
                if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                acc += x[size_t(((n * k.c + (o / og) * cg + c) * k.h + ih) * k.w + iw)] *
                       w[size_t(((o * cg + c) * k.kh + u) * k.kw + v)];
              }
          y[size_t(((n * k.o + o) * oh + i) * ow + j)] = acc;
        }
  return y;
}

// The small cases the layout tests share: plain, strided + dilated + grouped, depthwise, 1x1.
inline const std::vector<ConvGeometry>& conv_layout_cases() {
  static const std::vector<ConvGeometry> cases = {
      {2, 3, 7, 6, 4, 3, 3, 1, {1, 1}, {1, 1}, {1, 1}},
      {1, 4, 9, 8, 6, 3, 2, 2, {2, 1}, {1, 0}, {1, 2}},
      {2, 4, 8, 8, 4, 3, 3, 4, {2, 2}, {2, 1}, {2, 1}},
      {2, 5, 5, 5, 3, 1, 1, 1, {1, 1}, {0, 0}, {1, 1}},
  };
  return cases;
}

}  // namespace kiln::testing
