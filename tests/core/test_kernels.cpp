// The fast CPU kernels against their naive direct-loop references, over tables of shapes
// chosen to hit every edge: batch 1 and >1, odd sizes, strides 1 and 2, same and valid
// padding, 1x1 (no im2col), and inputs large enough to be split into several sgemm chunks.
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/kernels/batch_norm.h"
#include "core/kernels/conv2d/forms.h"
#include "core/kernels/max_pool2d.h"
#include "core/runtime/random.h"

namespace kiln {
namespace {

constexpr double kTolerance = 1e-5;

// Winograd F(4x4, 3x3) rounds more than the other forms: its transforms are not exact in float
// (G has 1/6 and 1/24) and B^T, A^T have entries up to 5 and 8, so each output is a cancelling
// sum of terms up to ~100x its size, and the error grows with the channel count. Measured with
// these inputs in [-1, 1]: at most 1.3e-5 relative on this file's wide shapes (the largest on
// the 256- and 128-channel ones) and 1.4e-5 on the lab's wide layers (batches of up to 64),
// against at most 7e-7 for F(2x2) and im2col. Its weight gradient (sums over every tile of
// the batch): 1.8e-6 to 6.1e-6 on the lab's wide layers at their batches (16 and 70 images),
// against at most 8e-7 for F(2x2) and im2col. The gate sits ~1.5x above that: one transform
// coefficient off by 2e-4 relative already gives 1.5e-4 to 6e-4, a misplaced tile far more.
constexpr double kWinograd4Tolerance = 2e-5;

double form_tolerance(Conv2dForm form) {
  return form == Conv2dForm::kWinograd4 ? kWinograd4Tolerance : kTolerance;
}

std::vector<float> random_floats(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * uniform_at(seed, static_cast<uint64_t>(i));
  return v;
}

// max |got - want| / max |want|: one scale for the whole buffer, so small entries that are
// sums of cancelling terms do not blow up the measure. NaN anywhere gives infinity.
double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, d);
    scale = std::max(scale, std::fabs(static_cast<double>(want[i])));
  }
  return diff / std::max(scale, 1e-30);
}

std::vector<float> minus(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

std::vector<float> times(const std::vector<float>& a, float k) {
  std::vector<float> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] * k;
  return d;
}

// ---------------------------------------------------------------------------------------
// Conv2dShape::make

TEST(Conv2dShape, SamePaddingFollowsKeras) {
  const Conv2dShape a = Conv2dShape::make(1, 28, 28, 1, 3, 3, 8, 2, true);
  EXPECT_EQ(a.Ho, 14);
  EXPECT_EQ(a.Wo, 14);
  EXPECT_EQ(a.pad_top, 0);  // total 1: the odd cell goes to the bottom
  EXPECT_EQ(a.pad_left, 0);

  const Conv2dShape b = Conv2dShape::make(1, 7, 7, 1, 3, 3, 8, 2, true);
  EXPECT_EQ(b.Ho, 4);
  EXPECT_EQ(b.pad_top, 1);  // total 2

  const Conv2dShape c = Conv2dShape::make(2, 28, 28, 64, 3, 3, 64, 1, true);
  EXPECT_EQ(c.Ho, 28);
  EXPECT_EQ(c.pad_top, 1);
  EXPECT_EQ(c.rows(), 2 * 28 * 28);
  EXPECT_EQ(c.cols(), 3 * 3 * 64);

  const Conv2dShape d = Conv2dShape::make(1, 8, 6, 1, 4, 4, 1, 1, true);
  EXPECT_EQ(d.Ho, 8);
  EXPECT_EQ(d.Wo, 6);
  EXPECT_EQ(d.pad_top, 1);  // total 3: 1 before, 2 after

  const Conv2dShape e = Conv2dShape::make(1, 5, 5, 1, 1, 1, 1, 2, true);
  EXPECT_EQ(e.Ho, 3);
  EXPECT_EQ(e.pad_top, 0);
}

TEST(Conv2dShape, ValidPaddingFollowsKeras) {
  const Conv2dShape a = Conv2dShape::make(1, 28, 28, 1, 3, 3, 8, 1, false);
  EXPECT_EQ(a.Ho, 26);
  EXPECT_EQ(a.pad_top, 0);
  const Conv2dShape b = Conv2dShape::make(1, 8, 7, 1, 3, 3, 8, 2, false);
  EXPECT_EQ(b.Ho, 3);  // the last input row is never read
  EXPECT_EQ(b.Wo, 3);
  const Conv2dShape c = Conv2dShape::make(1, 3, 3, 1, 3, 3, 8, 1, false);
  EXPECT_EQ(c.Ho, 1);
}

TEST(Conv2dShape, RejectsKernelLargerThanInputInValidMode) {
  try {
    Conv2dShape::make(1, 2, 2, 1, 3, 3, 1, 1, false);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "conv2d: input [1,2,2,1] is smaller than kernel 3x3 with padding valid");
  }
  EXPECT_NO_THROW(Conv2dShape::make(1, 2, 2, 1, 3, 3, 1, 1, true));
  EXPECT_THROW(Conv2dShape::make(1, 4, 4, 1, 3, 3, 1, 0, true), std::invalid_argument);
  EXPECT_THROW(Conv2dShape::make(0, 4, 4, 1, 3, 3, 1, 1, true), std::invalid_argument);
}

// ---------------------------------------------------------------------------------------
// conv2d: fast == naive

struct ConvCase {
  std::string name;
  int64_t N, H, W, C, K, F, stride;
  bool same;
  Conv2dShape shape() const { return Conv2dShape::make(N, H, W, C, K, K, F, stride, same); }
};

// gtest prints a case by its name, not as raw bytes, in failure messages and ctest listings.
void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

std::string conv_case_name(const testing::TestParamInfo<ConvCase>& info) {
  return info.param.name;
}

// Inputs, weights and gradients for one case, all random.
struct ConvData {
  Conv2dShape s;
  std::vector<float> x, w, b, dy;
  explicit ConvData(const Conv2dShape& shape)
      : s(shape),
        x(random_floats(s.N * s.H * s.W * s.C, 1)),
        w(random_floats(s.KH * s.KW * s.C * s.F, 2)),
        b(random_floats(s.F, 3)),
        dy(random_floats(s.rows() * s.F, 4)) {}
};

