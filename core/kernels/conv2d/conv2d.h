// Convolution kernels on raw NHWC buffers: the fast paths (im2col + sgemm, direct loops for thin
// layers, Winograd for wide 3x3 ones) and, beside them, a naive direct-loop reference used by
// tests and as the benchmark baseline.
//
// Shapes: x [N,H,W,C], w [KH,KW,C,F], b [F], y [N,Ho,Wo,F]. Cross-correlation (no kernel
// flip), as in Keras and PyTorch. Backward kernels ADD into their outputs (+=).
#pragma once

#include <cstdint>

namespace kiln {

struct Conv2dShape {
  int64_t N, H, W, C;   // input
  int64_t KH, KW, F;    // kernel
  int64_t stride_h, stride_w;
  int64_t pad_top, pad_left;  // zero padding before the first row / column
  int64_t Ho, Wo;             // output

  // Keras' rules: "valid" -> Ho = (H - KH) / s + 1; "same" -> Ho = ceil(H / s) with total
  // padding max((Ho - 1) * s + KH - H, 0), the smaller half on top/left.
  static Conv2dShape make(int64_t N, int64_t H, int64_t W, int64_t C, int64_t KH, int64_t KW,
                          int64_t F, int64_t stride, bool same_padding);
  int64_t rows() const { return N * Ho * Wo; }   // rows of the im2col matrix
  int64_t cols() const { return KH * KW * C; }    // columns of the im2col matrix
  double flops_forward() const { return 2.0 * rows() * cols() * F; }
};

// y = conv(x, w) + b (b may be null). y is overwritten.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
// dx += conv_transpose(dy, w)
void conv2d_backward_input(const Conv2dShape& s, const float* dy, const float* w, float* dx);
// dw += im2col(x)^T dy ; db += sum of dy over N,Ho,Wo (db may be null)
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                            float* db);

// Thin layers run as direct loops (direct.cpp) instead of im2col + sgemm, per pass:
// - forward: an im2col matrix of at most kConv2dDirectMaxColumns columns (3x3 kernels on
//   1-channel images) up to kConv2dDirectMaxForwardFilters filters, or, stride 1, up to
//   kConv2dDirectSmallMaxColumns columns with at most kConv2dDirectSmallMaxFilters filters
//   (task1's second layer: 3x3x4 -> 8);
// - weight gradient: the same, up to kConv2dDirectMaxWeightGradFilters filters for the first
//   case and 1, 2, 4 or 8 filters for the second;
// - input gradient, stride 1: at most kConv2dDirectMaxInputGradChannels input channels and a
//   transposed window KH*KW*F of at most kConv2dDirectMaxInputGradColumns (task1's second layer:
//   4 channels, 72), run as the forward loops over dy with the rotated kernel.
// The limits come from bench/bench_kernels.cpp (BM_Conv2dForm) on the lab's layers; every form
// is exposed so tests and benchmarks can compare them.
constexpr int64_t kConv2dDirectMaxColumns = 9;
constexpr int64_t kConv2dDirectMaxForwardFilters = 16;
constexpr int64_t kConv2dDirectMaxWeightGradFilters = 64;
constexpr int64_t kConv2dDirectSmallMaxColumns = 36;
constexpr int64_t kConv2dDirectSmallMaxFilters = 8;
constexpr int64_t kConv2dDirectMaxInputGradChannels = 8;
constexpr int64_t kConv2dDirectMaxInputGradColumns = 72;
bool conv2d_forward_prefers_direct(const Conv2dShape& s);
bool conv2d_input_grad_prefers_direct(const Conv2dShape& s);
void conv2d_backward_input_direct(const Conv2dShape& s, const float* dy, const float* w, float* dx);
bool conv2d_weight_grad_prefers_direct(const Conv2dShape& s);
void conv2d_forward_direct(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_weight_direct(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                                   float* db);
void conv2d_forward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_input_im2col(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_im2col(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                                   float* db);

// 3x3 stride-1 layers with at least kConv2dWinogradMinChannels input channels and filters run
// their forward pass, input gradient and weight gradient as Winograd F(2x2, 3x3)
// (winograd.cpp): 2.25x fewer GEMM FLOPs than im2col + sgemm.
constexpr int64_t kConv2dWinogradMinChannels = 32;
bool conv2d_prefers_winograd(const Conv2dShape& s);
void conv2d_forward_winograd(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_input_winograd(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_winograd(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db);

// db[f] += sum over the rows of dy [rows, F] (the bias gradient of every form).
void conv2d_add_bias_grad(int64_t rows, int64_t F, const float* dy, float* db);

// The input gradient of a stride-1 convolution is a convolution of dy with the kernel rotated
// by 180 degrees, C and F swapped ([KH,KW,F,C]), and KH-1-pad leading padding: its shape, and
// the rotated kernel (KH*KW*C*F floats).
Conv2dShape conv2d_transposed_shape(const Conv2dShape& s);
void conv2d_rotate_kernel(const Conv2dShape& s, const float* w, float* rotated);

// Direct loops, no GEMM: the test oracle. Same contracts as above.
void conv2d_forward_naive(const Conv2dShape& s, const float* x, const float* w, const float* b,
                          float* y);
void conv2d_backward_input_naive(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_naive(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                                  float* db);

// Rows of the im2col matrix the fast kernels process per sgemm (all of them for small inputs):
// whole images where they fit a fixed column-buffer budget. Exposed for tests and benchmarks.
int64_t conv2d_chunk_rows(const Conv2dShape& s);

// im2col for NHWC: row r = (n, oy, ox) of the output, column (ky, kx, c); zero where the
// window leaves the image. cols has (row_end - row_begin) * s.cols() floats.
void im2col(const Conv2dShape& s, const float* x, int64_t row_begin, int64_t row_end, float* cols);
// The adjoint of im2col: dx += scatter(dcols) for rows [row_begin, row_end).
void col2im(const Conv2dShape& s, const float* dcols, int64_t row_begin, int64_t row_end, float* dx);

}  // namespace kiln
