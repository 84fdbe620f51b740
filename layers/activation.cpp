#include "layers/activation.h"

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

}  // namespace kiln
