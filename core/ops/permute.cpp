// permute: reorders the axes of a tensor (a copy, since kiln tensors are always contiguous).
// kiln computes in NHWC; the Keras importer uses this at the edges of channels-first parts of
// a model and for Keras' own Permute layer.
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops/ops.h"

namespace kiln {
namespace {

// dst[j] (+)= src[i] where dst's axis k is src's axis dims[k]. Walks dst in order and keeps
// the matching src offset up to date with an odometer over dst's index.
void permute_copy(const float* src, const Shape& src_shape, const std::vector<int64_t>& dims,
                  float* dst, bool accumulate) {
  const size_t rank = src_shape.size();
  std::vector<int64_t> src_stride(rank, 1);
  for (size_t a = rank; a-- > 1;) src_stride[a - 1] = src_stride[a] * src_shape[a];
  Shape dst_shape(rank);
  std::vector<int64_t> step(rank);  // src offset change per unit step of dst's axis k
  for (size_t k = 0; k < rank; ++k) {
    dst_shape[k] = src_shape[static_cast<size_t>(dims[k])];
    step[k] = src_stride[static_cast<size_t>(dims[k])];
  }
  const int64_t n = shape_numel(src_shape);
  std::vector<int64_t> index(rank, 0);
  int64_t offset = 0;
  for (int64_t j = 0; j < n; ++j) {
    dst[j] = accumulate ? dst[j] + src[offset] : src[offset];
    for (size_t k = rank; k-- > 0;) {
      if (++index[k] < dst_shape[k]) {
        offset += step[k];
        break;
      }
      offset -= step[k] * (dst_shape[k] - 1);
      index[k] = 0;
    }
  }
}

}  // namespace

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  const int64_t rank = x.dim();
  std::string dims_str = "(";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) dims_str += ",";
    dims_str += std::to_string(dims[i]);
  }
  dims_str += ")";
  check_arg(static_cast<int64_t>(dims.size()) == rank, "permute",
            "dims " + dims_str + " must name each axis of " + shape_str(x.shape()) + " once");
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (int64_t d : dims) {
    check_arg(d >= 0 && d < rank && !seen[static_cast<size_t>(d)], "permute",
              "dims " + dims_str + " is not a permutation of the axes of " + shape_str(x.shape()));
    seen[static_cast<size_t>(d)] = true;
  }
  Shape out_shape(static_cast<size_t>(rank));
  for (int64_t k = 0; k < rank; ++k) out_shape[k] = x.shape()[static_cast<size_t>(dims[k])];
  Tensor out = Tensor::empty(out_shape);
  permute_copy(x.data(), x.shape(), dims, out.data(), false);

  record(out, "permute", {x}, [x, dims, out_shape](const Tensor& g) {
    // The gradient goes back through the inverse permutation.
    std::vector<int64_t> inverse(dims.size());
    for (size_t k = 0; k < dims.size(); ++k) inverse[static_cast<size_t>(dims[k])] = static_cast<int64_t>(k);
    permute_copy(g.data(), out_shape, inverse, x.grad_data(), true);
  });
  return out;
}

}  // namespace kiln
