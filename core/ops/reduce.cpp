// Reductions: sum and mean over axes. Each is the adjoint of broadcasting its (keepdim)
// result back over the input, so both directions reuse the broadcast index mapping.
#include <algorithm>
#include <vector>

#include "core/autograd.h"
#include "core/ops/broadcast.h"
#include "core/ops/ops.h"

namespace kiln {
namespace {

// The keepdim shape of reducing `shape` over `axes`; validates and normalises the axes.
Shape reduced_shape(const char* op, const Shape& shape, const std::vector<int64_t>& axes) {
  Shape keep = shape;
  const int64_t rank = static_cast<int64_t>(shape.size());
  std::vector<bool> used(shape.size(), false);
  for (int64_t axis : axes) {
    const int64_t a = axis < 0 ? axis + rank : axis;
    check_arg(a >= 0 && a < rank, op,
              "axis " + std::to_string(axis) + " out of range for shape " + shape_str(shape));
    check_arg(!used[a], op, "axis " + std::to_string(axis) + " given twice");
    used[a] = true;
    keep[a] = 1;
  }
  return keep;
}

Tensor reduce(const char* op, const Tensor& a, const std::vector<int64_t>& axes, bool keepdim,
              float scale_by) {
  const Shape keep = reduced_shape(op, a.shape(), axes);
  // Output shape without the reduced axes (or with them as 1 under keepdim).
  Shape out_shape;
  {
    const int64_t rank = a.dim();
    std::vector<bool> reduced(rank, false);
    for (int64_t axis : axes) reduced[axis < 0 ? axis + rank : axis] = true;
    for (int64_t i = 0; i < rank; ++i)
      if (!reduced[i]) out_shape.push_back(a.shape()[i]);
      else if (keepdim) out_shape.push_back(1);
  }
  // Map each input element to its output slot: "b" is the keepdim result broadcast over a.
  const Broadcast br = broadcast(op, a.shape(), keep);
  const int64_t n_out = shape_numel(keep);
  std::vector<double> acc(static_cast<size_t>(n_out), 0.0);
  const float* pa = a.data();
  for_each_broadcast(br, [&](int64_t i, int64_t, int64_t ib) { acc[ib] += pa[i]; });
  Tensor out = Tensor::empty(out_shape);
  float* po = out.data();
  for (int64_t j = 0; j < n_out; ++j) po[j] = static_cast<float>(acc[j] * scale_by);

  record(out, op, {a}, [a, br, scale_by](const Tensor& g) {
    const float* pg = g.data();
    float* ga = a.grad_data();
    for_each_broadcast(br, [&](int64_t i, int64_t, int64_t ib) { ga[i] += pg[ib] * scale_by; });
  });
  return out;
}

std::vector<int64_t> all_axes(const Tensor& a) {
  std::vector<int64_t> axes(a.dim());
  for (int64_t i = 0; i < a.dim(); ++i) axes[i] = i;
  return axes;
}

int64_t count_reduced(const Tensor& a, const std::vector<int64_t>& axes) {
  int64_t n = 1;
  for (int64_t axis : axes) n *= a.size(axis);
  return n;
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  return reduce("sum", a, axes, keepdim, 1.0f);
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  reduced_shape("mean", a.shape(), axes);  // validate before dividing by extents
  const int64_t n = count_reduced(a, axes);
  check_arg(n > 0, "mean", "mean over an empty extent of shape " + shape_str(a.shape()));
  return reduce("mean", a, axes, keepdim, 1.0f / static_cast<float>(n));
}

Tensor sum(const Tensor& a) { return sum(a, all_axes(a)); }
Tensor mean(const Tensor& a) { return mean(a, all_axes(a)); }

}  // namespace kiln
