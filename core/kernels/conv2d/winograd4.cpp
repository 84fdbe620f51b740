// Winograd F(4x4, 3x3) convolution for 3x3 stride-1 layers with many channels: the forward
// pass, the input gradient and the weight gradient.
//
// Why: F(2x2, 3x3) (winograd.cpp) cuts the GEMM work of a 3x3 layer from 9 to 4 multiplies per
// output and channel pair; F(4x4, 3x3) computes a 4x4 block of outputs from a 6x6 block of
// inputs with 36 element-wise products per (c, f), 2.25 multiplies per output, 1.78x fewer
// than F(2x2). The 36 products over all channels are 36 independent GEMMs,
//   M[xi] (tiles x F) = V[xi] (tiles x C) * U[xi] (C x F),   xi = 0..35,
// each with a quarter of F(2x2)'s rows for the same image. On small images the 4x4 tiles
// overhang the output (a 7x7 output takes 8x8 of tiles) and the GEMMs get short, so
// choose.cpp takes this form only where the benchmarks measured it faster.
//
// The transforms (Lavin & Gray 2016, interpolation points 0, 1, -1, 2, -2 and infinity):
//   B^T = [4  0 -5  0 1 0;     G = [ 1/4     0    0;     A^T = [1 1  1 1  1 0;
//          0 -4 -4  1 1 0;          -1/6  -1/6 -1/6;            0 1 -1 2 -2 0;
//          0  4 -4 -1 1 0;          -1/6   1/6 -1/6;            0 1  1 4  4 0;
//          0 -2 -1  2 1 0;          1/24  1/12  1/6;            0 1 -1 8 -8 1]
//          0  2 -1 -2 1 0;          1/24 -1/12  1/6;
//          0  4  0 -5 0 1]             0     0    1]
// and per tile y = A^T [(G g G^T) .* (B^T d B)] A.
//
// Threading and blocking as in winograd.cpp: each OpenMP thread takes whole blocks of tiles and
// runs the input transform, 36 single-threaded sgemm calls and the output transform on its
// block, which stays in that core's cache.
//
// Accuracy: unlike F(2x2), these transforms are not exact in float. B^T and A^T have entries
// up to 5 and 8, so a tile's transformed inputs and products grow by up to ~100x and 36 of them
// cancel back to outputs of the original size, and G's 1/6 and 1/24 round. The error is 10-20
// times F(2x2)'s, up to 1.4e-5 relative against double sums on the lab's layers (32-256
// channels); test_kernels.cpp holds this form to its own, measured tolerance.
//
// The weight gradient runs the forward's tiles backwards: Z = A dy A^T per tile (6x6 from a
// 4x4 block of dy), the 36 products' sums M[xi] = V[xi]^T Z[xi] over all tiles, then
// dw = G^T M G. Its error, against double sums on the lab's layers at their batches: up to
// 6.1e-6 relative (F(2x2): 6e-7).
#include <algorithm>

#include "core/kernels/conv2d/forms.h"
#include "core/kernels/conv2d/winograd_tiles.h"
#include "core/runtime/memory.h"

