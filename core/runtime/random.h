// Seeded random numbers. Two kinds:
//  - counter-based: uniform_at(seed, i) depends only on (seed, i), so a parallel fill gives
//    the same numbers whatever the thread count;
//  - Generator: a sequential stream (shuffles, per-image augmentation draws).
#pragma once

#include <cstdint>

namespace kiln {

// splitmix64 finaliser: a well-mixed 64-bit hash.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// The counter stream of one seed: element i is a hash of (seed, i) alone. Inline, with the
// seed's own hash taken once, so a loop over i (dropout's mask) vectorises.
class CounterStream {
 public:
  explicit CounterStream(uint64_t seed) : key_(mix64(seed ^ 0x6a09e667f3bcc909ULL)) {}
  // Uniform float in [0, 1): 24 random bits.
  float uniform(uint64_t i) const {
    const uint64_t h = mix64(key_ + 0x9e3779b97f4a7c15ULL * (i + 1));
    // Through int32 (exact: 24 bits), which vectorises without AVX-512's uint64 conversion.
    return static_cast<float>(static_cast<int32_t>(h >> 40)) * (1.0f / 16777216.0f);
  }

 private:
  uint64_t key_;
};

// Uniform float in [0, 1) for element i of stream `seed`.
inline float uniform_at(uint64_t seed, uint64_t i) { return CounterStream(seed).uniform(i); }
// Standard normal for element i of stream `seed` (Box-Muller on two counter draws).
float normal_at(uint64_t seed, uint64_t i);

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t next_u64() { return mix64(seed_ + 0x9e3779b97f4a7c15ULL * ++counter_); }
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }  // [0,1)
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  double uniform_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  float normal();
  // Uniform integer in [0, n).
  int64_t randint(int64_t n) { return static_cast<int64_t>(next_u64() % static_cast<uint64_t>(n)); }
  // A fresh seed for a sub-stream (per epoch, per layer...).
  uint64_t fork() { return next_u64(); }
  uint64_t seed() const { return seed_; }
  // Draws made so far. (seed, counter) is the whole state: a checkpoint saves both and
  // restore() continues the stream exactly where it stopped.
  uint64_t counter() const { return counter_; }
  void restore(uint64_t seed, uint64_t counter) {
    seed_ = seed;
    counter_ = counter;
  }

 private:
  uint64_t seed_;
  uint64_t counter_ = 0;
};

}  // namespace kiln
