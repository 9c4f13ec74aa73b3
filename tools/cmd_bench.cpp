// kiln bench: the spec's benchmark list (§6.2) on one device, as a table of ms, GB/s and
// GFLOP/s, and as JSON. Row names and sizes follow shared/bench/pytorch_peer.py on GPUs,
// so the two tables compare one to one; on the CPU the sizes are scaled down.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "kiln/autograd.h"
#include "kiln/device_manager.h"
#include "kiln/generator.h"
#include "kiln/memory.h"
#include "kiln/optim.h"
#include "kiln/profiler.h"
#include "tools/fashion_cnn.h"
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "tools/commands.h"

namespace kiln::cli {

namespace {
struct Row {
  std::string name;
  double ms = 0;
  double bytes = 0, flops = 0;
  std::string error;  // why the row did not run
};

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Median seconds per call: each trial runs enough calls to last >= ~2 ms between device syncs.
double time_op(Device d, const std::function<void()>& fn, int trials) {
  auto& dm = device_manager();
  fn();
  dm.synchronize(d);
  double t0 = now_s();
  fn();
  dm.synchronize(d);
  const double once = std::max(now_s() - t0, 1e-7);
  const int per_trial = int(std::clamp(2e-3 / once, 1.0, 1000.0));
  std::vector<double> ts;
  for (int t = 0; t < trials; ++t) {
    dm.synchronize(d);
    t0 = now_s();
    for (int i = 0; i < per_trial; ++i) fn();
    dm.synchronize(d);
    ts.push_back((now_s() - t0) / per_trial);
  }
  std::nth_element(ts.begin(), ts.begin() + long(ts.size() / 2), ts.end());
  return ts[ts.size() / 2];
}

struct Bench {
  Device dev;
  int trials;
  std::vector<Row> rows;

  std::string only;  // --only: run just the rows whose name contains this

  void run(const std::string& name, double bytes, double flops, const std::function<void()>& fn) {
    if (!only.empty() && name.find(only) == std::string::npos) return;
    Row r{name, 0, bytes, flops, ""};
    try {
      r.ms = time_op(dev, fn, trials) * 1e3;
    } catch (const Error& e) {
      r.error = e.what();
    }
    rows.push_back(r);
    print(rows.back());
  }

