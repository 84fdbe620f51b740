// BatchNorm2d: Keras' BatchNormalization over the last (channel) axis. gamma/beta are
// parameters; moving_mean/moving_variance are buffers (non-trainable). Training uses the
// batch statistics and updates the moving ones with `momentum`; inference uses the moving ones.
#pragma once

#include <utility>

#include "core/ops/ops.h"
#include "layers/module.h"

namespace kiln {

struct BatchNormOptions {
  int64_t channels = 0;
  float momentum = 0.99f;
  float epsilon = 1e-3f;
};

class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(const BatchNormOptions& o) : o_(o) {
    check_arg(o.channels > 0, "BatchNorm2d", "channels " + std::to_string(o.channels) + " must be positive");
    gamma_ = register_parameter("gamma", Tensor::ones({o.channels}));
    beta_ = register_parameter("beta", Tensor::zeros({o.channels}));
    moving_mean_ = register_buffer("moving_mean", Tensor::zeros({o.channels}));
    moving_var_ = register_buffer("moving_variance", Tensor::ones({o.channels}));
  }
  Tensor forward(const Tensor& x) override {
    return batch_norm(x, *gamma_, *beta_, *moving_mean_, *moving_var_, is_training(), o_.momentum,
                      o_.epsilon, sync_);
  }
  // relu(forward(x)) in one op: Sequential calls it for a BatchNormalization followed by a ReLU.
  Tensor forward_relu(const Tensor& x) {
    return batch_norm_relu(x, *gamma_, *beta_, *moving_mean_, *moving_var_, is_training(), o_.momentum,
                           o_.epsilon, sync_);
  }
  // Synchronised batch norm: training batches take their statistics over the rows of every
  // process (reduce sums them); an empty function turns it off. fit() sets it for the
  // training steps of FitOptions::sync_batch_norm.
  void synchronise(BatchStatsReduce reduce) { sync_ = std::move(reduce); }
  std::string type_name() const override { return "BatchNormalization"; }

  Tensor& gamma() { return *gamma_; }
  Tensor& beta() { return *beta_; }
  Tensor& moving_mean() { return *moving_mean_; }
  Tensor& moving_variance() { return *moving_var_; }
  const BatchNormOptions& options() const { return o_; }

 private:
  BatchNormOptions o_;
  Tensor *gamma_, *beta_, *moving_mean_, *moving_var_;
  BatchStatsReduce sync_;
};

}  // namespace kiln
