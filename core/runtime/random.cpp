#include "core/runtime/random.h"

#include <cmath>

namespace kiln {

uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

float uniform_at(uint64_t seed, uint64_t i) {
  const uint64_t h = mix64(mix64(seed ^ 0x6a09e667f3bcc909ULL) + 0x9e3779b97f4a7c15ULL * (i + 1));
  return static_cast<float>(h >> 40) * (1.0f / 16777216.0f);
}

float normal_at(uint64_t seed, uint64_t i) {
  // Element i uses draws 2i and 2i+1; u1 in (0,1] keeps the log finite.
  const double u1 = 1.0 - static_cast<double>(uniform_at(seed, 2 * i));
  const double u2 = static_cast<double>(uniform_at(seed, 2 * i + 1));
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

float Generator::normal() {
  const double u1 = 1.0 - uniform_double();
  const double u2 = uniform_double();
  return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
}

}  // namespace kiln
