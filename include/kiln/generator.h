#pragma once
// Seedable random numbers. Kernels draw from a counter-based Philox stream keyed by
// (seed, offset), so the same seed gives the same numbers on every device.
// A Generator may be shared by threads: advance() reserves its counters atomically, so
// concurrent draws get disjoint parts of the stream (which thread gets which part follows
// the order of the calls). Seeding while another thread draws is not ordered with it.
#include <atomic>
#include <cstdint>

namespace kiln {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x853c49e6748fea9bULL) : seed_(seed) {}
  Generator(const Generator& o) : seed_(o.seed()), offset_(o.offset()) {}
  Generator& operator=(const Generator& o) {
    seed_ = o.seed();
    offset_ = o.offset();
    return *this;
  }
  void manual_seed(uint64_t seed) { seed_ = seed; offset_ = 0; }
  uint64_t seed() const { return seed_.load(std::memory_order_relaxed); }
  uint64_t offset() const { return offset_.load(std::memory_order_relaxed); }
  void set_offset(uint64_t o) { offset_ = o; }
  // Reserves n counters of the stream and returns the first.
  uint64_t advance(uint64_t n) { return offset_.fetch_add(n, std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> seed_;
  std::atomic<uint64_t> offset_{0};
};

Generator& default_generator();
void manual_seed(uint64_t seed);  // seeds the default generator

// Philox-4x32-10 (Salmon et al. 2011): four 32-bit random words for a 64-bit counter.
struct Philox4x32 {
  static void generate(uint64_t seed, uint64_t counter, uint32_t out[4]) {
    uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      const uint64_t p0 = uint64_t(0xD2511F53u) * c0, p1 = uint64_t(0xCD9E8D57u) * c2;
      const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0, n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
      c1 = uint32_t(p1); c3 = uint32_t(p0); c0 = n0; c2 = n2;
      k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
  }
  // Uniform float in [0, 1) from a 32-bit word (24 bits of mantissa).
  static float to_unit(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }
};

}  // namespace kiln
