// The GEMM forms of conv2d (im2col + one sgemm per chunk of output rows, the pointwise and
// transposed forms) and the entry points that run the form conv2d_choose picks.
//
// With NHWC input and a [KH,KW,C,F] kernel, the im2col matrix (rows (n,oy,ox), columns
// (ky,kx,c)) times the kernel viewed as [KH*KW*C, F] is exactly the NHWC output [N*Ho*Wo, F],
// so no transposes are needed anywhere. The batch is cut into chunks of rows only so that the
// column buffer stays in the last-level cache between im2col and sgemm; each chunk is still
// thousands of rows, so the sgemm stays large. The input gradient of a stride-1 conv can run
// as a forward conv of dy with the rotated kernel (conv2d_backward_input_transposed); the
// general form is sgemm + col2im.
//
// Threading: im2col/col2im/bias loops are OpenMP loops; cblas_sgemm is always called outside
// any parallel region because the OpenMP build of OpenBLAS runs on the same thread pool.
#include "core/kernels/conv2d/conv2d.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/kernels/conv2d/forms.h"
#include "core/kernels/same_padding.h"
#include "core/runtime/memory.h"

namespace kiln {
namespace {

// Column buffer budget per chunk: 8 MB, a quarter of this machine's 32 MB L3, so the buffer
// written by im2col is still cached when sgemm (or col2im) reads it.
constexpr int64_t kColsBudgetFloats = int64_t{2} << 20;

std::string shape4(int64_t a, int64_t b, int64_t c, int64_t d) {
  return "[" + std::to_string(a) + "," + std::to_string(b) + "," + std::to_string(c) + "," +
         std::to_string(d) + "]";
}

// Output cells and leading padding along one axis: Keras' "valid" (no padding), or "same"
// (core/kernels/same_padding.h).
SamePadding axis_geometry(int64_t in, int64_t k, int64_t stride, bool same) {
  return same ? kiln::same_padding(in, k, stride) : SamePadding{(in - k) / stride + 1, 0, 0};
}

// Outputs o whose window [o*stride - pad, o*stride - pad + k) holds input cell i.
struct OutputRange {
  int64_t first, last;  // inclusive; empty when first > last
};
OutputRange outputs_covering(int64_t i, int64_t pad, int64_t k, int64_t stride, int64_t out) {
  const int64_t lowest = i + pad - k + 1;  // o*stride must be >= this
  const int64_t first = lowest > 0 ? (lowest + stride - 1) / stride : 0;
  const int64_t last = std::min((i + pad) / stride, out - 1);
  return {first, last};
}

int blas_int(int64_t v) {
  assert(v >= 0 && v <= INT_MAX);
  return static_cast<int>(v);
}

// Rows of y get the bias, so that sgemm can accumulate onto them with beta = 1.
void fill_rows_with_bias(int64_t rows, int64_t F, const float* b, float* y) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * F;
    for (int64_t f = 0; f < F; ++f) yr[f] = b[f];
  }
}

}  // namespace

void conv2d_sum_by_filter(const float* __restrict dy, int64_t rows, int64_t F, double* __restrict sums) {
  const int64_t n = rows * F;
  if (64 % F != 0) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t f = 0; f < F; ++f) sums[f] += dy[r * F + f];
    return;
  }
  // F divides 64, so element i belongs to filter i mod F and lane l of the 64 sums below to
  // filter l mod F: the adds run as four independent vectors whatever F is, where one chain of
  // dependent double adds per filter left a few filters' bias gradient latency-bound. The float
  // sums go into the double ones every kFlush elements.
  constexpr int64_t kLanes = 64, kFlush = 64 * kLanes;
  for (int64_t begin = 0; begin < n; begin += kFlush) {
    const int64_t end = std::min(n, begin + kFlush);
    float acc[kLanes] = {};
    int64_t i = begin;
    for (; i + kLanes <= end; i += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) acc[l] += dy[i + l];
    for (; i + 16 <= end; i += 16)  // what is left of the block, 16 at a time, then one by one
      for (int64_t l = 0; l < 16; ++l) acc[(i - begin) % kLanes + l] += dy[i + l];
    for (; i < end; ++i) acc[(i - begin) % kLanes] += dy[i];
    // Halve the lanes down to F: lanes l and l + width belong to the same filter.
    for (int64_t width = kLanes / 2; width >= F; width /= 2)
      for (int64_t l = 0; l < width; ++l) acc[l] += acc[l + width];
    for (int64_t f = 0; f < F; ++f) sums[f] += acc[f];
  }
}

