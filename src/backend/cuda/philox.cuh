#pragma once
// Philox-4x32-10 on the device: the same function as kiln::Philox4x32 on the CPU, so a
// seed gives the same numbers on every device.
#include <cstdint>

namespace kiln::cuda {

__device__ __forceinline__ void philox(uint64_t seed, uint64_t counter, uint32_t out[4]) {
  uint32_t c0 = uint32_t(counter), c1 = uint32_t(counter >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = uint32_t(seed), k1 = uint32_t(seed >> 32);
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c1 = lo1; c3 = lo0; c0 = n0; c2 = n2;
    k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
  }
  out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

// Philox4x32::to_unit: a uniform float in [0, 1) from the top 24 bits.
__device__ __forceinline__ float philox_unit(uint32_t x) { return float(x >> 8) * (1.0f / 16777216.0f); }

}  // namespace kiln::cuda
