// Average pooling on NHWC buffers. The fast version walks each window once with the channel
// loop innermost (C is contiguous in NHWC, so it vectorises); the naive one is the obvious
// per-(output, channel) loop and serves as the test oracle.
#include "core/kernels/avg_pool2d.h"

#include <algorithm>

namespace kiln {

void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y) {
  const int64_t C = s.C;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < s.N * s.Ho; ++row) {
    const int64_t n = row / s.Ho;
    const int64_t oy = row % s.Ho;
    const PoolWindow wy = pool_window(oy, s.stride, s.pad_top, s.K, s.H);
    for (int64_t ox = 0; ox < s.Wo; ++ox) {
      const PoolWindow wx = pool_window(ox, s.stride, s.pad_left, s.K, s.W);
      float* out = y + (row * s.Wo + ox) * C;
      for (int64_t c = 0; c < C; ++c) out[c] = 0.0f;
      for (int64_t iy = wy.begin; iy < wy.end; ++iy)
        for (int64_t ix = wx.begin; ix < wx.end; ++ix) {
          const float* xp = x + ((n * s.H + iy) * s.W + ix) * C;
          for (int64_t c = 0; c < C; ++c) out[c] += xp[c];
        }
      const float inv = 1.0f / static_cast<float>((wy.end - wy.begin) * (wx.end - wx.begin));
      for (int64_t c = 0; c < C; ++c) out[c] *= inv;
    }
  }
}

// Overlapping windows (stride < K) send several outputs to one input cell, so threads own
// whole images: every window of image n lies in image n.
void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx) {
  const int64_t C = s.C;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    for (int64_t oy = 0; oy < s.Ho; ++oy) {
      const PoolWindow wy = pool_window(oy, s.stride, s.pad_top, s.K, s.H);
      for (int64_t ox = 0; ox < s.Wo; ++ox) {
        const PoolWindow wx = pool_window(ox, s.stride, s.pad_left, s.K, s.W);
        const float inv = 1.0f / static_cast<float>((wy.end - wy.begin) * (wx.end - wx.begin));
        const float* g = dy + ((n * s.Ho + oy) * s.Wo + ox) * C;
        for (int64_t iy = wy.begin; iy < wy.end; ++iy)
          for (int64_t ix = wx.begin; ix < wx.end; ++ix) {
            float* d = dx + ((n * s.H + iy) * s.W + ix) * C;
            for (int64_t c = 0; c < C; ++c) d[c] += g[c] * inv;
          }
      }
    }
  }
}

void avg_pool2d_forward_naive(const Pool2dShape& s, const float* x, float* y) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oy = 0; oy < s.Ho; ++oy)
      for (int64_t ox = 0; ox < s.Wo; ++ox)
        for (int64_t c = 0; c < s.C; ++c) {
          double sum = 0.0;
          int64_t count = 0;
          for (int64_t ky = 0; ky < s.K; ++ky)
            for (int64_t kx = 0; kx < s.K; ++kx) {
              const int64_t iy = oy * s.stride - s.pad_top + ky;
              const int64_t ix = ox * s.stride - s.pad_left + kx;
              if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
              sum += x[((n * s.H + iy) * s.W + ix) * s.C + c];
              ++count;
            }
          y[((n * s.Ho + oy) * s.Wo + ox) * s.C + c] = static_cast<float>(sum / count);
        }
}

void avg_pool2d_backward_naive(const Pool2dShape& s, const float* dy, float* dx) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oy = 0; oy < s.Ho; ++oy)
      for (int64_t ox = 0; ox < s.Wo; ++ox)
        for (int64_t c = 0; c < s.C; ++c) {
          // First count the cells inside the input, then share dy among them.
          int64_t count = 0;
          for (int64_t ky = 0; ky < s.K; ++ky)
            for (int64_t kx = 0; kx < s.K; ++kx) {
              const int64_t iy = oy * s.stride - s.pad_top + ky;
              const int64_t ix = ox * s.stride - s.pad_left + kx;
              count += iy >= 0 && iy < s.H && ix >= 0 && ix < s.W;
            }
          const float share = dy[((n * s.Ho + oy) * s.Wo + ox) * s.C + c] / static_cast<float>(count);
          for (int64_t ky = 0; ky < s.K; ++ky)
            for (int64_t kx = 0; kx < s.K; ++kx) {
              const int64_t iy = oy * s.stride - s.pad_top + ky;
              const int64_t ix = ox * s.stride - s.pad_left + kx;
              if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
              dx[((n * s.H + iy) * s.W + ix) * s.C + c] += share;
            }
        }
}

}  // namespace kiln
