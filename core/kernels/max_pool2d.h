// Max-pooling kernels on NHWC buffers, fast and naive. x [N,H,W,C] -> y [N,Ho,Wo,C].
#pragma once

#include <cstdint>

namespace kiln {

struct Pool2dShape {
  int64_t N, H, W, C;
  int64_t K, stride;
  int64_t pad_top, pad_left;
  int64_t Ho, Wo;
  // Keras' "valid"/"same" rules (as Conv2dShape::make). Padded cells never win.
  static Pool2dShape make(int64_t N, int64_t H, int64_t W, int64_t C, int64_t K, int64_t stride,
                          bool same_padding);
};

// The input range [begin, end) that the window of output o covers along one axis, clipped
// to the input: padded cells are never candidates (max) and never counted (average).
struct PoolWindow {
  int64_t begin, end;
};
inline PoolWindow pool_window(int64_t o, int64_t stride, int64_t pad, int64_t k, int64_t in) {
  const int64_t start = o * stride - pad;
  return {start > 0 ? start : 0, start + k < in ? start + k : in};
}

// y overwritten; argmax[i] = flat index into x of the winner of output i (first max wins).
void max_pool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax);
// dx[argmax[i]] += dy[i]; with overwrite, dx's old contents are ignored (dx = 0 first).
void max_pool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx,
                         bool overwrite = false);

void max_pool2d_forward_naive(const Pool2dShape& s, const float* x, float* y, int32_t* argmax);
void max_pool2d_backward_naive(const Pool2dShape& s, const float* dy, const int32_t* argmax,
                               float* dx);

}  // namespace kiln