// db[f] += sum over rows of dy[r, f]; per-thread double partial sums keep large batches exact
// enough and the reduction race-free.
void conv2d_add_bias_grad(int64_t rows, int64_t F, const float* dy, float* db) {
  const int max_threads = omp_get_max_threads();
  std::vector<double> partial(static_cast<size_t>(max_threads) * F, 0.0);
#pragma omp parallel
  {
    // The static schedule's split, by hand: each thread sums one contiguous block of rows.
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
    conv2d_sum_by_filter(dy + r0 * F, r1 - r0, F, partial.data() + t * F);
  }
  for (int64_t f = 0; f < F; ++f) {
    double sum = 0.0;
    for (int t = 0; t < max_threads; ++t) sum += partial[static_cast<size_t>(t) * F + f];
    db[f] += static_cast<float>(sum);
  }
}

Conv2dShape conv2d_transposed_shape(const Conv2dShape& s) {
  assert(s.stride_h == 1 && s.stride_w == 1);
  Conv2dShape t = s;
  t.H = s.Ho;
  t.W = s.Wo;
  t.C = s.F;
  t.F = s.C;
  t.pad_top = s.KH - 1 - s.pad_top;
  t.pad_left = s.KW - 1 - s.pad_left;
  t.Ho = s.H;
  t.Wo = s.W;
  assert(t.pad_top >= 0 && t.pad_left >= 0);
  return t;
}

void conv2d_rotate_kernel(const Conv2dShape& s, const float* w, float* rotated) {
  const int64_t C = s.C, F = s.F, taps = s.KH * s.KW;
#pragma omp parallel for schedule(static)
  for (int64_t tap = 0; tap < taps; ++tap) {
    const float* src = w + (taps - 1 - tap) * C * F;
    float* dst = rotated + tap * F * C;
    for (int64_t f = 0; f < F; ++f)
      for (int64_t c = 0; c < C; ++c) dst[f * C + c] = src[c * F + f];
  }
}

Conv2dShape Conv2dShape::make(int64_t N, int64_t H, int64_t W, int64_t C, int64_t KH, int64_t KW,
                              int64_t F, int64_t stride, bool same_padding) {
  if (N <= 0 || H <= 0 || W <= 0 || C <= 0 || KH <= 0 || KW <= 0 || F <= 0 || stride <= 0) {
    throw std::invalid_argument("conv2d: sizes must be positive, got input " +
                                shape4(N, H, W, C) + ", kernel " + shape4(KH, KW, C, F) +
                                ", stride " + std::to_string(stride));
  }
  if (!same_padding && (H < KH || W < KW)) {
    throw std::invalid_argument("conv2d: input " + shape4(N, H, W, C) +
                                " is smaller than kernel " + std::to_string(KH) + "x" +
                                std::to_string(KW) + " with padding valid");
  }
  Conv2dShape s{};
  s.N = N;
  s.H = H;
  s.W = W;
  s.C = C;
  s.KH = KH;
  s.KW = KW;
  s.F = F;
  s.stride_h = stride;
  s.stride_w = stride;
  const SamePadding rows = axis_geometry(H, KH, stride, same_padding);
  const SamePadding cols = axis_geometry(W, KW, stride, same_padding);
  s.Ho = rows.out;
  s.Wo = cols.out;
  s.pad_top = rows.before;
  s.pad_left = cols.before;
  if (s.rows() > INT_MAX || s.cols() > INT_MAX || N * H * W * C > INT_MAX) {
    throw std::invalid_argument("conv2d: input " + shape4(N, H, W, C) + " with kernel " +
                                shape4(KH, KW, C, F) + " exceeds the 2^31 element limit of BLAS");
  }
  return s;
}

