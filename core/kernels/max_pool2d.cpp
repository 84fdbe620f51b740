// Max pooling on NHWC buffers. The fast version walks each window once with the channel
// loop innermost (C is contiguous in NHWC, so it vectorises); the naive one is the obvious
// per-(output, channel) loop and serves as the test oracle.
#include "core/kernels/max_pool2d.h"

#include "core/kernels/same_padding.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>

namespace kiln {
namespace {

std::string shape4(int64_t a, int64_t b, int64_t c, int64_t d) {
  return "[" + std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(c) + "," +
         std::to_string(d) + "]";
}

}  // namespace

Pool2dShape Pool2dShape::make(int64_t N, int64_t H, int64_t W, int64_t C, int64_t K,
                              int64_t stride, bool same_padding) {
  if (N <= 0 || H <= 0 || W <= 0 || C <= 0 || K <= 0 || stride <= 0) {
    throw std::invalid_argument("max_pool2d: sizes must be positive, got input " +
                                shape4(N, H, W, C) + ", pool " + std::to_string(K) +
                                ", stride " + std::to_string(stride));
  }
  if (!same_padding && (H < K || W < K)) {
    throw std::invalid_argument("max_pool2d: input " + shape4(N, H, W, C) +
                                " is smaller than pool " + std::to_string(K) + "x" +
                                std::to_string(K) + " with padding valid");
  }
  if (N * H * W * C > INT32_MAX) {
    throw std::invalid_argument("max_pool2d: input " + shape4(N, H, W, C) +
                                " has more elements than int32 argmax indices can address");
  }
  Pool2dShape s{};
  s.N = N;
  s.H = H;
  s.W = W;
  s.C = C;
  s.K = K;
  s.stride = stride;
  if (same_padding) {
    const SamePadding rows = kiln::same_padding(H, K, stride), cols = kiln::same_padding(W, K, stride);
    s.Ho = rows.out;
    s.Wo = cols.out;
    s.pad_top = rows.before;
    s.pad_left = cols.before;
  } else {
    s.Ho = (H - K) / stride + 1;
    s.Wo = (W - K) / stride + 1;
    s.pad_top = 0;
    s.pad_left = 0;
  }
  return s;
}

namespace {

// The common case, 2x2 windows with stride 2 that all lie inside the input: the four cells
// are read straight from two input rows. Row-major window order with strict comparisons: the
// first maximum wins, and a NaN never replaces the running maximum (as in the naive loops).
// The maximum and its index are written as selects: on real activations which cell wins is a
// coin toss, so a branch per comparison mispredicts half the time (it made this loop cost a
// fifth of a task1 step).
//
// Any C: the channel loop, which the compiler vectorises where C is large; for a few channels
// it runs scalar and GCC turns the selects back into branches, hence the version below.
void max_pool2x2_forward(const Pool2dShape& s, const float* __restrict x, float* __restrict y,
                         int32_t* __restrict argmax) {
  const int64_t C = s.C;
  const int64_t row_floats = s.W * C;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < s.N * s.Ho; ++row) {
    const int64_t n = row / s.Ho, oy = row % s.Ho;
    const int64_t top = (n * s.H + 2 * oy) * row_floats;  // offset of the window row pair
    float* __restrict out = y + row * s.Wo * C;
    int32_t* __restrict out_at = argmax + row * s.Wo * C;
    for (int64_t ox = 0; ox < s.Wo; ++ox) {
      const int64_t a = top + 2 * ox * C, b = a + C, c2 = a + row_floats, d = c2 + C;
      for (int64_t c = 0; c < C; ++c) {
        float best = x[a + c];
        int32_t at = static_cast<int32_t>(a + c);
        const float vb = x[b + c], vc = x[c2 + c], vd = x[d + c];
        at = vb > best ? static_cast<int32_t>(b + c) : at;
        best = vb > best ? vb : best;
        at = vc > best ? static_cast<int32_t>(c2 + c) : at;
        best = vc > best ? vc : best;
        at = vd > best ? static_cast<int32_t>(d + c) : at;
        best = vd > best ? vd : best;
        out[ox * C + c] = best;
        out_at[ox * C + c] = at;
      }
    }
  }
}

// A pixel's CT channels (4, 8 or 16) as one vector: four loads, three compare-and-blend steps.
// For a few channels the loop above runs scalar, and there the compiler turns its selects back
// into branches.
// (GCC 12 drops vector_size on an alias that depends on a template parameter, hence one
// specialisation per width.)
template <int CT>
struct PixelVector;
template <>
struct PixelVector<4> {
  typedef float Floats __attribute__((vector_size(16)));
  typedef int32_t Ints __attribute__((vector_size(16)));
};
template <>
struct PixelVector<8> {
  typedef float Floats __attribute__((vector_size(32)));
  typedef int32_t Ints __attribute__((vector_size(32)));
};
template <>
struct PixelVector<16> {
  typedef float Floats __attribute__((vector_size(64)));
  typedef int32_t Ints __attribute__((vector_size(64)));
};

template <int CT>
void max_pool2x2_forward_pixels(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  using Floats = typename PixelVector<CT>::Floats;
  using Ints = typename PixelVector<CT>::Ints;
  Ints lane{};
  for (int c = 0; c < CT; ++c) lane[c] = c;
  const int64_t row_floats = s.W * CT;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < s.N * s.Ho; ++row) {
    const int64_t n = row / s.Ho, oy = row % s.Ho;
    const int64_t top = (n * s.H + 2 * oy) * row_floats;
    for (int64_t ox = 0; ox < s.Wo; ++ox) {
      const int64_t a = top + 2 * ox * CT, b = a + CT, c2 = a + row_floats, d = c2 + CT;
      // Loaded with memcpy in place: a helper returning a 64-byte vector would change the ABI
      // of a build without AVX-512 (GCC's -Wpsabi).
      Floats best, vb, vc, vd;
      std::memcpy(&best, x + a, sizeof best);
      std::memcpy(&vb, x + b, sizeof vb);
      std::memcpy(&vc, x + c2, sizeof vc);
      std::memcpy(&vd, x + d, sizeof vd);
      Ints at = lane + static_cast<int32_t>(a);
      Ints wins = vb > best;
      at = wins ? lane + static_cast<int32_t>(b) : at;
      best = wins ? vb : best;
      wins = vc > best;
      at = wins ? lane + static_cast<int32_t>(c2) : at;
      best = wins ? vc : best;
      wins = vd > best;
      at = wins ? lane + static_cast<int32_t>(d) : at;
      best = wins ? vd : best;
      const int64_t o = (row * s.Wo + ox) * CT;
      std::memcpy(y + o, &best, sizeof best);
      std::memcpy(argmax + o, &at, sizeof at);
    }
  }
}

}  // namespace