class Conv2dKernels : public testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dKernels, ForwardMatchesNaive) {
  const ConvData d(GetParam().shape());
  const size_t out = static_cast<size_t>(d.s.rows() * d.s.F);
  // Pre-fill with NaN: the forward must overwrite every output.
  std::vector<float> fast(out, std::numeric_limits<float>::quiet_NaN()), naive(out);
  conv2d_forward(d.s, d.x.data(), d.w.data(), d.b.data(), fast.data());
  conv2d_forward_naive(d.s, d.x.data(), d.w.data(), d.b.data(), naive.data());
  const double tolerance = form_tolerance(conv2d_choose(Conv2dPass::kForward, d.s));
  EXPECT_LE(relative_error(fast, naive), tolerance);

  std::vector<float> fast_nobias(out, std::numeric_limits<float>::quiet_NaN()), naive_nobias(out);
  conv2d_forward(d.s, d.x.data(), d.w.data(), nullptr, fast_nobias.data());
  conv2d_forward_naive(d.s, d.x.data(), d.w.data(), nullptr, naive_nobias.data());
  EXPECT_LE(relative_error(fast_nobias, naive_nobias), tolerance);
}

TEST_P(Conv2dKernels, BackwardInputMatchesNaiveAndAccumulates) {
  const ConvData d(GetParam().shape());
  const int64_t n = d.s.N * d.s.H * d.s.W * d.s.C;
  std::vector<float> naive(static_cast<size_t>(n), 0.0f);
  conv2d_backward_input_naive(d.s, d.dy.data(), d.w.data(), naive.data());

  // Starting from a non-zero buffer, the kernel must add exactly its gradient.
  const std::vector<float> start = random_floats(n, 5);
  std::vector<float> fast = start;
  conv2d_backward_input(d.s, d.dy.data(), d.w.data(), fast.data());
  const double tolerance = form_tolerance(conv2d_choose(Conv2dPass::kInputGrad, d.s));
  EXPECT_LE(relative_error(minus(fast, start), naive), tolerance);

  std::vector<float> once(static_cast<size_t>(n), 0.0f), twice(static_cast<size_t>(n), 0.0f);
  conv2d_backward_input(d.s, d.dy.data(), d.w.data(), once.data());
  conv2d_backward_input(d.s, d.dy.data(), d.w.data(), twice.data());
  conv2d_backward_input(d.s, d.dy.data(), d.w.data(), twice.data());
  EXPECT_LE(relative_error(twice, times(once, 2.0f)), 1e-6);
}

TEST_P(Conv2dKernels, BackwardWeightMatchesNaiveAndAccumulates) {
  const ConvData d(GetParam().shape());
  const int64_t nw = d.s.KH * d.s.KW * d.s.C * d.s.F;
  std::vector<float> naive_dw(static_cast<size_t>(nw), 0.0f), naive_db(d.s.F, 0.0f);
  conv2d_backward_weight_naive(d.s, d.x.data(), d.dy.data(), naive_dw.data(), naive_db.data());

  const std::vector<float> start_dw = random_floats(nw, 6);
  const std::vector<float> start_db = random_floats(d.s.F, 7);
  std::vector<float> dw = start_dw, db = start_db;
  conv2d_backward_weight(d.s, d.x.data(), d.dy.data(), dw.data(), db.data());
  EXPECT_LE(relative_error(minus(dw, start_dw), naive_dw), kTolerance);
  EXPECT_LE(relative_error(minus(db, start_db), naive_db), kTolerance);

  std::vector<float> once(static_cast<size_t>(nw), 0.0f), twice(static_cast<size_t>(nw), 0.0f);
  std::vector<float> once_b(d.s.F, 0.0f), twice_b(d.s.F, 0.0f);
  conv2d_backward_weight(d.s, d.x.data(), d.dy.data(), once.data(), once_b.data());
  conv2d_backward_weight(d.s, d.x.data(), d.dy.data(), twice.data(), twice_b.data());
  conv2d_backward_weight(d.s, d.x.data(), d.dy.data(), twice.data(), twice_b.data());
  EXPECT_LE(relative_error(twice, times(once, 2.0f)), 1e-6);
  EXPECT_LE(relative_error(twice_b, times(once_b, 2.0f)), 1e-6);

  // db may be null.
  std::vector<float> dw_only(static_cast<size_t>(nw), 0.0f);
  conv2d_backward_weight(d.s, d.x.data(), d.dy.data(), dw_only.data(), nullptr);
  EXPECT_LE(relative_error(dw_only, naive_dw), kTolerance);
}

constexpr Conv2dForm kAllForms[] = {Conv2dForm::kIm2col, Conv2dForm::kPointwise, Conv2dForm::kTransposed,
                                    Conv2dForm::kDirect, Conv2dForm::kWinograd, Conv2dForm::kWinograd4};