int64_t conv2d_chunk_rows(const Conv2dShape& s) {
  const int64_t M = s.rows();
  const int64_t K = s.cols();
  int64_t max_rows = std::max<int64_t>(kColsBudgetFloats / K, 1);
  if (max_rows >= M) return M;
  // Whole images per chunk where possible (whole output rows otherwise), then even chunks so
  // the last one is not a small, slow sgemm.
  const int64_t per_image = s.Ho * s.Wo;
  const int64_t unit = per_image <= max_rows ? per_image : (s.Wo <= max_rows ? s.Wo : 1);
  max_rows = max_rows / unit * unit;
  const int64_t chunks = (M + max_rows - 1) / max_rows;
  const int64_t even = (M + chunks - 1) / chunks;
  return (even + unit - 1) / unit * unit;
}

namespace {

// Short runs (a kernel row of a 1- or 4-channel input is 3 or 12 floats) are cheaper as an
// inline loop than as a call to memcpy/memset.
inline void copy_floats(float* __restrict dst, const float* __restrict src, int64_t count) {
  if (count <= 16) {
    for (int64_t i = 0; i < count; ++i) dst[i] = src[i];
  } else {
    std::memcpy(dst, src, sizeof(float) * count);
  }
}
inline void zero_floats(float* dst, int64_t count) {
  if (count <= 16) {
    for (int64_t i = 0; i < count; ++i) dst[i] = 0.0f;
  } else {
    std::memset(dst, 0, sizeof(float) * count);
  }
}

}  // namespace

namespace {

// One im2col row range. WR is the window row width KW * C when it is one of the small
// constants of thin 3x3 layers (3 for 1 channel, 12 for 4, 24 for 8), else 0: with
// it known at compile time, the copy of an unclipped window row is a few vector moves instead
// of a call to memcpy. (GCC would also turn the short loops back into memcpy/memset calls,
// hence the attribute.)
#if defined(__GNUC__) && !defined(__clang__)
#define KILN_NO_MEMCPY_IDIOM __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define KILN_NO_MEMCPY_IDIOM
#endif

template <int64_t WR>
KILN_NO_MEMCPY_IDIOM void im2col_range(const Conv2dShape& s, const float* __restrict x, int64_t begin, int64_t end,
                  int64_t row_begin, float* __restrict cols) {
  const int64_t K = s.cols();
  const int64_t C = s.C;
  const int64_t per_image = s.Ho * s.Wo;
  const int64_t window_row = WR > 0 ? WR : s.KW * C;  // floats per kernel row (ky)
  int64_t n = begin / per_image;
  int64_t oy = (begin % per_image) / s.Wo;
  int64_t ox = begin % s.Wo;
  for (int64_t r = begin; r < end; ++r) {
    float* dst = cols + (r - row_begin) * K;
    const int64_t iy0 = oy * s.stride_h - s.pad_top;
    const int64_t ix0 = ox * s.stride_w - s.pad_left;
    // Kernel columns kx in [kx_lo, kx_hi) land inside the image; their pixels are adjacent
    // in x, so each kernel row is one contiguous copy of (kx_hi - kx_lo) * C floats.
    const int64_t kx_lo = std::clamp<int64_t>(-ix0, 0, s.KW);
    const int64_t kx_hi = std::clamp<int64_t>(s.W - ix0, kx_lo, s.KW);
    const bool whole = kx_lo == 0 && kx_hi == s.KW;
    for (int64_t ky = 0; ky < s.KH; ++ky) {
      float* row = dst + ky * window_row;
      const int64_t iy = iy0 + ky;
      if (iy < 0 || iy >= s.H) {
        zero_floats(row, window_row);
        continue;
      }
      const float* src = x + ((n * s.H + iy) * s.W + ix0) * C;
      if (WR > 0 && whole) {
        for (int64_t i = 0; i < WR; ++i) row[i] = src[i];
        continue;
      }
      if (kx_lo > 0) zero_floats(row, kx_lo * C);
      if (kx_hi > kx_lo) copy_floats(row + kx_lo * C, src + kx_lo * C, (kx_hi - kx_lo) * C);
      if (kx_hi < s.KW) zero_floats(row + kx_hi * C, (s.KW - kx_hi) * C);
    }
    if (++ox == s.Wo) {
      ox = 0;
      if (++oy == s.Ho) {
        oy = 0;
        ++n;
      }
    }
  }
}

}  // namespace

