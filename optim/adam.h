// Adam and AdamW with Keras 3's update rule. At step t = iterations() + 1, for each parameter
// w with gradient g:
//   alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)      (in double, then rounded to float)
//   m += (g - m) * (1 - beta1);  v += (g^2 - v) * (1 - beta2)
//   w -= alpha * m / (sqrt(v) + epsilon)
// epsilon is added to sqrt(v) itself, not to the bias-corrected sqrt(v / (1 - beta2^t)) as in
// PyTorch; the two agree when PyTorch's eps is epsilon / sqrt(1 - beta2^t) (see
// tests/fixtures/make_optim_fixture.py). State entries: "<param>.m", "<param>.v".
//
// AdamW first decays every parameter that has a gradient, decoupled from the gradient:
//   w -= lr * weight_decay * w
// then applies the Adam update (Keras' _apply_weight_decay runs before update_step).
#pragma once

#include "optim/optimizer.h"

namespace kiln {

struct AdamOptions {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;     // in [0, 1)
  float beta2 = 0.999f;   // in [0, 1)
  float epsilon = 1e-7f;  // >= 0
};

struct AdamWOptions {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-7f;
  float weight_decay = 0.004f;  // >= 0
};

class Adam : public Optimizer {
 public:
  // Throws std::invalid_argument for a beta outside [0, 1), a negative epsilon or a
  // non-finite learning rate.
  explicit Adam(NamedTensors params, AdamOptions options = {});
  void step() override;
  const AdamOptions& options() const { return options_; }

 protected:
  // For AdamW; `op` names the optimizer in constructor errors.
  Adam(NamedTensors params, AdamOptions options, float weight_decay, const char* op);
  const char* name() const override { return "Adam"; }

  float weight_decay_ = 0.0f;  // decoupled decay, non-zero only for AdamW

 private:
  AdamOptions options_;
  std::vector<Tensor> m_, v_;  // one per parameter
};

class AdamW : public Adam {
 public:
  // Throws std::invalid_argument as Adam does, or for a negative weight_decay.
  explicit AdamW(NamedTensors params, AdamWOptions options = {});
  float weight_decay() const { return weight_decay_; }

 protected:
  const char* name() const override { return "AdamW"; }
};

}  // namespace kiln
