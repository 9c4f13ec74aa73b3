// kiln::set_num_threads / get_num_threads and the process defaults that kiln gives OpenMP
// (docs/threading.md). The defaults are read when a process starts, so they are checked
// in a child process (this binary, re-run with a filter) under a controlled environment.
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/ops.h"
#include "kiln/threading.h"
#include "tests/support/expect_error.h"

extern char** environ;

using namespace kiln;
using kiln::testing::expect_error;

namespace {

// Runs this test binary's ThreadingChild.<name> with `extra` added to an environment
// without any OpenMP or kiln thread variables; its exit status.
int run_child(const std::string& name, const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string s(*e);
    if (s.rfind("OMP_", 0) == 0 || s.rfind("SHLVL=", 0) == 0 || s.rfind("_=", 0) == 0 || s.rfind("OLDPWD=", 0) == 0 || s.rfind("GOMP_", 0) == 0 || s.rfind("KILN_NUM_THREADS=", 0) == 0 ||
        s.rfind("GTEST_", 0) == 0)
      continue;
    env.push_back(s);
  }
  env.emplace_back("KILN_THREADING_CHILD=1");
  env.emplace_back("SHLVL=1");  // a shell sets it; the preinit defaults borrow its slot
  env.insert(env.end(), extra.begin(), extra.end());
  std::vector<char*> envp;
  for (auto& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string filter = "--gtest_filter=ThreadingChild." + name;
  char* argv[] = {const_cast<char*>("/proc/self/exe"), filter.data(), nullptr};
  pid_t pid;
  if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv, envp.data()) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool in_child() { return std::getenv("KILN_THREADING_CHILD") != nullptr; }

}  // namespace

TEST(Threading, SetAndGetRoundTripAndBadCountIsAnError) {
  const int before = get_num_threads();
  EXPECT_GE(before, 1);
  set_num_threads(1);
  EXPECT_EQ(get_num_threads(), 1);
  Tensor a = randn({300, 300});
  EXPECT_NEAR(sum(a).item<double>(), sum(a.to(DType::Float64)).item<double>(), 1e-2);  // ops still run
  set_num_threads(before);
  EXPECT_EQ(get_num_threads(), before);
  expect_error([] { set_num_threads(0); }, "set_num_threads", ">= 1, got 0");
  expect_error([] { set_num_threads(-3); }, "set_num_threads", "got -3");
  EXPECT_EQ(get_num_threads(), before);
}

TEST(Threading, KilnNumThreadsWinsOverOmpNumThreads) {
  EXPECT_EQ(run_child("SeesThreeThreads", {"KILN_NUM_THREADS=3", "OMP_NUM_THREADS=2"}), 0);
  EXPECT_EQ(run_child("SeesTwoThreads", {"OMP_NUM_THREADS=2"}), 0);
  EXPECT_EQ(run_child("SeesTwoThreads", {"KILN_NUM_THREADS=junk", "OMP_NUM_THREADS=2"}), 0);  // ignored
}

#ifdef KILN_TEST_STATIC_LIBKILN
// A static libkiln sets passive waiting before libgomp starts, unless the user chose.
TEST(Threading, PassiveWaitingIsTheDefault) {
  EXPECT_EQ(run_child("WaitPolicyIs", {"KILN_EXPECT_POLICY=passive"}), 0);
  EXPECT_EQ(run_child("WaitPolicyIs", {"OMP_WAIT_POLICY=active", "KILN_EXPECT_POLICY=active"}), 0);
  EXPECT_EQ(run_child("WaitPolicyIs", {"GOMP_SPINCOUNT=1000", "KILN_EXPECT_POLICY="}), 0);
  EXPECT_EQ(run_child("WaitPolicyIs", {"KILN_NUM_THREADS=3", "KILN_EXPECT_POLICY=passive"}), 0);
}
#endif

// ---- run only as children of the tests above

TEST(ThreadingChild, SeesThreeThreads) {
  if (!in_child()) GTEST_SKIP() << "child of KilnNumThreadsWinsOverOmpNumThreads";
  EXPECT_EQ(get_num_threads(), 3);
}

TEST(ThreadingChild, SeesTwoThreads) {
  if (!in_child()) GTEST_SKIP() << "child of KilnNumThreadsWinsOverOmpNumThreads";
  EXPECT_EQ(get_num_threads(), 2);
}

TEST(ThreadingChild, WaitPolicyIs) {
  if (!in_child()) GTEST_SKIP() << "child of PassiveWaitingIsTheDefault";
  const char* want = std::getenv("KILN_EXPECT_POLICY");
  const char* got = std::getenv("OMP_WAIT_POLICY");
  ASSERT_NE(want, nullptr);
  EXPECT_EQ(std::string(got ? got : ""), std::string(want));
  const char* shlvl = std::getenv("SHLVL");  // the lent slot is given back
  EXPECT_EQ(std::string(shlvl ? shlvl : "(unset)"), "1");
}
