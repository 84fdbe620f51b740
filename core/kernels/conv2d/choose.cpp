// The one table that picks a convolution form. The thresholds were set by the form
// benchmarks in bench/bench_kernels.cpp (BM_Conv2dForm, BM_Conv3x3Form), which time every form
// on the same shapes; rerun them after changing a kernel or moving to another CPU.
//
// Rules, first match wins (the direct and Winograd regions never overlap: Winograd needs 32+
// channels, the direct forms at most 8):
//
//   pass         form         when
//   forward,     winograd4x4  3x3, stride 1, C >= 32 and F >= 32, and F(4x4) saves at least 1536
//   input_grad                products per (c, f) pair: 16 * (2x2 tiles) - 36 * (4x4 tiles) over
//                             the N images, of the Ho x Wo output (of the H x W input for the
//                             input gradient); e.g. from 14 images of 7x7 or 8x8, 8 of 14x14,
//                             4 of 16x16, 2 of 28x28, 1 of 32x32
//   weight_grad  winograd4x4  3x3, stride 1, C >= 32 and F >= 32, and F(4x4) saves at least 448
//                             products per (c, f) pair over the Ho x Wo output: from 4 images of
//                             7x7 or 8x8, 3 of 14x14, 1 of 16x16
//   any          winograd     3x3, stride 1, C >= 32 and F >= 32
//   forward      direct       KH*KW*C <= 9 and F <= 16, or stride 1, KH*KW*C <= 36 and F <= 8
//   weight_grad  direct       KH*KW*C <= 9 and F <= 64, or stride 1, KH*KW*C <= 36 and F in {1,2,4,8}
//   input_grad   direct       stride 1, C <= 8 and KH*KW*F <= 72
//   any          pointwise    1x1, stride 1, no padding
//   input_grad   transposed   stride 1 and C >= 16
//   any          im2col       everything else
//
// F(4x4) against F(2x2), medians of BM_Conv3x3Form on Zen 5 with 2 threads: F(4x4) is
// 1.07-1.9x faster on every wide lab layer at the lab's batches (16 and 70 images), but slower
// where it saves few products, as its kernel transform (36 C F against 16 C F) and its GEMMs of
// a quarter of the rows are not paid back: 0.47x on one 8x8 image (112 products saved), 0.64x
// on one 14x14 (208), 0.72x on four 8x8 (448), 0.92-0.98x at 832-1040 (four or five 14x14,
// eight 8x8). At 1344-1456 (twelve 8x8, seven 14x14) it is 1.01-1.05x, from 1536 on faster in
// every run (fourteen 8x8: 1.09x, eight 14x14: 1.01x, sixteen: 1.07-1.2x). 14x14 images need
// more of them than 16x16: their 4x4 tiles overhang to 16x16, while F(2x2)'s fit exactly.
//
// The weight gradient, medians of 7 timings on Zen 5 at 1 and 2 threads, 128 channels unless
// said: F(4x4) against F(2x2) 0.89-0.94x on one 8x8 image (112 saved), 0.96-0.99x on one 14x14
// (208), from 448 on faster at both thread counts: 1.21-1.22x on four 8x8 images, 1.16-1.22x
// on one 16x16 (64 channels), 1.18-1.35x on four 8x8 with 32 channels, 1.16-1.48x on 8-14
// images of 8x8 and 4-8 of 14x14, 1.25-1.74x on the lab's layers at their batches.
#include "core/kernels/conv2d/choose.h"

#include "core/kernels/conv2d/forms.h"

