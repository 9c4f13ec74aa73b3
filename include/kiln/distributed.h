#pragma once
// kiln::distributed: PyTorch's torch.distributed shape over the field's communication
// library: Gloo (CPU tensors; CUDA tensors are staged through the host). NCCL is next.
// One process per rank; ranks meet through a store.
//
//   distributed::init_process_group("gloo");          // RANK, WORLD_SIZE, MASTER_ADDR, ...
//   Tensor g = ...;
//   distributed::all_reduce(g, distributed::ReduceOp::Avg);
//   auto work = distributed::all_reduce(g, ReduceOp::Sum, nullptr, /*async_op=*/true);
//   work->wait();                                      // before reading g
//
// Every collective checks first that all ranks passed the same op, dtype and shape, so a
// mismatch is a kiln::Error on every rank instead of a hang or a wrong result; every wait
// is bounded by the group's timeout, and a rank that exits or hangs makes the others
// raise kiln::Error ("[all_reduce] ...") within it.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/distributed_store.h"
#include "kiln/tensor.h"

namespace kiln::distributed {

enum class ReduceOp { Sum, Avg, Max, Min, Product };
const char* reduce_op_name(ReduceOp op);

inline constexpr std::chrono::milliseconds kDefaultTimeout = std::chrono::minutes(10);

// A pending operation. wait() blocks until it finished (raising its kiln::Error if it
// failed) and completes its outputs; call it before reading them.
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool is_completed() const = 0;
};

class ProcessGroup {
 public:
  virtual ~ProcessGroup() = default;
  virtual std::string backend_name() const = 0;  // "gloo", "nccl"
  int rank() const { return rank_; }
  int size() const { return size_; }
  // This group's ranks in the world group (new_group's argument; 0..size-1 for the world).
  const std::vector<int>& global_ranks() const { return global_ranks_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // In place on `tensor` (any layout; non-contiguous tensors go through a buffer).
  virtual std::shared_ptr<Work> all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::shared_ptr<Work> broadcast(Tensor& tensor, int root) = 0;
  // outputs[r] receives rank r's input; every output has input's shape and dtype.
  virtual std::shared_ptr<Work> all_gather(std::vector<Tensor>& outputs, const Tensor& input) = 0;
  // output = reduce over ranks of inputs[rank()]; inputs[r] all have output's shape.
  virtual std::shared_ptr<Work> reduce_scatter(Tensor& output, const std::vector<Tensor>& inputs,
                                               ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::shared_ptr<Work> barrier() = 0;
  // Point to point; the receiver checks that dtype and element count match the sender's.
  virtual std::shared_ptr<Work> send(const Tensor& tensor, int dst, int tag = 0) = 0;
  virtual std::shared_ptr<Work> recv(Tensor& tensor, int src, int tag = 0) = 0;

 protected:
  ProcessGroup(int rank, int size, std::vector<int> global_ranks, std::chrono::milliseconds timeout)
      : rank_(rank), size_(size), global_ranks_(std::move(global_ranks)), timeout_(timeout) {}
  int rank_, size_;
  std::vector<int> global_ranks_;
  std::chrono::milliseconds timeout_;
};

struct InitOptions {
  // "env://" (MASTER_ADDR/MASTER_PORT, torchrun's variables), "tcp://host:port" or
  // "file:///path/to/shared/dir". Empty: "env://".
  std::string init_method;
  int rank = -1;        // -1: $RANK (or Open MPI's $OMPI_COMM_WORLD_RANK)
  int world_size = -1;  // -1: $WORLD_SIZE (or $OMPI_COMM_WORLD_SIZE)
  std::chrono::milliseconds timeout = kDefaultTimeout;
  std::shared_ptr<Store> store;  // given: used instead of init_method
};

// backend: "gloo" (the one built so far; "" means gloo). kiln::Error when already initialized or the rendezvous fails.
void init_process_group(const std::string& backend = "", const InitOptions& options = {});
bool is_initialized();
// Leaves the group; ops on it afterwards raise kiln::Error.
void destroy_process_group();
std::shared_ptr<ProcessGroup> world();  // kiln::Error when not initialized
int get_rank();
int get_world_size();
// Torchrun's $LOCAL_RANK (Open MPI's local rank under mpirun), 0 when unset: which GPU.
int get_local_rank();

// A subgroup of the world's ranks (the spec's CommunicationGroup). Every rank of the
// world must call it, in the same order, with the same ranks; ranks outside it get null.
// Empty ranks: the whole world. backend empty: the world's.
std::shared_ptr<ProcessGroup> new_group(const std::vector<int>& ranks = {}, const std::string& backend = "");

// torch.distributed's free functions: group null = the world; async_op=false waits and
// returns a completed Work.
std::shared_ptr<Work> all_reduce(Tensor& tensor, ReduceOp op = ReduceOp::Sum,
                                 const std::shared_ptr<ProcessGroup>& group = nullptr, bool async_op = false);
std::shared_ptr<Work> broadcast(Tensor& tensor, int src, const std::shared_ptr<ProcessGroup>& group = nullptr,
                                bool async_op = false);
std::shared_ptr<Work> all_gather(std::vector<Tensor>& outputs, const Tensor& input,
                                 const std::shared_ptr<ProcessGroup>& group = nullptr, bool async_op = false);
std::shared_ptr<Work> reduce_scatter(Tensor& output, const std::vector<Tensor>& inputs,
                                     ReduceOp op = ReduceOp::Sum,
                                     const std::shared_ptr<ProcessGroup>& group = nullptr, bool async_op = false);
void barrier(const std::shared_ptr<ProcessGroup>& group = nullptr);
void send(const Tensor& tensor, int dst, const std::shared_ptr<ProcessGroup>& group = nullptr, int tag = 0);
void recv(Tensor& tensor, int src, const std::shared_ptr<ProcessGroup>& group = nullptr, int tag = 0);

// The Gloo backend's constructor (init_process_group and new_group use it): `store` is already
// prefixed for this group; global_ranks maps group ranks to world ranks.
std::shared_ptr<ProcessGroup> make_gloo_process_group(std::shared_ptr<Store> store, int rank, int size,
                                                      std::vector<int> global_ranks,
                                                      std::chrono::milliseconds timeout);
}  // namespace kiln::distributed