  static void print_header() {
    std::cout << std::left << std::setw(44) << "op" << std::right << std::setw(10) << "ms" << std::setw(9) << "GB/s"
              << std::setw(10) << "GFLOP/s" << '\n';
  }
  static void print(const Row& r) {
    std::cout << std::left << std::setw(44) << r.name << std::right;
    if (!r.error.empty()) {
      std::cout << "  n/a: " << r.error.substr(0, 70) << '\n';
      return;
    }
    std::cout << std::setw(10) << std::fixed << std::setprecision(r.ms < 0.1 ? 5 : 3) << r.ms;
    std::cout << std::setw(9) << std::setprecision(0);
    if (r.bytes > 0) std::cout << r.bytes / (r.ms * 1e-3) / 1e9; else std::cout << "";
    std::cout << std::setw(10) << std::setprecision(1);
    if (r.flops > 0) std::cout << r.flops / (r.ms * 1e-3) / 1e9; else std::cout << "";
    std::cout << '\n' << std::flush;
  }
};

void run_suite(Bench& b, bool gpu) {
  const Device d = b.dev;
  const TensorOptions f32 = TensorOptions(DType::Float32).device(d);
  const TensorOptions bf16 = TensorOptions(DType::BFloat16).device(d);
  const double F = 4;  // bytes per float32

  {  // ceiling: device-to-device copy
    const int64_t n = gpu ? (int64_t(1) << 26) : (int64_t(1) << 24);
    Tensor a = randn({n}, f32), c = empty({n}, f32);
    b.run(gpu ? "d2d copy 256MiB" : "copy fp32 16M", 2 * n * F, 0, [&] { c.copy_(a); });
  }
  {
    const int64_t n = gpu ? (int64_t(1) << 26) : (int64_t(1) << 24);
    const std::string sz = gpu ? "64M" : "16M";
    Tensor a = randn({n}, f32), x = randn({n}, f32), c = randn({n}, f32);
    b.run("add fp32 " + sz, 3 * n * F, 0, [&] { (void)add(a, x); });
    b.run("sub fp32 " + sz, 3 * n * F, 0, [&] { (void)sub(a, x); });
    b.run("mul fp32 " + sz, 3 * n * F, 0, [&] { (void)mul(a, x); });
    b.run("div fp32 " + sz, 3 * n * F, 0, [&] { (void)div(a, x); });
    b.run("relu fp32 " + sz, 2 * n * F, 0, [&] { (void)relu(a); });
    b.run("gelu fp32 " + sz, 2 * n * F, 0, [&] { (void)gelu(a); });
    b.run("chain gelu(a*b+c) eager", 4 * n * F, 0, [&] { (void)gelu(add(mul(a, x), c)); });
    b.run("sum fp32 " + sz, n * F, 0, [&] { (void)sum(a); });
    b.run("mean fp32 " + sz, n * F, 0, [&] { (void)mean(a); });
    b.run("max fp32 " + sz, n * F, 0, [&] { (void)max(a); });
    b.run("std fp32 " + sz, n * F, 0, [&] { (void)kiln::std(a); });
    const int64_t side = gpu ? 8192 : 4096;
    Tensor m = a.view({side, n / side});
    const std::string msz = std::to_string(side) + "^2";
    b.run("sum dim=1 " + msz, n * F, 0, [&] { (void)sum(m, {1}); });
    b.run("max dim=0 " + msz, n * F, 0, [&] { (void)max(m, 0); });
    b.run("softmax rows " + msz, 2 * n * F, 0, [&] { (void)softmax(m, -1); });
  }
  for (bool tf32 : {false, true}) {
    if (tf32 && !gpu) break;
    set_allow_tf32(tf32);
    const int64_t n = gpu ? 4096 : 1024;
    Tensor x = randn({n, n}, f32), y = randn({n, n}, f32);
    b.run("matmul fp32 " + std::to_string(n) + (gpu ? std::string(" tf32=") + (tf32 ? "True" : "False") : ""), 0,
          2.0 * n * n * n, [&] { (void)matmul(x, y); });
  }
  set_allow_tf32(false);
  if (!gpu) {
    Tensor x = randn({2048, 2048}, f32), y = randn({2048, 2048}, f32);
    b.run("matmul fp32 2048", 0, 2.0 * 2048 * 2048 * 2048, [&] { (void)matmul(x, y); });
  } else {
    Tensor x = randn({8192, 8192}, bf16), y = randn({8192, 8192}, bf16);
    b.run("matmul bf16 8192", 0, 2.0 * 8192 * 8192 * 8192, [&] { (void)matmul(x, y); });
  }
  {
    const int64_t bs = gpu ? 256 : 32, n = 512;
    Tensor x = randn({bs, n, n}, f32), y = randn({bs, n, n}, f32);
    b.run("bmm fp32 " + std::to_string(bs) + "x512^3", 0, 2.0 * bs * n * n * n, [&] { (void)bmm(x, y); });
    const int64_t m = gpu ? 16384 : 4096;
    Tensor a = randn({m, m}, f32), v = randn({m}, f32);
    b.run("matvec fp32 " + std::to_string(m) + "^2", double(m) * m * F, 2.0 * m * m, [&] { (void)mv(a, v); });
  }
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    if (!gpu && dt == DType::BFloat16) break;
    const int64_t N = gpu ? 64 : 8, C = gpu ? 256 : 64, H = 56;
    Tensor x = randn({N, C, H, H}, TensorOptions(dt).device(d)), w = randn({C, C, 3, 3}, TensorOptions(dt).device(d));
    const double fl = 2.0 * N * C * H * H * C * 9;
    const std::string tag = std::string(dt == DType::Float32 ? "torch.float32" : "torch.bfloat16");
    const std::string shape = "N" + std::to_string(N) + " C" + std::to_string(C) + " 56^2";
    b.run("conv2d 3x3 " + tag + " " + shape, 0, fl, [&] { (void)conv2d(x, w, Tensor(), {1, 1}, {1, 1}); });
    {  // input and weight channels-last (pytorch_peer.py's NHWC row)
      const Tensor xc = x.to(MemoryFormat::ChannelsLast), wc = w.to(MemoryFormat::ChannelsLast);
      b.run("conv2d 3x3 " + tag + " NHWC", 0, fl, [&] { (void)conv2d(xc, wc, Tensor(), {1, 1}, {1, 1}); });
    }
    b.run("conv_transpose2d 3x3 s1 " + tag, 0, fl, [&] { (void)conv_transpose2d(x, w, Tensor(), {1, 1}, {1, 1}); });
  }
  {
    const int64_t N = gpu ? 64 : 8;
    Tensor x = randn({N, 64, 112, 112}, f32);
    const double bytes = double(x.numel()) * F * 1.25;
    const std::string shape = "N" + std::to_string(N) + " C64 112^2";
    b.run("max_pool2d 3x3 s2 " + shape, bytes, 0, [&] { (void)max_pool2d(x, {3, 3}, {2, 2}, {1, 1}); });
    b.run("avg_pool2d 2x2 s2 " + shape, bytes, 0, [&] { (void)avg_pool2d(x, {2, 2}, {2, 2}); });
  }
  {
    const int64_t N = gpu ? 64 : 8;
    Tensor x = randn({N, 256, 56, 56}, f32), mu = randn({256}, f32), var = add(rand({256}, f32), 0.5);
    b.run("batch_norm infer N" + std::to_string(N) + " C256 56^2", 2.0 * double(x.numel()) * F, 0,
          [&] { (void)batch_norm(x, mu, var); });
  }
  {
    const int64_t B = gpu ? 8 : 1, H = gpu ? 16 : 4, S = gpu ? 4096 : 1024, D = gpu ? 128 : 64;
    const TensorOptions o = gpu ? bf16 : f32;
    Tensor q = randn({B, H, S, D}, o), k = randn({B, H, S, D}, o), v = randn({B, H, S, D}, o);
    const double fl = 4.0 * B * H * S * S * D;
    b.run(gpu ? "sdpa bf16 B8 H16 S4096 D128 (flash)" : "sdpa fp32 B1 H4 S1024 D64", 0, fl,
          [&] { (void)scaled_dot_product_attention(q, k, v); });
    // The backward op alone (what autograd runs): 2.5x the forward's flops.
    const AttentionResult fwd = scaled_dot_product_attention_forward(q, k, v);
    Tensor grad = randn({B, H, S, D}, o);
    b.run(gpu ? "sdpa backward bf16 B8 H16 S4096 D128" : "sdpa backward fp32 B1 H4 S1024 D64", 0, 2.5 * fl,
          [&] { (void)scaled_dot_product_attention_backward(grad, q, k, v, fwd); });
  }
  if (gpu) {
    const int64_t n = int64_t(1) << 28;
    Tensor h = randn({n}, TensorOptions(DType::Float32).device(kCpu));
    Tensor dd = empty({n}, f32);
    Tensor pinned = pinned_empty({n});
    pinned.copy_(h);
    b.run("h2d pinned 1GiB", double(n) * F, 0, [&] { dd.copy_(pinned, /*non_blocking=*/true); });
    b.run("h2d pageable 1GiB", double(n) * F, 0, [&] { dd.copy_(h); });
    b.run("d2h pinned 1GiB", double(n) * F, 0, [&] { pinned.copy_(dd, /*non_blocking=*/true); });
  }
  {
    b.run("1000 allocs+frees (caching allocator)", 0, 0, [&] {
      std::vector<Tensor> xs;
      xs.reserve(1000);
      for (int i = 0; i < 1000; ++i) xs.push_back(empty({(int64_t(i) * 7919 % 4096 + 1) * 1024}, f32));
    });
    Tensor a1 = randn({1}, f32), b1 = randn({1}, f32);
    b.run("add 1-element (dispatch overhead)", 0, 0, [&] { (void)add(a1, b1); });
  }
  {  // one training step of the main job's CNN (the model `kiln train` trains)
    auto net = make_fashion_cnn();
    net->to(d);
    optim::Adam opt(net->parameters(), optim::AdamOptions{});
    Tensor xb = randn({256, 1, 28, 28}, f32), yb = randint(0, 10, {256}, TensorOptions(DType::Int64).device(d));
    b.run("train step fmnist cnn b256 fp32", 0, 0, [&] {
      opt.zero_grad();
      nn::cross_entropy(net->forward(xb), yb).backward();
      opt.step();
    });
    net->eval();  // inference as a user runs it: eval mode, no autograd
    NoGradGuard no_grad;
    b.run("infer fmnist cnn b256 fp32", 0, 0, [&] { (void)net->forward(xb); });
    net->train();
  }
}
// --profile-train: where one training step of the CNN spends its time, op by op. The
// profiler times GPU ops with events on their stream, so the profiled steps run as
// unprofiled ones do; the table divides by the steps recorded.
void profile_train_step(Device d) {
  const TensorOptions f32 = TensorOptions(DType::Float32).device(d);
  auto net = make_fashion_cnn();
  net->to(d);
  optim::Adam opt(net->parameters(), optim::AdamOptions{});
  Tensor xb = randn({256, 1, 28, 28}, f32), yb = randint(0, 10, {256}, TensorOptions(DType::Int64).device(d));
  auto step = [&] {
    opt.zero_grad();
    nn::cross_entropy(net->forward(xb), yb).backward();
    opt.step();
  };
  constexpr int kWarmup = 3, kSteps = 5;
  profiler::Profile prof({.schedule = {.wait = 0, .warmup = kWarmup, .active = kSteps, .repeat = 1}});
  for (int i = 0; i < kWarmup + kSteps; ++i) {
    step();
    device_manager().synchronize(d);  // a step ends when its kernels do (as in the bench row)
    prof.step();
  }
  const profiler::Trace trace = prof.stop();
  double step_us = 0;
  for (const auto& s : trace.steps) step_us += s.end_us - s.begin_us;
  step_us /= double(std::max<size_t>(trace.steps.size(), 1));
  std::cout << "one training step of the Fashion-MNIST CNN, batch 256, on " << d.str() << " (per step, mean of "
            << trace.steps.size() << "):\n"
            << profiler::table(profiler::summarize(trace), 40, double(trace.steps.size()), step_us);
}

}  // namespace

