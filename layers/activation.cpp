#include "layers/activation.h"
#include "layers/layer_registry.h"

#include <stdexcept>

namespace kiln {

Tensor apply_activation(Activation a, const Tensor& x) {
  switch (a) {
    case Activation::Linear: return x;
    case Activation::ReLU: return relu(x);
    case Activation::Sigmoid: return sigmoid(x);
    case Activation::Tanh: return tanh(x);
    case Activation::Softmax: return softmax(x);
  }
  return x;
}

std::string activation_name(Activation a) {
  switch (a) {
    case Activation::Linear: return "linear";
    case Activation::ReLU: return "relu";
    case Activation::Sigmoid: return "sigmoid";
    case Activation::Tanh: return "tanh";
    case Activation::Softmax: return "softmax";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  if (name == "linear" || name.empty()) return Activation::Linear;
  if (name == "relu") return Activation::ReLU;
  if (name == "sigmoid") return Activation::Sigmoid;
  if (name == "tanh") return Activation::Tanh;
  if (name == "softmax") return Activation::Softmax;
  throw std::invalid_argument("activation: unknown activation '" + name +
                              "' (known: linear, relu, sigmoid, tanh, softmax)");
}

std::string ActivationLayer::type_name() const {
  switch (activation_) {
    case Activation::ReLU: return "ReLU";
    case Activation::Softmax: return "Softmax";
    default: return "Activation";
  }
}

// --- model file registration (layers/layer_registry.h) ---

void link_activation_layer_type() {}

namespace {
const bool registered = register_layer<ActivationLayer>(
    "Activation", 1,
    [](const ActivationLayer& a) { return nlohmann::json{{"activation", activation_name(a.activation())}}; },
    [](const nlohmann::json& j) {
      return std::make_shared<ActivationLayer>(parse_activation(j.at("activation").get<std::string>()));
    });
}  // namespace

}  // namespace kiln
