// Direct-loop conv2d: the test oracle and the benchmark baseline. No GEMM, no threads, sums
// in double, so it disagrees with the fast path only by the fast path's own rounding.
#include <cstddef>
#include <vector>

#include "core/kernels/conv2d/forms.h"

namespace kiln {
namespace {

// Calls visit(iy, ix, ky, kx) for every kernel tap of output (oy, ox) that lands inside the
// image; taps on the zero padding contribute nothing in any of the three passes.
template <typename Visit>
void for_each_tap(const Conv2dShape& s, int64_t oy, int64_t ox, Visit visit) {
  for (int64_t ky = 0; ky < s.KH; ++ky) {
    const int64_t iy = oy * s.stride_h - s.pad_top + ky;
    if (iy < 0 || iy >= s.H) continue;
    for (int64_t kx = 0; kx < s.KW; ++kx) {
      const int64_t ix = ox * s.stride_w - s.pad_left + kx;
      if (ix < 0 || ix >= s.W) continue;
      visit(iy, ix, ky, kx);
    }
  }
}

}  // namespace

void conv2d_forward_naive(const Conv2dShape& s, const float* x, const float* w, const float* b,
                          float* y) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oy = 0; oy < s.Ho; ++oy)
      for (int64_t ox = 0; ox < s.Wo; ++ox)
        for (int64_t f = 0; f < s.F; ++f) {
          double acc = b ? b[f] : 0.0;
          for_each_tap(s, oy, ox, [&](int64_t iy, int64_t ix, int64_t ky, int64_t kx) {
            for (int64_t c = 0; c < s.C; ++c) {
              acc += static_cast<double>(x[((n * s.H + iy) * s.W + ix) * s.C + c]) *
                     w[((ky * s.KW + kx) * s.C + c) * s.F + f];
            }
          });
          y[((n * s.Ho + oy) * s.Wo + ox) * s.F + f] = static_cast<float>(acc);
        }
}

void conv2d_backward_input_naive(const Conv2dShape& s, const float* dy, const float* w,
                                 float* dx) {
  std::vector<double> acc(static_cast<size_t>(s.N * s.H * s.W * s.C), 0.0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oy = 0; oy < s.Ho; ++oy)
      for (int64_t ox = 0; ox < s.Wo; ++ox)
        for_each_tap(s, oy, ox, [&](int64_t iy, int64_t ix, int64_t ky, int64_t kx) {
          for (int64_t c = 0; c < s.C; ++c)
            for (int64_t f = 0; f < s.F; ++f) {
              acc[((n * s.H + iy) * s.W + ix) * s.C + c] +=
                  static_cast<double>(dy[((n * s.Ho + oy) * s.Wo + ox) * s.F + f]) *
                  w[((ky * s.KW + kx) * s.C + c) * s.F + f];
            }
        });
  for (size_t i = 0; i < acc.size(); ++i) dx[i] += static_cast<float>(acc[i]);
}

void conv2d_backward_weight_naive(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                                  float* db) {
  std::vector<double> acc(static_cast<size_t>(s.KH * s.KW * s.C * s.F), 0.0);
  std::vector<double> bias_acc(static_cast<size_t>(s.F), 0.0);
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oy = 0; oy < s.Ho; ++oy)
      for (int64_t ox = 0; ox < s.Wo; ++ox) {
        const float* dyp = dy + ((n * s.Ho + oy) * s.Wo + ox) * s.F;
        for (int64_t f = 0; f < s.F; ++f) bias_acc[f] += dyp[f];
        for_each_tap(s, oy, ox, [&](int64_t iy, int64_t ix, int64_t ky, int64_t kx) {
          for (int64_t c = 0; c < s.C; ++c)
            for (int64_t f = 0; f < s.F; ++f) {
              acc[((ky * s.KW + kx) * s.C + c) * s.F + f] +=
                  static_cast<double>(x[((n * s.H + iy) * s.W + ix) * s.C + c]) * dyp[f];
            }
        });
      }
  for (size_t i = 0; i < acc.size(); ++i) dw[i] += static_cast<float>(acc[i]);
  if (db)
    for (int64_t f = 0; f < s.F; ++f) db[f] += static_cast<float>(bias_acc[f]);
}

}  // namespace kiln
