// zero_pad2d: zeros around the image of an NHWC batch (Keras' ZeroPadding2D). The gradient
// is the matching crop of the output's gradient.
#include <algorithm>
#include <string>

#include "core/autograd.h"
#include "core/ops/ops.h"

namespace kiln {

Tensor zero_pad2d(const Tensor& x, int64_t top, int64_t bottom, int64_t left, int64_t right) {
  check_arg(x.dim() == 4, "zero_pad2d", "input " + shape_str(x.shape()) + " is not [N,H,W,C]");
  check_arg(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, "zero_pad2d",
            "padding (top " + std::to_string(top) + ", bottom " + std::to_string(bottom) + ", left " +
                std::to_string(left) + ", right " + std::to_string(right) + ") must not be negative");
  const int64_t n = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3);
  const int64_t ho = h + top + bottom, wo = w + left + right;
  Tensor out = Tensor::zeros({n, ho, wo, c});
  // Row r of image b of x is a run of w * c floats that lands at (top + r, left) in the output.
  const int64_t run = w * c;
  auto row_in = [=](int64_t b, int64_t r) { return (b * h + r) * run; };
  auto row_out = [=](int64_t b, int64_t r) { return ((b * ho + top + r) * wo + left) * c; };
  const float* src = x.data();
  float* dst = out.data();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t r = 0; r < h; ++r) std::copy(src + row_in(b, r), src + row_in(b, r) + run, dst + row_out(b, r));

  record(out, "zero_pad2d", {x}, [x, n, h, run, row_in, row_out](const Tensor& g) {
    const float* dy = g.data();
    float* dx = x.grad_data();
    for (int64_t b = 0; b < n; ++b)
      for (int64_t r = 0; r < h; ++r) {
        const float* s = dy + row_out(b, r);
        float* d = dx + row_in(b, r);
        for (int64_t j = 0; j < run; ++j) d[j] += s[j];
      }
  });
  return out;
}

}  // namespace kiln
