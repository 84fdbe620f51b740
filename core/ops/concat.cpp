// concat: joins tensors along one axis (a graph model's Concatenate; channels in NHWC).
// Every input keeps its place in the output as a run of `extent * inner` floats inside each
// of the `outer` blocks, so forward and backward are the same strided copy in two directions.
#include <algorithm>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/ops.h"

namespace kiln {

Tensor concat(const std::vector<Tensor>& xs, int64_t axis) {
  check_arg(!xs.empty(), "concat", "needs at least one tensor, got none");
  const Shape& first = xs[0].shape();
  const int64_t rank = static_cast<int64_t>(first.size());
  auto shapes = [&] {
    std::string s;
    for (size_t i = 0; i < xs.size(); ++i) s += (i ? ", " : "") + shape_str(xs[i].shape());
    return s;
  };
  check_arg(rank > 0, "concat", "cannot join scalars (" + shapes() + ")");
  check_arg(axis >= -rank && axis < rank, "concat",
            "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank) + " (" + shapes() + ")");
  const size_t a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
  Shape out_shape = first;
  out_shape[a] = 0;
  for (const Tensor& x : xs) {
    bool fits = static_cast<int64_t>(x.shape().size()) == rank;
    for (size_t d = 0; fits && d < first.size(); ++d) fits = d == a || x.shape()[d] == first[d];
    check_arg(fits, "concat",
              "along axis " + std::to_string(a) + " every other extent must agree: " + shapes());
    out_shape[a] += x.shape()[a];
  }
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < a; ++d) outer *= first[d];
  for (size_t d = a + 1; d < first.size(); ++d) inner *= first[d];
  const int64_t out_row = out_shape[a] * inner;  // floats of one outer block in the output

  Tensor out = Tensor::empty(out_shape);
  float* o = out.data();
  int64_t offset = 0;  // where input i starts inside an output block
  std::vector<int64_t> offsets;
  for (const Tensor& x : xs) {
    const int64_t row = x.shape()[a] * inner;
    const float* p = x.data();
    for (int64_t b = 0; b < outer; ++b)
      std::copy(p + b * row, p + (b + 1) * row, o + b * out_row + offset);
    offsets.push_back(offset);
    offset += row;
  }

  record(out, "concat", xs, [xs, offsets, outer, inner, out_row, a](const Tensor& g) {
    const float* dy = g.data();
    for (size_t i = 0; i < xs.size(); ++i) {
      if (!xs[i].requires_grad()) continue;
      const int64_t row = xs[i].shape()[a] * inner;
      float* dx = xs[i].grad_data();
      for (int64_t b = 0; b < outer; ++b) {
        const float* src = dy + b * out_row + offsets[i];
        float* dst = dx + b * row;
        for (int64_t j = 0; j < row; ++j) dst[j] += src[j];
      }
    }
  });
  return out;
}

}  // namespace kiln