// conv2d_forward, conv2d_backward_input and conv2d_backward_weight run the form conv2d_choose
// picks; every form must be right on every shape it applies to, whichever the rule picks:
// forward with and without bias, the gradients adding into their buffers.
TEST_P(Conv2dKernels, EveryFormThatAppliesMatchesNaive) {
  const ConvData d(GetParam().shape());
  const size_t out = static_cast<size_t>(d.s.rows() * d.s.F);
  std::vector<float> naive(out), naive_nobias(out);
  conv2d_forward_naive(d.s, d.x.data(), d.w.data(), d.b.data(), naive.data());
  conv2d_forward_naive(d.s, d.x.data(), d.w.data(), nullptr, naive_nobias.data());
  const int64_t nw = d.s.KH * d.s.KW * d.s.C * d.s.F;
  std::vector<float> naive_dw(static_cast<size_t>(nw), 0.0f), naive_db(d.s.F, 0.0f);
  conv2d_backward_weight_naive(d.s, d.x.data(), d.dy.data(), naive_dw.data(), naive_db.data());
  const int64_t n = d.s.N * d.s.H * d.s.W * d.s.C;
  std::vector<float> naive_dx(static_cast<size_t>(n), 0.0f);
  conv2d_backward_input_naive(d.s, d.dy.data(), d.w.data(), naive_dx.data());
  const std::vector<float> start_dw = random_floats(nw, 6);
  const std::vector<float> start_db = random_floats(d.s.F, 7);
  const std::vector<float> start_dx = random_floats(n, 8);
  int forms_run = 0;
  for (const Conv2dForm form : kAllForms) {
    if (conv2d_form_applies(form, Conv2dPass::kForward, d.s)) {
      SCOPED_TRACE(std::string("forward, ") + conv2d_form_name(form));
      std::vector<float> y(out, std::numeric_limits<float>::quiet_NaN());
      conv2d_forward_as(form, d.s, d.x.data(), d.w.data(), d.b.data(), y.data());
      EXPECT_LE(relative_error(y, naive), form_tolerance(form));
      std::fill(y.begin(), y.end(), std::numeric_limits<float>::quiet_NaN());
      conv2d_forward_as(form, d.s, d.x.data(), d.w.data(), nullptr, y.data());
      EXPECT_LE(relative_error(y, naive_nobias), form_tolerance(form));
      ++forms_run;
    }
    if (conv2d_form_applies(form, Conv2dPass::kWeightGrad, d.s)) {
      SCOPED_TRACE(std::string("weight gradient, ") + conv2d_form_name(form));
      std::vector<float> dw = start_dw, db = start_db;
      conv2d_backward_weight_as(form, d.s, d.x.data(), d.dy.data(), dw.data(), db.data());
      EXPECT_LE(relative_error(minus(dw, start_dw), naive_dw), form_tolerance(form));
      EXPECT_LE(relative_error(minus(db, start_db), naive_db), form_tolerance(form));
      ++forms_run;
    }
    if (conv2d_form_applies(form, Conv2dPass::kInputGrad, d.s)) {
      SCOPED_TRACE(std::string("input gradient, ") + conv2d_form_name(form));
      std::vector<float> dx = start_dx;
      conv2d_backward_input_as(form, d.s, d.dy.data(), d.w.data(), dx.data());
      EXPECT_LE(relative_error(minus(dx, start_dx), naive_dx), form_tolerance(form));
      ++forms_run;
    }
  }
  // im2col and direct always apply to the forward pass and the weight gradient, im2col to
  // the input gradient.
  EXPECT_GE(forms_run, 5);

  // conv2d_backward_input with overwrite writes every element of dx (NaN before), whichever
  // form it picks: the Winograd forms write it themselves, the others after zeroing it.
  const Conv2dForm chosen = conv2d_choose(Conv2dPass::kInputGrad, d.s);
  SCOPED_TRACE(std::string("input gradient written, ") + conv2d_form_name(chosen));
  std::vector<float> written(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
  conv2d_backward_input(d.s, d.dy.data(), d.w.data(), written.data(), /*overwrite=*/true);
  EXPECT_LE(relative_error(written, naive_dx), form_tolerance(chosen));
}

const std::vector<ConvCase> kConvCases = {
    ConvCase{"n1_7x5_c3_f8_k3_s1_same", 1, 7, 5, 3, 3, 8, 1, true},
    ConvCase{"n2_7x5_c3_f8_k3_s2_same", 2, 7, 5, 3, 3, 8, 2, true},
    ConvCase{"n3_7x5_c1_f1_k3_s1_valid", 3, 7, 5, 1, 3, 1, 1, false},
    ConvCase{"n2_10x7_c3_f8_k5_s2_valid", 2, 10, 7, 3, 5, 8, 2, false},
    ConvCase{"n2_7x5_c3_f8_k5_s1_same", 2, 7, 5, 3, 5, 8, 1, true},
    ConvCase{"n1_3x3_c3_f8_k5_s1_same", 1, 3, 3, 3, 5, 8, 1, true},
    ConvCase{"n2_8x6_c3_f8_k4_s1_same", 2, 8, 6, 3, 4, 8, 1, true},
    ConvCase{"n2_8x8_c64_f64_k1_s1_valid", 2, 8, 8, 64, 1, 64, 1, false},
    ConvCase{"n1_7x5_c64_f8_k1_s1_same", 1, 7, 5, 64, 1, 8, 1, true},
    ConvCase{"n2_7x5_c64_f8_k1_s2_same", 2, 7, 5, 64, 1, 8, 2, true},
    ConvCase{"n2_6x6_c3_f64_k5_s1_same", 2, 6, 6, 3, 5, 64, 1, true},
    ConvCase{"n4_28x28_c1_f8_k3_s1_same", 4, 28, 28, 1, 3, 8, 1, true},
    ConvCase{"n3_14x14_c4_f8_k3_s1_same", 3, 14, 14, 4, 3, 8, 1, true},
    ConvCase{"n2_9x9_c8_f16_k3_s2_same", 2, 9, 9, 8, 3, 16, 2, true},
    ConvCase{"n2_9x7_c8_f4_k3_s1_valid", 2, 9, 7, 8, 3, 4, 1, false},
    ConvCase{"n2_14x14_c64_f64_k3_s2_same", 2, 14, 14, 64, 3, 64, 2, true},
    ConvCase{"n3_9x9_c64_f64_k3_s1_valid", 3, 9, 9, 64, 3, 64, 1, false},
    // Stride 1 either side of C = 16, where the input gradient switches from col2im to a
    // transposed convolution.
    ConvCase{"n2_8x6_c16_f8_k4_s1_same", 2, 8, 6, 16, 4, 8, 1, true},
    ConvCase{"n1_7x5_c8_f3_k5_s1_valid", 1, 7, 5, 8, 5, 3, 1, false},
    ConvCase{"n2_7x5_c16_f8_k5_s1_same", 2, 7, 5, 16, 5, 8, 1, true},
    ConvCase{"n1_3x3_c16_f8_k5_s1_same", 1, 3, 3, 16, 5, 8, 1, true},
    ConvCase{"n2_9x7_c32_f1_k3_s1_same", 2, 9, 7, 32, 3, 1, 1, true},
    // Thin layers (the direct form): compile-time filter counts 4/16/32/64 and others,
    // strides, even kernels, 1x1 with stride 2.
    ConvCase{"n2_9x7_c1_f4_k3_s2_same", 2, 9, 7, 1, 3, 4, 2, true},
    ConvCase{"n3_28x28_c1_f4_k3_s1_same", 3, 28, 28, 1, 3, 4, 1, true},
    ConvCase{"n2_6x5_c1_f64_k3_s1_same", 2, 6, 5, 1, 3, 64, 1, true},
    ConvCase{"n2_7x6_c1_f16_k3_s2_valid", 2, 7, 6, 1, 3, 16, 2, false},
    ConvCase{"n1_8x8_c2_f5_k2_s1_same", 1, 8, 8, 2, 2, 5, 1, true},
    ConvCase{"n2_5x5_c1_f32_k1_s2_same", 2, 5, 5, 1, 1, 32, 2, true},
    // Wide 3x3 stride-1 layers (the Winograd form): odd sizes whose last tiles are clipped,
    // channels beyond one 64-wide block, a 1x1 image, valid padding, several tile blocks.
    ConvCase{"wide_n2_7x5_c32_f40_k3_s1_same", 2, 7, 5, 32, 3, 40, 1, true},
    ConvCase{"wide_n1_1x1_c32_f32_k3_s1_same", 1, 1, 1, 32, 3, 32, 1, true},
    ConvCase{"wide_n2_6x9_c96_f33_k3_s1_same", 2, 6, 9, 96, 3, 33, 1, true},
    ConvCase{"wide_n2_8x7_c40_f72_k3_s1_valid", 2, 8, 7, 40, 3, 72, 1, false},
    ConvCase{"wide_n6_28x28_c64_f64_k3_s1_same", 6, 28, 28, 64, 3, 64, 1, true},
    // F(4x4)'s last tiles keep 3 (7 = 4 + 3) or 1 (9 = 8 + 1, 13 = 12 + 1) of their 4 rows and
    // columns; channel and filter counts across one, two and three 64-wide blocks; valid padding
    // on a non-square image (output 11x9; its input gradient has padding 2).
    ConvCase{"wide_n2_7x7_c130_f32_k3_s1_same", 2, 7, 7, 130, 3, 32, 1, true},
    ConvCase{"wide_n2_9x9_c32_f130_k3_s1_same", 2, 9, 9, 32, 3, 130, 1, true},
    ConvCase{"wide_n2_13x13_c72_f96_k3_s1_same", 2, 13, 13, 72, 3, 96, 1, true},
    ConvCase{"wide_n1_13x11_c64_f64_k3_s1_valid", 1, 13, 11, 64, 3, 64, 1, false},
    // The lab's widest layers, where F(4x4)'s error is largest: 256 channels, a 32x32 image.
    ConvCase{"wide_n2_8x8_c256_f256_k3_s1_same", 2, 8, 8, 256, 3, 256, 1, true},
    ConvCase{"wide_n1_32x32_c128_f128_k3_s1_same", 1, 32, 32, 128, 3, 128, 1, true},
    // Several chunks of whole images, then chunks that split an image.
    ConvCase{"chunked_n4_32x32_c64_f8_k3_s1_same", 4, 32, 32, 64, 3, 8, 1, true},
    ConvCase{"chunked_n2_70x66_c64_f4_k3_s1_same", 2, 70, 66, 64, 3, 4, 1, true},
    ConvCase{"chunked_n2_131x135_c64_f4_k3_s2_valid", 2, 131, 135, 64, 3, 4, 2, false}};

INSTANTIATE_TEST_SUITE_P(Shapes, Conv2dKernels, testing::ValuesIn(kConvCases), conv_case_name);

TEST(Conv2dForms, AFormThatDoesNotApplyIsRefusedNamingItAndTheShape) {
  const Conv2dShape strided = Conv2dShape::make(2, 9, 9, 8, 3, 3, 16, 2, true);
  std::vector<float> x(static_cast<size_t>(2 * 9 * 9 * 8)), w(static_cast<size_t>(9 * 8 * 16)),
      y(static_cast<size_t>(strided.rows() * 16));
  try {
    conv2d_forward_as(Conv2dForm::kWinograd, strided, x.data(), w.data(), nullptr, y.data());
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("winograd"), std::string::npos) << msg;
    EXPECT_NE(msg.find("stride 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2,9,9,8]"), std::string::npos) << msg;
  }
  EXPECT_THROW(conv2d_forward_as(Conv2dForm::kTransposed, strided, x.data(), w.data(), nullptr, y.data()),
               std::invalid_argument);
  EXPECT_THROW(conv2d_forward_as(Conv2dForm::kWinograd4, strided, x.data(), w.data(), nullptr, y.data()),
               std::invalid_argument);
}

