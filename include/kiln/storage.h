#pragma once
// Reference-counted memory on one device, shared by every view of it.
#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>

#include "kiln/device.h"

namespace kiln {

class StorageImpl {
 public:
  // Memory from the device's backend allocator; freed through it.
  StorageImpl(size_t nbytes, Device device);
  // Memory owned elsewhere (from_blob): deleter runs when the last view goes.
  StorageImpl(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter);
  ~StorageImpl();
  StorageImpl(const StorageImpl&) = delete;
  StorageImpl& operator=(const StorageImpl&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }
  // Bumped by every in-place write; autograd compares it to detect stale saved tensors.
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  std::function<void(void*)> deleter_;
  std::atomic<uint64_t> version_{0};
};

using Storage = std::shared_ptr<StorageImpl>;

}  // namespace kiln
