// Winograd F(2x2, 3x3) convolution for 3x3 stride-1 layers with many channels.
//
// Why: in VGG-style networks almost every FLOP is in 3x3 convolutions with 64-256 channels,
// and through im2col + sgemm they cost 2*9*C*F multiply-adds per output pixel.
// Winograd's minimal filtering computes a 2x2 block of outputs from a 4x4 block of inputs with
// 16 element-wise products per (c, f) instead of 36: 2.25x fewer GEMM FLOPs, paid for with
// cheap additions that transform the inputs (B^T d B), the kernel (G g G^T) and the products
// (A^T m A). The 16 products over all channels are 16 independent GEMMs,
//   M[xi] (tiles x F) = V[xi] (tiles x C) * U[xi] (C x F),   xi = 0..15,
// so the heavy part still runs in OpenBLAS' sgemm.
//
// Threading: each OpenMP thread takes whole blocks of tiles and does all three steps for its
// block (input transform, 16 single-threaded sgemm calls, output transform), so the
// transformed block stays in that core's cache and no thread waits on another inside a layer.
// OpenBLAS' OpenMP build runs an sgemm called inside a parallel region on the calling thread.
//
// Accuracy: F(2x2, 3x3) uses only the points 0, 1, -1 and infinity; its transforms are exact
// in float up to a factor 1/2 in G, so it rounds like the direct form within a few ulps per
// sum (the tests compare it with naive.cpp's double sums at 1e-4 relative).

#include <algorithm>
#include <cstring>

#include "core/kernels/conv2d/forms.h"
#include "core/kernels/conv2d/winograd_tiles.h"
#include "core/runtime/memory.h"

namespace kiln {
namespace {

using winograd::kChannelBlock;
using winograd::place_of;
using winograd::TilePlace;
using winograd::Tiling;

constexpr int64_t kSide = 2;  // outputs per tile side

// U[xi][c][f] = (G g G^T)[xi] for the 3x3 kernel g = w[.., .., c, f];
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
void transform_kernel(int64_t C, int64_t F, const float* __restrict w, float* __restrict u) {
  const int64_t CF = C * F;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    alignas(64) float gg[12][kChannelBlock];  // G g: 4 rows of 3, each over a block of filters
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      const float* g = w + c * F + f0;  // g[(ky*3 + kx) * CF + k]
      for (int kx = 0; kx < 3; ++kx) {
        const float* g0 = g + (0 * 3 + kx) * CF;
        const float* g1 = g + (1 * 3 + kx) * CF;
        const float* g2 = g + (2 * 3 + kx) * CF;
        for (int64_t k = 0; k < fb; ++k) {
          gg[0 * 3 + kx][k] = g0[k];
          gg[1 * 3 + kx][k] = 0.5f * (g0[k] + g1[k] + g2[k]);
          gg[2 * 3 + kx][k] = 0.5f * (g0[k] - g1[k] + g2[k]);
          gg[3 * 3 + kx][k] = g2[k];
        }
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        float* out = u + (i * 4) * CF + c * F + f0;
        const float* a = gg[i * 3 + 0];
        const float* b = gg[i * 3 + 1];
        const float* d = gg[i * 3 + 2];
        for (int64_t k = 0; k < fb; ++k) {
          out[0 * CF + k] = a[k];
          out[1 * CF + k] = 0.5f * (a[k] + b[k] + d[k]);
          out[2 * CF + k] = 0.5f * (a[k] - b[k] + d[k]);
          out[3 * CF + k] = d[k];
        }
      }
    }
  }
}

// V[xi][t][c] = (B^T d B)[xi] for the 4x4 input patch d of tile t (zero outside the image);
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
void transform_input(const Conv2dShape& s, const Tiling& tl, const float* __restrict x, int64_t t0,
                     int64_t tiles, int64_t plane_tiles, float* __restrict v) {
  const int64_t C = s.C;
  const int64_t plane = plane_tiles * C;  // floats between consecutive xi
  const float* d[16];  // the patch's pixels, read in place (kZeros outside the image)
  alignas(64) float r[16][kChannelBlock];
  for (int64_t t = 0; t < tiles; ++t) {
    const TilePlace p = place_of(s, tl, t0 + t);
    const int64_t n = p.n;
    const int64_t iy0 = p.oy0 - s.pad_top, ix0 = p.ox0 - s.pad_left;
    for (int64_t c0 = 0; c0 < C; c0 += kChannelBlock) {
      const int64_t cb = std::min(kChannelBlock, C - c0);
      for (int i = 0; i < 4; ++i) {
        const int64_t iy = iy0 + i;
        for (int j = 0; j < 4; ++j) {
          const int64_t ix = ix0 + j;
          const bool inside = iy >= 0 && iy < s.H && ix >= 0 && ix < s.W;
          d[i * 4 + j] = inside ? x + ((n * s.H + iy) * s.W + ix) * C + c0 : winograd::kZeros;
        }
      }
      for (int j = 0; j < 4; ++j) {  // B^T d: combine rows
        for (int64_t k = 0; k < cb; ++k) {
          const float d0 = d[0 * 4 + j][k], d1 = d[1 * 4 + j][k], d2 = d[2 * 4 + j][k], d3 = d[3 * 4 + j][k];
          r[0 * 4 + j][k] = d0 - d2;
          r[1 * 4 + j][k] = d1 + d2;
          r[2 * 4 + j][k] = d2 - d1;
          r[3 * 4 + j][k] = d1 - d3;
        }
      }
      for (int i = 0; i < 4; ++i) {  // (B^T d) B: combine columns
        float* out = v + (i * 4) * plane + t * C + c0;
        for (int64_t k = 0; k < cb; ++k) {
          const float r0 = r[i * 4 + 0][k], r1 = r[i * 4 + 1][k], r2 = r[i * 4 + 2][k], r3 = r[i * 4 + 3][k];
          out[0 * plane + k] = r0 - r2;
          out[1 * plane + k] = r1 + r2;
          out[2 * plane + k] = r2 - r1;
          out[3 * plane + k] = r1 - r3;
        }
      }
    }
  }
}