void im2col(const Conv2dShape& s, const float* x, int64_t row_begin, int64_t row_end,
            float* cols) {
  const int64_t rows = row_end - row_begin;
  const int64_t window_row = s.KW * s.C;
#pragma omp parallel
  {
    // Each thread takes one contiguous range of rows and walks (n, oy, ox) incrementally:
    // no divisions per row.
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t begin = row_begin + rows * t / threads, end = row_begin + rows * (t + 1) / threads;
    switch (window_row) {
      case 3: im2col_range<3>(s, x, begin, end, row_begin, cols); break;
      case 12: im2col_range<12>(s, x, begin, end, row_begin, cols); break;
      case 24: im2col_range<24>(s, x, begin, end, row_begin, cols); break;
      default: im2col_range<0>(s, x, begin, end, row_begin, cols); break;
    }
  }
}

// Written as a gather over input pixels (each thread owns whole input rows (n, iy) and sums
// every column entry that maps onto them), so it is race-free and parallel even for batch 1.
void col2im(const Conv2dShape& s, const float* dcols, int64_t row_begin, int64_t row_end,
            float* dx) {
  if (row_end <= row_begin) return;
  const int64_t K = s.cols();
  const int64_t C = s.C;
  const int64_t per_image = s.Ho * s.Wo;
  const int64_t n_first = row_begin / per_image;
  const int64_t n_last = (row_end - 1) / per_image;
  const int64_t input_rows = (n_last - n_first + 1) * s.H;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < input_rows; ++t) {
    const int64_t n = n_first + t / s.H;
    const int64_t iy = t % s.H;
    const OutputRange oys = outputs_covering(iy, s.pad_top, s.KH, s.stride_h, s.Ho);
    if (oys.first > oys.last) continue;
    const int64_t r_lo = (n * s.Ho + oys.first) * s.Wo;
    const int64_t r_hi = (n * s.Ho + oys.last + 1) * s.Wo;
    if (r_hi <= row_begin || r_lo >= row_end) continue;
    for (int64_t ix = 0; ix < s.W; ++ix) {
      float* d = dx + ((n * s.H + iy) * s.W + ix) * C;
      const OutputRange oxs = outputs_covering(ix, s.pad_left, s.KW, s.stride_w, s.Wo);
      for (int64_t oy = oys.first; oy <= oys.last; ++oy) {
        const int64_t ky = iy + s.pad_top - oy * s.stride_h;
        for (int64_t ox = oxs.first; ox <= oxs.last; ++ox) {
          const int64_t r = (n * s.Ho + oy) * s.Wo + ox;
          if (r < row_begin || r >= row_end) continue;
          const int64_t kx = ix + s.pad_left - ox * s.stride_w;
          const float* src = dcols + (r - row_begin) * K + (ky * s.KW + kx) * C;
          for (int64_t c = 0; c < C; ++c) d[c] += src[c];
        }
      }
    }
  }
}

namespace {

[[noreturn]] void form_does_not_apply(Conv2dForm form, Conv2dPass pass, const Conv2dShape& s) {
  throw std::invalid_argument(std::string("conv2d: the ") + conv2d_form_name(form) + " form cannot run the " +
                              conv2d_pass_name(pass) + " pass of a " + std::to_string(s.KH) + "x" +
                              std::to_string(s.KW) + " stride " + std::to_string(s.stride_h) +
                              " convolution on " + shape4(s.N, s.H, s.W, s.C));
}

}  // namespace

