// Image transforms, computed on contiguous host float32 copies with plain loops (they
// run in the DataLoader's background thread, beside the training step's kernels).
#include "kiln/data/transforms.h"

#include <cmath>
#include <functional>

#include "kiln/generator.h"

namespace kiln::data {

namespace {

struct Images {
  Tensor host;  // contiguous float32 on the CPU
  int64_t n, c, h, w;
};

Images as_images(const char* op, const Tensor& x) {
  KILN_CHECK(x.defined(), op, "undefined tensor");
  KILN_CHECK(x.dim() >= 3, op, "expected images [..., C, H, W], got shape ", shape_str(x.shape()));
  KILN_CHECK(x.dtype() == DType::Float32, op, "expected float32 images, got ", dtype_name(x.dtype()));
  Images im;
  im.host = x.detach().to(kCpu).contiguous();
  im.c = x.size(-3);
  im.h = x.size(-2);
  im.w = x.size(-1);
  im.n = im.c * im.h * im.w == 0 ? 0 : x.numel() / (im.c * im.h * im.w);
  return im;
}

Tensor back_to(const Tensor& out, const Tensor& like) { return like.device().is_cpu() ? out : out.to(like.device()); }

// Four random 32-bit words for image number `counter` of a transform's stream.
void draw(uint64_t seed, uint64_t counter, uint32_t out[4]) { Philox4x32::generate(seed, counter, out); }

}  // namespace

Normalize::Normalize(std::vector<double> mean, std::vector<double> std) : mean_(std::move(mean)), std_(std::move(std)) {
  KILN_CHECK(!mean_.empty() && mean_.size() == std_.size(), "Normalize", "mean (", mean_.size(), " values) and std (",
             std_.size(), " values) must be non-empty and of equal length");
  for (double s : std_) KILN_CHECK(s > 0, "Normalize", "std must be positive, got ", s);
}

Tensor Normalize::operator()(const Tensor& x) {
  Images im = as_images("Normalize", x);
  KILN_CHECK(mean_.size() == 1 || int64_t(mean_.size()) == im.c, "Normalize", mean_.size(),
             " mean/std values for ", im.c, " channels");
  Tensor out = empty(x.shape(), TensorOptions(DType::Float32).device(kCpu));
  const float* src = im.host.data<float>();
  float* dst = out.data<float>();
  const int64_t plane = im.h * im.w;
  for (int64_t i = 0; i < im.n * im.c; ++i) {
    const size_t ch = mean_.size() == 1 ? 0 : size_t(i % im.c);
    const float m = float(mean_[ch]), inv = float(1.0 / std_[ch]);
    for (int64_t k = 0; k < plane; ++k) dst[i * plane + k] = (src[i * plane + k] - m) * inv;
  }
  return back_to(out, x);
}

RandomHorizontalFlip::RandomHorizontalFlip(double p, uint64_t seed) : p_(p), seed_(seed) {
  KILN_CHECK(p >= 0 && p <= 1, "RandomHorizontalFlip", "p must be in [0, 1], got ", p);
}

Tensor RandomHorizontalFlip::operator()(const Tensor& x) {
  Images im = as_images("RandomHorizontalFlip", x);
  Tensor out = empty(x.shape(), TensorOptions(DType::Float32).device(kCpu));
  const float* src = im.host.data<float>();
  float* dst = out.data<float>();
  const int64_t image = im.c * im.h * im.w;
  for (int64_t n = 0; n < im.n; ++n) {
    uint32_t r[4];
    draw(seed_, counter_++, r);
    const bool flip = Philox4x32::to_unit(r[0]) < p_;
    for (int64_t row = 0; row < im.c * im.h; ++row) {
      const float* s = src + n * image + row * im.w;
      float* d = dst + n * image + row * im.w;
      for (int64_t j = 0; j < im.w; ++j) d[j] = flip ? s[im.w - 1 - j] : s[j];
    }
  }
  return back_to(out, x);
}

RandomCrop::RandomCrop(int64_t size, int64_t padding, uint64_t seed) : RandomCrop(size, size, padding, seed) {}

RandomCrop::RandomCrop(int64_t height, int64_t width, int64_t padding, uint64_t seed)
    : height_(height), width_(width), padding_(padding), seed_(seed) {
  KILN_CHECK(height >= 1 && width >= 1 && padding >= 0, "RandomCrop", "size ", height, "x", width,
             " must be positive and padding ", padding, " non-negative");
}

Tensor RandomCrop::operator()(const Tensor& x) {
  Images im = as_images("RandomCrop", x);
  const int64_t ph = im.h + 2 * padding_, pw = im.w + 2 * padding_;
  KILN_CHECK(height_ <= ph && width_ <= pw, "RandomCrop", "crop ", height_, "x", width_, " is larger than the padded image ",
             ph, "x", pw);
  Shape shape = x.shape();
  shape[shape.size() - 2] = height_;
  shape[shape.size() - 1] = width_;
  Tensor out = empty(shape, TensorOptions(DType::Float32).device(kCpu));
  const float* src = im.host.data<float>();
  float* dst = out.data<float>();
  for (int64_t n = 0; n < im.n; ++n) {
    uint32_t r[4];
    draw(seed_, counter_++, r);
    // Window origin in padded coordinates, uniform over the valid positions.
    const int64_t top = int64_t(r[0] % uint32_t(ph - height_ + 1));
    const int64_t left = int64_t(r[1] % uint32_t(pw - width_ + 1));
    for (int64_t c = 0; c < im.c; ++c) {
      const float* s = src + (n * im.c + c) * im.h * im.w;
      float* d = dst + (n * im.c + c) * height_ * width_;
      for (int64_t i = 0; i < height_; ++i) {
        const int64_t si = top + i - padding_;
        for (int64_t j = 0; j < width_; ++j) {
          const int64_t sj = left + j - padding_;
          d[i * width_ + j] = (si >= 0 && si < im.h && sj >= 0 && sj < im.w) ? s[si * im.w + sj] : 0.0f;
        }
      }
    }
  }
  return back_to(out, x);
}

Tensor Compose::operator()(const Tensor& x) {
  Tensor y = x;
  for (const auto& t : transforms_) y = (*t)(y);
  return y;
}

std::function<Example(Example)> transform_inputs(std::shared_ptr<Transform> t) {
  return [t = std::move(t)](Example e) {
    e.input = (*t)(e.input);
    return e;
  };
}

}  // namespace kiln::data
