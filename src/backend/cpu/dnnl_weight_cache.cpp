#include "src/backend/cpu/dnnl_weight_cache.h"

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "src/backend/cpu/dnnl_utils.h"

namespace kiln::cpu::dnnl_utils {

namespace {

struct Entry {
  std::weak_ptr<StorageImpl> source;  // expired once the weight's storage is freed
  uint64_t version = 0;
  dnnl::memory::desc prim;
  TempMemory reordered;
};

// Keyed by (storage, element offset); a weight has one entry per layout it is used in
// (forward and backward data may want different ones).
class WeightCache {
 public:
  TempMemory get(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& prim,
                 const dnnl::reorder& reorder) {
    const Storage& st = w.storage();
    const uint64_t version = st->version();
    const Key key{st.get(), w.offset()};
    std::lock_guard<std::mutex> lock(mu_);
    Entry* hit = nullptr;
    for (Entry& e : map_[key])
      if (e.prim == prim) hit = &e;
    if (hit && hit->version == version && hit->source.lock() == st) return hit->reordered;
    if (!hit) {
      if (++count_ > kMaxEntries) prune();
      hit = &map_[key].emplace_back();
      hit->prim = prim;
    }
    // A fresh buffer: a caller running the previous one on another thread keeps it alive.
    hit->reordered = temp_memory(prim);
    hit->source = st;
    hit->version = version;
    dnnl::memory src(user, engine(), w.data_ptr());
    reorder.execute(stream(), src, hit->reordered.memory);
    stream().wait();
    return hit->reordered;
  }

  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
    count_ = 0;
  }

 private:
  using Key = std::pair<const StorageImpl*, int64_t>;
  static constexpr size_t kMaxEntries = 512;

  // Drops the entries of freed weights; everything when that is not enough.
  void prune() {
    count_ = 0;
    for (auto it = map_.begin(); it != map_.end();) {
      std::erase_if(it->second, [](const Entry& e) { return e.source.expired(); });
      count_ += it->second.size();
      it = it->second.empty() ? map_.erase(it) : std::next(it);
    }
    if (count_ >= kMaxEntries) {
      map_.clear();
      count_ = 0;
    }
    ++count_;  // the entry about to be added
  }

  std::mutex mu_;
  std::map<Key, std::vector<Entry>> map_;
  size_t count_ = 0;
};

WeightCache& cache() {
  static WeightCache c;
  return c;
}

}  // namespace

TempMemory reordered_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& prim,
                             const dnnl::reorder& reorder) {
  return cache().get(w, user, prim, reorder);
}

size_t weight_cache_size() { return cache().size(); }
void clear_weight_cache() { cache().clear(); }

}  // namespace kiln::cpu::dnnl_utils
