#include "layers/dense.h"

#include "layers/layer_registry.h"

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

// --- model file registration (layers/layer_registry.h) ---

void link_dense_layer_type() {}

namespace {
const bool registered = register_layer<Dense>(
    "Dense", 1,
    [](const Dense& d) {
      const DenseOptions& o = d.options();
      return nlohmann::json{{"in_features", o.in_features}, {"units", o.units}, {"use_bias", o.use_bias},
                            {"activation", activation_name(o.activation)}, {"l2", o.l2}};
    },
    [](const nlohmann::json& j) {
      return std::make_shared<Dense>(DenseOptions{.in_features = j.at("in_features").get<int64_t>(),
                                                  .units = j.at("units").get<int64_t>(),
                                                  .use_bias = j.at("use_bias").get<bool>(),
                                                  .activation = parse_activation(j.at("activation").get<std::string>()),
                                                  .l2 = j.at("l2").get<float>()});
    });
}  // namespace

}  // namespace kiln
