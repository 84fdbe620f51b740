// Dropout: inverted dropout in training (kept units scaled by 1/(1-rate)), identity in inference.
// Each training call draws a fresh mask seed from the layer's own seeded stream.
#pragma once

#include "core/ops/ops.h"
#include "core/runtime/random.h"
#include "layers/module.h"

namespace kiln {

class Dropout : public Module {
 public:
  explicit Dropout(float rate, uint64_t seed = 0)
      : rate_(rate), rng_(seed ? seed : next_layer_seed()) {
    check_arg(rate >= 0.0f && rate < 1.0f, "Dropout", "rate " + std::to_string(rate) + " must be in [0, 1)");
    register_generator("rng", &rng_);
  }
  Tensor forward(const Tensor& x) override {
    return is_training() ? dropout(x, rate_, true, rng_.next_u64()) : x;
  }
  std::string type_name() const override { return "Dropout"; }
  std::string describe() const override { return "rate " + std::to_string(rate_).substr(0, 4); }
  float rate() const { return rate_; }

 private:
  float rate_;
  Generator rng_;
};

}  // namespace kiln