TEST(Conv2dForms, WinogradFormsServeEveryPassOf3x3Stride1Only) {
  const Conv2dShape s = Conv2dShape::make(2, 8, 8, 32, 3, 3, 32, 1, true);
  const Conv2dShape five = Conv2dShape::make(2, 8, 8, 32, 5, 5, 32, 1, true);
  for (const Conv2dForm form : {Conv2dForm::kWinograd, Conv2dForm::kWinograd4})
    for (const Conv2dPass pass : {Conv2dPass::kForward, Conv2dPass::kInputGrad, Conv2dPass::kWeightGrad}) {
      EXPECT_TRUE(conv2d_form_applies(form, pass, s)) << conv2d_form_name(form) << " " << conv2d_pass_name(pass);
      EXPECT_FALSE(conv2d_form_applies(form, pass, five)) << conv2d_form_name(form) << " " << conv2d_pass_name(pass);
    }
  std::vector<float> x(static_cast<size_t>(2 * 8 * 8 * 32)), dy(x.size());
  std::vector<float> dw(static_cast<size_t>(25 * 32 * 32));
  try {
    conv2d_backward_weight_as(Conv2dForm::kWinograd4, five, x.data(), dy.data(), dw.data(), nullptr);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("winograd4x4"), std::string::npos) << msg;
    EXPECT_NE(msg.find("weight_grad"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[2,8,8,32]"), std::string::npos) << msg;
  }
}

TEST(Conv2dChunking, LargeInputsUseSeveralChunks) {
  const Conv2dShape whole_images = Conv2dShape::make(4, 32, 32, 64, 3, 3, 8, 1, true);
  const int64_t a = conv2d_chunk_rows(whole_images);
  EXPECT_LT(a, whole_images.rows());
  EXPECT_EQ(a % (whole_images.Ho * whole_images.Wo), 0);

  const Conv2dShape split_images = Conv2dShape::make(2, 70, 66, 64, 3, 3, 4, 1, true);
  const int64_t b = conv2d_chunk_rows(split_images);
  EXPECT_LT(b, split_images.Ho * split_images.Wo);
  EXPECT_EQ(b % split_images.Wo, 0);

  const Conv2dShape strided = Conv2dShape::make(2, 131, 135, 64, 3, 3, 4, 2, false);
  EXPECT_LT(conv2d_chunk_rows(strided), strided.Ho * strided.Wo);

  const Conv2dShape small = Conv2dShape::make(2, 7, 5, 3, 3, 3, 8, 1, true);
  EXPECT_EQ(conv2d_chunk_rows(small), small.rows());
}

TEST(Im2col, Col2imIsTheAdjointOfIm2col) {
  // <im2col(x), c> == <x, col2im(c)> for random x and c, over a sub-range of rows.
  const Conv2dShape s = Conv2dShape::make(2, 7, 5, 3, 3, 3, 1, 2, true);
  const int64_t begin = 3, end = s.rows() - 2;
  const std::vector<float> x = random_floats(s.N * s.H * s.W * s.C, 11);
  const std::vector<float> c = random_floats((end - begin) * s.cols(), 12);
  std::vector<float> cols((end - begin) * s.cols());
  std::vector<float> xt(x.size(), 0.0f);
  im2col(s, x.data(), begin, end, cols.data());
  col2im(s, c.data(), begin, end, xt.data());
  double lhs = 0.0, rhs = 0.0;
  for (size_t i = 0; i < cols.size(); ++i) lhs += static_cast<double>(cols[i]) * c[i];
  for (size_t i = 0; i < x.size(); ++i) rhs += static_cast<double>(x[i]) * xt[i];
  EXPECT_NEAR(lhs, rhs, 1e-4 * std::fabs(rhs) + 1e-6);
}

// ---------------------------------------------------------------------------------------
// max_pool2d

struct PoolCase {
  std::string name;
  int64_t N, H, W, C, K, stride;
  bool same;
  Pool2dShape shape() const { return Pool2dShape::make(N, H, W, C, K, stride, same); }
};

void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name; }