int cmd_bench(const Args& args) {
  Device d = device_manager().best_device();
  std::string json_path;
  int trials = 9;
  bool profile_train = false;
  std::string only;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--device" && i + 1 < args.size()) d = Device::parse(args[++i]);
    else if (args[i] == "--profile-train") profile_train = true;
    else if (args[i] == "--only" && i + 1 < args.size()) only = args[++i];
    else if (args[i] == "--json" && i + 1 < args.size()) json_path = args[++i];
    else if (args[i] == "--trials" && i + 1 < args.size()) trials = std::max(1, std::stoi(args[++i]));
    else KILN_FAIL("bench", "unknown option '", args[i], "' (use --device D, --json FILE, --trials N, --only NAME_PART, --profile-train)");
  }
  KILN_CHECK(d.index < device_manager().device_count(d.type), "bench", "device ", d.str(), " is not present: ",
             device_manager().unavailable_reason(d.type));
  manual_seed(0);
  if (profile_train) {
    profile_train_step(d);
    return 0;
  }
  std::cout << "kiln bench on " << d.str() << " (" << device_manager().info(d).name << "), median of " << trials
            << " trials\n";
  Bench b{d, trials, {}, only};
  Bench::print_header();
  run_suite(b, d.is_gpu());
  if (!json_path.empty()) {
    nlohmann::json rows = nlohmann::json::array();
    for (const Row& r : b.rows) {
      nlohmann::json j{{"name", r.name}, {"ms", r.ms}, {"bytes", r.bytes}, {"flops", r.flops}};
      j["gbps"] = r.bytes > 0 && r.ms > 0 ? nlohmann::json(r.bytes / (r.ms * 1e-3) / 1e9) : nlohmann::json();
      j["tflops"] = r.flops > 0 && r.ms > 0 ? nlohmann::json(r.flops / (r.ms * 1e-3) / 1e12) : nlohmann::json();
      if (!r.error.empty()) j["error"] = r.error;
      rows.push_back(j);
    }
    std::ofstream(json_path) << nlohmann::json{{"device", d.str()}, {"name", device_manager().info(d).name},
                                              {"rows", rows}}
                                    .dump(1);
    std::cout << "wrote " << json_path << '\n';
  }
  return 0;
}

}  // namespace kiln::cli
