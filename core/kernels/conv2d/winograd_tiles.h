// Internal to the Winograd forms (winograd.cpp: F(2x2, 3x3); winograd4.cpp: F(4x4, 3x3)): how
// a layer's output is cut into square tiles, how the tiles are grouped into per-thread blocks,
// and the block loops of the forward pass and the weight gradient. A form supplies its tile side, its number of
// element-wise products per tile (16 or 36) and its transforms.
#pragma once

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>

#include "core/kernels/conv2d/conv2d.h"
#include "core/runtime/cpu.h"
#include "core/runtime/memory.h"

namespace kiln::winograd {

// Floats that V and M of one thread's block of tiles may take: half of a core's L2 cache, so
// that the block stays there between its transforms and its GEMMs, the other half left for the
// slice of U and OpenBLAS' packed panels (1 MB where the size is not known). On an Intel Xeon
// with 2 MB of L2 per core this was the best of 256 KB to 4 MB: a task2 training step 28.6 ->
// 25.0 ms at 2 threads against the 4 MB blocks used before.
inline int64_t tile_floats_budget() {
  static const int64_t floats = [] {
    const int64_t l2 = cpu_l2_cache_bytes();
    return l2 > 0 ? std::clamp<int64_t>(l2 / 2 / int64_t{sizeof(float)}, int64_t{1} << 14, int64_t{1} << 20)
                  : int64_t{1} << 18;
  }();
  return floats;
}
constexpr int64_t kMaxBlockTiles = 256;
// Tiles a block has at least (its GEMMs' rows in the forward pass, their inner dimension in the
// weight gradient), even where that passes the cache budget: with fewer, OpenBLAS' kernel runs
// far below its peak (task3's 8x8 layer with 256 channels, 70 images, F(4x4) forward on this
// Intel Xeon: 16 tiles a block 13.1 ms, 48 tiles 10.1 ms).
constexpr int64_t kMinBlockTiles = 48;
constexpr int64_t kChannelBlock = 64;  // channels / filters a transform step keeps in registers

// What a transform reads for a pixel outside the image (or a tile's overhang): kChannelBlock zeros.
alignas(64) inline constexpr float kZeros[kChannelBlock] = {};

// side x side output tiles over the Ho x Wo output of every image, the last ones clipped.
struct Tiling {
  int64_t side, rows, cols, per_image, total;  // tiles per output column, per row, per image, in all
};
inline Tiling tiling_of(const Conv2dShape& s, int64_t side) {
  Tiling tl{};
  tl.side = side;
  tl.rows = (s.Ho + side - 1) / side;
  tl.cols = (s.Wo + side - 1) / side;
  tl.per_image = tl.rows * tl.cols;
  tl.total = s.N * tl.per_image;
  return tl;
}

// Where tile `tile` sits: its image, its top-left output (oy0, ox0), and how many of its output
// rows and columns lie inside the output (side, except in the last tiles).
struct TilePlace {
  int64_t n, oy0, ox0, rows, cols;
};
inline TilePlace place_of(const Conv2dShape& s, const Tiling& tl, int64_t tile) {
  TilePlace p{};
  p.n = tile / tl.per_image;
  p.oy0 = tl.side * ((tile % tl.per_image) / tl.cols);
  p.ox0 = tl.side * (tile % tl.cols);
  p.rows = std::min(tl.side, s.Ho - p.oy0);
  p.cols = std::min(tl.side, s.Wo - p.ox0);
  return p;
}

// Tile blocks: as large as the per-thread budget allows (floats per tile: `per_tile`), at
// least one per thread, a multiple of the thread count.
struct Blocks {
  int64_t count, size;
};
inline Blocks tile_blocks(int64_t total, int64_t per_tile, int threads) {
  const int64_t cap = std::clamp<int64_t>(tile_floats_budget() / per_tile, kMinBlockTiles, kMaxBlockTiles);
  int64_t count = std::max<int64_t>((total + cap - 1) / cap, threads);
  count = (count + threads - 1) / threads * threads;
  return {count, (total + count - 1) / count};
}

// The forward pass over transformed kernels u ([products][C][F]): each thread takes whole
// blocks of tiles and runs transform_input(t0, tiles, v) -> V [products][tiles][C], one
// single-threaded sgemm per product M = V U, and transform_output(m, t0, tiles) on its block, so
// the block stays in that core's cache. (OpenBLAS' OpenMP build runs an sgemm called inside a
// parallel region on the calling thread.)
template <class TransformInput, class TransformOutput>
void forward_blocks(const Conv2dShape& s, const Tiling& tl, int64_t products, const float* u,
                    TransformInput transform_input, TransformOutput transform_output) {
  const int64_t C = s.C, F = s.F;
  const int threads = omp_get_max_threads();
  const Blocks bl = tile_blocks(tl.total, products * (C + F), threads);
  const int64_t per_thread = products * bl.size * (C + F);
  Workspace scratch(per_thread * threads);
#pragma omp parallel for schedule(static, 1)
  for (int64_t bi = 0; bi < bl.count; ++bi) {
    const int64_t t0 = bi * bl.size;
    const int64_t tiles = std::min(bl.size, tl.total - t0);
    if (tiles <= 0) continue;
    float* v = scratch.data() + per_thread * omp_get_thread_num();
    float* m = v + products * bl.size * C;
    transform_input(t0, tiles, v);
    for (int64_t xi = 0; xi < products; ++xi) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(tiles), static_cast<int>(F),
                  static_cast<int>(C), 1.0f, v + xi * tiles * C, static_cast<int>(C), u + xi * C * F,
                  static_cast<int>(F), 0.0f, m + xi * tiles * F, static_cast<int>(F));
    }
    transform_output(m, t0, tiles);
  }
}