void conv2d_forward_as(Conv2dForm form, const Conv2dShape& s, const float* x, const float* w,
                       const float* b, float* y) {
  if (!conv2d_form_applies(form, Conv2dPass::kForward, s)) form_does_not_apply(form, Conv2dPass::kForward, s);
  switch (form) {
    case Conv2dForm::kIm2col: return conv2d_forward_im2col(s, x, w, b, y);
    case Conv2dForm::kPointwise: return conv2d_forward_pointwise(s, x, w, b, y);
    case Conv2dForm::kDirect: return conv2d_forward_direct(s, x, w, b, y);
    case Conv2dForm::kWinograd: return conv2d_forward_winograd(s, x, w, b, y);
    case Conv2dForm::kWinograd4: return conv2d_forward_winograd4(s, x, w, b, y);
    case Conv2dForm::kTransposed: break;
  }
  form_does_not_apply(form, Conv2dPass::kForward, s);
}

void conv2d_backward_input_as(Conv2dForm form, const Conv2dShape& s, const float* dy,
                              const float* w, float* dx) {
  if (!conv2d_form_applies(form, Conv2dPass::kInputGrad, s)) form_does_not_apply(form, Conv2dPass::kInputGrad, s);
  switch (form) {
    case Conv2dForm::kIm2col: return conv2d_backward_input_im2col(s, dy, w, dx);
    case Conv2dForm::kPointwise: return conv2d_backward_input_pointwise(s, dy, w, dx);
    case Conv2dForm::kTransposed: return conv2d_backward_input_transposed(s, dy, w, dx);
    case Conv2dForm::kDirect: return conv2d_backward_input_direct(s, dy, w, dx);
    case Conv2dForm::kWinograd: return conv2d_backward_input_winograd(s, dy, w, dx);
    case Conv2dForm::kWinograd4: return conv2d_backward_input_winograd4(s, dy, w, dx);
  }
}

void conv2d_backward_weight_as(Conv2dForm form, const Conv2dShape& s, const float* x,
                               const float* dy, float* dw, float* db) {
  if (!conv2d_form_applies(form, Conv2dPass::kWeightGrad, s)) form_does_not_apply(form, Conv2dPass::kWeightGrad, s);
  switch (form) {
    case Conv2dForm::kIm2col: return conv2d_backward_weight_im2col(s, x, dy, dw, db);
    case Conv2dForm::kPointwise: return conv2d_backward_weight_pointwise(s, x, dy, dw, db);
    case Conv2dForm::kDirect: return conv2d_backward_weight_direct(s, x, dy, dw, db);
    case Conv2dForm::kWinograd: return conv2d_backward_weight_winograd(s, x, dy, dw, db);
    case Conv2dForm::kWinograd4: return conv2d_backward_weight_winograd4(s, x, dy, dw, db);
    case Conv2dForm::kTransposed: break;
  }
  form_does_not_apply(form, Conv2dPass::kWeightGrad, s);
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  conv2d_forward_as(conv2d_choose(Conv2dPass::kForward, s), s, x, w, b, y);
}

void conv2d_backward_input(const Conv2dShape& s, const float* dy, const float* w, float* dx, bool overwrite) {
  const Conv2dForm form = conv2d_choose(Conv2dPass::kInputGrad, s);
  if (overwrite && form == Conv2dForm::kWinograd) return conv2d_backward_input_winograd(s, dy, w, dx, true);
  if (overwrite && form == Conv2dForm::kWinograd4) return conv2d_backward_input_winograd4(s, dy, w, dx, true);
  if (overwrite) std::fill_n(dx, s.N * s.H * s.W * s.C, 0.0f);
  conv2d_backward_input_as(form, s, dy, w, dx);
}

void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                            float* db) {
  conv2d_backward_weight_as(conv2d_choose(Conv2dPass::kWeightGrad, s), s, x, dy, dw, db);
}

