#include "layers/conv2d.h"

namespace kiln {

Conv2D::Conv2D(const Conv2DOptions& o) : options_(o) {
  check_arg(o.in_channels > 0 && o.filters > 0 && o.kernel > 0 && o.stride > 0, "Conv2D",
            "in_channels " + std::to_string(o.in_channels) + ", filters " +
                std::to_string(o.filters) + ", kernel " + std::to_string(o.kernel) + ", stride " +
                std::to_string(o.stride) + " must all be positive");
  const uint64_t seed = o.seed ? o.seed : next_layer_seed();
  const int64_t k2 = static_cast<int64_t>(o.kernel) * o.kernel;
  kernel_ = register_parameter(
      "kernel", glorot_uniform({o.kernel, o.kernel, o.in_channels, o.filters}, k2 * o.in_channels,
                               k2 * o.filters, seed));
  bias_ = o.use_bias ? register_parameter("bias", Tensor::zeros({o.filters})) : &no_bias_;
}

Tensor Conv2D::forward_logits(const Tensor& x) {
  return conv2d(x, *kernel_, *bias_, options_.stride, options_.padding);
}

Tensor Conv2D::forward(const Tensor& x) {
  return apply_activation(options_.activation, forward_logits(x));
}

std::string Conv2D::describe() const {
  std::string d = std::to_string(options_.kernel) + "x" + std::to_string(options_.kernel) +
                  (options_.padding == Padding::Same ? " same" : " valid");
  // Appended piece by piece: GCC 12 warns (-Wrestrict, a false positive) on `" " + string&&`.
  if (options_.stride != 1) d.append(" s").append(std::to_string(options_.stride));
  if (options_.activation != Activation::Linear) d.append(" ").append(activation_name(options_.activation));
  if (options_.l2 > 0) d += " l2";
  return d;
}

Tensor Conv2D::regularization_loss() const {
  return options_.l2 > 0 ? l2_penalty(*kernel_, options_.l2) : Tensor();
}

}  // namespace kiln
