// Kernel benchmarks on the Task 2 second-layer convolution (batch 16, 28x28, 64 -> 64
// channels, 3x3, same, stride 1): kiln's im2col + sgemm conv against the naive loops, and raw
// sgemm on the same GEMM shapes (M = 16*28*28, K = 576, F = 64) as the ceiling to compare with.
// Times are wall-clock (UseRealTime), since the work runs on all threads.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>
#include <vector>

#include "core/kernels/batch_norm.h"
#include "core/kernels/conv2d/forms.h"
#include "core/kernels/max_pool2d.h"
#include "core/runtime/random.h"

namespace {

using kiln::Conv2dShape;

std::vector<float> random_floats(int64_t n, uint64_t seed) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = 2.0f * kiln::uniform_at(seed, static_cast<uint64_t>(i)) - 1.0f;
  return v;
}

Conv2dShape task2_conv2() { return Conv2dShape::make(16, 28, 28, 64, 3, 3, 64, 1, true); }
// The same layer on as many images as the conv puts in one sgemm (one chunk of rows).
Conv2dShape task2_conv2_one_chunk() {
  const Conv2dShape s = task2_conv2();
  return Conv2dShape::make(kiln::conv2d_chunk_rows(s) / (s.Ho * s.Wo), 28, 28, 64, 3, 3, 64, 1,
                           true);
}

// Everything one conv layer's forward and backward touch.
struct ConvBuffers {
  Conv2dShape s;
  std::vector<float> x, w, b, y, dy, dx, dw, db;
  explicit ConvBuffers(const Conv2dShape& shape)
      : s(shape),
        x(random_floats(s.N * s.H * s.W * s.C, 1)),
        w(random_floats(s.cols() * s.F, 2)),
        b(random_floats(s.F, 3)),
        y(static_cast<size_t>(s.rows() * s.F)),
        dy(random_floats(s.rows() * s.F, 4)),
        dx(x.size(), 0.0f),
        dw(w.size(), 0.0f),
        db(b.size(), 0.0f) {}
};

void report(benchmark::State& state, double flops_per_iteration, int64_t images_per_iteration) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops_per_iteration * static_cast<double>(state.iterations()) * 1e-9,
      benchmark::Counter::kIsRate);
  state.SetItemsProcessed(state.iterations() * images_per_iteration);
}

void BM_Conv2dForward(benchmark::State& state, Conv2dShape s) {
  ConvBuffers c(s);
  for (auto _ : state) {
    kiln::conv2d_forward(c.s, c.x.data(), c.w.data(), c.b.data(), c.y.data());
    benchmark::DoNotOptimize(c.y.data());
  }
  report(state, s.flops_forward(), s.N);
}

void BM_Conv2dFwdBwd(benchmark::State& state, Conv2dShape s) {
  ConvBuffers c(s);
  for (auto _ : state) {
    kiln::conv2d_forward(c.s, c.x.data(), c.w.data(), c.b.data(), c.y.data());
    kiln::conv2d_backward_input(c.s, c.dy.data(), c.w.data(), c.dx.data());
    kiln::conv2d_backward_weight(c.s, c.x.data(), c.dy.data(), c.dw.data(), c.db.data());
    benchmark::DoNotOptimize(c.dx.data());
    benchmark::DoNotOptimize(c.dw.data());
  }
  report(state, 3.0 * s.flops_forward(), s.N);
}

void BM_Conv2dBackwardInput(benchmark::State& state, Conv2dShape s) {
  ConvBuffers c(s);
  for (auto _ : state) {
    kiln::conv2d_backward_input(c.s, c.dy.data(), c.w.data(), c.dx.data());
    benchmark::DoNotOptimize(c.dx.data());
  }
  report(state, s.flops_forward(), s.N);
}

void BM_Conv2dBackwardWeight(benchmark::State& state, Conv2dShape s) {
  ConvBuffers c(s);
  for (auto _ : state) {
    kiln::conv2d_backward_weight(c.s, c.x.data(), c.dy.data(), c.dw.data(), c.db.data());
    benchmark::DoNotOptimize(c.dw.data());
  }
  report(state, s.flops_forward(), s.N);
}

