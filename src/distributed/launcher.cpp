// kiln launch: one child per local rank, their stdout and stderr merged through one pipe
// each and forwarded by line with a rank prefix; poll() multiplexes the pipes, waitpid
// notices exits, and the first failure tears the others down.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <thread>

#include "kiln/distributed_launch.h"
#include "kiln/error.h"

extern char** environ;

namespace kiln::distributed {

namespace {
struct Child {
  int rank = 0;
  pid_t pid = -1;
  int out_fd = -1;
  std::string pending;  // output not yet ended by a newline
  bool exited = false;
  int status = 0;
};

std::string describe_exit(const Child& c) {
  const std::string who = "rank " + std::to_string(c.rank) + " (pid " + std::to_string(c.pid) + ")";
  if (WIFSIGNALED(c.status)) return who + " was killed by signal " + std::to_string(WTERMSIG(c.status)) + " (" +
                                   strsignal(WTERMSIG(c.status)) + ")";
  return who + " exited with code " + std::to_string(WEXITSTATUS(c.status));
}

bool failed(const Child& c) { return !WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0; }
}  // namespace

LaunchResult launch(const std::vector<std::string>& command, const LaunchOptions& o,
                    const std::function<void(const std::string&)>& sink_in) {
  KILN_CHECK(!command.empty(), "launch", "no command given (kiln launch [options] -- command args...)");
  KILN_CHECK(o.nproc_per_node >= 1 && o.nnodes >= 1 && o.node_rank >= 0 && o.node_rank < o.nnodes, "launch",
             "need nproc_per_node >= 1 and 0 <= node_rank < nnodes, got ", o.nproc_per_node, ", ", o.node_rank, ", ",
             o.nnodes);
  KILN_CHECK(o.master_port > 0 && o.master_port < 65536, "launch", "master port ", o.master_port, " is out of range");
  auto sink = sink_in ? sink_in : [](const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  };
  const int world = o.nproc_per_node * o.nnodes;
  std::vector<Child> children;
  auto kill_all = [&](int sig) {
    for (auto& c : children)
      if (!c.exited && c.pid > 0) ::kill(c.pid, sig);
  };
  for (int local = 0; local < o.nproc_per_node; ++local) {
    Child c;
    c.rank = o.node_rank * o.nproc_per_node + local;
    int fds[2];
    KILN_CHECK(::pipe2(fds, O_CLOEXEC) == 0, "launch", "pipe(): ", std::strerror(errno));
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    const std::pair<const char*, std::string> vars[] = {
        {"RANK", std::to_string(c.rank)},          {"LOCAL_RANK", std::to_string(local)},
        {"WORLD_SIZE", std::to_string(world)},      {"LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node)},
        {"NODE_RANK", std::to_string(o.node_rank)}, {"GROUP_RANK", std::to_string(o.node_rank)},
        {"MASTER_ADDR", o.master_addr},             {"MASTER_PORT", std::to_string(o.master_port)}};
    for (const auto& [k, v] : vars) {
      const std::string prefix = std::string(k) + "=";
      std::erase_if(env, [&](const std::string& s) { return s.rfind(prefix, 0) == 0; });
      env.push_back(prefix + v);
    }
    std::vector<char*> envp, argv;
    for (auto& s : env) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::vector<std::string> cmd = command;
    for (auto& s : cmd) argv.push_back(s.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    const int err = ::posix_spawnp(&c.pid, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (err != 0) {
      ::close(fds[0]);
      kill_all(SIGKILL);
      for (auto& k : children) {
        ::waitpid(k.pid, nullptr, 0);
        ::close(k.out_fd);
      }
      KILN_FAIL("launch", "cannot start '", command[0], "': ", std::strerror(err));
    }
    c.out_fd = fds[0];
    children.push_back(std::move(c));
  }

  LaunchResult result;
  auto flush_lines = [&](Child& c, bool final) {
    size_t pos;
    while ((pos = c.pending.find('\n')) != std::string::npos) {
      sink("[rank " + std::to_string(c.rank) + "] " + c.pending.substr(0, pos));
      c.pending.erase(0, pos + 1);
    }
    if (final && !c.pending.empty()) {
      sink("[rank " + std::to_string(c.rank) + "] " + c.pending);
      c.pending.clear();
    }
  };
  std::chrono::steady_clock::time_point kill_at{};
  bool terminating = false;
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Child*> owners;
    for (auto& c : children)
      if (c.out_fd >= 0) {
        fds.push_back({c.out_fd, POLLIN, 0});
        owners.push_back(&c);
      }
    if (!fds.empty()) ::poll(fds.data(), fds.size(), 50);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!fds[i].revents) continue;
      char buf[4096];
      const ssize_t n = ::read(fds[i].fd, buf, sizeof(buf));
      if (n > 0) {
        owners[i]->pending.append(buf, size_t(n));
        flush_lines(*owners[i], false);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        flush_lines(*owners[i], true);
        ::close(owners[i]->out_fd);
        owners[i]->out_fd = -1;
      }
    }
    bool all_done = true;
    for (auto& c : children) {
      if (!c.exited) {
        if (::waitpid(c.pid, &c.status, WNOHANG) == c.pid) {
          c.exited = true;
          if (failed(c) && result.failed_rank < 0 && !terminating) {
            result.failed_rank = c.rank;
            result.failure = describe_exit(c);
            result.exit_code = WIFEXITED(c.status) ? WEXITSTATUS(c.status) : 128 + WTERMSIG(c.status);
            terminating = true;
            kill_at = std::chrono::steady_clock::now() + o.grace;
            kill_all(SIGTERM);
          }
        }
      }
      all_done = all_done && c.exited && c.out_fd < 0;
    }
    if (all_done) break;
    if (terminating && std::chrono::steady_clock::now() >= kill_at) {
      kill_all(SIGKILL);
      // Output pipes may stay open in grandchildren; stop reading them.
      bool exited = true;
      for (auto& c : children) exited = exited && c.exited;
      if (exited)
        for (auto& c : children)
          if (c.out_fd >= 0) {
            flush_lines(c, true);
            ::close(c.out_fd);
            c.out_fd = -1;
          }
    }
    if (fds.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (result.failed_rank >= 0) sink("kiln launch: " + result.failure + "; stopped the other ranks");
  return result;
}

}  // namespace kiln::distributed
