// FileStore: one file per key in a shared directory. set() writes a temporary file and
// renames it (readers never see half a value); add() serialises through flock.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "kiln/distributed_store.h"
#include "kiln/error.h"

namespace kiln::distributed {

namespace {
// Keys may hold '/' (prefixes); file names may not.
std::string encode_key(const std::string& key) {
  std::string out;
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '.') {
      out += char(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  KILN_CHECK(in.good(), "store", "cannot read ", path);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void write_file_atomically(const std::string& path, const std::vector<uint8_t>& value) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." +
                          std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    KILN_CHECK(out.good(), "store", "cannot write ", tmp);
    out.write(reinterpret_cast<const char*>(value.data()), std::streamsize(value.size()));
    KILN_CHECK(out.good(), "store", "cannot write ", tmp);
  }
  KILN_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "store", "cannot rename ", tmp, " to ", path);
}
}  // namespace

FileStore::FileStore(std::string dir, std::chrono::milliseconds timeout) : dir_(std::move(dir)) {
  timeout_ = timeout;
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  KILN_CHECK(std::filesystem::is_directory(dir_), "store", "FileStore directory ", dir_,
             " does not exist and cannot be created", ec ? ": " + ec.message() : "");
}

std::string FileStore::path_of(const std::string& key) const { return dir_ + "/" + encode_key(key); }

void FileStore::set(const std::string& key, const std::vector<uint8_t>& value) {
  write_file_atomically(path_of(key), value);
}

std::vector<uint8_t> FileStore::get(const std::string& key) {
  wait({key});
  return read_file(path_of(key));
}

int64_t FileStore::add(const std::string& key, int64_t delta) {
  const std::string lock_path = dir_ + "/.lock";
  const int fd = ::open(lock_path.c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  KILN_CHECK(fd >= 0, "store", "cannot open ", lock_path);
  ::flock(fd, LOCK_EX);
  int64_t value = 0;
  try {
    const std::string path = path_of(key);
    if (std::filesystem::exists(path)) {
      const std::vector<uint8_t> bytes = read_file(path);
      const std::string text(bytes.begin(), bytes.end());
      char* end = nullptr;
      value = std::strtoll(text.c_str(), &end, 10);
      KILN_CHECK(!text.empty() && end && *end == '\0', "store", "key ", key, " does not hold an integer");
    }
    value += delta;
    const std::string text = std::to_string(value);
    write_file_atomically(path, std::vector<uint8_t>(text.begin(), text.end()));
  } catch (...) {
    ::flock(fd, LOCK_UN);
    ::close(fd);
    throw;
  }
  ::flock(fd, LOCK_UN);
  ::close(fd);
  return value;
}

bool FileStore::check(const std::vector<std::string>& keys) {
  for (const auto& k : keys)
    if (!std::filesystem::exists(path_of(k))) return false;
  return true;
}

}  // namespace kiln::distributed