void BM_Conv2dFwdBwdNaive(benchmark::State& state, Conv2dShape s) {
  ConvBuffers c(s);
  for (auto _ : state) {
    kiln::conv2d_forward_naive(c.s, c.x.data(), c.w.data(), c.b.data(), c.y.data());
    kiln::conv2d_backward_input_naive(c.s, c.dy.data(), c.w.data(), c.dx.data());
    kiln::conv2d_backward_weight_naive(c.s, c.x.data(), c.dy.data(), c.dw.data(), c.db.data());
    benchmark::DoNotOptimize(c.dx.data());
    benchmark::DoNotOptimize(c.dw.data());
  }
  report(state, 3.0 * s.flops_forward(), s.N);
}

// The three GEMMs of a conv layer's im2col form: forward cols[M,K] x W[K,F]; backward-input
// dy[M,F] x W^T (before col2im); backward-weight cols^T x dy[M,F]. On the whole batch, and on
// one chunk of rows, the size the conv kernels actually hand to sgemm.
enum class ConvGemm { kForward, kBackwardInput, kBackwardWeight, kAllThree };

void BM_Sgemm(benchmark::State& state, Conv2dShape s, ConvGemm which) {
  const int M = static_cast<int>(s.rows()), K = static_cast<int>(s.cols()), F = static_cast<int>(s.F);
  const std::vector<float> cols = random_floats(int64_t{M} * K, 5);
  const std::vector<float> w = random_floats(int64_t{K} * F, 6);
  const std::vector<float> dy = random_floats(int64_t{M} * F, 7);
  std::vector<float> y(static_cast<size_t>(M) * F), dcols(cols.size()), dw(w.size());
  for (auto _ : state) {
    if (which == ConvGemm::kForward || which == ConvGemm::kAllThree)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, F, K, 1.0f, cols.data(), K,
                  w.data(), F, 0.0f, y.data(), F);
    if (which == ConvGemm::kBackwardInput || which == ConvGemm::kAllThree)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, F, 1.0f, dy.data(), F, w.data(),
                  F, 0.0f, dcols.data(), K);
    if (which == ConvGemm::kBackwardWeight || which == ConvGemm::kAllThree)
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, F, M, 1.0f, cols.data(), K,
                  dy.data(), F, 1.0f, dw.data(), F);
    benchmark::DoNotOptimize(y.data());
    benchmark::DoNotOptimize(dcols.data());
    benchmark::DoNotOptimize(dw.data());
  }
  report(state, (which == ConvGemm::kAllThree ? 3.0 : 1.0) * s.flops_forward(), s.N);
}

// One pass of one convolution form on c's buffers.
void run_form(ConvBuffers& c, kiln::Conv2dPass pass, kiln::Conv2dForm form) {
  switch (pass) {
    case kiln::Conv2dPass::kForward:
      kiln::conv2d_forward_as(form, c.s, c.x.data(), c.w.data(), c.b.data(), c.y.data());
      benchmark::DoNotOptimize(c.y.data());
      break;
    case kiln::Conv2dPass::kInputGrad:
      kiln::conv2d_backward_input_as(form, c.s, c.dy.data(), c.w.data(), c.dx.data());
      benchmark::DoNotOptimize(c.dx.data());
      break;
    case kiln::Conv2dPass::kWeightGrad:
      kiln::conv2d_backward_weight_as(form, c.s, c.x.data(), c.dy.data(), c.dw.data(), c.db.data());
      benchmark::DoNotOptimize(c.dw.data());
      break;
  }
}

// Thin layers: the direct loops against the GEMM form the rules would use otherwise
// (conv2d_choose_gemm: im2col + sgemm, or the transposed form of the input gradient), on the
// lab's first layers (and task1's second). These benchmarks set the direct thresholds in
// core/kernels/conv2d/choose.cpp.
enum class ConvForm { kDirect, kIm2col };
using ConvPass = kiln::Conv2dPass;

