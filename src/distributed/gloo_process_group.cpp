// The Gloo process group. Collectives run in call order on one worker thread per group
// (gloo matches them by tag, so every rank must issue them in the same order); the
// caller's thread stages tensors into contiguous host buffers before and copies results
// back in Work::wait(), so the worker touches raw memory only. Before each collective the
// ranks all-gather a fingerprint (op, dtype, shape, root/reduce op) so that a mismatch is
// an error on every rank rather than a hang or a wrong result.
#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/barrier.h>
#include <gloo/broadcast.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/store.h>
#include <gloo/transport/tcp/device.h>

#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>

#include "kiln/distributed.h"
#include "kiln/ops.h"

namespace kiln::distributed {

namespace {

// gloo's store interface over a kiln Store.
class GlooStore final : public gloo::rendezvous::Store {
 public:
  explicit GlooStore(std::shared_ptr<distributed::Store> base) : base_(std::move(base)) {}
  void set(const std::string& key, const std::vector<char>& data) override {
    base_->set(key, std::vector<uint8_t>(data.begin(), data.end()));
  }
  std::vector<char> get(const std::string& key) override {
    const std::vector<uint8_t> v = base_->get(key);
    return std::vector<char>(v.begin(), v.end());
  }
  void wait(const std::vector<std::string>& keys) override { base_->wait(keys); }
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds&) override { base_->wait(keys); }

 private:
  std::shared_ptr<distributed::Store> base_;
};

template <typename T, typename F>
void reduce_loop(void* c, const void* a, const void* b, size_t n, F f) {
  auto* out = static_cast<T*>(c);
  const auto* x = static_cast<const T*>(a);
  const auto* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) out[i] = T(f(compute_t<T>(x[i]), compute_t<T>(y[i])));
}

gloo::AllreduceOptions::Func reduce_func(DType dtype, ReduceOp op) {
  return KILN_DISPATCH_DTYPE(dtype, "all_reduce", [&]<typename T>() -> gloo::AllreduceOptions::Func {
    using C = compute_t<T>;
    switch (op) {
      case ReduceOp::Sum:
      case ReduceOp::Avg:  // summed here, divided by the world size afterwards
        if constexpr (std::is_same_v<T, bool>)
          return [](void* c, const void* a, const void* b, size_t n) { reduce_loop<T>(c, a, b, n, [](C x, C y) { return x || y; }); };
        else
          return [](void* c, const void* a, const void* b, size_t n) { reduce_loop<T>(c, a, b, n, [](C x, C y) { return x + y; }); };
      case ReduceOp::Product:
        if constexpr (std::is_same_v<T, bool>)
          return [](void* c, const void* a, const void* b, size_t n) { reduce_loop<T>(c, a, b, n, [](C x, C y) { return x && y; }); };
        else
          return [](void* c, const void* a, const void* b, size_t n) { reduce_loop<T>(c, a, b, n, [](C x, C y) { return x * y; }); };
      case ReduceOp::Max:
        return [](void* c, const void* a, const void* b, size_t n) { reduce_loop<T>(c, a, b, n, [](C x, C y) { return x < y ? y : x; }); };
      case ReduceOp::Min:
        return [](void* c, const void* a, const void* b, size_t n) { reduce_loop<T>(c, a, b, n, [](C x, C y) { return y < x ? y : x; }); };
    }
    KILN_FAIL("all_reduce", "unknown reduce op");
  });
}

void divide_in_place(void* data, DType dtype, size_t n, int divisor) {
  KILN_DISPATCH_FLOATING(dtype, "all_reduce", [&]<typename T>() {
    auto* p = static_cast<T*>(data);
    for (size_t i = 0; i < n; ++i) p[i] = T(compute_t<T>(p[i]) / compute_t<T>(divisor));
  });
}

// A contiguous host tensor holding t's values (t itself when it already is one).
Tensor stage(const Tensor& t) {
  Tensor h = t.device().type == DeviceType::Cpu ? t : t.to(kCpu);
  return h.contiguous();
}

