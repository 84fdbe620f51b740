// Activations: as an option of Conv2D/Dense (Keras' `activation=`) and as layers of their own.
#pragma once

#include <string>

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

enum class Activation { Linear, ReLU, Sigmoid, Tanh, Softmax };

// x -> activation(x); Softmax is over the last axis.
Tensor apply_activation(Activation a, const Tensor& x);
std::string activation_name(Activation a);  // Keras' spelling: "linear", "relu", ...
// Parses Keras' spelling; throws std::invalid_argument naming the unknown activation.
Activation parse_activation(const std::string& name);

// A layer that only applies an activation (Keras' Activation/ReLU/Softmax layers).
class ActivationLayer : public Module {
 public:
  explicit ActivationLayer(Activation a) : activation_(a) {}
  Tensor forward(const Tensor& x) override { return apply_activation(activation_, x); }
  Tensor forward_logits(const Tensor& x) override {
    return activation_ == Activation::Softmax ? x : forward(x);
  }
  bool ends_in_softmax() const override { return activation_ == Activation::Softmax; }
  std::string type_name() const override;
  Activation activation() const { return activation_; }

 private:
  Activation activation_;
};

inline std::shared_ptr<ActivationLayer> ReLU() { return std::make_shared<ActivationLayer>(Activation::ReLU); }
inline std::shared_ptr<ActivationLayer> Sigmoid() { return std::make_shared<ActivationLayer>(Activation::Sigmoid); }
inline std::shared_ptr<ActivationLayer> Softmax() { return std::make_shared<ActivationLayer>(Activation::Softmax); }

}  // namespace kiln