namespace kiln {
namespace {

using winograd::kChannelBlock;
using winograd::place_of;
using winograd::TilePlace;
using winograd::Tiling;

constexpr int64_t kOut = 4;            // outputs per tile side
constexpr int64_t kPatch = 6;          // inputs per tile side: kOut + 3 - 1
constexpr int64_t kProducts = kPatch * kPatch;  // GEMMs per block

// The three 1-D transforms, each on n channels at once; the 2-D transforms apply them along
// the rows, then along the columns.

// (G g) for one column g0..g2 of a kernel. The 1/6 is a division, so it rounds once; the 1/4
// and 1/2 are exact.
inline void kernel_1d(const float* __restrict g0, const float* __restrict g1, const float* __restrict g2,
                      float* __restrict u0, float* __restrict u1, float* __restrict u2, float* __restrict u3,
                      float* __restrict u4, float* __restrict u5, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float a = g0[k], b = g1[k], c = g2[k];
    u0[k] = 0.25f * a;
    u1[k] = -(a + b + c) / 6.0f;
    u2[k] = -(a - b + c) / 6.0f;
    u3[k] = (0.25f * a + 0.5f * b + c) / 6.0f;
    u4[k] = (0.25f * a - 0.5f * b + c) / 6.0f;
    u5[k] = c;
  }
}

// (B^T d) for one column d0..d5 of an input patch.
inline void input_1d(const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
                     const float* __restrict d3, const float* __restrict d4, const float* __restrict d5,
                     float* __restrict o0, float* __restrict o1, float* __restrict o2, float* __restrict o3,
                     float* __restrict o4, float* __restrict o5, int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float a1 = d1[k], a2 = d2[k], a3 = d3[k], a4 = d4[k];
    o0[k] = 4.0f * d0[k] - 5.0f * a2 + a4;
    o1[k] = -4.0f * (a1 + a2) + (a3 + a4);
    o2[k] = 4.0f * (a1 - a2) + (a4 - a3);
    o3[k] = 2.0f * (a3 - a1) + (a4 - a2);
    o4[k] = 2.0f * (a1 - a3) + (a4 - a2);
    o5[k] = 4.0f * a1 - 5.0f * a3 + d5[k];
  }
}

// (A^T m) for one column m0..m5 of products.
inline void output_1d(const float* __restrict m0, const float* __restrict m1, const float* __restrict m2,
                      const float* __restrict m3, const float* __restrict m4, const float* __restrict m5,
                      float* __restrict o0, float* __restrict o1, float* __restrict o2, float* __restrict o3,
                      int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float s12 = m1[k] + m2[k], d12 = m1[k] - m2[k];
    const float s34 = m3[k] + m4[k], d34 = m3[k] - m4[k];
    o0[k] = m0[k] + s12 + s34;
    o1[k] = d12 + 2.0f * d34;
    o2[k] = s12 + 4.0f * s34;
    o3[k] = d12 + 8.0f * d34 + m5[k];
  }
}

// (A d) for one column d0..d3 of a tile's output gradient: A (6x4) is A^T above transposed.
inline void output_grad_1d(const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
                           const float* __restrict d3, float* __restrict o0, float* __restrict o1,
                           float* __restrict o2, float* __restrict o3, float* __restrict o4, float* __restrict o5,
                           int64_t n) {
  for (int64_t k = 0; k < n; ++k) {
    const float s02 = d0[k] + d2[k], s13 = d1[k] + d3[k];
    const float q02 = d0[k] + 4.0f * d2[k], q13 = 2.0f * d1[k] + 8.0f * d3[k];
    o0[k] = d0[k];
    o1[k] = s02 + s13;
    o2[k] = s02 - s13;
    o3[k] = q02 + q13;
    o4[k] = q02 - q13;
    o5[k] = d3[k];
  }
}

// (G^T m) for one column m0..m5 of summed products: G^T (3x6) is G above transposed. Adds into
// o0..o2 when accumulate.
inline void kernel_grad_1d(const float* __restrict m0, const float* __restrict m1, const float* __restrict m2,
                           const float* __restrict m3, const float* __restrict m4, const float* __restrict m5,
                           float* __restrict o0, float* __restrict o1, float* __restrict o2, int64_t n,
                           bool accumulate) {
  for (int64_t k = 0; k < n; ++k) {
    const float s12 = m1[k] + m2[k], d21 = m2[k] - m1[k];
    const float s34 = m3[k] + m4[k], d34 = m3[k] - m4[k];
    const float g0 = 0.25f * m0[k] + (s34 / 24.0f - s12 / 6.0f);
    const float g1 = d21 / 6.0f + d34 / 12.0f;
    const float g2 = (s34 - s12) / 6.0f + m5[k];
    o0[k] = accumulate ? o0[k] + g0 : g0;
    o1[k] = accumulate ? o1[k] + g1 : g1;
    o2[k] = accumulate ? o2[k] + g2 : g2;
  }
}

