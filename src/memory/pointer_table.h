#pragma once
// A hash table from block address to a value, for the caching allocator's live blocks:
// open addressing with linear probing and backward-shift deletion, so inserting and
// erasing never allocate (std::unordered_map allocates a node per entry, which was a
// large part of an allocate/free pair). Not thread-safe: the owner locks.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace kiln::memory {

template <typename V>
class PointerTable {
 public:
  PointerTable() : slots_(64) {}

  size_t size() const { return count_; }

  // Inserts or overwrites key's value.
  void insert(const void* key, V value) {
    if ((count_ + 1) * 4 > slots_.size() * 3) grow();
    size_t i = home(key);
    while (slots_[i].key && slots_[i].key != key) i = next(i);
    if (!slots_[i].key) ++count_;
    slots_[i] = Slot{key, value};
  }

  // The value stored for key, or nullptr.
  V* find(const void* key) {
    for (size_t i = home(key); slots_[i].key; i = next(i))
      if (slots_[i].key == key) return &slots_[i].value;
    return nullptr;
  }

  // Removes key (which must be present); later entries of its probe run shift back.
  void erase(const void* key) {
    size_t i = home(key);
    while (slots_[i].key != key) i = next(i);
    for (size_t j = next(i);; j = next(j)) {
      if (!slots_[j].key) break;
      const size_t h = home(slots_[j].key);
      // slots_[j] may move to i when i lies cyclically within [h, j).
      const bool movable = i <= j ? (h <= i || h > j) : (h <= i && h > j);
      if (movable) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i] = Slot{};
    --count_;
  }

  template <typename F>
  void for_each(F f) const {
    for (const Slot& s : slots_)
      if (s.key) f(s.key, s.value);
  }

 private:
  struct Slot {
    const void* key = nullptr;
    V value{};
  };
  std::vector<Slot> slots_;
  size_t count_ = 0;

  size_t home(const void* key) const {
    uint64_t x = reinterpret_cast<uintptr_t>(key) >> 9;  // blocks are 512-byte aligned
    x *= 0x9E3779B97F4A7C15ull;
    return size_t(x >> 32) & (slots_.size() - 1);
  }
  size_t next(size_t i) const { return (i + 1) & (slots_.size() - 1); }
  void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    count_ = 0;
    for (const Slot& s : old)
      if (s.key) insert(s.key, s.value);
  }
};

}  // namespace kiln::memory
