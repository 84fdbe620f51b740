#include "layers/dense.h"

namespace kiln {

Dense::Dense(const DenseOptions& o) : options_(o) {
  check_arg(o.in_features > 0 && o.units > 0, "Dense",
            "in_features " + std::to_string(o.in_features) + " and units " +
                std::to_string(o.units) + " must be positive");
  const uint64_t seed = o.seed ? o.seed : next_layer_seed();
  kernel_ = register_parameter("kernel", glorot_uniform({o.in_features, o.units}, o.in_features,
                                                        o.units, seed));
  bias_ = o.use_bias ? register_parameter("bias", Tensor::zeros({o.units})) : &no_bias_;
}

Tensor Dense::forward_logits(const Tensor& x) { return dense(x, *kernel_, *bias_); }

Tensor Dense::forward(const Tensor& x) {
  return apply_activation(options_.activation, forward_logits(x));
}

std::string Dense::describe() const {
  return options_.activation != Activation::Linear ? activation_name(options_.activation) : "";
}

Tensor Dense::regularization_loss() const {
  return options_.l2 > 0 ? l2_penalty(*kernel_, options_.l2) : Tensor();
}

}  // namespace kiln