// U[xi][c][f] = (G g G^T)[xi] for the 3x3 kernel g = w[.., .., c, f].
void transform_kernel(int64_t C, int64_t F, const float* __restrict w, float* __restrict u) {
  const int64_t CF = C * F;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    alignas(64) float gg[kPatch * 3][kChannelBlock];  // G g: 6 rows of 3, each over a block of filters
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      const float* g = w + c * F + f0;  // g[(ky*3 + kx) * CF + k]
      for (int kx = 0; kx < 3; ++kx) {
        kernel_1d(g + (0 * 3 + kx) * CF, g + (1 * 3 + kx) * CF, g + (2 * 3 + kx) * CF, gg[0 * 3 + kx],
                  gg[1 * 3 + kx], gg[2 * 3 + kx], gg[3 * 3 + kx], gg[4 * 3 + kx], gg[5 * 3 + kx], fb);
      }
      for (int i = 0; i < kPatch; ++i) {  // (G g) G^T
        float* out = u + (i * kPatch) * CF + c * F + f0;
        kernel_1d(gg[i * 3 + 0], gg[i * 3 + 1], gg[i * 3 + 2], out, out + CF, out + 2 * CF, out + 3 * CF,
                  out + 4 * CF, out + 5 * CF, fb);
      }
    }
  }
}

// V[xi][t][c] = (B^T d B)[xi] for the 6x6 input patch d of tile t (zero outside the image).
void transform_input(const Conv2dShape& s, const Tiling& tl, const float* __restrict x, int64_t t0,
                     int64_t tiles, int64_t plane_tiles, float* __restrict v) {
  const int64_t C = s.C;
  const int64_t plane = plane_tiles * C;  // floats between consecutive xi
  const float* d[kProducts];  // the patch's pixels, read in place (kZeros outside the image)
  alignas(64) float r[kProducts][kChannelBlock];
  for (int64_t t = 0; t < tiles; ++t) {
    const TilePlace p = place_of(s, tl, t0 + t);
    const int64_t iy0 = p.oy0 - s.pad_top, ix0 = p.ox0 - s.pad_left;
    for (int64_t c0 = 0; c0 < C; c0 += kChannelBlock) {
      const int64_t cb = std::min(kChannelBlock, C - c0);
      for (int i = 0; i < kPatch; ++i) {
        const int64_t iy = iy0 + i;
        for (int j = 0; j < kPatch; ++j) {
          const int64_t ix = ix0 + j;
          const bool inside = iy >= 0 && iy < s.H && ix >= 0 && ix < s.W;
          d[i * kPatch + j] = inside ? x + ((p.n * s.H + iy) * s.W + ix) * C + c0 : winograd::kZeros;
        }
      }
      for (int j = 0; j < kPatch; ++j) {  // B^T d: combine rows
        input_1d(d[0 * kPatch + j], d[1 * kPatch + j], d[2 * kPatch + j], d[3 * kPatch + j], d[4 * kPatch + j],
                 d[5 * kPatch + j], r[0 * kPatch + j], r[1 * kPatch + j], r[2 * kPatch + j], r[3 * kPatch + j],
                 r[4 * kPatch + j], r[5 * kPatch + j], cb);
      }
      for (int i = 0; i < kPatch; ++i) {  // (B^T d) B: combine columns
        float* out = v + (i * kPatch) * plane + t * C + c0;
        const float* ri = r[i * kPatch];
        input_1d(ri, ri + kChannelBlock, ri + 2 * kChannelBlock, ri + 3 * kChannelBlock, ri + 4 * kChannelBlock,
                 ri + 5 * kChannelBlock, out, out + plane, out + 2 * plane, out + 3 * plane, out + 4 * plane,
                 out + 5 * plane, cb);
      }
    }
  }
}