// x viewed as [N*H*W, C] is already the im2col matrix.
void conv2d_forward_pointwise(const Conv2dShape& s, const float* x, const float* w, const float* b,
                              float* y) {
  const int64_t M = s.rows(), K = s.cols(), F = s.F;
  if (b) fill_rows_with_bias(M, F, b, y);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_int(M), blas_int(F), blas_int(K),
              1.0f, x, blas_int(K), w, blas_int(F), b ? 1.0f : 0.0f, y, blas_int(F));
}

namespace {

// y = im2col(x) * w (+ b), or with accumulate (b null) y += im2col(x) * w, one sgemm per chunk.
void im2col_sgemm(const Conv2dShape& s, const float* x, const float* w, const float* b, bool accumulate,
                  float* y) {
  const int64_t M = s.rows();
  const int64_t K = s.cols();
  const int64_t F = s.F;
  const float beta = b || accumulate ? 1.0f : 0.0f;
  const int64_t chunk = conv2d_chunk_rows(s);
  Workspace cols(chunk * K);
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    im2col(s, x, r0, r0 + rows, cols.data());
    if (b) fill_rows_with_bias(rows, F, b, y + r0 * F);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blas_int(rows), blas_int(F),
                blas_int(K), 1.0f, cols.data(), blas_int(K), w, blas_int(F), beta, y + r0 * F,
                blas_int(F));
  }
}

}  // namespace

void conv2d_forward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* b,
                           float* y) {
  im2col_sgemm(s, x, w, b, /*accumulate=*/false, y);
}

void conv2d_backward_input_pointwise(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const int64_t M = s.rows(), K = s.cols(), F = s.F;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(M), blas_int(K), blas_int(F),
              1.0f, dy, blas_int(F), w, blas_int(F), 1.0f, dx, blas_int(K));
}

// For stride 1 the input gradient is itself a convolution: dy correlated with the kernel
// rotated by 180 degrees, C and F swapped, and "full" padding (KH-1-pad before). Run that way
// it is im2col + an sgemm with the long inner dimension KH*KW*F that accumulates straight
// into dx, instead of a thin sgemm (inner dimension F) writing a KH*KW-times larger buffer
// that col2im then has to scatter.
void conv2d_backward_input_transposed(const Conv2dShape& s, const float* dy, const float* w,
                                      float* dx) {
  conv2d_backward_input_by_rotation(s, dy, w, dx, [](const Conv2dShape& t, const float* g, const float* r, float* out) {
    im2col_sgemm(t, g, r, nullptr, /*accumulate=*/true, out);
  });
}

void conv2d_backward_input_im2col(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  const int64_t M = s.rows();
  const int64_t K = s.cols();
  const int64_t F = s.F;
  const int64_t chunk = conv2d_chunk_rows(s);
  Workspace dcols(chunk * K);
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(rows), blas_int(K),
                blas_int(F), 1.0f, dy + r0 * F, blas_int(F), w, blas_int(F), 0.0f, dcols.data(),
                blas_int(K));
    col2im(s, dcols.data(), r0, r0 + rows, dx);
  }
}

void conv2d_backward_weight_pointwise(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                                      float* db) {
  const int64_t M = s.rows(), K = s.cols(), F = s.F;
  if (db) conv2d_add_bias_grad(M, F, dy, db);
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blas_int(K), blas_int(F), blas_int(M),
              1.0f, x, blas_int(K), dy, blas_int(F), 1.0f, dw, blas_int(F));
}

void conv2d_backward_weight_im2col(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                                   float* db) {
  const int64_t M = s.rows();
  const int64_t K = s.cols();
  const int64_t F = s.F;
  if (db) conv2d_add_bias_grad(M, F, dy, db);
  const int64_t chunk = conv2d_chunk_rows(s);
  Workspace cols(chunk * K);
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t rows = std::min(chunk, M - r0);
    im2col(s, x, r0, r0 + rows, cols.data());
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blas_int(K), blas_int(F),
                blas_int(rows), 1.0f, cols.data(), blas_int(K), dy + r0 * F, blas_int(F), 1.0f,
                dw, blas_int(F));
  }
}

}  // namespace kiln
