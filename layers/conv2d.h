// Conv2D: Keras' convolution layer. Input [N,H,W,C] -> [N,Ho,Wo,filters]; kernel
// [kh,kw,C,filters] Glorot-uniform, bias zeros. The input channel count is given up front
// (kiln builds weights eagerly, no deferred shape inference).
#pragma once

#include "layers/activation.h"
#include "layers/module.h"

namespace kiln {

struct Conv2DOptions {
  int64_t in_channels = 0;
  int64_t filters = 0;
  int kernel = 3;
  int stride = 1;
  Padding padding = Padding::Same;
  bool use_bias = true;
  Activation activation = Activation::Linear;
  float l2 = 0.0f;     // kernel regulariser: adds l2 * sum(kernel^2) to the loss
  uint64_t seed = 0;   // 0: draw from manual_seed's stream
};

class Conv2D : public Module {
 public:
  explicit Conv2D(const Conv2DOptions& options);
  Tensor forward(const Tensor& x) override;
  Tensor forward_logits(const Tensor& x) override;
  bool ends_in_softmax() const override { return options_.activation == Activation::Softmax; }
  std::string type_name() const override { return "Conv2D"; }
  std::string describe() const override;
  Tensor regularization_loss() const override;

  Tensor& kernel() { return *kernel_; }
  Tensor& bias() { return *bias_; }  // undefined tensor when use_bias is false
  const Conv2DOptions& options() const { return options_; }

 private:
  Conv2DOptions options_;
  Tensor* kernel_;
  Tensor* bias_;
  Tensor no_bias_;
};

}  // namespace kiln
