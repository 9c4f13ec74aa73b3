// The default (world) group, its initialisation from torchrun's or Open MPI's
// environment, subgroups, and torch.distributed's free functions.
#include <cstdlib>
#include <mutex>

#include "kiln/distributed.h"

namespace kiln::distributed {

namespace {
std::mutex g_mu;
std::shared_ptr<ProcessGroup> g_world;
std::shared_ptr<Store> g_store;
std::string g_backend;
int64_t g_group_count = 0;

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  KILN_CHECK(end && *end == '\0', "init_process_group", "$", name, "=", v, " is not an integer");
  return int(x);
}

std::string env_str(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

std::shared_ptr<ProcessGroup> resolve(const std::shared_ptr<ProcessGroup>& group) {
  return group ? group : world();
}

std::shared_ptr<Work> maybe_wait(std::shared_ptr<Work> w, bool async_op) {
  if (!async_op) w->wait();
  return w;
}
}  // namespace

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum: return "sum";
    case ReduceOp::Avg: return "avg";
    case ReduceOp::Max: return "max";
    case ReduceOp::Min: return "min";
    case ReduceOp::Product: return "product";
  }
  return "?";
}

void init_process_group(const std::string& backend, const InitOptions& options) {
  std::lock_guard<std::mutex> lock(g_mu);
  KILN_CHECK(!g_world, "init_process_group", "the default process group is already initialized");
  const std::string name = backend.empty() ? "gloo" : backend;
  KILN_CHECK(name == "gloo", "init_process_group", "unknown or unbuilt backend '", name, "' (this build has: gloo)");
  const int rank = options.rank >= 0 ? options.rank : env_int("RANK", env_int("OMPI_COMM_WORLD_RANK", -1));
  const int size =
      options.world_size >= 0 ? options.world_size : env_int("WORLD_SIZE", env_int("OMPI_COMM_WORLD_SIZE", -1));
  KILN_CHECK(rank >= 0 && size > 0 && rank < size, "init_process_group", "need 0 <= rank < world_size, got rank ",
             rank, " and world size ", size, " (set RANK and WORLD_SIZE, start with `kiln launch`, or pass them)");
  std::shared_ptr<Store> store = options.store;
  if (!store) {
    std::string method = options.init_method.empty() ? "env://" : options.init_method;
    if (method.rfind("file://", 0) == 0) {
      store = std::make_shared<FileStore>(method.substr(7), options.timeout);
    } else {
      std::string host = env_str("MASTER_ADDR", "127.0.0.1");
      int port = env_int("MASTER_PORT", 29500);
      if (method.rfind("tcp://", 0) == 0) {
        const std::string hp = method.substr(6);
        const size_t colon = hp.rfind(':');
        KILN_CHECK(colon != std::string::npos, "init_process_group", "init_method ", method, " needs tcp://host:port");
        host = hp.substr(0, colon);
        port = std::atoi(hp.c_str() + colon + 1);
      } else {
        KILN_CHECK(method == "env://", "init_process_group", "unknown init_method ", method,
                   " (env://, tcp://host:port, file:///dir)");
      }
      store = std::make_shared<TCPStore>(host, port, rank == 0, options.timeout);
    }
  }
  store->set_timeout(options.timeout);
  std::vector<int> ranks(static_cast<size_t>(size), 0);
  for (int r = 0; r < size; ++r) ranks[size_t(r)] = r;
  g_world = make_gloo_process_group(std::make_shared<PrefixStore>("world", store), rank, size, ranks, options.timeout);
  g_store = store;
  g_backend = name;
  g_group_count = 0;
}

bool is_initialized() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_world != nullptr;
}

void destroy_process_group() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_world.reset();
  g_store.reset();
}

std::shared_ptr<ProcessGroup> world() {
  std::lock_guard<std::mutex> lock(g_mu);
  KILN_CHECK(g_world, "distributed", "the default process group is not initialized: call init_process_group() first");
  return g_world;
}

int get_rank() { return world()->rank(); }
int get_world_size() { return world()->size(); }
int get_local_rank() { return env_int("LOCAL_RANK", env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0)); }

std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks, const std::string& backend) {
  auto w = world();
  KILN_CHECK(backend.empty() || backend == "gloo", "new_group", "unknown or unbuilt backend '", backend, "'");
  std::vector<int> members = ranks;
  if (members.empty())
    for (int r = 0; r < w->size(); ++r) members.push_back(r);
  std::vector<bool> seen(size_t(w->size()), false);
  int my_rank = -1;
  for (size_t i = 0; i < members.size(); ++i) {
    const int r = members[i];
    KILN_CHECK(r >= 0 && r < w->size() && !seen[size_t(r)], "new_group", "rank ", r,
               " is out of range or repeated (world size ", w->size(), ")");
    seen[size_t(r)] = true;
    if (r == w->rank()) my_rank = int(i);
  }
  int64_t id;
  std::shared_ptr<Store> store;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    id = g_group_count++;  // every rank calls new_group in the same order, so ids agree
    store = g_store;
  }
  if (my_rank < 0) return nullptr;
  return make_gloo_process_group(std::make_shared<PrefixStore>("group" + std::to_string(id), store), my_rank,
                                 int(members.size()), members, w->timeout());
}

std::shared_ptr<Work> all_reduce(Tensor& tensor, ReduceOp op, const std::shared_ptr<ProcessGroup>& group,
                                 bool async_op) {
  return maybe_wait(resolve(group)->all_reduce(tensor, op), async_op);
}
std::shared_ptr<Work> broadcast(Tensor& tensor, int src, const std::shared_ptr<ProcessGroup>& group, bool async_op) {
  return maybe_wait(resolve(group)->broadcast(tensor, src), async_op);
}
std::shared_ptr<Work> all_gather(std::vector<Tensor>& outputs, const Tensor& input,
                                 const std::shared_ptr<ProcessGroup>& group, bool async_op) {
  return maybe_wait(resolve(group)->all_gather(outputs, input), async_op);
}
std::shared_ptr<Work> reduce_scatter(Tensor& output, const std::vector<Tensor>& inputs, ReduceOp op,
                                     const std::shared_ptr<ProcessGroup>& group, bool async_op) {
  return maybe_wait(resolve(group)->reduce_scatter(output, inputs, op), async_op);
}
void barrier(const std::shared_ptr<ProcessGroup>& group) { resolve(group)->barrier()->wait(); }
void send(const Tensor& tensor, int dst, const std::shared_ptr<ProcessGroup>& group, int tag) {
  resolve(group)->send(tensor, dst, tag)->wait();
}
void recv(Tensor& tensor, int src, const std::shared_ptr<ProcessGroup>& group, int tag) {
  resolve(group)->recv(tensor, src, tag)->wait();
}

}  // namespace kiln::distributed