std::string pool_case_name(const testing::TestParamInfo<PoolCase>& info) {
  return info.param.name;
}

class MaxPool2dKernels : public testing::TestWithParam<PoolCase> {};

TEST_P(MaxPool2dKernels, ForwardMatchesNaive) {
  const Pool2dShape s = GetParam().shape();
  const std::vector<float> x = random_floats(s.N * s.H * s.W * s.C, 21);
  const size_t out = static_cast<size_t>(s.N * s.Ho * s.Wo * s.C);
  std::vector<float> y(out), y_naive(out);
  std::vector<int32_t> at(out, -1), at_naive(out, -1);
  max_pool2d_forward(s, x.data(), y.data(), at.data());
  max_pool2d_forward_naive(s, x.data(), y_naive.data(), at_naive.data());
  EXPECT_EQ(y, y_naive);
  EXPECT_EQ(at, at_naive);
  for (size_t i = 0; i < out; ++i) ASSERT_EQ(y[i], x[at[i]]);
}

TEST_P(MaxPool2dKernels, BackwardMatchesNaiveAndAccumulates) {
  const Pool2dShape s = GetParam().shape();
  const int64_t n = s.N * s.H * s.W * s.C;
  const std::vector<float> x = random_floats(n, 22);
  const size_t out = static_cast<size_t>(s.N * s.Ho * s.Wo * s.C);
  std::vector<float> y(out);
  std::vector<int32_t> at(out);
  max_pool2d_forward(s, x.data(), y.data(), at.data());
  const std::vector<float> dy = random_floats(static_cast<int64_t>(out), 23);

  const std::vector<float> start = random_floats(n, 24);
  std::vector<float> dx = start, dx_naive = start;
  max_pool2d_backward(s, dy.data(), at.data(), dx.data());
  max_pool2d_backward_naive(s, dy.data(), at.data(), dx_naive.data());
  EXPECT_LE(relative_error(dx, dx_naive), 1e-6);

  std::vector<float> zero(static_cast<size_t>(n), 0.0f);
  std::vector<float> grad = zero;
  max_pool2d_backward_naive(s, dy.data(), at.data(), grad.data());
  EXPECT_LE(relative_error(minus(dx, start), grad), 1e-6);

  // overwrite: what was in dx (NaN here) is ignored and every element written.
  std::vector<float> fresh(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
  max_pool2d_backward(s, dy.data(), at.data(), fresh.data(), /*overwrite=*/true);
  EXPECT_EQ(fresh, grad);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MaxPool2dKernels,
    testing::Values(PoolCase{"n2_28x28_c8_k2_s2_valid", 2, 28, 28, 8, 2, 2, false},
                    PoolCase{"n3_14x14_c4_k2_s2_valid", 3, 14, 14, 4, 2, 2, false},
                    PoolCase{"n2_10x12_c16_k2_s2_valid", 2, 10, 12, 16, 2, 2, false},
                    PoolCase{"n2_9x9_c64_k2_s2_valid", 2, 9, 9, 64, 2, 2, false},
                    PoolCase{"n2_6x6_c1_k2_s2_same", 2, 6, 6, 1, 2, 2, true},
                    PoolCase{"n2_7x5_c3_k2_s2_valid", 2, 7, 5, 3, 2, 2, false},
                    PoolCase{"n1_7x5_c3_k2_s2_same", 1, 7, 5, 3, 2, 2, true},
                    PoolCase{"n2_7x5_c3_k3_s2_same", 2, 7, 5, 3, 3, 2, true},
                    PoolCase{"n2_8x8_c16_k3_s2_same", 2, 8, 8, 16, 3, 2, true},
                    PoolCase{"n3_9x7_c5_k3_s2_valid", 3, 9, 7, 5, 3, 2, false},
                    PoolCase{"n2_6x5_c4_k3_s1_same", 2, 6, 5, 4, 3, 1, true},
                    PoolCase{"n1_1x1_c2_k2_s2_same", 1, 1, 1, 2, 2, 2, true}),
    pool_case_name);

TEST(MaxPool2dShape, FollowsKerasAndRejectsBadSizes) {
  const Pool2dShape a = Pool2dShape::make(1, 7, 5, 1, 3, 2, true);
  EXPECT_EQ(a.Ho, 4);
  EXPECT_EQ(a.Wo, 3);
  EXPECT_EQ(a.pad_top, 1);
  EXPECT_EQ(a.pad_left, 1);
  const Pool2dShape b = Pool2dShape::make(1, 7, 5, 1, 2, 2, false);
  EXPECT_EQ(b.Ho, 3);
  EXPECT_EQ(b.Wo, 2);
  EXPECT_THROW(Pool2dShape::make(1, 1, 5, 1, 2, 2, false), std::invalid_argument);
  EXPECT_THROW(Pool2dShape::make(1, 4, 4, 1, 2, 0, false), std::invalid_argument);
}

TEST(MaxPool2d, FirstMaximumWinsOnTies) {
  // Every channel count the 2x2 loop compiles its own copy for (4, 8, 16) and two it does not.
  for (const int64_t C : {2, 4, 8, 16, 24}) {
    SCOPED_TRACE("C = " + std::to_string(C));
    const Pool2dShape s = Pool2dShape::make(1, 4, 4, C, 2, 2, false);
    const std::vector<float> x(static_cast<size_t>(4 * 4 * C), 1.0f);
    const size_t out = static_cast<size_t>(4 * C);
    std::vector<float> y(out);
    std::vector<int32_t> at(out), at_naive(out), want(out);
    max_pool2d_forward(s, x.data(), y.data(), at.data());
    max_pool2d_forward_naive(s, x.data(), y.data(), at_naive.data());
    // Output (oy, ox, c) -> the top-left cell of its window, (2oy, 2ox, c).
    for (int64_t oy = 0; oy < 2; ++oy)
      for (int64_t ox = 0; ox < 2; ++ox)
        for (int64_t c = 0; c < C; ++c)
          want[static_cast<size_t>((oy * 2 + ox) * C + c)] = static_cast<int32_t>(((2 * oy) * 4 + 2 * ox) * C + c);
    EXPECT_EQ(at, want);
    EXPECT_EQ(at_naive, want);
  }
}

TEST(MaxPool2d, PaddedCellsNeverWin) {
  // All inputs negative: a zero-padded cell would win if padding took part.
  const Pool2dShape s = Pool2dShape::make(1, 5, 5, 3, 3, 2, true);
  const std::vector<float> x = random_floats(5 * 5 * 3, 31, -2.0f, -1.0f);
  const size_t out = static_cast<size_t>(s.Ho * s.Wo * s.C);
  std::vector<float> y(out), y_naive(out);
  std::vector<int32_t> at(out), at_naive(out);
  max_pool2d_forward(s, x.data(), y.data(), at.data());
  max_pool2d_forward_naive(s, x.data(), y_naive.data(), at_naive.data());
  for (size_t i = 0; i < out; ++i) {
    EXPECT_LT(y[i], -0.5f);
    EXPECT_LT(y_naive[i], -0.5f);
  }
  EXPECT_EQ(at, at_naive);
}

// ---------------------------------------------------------------------------------------
// batch norm

struct BatchNormCase {
  std::string name;
  int64_t M, C;
  float offset;  // added to x: a large |mean| relative to std tests cancellation
};

void PrintTo(const BatchNormCase& c, std::ostream* os) { *os << c.name; }

std::string bn_case_name(const testing::TestParamInfo<BatchNormCase>& info) {
  return info.param.name;
}

class BatchNormKernels : public testing::TestWithParam<BatchNormCase> {
 protected:
  void SetUp() override {
    const BatchNormCase& p = GetParam();
    M = p.M;
    C = p.C;
    x = random_floats(M * C, 41, p.offset - 1.0f, p.offset + 1.0f);
    gamma = random_floats(C, 42, 0.5f, 1.5f);
    beta = random_floats(C, 43);
    dy = random_floats(M * C, 44);
  }
  int64_t M = 0, C = 0;
  const float eps = 1e-3f;
  std::vector<float> x, gamma, beta, dy;
};

TEST_P(BatchNormKernels, TrainForwardMatchesNaive) {
  std::vector<float> y(x.size(), std::numeric_limits<float>::quiet_NaN()), y_naive(x.size());
  std::vector<float> mean(C), var(C), inv_std(C), mean_n(C), var_n(C), inv_std_n(C);
  batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, y.data(), mean.data(),
                           var.data(), inv_std.data());
  batch_norm_forward_train_naive(M, C, x.data(), gamma.data(), beta.data(), eps, y_naive.data(),
                                 mean_n.data(), var_n.data(), inv_std_n.data());
  EXPECT_LE(relative_error(y, y_naive), kTolerance);
  EXPECT_LE(relative_error(mean, mean_n), kTolerance);
  EXPECT_LE(relative_error(var, var_n), kTolerance);
  EXPECT_LE(relative_error(inv_std, inv_std_n), kTolerance);
}

