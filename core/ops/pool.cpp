// Average pooling as a differentiable op (max pooling lives with the other CNN ops in
// ops_nn.cpp). The loops are in core/kernels/avg_pool2d.cpp.
#include <string>

#include "core/autograd.h"
#include "core/kernels/avg_pool2d.h"
#include "core/ops/ops.h"

namespace kiln {

Tensor avg_pool2d(const Tensor& x, int kernel, int stride, Padding padding) {
  check_arg(x.dim() == 4, "avg_pool2d", "input " + shape_str(x.shape()) + " must be [N,H,W,C]");
  check_arg(kernel >= 1 && stride >= 1, "avg_pool2d",
            "kernel " + std::to_string(kernel) + " and stride " + std::to_string(stride) +
                " must be >= 1");
  check_arg(x.numel() > 0, "avg_pool2d", "input " + shape_str(x.shape()) + " is empty");
  check_arg(padding == Padding::Same || (x.size(1) >= kernel && x.size(2) >= kernel), "avg_pool2d",
            "input " + shape_str(x.shape()) + " is smaller than pool " + std::to_string(kernel) +
                "x" + std::to_string(kernel) + " with padding valid");
  const Pool2dShape s = Pool2dShape::make(x.size(0), x.size(1), x.size(2), x.size(3), kernel,
                                          stride, padding == Padding::Same);
  Tensor out = Tensor::empty({s.N, s.Ho, s.Wo, s.C});
  avg_pool2d_forward(s, x.data(), out.data());
  record(out, "avg_pool2d", {x}, [x, s](const Tensor& g) {
    avg_pool2d_backward(s, g.data(), x.grad_data());
  });
  return out;
}

}  // namespace kiln