namespace kiln {
namespace {

// Winograd trades 2.25x fewer GEMM FLOPs for transforms whose cost grows with C + F against
// the GEMM's C * F; below 32 channels the transforms are not paid back.
constexpr int64_t kWinogradMinChannels = 32;
// F(4x4, 3x3) needs fewer products than F(2x2) (36 per 4x4 block of outputs against 4 x 16),
// but its kernel transform costs 36 C F against 16 C F: it pays once it saves this many
// products per (c, f) pair in one call.
constexpr int64_t kWinograd4MinSavedProducts = 1536;
// The weight gradient's F(4x4) pays sooner: its transforms of x and dy cost about what F(2x2)'s
// do, and its threads share one set of sums (winograd_tiles.h), so only the kernel-gradient
// transform (36 C F) is extra.
constexpr int64_t kWinograd4WeightGradMinSavedProducts = 448;

// Direct loops beat im2col + sgemm where the im2col matrix is thin: its few columns make
// OpenBLAS run far below peak while im2col writes a matrix KH*KW times the input.
constexpr int64_t kDirectMaxColumns = 9;               // a 3x3 window on one channel
constexpr int64_t kDirectMaxForwardFilters = 16;       // beyond it the forward sgemm is wide enough
constexpr int64_t kDirectMaxWeightGradFilters = 64;
constexpr int64_t kDirectSmallMaxColumns = 36;         // stride 1: a 3x3 window on up to 4 channels
constexpr int64_t kDirectSmallMaxFilters = 8;
constexpr int64_t kDirectMaxInputGradChannels = 8;
constexpr int64_t kDirectMaxInputGradColumns = 72;     // the transposed window KH*KW*F

// The transposed form of the input gradient is a GEMM with only C output columns; below 16
// channels sgemm + col2im is faster.
constexpr int64_t kTransposedMinChannels = 16;

bool stride1(const Conv2dShape& s) { return s.stride_h == 1 && s.stride_w == 1; }

bool pointwise(const Conv2dShape& s) {
  return s.KH == 1 && s.KW == 1 && stride1(s) && s.pad_top == 0 && s.pad_left == 0;
}

bool winograd_pays(const Conv2dShape& s) {
  return s.KH == 3 && s.KW == 3 && stride1(s) && s.C >= kWinogradMinChannels &&
         s.F >= kWinogradMinChannels;
}

// Winograd shapes where F(4x4) beats F(2x2). The input gradient runs as a convolution whose
// output is the input, H x W.
bool winograd4_pays(Conv2dPass pass, const Conv2dShape& s) {
  const int64_t h = pass == Conv2dPass::kInputGrad ? s.H : s.Ho;
  const int64_t w = pass == Conv2dPass::kInputGrad ? s.W : s.Wo;
  const int64_t tiles2 = ((h + 1) / 2) * ((w + 1) / 2), tiles4 = ((h + 3) / 4) * ((w + 3) / 4);
  const int64_t saved = s.N * (16 * tiles2 - 36 * tiles4);
  return saved >= (pass == Conv2dPass::kWeightGrad ? kWinograd4WeightGradMinSavedProducts
                                                    : kWinograd4MinSavedProducts);
}

bool small_stride1(const Conv2dShape& s, int64_t max_filters) {
  return stride1(s) && s.cols() <= kDirectSmallMaxColumns && s.F <= max_filters;
}

bool direct_pays(Conv2dPass pass, const Conv2dShape& s) {
  switch (pass) {
    case Conv2dPass::kForward:
      return (s.cols() <= kDirectMaxColumns && s.F <= kDirectMaxForwardFilters) ||
             small_stride1(s, kDirectSmallMaxFilters);
    case Conv2dPass::kWeightGrad:
      // The stride-1 weight-gradient loops keep their sums spread over vectors of 8 filters.
      return (s.cols() <= kDirectMaxColumns && s.F <= kDirectMaxWeightGradFilters) ||
             (small_stride1(s, kDirectSmallMaxFilters) && 8 % s.F == 0 &&
              s.KH <= kConv2dDirectMaxKernelRows);
    case Conv2dPass::kInputGrad:
      return stride1(s) && s.C <= kDirectMaxInputGradChannels &&
             s.KH * s.KW * s.F <= kDirectMaxInputGradColumns && s.KH <= kConv2dDirectMaxKernelRows;
  }
  return false;
}

}  // namespace

Conv2dForm conv2d_choose_gemm(Conv2dPass pass, const Conv2dShape& s) {
  if (pointwise(s)) return Conv2dForm::kPointwise;
  if (pass == Conv2dPass::kInputGrad && stride1(s) && s.C >= kTransposedMinChannels)
    return Conv2dForm::kTransposed;
  return Conv2dForm::kIm2col;
}

Conv2dForm conv2d_choose(Conv2dPass pass, const Conv2dShape& s) {
  if (winograd_pays(s)) return winograd4_pays(pass, s) ? Conv2dForm::kWinograd4 : Conv2dForm::kWinograd;
  if (direct_pays(pass, s)) return Conv2dForm::kDirect;
  return conv2d_choose_gemm(pass, s);
}

bool conv2d_form_applies(Conv2dForm form, Conv2dPass pass, const Conv2dShape& s) {
  switch (form) {
    case Conv2dForm::kIm2col: return true;
    case Conv2dForm::kPointwise: return pointwise(s);
    case Conv2dForm::kTransposed: return pass == Conv2dPass::kInputGrad && stride1(s);
    case Conv2dForm::kDirect:
      return pass != Conv2dPass::kInputGrad || (stride1(s) && s.KH <= kConv2dDirectMaxKernelRows);
    case Conv2dForm::kWinograd: return s.KH == 3 && s.KW == 3 && stride1(s);
    case Conv2dForm::kWinograd4: return s.KH == 3 && s.KW == 3 && stride1(s);
  }
  return false;
}

const char* conv2d_form_name(Conv2dForm form) {
  switch (form) {
    case Conv2dForm::kIm2col: return "im2col";
    case Conv2dForm::kPointwise: return "pointwise";
    case Conv2dForm::kTransposed: return "transposed";
    case Conv2dForm::kDirect: return "direct";
    case Conv2dForm::kWinograd: return "winograd";
    case Conv2dForm::kWinograd4: return "winograd4x4";
  }
  return "?";
}

const char* conv2d_pass_name(Conv2dPass pass) {
  switch (pass) {
    case Conv2dPass::kForward: return "forward";
    case Conv2dPass::kInputGrad: return "input_grad";
    case Conv2dPass::kWeightGrad: return "weight_grad";
  }
  return "?";
}

}  // namespace kiln
