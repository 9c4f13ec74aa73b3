// TCPStore: the master serves a key-value map over TCP, one thread per connected rank;
// every rank talks to it through one blocking socket with send/receive timeouts.
// Wire format: request  = cmd(1) key_len(u32) key value_len(u32) value
//              response = status(1) value_len(u32) value
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "kiln/distributed_store.h"
#include "kiln/error.h"

namespace kiln::distributed {

namespace {
enum Cmd : uint8_t { kSet = 1, kGet = 2, kAdd = 3, kCheck = 4 };
enum Status : uint8_t { kOk = 0, kMissing = 1 };

// Reads or writes exactly n bytes; false on a closed connection, timeout or error.
bool read_all(int fd, void* buf, size_t n) {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

bool write_all(int fd, const void* buf, size_t n) {
  const auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= size_t(r);
  }
  return true;
}

bool write_blob(int fd, const void* data, uint32_t n) {
  return write_all(fd, &n, 4) && (n == 0 || write_all(fd, data, n));
}

bool read_blob(int fd, std::vector<uint8_t>& out) {
  uint32_t n = 0;
  if (!read_all(fd, &n, 4)) return false;
  if (n > (1u << 30)) return false;  // a corrupt or hostile length
  out.resize(n);
  return n == 0 || read_all(fd, out.data(), n);
}

std::vector<std::string> split_keys(const std::vector<uint8_t>& joined) {
  std::vector<std::string> keys;
  std::string cur;
  for (uint8_t c : joined) {
    if (c == 0) { keys.push_back(cur); cur.clear(); } else { cur += char(c); }
  }
  return keys;
}
}  // namespace

struct TCPStore::Server {
  int listen_fd = -1;
  int wake[2] = {-1, -1};
  std::mutex mu;
  std::map<std::string, std::vector<uint8_t>> data;
  std::vector<int> clients;
  std::vector<std::thread> threads;
  std::thread acceptor;

  void serve(int fd) {
    for (;;) {
      uint8_t cmd = 0;
      std::vector<uint8_t> key, value;
      if (!read_all(fd, &cmd, 1) || !read_blob(fd, key) || !read_blob(fd, value)) return;
      const std::string k(key.begin(), key.end());
      uint8_t status = kOk;
      std::vector<uint8_t> reply;
      {
        std::lock_guard<std::mutex> lock(mu);
        if (cmd == kSet) {
          data[k] = std::move(value);
        } else if (cmd == kGet) {
          auto it = data.find(k);
          if (it == data.end()) status = kMissing; else reply = it->second;
        } else if (cmd == kAdd) {
          int64_t delta = 0, cur = 0;
          if (value.size() == 8) std::memcpy(&delta, value.data(), 8);
          auto it = data.find(k);
          if (it != data.end() && it->second.size() == 8) std::memcpy(&cur, it->second.data(), 8);
          cur += delta;
          std::vector<uint8_t> bytes(8);
          std::memcpy(bytes.data(), &cur, 8);
          data[k] = bytes;
          reply = bytes;
        } else if (cmd == kCheck) {
          for (const auto& name : split_keys(value))
            if (!data.count(name)) status = kMissing;
        } else {
          return;  // unknown command: drop the connection
        }
      }
      if (!write_all(fd, &status, 1) || !write_blob(fd, reply.data(), uint32_t(reply.size()))) return;
    }
  }

  void accept_loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd, POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents) return;
      const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      std::lock_guard<std::mutex> lock(mu);
      clients.push_back(fd);
      threads.emplace_back([this, fd] { serve(fd); });
    }
  }

  ~Server() {
    if (wake[1] >= 0) {
      const char c = 0;
      [[maybe_unused]] ssize_t r = ::write(wake[1], &c, 1);
    }
    if (acceptor.joinable()) acceptor.join();
    {
      std::lock_guard<std::mutex> lock(mu);
      for (int fd : clients) ::shutdown(fd, SHUT_RDWR);
    }
    for (auto& t : threads) t.join();
    for (int fd : clients) ::close(fd);
    for (int fd : {listen_fd, wake[0], wake[1]})
      if (fd >= 0) ::close(fd);
  }
};