enum class OpCode : int64_t { AllReduce = 1, Broadcast, AllGather, ReduceScatter, Barrier };
const char* op_name(OpCode op) {
  switch (op) {
    case OpCode::AllReduce: return "all_reduce";
    case OpCode::Broadcast: return "broadcast";
    case OpCode::AllGather: return "all_gather";
    case OpCode::ReduceScatter: return "reduce_scatter";
    case OpCode::Barrier: return "barrier";
  }
  return "collective";
}

constexpr int kMaxFingerprintDims = 8;
constexpr size_t kFingerprintLen = 4 + kMaxFingerprintDims;  // op, dtype, extra, ndim, dims...

std::vector<int64_t> fingerprint(OpCode op, const Tensor* t, int64_t extra) {
  std::vector<int64_t> fp(kFingerprintLen, -1);
  fp[0] = int64_t(op);
  fp[2] = extra;
  if (t) {
    fp[1] = int64_t(t->dtype());
    fp[3] = t->dim();
    for (int64_t d = 0; d < std::min<int64_t>(t->dim(), kMaxFingerprintDims); ++d) fp[4 + d] = t->size(d);
  }
  return fp;
}

std::string describe(const int64_t* fp) {
  std::ostringstream os;
  os << op_name(OpCode(fp[0]));
  if (fp[1] >= 0) {
    os << " of " << dtype_name(DType(fp[1])) << " [";
    for (int64_t d = 0; d < std::min<int64_t>(fp[3], kMaxFingerprintDims); ++d) os << (d ? ", " : "") << fp[4 + d];
    os << "]";
  }
  if (fp[2] >= 0) os << " (root/op " << fp[2] << ")";
  return os.str();
}

class GlooWork final : public Work {
 public:
  explicit GlooWork(std::string op) : op_(std::move(op)) {}
  void wait() override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done_; });
    if (error_) std::rethrow_exception(error_);
    if (finish_) {
      auto f = std::move(finish_);
      finish_ = nullptr;
      lock.unlock();
      f();
    }
  }
  bool is_completed() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  void complete(std::exception_ptr error) {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    error_ = error;
    cv_.notify_all();
  }
  std::function<void()> run;     // on the worker thread
  std::function<void()> finish_;  // on the waiting thread, once, after success
  const std::string op_;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::exception_ptr error_;
};

class GlooProcessGroup final : public ProcessGroup {
 public:
  GlooProcessGroup(std::shared_ptr<distributed::Store> store, int rank, int size, std::vector<int> global_ranks,
                   std::chrono::milliseconds timeout)
      : ProcessGroup(rank, size, std::move(global_ranks), timeout) {
    gloo::transport::tcp::attr attr;
    if (const char* iface = std::getenv("GLOO_SOCKET_IFNAME"); iface && *iface) {
      attr.iface = iface;
    } else {
      const char* master = std::getenv("MASTER_ADDR");
      const std::string m = master ? master : "127.0.0.1";
      attr.hostname = (m == "localhost" || m.rfind("127.", 0) == 0) ? "127.0.0.1" : "";
    }
    GlooStore gstore(std::move(store));
    try {
      device_ = gloo::transport::tcp::CreateDevice(attr);
      context_ = std::make_shared<gloo::rendezvous::Context>(rank, size);
      context_->setTimeout(timeout);
      context_->connectFullMesh(gstore, device_);
    } catch (const kiln::Error&) {
      throw;
    } catch (const std::exception& e) {
      KILN_FAIL("init_process_group", "rank ", rank, " of ", size, ": gloo could not connect the ranks: ", e.what());
    }
    worker_ = std::thread([this] { work_loop(); });
  }