TEST_P(BatchNormKernels, EvalForwardWithBatchStatisticsEqualsTrainForward) {
  std::vector<float> y_train(x.size()), mean(C), var(C), inv_std(C);
  batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, y_train.data(),
                           mean.data(), var.data(), inv_std.data());
  std::vector<float> y_eval(x.size(), std::numeric_limits<float>::quiet_NaN());
  batch_norm_forward_eval(M, C, x.data(), gamma.data(), beta.data(), mean.data(), var.data(), eps,
                          y_eval.data());
  EXPECT_LE(relative_error(y_eval, y_train), kTolerance);

  // And against the formula with other statistics.
  const std::vector<float> run_mean = random_floats(C, 45);
  const std::vector<float> run_var = random_floats(C, 46, 0.1f, 2.0f);
  batch_norm_forward_eval(M, C, x.data(), gamma.data(), beta.data(), run_mean.data(),
                          run_var.data(), eps, y_eval.data());
  std::vector<float> want(x.size());
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < C; ++c)
      want[m * C + c] = static_cast<float>(
          gamma[c] * (x[m * C + c] - static_cast<double>(run_mean[c])) /
              std::sqrt(static_cast<double>(run_var[c]) + eps) +
          beta[c]);
  EXPECT_LE(relative_error(y_eval, want), kTolerance);
}

