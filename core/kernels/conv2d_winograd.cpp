// Winograd F(2x2, 3x3) convolution for 3x3 stride-1 layers with many channels.
//
// Why: in the lab's Task 2 and Task 3 networks almost every FLOP is in 3x3 convolutions with
// 64-256 channels, and through im2col + sgemm they cost 2*9*C*F multiply-adds per output pixel.
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
// sum (the tests compare it with conv2d_naive's double sums at 1e-4 relative).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/kernels/conv2d.h"
#include "core/memory.h"

namespace kiln {
namespace {

constexpr int64_t kTileFloatsBudget = int64_t{1} << 20;  // per thread: V and M of one block, 4 MB
constexpr int64_t kMaxBlockTiles = 256;
constexpr int64_t kChannelBlock = 64;

// U[xi][c][f] = (G g G^T)[xi] for the 3x3 kernel g = w[.., .., c, f];
// G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
void transform_kernel(int64_t C, int64_t F, const float* __restrict w, float* __restrict u) {
  const int64_t CF = C * F;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t f = 0; f < F; ++f) {
      float g[3][3];
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) g[ky][kx] = w[(ky * 3 + kx) * CF + c * F + f];
      float gg[4][3];  // G g
      for (int kx = 0; kx < 3; ++kx) {
        gg[0][kx] = g[0][kx];
        gg[1][kx] = 0.5f * (g[0][kx] + g[1][kx] + g[2][kx]);
        gg[2][kx] = 0.5f * (g[0][kx] - g[1][kx] + g[2][kx]);
        gg[3][kx] = g[2][kx];
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        float* row = u + (i * 4) * CF + c * F + f;
        row[0 * CF] = gg[i][0];
        row[1 * CF] = 0.5f * (gg[i][0] + gg[i][1] + gg[i][2]);
        row[2 * CF] = 0.5f * (gg[i][0] - gg[i][1] + gg[i][2]);
        row[3 * CF] = gg[i][2];
      }
    }
  }
}

struct Tiling {
  int64_t rows, cols, per_image, total;  // tiles per output column, per row, per image, in all
};

// V[xi][t][c] = (B^T d B)[xi] for the 4x4 input patch d of tile t (zero outside the image);
// B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
void transform_input(const Conv2dShape& s, const Tiling& tl, const float* __restrict x, int64_t t0,
                     int64_t tiles, float* __restrict v) {
  const int64_t C = s.C;
  const int64_t plane = tiles * C;  // floats between consecutive xi
  alignas(64) float d[16][kChannelBlock];
  alignas(64) float r[16][kChannelBlock];
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t tile = t0 + t;
    const int64_t n = tile / tl.per_image;
    const int64_t ty = (tile % tl.per_image) / tl.cols, tx = tile % tl.cols;
    const int64_t iy0 = 2 * ty - s.pad_top, ix0 = 2 * tx - s.pad_left;
    for (int64_t c0 = 0; c0 < C; c0 += kChannelBlock) {
      const int64_t cb = std::min(kChannelBlock, C - c0);
      for (int i = 0; i < 4; ++i) {
        const int64_t iy = iy0 + i;
        for (int j = 0; j < 4; ++j) {
          const int64_t ix = ix0 + j;
          float* dst = d[i * 4 + j];
          if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) {
            for (int64_t k = 0; k < cb; ++k) dst[k] = 0.0f;
          } else {
            const float* src = x + ((n * s.H + iy) * s.W + ix) * C + c0;
            for (int64_t k = 0; k < cb; ++k) dst[k] = src[k];
          }
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
    const int64_t tile = t0 + t;
    const int64_t n = tile / tl.per_image;
    const int64_t ty = (tile % tl.per_image) / tl.cols, tx = tile % tl.cols;
    const int64_t oy0 = 2 * ty, ox0 = 2 * tx;
    const bool down = oy0 + 1 < s.Ho, right = ox0 + 1 < s.Wo;
    float* y00 = y + ((n * s.Ho + oy0) * s.Wo + ox0) * F;
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

// y (+)= conv(x, w) + b through Winograd, for a 3x3 stride-1 shape with any padding.
void winograd(const Conv2dShape& s, const float* x, const float* w, const float* b, bool accumulate,
              float* y) {
  const int64_t C = s.C, F = s.F;
  Tiling tl{};
  tl.rows = (s.Ho + 1) / 2;
  tl.cols = (s.Wo + 1) / 2;
  tl.per_image = tl.rows * tl.cols;
  tl.total = s.N * tl.per_image;

  Workspace u(16 * C * F);
  transform_kernel(C, F, w, u.data());

  const int threads = omp_get_max_threads();
  // Blocks of tiles: as large as the per-thread budget allows, and at least one per thread.
  const int64_t cap = std::clamp<int64_t>(kTileFloatsBudget / (16 * (C + F)), 16, kMaxBlockTiles);
  int64_t blocks = std::max<int64_t>((tl.total + cap - 1) / cap, threads);
  blocks = (blocks + threads - 1) / threads * threads;
  const int64_t block = (tl.total + blocks - 1) / blocks;
  const int64_t per_thread = 16 * block * (C + F);
  Workspace scratch(per_thread * threads);
  const float* uu = u.data();
#pragma omp parallel for schedule(static, 1)
  for (int64_t bi = 0; bi < blocks; ++bi) {
    const int64_t t0 = bi * block;
    const int64_t tiles = std::min(block, tl.total - t0);
    if (tiles <= 0) continue;
    float* v = scratch.data() + per_thread * omp_get_thread_num();
    float* m = v + 16 * block * C;
    transform_input(s, tl, x, t0, tiles, v);
    for (int64_t xi = 0; xi < 16; ++xi) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(tiles), static_cast<int>(F),
                  static_cast<int>(C), 1.0f, v + xi * tiles * C, static_cast<int>(C), uu + xi * C * F,
                  static_cast<int>(F), 0.0f, m + xi * tiles * F, static_cast<int>(F));
    }
    transform_output(s, tl, m, t0, tiles, b, accumulate, y);
  }
}

}  // namespace

bool conv2d_prefers_winograd(const Conv2dShape& s) {
  return s.KH == 3 && s.KW == 3 && s.stride_h == 1 && s.stride_w == 1 &&
         s.C >= kConv2dWinogradMinChannels && s.F >= kConv2dWinogradMinChannels;
}

void conv2d_forward_winograd(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  winograd(s, x, w, b, /*accumulate=*/false, y);
}

void conv2d_backward_input_winograd(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const Conv2dShape t = conv2d_transposed_shape(s);
  Workspace rotated(9 * s.C * s.F);
  conv2d_rotate_kernel(s, w, rotated.data());
  winograd(t, dy, rotated.data(), nullptr, /*accumulate=*/true, dx);
}

}  // namespace kiln
