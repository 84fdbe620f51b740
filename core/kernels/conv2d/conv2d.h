// Convolution on raw NHWC buffers. Each pass runs the fastest of several forms (im2col + sgemm,
// a single sgemm for 1x1 layers, direct loops for thin layers, Winograd for wide 3x3 ones),
// picked by conv2d_choose (choose.h); the forms themselves, and a naive reference for tests and
// benchmarks, are in forms.h.
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
// dx += conv_transpose(dy, w); with overwrite, dx = conv_transpose(dy, w) (for a gradient
// buffer not yet filled: the Winograd forms write it directly, the others zero it first).
void conv2d_backward_input(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                           bool overwrite = false);
// dw += im2col(x)^T dy ; db += sum of dy over N,Ho,Wo (db may be null)
void conv2d_backward_weight(const Conv2dShape& s, const float* x, const float* dy, float* dw,
                            float* db);
// db[f] += sum over the rows of dy [rows, F]: the bias gradient of every form, and of a
// convolution whose kernel needs no gradient.
void conv2d_add_bias_grad(int64_t rows, int64_t F, const float* dy, float* db);

}  // namespace kiln
