// Seeded random numbers. Two kinds:
//  - counter-based: uniform_at(seed, i) depends only on (seed, i), so a parallel fill gives
//    the same numbers whatever the thread count;
//  - Generator: a sequential stream (shuffles, per-image augmentation draws).
#pragma once

#include <cstdint>

namespace kiln {

// splitmix64 finaliser: a well-mixed 64-bit hash.
uint64_t mix64(uint64_t x);
// Uniform float in [0, 1) for element i of stream `seed`.
float uniform_at(uint64_t seed, uint64_t i);
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
