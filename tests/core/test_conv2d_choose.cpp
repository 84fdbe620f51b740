// The form each convolution of the lab's three networks gets, per pass, from the one table in
// core/kernels/conv2d/choose.cpp. A change to a threshold that moves one of these layers to
// another form shows up here, so it is made on purpose (with bench/bench_kernels.cpp's form
// benchmarks to back it), not by accident.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/kernels/conv2d/choose.h"

namespace kiln {
namespace {

struct LabLayer {
  std::string name;
  int64_t batch;    // the lab's training batch
  int64_t H, C, F;  // square input H x H, 3x3 kernel, stride 1, "same" padding, as in the lab
  Conv2dForm forward, input_grad, weight_grad;
};

using F = Conv2dForm;
const std::vector<LabLayer> kLabLayers = {
    // Task 1 (MNIST, the hand-made CNN): two thin layers, every pass in direct loops.
    {"task1_conv1", 128, 28, 1, 4, F::kDirect, F::kDirect, F::kDirect},
    {"task1_conv2", 128, 14, 4, 8, F::kDirect, F::kDirect, F::kDirect},
    // Task 2 (MNIST, VGG-style): the 1-channel first layer keeps a direct weight gradient,
    // every 64+ channel layer is Winograd F(4x4) in every pass (16 images are enough even at
    // 7x7).
    {"task2_block1_conv1", 16, 28, 1, 64, F::kIm2col, F::kIm2col, F::kDirect},
    {"task2_block1_conv2", 16, 28, 64, 64, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    {"task2_block2_conv1", 16, 14, 64, 128, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    {"task2_block2_conv2", 16, 14, 128, 128, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    {"task2_block3_conv1", 16, 7, 128, 128, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    {"task2_block3_conv2", 16, 7, 128, 128, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    // Task 3 (PatchCamelyon, RGB): the first layer is im2col in every pass.
    {"task3_block1_conv1", 70, 32, 3, 128, F::kIm2col, F::kIm2col, F::kIm2col},
    {"task3_block1_conv2", 70, 32, 128, 128, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    {"task3_block2_conv1", 70, 16, 128, 128, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    {"task3_block3_conv1", 70, 8, 128, 256, F::kWinograd4, F::kWinograd4, F::kWinograd4},
    {"task3_block3_conv2", 70, 8, 256, 256, F::kWinograd4, F::kWinograd4, F::kWinograd4},
};

TEST(Conv2dChoose, TheLabsLayersGetTheseForms) {
  for (const LabLayer& l : kLabLayers) {
    SCOPED_TRACE(l.name);
    for (const int64_t batch : {l.batch, int64_t{256}}) {  // from the lab's batch up, the same forms
      const Conv2dShape s = Conv2dShape::make(batch, l.H, l.H, l.C, 3, 3, l.F, 1, true);
      EXPECT_STREQ(conv2d_form_name(conv2d_choose(Conv2dPass::kForward, s)), conv2d_form_name(l.forward));
      EXPECT_STREQ(conv2d_form_name(conv2d_choose(Conv2dPass::kInputGrad, s)), conv2d_form_name(l.input_grad));
      EXPECT_STREQ(conv2d_form_name(conv2d_choose(Conv2dPass::kWeightGrad, s)), conv2d_form_name(l.weight_grad));
    }
  }
}

// F(4x4) must save 1536 products per (c, f) pair over F(2x2) in one call: 112 per 7x7 or 8x8
// image, 208 per 14x14, 448 per 16x16, 1372 per 28x28, 1792 per 32x32. The only rule that
// looks at the batch.
TEST(Conv2dChoose, Winograd4x4NeedsEnoughImages) {
  const auto forward = [](int64_t batch, int64_t h) {
    return conv2d_choose(Conv2dPass::kForward, Conv2dShape::make(batch, h, h, 128, 3, 3, 128, 1, true));
  };
  for (const int64_t h : {7, 8, 14, 16, 28}) EXPECT_EQ(forward(1, h), Conv2dForm::kWinograd) << h;
  EXPECT_EQ(forward(13, 7), Conv2dForm::kWinograd);   // 1456
  EXPECT_EQ(forward(14, 7), Conv2dForm::kWinograd4);  // 1568
  EXPECT_EQ(forward(13, 8), Conv2dForm::kWinograd);
  EXPECT_EQ(forward(14, 8), Conv2dForm::kWinograd4);
  EXPECT_EQ(forward(7, 14), Conv2dForm::kWinograd);   // 1456
  EXPECT_EQ(forward(8, 14), Conv2dForm::kWinograd4);  // 1664
  EXPECT_EQ(forward(3, 16), Conv2dForm::kWinograd);   // 1344
  EXPECT_EQ(forward(4, 16), Conv2dForm::kWinograd4);  // 1792
  EXPECT_EQ(forward(2, 28), Conv2dForm::kWinograd4);  // 2744
  EXPECT_EQ(forward(1, 32), Conv2dForm::kWinograd4);  // 1792
  // The input gradient counts on dx, the layer's H x W input: with valid padding a 31x31 input
  // has a 29x29 output, 1296 products saved forward, 1792 for the input gradient.
  const Conv2dShape valid = Conv2dShape::make(1, 31, 31, 64, 3, 3, 64, 1, false);
  EXPECT_EQ(conv2d_choose(Conv2dPass::kForward, valid), Conv2dForm::kWinograd);
  EXPECT_EQ(conv2d_choose(Conv2dPass::kInputGrad, valid), Conv2dForm::kWinograd4);
}

// The weight gradient's F(4x4) needs 448 saved products: 4 images of 7x7 or 8x8, 3 of 14x14,
// one of 16x16 or more.
TEST(Conv2dChoose, Winograd4x4WeightGradientNeedsFewerImages) {
  const auto weight_grad = [](int64_t batch, int64_t h) {
    return conv2d_choose(Conv2dPass::kWeightGrad, Conv2dShape::make(batch, h, h, 128, 3, 3, 128, 1, true));
  };
  EXPECT_EQ(weight_grad(3, 8), Conv2dForm::kWinograd);   // 336
  EXPECT_EQ(weight_grad(4, 8), Conv2dForm::kWinograd4);  // 448
  EXPECT_EQ(weight_grad(4, 7), Conv2dForm::kWinograd4);
  EXPECT_EQ(weight_grad(2, 14), Conv2dForm::kWinograd);   // 416
  EXPECT_EQ(weight_grad(3, 14), Conv2dForm::kWinograd4);  // 624
  EXPECT_EQ(weight_grad(1, 16), Conv2dForm::kWinograd4);  // 448
  EXPECT_EQ(weight_grad(256, 32), Conv2dForm::kWinograd4);
}

// The GEMM forms, for shapes away from the direct and Winograd regions.
TEST(Conv2dChoose, GemmFormsByShape) {
  const Conv2dShape pointwise = Conv2dShape::make(2, 8, 8, 64, 1, 1, 64, 1, false);
  for (const Conv2dPass pass : {Conv2dPass::kForward, Conv2dPass::kInputGrad, Conv2dPass::kWeightGrad})
    EXPECT_EQ(conv2d_choose(pass, pointwise), Conv2dForm::kPointwise) << conv2d_pass_name(pass);
  // 1x1 with stride 2 is not pointwise: it samples every other pixel.
  const Conv2dShape strided_1x1 = Conv2dShape::make(2, 8, 8, 64, 1, 1, 64, 2, true);
  EXPECT_EQ(conv2d_choose(Conv2dPass::kForward, strided_1x1), Conv2dForm::kIm2col);
  // The input gradient of a stride-1 5x5 layer: sgemm + col2im below 16 channels, the
  // transposed convolution from 16 up; stride 2 always col2im.
  EXPECT_EQ(conv2d_choose(Conv2dPass::kInputGrad, Conv2dShape::make(2, 8, 8, 12, 5, 5, 32, 1, true)),
            Conv2dForm::kIm2col);
  EXPECT_EQ(conv2d_choose(Conv2dPass::kInputGrad, Conv2dShape::make(2, 8, 8, 16, 5, 5, 32, 1, true)),
            Conv2dForm::kTransposed);
  EXPECT_EQ(conv2d_choose(Conv2dPass::kInputGrad, Conv2dShape::make(2, 8, 8, 64, 3, 3, 64, 2, true)),
            Conv2dForm::kIm2col);
  // Winograd needs both sides wide.
  EXPECT_EQ(conv2d_choose(Conv2dPass::kForward, Conv2dShape::make(2, 8, 8, 31, 3, 3, 64, 1, true)),
            Conv2dForm::kIm2col);
  EXPECT_EQ(conv2d_choose(Conv2dPass::kForward, Conv2dShape::make(2, 8, 8, 32, 3, 3, 32, 1, true)),
            Conv2dForm::kWinograd);
  EXPECT_EQ(conv2d_choose(Conv2dPass::kForward, Conv2dShape::make(16, 8, 8, 32, 3, 3, 32, 1, true)),
            Conv2dForm::kWinograd4);
}

// Whatever conv2d_choose picks, the form can run it.
TEST(Conv2dChoose, TheChosenFormAlwaysApplies) {
  int checked = 0;
  for (const int64_t k : {1, 2, 3, 5})
    for (const int64_t stride : {1, 2})
      for (const int64_t c : {1, 3, 4, 8, 16, 32, 64})
        for (const int64_t f : {1, 4, 8, 16, 32, 64, 128}) {
          const Conv2dShape s = Conv2dShape::make(2, 9, 9, c, k, k, f, stride, true);
          for (const Conv2dPass pass : {Conv2dPass::kForward, Conv2dPass::kInputGrad, Conv2dPass::kWeightGrad}) {
            const Conv2dForm form = conv2d_choose(pass, s);
            EXPECT_TRUE(conv2d_form_applies(form, pass, s))
                << conv2d_form_name(form) << " for " << conv2d_pass_name(pass) << " k" << k << " s" << stride
                << " c" << c << " f" << f;
            ++checked;
          }
        }
  EXPECT_EQ(checked, 4 * 2 * 7 * 7 * 3);
}

}  // namespace
}  // namespace kiln
