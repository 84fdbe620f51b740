// Keras' (and TensorFlow's) "same" padding along one axis, the one rule every window op in kiln
// follows (convolution, pooling) and that the ONNX importer and exporter translate: the output
// has ceil(in / stride) cells, and the input is padded by just enough for the last window to end
// at or past the last input cell, the smaller half before the first cell and the odd cell after.
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln {

struct SamePadding {
  int64_t out;     // output cells
  int64_t before;  // padding before the first input cell (top / left)
  int64_t after;   // padding after the last (bottom / right)
};

constexpr SamePadding same_padding(int64_t in, int64_t window, int64_t stride) {
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + window - in, 0);
  return {out, total / 2, total - total / 2};
}

}  // namespace kiln