// The weight gradient's block loop. The sums over the tiles, M[xi] (C x F) += V[xi]^T Z[xi],
// are one set shared by all threads: the threads transform each block of tiles together
// (transform_input(t0, tiles, plane_tiles, v) -> V [products][plane_tiles][C], and
// transform_output_grad likewise -> Z [products][plane_tiles][F], each thread a share of the
// block's tiles), then split the block's GEMMs by product, so each M[xi] has one writer. The
// form that gave each thread its own blocks and its own M (products x C x F, 2.4 MB for F(4x4)
// on 128 channels) spent more time zeroing and adding those copies than in the GEMMs on small
// batches: two threads were slower than one. transform_kernel_grad(m) then carries the sums
// back through the kernel transform.
template <class TransformInput, class TransformOutputGrad, class TransformKernelGrad>
void weight_grad_blocks(const Conv2dShape& s, const Tiling& tl, int64_t products,
                        TransformInput transform_input, TransformOutputGrad transform_output_grad,
                        TransformKernelGrad transform_kernel_grad) {
  const int64_t C = s.C, F = s.F;
  const int threads = omp_get_max_threads();
  // One block at a time for all threads: the budget is the threads' together.
  const int64_t cap = std::clamp<int64_t>(tile_floats_budget() * threads / (products * (C + F)), kMinBlockTiles,
                                          kMaxBlockTiles * threads);
  const int64_t count = (tl.total + cap - 1) / cap;
  const int64_t size = (tl.total + count - 1) / count;
  Workspace scratch(products * (size * (C + F) + C * F));
  float* v = scratch.data();
  float* z = v + products * size * C;
  float* m = z + products * size * F;
#pragma omp parallel
  {
    const int64_t nt = omp_get_num_threads(), me = omp_get_thread_num();
    for (int64_t bi = 0; bi < count; ++bi) {
      const int64_t t0 = bi * size;
      const int64_t tiles = std::min(size, tl.total - t0);
      const int64_t a = tiles * me / nt, b = tiles * (me + 1) / nt;
      if (b > a) {
        transform_input(t0 + a, b - a, tiles, v + a * C);
        transform_output_grad(t0 + a, b - a, tiles, z + a * F);
      }
#pragma omp barrier
      // The first block writes M (beta 0), the others add to it.
#pragma omp for schedule(static)
      for (int64_t xi = 0; xi < products; ++xi) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(C), static_cast<int>(F),
                    static_cast<int>(tiles), 1.0f, v + xi * tiles * C, static_cast<int>(C), z + xi * tiles * F,
                    static_cast<int>(F), bi == 0 ? 0.0f : 1.0f, m + xi * C * F, static_cast<int>(F));
      }
    }
  }
  transform_kernel_grad(m);
}

}  // namespace kiln::winograd
