// kiln::distributed on Gloo with real processes on loopback: this binary re-runs itself
// (DistWorker.Run, selected by $KILN_DIST_SCENARIO) once per rank. Results are compared
// with references each rank computes locally from every rank's known inputs. Every wait
// is bounded and the parent kills its children, so a broken collective cannot hang CI.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "kiln/distributed.h"
#include "kiln/ops.h"

extern char** environ;
using namespace kiln;
namespace dist = kiln::distributed;

namespace {

// ---- the parent side: start `world` ranks of a scenario, wait with a deadline, kill leftovers
struct RunResult {
  std::vector<int> codes;  // exit code per rank; -1 killed (timeout or signal)
  std::string output;      // every rank's output, for failure messages
};

RunResult run_ranks(const std::string& scenario, int world, double deadline_s, bool only_rank0_matters = false) {
  const std::string dir = std::filesystem::temp_directory_path() /
                          ("kiln_dist_" + std::to_string(::getpid()) + "_" + scenario + "_" + std::to_string(world));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir + "/store");
  std::vector<pid_t> pids;
  for (int r = 0; r < world; ++r) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
      const std::string s = *e;
      if (s.rfind("GTEST_", 0) != 0) env.push_back(s);  // ctest's sharding must not filter the worker out
    }
    env.push_back("KILN_DIST_SCENARIO=" + scenario);
    env.push_back("KILN_DIST_STORE=" + dir + "/store");
    env.push_back("RANK=" + std::to_string(r));
    env.push_back("WORLD_SIZE=" + std::to_string(world));
    env.push_back("OMP_NUM_THREADS=1");
    std::vector<char*> envp;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = std::filesystem::read_symlink("/proc/self/exe");
    std::string filter = "--gtest_filter=DistWorker.Run";
    std::vector<char*> argv{exe.data(), filter.data(), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    const std::string out = dir + "/rank" + std::to_string(r) + ".log";
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    EXPECT_EQ(posix_spawn(&pid, exe.c_str(), &fa, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&fa);
    pids.push_back(pid);
  }
  RunResult res;
  res.codes.assign(size_t(world), -1);
  std::vector<bool> done(size_t(world), false);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(deadline_s);
  for (;;) {
    bool all = true;
    for (int r = 0; r < world; ++r) {
      if (done[size_t(r)]) continue;
      int status = 0;
      if (::waitpid(pids[size_t(r)], &status, WNOHANG) == pids[size_t(r)]) {
        done[size_t(r)] = true;
        res.codes[size_t(r)] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      } else {
        all = false;
      }
    }
    if (all || (only_rank0_matters && done[0]) || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (int r = 0; r < world; ++r) {
    if (done[size_t(r)]) continue;
    ::kill(pids[size_t(r)], SIGKILL);
    ::waitpid(pids[size_t(r)], nullptr, 0);
  }
  for (int r = 0; r < world; ++r) {
    std::ifstream in(dir + "/rank" + std::to_string(r) + ".log");
    std::stringstream ss;
    ss << in.rdbuf();
    res.output += "---- rank " + std::to_string(r) + " (exit " + std::to_string(res.codes[size_t(r)]) + ")\n" + ss.str();
  }
  std::filesystem::remove_all(dir);
  return res;
}

// ---- the worker side
int64_t value_of(int rank, int64_t i) { return ((rank + 1) * (i % 5 + 1)) % 7 - 3; }

// Rank r's input, contiguous [rows, cols]: value_of(r, i) (0/1 for bool). The tests pass
// its transpose, a non-contiguous view.
Tensor rank_input(int rank, DType dtype, int64_t rows, int64_t cols) {
  std::vector<double> v(size_t(rows * cols));
  for (int64_t i = 0; i < rows * cols; ++i)
    v[size_t(i)] = dtype == DType::Bool ? double((rank + i) % 2) : double(value_of(rank, i));
  return tensor(v, {rows, cols}).to(dtype);
}

std::vector<double> as_doubles(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

double reduce_ref(dist::ReduceOp op, DType dtype, const std::vector<double>& xs) {
  double acc = xs[0];
  for (size_t k = 1; k < xs.size(); ++k) {
    const double x = xs[k];
    switch (op) {
      case dist::ReduceOp::Sum: case dist::ReduceOp::Avg:
        acc = dtype == DType::Bool ? double(acc != 0 || x != 0) : acc + x; break;
      case dist::ReduceOp::Product: acc = dtype == DType::Bool ? double(acc != 0 && x != 0) : acc * x; break;
      case dist::ReduceOp::Max: acc = std::max(acc, x); break;
      case dist::ReduceOp::Min: acc = std::min(acc, x); break;
    }
  }
  return op == dist::ReduceOp::Avg ? acc / double(xs.size()) : acc;
}

void scenario_collectives() {
  const int rank = dist::get_rank(), world = dist::get_world_size();
  const int64_t rows = 3, cols = 5;
  for (DType dtype : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32, DType::Int64,
                      DType::Bool}) {
    SCOPED_TRACE(dtype_name(dtype));
    std::vector<std::vector<double>> inputs;
    for (int r = 0; r < world; ++r) inputs.push_back(as_doubles(rank_input(r, dtype, rows, cols).t()));
    // all_reduce, on a transposed (non-contiguous) view
    for (auto op : {dist::ReduceOp::Sum, dist::ReduceOp::Avg, dist::ReduceOp::Max, dist::ReduceOp::Min,
                    dist::ReduceOp::Product}) {
      if (op == dist::ReduceOp::Avg && !is_floating(dtype)) continue;
      Tensor t = rank_input(rank, dtype, rows, cols).t();
      ASSERT_FALSE(t.is_contiguous());
      dist::all_reduce(t, op);
      const std::vector<double> got = as_doubles(t);
      for (size_t i = 0; i < got.size(); ++i) {
        std::vector<double> xs;
        for (int r = 0; r < world; ++r) xs.push_back(inputs[size_t(r)][i]);
        const double want = reduce_ref(op, dtype, xs);
        // The result is rounded to the dtype once (avg's division); sums of small integers are exact.
        const double eps = dtype == DType::Float16 ? 1e-3 : dtype == DType::BFloat16 ? 8e-3 : dtype == DType::Float32 ? 1e-7 : 1e-15;
        const double tol = 2 * eps * std::max(1.0, std::abs(want));
        ASSERT_NEAR(got[i], want, tol) << dist::reduce_op_name(op) << " element " << i;
      }
    }
    // broadcast from the last rank
    Tensor b = rank_input(rank, dtype, rows, cols).t();
    dist::broadcast(b, world - 1);
    EXPECT_EQ(as_doubles(b), inputs[size_t(world - 1)]);
    // all_gather into non-contiguous outputs
    std::vector<Tensor> outs;
    for (int r = 0; r < world; ++r) outs.push_back(zeros({rows, cols}, dtype).t());
    dist::all_gather(outs, rank_input(rank, dtype, rows, cols).t());
    for (int r = 0; r < world; ++r) EXPECT_EQ(as_doubles(outs[size_t(r)]), inputs[size_t(r)]) << "from rank " << r;
    // reduce_scatter: input k of rank r is rank_input(r + 10 * k); this rank gets the sum over r of input `rank`
    if (dtype != DType::Bool) {
      std::vector<Tensor> ins;
      for (int k = 0; k < world; ++k) ins.push_back(rank_input(rank + 10 * k, dtype, rows, cols).t());
      Tensor out = zeros({cols, rows}, dtype);
      dist::reduce_scatter(out, ins, dist::ReduceOp::Sum);
      const std::vector<double> got = as_doubles(out);
      for (size_t i = 0; i < got.size(); ++i) {
        double want = 0;
        for (int r = 0; r < world; ++r) want += as_doubles(rank_input(r + 10 * rank, dtype, rows, cols).t())[i];
        ASSERT_NEAR(got[i], want, 1e-9) << "element " << i;
      }
    }
    // send/recv around a ring
    Tensor mine = rank_input(rank, dtype, rows, cols).t();
    Tensor got = zeros({cols, rows}, dtype);
    auto s = dist::world()->send(mine, (rank + 1) % world, 3);
    dist::world()->recv(got, (rank + world - 1) % world, 3)->wait();
    s->wait();
    EXPECT_EQ(as_doubles(got), inputs[size_t((rank + world - 1) % world)]);
  }
  // asynchronous handles: two in flight, waited in order
  Tensor a = full({1000}, double(rank + 1)), c = full({7}, double(2 * rank));
  auto wa = dist::all_reduce(a, dist::ReduceOp::Sum, nullptr, true);
  auto wc = dist::all_reduce(c, dist::ReduceOp::Max, nullptr, true);
  wa->wait();
  wc->wait();
  EXPECT_TRUE(wa->is_completed());
  EXPECT_EQ(a.to_vector<float>()[999], float(world * (world + 1) / 2));
  EXPECT_EQ(c.to_vector<float>()[0], float(2 * (world - 1)));
  // a subgroup of the first and last ranks
  auto g = dist::new_group({0, world - 1});
  if (rank == 0 || rank == world - 1) {
    ASSERT_TRUE(g);
    EXPECT_EQ(g->size(), 2);
    Tensor x = full({4}, double(rank + 1), DType::Float64);
    dist::all_reduce(x, dist::ReduceOp::Sum, g);
    EXPECT_EQ(x.to_vector<double>()[0], double(1 + world));
  } else {
    EXPECT_FALSE(g);
  }
  dist::barrier();
}

void scenario_mismatch() {
  const int rank = dist::get_rank();
  Tensor t = ones({2, 3 + rank});
  try {
    dist::all_reduce(t);
    ADD_FAILURE() << "mismatched shapes gave no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[all_reduce] ranks disagree"), std::string::npos) << e.what();
  }
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>(size_t(2 * (3 + rank)), 1.f));  // unchanged
}

