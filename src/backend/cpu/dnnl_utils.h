#pragma once
// oneDNN plumbing shared by the CPU linalg/conv/pool kernels: one engine and stream,
// dtype mapping, memory wrappers over kiln tensors, and one global primitive cache
// (building a oneDNN primitive costs far more than running a small one).
#include <dnnl.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "kiln/storage.h"
#include "kiln/tensor.h"

namespace kiln::cpu::dnnl_utils {

inline dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// CPU streams are stateless wrappers; one per thread keeps concurrent callers independent.
inline dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

// The oneDNN type for a kiln dtype; nullopt when oneDNN has none we use.
inline std::optional<dnnl::memory::data_type> dnnl_type(DType t) {
  using dt = dnnl::memory::data_type;
  switch (t) {
    case DType::Float32: return dt::f32;
    case DType::BFloat16: return dt::bf16;
    case DType::Float16: return dt::f16;
    default: return std::nullopt;
  }
}

inline dnnl::memory::dims to_dims(const Shape& s) { return dnnl::memory::dims(s.begin(), s.end()); }

// A oneDNN memory over a tensor's data (no copy), with the given descriptor.
inline dnnl::memory wrap(const dnnl::memory::desc& md, const Tensor& t) {
  return dnnl::memory(md, engine(), t.data_ptr());
}

// A oneDNN memory that lives for one call (a reorder's destination or source), backed by
// kiln's CPU caching allocator: a fresh malloc of a few MB is an mmap whose pages fault in
// on every call (20-30 us a fault here), which made conv2d NCHW bimodal.
struct TempMemory {
  Storage storage;
  dnnl::memory memory;
};
inline TempMemory temp_memory(const dnnl::memory::desc& md) {
  auto storage = std::make_shared<StorageImpl>(md.get_size(), kCpu);
  dnnl::memory m(md, engine(), storage->data());
  return {std::move(storage), std::move(m)};
}

// Per-thread scratch memory for primitives built with a user-managed scratchpad, so one
// cached primitive can run from several threads at once; grown, never shrunk.
inline void* scratch(size_t bytes) {
  thread_local std::vector<char> buf;
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}
inline dnnl::memory scratchpad(const dnnl::memory::desc& md) { return dnnl::memory(md, engine(), scratch(md.get_size())); }

// Builds cache keys: key(a, b, c...) -> "a|b|c|".
struct KeyBuilder {
  std::ostringstream os;
  template <typename T> KeyBuilder& operator<<(const T& v) {
    os << v << '|';
    return *this;
  }
  KeyBuilder& operator<<(const dnnl::memory::dims& d) {
    for (auto x : d) os << x << ',';
    os << '|';
    return *this;
  }
  std::string str() const { return os.str(); }
};

// One process-wide cache of built primitives (and anything else expensive to build),
// keyed by a string of shapes/strides/dtypes/attributes. Entries are immutable once
// built; oneDNN primitives may execute concurrently from several threads.
class PrimitiveCache {
 public:
  template <typename V>
  std::shared_ptr<const V> get(const std::string& key, const std::function<V()>& build) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = map_.find(key);
      if (it != map_.end()) return std::static_pointer_cast<const V>(it->second);
    }
    auto value = std::make_shared<const V>(build());  // outside the lock: building is slow
    std::lock_guard<std::mutex> lock(mu_);
    if (map_.size() >= kMaxEntries) map_.clear();  // crude bound for shape-varying workloads
    auto [it, inserted] = map_.emplace(key, value);
    return std::static_pointer_cast<const V>(it->second);
  }

 private:
  static constexpr size_t kMaxEntries = 1024;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const void>> map_;
};

inline PrimitiveCache& primitive_cache() {
  static PrimitiveCache c;
  return c;
}

}  // namespace kiln::cpu::dnnl_utils
