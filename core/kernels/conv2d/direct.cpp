// Direct convolution for thin layers: no im2col matrix, no sgemm.
//
// Why: a 3x3 layer on 1-channel images with a few filters has an im2col matrix of only
// K = 9 columns but N*H*W rows. im2col writes that matrix (nine times the input), OpenBLAS
// reads and packs it again, and the sgemm then runs at a handful of output columns, a shape
// where its kernel is far below peak: three memory passes for very few FLOPs. Computed
// directly, input and output each cross memory once. With more filters the forward sgemm is
// wide enough to win again, the weight gradient later; with more channels im2col wins both.
// Where the line lies is in choose.cpp, measured by bench/bench_kernels.cpp (BM_Conv2dForm).
//
// Both kernels walk output rows (n, oy): the forward pass writes them, the weight gradient
// reads dy from them. Work is split over output rows with OpenMP; the weight gradient sums
// each thread's part in double and adds the threads' sums at the end, so the result does
// not depend on how rows were split up to float rounding of each row's sum.
#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "core/kernels/conv2d/forms.h"

namespace kiln {
namespace {

// Output columns ox whose input column ox*stride - pad + kx lies inside [0, W).
struct ColumnRange {
  int64_t lo, hi;  // [lo, hi)
};
ColumnRange columns_inside(const Conv2dShape& s, int64_t kx) {
  const int64_t shift = s.pad_left - kx;  // ix = ox*stride - shift
  const int64_t lo = shift > 0 ? (shift + s.stride_w - 1) / s.stride_w : 0;
  const int64_t hi = s.W - 1 + shift >= 0 ? std::min(s.Wo, (s.W - 1 + shift) / s.stride_w + 1) : 0;
  return {lo, std::max(lo, hi)};
}

// One output row: y[ox, f] = b[f] + sum over the window of x * w. FT > 0 is F known at
// compile time (the sums then live in registers); FT == 0 handles any F.
template <int64_t FT>
void forward_row(const Conv2dShape& s, const float* __restrict x, const float* __restrict w,
                 const float* __restrict b, int64_t n, int64_t oy, float* __restrict yrow) {
  const int64_t F = FT > 0 ? FT : s.F;
  const int64_t C = s.C;
  for (int64_t ox = 0; ox < s.Wo; ++ox)
    for (int64_t f = 0; f < F; ++f) yrow[ox * F + f] = b ? b[f] : 0.0f;
  for (int64_t ky = 0; ky < s.KH; ++ky) {
    const int64_t iy = oy * s.stride_h - s.pad_top + ky;
    if (iy < 0 || iy >= s.H) continue;
    const float* xrow = x + (n * s.H + iy) * s.W * C;
    for (int64_t kx = 0; kx < s.KW; ++kx) {
      const ColumnRange cr = columns_inside(s, kx);
      const float* wtap = w + (ky * s.KW + kx) * C * F;
      const float* xcol = xrow + (kx - s.pad_left) * C;
      for (int64_t ox = cr.lo; ox < cr.hi; ++ox) {
        const float* xp = xcol + ox * s.stride_w * C;
        float* yp = yrow + ox * F;
        if constexpr (FT > 0) {
          float acc[FT];
          for (int64_t f = 0; f < FT; ++f) acc[f] = yp[f];
          for (int64_t c = 0; c < C; ++c) {
            const float v = xp[c];
            const float* wc = wtap + c * FT;
            for (int64_t f = 0; f < FT; ++f) acc[f] += v * wc[f];
          }
          for (int64_t f = 0; f < FT; ++f) yp[f] = acc[f];
        } else {
          for (int64_t c = 0; c < C; ++c) {
            const float v = xp[c];
            const float* wc = wtap + c * F;
            for (int64_t f = 0; f < F; ++f) yp[f] += v * wc[f];
          }
        }
      }
    }
  }
}

// One output row's share of the weight gradient: for every tap (ky, kx, c) and filter f,
// dw[tap, f] += sum over ox of x[window pixel] * dy[ox, f], summed in float over the row and
// added to the thread's double sums.
template <int64_t FT>
void weight_grad_row(const Conv2dShape& s, const float* __restrict x, const float* __restrict dyrow,
                     int64_t n, int64_t oy, double* __restrict dw_sum) {
  const int64_t F = FT > 0 ? FT : s.F;
  const int64_t C = s.C;
  for (int64_t ky = 0; ky < s.KH; ++ky) {
    const int64_t iy = oy * s.stride_h - s.pad_top + ky;
    if (iy < 0 || iy >= s.H) continue;
    const float* xrow = x + (n * s.H + iy) * s.W * C;
    for (int64_t kx = 0; kx < s.KW; ++kx) {
      const ColumnRange cr = columns_inside(s, kx);
      const float* xcol = xrow + (kx - s.pad_left) * C;
      for (int64_t c = 0; c < C; ++c) {
        double* out = dw_sum + ((ky * s.KW + kx) * C + c) * F;
        if constexpr (FT > 0) {
          float acc[FT] = {};
          for (int64_t ox = cr.lo; ox < cr.hi; ++ox) {
            const float v = xcol[ox * s.stride_w * C + c];
            const float* d = dyrow + ox * FT;
            for (int64_t f = 0; f < FT; ++f) acc[f] += v * d[f];
          }
          for (int64_t f = 0; f < FT; ++f) out[f] += acc[f];
        } else {
          for (int64_t f = 0; f < F; ++f) {
            float acc = 0.0f;
            for (int64_t ox = cr.lo; ox < cr.hi; ++ox) acc += xcol[ox * s.stride_w * C + c] * dyrow[ox * F + f];
            out[f] += acc;
          }
        }
      }
    }
  }
}

// Stride 1: an NHWC output row is Wo*F contiguous floats, y[ox*F + f]. With each input value
// repeated F times (spread[c][j*F + f] = x[iy, j - pad_left, c], zero outside the image) and
// each tap's F weights tiled along the row (tiled[tap][ox*F + f] = w[tap, f]), a tap adds
// spread[c][i + kx*F] * tiled[tap][i] to y[i] for every i: unit-stride, full vectors, any F.
// Each block of 8 outputs keeps its sums in one register over all taps and is stored once.
//
// Spread input rows are kept per thread in a ring of KH slots tagged (n, iy), so consecutive
// output rows (the static schedule hands each thread a contiguous range) build each input row
// once, not KH times.
constexpr int64_t kMaxSpreadKernelRows = kConv2dDirectMaxKernelRows;

class SpreadRows {
 public:
  explicit SpreadRows(const Conv2dShape& s)
      : s_(s), len_((s.Wo + s.KW - 1) * s.F), data_(static_cast<size_t>(s.KH * s.C * len_)),
        tags_(static_cast<size_t>(s.KH), -1) {}
  int64_t channel_stride() const { return len_; }
  // The spread row (all channels) of input row iy of image n; iy must be inside the image.
  const float* get(const float* x, int64_t n, int64_t iy) {
    const int64_t slot = iy % s_.KH;
    float* rows = data_.data() + slot * s_.C * len_;
    const int64_t tag = n * s_.H + iy;
    if (tags_[static_cast<size_t>(slot)] == tag) return rows;
    tags_[static_cast<size_t>(slot)] = tag;
    const float* xrow = x + tag * s_.W * s_.C;
    switch (s_.F) {
      case 4: spread<4>(xrow, rows); break;
      case 8: spread<8>(xrow, rows); break;
      case 16: spread<16>(xrow, rows); break;
      default: spread<0>(xrow, rows); break;
    }
    return rows;
  }