// Rank 1 leaves (exits, or hangs) before the collective; rank 0 must fail, not hang.
void scenario_peer_fault(bool hang) {
  const int rank = dist::get_rank();
  dist::barrier();
  if (rank == 1) {
    if (hang) std::this_thread::sleep_for(std::chrono::seconds(60));
    std::_Exit(0);
  }
  const auto start = std::chrono::steady_clock::now();
  Tensor t = ones({1000});
  try {
    dist::all_reduce(t);
    ADD_FAILURE() << "all_reduce without rank 1 did not fail";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("[all_reduce]", 0), 0u) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  // The group stays failed, promptly.
  EXPECT_THROW(dist::barrier(), Error);
  std::fflush(nullptr);
  std::_Exit(::testing::Test::HasFailure() ? 1 : 0);  // skip destructors waiting on the dead peer
}

}  // namespace

TEST(DistWorker, Run) {
  const char* scenario = std::getenv("KILN_DIST_SCENARIO");
  if (!scenario) GTEST_SKIP() << "runs only as a child of the tests below";
  const std::string s = scenario;
  dist::InitOptions opts;
  opts.init_method = std::string("file://") + std::getenv("KILN_DIST_STORE");
  opts.timeout = std::chrono::milliseconds(s == "hang" || s == "exit" ? 3000 : 30000);
  if (s == "tcp") {
    opts.init_method = "env://";  // MASTER_ADDR/MASTER_PORT from the parent
  }
  dist::init_process_group("gloo", opts);
  if (s == "collectives" || s == "tcp") scenario_collectives();
  if (s == "mismatch") scenario_mismatch();
  if (s == "exit") scenario_peer_fault(false);
  if (s == "hang") scenario_peer_fault(true);
  dist::destroy_process_group();
}

