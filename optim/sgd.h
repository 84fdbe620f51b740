// Stochastic gradient descent with optional (Nesterov) momentum, Keras 3's update rule:
//   momentum 0:  w -= lr * g
//   momentum m:  v = m * v - lr * g;  w += v
//   nesterov:    v = m * v - lr * g;  w += m * v - lr * g
// v ("velocity", state entry "<param>.velocity") exists only when momentum != 0, as in Keras.
// For a constant learning rate this equals PyTorch's SGD (dampening 0) with v = -lr * buffer.
#pragma once

#include "optim/optimizer.h"

namespace kiln {

struct SGDOptions {
  float learning_rate = 0.01f;
  float momentum = 0.0f;  // in [0, 1]
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  // Throws std::invalid_argument for momentum outside [0, 1] or a non-finite learning rate.
  explicit SGD(NamedTensors params, SGDOptions options = {});
  void step() override;
  const SGDOptions& options() const { return options_; }

 protected:
  const char* name() const override { return "SGD"; }

 private:
  SGDOptions options_;
  std::vector<Tensor> velocity_;  // one per parameter, empty when momentum == 0
};

}  // namespace kiln
