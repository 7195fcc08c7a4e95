// Philox4x32-10 counter-based RNG (Salmon et al., SC'11) and the Generator that
// hands out counter ranges. Element i of a draw depends only on (seed, offset, i),
// so CPU loops in any order/thread count and CUDA kernels produce the same stream.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "avgrad/core/device.hpp"

namespace avgrad {

struct PhiloxBlock {
  std::uint32_t v[4];
};

/// One Philox4x32-10 evaluation: 128-bit counter, 64-bit key -> 4 x 32 random bits.
AVGRAD_HOST_DEVICE inline PhiloxBlock philox4x32_10(std::uint64_t counter_lo, std::uint64_t counter_hi,
                                                    std::uint64_t key) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  std::uint32_t c0 = static_cast<std::uint32_t>(counter_lo), c1 = static_cast<std::uint32_t>(counter_lo >> 32);
  std::uint32_t c2 = static_cast<std::uint32_t>(counter_hi), c3 = static_cast<std::uint32_t>(counter_hi >> 32);
  std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    std::uint64_t p0 = static_cast<std::uint64_t>(kMul0) * c0;
    std::uint64_t p1 = static_cast<std::uint64_t>(kMul1) * c2;
    std::uint32_t hi0 = static_cast<std::uint32_t>(p0 >> 32), lo0 = static_cast<std::uint32_t>(p0);
    std::uint32_t hi1 = static_cast<std::uint32_t>(p1 >> 32), lo1 = static_cast<std::uint32_t>(p1);
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += kWeyl0;
    k1 += kWeyl1;
  }
  return {{c0, c1, c2, c3}};
}

/// 24 random bits -> float in [0, 1).
AVGRAD_HOST_DEVICE inline float uniform_float(std::uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}
/// 53 random bits -> double in [0, 1).
AVGRAD_HOST_DEVICE inline double uniform_double(std::uint32_t hi, std::uint32_t lo) {
  std::uint64_t x = (static_cast<std::uint64_t>(hi) << 21) ^ (lo >> 11);
  return static_cast<double>(x & ((std::uint64_t{1} << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/// The i-th uniform draw in [0,1) of the stream (key, offset). Every element
/// uses its own Philox block (counter = offset + i), trading 3/4 of the bits
/// for a layout that any device reproduces without coordination.
template <class T>
AVGRAD_HOST_DEVICE inline T philox_uniform(std::uint64_t key, std::uint64_t offset, std::uint64_t i) {
  PhiloxBlock b = philox4x32_10(offset + i, 0, key);
  if constexpr (sizeof(T) == 4)
    return static_cast<T>(uniform_float(b.v[0]));
  else
    return static_cast<T>(uniform_double(b.v[0], b.v[1]));
}

/// The i-th standard normal draw of the stream (Box–Muller on one block).
template <class T> AVGRAD_HOST_DEVICE inline T philox_normal(std::uint64_t key, std::uint64_t offset, std::uint64_t i) {
  PhiloxBlock b = philox4x32_10(offset + i, 1, key);
  double u1 = uniform_double(b.v[0], b.v[1]);
  double u2 = uniform_double(b.v[2], b.v[3]);
  double r = std::sqrt(-2.0 * std::log(1.0 - u1));  // 1-u1 in (0,1]: log is finite
  return static_cast<T>(r * std::cos(2.0 * std::numbers::pi * u2));
}

/// Hands out disjoint counter ranges of one Philox stream. Copyable state
/// (seed, offset) so trainers can checkpoint and restore it exactly.
class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0x5eedull) : seed_(seed) {}

  std::uint64_t seed() const noexcept { return seed_; }
  std::uint64_t offset() const noexcept { return offset_; }
  void set_state(std::uint64_t seed, std::uint64_t offset) noexcept {
    seed_ = seed;
    offset_ = offset;
  }
  void manual_seed(std::uint64_t seed) noexcept { set_state(seed, 0); }

  /// Reserves n counters; returns the first. Callers use counters [first, first+n).
  std::uint64_t advance(std::uint64_t n) noexcept {
    std::uint64_t first = offset_;
    offset_ += n;
    return first;
  }

  /// One uniform double in [0,1) (host-side sampling: shuffles, λ draws).
  double next_uniform() noexcept { return philox_uniform<double>(seed_, advance(1), 0); }
  /// Uniform integer in [0, n).
  std::uint64_t next_below(std::uint64_t n) noexcept {
    PhiloxBlock b = philox4x32_10(advance(1), 2, seed_);
    std::uint64_t x = (static_cast<std::uint64_t>(b.v[0]) << 32) | b.v[1];
    return n ? x % n : 0;  // bias < n / 2^64: negligible for dataset sizes
  }

 private:
  std::uint64_t seed_;
  std::uint64_t offset_ = 0;
};

/// The process-wide default generator (used when an API takes no Generator).
inline Generator& default_generator() {
  static Generator g;
  return g;
}
inline void manual_seed(std::uint64_t seed) { default_generator().manual_seed(seed); }

}  // namespace avgrad
