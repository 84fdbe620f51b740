// Internal to kiln's kernels, tests and benchmarks: every form of the convolution on its own,
// and the pieces they share. Library code calls conv2d_forward / conv2d_backward_input /
// conv2d_backward_weight (conv2d.h), which run the form choose.h picks; these are here so the
// tests can check each form against the naive loops on every shape it applies to, and the
// benchmarks can time one form against another.
//
// Same contracts as conv2d.h: x [N,H,W,C], w [KH,KW,C,F], b [F] (may be null), y [N,Ho,Wo,F];
// y is overwritten, the gradients are ADDED into dx, dw, db.
#pragma once

#include <cstdint>

#include "core/kernels/conv2d/choose.h"
#include "core/kernels/conv2d/conv2d.h"
#include "core/runtime/memory.h"

namespace kiln {

// Runs one form; std::invalid_argument when conv2d_form_applies says it cannot.
void conv2d_forward_as(Conv2dForm form, const Conv2dShape& s, const float* x, const float* w,
                       const float* b, float* y);
void conv2d_backward_input_as(Conv2dForm form, const Conv2dShape& s, const float* dy,
                              const float* w, float* dx);
void conv2d_backward_weight_as(Conv2dForm form, const Conv2dShape& s, const float* x,
                               const float* dy, float* dw, float* db);

// The forms (conv2d.cpp: im2col, pointwise, transposed; direct.cpp; winograd.cpp: F(2x2, 3x3);
// winograd4.cpp: F(4x4, 3x3)).
void conv2d_forward_im2col(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_forward_pointwise(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_forward_direct(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_forward_winograd(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_forward_winograd4(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);

void conv2d_backward_input_im2col(const Conv2dShape& s, const float* dy, const float* w, float* dx);  // sgemm + col2im
void conv2d_backward_input_pointwise(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_input_transposed(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_input_direct(const Conv2dShape& s, const float* dy, const float* w, float* dx);
// The Winograd forms can also write dx (=) instead of adding into it (overwrite).
void conv2d_backward_input_winograd(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                                    bool overwrite = false);
void conv2d_backward_input_winograd4(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                                     bool overwrite = false);

void conv2d_backward_weight_im2col(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db);
void conv2d_backward_weight_pointwise(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db);
void conv2d_backward_weight_direct(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db);
void conv2d_backward_weight_winograd(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db);
void conv2d_backward_weight_winograd4(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db);

// Direct loops in double, no GEMM (naive.cpp): the test oracle and the benchmark baseline.
void conv2d_forward_naive(const Conv2dShape& s, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_input_naive(const Conv2dShape& s, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_naive(const Conv2dShape& s, const float* x, const float* dy, float* dw, float* db);

// The direct forms keep one pointer per kernel row on the stack: at most this many rows.
constexpr int64_t kConv2dDirectMaxKernelRows = 16;

// sums[f] += sum over the rows of dy [rows, F], on one thread (one output row's share of the
// bias gradient in the direct form, a thread's share in conv2d_add_bias_grad).
void conv2d_sum_by_filter(const float* dy, int64_t rows, int64_t F, double* sums);

// The input gradient of a stride-1 convolution is a convolution of dy with the kernel rotated
// by 180 degrees, C and F swapped ([KH,KW,F,C]), and KH-1-pad leading padding: its shape, and
// the rotated kernel (KH*KW*C*F floats).
Conv2dShape conv2d_transposed_shape(const Conv2dShape& s);
void conv2d_rotate_kernel(const Conv2dShape& s, const float* w, float* rotated);
// That input gradient run through a form's forward: forward(t, dy, rotated, dx) must ADD the
// convolution of dy (shape t = conv2d_transposed_shape(s)) with the rotated kernel into dx (or
// write it, for a caller that asked to overwrite dx: the output of t covers all of dx).
template <typename Forward>
void conv2d_backward_input_by_rotation(const Conv2dShape& s, const float* dy, const float* w, float* dx,
                                       Forward&& forward) {
  const Conv2dShape t = conv2d_transposed_shape(s);
  Workspace rotated(s.KH * s.KW * s.C * s.F);
  conv2d_rotate_kernel(s, w, rotated.data());
  forward(t, dy, rotated.data(), dx);
}

// Rows of the im2col matrix processed per sgemm (all of them for small inputs): whole images
// where they fit a fixed column-buffer budget.
int64_t conv2d_chunk_rows(const Conv2dShape& s);

// im2col for NHWC: row r = (n, oy, ox) of the output, column (ky, kx, c); zero where the
// window leaves the image. cols has (row_end - row_begin) * s.cols() floats.
void im2col(const Conv2dShape& s, const float* x, int64_t row_begin, int64_t row_end, float* cols);
// The adjoint of im2col: dx += scatter(dcols) for rows [row_begin, row_end).
void col2im(const Conv2dShape& s, const float* dcols, int64_t row_begin, int64_t row_end, float* dx);

}  // namespace kiln