TCPStore::TCPStore(const std::string& host, int port, bool is_master, std::chrono::milliseconds timeout) {
  timeout_ = timeout;
  KILN_CHECK(port >= 0 && port < 65536, "store", "port ", port, " is out of range");
  KILN_CHECK(is_master || port > 0, "store", "a TCPStore client needs the master's port, got 0");
  if (is_master) {
    server_ = std::make_unique<Server>();
    server_->listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    KILN_CHECK(server_->listen_fd >= 0, "store", "socket(): ", std::strerror(errno));
    const int one = 1;
    ::setsockopt(server_->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    addr.sin_port = htons(uint16_t(port));
    KILN_CHECK(::bind(server_->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0, "store",
               "cannot listen on port ", port, ": ", std::strerror(errno),
               " (is another job using it? pick another MASTER_PORT)");
    KILN_CHECK(::listen(server_->listen_fd, 128) == 0, "store", "listen(): ", std::strerror(errno));
    socklen_t len = sizeof(addr);
    ::getsockname(server_->listen_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
    KILN_CHECK(::pipe2(server_->wake, O_CLOEXEC) == 0, "store", "pipe(): ", std::strerror(errno));
    server_->acceptor = std::thread([s = server_.get()] { s->accept_loop(); });
  }
  port_ = port;

  // Connect, retrying until the master listens or the timeout passes.
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_str = std::to_string(port);
  const int gai = ::getaddrinfo(host.c_str(), port_str.c_str(), &hints, &res);
  KILN_CHECK(gai == 0 && res, "store", "cannot resolve master address ", host, ": ", ::gai_strerror(gai));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string last_error;
  for (;;) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ >= 0 && ::connect(fd_, res->ai_addr, res->ai_addrlen) == 0) break;
    last_error = std::strerror(errno);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::freeaddrinfo(res);
  if (fd_ < 0) {
    server_.reset();
    KILN_FAIL("store", "cannot connect to the master at ", host, ":", port, " within ", timeout.count(),
              " ms: ", last_error);
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

TCPStore::~TCPStore() {
  if (fd_ >= 0) ::close(fd_);
  server_.reset();
}

std::optional<std::vector<uint8_t>> TCPStore::request(uint8_t cmd, const std::string& key, const std::vector<uint8_t>& value) {
  std::lock_guard<std::mutex> lock(mu_);
  uint8_t status = 0;
  std::vector<uint8_t> reply;
  const bool ok = write_all(fd_, &cmd, 1) && write_blob(fd_, key.data(), uint32_t(key.size())) &&
                  write_blob(fd_, value.data(), uint32_t(value.size())) && read_all(fd_, &status, 1) &&
                  read_blob(fd_, reply);
  KILN_CHECK(ok, "store", "lost the connection to the store master on port ", port_, " (key ", key,
             "): the master process (rank 0) exited or stopped answering");
  if (status == kMissing) return std::nullopt;
  return reply;
}

void TCPStore::set(const std::string& key, const std::vector<uint8_t>& value) { request(kSet, key, value); }

std::vector<uint8_t> TCPStore::get(const std::string& key) {
  wait({key});
  auto value = request(kGet, key, {});
  KILN_CHECK(value.has_value(), "store", "key ", key, " vanished from the store");
  return *value;
}

int64_t TCPStore::add(const std::string& key, int64_t delta) {
  std::vector<uint8_t> bytes(8);
  std::memcpy(bytes.data(), &delta, 8);
  const std::vector<uint8_t> reply = request(kAdd, key, bytes).value_or(std::vector<uint8_t>{});
  int64_t value = 0;
  if (reply.size() == 8) std::memcpy(&value, reply.data(), 8);
  return value;
}

bool TCPStore::check(const std::vector<std::string>& keys) {
  std::vector<uint8_t> joined;
  for (const auto& k : keys) {
    joined.insert(joined.end(), k.begin(), k.end());
    joined.push_back(0);
  }
  return request(kCheck, "", joined).has_value();
}

}  // namespace kiln::distributed