// y (+)= A^T m A (+ b) for each tile's 6x6 block of products m = M[.][t][f], clipped to the
// output.
void transform_output(const Conv2dShape& s, const Tiling& tl, const float* __restrict m, int64_t t0,
                      int64_t tiles, const float* __restrict b, bool accumulate, float* __restrict y) {
  const int64_t F = s.F;
  const int64_t plane = tiles * F;
  alignas(64) float a[kOut * kPatch][kChannelBlock];  // A^T m: 4 rows of 6
  alignas(64) float o[kOut][kChannelBlock];           // one output row of the tile
  for (int64_t t = 0; t < tiles; ++t) {
    const TilePlace p = place_of(s, tl, t0 + t);
    float* yt = y + ((p.n * s.Ho + p.oy0) * s.Wo + p.ox0) * F;
    const float* mt = m + t * F;
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      for (int j = 0; j < kPatch; ++j) {  // A^T m: combine rows
        const float* q = mt + j * plane + f0;
        const int64_t row = kPatch * plane;  // from m[i][j] to m[i+1][j]
        output_1d(q, q + row, q + 2 * row, q + 3 * row, q + 4 * row, q + 5 * row, a[0 * kPatch + j],
                  a[1 * kPatch + j], a[2 * kPatch + j], a[3 * kPatch + j], fb);
      }
      const float* bias = b ? b + f0 : nullptr;
      for (int64_t i = 0; i < p.rows; ++i) {  // (A^T m) A: combine columns, then store
        const float* ai = a[i * kPatch];
        output_1d(ai, ai + kChannelBlock, ai + 2 * kChannelBlock, ai + 3 * kChannelBlock, ai + 4 * kChannelBlock,
                  ai + 5 * kChannelBlock, o[0], o[1], o[2], o[3], fb);
        for (int64_t j = 0; j < p.cols; ++j) {
          float* yij = yt + (i * s.Wo + j) * F + f0;
          const float* oj = o[j];
          for (int64_t k = 0; k < fb; ++k) {
            const float value = oj[k] + (bias ? bias[k] : 0.0f);
            yij[k] = accumulate ? yij[k] + value : value;
          }
        }
      }
    }
  }
}

// Z[xi][t][f] = (A dy A^T)[xi] for the 4x4 block dy of output gradients of tile t (zero where
// the tile overhangs the output). The forward pass is y = A^T (U .* V) A per tile, so the
// gradient of U is Z .* V summed over the tiles: for each xi a GEMM V[xi]^T Z[xi].
void transform_output_grad(const Conv2dShape& s, const Tiling& tl, const float* __restrict dy, int64_t t0,
                           int64_t tiles, int64_t plane_tiles, float* __restrict z) {
  const int64_t F = s.F;
  const int64_t plane = plane_tiles * F;
  const float* d[kOut * kOut];  // the tile's dy, read in place (kZeros outside the output)
  alignas(64) float r[kPatch * kOut][kChannelBlock];   // A dy: 6 rows of 4
  for (int64_t t = 0; t < tiles; ++t) {
    const TilePlace p = place_of(s, tl, t0 + t);
    const float* dt = dy + ((p.n * s.Ho + p.oy0) * s.Wo + p.ox0) * F;
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      for (int64_t i = 0; i < kOut; ++i)
        for (int64_t j = 0; j < kOut; ++j)
          d[i * kOut + j] = i < p.rows && j < p.cols ? dt + (i * s.Wo + j) * F + f0 : winograd::kZeros;
      for (int j = 0; j < kOut; ++j) {  // A dy: combine rows
        output_grad_1d(d[0 * kOut + j], d[1 * kOut + j], d[2 * kOut + j], d[3 * kOut + j], r[0 * kOut + j],
                       r[1 * kOut + j], r[2 * kOut + j], r[3 * kOut + j], r[4 * kOut + j], r[5 * kOut + j], fb);
      }
      for (int i = 0; i < kPatch; ++i) {  // (A dy) A^T: combine columns
        float* out = z + (i * kPatch) * plane + t * F + f0;
        const float* ri = r[i * kOut];
        output_grad_1d(ri, ri + kChannelBlock, ri + 2 * kChannelBlock, ri + 3 * kChannelBlock, out, out + plane,
                       out + 2 * plane, out + 3 * plane, out + 4 * plane, out + 5 * plane, fb);
      }
    }
  }
}

