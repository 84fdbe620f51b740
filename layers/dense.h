// Dense: Keras' fully connected layer. Input [N,in] -> [N,units]; kernel [in,units]
// Glorot-uniform, bias zeros.
#pragma once

#include "layers/activation.h"
#include "layers/module.h"

namespace kiln {

struct DenseOptions {
  int64_t in_features = 0;
  int64_t units = 0;
  bool use_bias = true;
  Activation activation = Activation::Linear;
  float l2 = 0.0f;    // kernel regulariser
  uint64_t seed = 0;  // 0: draw from manual_seed's stream
};

class Dense : public Module {
 public:
  explicit Dense(const DenseOptions& options);
  Tensor forward(const Tensor& x) override;
  Tensor forward_logits(const Tensor& x) override;
  bool ends_in_softmax() const override { return options_.activation == Activation::Softmax; }
  std::string type_name() const override { return "Dense"; }
  std::string describe() const override;
  Tensor regularization_loss() const override;

  Tensor& kernel() { return *kernel_; }
  Tensor& bias() { return *bias_; }
  const DenseOptions& options() const { return options_; }

 private:
  DenseOptions options_;
  Tensor* kernel_;
  Tensor* bias_;
  Tensor no_bias_;
};

}  // namespace kiln
