#pragma once
// The launcher behind `kiln launch` (torchrun's job): starts nproc_per_node copies of a
// command with RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, NODE_RANK, MASTER_ADDR and
// MASTER_PORT set, forwards their output line by line prefixed with "[rank N] ", and when
// one fails (non-zero exit or a signal) stops the others (SIGTERM, then SIGKILL after a
// grace period) and reports which rank failed and how.
#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace kiln::distributed {

struct LaunchOptions {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds grace{5000};  // between SIGTERM and SIGKILL
};

struct LaunchResult {
  int exit_code = 0;            // 0 when every rank exited 0; else the first failure's code (128+signal)
  int failed_rank = -1;         // the first rank that failed, -1 when none
  std::string failure;          // "rank 1 (pid 1234) exited with code 3", empty when none
};

// Runs the command (argv[0] searched in PATH) to completion on this node. `sink` gets
// each prefixed output line (default: written to stdout). kiln::Error ("[launch] ...")
// for bad options or a command that cannot be started.
LaunchResult launch(const std::vector<std::string>& command, const LaunchOptions& options,
                    const std::function<void(const std::string&)>& sink = {});

}  // namespace kiln::distributed
