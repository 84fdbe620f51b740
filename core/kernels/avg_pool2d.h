// Average-pooling kernels on NHWC buffers, fast and naive. x [N,H,W,C] -> y [N,Ho,Wo,C].
//
// The geometry is max pooling's (Pool2dShape, Keras' "valid"/"same" rules). Each output is
// the mean of the input cells its window covers; with "same" padding the padded cells are
// left out of the count, as Keras (TensorFlow's avg_pool, and Keras 3 on every backend) does.
#pragma once

#include "core/kernels/max_pool2d.h"  // Pool2dShape

namespace kiln {

// y overwritten.
void avg_pool2d_forward(const Pool2dShape& s, const float* x, float* y);
// dx[cell] += dy[o] / count(o) for every output o whose window covers cell.
void avg_pool2d_backward(const Pool2dShape& s, const float* dy, float* dx);

void avg_pool2d_forward_naive(const Pool2dShape& s, const float* x, float* y);
void avg_pool2d_backward_naive(const Pool2dShape& s, const float* dy, float* dx);

}  // namespace kiln