// y (+)= A^T m A (+ b) for each tile's 4x4 block of products m = M[.][t][f], clipped to the
// output; A^T = [1 1 1 0; 0 1 -1 -1].
void transform_output(const Conv2dShape& s, const Tiling& tl, const float* __restrict m, int64_t t0,
                      int64_t tiles, const float* __restrict b, bool accumulate, float* __restrict y) {
  const int64_t F = s.F;
  const int64_t plane = tiles * F;
  for (int64_t t = 0; t < tiles; ++t) {
    const TilePlace p = place_of(s, tl, t0 + t);
    const bool down = p.rows > 1, right = p.cols > 1;
    float* y00 = y + ((p.n * s.Ho + p.oy0) * s.Wo + p.ox0) * F;
    float* y01 = y00 + F;
    float* y10 = y00 + s.Wo * F;
    float* y11 = y10 + F;
    const float* mt = m + t * F;
    alignas(64) float a[8][kChannelBlock];  // A^T m: rows 0..3 are its first row's 4 entries
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      for (int j = 0; j < 4; ++j) {
        const float* q0 = mt + (0 * 4 + j) * plane + f0;
        const float* q1 = mt + (1 * 4 + j) * plane + f0;
        const float* q2 = mt + (2 * 4 + j) * plane + f0;
        const float* q3 = mt + (3 * 4 + j) * plane + f0;
        for (int64_t k = 0; k < fb; ++k) {
          a[j][k] = q0[k] + q1[k] + q2[k];
          a[4 + j][k] = q1[k] - q2[k] - q3[k];
        }
      }
      for (int row = 0; row < 2; ++row) {
        if (row == 1 && !down) break;
        float* y0 = (row == 0 ? y00 : y10) + f0;
        float* y1 = (row == 0 ? y01 : y11) + f0;
        const float* a0 = a[row * 4 + 0];
        const float* a1 = a[row * 4 + 1];
        const float* a2 = a[row * 4 + 2];
        const float* a3 = a[row * 4 + 3];
        const float* bias = b ? b + f0 : nullptr;
        for (int64_t k = 0; k < fb; ++k) {
          const float add = bias ? bias[k] : 0.0f;
          const float left = a0[k] + a1[k] + a2[k] + add;
          y0[k] = accumulate ? y0[k] + left : left;
        }
        if (!right) continue;
        for (int64_t k = 0; k < fb; ++k) {
          const float add = bias ? bias[k] : 0.0f;
          const float second = a1[k] - a2[k] - a3[k] + add;
          y1[k] = accumulate ? y1[k] + second : second;
        }
      }
    }
  }
}

// Z[xi][t][f] = (A dy A^T)[xi] for the 2x2 block dy of output gradients of tile t (zero where
// the tile overhangs the output); A = [1 0; 1 1; 1 -1; 0 -1], the transpose of A^T above.
// The forward pass is y = A^T (U .* V) A per tile, so the gradient of U is Z .* V, summed over
// the tiles: for each xi a GEMM V[xi]^T Z[xi].
void transform_output_grad(const Conv2dShape& s, const Tiling& tl, const float* __restrict dy, int64_t t0,
                           int64_t tiles, int64_t plane_tiles, float* __restrict z) {
  const int64_t F = s.F;
  const int64_t plane = plane_tiles * F;
  alignas(64) float r[8][kChannelBlock];  // A dy: 4 rows of 2
  for (int64_t t = 0; t < tiles; ++t) {
    const TilePlace p = place_of(s, tl, t0 + t);
    const bool down = p.rows > 1, right = p.cols > 1;
    const float* d00 = dy + ((p.n * s.Ho + p.oy0) * s.Wo + p.ox0) * F;
    const float* d01 = d00 + F;
    const float* d10 = d00 + s.Wo * F;
    const float* d11 = d10 + F;
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      for (int64_t k = 0; k < fb; ++k) {
        const float a00 = d00[f0 + k];
        const float a01 = right ? d01[f0 + k] : 0.0f;
        const float a10 = down ? d10[f0 + k] : 0.0f;
        const float a11 = down && right ? d11[f0 + k] : 0.0f;
        r[0][k] = a00;             // row 0: dy row 0
        r[1][k] = a01;
        r[2][k] = a00 + a10;       // row 1: dy0 + dy1
        r[3][k] = a01 + a11;
        r[4][k] = a00 - a10;       // row 2: dy0 - dy1
        r[5][k] = a01 - a11;
        r[6][k] = -a10;            // row 3: -dy1
        r[7][k] = -a11;
      }
      for (int i = 0; i < 4; ++i) {  // (A dy) A^T: the same combination along the columns
        const float* c0 = r[2 * i];
        const float* c1 = r[2 * i + 1];
        float* out = z + (i * 4) * plane + t * F + f0;
        for (int64_t k = 0; k < fb; ++k) {
          out[0 * plane + k] = c0[k];
          out[1 * plane + k] = c0[k] + c1[k];
          out[2 * plane + k] = c0[k] - c1[k];
          out[3 * plane + k] = -c1[k];
        }
      }
    }
  }
}