void BM_Conv2dForm(benchmark::State& state, Conv2dShape s, ConvPass pass, ConvForm form) {
  ConvBuffers c(s);
  const kiln::Conv2dForm f = form == ConvForm::kDirect ? kiln::Conv2dForm::kDirect : kiln::conv2d_choose_gemm(pass, s);
  for (auto _ : state) run_form(c, pass, f);
  report(state, s.flops_forward(), s.N);
}

Conv2dShape task1_conv1() { return Conv2dShape::make(256, 28, 28, 1, 3, 3, 4, 1, true); }
Conv2dShape task1_conv2() { return Conv2dShape::make(256, 14, 14, 4, 3, 3, 8, 1, true); }
Conv2dShape task2_conv1() { return Conv2dShape::make(16, 28, 28, 1, 3, 3, 64, 1, true); }
Conv2dShape task3_conv1() { return Conv2dShape::make(70, 32, 32, 3, 3, 3, 128, 1, true); }

#define KILN_CONV_FORMS(name, shape)                                                                     \
  BENCHMARK_CAPTURE(BM_Conv2dForm, name##_forward_direct, shape(), ConvPass::kForward, ConvForm::kDirect) \
      ->UseRealTime()                                                                                    \
      ->Unit(benchmark::kMicrosecond);                                                                   \
  BENCHMARK_CAPTURE(BM_Conv2dForm, name##_forward_im2col, shape(), ConvPass::kForward, ConvForm::kIm2col) \
      ->UseRealTime()                                                                                    \
      ->Unit(benchmark::kMicrosecond);                                                                   \
  BENCHMARK_CAPTURE(BM_Conv2dForm, name##_weight_grad_direct, shape(), ConvPass::kWeightGrad,           \
                    ConvForm::kDirect)                                                                   \
      ->UseRealTime()                                                                                    \
      ->Unit(benchmark::kMicrosecond);                                                                   \
  BENCHMARK_CAPTURE(BM_Conv2dForm, name##_weight_grad_im2col, shape(), ConvPass::kWeightGrad,           \
                    ConvForm::kIm2col)                                                                   \
      ->UseRealTime()                                                                                    \
      ->Unit(benchmark::kMicrosecond)

KILN_CONV_FORMS(task1_conv1_b256, task1_conv1);
KILN_CONV_FORMS(task1_conv2_b256, task1_conv2);
BENCHMARK_CAPTURE(BM_Conv2dForm, task1_conv2_b256_input_grad_direct, task1_conv2(), ConvPass::kInputGrad,
                  ConvForm::kDirect)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Conv2dForm, task1_conv2_b256_input_grad_im2col, task1_conv2(), ConvPass::kInputGrad,
                  ConvForm::kIm2col)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);
KILN_CONV_FORMS(task2_conv1_b16, task2_conv1);
KILN_CONV_FORMS(task3_conv1_b70, task3_conv1);

// Wide 3x3 layers: Winograd F(2x2, 3x3) and F(4x4, 3x3) against the GEMM form, forward, input
// gradient and weight gradient; they set the Winograd thresholds in
// core/kernels/conv2d/choose.cpp. The GFLOP/s counter is the direct form's FLOP count, so all
// forms are on one scale.
enum class WideForm { kWinograd, kWinograd4, kIm2col };

void BM_Conv3x3Form(benchmark::State& state, Conv2dShape s, ConvPass pass, WideForm form) {
  ConvBuffers c(s);
  kiln::Conv2dForm f = kiln::conv2d_choose_gemm(pass, s);
  if (form == WideForm::kWinograd) f = kiln::Conv2dForm::kWinograd;
  if (form == WideForm::kWinograd4) f = kiln::Conv2dForm::kWinograd4;
  for (auto _ : state) run_form(c, pass, f);
  report(state, s.flops_forward(), s.N);
}

