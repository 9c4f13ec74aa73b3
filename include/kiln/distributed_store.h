#pragma once
// Rendezvous stores for kiln::distributed (PyTorch's c10d stores): a small key-value
// service the ranks use to find each other before the communication library connects
// them. Every blocking call is bounded by the store's timeout and raises kiln::Error
// ("[store] ...") naming the keys it waited for.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace kiln::distributed {

class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<uint8_t>& value) = 0;
  // Waits (up to timeout()) for the key, then returns its value.
  virtual std::vector<uint8_t> get(const std::string& key) = 0;
  // Adds delta to the integer at key (0 when absent) and returns the new value.
  virtual int64_t add(const std::string& key, int64_t delta) = 0;
  // Whether every key is present now (no waiting).
  virtual bool check(const std::vector<std::string>& keys) = 0;
  // Waits for every key; kiln::Error naming the missing ones after timeout().
  virtual void wait(const std::vector<std::string>& keys);
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds t) { timeout_ = t; }

 protected:
  std::chrono::milliseconds timeout_{std::chrono::minutes(5)};
};

// torch.distributed.TCPStore: the master (is_master, usually rank 0) serves the keys on
// host:port from a background thread; every rank, the master included, is a client.
// port 0 on the master picks a free port (port() tells which).
class TCPStore : public Store {
 public:
  TCPStore(const std::string& host, int port, bool is_master,
           std::chrono::milliseconds timeout = std::chrono::minutes(5));
  ~TCPStore() override;
  TCPStore(const TCPStore&) = delete;
  TCPStore& operator=(const TCPStore&) = delete;
  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;
  int port() const { return port_; }

 private:
  struct Server;
  // The reply's value; empty when the key is missing (GET) or a key is (CHECK).
  std::optional<std::vector<uint8_t>> request(uint8_t cmd, const std::string& key, const std::vector<uint8_t>& value);
  std::unique_ptr<Server> server_;
  std::mutex mu_;  // one request at a time on the socket
  int fd_ = -1;
  int port_ = 0;
};

// torch.distributed.FileStore: keys are files in a directory every rank can see (a
// local or shared file system); writes are atomic renames, add() holds a file lock.
class FileStore : public Store {
 public:
  explicit FileStore(std::string dir, std::chrono::milliseconds timeout = std::chrono::minutes(5));
  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;

 private:
  std::string path_of(const std::string& key) const;
  std::string dir_;
};

// Every key of `base` under "prefix/" (one namespace per process group).
class PrefixStore : public Store {
 public:
  PrefixStore(std::string prefix, std::shared_ptr<Store> base);
  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t delta) override;
  bool check(const std::vector<std::string>& keys) override;

 private:
  std::string prefix_;
  std::shared_ptr<Store> base_;
};

}  // namespace kiln::distributed