// dw[ky][kx][c][f] += (G^T M G)[ky][kx] for the summed products M[xi][c][f] (the gradient of
// U = G g G^T carried back to g); G^T = [1 1/2 1/2 0; 0 1/2 -1/2 0; 0 1/2 1/2 1].
void transform_kernel_grad(int64_t C, int64_t F, const float* __restrict m, float* __restrict dw) {
  const int64_t CF = C * F;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    alignas(64) float t[12][kChannelBlock];  // G^T M: 3 rows of 4
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      const float* mc = m + c * F + f0;  // mc[xi * CF + k]
      for (int j = 0; j < 4; ++j) {
        const float* m0 = mc + (0 * 4 + j) * CF;
        const float* m1 = mc + (1 * 4 + j) * CF;
        const float* m2 = mc + (2 * 4 + j) * CF;
        const float* m3 = mc + (3 * 4 + j) * CF;
        for (int64_t k = 0; k < fb; ++k) {
          t[0 * 4 + j][k] = m0[k] + 0.5f * (m1[k] + m2[k]);
          t[1 * 4 + j][k] = 0.5f * (m1[k] - m2[k]);
          t[2 * 4 + j][k] = 0.5f * (m1[k] + m2[k]) + m3[k];
        }
      }
      for (int ky = 0; ky < 3; ++ky) {
        const float* a0 = t[ky * 4 + 0];
        const float* a1 = t[ky * 4 + 1];
        const float* a2 = t[ky * 4 + 2];
        const float* a3 = t[ky * 4 + 3];
        float* out = dw + (ky * 3) * CF + c * F + f0;
        for (int64_t k = 0; k < fb; ++k) {
          out[0 * CF + k] += a0[k] + 0.5f * (a1[k] + a2[k]);
          out[1 * CF + k] += 0.5f * (a1[k] - a2[k]);
          out[2 * CF + k] += 0.5f * (a1[k] + a2[k]) + a3[k];
        }
      }
    }
  }
}

// y (+)= conv(x, w) + b through Winograd, for a 3x3 stride-1 shape with any padding.
void winograd2(const Conv2dShape& s, const float* x, const float* w, const float* b, bool accumulate,
               float* y) {
  const Tiling tl = winograd::tiling_of(s, kSide);
  Workspace u(16 * s.C * s.F);
  transform_kernel(s.C, s.F, w, u.data());
  winograd::forward_blocks(
      s, tl, 16, u.data(), [&](int64_t t0, int64_t tiles, float* v) { transform_input(s, tl, x, t0, tiles, tiles, v); },
      [&](const float* m, int64_t t0, int64_t tiles) { transform_output(s, tl, m, t0, tiles, b, accumulate, y); });
}

}  // namespace

void conv2d_forward_winograd(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  winograd2(s, x, w, b, /*accumulate=*/false, y);
}

void conv2d_backward_weight_winograd(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db) {
  if (db) conv2d_add_bias_grad(s.rows(), s.F, dy, db);
  const Tiling tl = winograd::tiling_of(s, kSide);
  winograd::weight_grad_blocks(
      s, tl, 16, [&](int64_t t0, int64_t tiles, int64_t plane_tiles, float* v) {
        transform_input(s, tl, x, t0, tiles, plane_tiles, v);
      },
      [&](int64_t t0, int64_t tiles, int64_t plane_tiles, float* z) {
        transform_output_grad(s, tl, dy, t0, tiles, plane_tiles, z);
      },
      [&](const float* m) { transform_kernel_grad(s.C, s.F, m, dw); });
}

void conv2d_backward_input_winograd(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                                    bool overwrite) {
  conv2d_backward_input_by_rotation(s, dy, w, dx, [overwrite](const Conv2dShape& t, const float* g, const float* r, float* out) {
    winograd2(t, g, r, nullptr, /*accumulate=*/!overwrite, out);
  });
}

}  // namespace kiln
