// Links against an installed kiln and checks one gradient, returning non-zero on failure.
#include <cmath>
#include <cstdio>

#include "core/ops/ops.h"

int main() {
  kiln::Tensor w = kiln::Tensor::from_vector({2, 1}, {0.5f, -1.0f}).set_requires_grad();
  kiln::Tensor x = kiln::Tensor::from_vector({1, 2}, {3.0f, 4.0f});
  kiln::Tensor loss = kiln::sum(kiln::square(kiln::matmul(x, w)));  // (3*0.5 - 4)^2 = 6.25
  loss.backward();
  // d/dw = 2 * (x w) * x = 2 * -2.5 * [3, 4] = [-15, -20]
  const bool ok = std::fabs(loss.item() - 6.25f) < 1e-6f && std::fabs(w.grad().at({0, 0}) + 15.0f) < 1e-5f &&
                  std::fabs(w.grad().at({1, 0}) + 20.0f) < 1e-5f;
  std::printf("consumer: loss %g, grad [%g, %g] -> %s\n", loss.item(), w.grad().at({0, 0}),
              w.grad().at({1, 0}), ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