TEST(Distributed, CollectivesOnTwoRanks) {
  auto res = run_ranks("collectives", 2, 120);
  EXPECT_EQ(res.codes, std::vector<int>({0, 0})) << res.output;
}

TEST(Distributed, CollectivesOnThreeRanks) {
  auto res = run_ranks("collectives", 3, 120);
  EXPECT_EQ(res.codes, std::vector<int>({0, 0, 0})) << res.output;
}

TEST(Distributed, MismatchedShapesAreAnErrorOnEveryRank) {
  auto res = run_ranks("mismatch", 2, 60);
  EXPECT_EQ(res.codes, std::vector<int>({0, 0})) << res.output;
}

TEST(Distributed, ExitedPeerIsAnErrorNotAHang) {
  auto res = run_ranks("exit", 2, 30, true);
  EXPECT_EQ(res.codes[0], 0) << res.output;
}

TEST(Distributed, HungPeerTimesOut) {
  auto res = run_ranks("hang", 2, 30, true);
  EXPECT_EQ(res.codes[0], 0) << res.output;
}

TEST(Distributed, TcpStoreRendezvous) {
  int port = 0;
  {
    // The store's own operations; its port (given out by the kernel, then released) is
    // reused by rank 0's store below.
    dist::TCPStore probe("127.0.0.1", 0, true, std::chrono::seconds(5));
    port = probe.port();
    probe.set("k", {1, 2, 3});
    EXPECT_EQ(probe.get("k"), (std::vector<uint8_t>{1, 2, 3}));
    EXPECT_EQ(probe.add("n", 5), 5);
    EXPECT_EQ(probe.add("n", -2), 3);
    EXPECT_FALSE(probe.check({"k", "missing"}));
    probe.set_timeout(std::chrono::milliseconds(100));
    EXPECT_THROW(probe.get("missing"), Error);
  }
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
  auto res = run_ranks("tcp", 2, 120);
  EXPECT_EQ(res.codes, std::vector<int>({0, 0})) << res.output;
}
