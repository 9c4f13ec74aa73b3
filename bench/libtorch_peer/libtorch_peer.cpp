// The libtorch twin of `kiln bench --device cpu` (issue 21): the same rows, sizes and
// timing rule (median of trials, each trial long enough to last >= 2 ms), plus the
// Fashion-MNIST CNN's training step and inference. Writes the same JSON as kiln bench.
//   libtorch_peer [--json FILE] [--trials N] [--only NAME_PART]
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace F = torch::nn::functional;

namespace {

struct Row {
  std::string name;
  double ms, bytes, flops;
};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// kiln bench's rule (tools/cmd_bench.cpp): median seconds per call over `trials` trials.
double time_op(const std::function<void()>& fn, int trials) {
  fn();
  double t0 = now_s();
  fn();
  const double once = std::max(now_s() - t0, 1e-7);
  const int per_trial = int(std::clamp(2e-3 / once, 1.0, 1000.0));
  std::vector<double> ts;
  for (int t = 0; t < trials; ++t) {
    t0 = now_s();
    for (int i = 0; i < per_trial; ++i) fn();
    ts.push_back((now_s() - t0) / per_trial);
  }
  std::nth_element(ts.begin(), ts.begin() + long(ts.size() / 2), ts.end());
  return ts[ts.size() / 2];
}

struct Bench {
  int trials = 9;
  std::string only;
  std::vector<Row> rows;
  void run(const std::string& name, double bytes, double flops, const std::function<void()>& fn) {
    if (!only.empty() && name.find(only) == std::string::npos) return;
    rows.push_back({name, time_op(fn, trials) * 1e3, bytes, flops});
    std::printf("%-44s %10.3f\n", name.c_str(), rows.back().ms);
    std::fflush(stdout);
  }
};

// The CNN of `kiln train` (tools/fashion_cnn.h).
torch::nn::Sequential fashion_cnn() {
  using namespace torch::nn;
  return Sequential(Conv2d(Conv2dOptions(1, 32, 3).padding(1)), BatchNorm2d(32), ReLU(), MaxPool2d(2),
                    Conv2d(Conv2dOptions(32, 64, 3).padding(1)), BatchNorm2d(64), ReLU(), MaxPool2d(2), Flatten(),
                    Linear(64 * 7 * 7, 10));
}

void suite(Bench& b) {
  const double F4 = 4;
  {
    const int64_t n = int64_t(1) << 24;
    auto a = torch::randn({n}), c = torch::empty({n});
    b.run("copy fp32 16M", 2 * n * F4, 0, [&] { c.copy_(a); });
  }
  {
    const int64_t n = int64_t(1) << 24;
    auto a = torch::randn({n}), x = torch::randn({n}), c = torch::randn({n});
    b.run("add fp32 16M", 3 * n * F4, 0, [&] { (void)(a + x); });
    b.run("sub fp32 16M", 3 * n * F4, 0, [&] { (void)(a - x); });
    b.run("mul fp32 16M", 3 * n * F4, 0, [&] { (void)(a * x); });
    b.run("div fp32 16M", 3 * n * F4, 0, [&] { (void)(a / x); });
    b.run("relu fp32 16M", 2 * n * F4, 0, [&] { (void)torch::relu(a); });
    b.run("gelu fp32 16M", 2 * n * F4, 0, [&] { (void)torch::gelu(a); });
    b.run("chain gelu(a*b+c) eager", 4 * n * F4, 0, [&] { (void)torch::gelu(a * x + c); });
    b.run("sum fp32 16M", n * F4, 0, [&] { (void)a.sum(); });
    b.run("mean fp32 16M", n * F4, 0, [&] { (void)a.mean(); });
    b.run("max fp32 16M", n * F4, 0, [&] { (void)a.max(); });
    b.run("std fp32 16M", n * F4, 0, [&] { (void)a.std(); });
    auto m = a.view({4096, n / 4096});
    b.run("sum dim=1 4096^2", n * F4, 0, [&] { (void)m.sum(1); });
    b.run("max dim=0 4096^2", n * F4, 0, [&] { (void)m.max(0); });
    b.run("softmax rows 4096^2", 2 * n * F4, 0, [&] { (void)torch::softmax(m, -1); });
  }
  for (int64_t n : {1024, 2048}) {
    auto x = torch::randn({n, n}), y = torch::randn({n, n});
    b.run("matmul fp32 " + std::to_string(n), 0, 2.0 * n * n * n, [&] { (void)torch::matmul(x, y); });
  }
  {
    auto x = torch::randn({32, 512, 512}), y = torch::randn({32, 512, 512});
    b.run("bmm fp32 32x512^3", 0, 2.0 * 32 * 512 * 512 * 512, [&] { (void)torch::bmm(x, y); });
    auto a = torch::randn({4096, 4096}), v = torch::randn({4096});
    b.run("matvec fp32 4096^2", 4096.0 * 4096 * F4, 2.0 * 4096 * 4096, [&] { (void)torch::mv(a, v); });
  }
  {
    const int64_t N = 8, C = 64, H = 56;
    auto x = torch::randn({N, C, H, H}), w = torch::randn({C, C, 3, 3});
    const double fl = 2.0 * N * C * H * H * C * 9;
    b.run("conv2d 3x3 torch.float32 N8 C64 56^2", 0, fl, [&] { (void)F::conv2d(x, w, F::Conv2dFuncOptions().padding(1)); });
    auto xc = x.contiguous(at::MemoryFormat::ChannelsLast), wc = w.contiguous(at::MemoryFormat::ChannelsLast);
    b.run("conv2d 3x3 torch.float32 NHWC", 0, fl, [&] { (void)F::conv2d(xc, wc, F::Conv2dFuncOptions().padding(1)); });
    b.run("conv_transpose2d 3x3 s1 torch.float32", 0, fl,
          [&] { (void)F::conv_transpose2d(x, w, F::ConvTranspose2dFuncOptions().padding(1)); });
  }
  {
    auto x = torch::randn({8, 64, 112, 112});
    const double bytes = double(x.numel()) * F4 * 1.25;
    b.run("max_pool2d 3x3 s2 N8 C64 112^2", bytes, 0,
          [&] { (void)F::max_pool2d(x, F::MaxPool2dFuncOptions(3).stride(2).padding(1)); });
    b.run("avg_pool2d 2x2 s2 N8 C64 112^2", bytes, 0, [&] { (void)F::avg_pool2d(x, F::AvgPool2dFuncOptions(2).stride(2)); });
  }
  {
    auto x = torch::randn({8, 256, 56, 56}), mu = torch::randn({256}), var = torch::rand({256}) + 0.5;
    b.run("batch_norm infer N8 C256 56^2", 2.0 * double(x.numel()) * F4, 0, [&] { (void)F::batch_norm(x, mu, var); });
  }
  {
    // libtorch 1.13 has no scaled_dot_product_attention: the unfused product, as its
    // Python fallback computes it (the row's name says so)
    auto q = torch::randn({1, 4, 1024, 64}), k = torch::randn({1, 4, 1024, 64}), v = torch::randn({1, 4, 1024, 64});
    b.run("sdpa fp32 B1 H4 S1024 D64", 0, 4.0 * 4 * 1024 * 1024 * 64,
          [&] { (void)torch::matmul(torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / 8.0, -1), v); });
  }
  {
    b.run("1000 allocs+frees (caching allocator)", 0, 0, [&] {
      std::vector<torch::Tensor> xs;
      xs.reserve(1000);
      for (int i = 0; i < 1000; ++i) xs.push_back(torch::empty({(int64_t(i) * 7919 % 4096 + 1) * 1024}));
    });
    auto a1 = torch::randn({1}), b1 = torch::randn({1});
    b.run("add 1-element (dispatch overhead)", 0, 0, [&] { (void)(a1 + b1); });
  }
  {
    auto net = fashion_cnn();
    torch::optim::Adam opt(net->parameters(), torch::optim::AdamOptions(1e-3));
    auto xb = torch::randn({256, 1, 28, 28}), yb = torch::randint(0, 10, {256}, torch::kLong);
    b.run("train step fmnist cnn b256 fp32", 0, 0, [&] {
      opt.zero_grad();
      F::cross_entropy(net->forward(xb), yb).backward();
      opt.step();
    });
    net->eval();
    torch::NoGradGuard no_grad;
    b.run("infer fmnist cnn b256 fp32", 0, 0, [&] { (void)net->forward(xb); });
  }
}

}  // namespace

int main(int argc, char** argv) {
  Bench b;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) json = argv[++i];
    else if (a == "--trials" && i + 1 < argc) b.trials = std::max(1, std::atoi(argv[++i]));
    else if (a == "--only" && i + 1 < argc) b.only = argv[++i];
    else {
      std::fprintf(stderr, "libtorch_peer: unknown option '%s' (use --json FILE, --trials N, --only NAME_PART)\n", a.c_str());
      return 2;
    }
  }
  torch::manual_seed(0);
  std::printf("libtorch %s, %d threads, median of %d trials\n", TORCH_VERSION, at::get_num_threads(), b.trials);
  suite(b);
  if (!json.empty()) {
    std::ofstream o(json);
    o << "{\"device\": \"cpu\", \"name\": \"libtorch " << TORCH_VERSION << "\", \"rows\": [";
    for (size_t i = 0; i < b.rows.size(); ++i)
      o << (i ? ",\n" : "\n") << "{\"name\": \"" << b.rows[i].name << "\", \"ms\": " << b.rows[i].ms << "}";
    o << "\n]}\n";
  }
  return 0;
}