  ~GlooProcessGroup() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }

  std::string backend_name() const override { return "gloo"; }

  std::shared_ptr<Work> all_reduce(Tensor& tensor, ReduceOp op) override {
    KILN_CHECK(op != ReduceOp::Avg || is_floating(tensor.dtype()), "all_reduce",
               "ReduceOp::Avg needs a floating tensor, got ", dtype_name(tensor.dtype()), " ", shape_str(tensor.shape()));
    Tensor buf = stage(tensor);
    auto work = std::make_shared<GlooWork>("all_reduce");
    const DType dtype = buf.dtype();
    const size_t n = size_t(buf.numel());
    void* data = buf.data_ptr();
    const int world = size_;
    work->run = [this, fp = fingerprint(OpCode::AllReduce, &tensor, int64_t(op)), dtype, n, data, op, world] {
      check_fingerprint(fp);
      run_allreduce(data, dtype, n, op);
      if (op == ReduceOp::Avg) divide_in_place(data, dtype, n, world);
    };
    work->finish_ = copy_back(tensor, buf);
    return enqueue(work);
  }

  std::shared_ptr<Work> broadcast(Tensor& tensor, int root) override {
    KILN_CHECK(root >= 0 && root < size_, "broadcast", "root ", root, " is not a rank of this group of ", size_);
    Tensor buf = stage(tensor);
    auto work = std::make_shared<GlooWork>("broadcast");
    const size_t bytes = buf.nbytes();
    void* data = buf.data_ptr();
    work->run = [this, fp = fingerprint(OpCode::Broadcast, &tensor, root), bytes, data, root] {
      check_fingerprint(fp);
      gloo::BroadcastOptions opts(context_);
      opts.setOutput(static_cast<uint8_t*>(data), bytes);
      opts.setRoot(root);
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::broadcast(opts);
    };
    work->finish_ = copy_back(tensor, buf);
    return enqueue(work);
  }

  std::shared_ptr<Work> all_gather(std::vector<Tensor>& outputs, const Tensor& input) override {
    KILN_CHECK(int(outputs.size()) == size_, "all_gather", "expected ", size_, " output tensors (one per rank), got ",
               outputs.size());
    for (size_t r = 0; r < outputs.size(); ++r)
      KILN_CHECK(outputs[r].defined() && outputs[r].shape() == input.shape() && outputs[r].dtype() == input.dtype(),
                 "all_gather", "output ", r, " is ", outputs[r].defined() ? outputs[r].str() : "undefined",
                 ", expected the input's ", input.str());
    Tensor in = stage(input);
    Tensor flat = empty({int64_t(size_), input.numel()}, TensorOptions(input.dtype()).device(kCpu));
    auto work = std::make_shared<GlooWork>("all_gather");
    const size_t bytes = in.nbytes();
    work->run = [this, fp = fingerprint(OpCode::AllGather, &input, -1), bytes, src = in.data_ptr(),
                 dst = flat.data_ptr()] {
      check_fingerprint(fp);
      gloo::AllgatherOptions opts(context_);
      opts.setInput(static_cast<uint8_t*>(src), bytes);
      opts.setOutput(static_cast<uint8_t*>(dst), bytes * size_t(size_));
      opts.setTag(next_tag());
      opts.setTimeout(timeout_);
      gloo::allgather(opts);
    };
    work->finish_ = [outputs, flat, in]() mutable {
      for (size_t r = 0; r < outputs.size(); ++r) outputs[r].copy_(flat[int64_t(r)].view(outputs[r].shape()));
    };
    return enqueue(work);
  }

  // Gloo 0.5 has no general reduce-scatter: all-reduce the stacked inputs and keep this
  // rank's slice (as PyTorch's Gloo group does).
  std::shared_ptr<Work> reduce_scatter(Tensor& output, const std::vector<Tensor>& inputs, ReduceOp op) override {
    KILN_CHECK(int(inputs.size()) == size_, "reduce_scatter", "expected ", size_, " input tensors (one per rank), got ",
               inputs.size());
    for (size_t r = 0; r < inputs.size(); ++r)
      KILN_CHECK(inputs[r].defined() && inputs[r].shape() == output.shape() && inputs[r].dtype() == output.dtype(),
                 "reduce_scatter", "input ", r, " is ", inputs[r].defined() ? inputs[r].str() : "undefined",
                 ", expected the output's ", output.str());
    KILN_CHECK(op != ReduceOp::Avg || is_floating(output.dtype()), "reduce_scatter",
               "ReduceOp::Avg needs a floating tensor, got ", dtype_name(output.dtype()));
    Tensor flat = empty({int64_t(size_), output.numel()}, TensorOptions(output.dtype()).device(kCpu));
    for (size_t r = 0; r < inputs.size(); ++r) flat[int64_t(r)].copy_(inputs[r].reshape({output.numel()}));
    auto work = std::make_shared<GlooWork>("reduce_scatter");
    const DType dtype = output.dtype();
    const size_t n = size_t(flat.numel());
    const int world = size_;
    work->run = [this, fp = fingerprint(OpCode::ReduceScatter, &output, int64_t(op)), data = flat.data_ptr(), dtype,
                 n, op, world] {
      check_fingerprint(fp);
      run_allreduce(data, dtype, n, op);
      if (op == ReduceOp::Avg) divide_in_place(data, dtype, n, world);
    };
    work->finish_ = [output, flat, r = rank_]() mutable { output.copy_(flat[r].view(output.shape())); };
    return enqueue(work);
  }

  std::shared_ptr<Work> barrier() override {
    auto work = std::make_shared<GlooWork>("barrier");
    work->run = [this, fp = fingerprint(OpCode::Barrier, nullptr, -1)] {
      check_fingerprint(fp);  // the fingerprint all-gather already is a barrier
    };
    return enqueue(work);
  }

  // Point to point runs beside the collectives (posted here, completed in wait()): a header
  // with dtype and element count, then the data, on slots of their own.
  std::shared_ptr<Work> send(const Tensor& tensor, int dst, int tag) override {
    check_peer("send", dst, tag);
    auto state = std::make_shared<P2P>();
    state->data = stage(tensor);
    state->header = {int64_t(tensor.dtype()), tensor.numel()};
    state->hbuf = context_->createUnboundBuffer(state->header.data(), sizeof(int64_t) * 2);
    state->dbuf = context_->createUnboundBuffer(state->data.data_ptr(), state->data.nbytes());
    state->hbuf->send(dst, p2p_slot(tag, 0));
    if (state->data.nbytes() > 0) state->dbuf->send(dst, p2p_slot(tag, 1));
    auto work = std::make_shared<GlooWork>("send");
    work->complete(nullptr);
    work->finish_ = [this, state, dst] {
      guard("send", [&] {
        state->hbuf->waitSend(timeout_);
        if (state->data.nbytes() > 0) state->dbuf->waitSend(timeout_);
      });
      (void)dst;
    };
    return work;
  }

  std::shared_ptr<Work> recv(Tensor& tensor, int src, int tag) override {
    check_peer("recv", src, tag);
    auto state = std::make_shared<P2P>();
    state->data = stage(tensor);
    state->header = {-1, -1};
    state->hbuf = context_->createUnboundBuffer(state->header.data(), sizeof(int64_t) * 2);
    state->hbuf->recv(src, p2p_slot(tag, 0));
    auto work = std::make_shared<GlooWork>("recv");
    work->complete(nullptr);
    work->finish_ = [this, state, src, tag, tensor]() mutable {
      guard("recv", [&] { state->hbuf->waitRecv(timeout_); });
      KILN_CHECK(state->header[0] == int64_t(tensor.dtype()) && state->header[1] == tensor.numel(), "recv",
                 "rank ", src, " sent ", state->header[1], " elements of ",
                 dtype_name(DType(state->header[0])), " but this rank receives into ", tensor.str());
      if (tensor.numel() > 0) {
        state->dbuf = context_->createUnboundBuffer(state->data.data_ptr(), state->data.nbytes());
        state->dbuf->recv(src, p2p_slot(tag, 1));
        guard("recv", [&] { state->dbuf->waitRecv(timeout_); });
      }
      if (!state->data.is_same(tensor)) tensor.copy_(state->data.view(tensor.shape()));
    };
    return work;
  }

 private:
  struct P2P {
    Tensor data;
    std::vector<int64_t> header;
    std::unique_ptr<gloo::transport::UnboundBuffer> hbuf, dbuf;
  };

  static uint64_t p2p_slot(int tag, int part) { return gloo::Slot::build(0x40, uint32_t(tag) * 2u + uint32_t(part)); }

  void check_peer(const char* op, int peer, int tag) const {
    KILN_CHECK(peer >= 0 && peer < size_ && peer != rank_, op, "peer rank ", peer,
               " is not another rank of this group of ", size_, " (this is rank ", rank_, ")");
    KILN_CHECK(tag >= 0 && tag < (1 << 20), op, "tag ", tag, " is out of range [0, 2^20)");
  }

  // Runs f, turning gloo's exceptions into kiln::Error naming the op.
  template <typename F>
  void guard(const char* op, F&& f) const {
    try {
      f();
    } catch (const kiln::Error&) {
      throw;
    } catch (const std::exception& e) {
      KILN_FAIL(op, "rank ", rank_, " of ", size_, " (gloo, timeout ", timeout_.count(),
                " ms): another rank failed, exited or did not take part: ", e.what());
    }
  }

  static std::function<void()> copy_back(Tensor& tensor, const Tensor& buf) {
    if (buf.is_same(tensor)) return nullptr;
    return [tensor, buf]() mutable { tensor.copy_(buf); };
  }

  uint32_t next_tag() { return tag_++; }

  void run_allreduce(void* data, DType dtype, size_t n, ReduceOp op) {
    if (n == 0) return;
    gloo::AllreduceOptions opts(context_);
    // Typed, so that gloo splits the buffer at element boundaries.
    KILN_DISPATCH_DTYPE(dtype, "all_reduce", [&]<typename T>() { opts.setOutput(static_cast<T*>(data), n); });
    opts.setReduceFunction(reduce_func(dtype, op));
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::allreduce(opts);
  }

  // All ranks must be about to run the same collective on the same dtype and shape.
  void check_fingerprint(const std::vector<int64_t>& fp) {
    std::vector<int64_t> all(fp.size() * size_t(size_));
    gloo::AllgatherOptions opts(context_);
    opts.setInput(const_cast<int64_t*>(fp.data()), fp.size());
    opts.setOutput(all.data(), all.size());
    opts.setTag(next_tag());
    opts.setTimeout(timeout_);
    gloo::allgather(opts);
    for (int r = 0; r < size_; ++r) {
      const int64_t* other = all.data() + size_t(r) * fp.size();
      if (!std::equal(fp.begin(), fp.end(), other))
        KILN_FAIL(op_name(OpCode(fp[0])), "ranks disagree: rank ", rank_, " called ", describe(fp.data()), " but rank ",
                  r, " called ", describe(other));
    }
  }

  std::shared_ptr<Work> enqueue(const std::shared_ptr<GlooWork>& work) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(work);
    }
    cv_.notify_all();
    return work;
  }

  void work_loop() {
    for (;;) {
      std::shared_ptr<GlooWork> work;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      std::exception_ptr error;
      try {
        // After a failure the ranks are out of step: fail fast instead of mismatching.
        KILN_CHECK(broken_.empty(), work->op_.c_str(), "this process group failed earlier and cannot be used: ",
                   broken_);
        guard(work->op_.c_str(), [&] { work->run(); });
      } catch (const std::exception& e) {
        if (broken_.empty()) broken_ = e.what();
        error = std::current_exception();
      }
      work->run = nullptr;
      work->complete(error);
    }
  }

  std::shared_ptr<gloo::transport::Device> device_;
  std::shared_ptr<gloo::rendezvous::Context> context_;
  uint32_t tag_ = 0;      // worker thread only
  std::string broken_;    // worker thread only
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<GlooWork>> queue_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace

std::shared_ptr<ProcessGroup> make_gloo_process_group(std::shared_ptr<Store> store, int rank, int size,
                                                      std::vector<int> global_ranks,
                                                      std::chrono::milliseconds timeout) {
  return std::make_shared<GlooProcessGroup>(std::move(store), rank, size, std::move(global_ranks), timeout);
}

}  // namespace kiln::distributed
