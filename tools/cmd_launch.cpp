// kiln launch: torchrun's job for kiln programs (see include/kiln/distributed_launch.h).
#include <cstdio>
#include <cstdlib>

#include "kiln/distributed_launch.h"
#include "kiln/error.h"
#include "tools/commands.h"

namespace kiln::cli {

int cmd_launch(const Args& args) {
  distributed::LaunchOptions o;
  std::vector<std::string> command;
  auto int_arg = [&](size_t& i) {
    KILN_CHECK(i + 1 < args.size(), "launch", args[i], " needs a value");
    char* end = nullptr;
    const long v = std::strtol(args[i + 1].c_str(), &end, 10);
    KILN_CHECK(end && *end == '\0', "launch", args[i], " needs an integer, got ", args[i + 1]);
    ++i;
    return int(v);
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      command.assign(args.begin() + long(i) + 1, args.end());
      break;
    } else if (a == "--nproc-per-node") {
      o.nproc_per_node = int_arg(i);
    } else if (a == "--nnodes") {
      o.nnodes = int_arg(i);
    } else if (a == "--node-rank") {
      o.node_rank = int_arg(i);
    } else if (a == "--master-port") {
      o.master_port = int_arg(i);
    } else if (a == "--master-addr") {
      KILN_CHECK(i + 1 < args.size(), "launch", "--master-addr needs a value");
      o.master_addr = args[++i];
    } else if (a == "--help" || a == "-h") {
      std::printf(
          "kiln launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] -- command...\n"
          "Starts N ranks of the command on this node with RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and\n"
          "MASTER_PORT set; output is prefixed with the rank; if a rank fails the others are stopped.\n");
      return 0;
    } else {
      KILN_FAIL("launch", "unknown option ", a, " (kiln launch --help)");
    }
  }
  const distributed::LaunchResult r = distributed::launch(command, o);
  return r.exit_code;
}

}  // namespace kiln::cli