TEST_P(BatchNormKernels, TrainBackwardMatchesNaiveAndAccumulates) {
  std::vector<float> y(x.size()), mean(C), var(C), inv_std(C);
  batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, y.data(), mean.data(),
                           var.data(), inv_std.data());
  const int64_t n = M * C;
  std::vector<float> dx_n(x.size(), 0.0f), dg_n(C, 0.0f), db_n(C, 0.0f);
  batch_norm_backward_train_naive(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(),
                                  dy.data(), dx_n.data(), dg_n.data(), db_n.data());

  const std::vector<float> start_dx = random_floats(n, 47);
  const std::vector<float> start_dg = random_floats(C, 48);
  const std::vector<float> start_db = random_floats(C, 49);
  std::vector<float> dx = start_dx, dg = start_dg, db = start_db;
  batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), dy.data(),
                            dx.data(), dg.data(), db.data());
  EXPECT_LE(relative_error(minus(dx, start_dx), dx_n), kTolerance);
  EXPECT_LE(relative_error(minus(dg, start_dg), dg_n), kTolerance);
  EXPECT_LE(relative_error(minus(db, start_db), db_n), kTolerance);

  // Each output may be null on its own.
  std::vector<float> dx_only(x.size(), 0.0f), dg_only(C, 0.0f);
  batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), dy.data(),
                            dx_only.data(), nullptr, nullptr);
  batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), dy.data(),
                            nullptr, dg_only.data(), nullptr);
  EXPECT_LE(relative_error(dx_only, dx_n), kTolerance);
  EXPECT_LE(relative_error(dg_only, dg_n), kTolerance);

  // overwrite_dx writes every element of dx (here NaN before), with and without the ReLU mask.
  for (const bool masked : {false, true}) {
    SCOPED_TRACE(masked ? "with relu_out" : "without relu_out");
    const std::vector<float> all_positive(x.size(), 1.0f);  // a mask that keeps everything
    std::vector<float> written(x.size(), std::numeric_limits<float>::quiet_NaN());
    batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), dy.data(),
                              written.data(), nullptr, nullptr, nullptr, 0,
                              masked ? all_positive.data() : nullptr, /*overwrite_dx=*/true);
    EXPECT_LE(relative_error(written, dx_n), kTolerance);
  }
}

TEST_P(BatchNormKernels, WithReluMatchesBatchNormThenRelu) {
  // Forward: max(0, y) of the plain kernels, in training and in inference.
  std::vector<float> y(x.size()), mean(C), var(C), inv_std(C);
  batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, y.data(), mean.data(),
                           var.data(), inv_std.data());
  std::vector<float> z(x.size(), std::numeric_limits<float>::quiet_NaN()), mean_z(C), var_z(C), inv_std_z(C);
  batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, z.data(), mean_z.data(),
                           var_z.data(), inv_std_z.data(), nullptr, /*relu=*/true);
  std::vector<float> want_z(x.size());
  int64_t positive = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    want_z[i] = std::max(y[i], 0.0f);
    positive += y[i] > 0.0f;
  }
  ASSERT_GT(positive, 0);
  ASSERT_LT(positive, M * C);  // both sides of the ReLU are exercised
  EXPECT_EQ(z, want_z);
  EXPECT_EQ(mean_z, mean);
  EXPECT_EQ(inv_std_z, inv_std);
  std::vector<float> y_eval(x.size()), z_eval(x.size());
  batch_norm_forward_eval(M, C, x.data(), gamma.data(), beta.data(), mean.data(), var.data(), eps, y_eval.data());
  batch_norm_forward_eval(M, C, x.data(), gamma.data(), beta.data(), mean.data(), var.data(), eps, z_eval.data(),
                          /*relu=*/true);
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(z_eval[i], std::max(y_eval[i], 0.0f)) << i;

  // Backward: dy masked by the ReLU, then the plain backward (naive), accumulating.
  std::vector<float> masked(dy.size());
  for (size_t i = 0; i < dy.size(); ++i) masked[i] = z[i] > 0.0f ? dy[i] : 0.0f;
  std::vector<float> dx_n(x.size(), 0.0f), dg_n(C, 0.0f), db_n(C, 0.0f);
  batch_norm_backward_train_naive(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), masked.data(),
                                  dx_n.data(), dg_n.data(), db_n.data());
  const std::vector<float> start_dx = random_floats(M * C, 50);
  std::vector<float> dx = start_dx, dg(C, 0.0f), db(C, 0.0f);
  batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), dy.data(), dx.data(),
                            dg.data(), db.data(), nullptr, 0, /*relu_out=*/z.data());
  EXPECT_LE(relative_error(minus(dx, start_dx), dx_n), kTolerance);
  EXPECT_LE(relative_error(dg, dg_n), kTolerance);
  EXPECT_LE(relative_error(db, db_n), kTolerance);
  // Masking on the fly is masking first, element for element: the same bits as the plain
  // kernel on dy masked by z beforehand.
  std::vector<float> dx_z = start_dx, dg_z(C, 0.0f), db_z(C, 0.0f);
  batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), masked.data(), dx_z.data(),
                            dg_z.data(), db_z.data());
  EXPECT_EQ(dx, dx_z);
  EXPECT_EQ(dg, dg_z);
  EXPECT_EQ(db, db_z);
}