Conv2dShape narrow_32x32_b16() { return Conv2dShape::make(16, 28, 28, 32, 3, 3, 32, 1, true); }
Conv2dShape task2_block1_conv2() { return Conv2dShape::make(16, 28, 28, 64, 3, 3, 64, 1, true); }
Conv2dShape task2_block2_conv1() { return Conv2dShape::make(16, 14, 14, 64, 3, 3, 128, 1, true); }
Conv2dShape task2_block2_conv2() { return Conv2dShape::make(16, 14, 14, 128, 3, 3, 128, 1, true); }
Conv2dShape task2_block3_conv2() { return Conv2dShape::make(16, 7, 7, 128, 3, 3, 128, 1, true); }
Conv2dShape task3_block1_conv2() { return Conv2dShape::make(70, 32, 32, 128, 3, 3, 128, 1, true); }
Conv2dShape task3_block2_conv1() { return Conv2dShape::make(70, 16, 16, 128, 3, 3, 128, 1, true); }
Conv2dShape task3_block3_conv1() { return Conv2dShape::make(70, 8, 8, 128, 3, 3, 256, 1, true); }
Conv2dShape task3_block3_conv2() { return Conv2dShape::make(70, 8, 8, 256, 3, 3, 256, 1, true); }

#define KILN_WIDE_FORMS(name, shape)                                                                        \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_forward_winograd, shape(), ConvPass::kForward, WideForm::kWinograd) \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_forward_winograd4x4, shape(), ConvPass::kForward,               \
                    WideForm::kWinograd4)                                                                    \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_forward_im2col, shape(), ConvPass::kForward, WideForm::kIm2col)     \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_input_grad_winograd, shape(), ConvPass::kInputGrad,              \
                    WideForm::kWinograd)                                                                     \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_input_grad_winograd4x4, shape(), ConvPass::kInputGrad,            \
                    WideForm::kWinograd4)                                                                    \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_input_grad_im2col, shape(), ConvPass::kInputGrad,                \
                    WideForm::kIm2col)                                                                       \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_weight_grad_winograd, shape(), ConvPass::kWeightGrad,            \
                    WideForm::kWinograd)                                                                     \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_weight_grad_winograd4x4, shape(), ConvPass::kWeightGrad,           \
                    WideForm::kWinograd4)                                                                    \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond);                                                                       \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_weight_grad_im2col, shape(), ConvPass::kWeightGrad,              \
                    WideForm::kIm2col)                                                                       \
      ->UseRealTime()                                                                                        \
      ->Unit(benchmark::kMicrosecond)

KILN_WIDE_FORMS(c32_f32_28x28_b16, narrow_32x32_b16);
KILN_WIDE_FORMS(task2_block1_conv2_b16, task2_block1_conv2);
KILN_WIDE_FORMS(task2_block2_conv1_b16, task2_block2_conv1);
KILN_WIDE_FORMS(task2_block2_conv2_b16, task2_block2_conv2);
KILN_WIDE_FORMS(task2_block3_conv2_b16, task2_block3_conv2);
KILN_WIDE_FORMS(task3_block1_conv2_b70, task3_block1_conv2);
KILN_WIDE_FORMS(task3_block2_conv1_b70, task3_block2_conv1);
KILN_WIDE_FORMS(task3_block3_conv1_b70, task3_block3_conv1);
KILN_WIDE_FORMS(task3_block3_conv2_b70, task3_block3_conv2);

// F(4x4) against F(2x2) on few images, across kWinograd4MinSavedProducts in choose.cpp: per
// (c, f) pair F(4x4) saves 112 products on an 8x8 image, 208 on a 14x14 one.
Conv2dShape c256_8x8(int64_t batch) { return Conv2dShape::make(batch, 8, 8, 256, 3, 3, 256, 1, true); }
Conv2dShape c128_14x14(int64_t batch) { return Conv2dShape::make(batch, 14, 14, 128, 3, 3, 128, 1, true); }

#define KILN_WINOGRAD_BATCH(name, shape)                                                                   \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_forward_winograd, shape, ConvPass::kForward, WideForm::kWinograd) \
      ->UseRealTime()                                                                                      \
      ->Unit(benchmark::kMicrosecond);                                                                     \
  BENCHMARK_CAPTURE(BM_Conv3x3Form, name##_forward_winograd4x4, shape, ConvPass::kForward,                \
                    WideForm::kWinograd4)                                                                  \
      ->UseRealTime()                                                                                      \
      ->Unit(benchmark::kMicrosecond)

