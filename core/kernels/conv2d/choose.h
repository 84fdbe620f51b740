// Which form of convolution runs for a given pass and shape. Every rule and every threshold is
// in choose.cpp, in one table; conv2d_forward / conv2d_backward_input / conv2d_backward_weight
// run what conv2d_choose says. The forms (forms.h) all compute the same thing and differ only
// in speed, so a choice changes float rounding, never the result beyond it.
#pragma once

#include "core/kernels/conv2d/conv2d.h"

namespace kiln {

enum class Conv2dPass { kForward, kInputGrad, kWeightGrad };

enum class Conv2dForm {
  kIm2col,      // im2col + sgemm (the input gradient: sgemm + col2im); any shape
  kPointwise,   // 1x1, stride 1, no padding: x is already the GEMM matrix; one sgemm
  kTransposed,  // input gradient, stride 1: dy convolved with the rotated kernel (im2col + sgemm)
  kDirect,      // loops without a GEMM, for layers with few channels and filters
  kWinograd,    // Winograd F(2x2, 3x3): 3x3, stride 1
  kWinograd4,   // Winograd F(4x4, 3x3): 3x3, stride 1
};

// The form conv2d_forward (kForward), conv2d_backward_input (kInputGrad) or
// conv2d_backward_weight (kWeightGrad) runs for s.
Conv2dForm conv2d_choose(Conv2dPass pass, const Conv2dShape& s);
// The GEMM form the rules would use for s if the direct and Winograd forms did not exist
// (kIm2col, kPointwise or kTransposed): what benchmarks compare the special forms against.
Conv2dForm conv2d_choose_gemm(Conv2dPass pass, const Conv2dShape& s);
// Whether `form` can compute `pass` for s at all (kWinograd only for 3x3 stride 1, ...).
bool conv2d_form_applies(Conv2dForm form, Conv2dPass pass, const Conv2dShape& s);

const char* conv2d_form_name(Conv2dForm form);  // "im2col", "pointwise", ..., "winograd4x4"
const char* conv2d_pass_name(Conv2dPass pass);  // "forward", "input_grad", "weight_grad"

}  // namespace kiln