// Far from zero (mean 1e6, std 0.6; float steps of 0.0625 there), E[x^2] - E[x]^2 of x itself
// would cancel 12 of double's 16 digits; the statistics must still match the naive two-pass
// ones. (y cannot: the stored float mean is itself 0.03 off at 1e6.)
TEST(BatchNormStatistics, StayAccurateFarFromZero) {
  const int64_t M = 2048, C = 4;
  const std::vector<float> x = random_floats(M * C, 51, 1e6f - 1.0f, 1e6f + 1.0f);
  const std::vector<float> gamma(C, 1.0f), beta(C, 0.0f);
  std::vector<float> y(x.size()), mean(C), var(C), inv_std(C), y_n(x.size()), mean_n(C), var_n(C), inv_std_n(C);
  batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), 1e-3f, y.data(), mean.data(), var.data(),
                           inv_std.data());
  batch_norm_forward_train_naive(M, C, x.data(), gamma.data(), beta.data(), 1e-3f, y_n.data(), mean_n.data(),
                                 var_n.data(), inv_std_n.data());
  EXPECT_EQ(mean, mean_n);
  EXPECT_LE(relative_error(var, var_n), 1e-6);
  EXPECT_LE(relative_error(inv_std, inv_std_n), 1e-6);
}

TEST_P(BatchNormKernels, InputGradientSumsToZeroPerChannel) {
  // With batch statistics, shifting every x of a channel changes nothing, so sum_m dx = 0.
  std::vector<float> y(x.size()), mean(C), var(C), inv_std(C);
  batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, y.data(), mean.data(),
                           var.data(), inv_std.data());
  std::vector<float> dx(x.size(), 0.0f);
  batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(), dy.data(),
                            dx.data(), nullptr, nullptr);
  for (int64_t c = 0; c < C; ++c) {
    double sum = 0.0, scale = 0.0;
    for (int64_t m = 0; m < M; ++m) {
      sum += dx[m * C + c];
      scale += std::fabs(dx[m * C + c]);
    }
    EXPECT_LE(std::fabs(sum), 1e-4 * scale + 1e-6) << "channel " << c;
  }
}

// Synchronised batch norm without MPI: two threads play two processes, each holding half of
// the rows, and the reduce hook sums their per-channel sums through shared slots. Each half's
// output, the statistics and the input gradient must equal the whole batch's; dgamma and
// dbeta stay per half and add up to the whole batch's.
TEST_P(BatchNormKernels, SynchronisedHalvesEqualTheWholeBatch) {
  const int64_t half = M / 2;
  const int64_t lo[2] = {0, half}, rows[2] = {half, M - half};
  std::barrier sync(2);
  std::vector<double> slots[2];
  auto make_reduce = [&](int me) {
    return BatchStatsReduce([&, me](double* v, int64_t n) {
      slots[me].assign(v, v + n);
      sync.arrive_and_wait();
      for (int64_t i = 0; i < n; ++i) v[i] = slots[0][i] + slots[1][i];
      sync.arrive_and_wait();  // both have read the slots before either writes them again
    });
  };
  std::vector<float> y(x.size()), dx(x.size(), 0.0f), dg[2], db[2], mean[2], var[2], inv_std[2];
  int64_t total[2] = {0, 0};
  auto process = [&](int me) {
    const BatchStatsReduce reduce = make_reduce(me);
    const size_t off = static_cast<size_t>(lo[me] * C);
    mean[me].resize(C), var[me].resize(C), inv_std[me].resize(C), dg[me].assign(C, 0.0f), db[me].assign(C, 0.0f);
    total[me] = batch_norm_forward_train(rows[me], C, x.data() + off, gamma.data(), beta.data(), eps, y.data() + off,
                                         mean[me].data(), var[me].data(), inv_std[me].data(), &reduce);
    batch_norm_backward_train(rows[me], C, x.data() + off, gamma.data(), mean[me].data(), inv_std[me].data(),
                              dy.data() + off, dx.data() + off, dg[me].data(), db[me].data(), &reduce, total[me]);
  };
  std::thread other(process, 1);
  process(0);
  other.join();

  std::vector<float> y_w(x.size()), dx_w(x.size(), 0.0f), dg_w(C, 0.0f), db_w(C, 0.0f), mean_w(C), var_w(C), inv_std_w(C);
  EXPECT_EQ(batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), eps, y_w.data(), mean_w.data(),
                                     var_w.data(), inv_std_w.data()),
            M);
  batch_norm_backward_train(M, C, x.data(), gamma.data(), mean_w.data(), inv_std_w.data(), dy.data(), dx_w.data(),
                            dg_w.data(), db_w.data());
  EXPECT_EQ(total[0], M);
  EXPECT_EQ(total[1], M);
  EXPECT_LE(relative_error(y, y_w), kTolerance);
  EXPECT_LE(relative_error(dx, dx_w), kTolerance);
  for (int me = 0; me < 2; ++me) {
    EXPECT_LE(relative_error(mean[me], mean_w), kTolerance);
    EXPECT_LE(relative_error(var[me], var_w), kTolerance);
  }
  std::vector<float> dg_sum(C), db_sum(C);
  for (int64_t c = 0; c < C; ++c) dg_sum[c] = dg[0][c] + dg[1][c], db_sum[c] = db[0][c] + db[1][c];
  EXPECT_LE(relative_error(dg_sum, dg_w), kTolerance);
  EXPECT_LE(relative_error(db_sum, db_w), kTolerance);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormKernels,
                         testing::Values(BatchNormCase{"m7_c3", 7, 3, 0.0f},
                                         BatchNormCase{"m392_c64", 392, 64, 0.0f},
                                         BatchNormCase{"m1568_c1", 1568, 1, 0.5f},
                                         BatchNormCase{"m12544_c64_offset3", 12544, 64, 3.0f},
                                         BatchNormCase{"m100000_c16_offset10", 100000, 16, 10.0f},
                                         BatchNormCase{"m4096_c8_offset100", 4096, 8, 100.0f}),
                         bn_case_name);

}  // namespace
}  // namespace kiln