void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  if (s.K == 2 && s.stride == 2 && s.pad_top == 0 && s.pad_left == 0 && 2 * s.Ho <= s.H && 2 * s.Wo <= s.W) {
    switch (s.C) {
      case 4: max_pool2x2_forward_pixels<4>(s, x, y, argmax); break;
      case 8: max_pool2x2_forward_pixels<8>(s, x, y, argmax); break;
      case 16: max_pool2x2_forward_pixels<16>(s, x, y, argmax); break;
      default: max_pool2x2_forward(s, x, y, argmax); break;
    }
    return;
  }
  const int64_t C = s.C;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < s.N * s.Ho; ++row) {
    const int64_t n = row / s.Ho;
    const int64_t oy = row % s.Ho;
    const PoolWindow wy = pool_window(oy, s.stride, s.pad_top, s.K, s.H);
    for (int64_t ox = 0; ox < s.Wo; ++ox) {
      const PoolWindow wx = pool_window(ox, s.stride, s.pad_left, s.K, s.W);
      float* best = y + (row * s.Wo + ox) * C;
      int32_t* best_at = argmax + (row * s.Wo + ox) * C;
      // Seed with the window's first cell, then take only strictly larger values, in row-major
      // window order, so that the first maximum wins.
      const int64_t first = ((n * s.H + wy.begin) * s.W + wx.begin) * C;
      for (int64_t c = 0; c < C; ++c) {
        best[c] = x[first + c];
        best_at[c] = static_cast<int32_t>(first + c);
      }
      for (int64_t iy = wy.begin; iy < wy.end; ++iy) {
        for (int64_t ix = wx.begin; ix < wx.end; ++ix) {
          if (iy == wy.begin && ix == wx.begin) continue;
          const int64_t at = ((n * s.H + iy) * s.W + ix) * C;
          const float* xp = x + at;
          for (int64_t c = 0; c < C; ++c) {
            const bool larger = xp[c] > best[c];
            best[c] = larger ? xp[c] : best[c];
            best_at[c] = larger ? static_cast<int32_t>(at + c) : best_at[c];
          }
        }
      }
    }
  }
}

// Overlapping windows (stride < K) can route two outputs to one input cell, so threads own
// whole images: every argmax of image n points into image n.
void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx,
                         bool overwrite) {
  const int64_t per_image = s.Ho * s.Wo * s.C;
  const int64_t image_floats = s.H * s.W * s.C;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < s.N; ++n) {
    // An image's windows only reach into that image, so its slice of dx can be zeroed right
    // before its scatter, by the same thread, while the slice is in that core's cache.
    if (overwrite) std::fill(dx + n * image_floats, dx + (n + 1) * image_floats, 0.0f);
    const int64_t begin = n * per_image;
    for (int64_t i = begin; i < begin + per_image; ++i) dx[argmax[i]] += dy[i];
  }
}

void max_pool2d_forward_naive(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t oy = 0; oy < s.Ho; ++oy)
      for (int64_t ox = 0; ox < s.Wo; ++ox)
        for (int64_t c = 0; c < s.C; ++c) {
          int64_t best_at = -1;
          for (int64_t ky = 0; ky < s.K; ++ky)
            for (int64_t kx = 0; kx < s.K; ++kx) {
              const int64_t iy = oy * s.stride - s.pad_top + ky;
              const int64_t ix = ox * s.stride - s.pad_left + kx;
              if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
              const int64_t at = ((n * s.H + iy) * s.W + ix) * s.C + c;
              if (best_at < 0 || x[at] > x[best_at]) best_at = at;
            }
          const int64_t out = ((n * s.Ho + oy) * s.Wo + ox) * s.C + c;
          y[out] = x[best_at];
          argmax[out] = static_cast<int32_t>(best_at);
        }
}

void max_pool2d_backward_naive(const Pool2dShape& s, const float* dy, const int32_t* argmax,
                               float* dx) {
  const int64_t outputs = s.N * s.Ho * s.Wo * s.C;
  for (int64_t i = 0; i < outputs; ++i) dx[argmax[i]] += dy[i];
}

}  // namespace kiln