// dw[ky][kx][c][f] += (G^T M G)[ky][kx] for the summed products M[xi][c][f] (the gradient of
// U = G g G^T carried back to g).
void transform_kernel_grad(int64_t C, int64_t F, const float* __restrict m, float* __restrict dw) {
  const int64_t CF = C * F;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    alignas(64) float t[3 * kPatch][kChannelBlock];  // G^T M: 3 rows of 6
    for (int64_t f0 = 0; f0 < F; f0 += kChannelBlock) {
      const int64_t fb = std::min(kChannelBlock, F - f0);
      const float* mc = m + c * F + f0;  // mc[xi * CF + k]
      for (int j = 0; j < kPatch; ++j) {  // G^T M: combine rows
        const float* q = mc + j * CF;
        const int64_t row = kPatch * CF;
        kernel_grad_1d(q, q + row, q + 2 * row, q + 3 * row, q + 4 * row, q + 5 * row, t[0 * kPatch + j],
                       t[1 * kPatch + j], t[2 * kPatch + j], fb, /*accumulate=*/false);
      }
      for (int ky = 0; ky < 3; ++ky) {  // (G^T M) G: combine columns into dw
        const float* a = t[ky * kPatch];
        float* out = dw + (ky * 3) * CF + c * F + f0;
        kernel_grad_1d(a, a + kChannelBlock, a + 2 * kChannelBlock, a + 3 * kChannelBlock, a + 4 * kChannelBlock,
                       a + 5 * kChannelBlock, out, out + CF, out + 2 * CF, fb, /*accumulate=*/true);
      }
    }
  }
}

// y (+)= conv(x, w) + b through Winograd F(4x4, 3x3), for a 3x3 stride-1 shape with any padding.
void winograd4(const Conv2dShape& s, const float* x, const float* w, const float* b, bool accumulate,
               float* y) {
  const Tiling tl = winograd::tiling_of(s, kOut);
  Workspace u(kProducts * s.C * s.F);
  transform_kernel(s.C, s.F, w, u.data());
  winograd::forward_blocks(
      s, tl, kProducts, u.data(), [&](int64_t t0, int64_t tiles, float* v) { transform_input(s, tl, x, t0, tiles, tiles, v); },
      [&](const float* m, int64_t t0, int64_t tiles) { transform_output(s, tl, m, t0, tiles, b, accumulate, y); });
}

}  // namespace

void conv2d_forward_winograd4(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  winograd4(s, x, w, b, /*accumulate=*/false, y);
}

void conv2d_backward_input_winograd4(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                                     bool overwrite) {
  conv2d_backward_input_by_rotation(s, dy, w, dx, [overwrite](const Conv2dShape& t, const float* g, const float* r, float* out) {
    winograd4(t, g, r, nullptr, /*accumulate=*/!overwrite, out);
  });
}

void conv2d_backward_weight_winograd4(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db) {
  if (db) conv2d_add_bias_grad(s.rows(), s.F, dy, db);
  const Tiling tl = winograd::tiling_of(s, kOut);
  winograd::weight_grad_blocks(
      s, tl, kProducts, [&](int64_t t0, int64_t tiles, int64_t plane_tiles, float* v) {
        transform_input(s, tl, x, t0, tiles, plane_tiles, v);
      },
      [&](int64_t t0, int64_t tiles, int64_t plane_tiles, float* z) {
        transform_output_grad(s, tl, dy, t0, tiles, plane_tiles, z);
      },
      [&](const float* m) { transform_kernel_grad(s.C, s.F, m, dw); });
}

}  // namespace kiln
