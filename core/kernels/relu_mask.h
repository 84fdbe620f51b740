// The gradient through a ReLU: g where the ReLU's output z is > 0, else +0.
//
// Written as bits (g AND all-ones where z > 0), not as the select z > 0 ? g : 0: inside a loop
// that loads g, or that adds the result into a sum, GCC turns the select into a branch per
// element, and ReLU outputs are positive about half the time, so half the branches mispredict
// (a task2 training step took 78 ms instead of 50 that way).
#pragma once

#include <bit>
#include <cstdint>

namespace kiln {

// v where keep, else +0, by the same bit mask (also dropout's mask).
inline float kept_or_zero(bool keep, float v) {
  const uint32_t mask = 0u - static_cast<uint32_t>(keep);
  return std::bit_cast<float>(std::bit_cast<uint32_t>(v) & mask);
}

inline float relu_masked(float g, float z) { return kept_or_zero(z > 0.0f, g); }

}  // namespace kiln
