#include "layers/conv2d.h"

#include "layers/layer_registry.h"

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
  if (options_.activation == Activation::ReLU)
    return conv2d_relu(x, *kernel_, *bias_, options_.stride, options_.padding);
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

// --- model file registration (layers/layer_registry.h) ---

void link_conv2d_layer_type() {}

namespace {
const bool registered = register_layer<Conv2D>(
    "Conv2D", 1,
    [](const Conv2D& c) {
      const Conv2DOptions& o = c.options();
      return nlohmann::json{{"in_channels", o.in_channels}, {"filters", o.filters}, {"kernel", o.kernel},
                            {"stride", o.stride}, {"padding", padding_name(o.padding)}, {"use_bias", o.use_bias},
                            {"activation", activation_name(o.activation)}, {"l2", o.l2}};
    },
    [](const nlohmann::json& j) {
      return std::make_shared<Conv2D>(Conv2DOptions{
          .in_channels = j.at("in_channels").get<int64_t>(), .filters = j.at("filters").get<int64_t>(),
          .kernel = j.at("kernel").get<int>(), .stride = j.at("stride").get<int>(),
          .padding = padding_named(j.at("padding").get<std::string>()), .use_bias = j.at("use_bias").get<bool>(),
          .activation = parse_activation(j.at("activation").get<std::string>()), .l2 = j.at("l2").get<float>()});
    });
}  // namespace

}  // namespace kiln