 private:
  // Writes every channel's padded input row with each value repeated F times. FT > 0 is F known
  // at compile time: the copies of a value are then one vector store, where the runtime loop
  // over a few filters ran scalar and took a quarter of a task1 forward pass.
  template <int64_t FT>
  void spread(const float* __restrict xrow, float* __restrict rows) const {
    const int64_t C = s_.C, F = FT > 0 ? FT : s_.F;
    for (int64_t c = 0; c < C; ++c) {
      float* __restrict line = rows + c * len_;
      for (int64_t j = 0; j < s_.Wo + s_.KW - 1; ++j) {
        const int64_t ix = j - s_.pad_left;
        const float v = ix >= 0 && ix < s_.W ? xrow[ix * C + c] : 0.0f;
        for (int64_t f = 0; f < F; ++f) line[j * F + f] = v;
      }
    }
  }

  const Conv2dShape& s_;
  int64_t len_;
  std::vector<float> data_;
  std::vector<int64_t> tags_;
};

// kLanes floats as one vector (GCC/Clang vector extension), loaded and stored unaligned: 16
// (one AVX-512 register) where the build targets AVX-512, else 8 (one AVX register, or two SSE
// ones). Float8 serves what is left of a row after its whole 16-float vectors.
#ifdef __AVX512F__
constexpr int kLanes = 16;
#else
constexpr int kLanes = 8;
#endif
typedef float FloatV __attribute__((vector_size(4 * kLanes)));
typedef float Float8 __attribute__((vector_size(32)));
template <typename Vec = FloatV>
inline Vec loadv(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename Vec>
inline void storev(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }

// bias_row: the bias tiled along the row like the weights (zeros without bias); null to add
// the row's sums to what yrow holds (the input gradient run as a convolution).
void forward_row_spread(const Conv2dShape& s, const float* __restrict x, const float* __restrict tiled,
                        const float* bias_row, int64_t n, int64_t oy, SpreadRows& spread,
                        float* __restrict yrow) {
  const float* start = bias_row ? bias_row : yrow;
  const int64_t C = s.C, F = s.F;
  const int64_t row_len = s.Wo * F;
  const int64_t cs = spread.channel_stride();
  // Up to KH valid input rows for this output row.
  const float* in_rows[kMaxSpreadKernelRows];
  int64_t in_ky[kMaxSpreadKernelRows];
  int64_t valid = 0;
  for (int64_t ky = 0; ky < s.KH; ++ky) {
    const int64_t iy = oy - s.pad_top + ky;
    if (iy < 0 || iy >= s.H) continue;
    in_rows[valid] = spread.get(x, n, iy);
    in_ky[valid++] = ky;
  }
  // V vectors of L outputs at a time: V independent sums hide the add latency.
  auto blocks = [&]<typename Vec, int V>(int64_t i0) {
    constexpr int L = sizeof(Vec) / sizeof(float);
    Vec acc[V];
    for (int v = 0; v < V; ++v) acc[v] = loadv<Vec>(start + i0 + L * v);
    for (int64_t r = 0; r < valid; ++r)
      for (int64_t kx = 0; kx < s.KW; ++kx)
        for (int64_t c = 0; c < C; ++c) {
          const float* src = in_rows[r] + c * cs + kx * F + i0;
          const float* t = tiled + ((in_ky[r] * s.KW + kx) * C + c) * row_len + i0;
          for (int v = 0; v < V; ++v) acc[v] += loadv<Vec>(src + L * v) * loadv<Vec>(t + L * v);
        }
    for (int v = 0; v < V; ++v) storev(yrow + i0 + L * v, acc[v]);
  };
  int64_t i0 = 0;
  for (; i0 + 4 * kLanes <= row_len; i0 += 4 * kLanes) blocks.template operator()<FloatV, 4>(i0);
  // The last 1-3 vectors as one call, so their sums are independent too.
  switch ((row_len - i0) / kLanes) {
    case 3: blocks.template operator()<FloatV, 3>(i0); break;
    case 2: blocks.template operator()<FloatV, 2>(i0); break;
    case 1: blocks.template operator()<FloatV, 1>(i0); break;
    default: break;
  }
  i0 += (row_len - i0) / kLanes * kLanes;
  // With 16-float vectors, 8 more at once (task1's 14-pixel rows of 4 filters leave 8), then
  // one by one.
  if (kLanes > 8 && i0 + 8 <= row_len) {
    blocks.template operator()<Float8, 1>(i0);
    i0 += 8;
  }
  for (int64_t i = i0; i < row_len; ++i) {
    float acc = start[i];
    for (int64_t r = 0; r < valid; ++r)
      for (int64_t kx = 0; kx < s.KW; ++kx)
        for (int64_t c = 0; c < C; ++c)
          acc += in_rows[r][c * cs + kx * F + i] * tiled[((in_ky[r] * s.KW + kx) * C + c) * row_len + i];
    yrow[i] = acc;
  }
}

// Stride-1 weight gradient of one output row over spread input rows: for tap (ky, kx, c),
// dw[tap, f] = sum over i of spread[c][i + kx*F] * dy[i] for the lanes i = f (mod F) of the
// row. The products run as full vectors with four independent sums; F divides 8 (and so
// kLanes), so lane l of every vector belongs to filter l mod F. The four sums are added into
// the tap's vector of lane_sums ([taps][kLanes] floats), which SpreadLaneSums folds into the
// filters every few rows: folding per tap and row cost more than the row's products on task1's
// 14- and 28-pixel rows. The old form kept one short chain of F-wide sums per tap, which the
// add latency bounded at a few floats per cycle.
//
// With bias, the row's dy is summed into one more slot after the taps' (the bias gradient,
// whose double sums follow the taps' in dw_sum), folded with them.
void weight_grad_row_spread(const Conv2dShape& s, const float* x, const float* __restrict dyrow, int64_t n,
                            int64_t oy, SpreadRows& spread, bool bias, float* __restrict lane_sums,
                            double* __restrict dw_sum) {
  constexpr int V = 4;
  constexpr int64_t P = V * kLanes;
  const int64_t C = s.C, F = s.F;
  const int64_t row_len = s.Wo * F;
  const int64_t cs = spread.channel_stride();
  const int64_t full = row_len / P * P;
  const int64_t rem = (row_len - full) / kLanes;  // whole vectors after the last block, < V
  const int64_t tail = full + rem * kLanes;
  // Adds one slot's sum over the row: of src * dy for a tap, of dy alone for the bias.
  const auto add_row = [&](int64_t slot, const float* src, auto is_bias) {
    const auto term = [&](int64_t i) {
      if constexpr (decltype(is_bias)::value) return loadv(dyrow + i);
      else return loadv(src + i) * loadv(dyrow + i);
    };
    FloatV acc[V];
    for (int v = 0; v < V; ++v) acc[v] = FloatV{};
    for (int64_t i0 = 0; i0 < full; i0 += P)
      for (int v = 0; v < V; ++v) acc[v] += term(i0 + kLanes * v);
    for (int v = 0; v < rem; ++v) acc[v] += term(full + kLanes * v);
    for (int v = 1; v < V; ++v) acc[0] += acc[v];
    float* mine = lane_sums + slot * kLanes;
    storev(mine, loadv(mine) + acc[0]);
    double* out = dw_sum + slot * F;
    for (int64_t i = tail; i < row_len; ++i)
      out[i & (F - 1)] += decltype(is_bias)::value ? dyrow[i] : src[i] * dyrow[i];
  };
  if (bias) add_row(s.KH * s.KW * C, nullptr, std::true_type{});
  for (int64_t ky = 0; ky < s.KH; ++ky) {
    const int64_t iy = oy - s.pad_top + ky;
    if (iy < 0 || iy >= s.H) continue;
    const float* rows = spread.get(x, n, iy);
    for (int64_t kx = 0; kx < s.KW; ++kx)
      for (int64_t c = 0; c < C; ++c)
        add_row((ky * s.KW + kx) * C + c, rows + c * cs + kx * F, std::false_type{});
  }
}

// A thread's lane sums for weight_grad_row_spread, added into its double sums (halving the
// lanes down to F: lanes l and l + width hold the same filter) every kRows rows and at the end.
class SpreadLaneSums {
 public:
  static constexpr int kRows = 16;
  SpreadLaneSums(int64_t taps, int64_t F) : taps_(taps), F_(F), sums_(static_cast<size_t>(taps * kLanes), 0.0f) {}
  float* data() { return sums_.data(); }
  // Call after each row; folds every kRows rows.
  void row_done(double* dw_sum) {
    if (++rows_ == kRows) fold(dw_sum);
  }
  void fold(double* dw_sum) {
    for (int64_t tap = 0; tap < taps_; ++tap) {
      float* lanes = sums_.data() + tap * kLanes;
      for (int width = kLanes / 2; width >= F_; width /= 2)
        for (int l = 0; l < width; ++l) lanes[l] += lanes[l + width];
      for (int64_t f = 0; f < F_; ++f) dw_sum[tap * F_ + f] += lanes[f];
      std::fill(lanes, lanes + kLanes, 0.0f);
    }
    rows_ = 0;
  }

 private:
  int64_t taps_, F_;
  std::vector<float> sums_;
  int rows_ = 0;
};

// Whether weight_grad_row_spread serves this shape, else the row form is kept: with 16+ filters
// its F-wide sums are already several independent vectors, and the spread form's fold costs
// more than it saves. F must divide 8 (1, 2, 4 or 8 filters), so every vector of the row
// starts at filter 0.
bool spread_weight_grad_applies(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.KH <= kMaxSpreadKernelRows && 8 % s.F == 0;
}

bool spread_forward_applies(const Conv2dShape& s) {
  return s.stride_h == 1 && s.stride_w == 1 && s.KH <= kMaxSpreadKernelRows;
}

// y = conv(x, w) + b, or with accumulate (b must be null) y += conv(x, w).
template <int64_t FT>
void forward_all(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y,
                 bool accumulate = false) {
  const int64_t rows = s.N * s.Ho;
  if (spread_forward_applies(s)) {
    const int64_t row_len = s.Wo * s.F;
    std::vector<float> tiled(static_cast<size_t>(s.cols() * row_len)), bias_row(static_cast<size_t>(row_len));
    for (int64_t tap = 0; tap < s.cols(); ++tap)
      for (int64_t i = 0; i < row_len; ++i) tiled[tap * row_len + i] = w[tap * s.F + i % s.F];
    for (int64_t i = 0; i < row_len; ++i) bias_row[i] = b ? b[i % s.F] : 0.0f;
    const float* start = accumulate ? nullptr : bias_row.data();
#pragma omp parallel
    {
      SpreadRows spread(s);
#pragma omp for schedule(static)
      for (int64_t t = 0; t < rows; ++t)
        forward_row_spread(s, x, tiled.data(), start, t / s.Ho, t % s.Ho, spread, y + t * row_len);
    }
    return;
  }
  assert(!accumulate);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < rows; ++t) forward_row<FT>(s, x, w, b, t / s.Ho, t % s.Ho, y + t * s.Wo * s.F);
}

template <int64_t FT>
void weight_grad_all(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db) {
  const int64_t rows = s.N * s.Ho;
  const int64_t taps = s.KH * s.KW * s.C;
  const int64_t F = s.F;
  const int threads = omp_get_max_threads();
  // Each thread's sums start on their own 64-byte lines (plus one spare line), so two threads
  // never write the same cache line.
  const size_t stride = static_cast<size_t>(((taps + 1) * F + 7) / 8 * 8 + 8);
  std::vector<double> sums(static_cast<size_t>(threads) * stride, 0.0);
  const bool by_spread = spread_weight_grad_applies(s);
#pragma omp parallel
  {
    double* mine = sums.data() + static_cast<size_t>(omp_get_thread_num()) * stride;
    double* bias = mine + taps * F;
    std::optional<SpreadRows> spread;
    std::optional<SpreadLaneSums> lane_sums;
    if (by_spread) {
      spread.emplace(s);
      lane_sums.emplace(db ? taps + 1 : taps, F);  // + the bias slot
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < rows; ++t) {
      const float* dyrow = dy + t * s.Wo * F;
      if (by_spread) {
        weight_grad_row_spread(s, x, dyrow, t / s.Ho, t % s.Ho, *spread, db != nullptr, lane_sums->data(), mine);
        lane_sums->row_done(mine);
      } else {
        weight_grad_row<FT>(s, x, dyrow, t / s.Ho, t % s.Ho, mine);
        if (db) conv2d_sum_by_filter(dyrow, s.Wo, F, bias);
      }
    }
    if (lane_sums) lane_sums->fold(mine);
  }
  for (int64_t i = 0; i < taps * F; ++i) {
    double total = 0.0;
    for (int t = 0; t < threads; ++t) total += sums[static_cast<size_t>(t) * stride + i];
    dw[i] += static_cast<float>(total);
  }
  if (db) {
    for (int64_t f = 0; f < F; ++f) {
      double total = 0.0;
      for (int t = 0; t < threads; ++t) total += sums[static_cast<size_t>(t) * stride + taps * F + f];
      db[f] += static_cast<float>(total);
    }
  }
}

}  // namespace


namespace {

// Calls body.template operator()<FT>() with FT = F for the filter counts that get a
// compile-time instance, else FT = 0 (any F).
template <typename Body>
void with_filter_count(int64_t F, Body&& body) {
  switch (F) {
    case 4: body.template operator()<4>(); break;
    case 8: body.template operator()<8>(); break;
    case 16: body.template operator()<16>(); break;
    case 32: body.template operator()<32>(); break;
    case 64: body.template operator()<64>(); break;
    default: body.template operator()<0>(); break;
  }
}

}  // namespace

void conv2d_forward_direct(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y) {
  with_filter_count(s.F, [&]<int64_t FT>() { forward_all<FT>(s, x, w, b, y); });
}


void conv2d_backward_input_direct(const Conv2dShape& s, const float* dy, const float* w, float* dx) {
  conv2d_backward_input_by_rotation(s, dy, w, dx, [](const Conv2dShape& t, const float* g, const float* r, float* out) {
    assert(spread_forward_applies(t));
    with_filter_count(t.F, [&]<int64_t FT>() { forward_all<FT>(t, g, r, nullptr, out, true); });
  });
}

void conv2d_backward_weight_direct(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db) {
  with_filter_count(s.F, [&]<int64_t FT>() { weight_grad_all<FT>(s, x, dy, dw, db); });
}

}  // namespace kiln
