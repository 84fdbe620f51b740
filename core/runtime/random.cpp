#include "core/runtime/random.h"

#include <cmath>

namespace kiln {

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