KILN_WINOGRAD_BATCH(c256_8x8_b1, c256_8x8(1));
KILN_WINOGRAD_BATCH(c256_8x8_b4, c256_8x8(4));
KILN_WINOGRAD_BATCH(c256_8x8_b8, c256_8x8(8));
KILN_WINOGRAD_BATCH(c256_8x8_b12, c256_8x8(12));
KILN_WINOGRAD_BATCH(c256_8x8_b14, c256_8x8(14));
KILN_WINOGRAD_BATCH(c128_14x14_b1, c128_14x14(1));
KILN_WINOGRAD_BATCH(c128_14x14_b4, c128_14x14(4));
KILN_WINOGRAD_BATCH(c128_14x14_b5, c128_14x14(5));
KILN_WINOGRAD_BATCH(c128_14x14_b7, c128_14x14(7));
KILN_WINOGRAD_BATCH(c128_14x14_b8, c128_14x14(8));

// The pool and batch norm that follow that conv in the Task 2 model, for scale.
void BM_MaxPool2dFwdBwd(benchmark::State& state) {
  const kiln::Pool2dShape s = kiln::Pool2dShape::make(16, 28, 28, 64, 2, 2, false);
  const std::vector<float> x = random_floats(s.N * s.H * s.W * s.C, 8);
  const std::vector<float> dy = random_floats(s.N * s.Ho * s.Wo * s.C, 9);
  std::vector<float> y(dy.size()), dx(x.size(), 0.0f);
  std::vector<int32_t> argmax(dy.size());
  for (auto _ : state) {
    kiln::max_pool2d_forward(s, x.data(), y.data(), argmax.data());
    kiln::max_pool2d_backward(s, dy.data(), argmax.data(), dx.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * s.N);
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(sizeof(float)) *
                          static_cast<int64_t>(2 * x.size() + 2 * dy.size()));
}

void BM_BatchNormFwdBwd(benchmark::State& state) {
  const int64_t M = 16 * 28 * 28, C = 64;
  const std::vector<float> x = random_floats(M * C, 10);
  const std::vector<float> dy = random_floats(M * C, 11);
  const std::vector<float> gamma(C, 1.0f), beta(C, 0.0f);
  std::vector<float> y(x.size()), dx(x.size(), 0.0f), mean(C), var(C), inv_std(C);
  std::vector<float> dgamma(C, 0.0f), dbeta(C, 0.0f);
  for (auto _ : state) {
    kiln::batch_norm_forward_train(M, C, x.data(), gamma.data(), beta.data(), 1e-3f, y.data(),
                                   mean.data(), var.data(), inv_std.data());
    kiln::batch_norm_backward_train(M, C, x.data(), gamma.data(), mean.data(), inv_std.data(),
                                    dy.data(), dx.data(), dgamma.data(), dbeta.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.SetItemsProcessed(state.iterations() * 16);
  // Forward reads x twice for the statistics, then x and writes y; backward reads x, dy twice
  // and reads/writes dx.
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(sizeof(float)) * M * C * 9);
}

BENCHMARK_CAPTURE(BM_Conv2dForward, task2_conv2, task2_conv2())
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv2dBackwardInput, task2_conv2, task2_conv2())
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv2dBackwardWeight, task2_conv2, task2_conv2())
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Conv2dFwdBwd, task2_conv2, task2_conv2())
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// The naive loops take seconds per iteration: one iteration per repetition is enough.
BENCHMARK_CAPTURE(BM_Conv2dFwdBwdNaive, task2_conv2, task2_conv2())
    ->UseRealTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sgemm, task2_conv2_forward, task2_conv2(), ConvGemm::kForward)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sgemm, task2_conv2_backward_input, task2_conv2(), ConvGemm::kBackwardInput)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sgemm, task2_conv2_backward_weight, task2_conv2(), ConvGemm::kBackwardWeight)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sgemm, task2_conv2_all_three, task2_conv2(), ConvGemm::kAllThree)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sgemm, task2_conv2_one_chunk_forward, task2_conv2_one_chunk(),
                  ConvGemm::kForward)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Sgemm, task2_conv2_one_chunk_all_three, task2_conv2_one_chunk(),
                  ConvGemm::kAllThree)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MaxPool2dFwdBwd)->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_BatchNormFwdBwd)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace
