#include "optim/adam.h"

#include <cmath>
#include <string>

#include "core/autograd.h"
#include "core/runtime/parallel.h"

namespace kiln {
namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save

}  // namespace

Adam::Adam(NamedTensors params, AdamOptions options)
    : Adam(std::move(params), options, 0.0f, "Adam") {}

Adam::Adam(NamedTensors params, AdamOptions o, float weight_decay, const char* op)
    : Optimizer(std::move(params)), weight_decay_(weight_decay), options_(o) {
  check_arg(o.beta1 >= 0.0f && o.beta1 < 1.0f, op,
            "beta1 " + std::to_string(o.beta1) + " is outside [0, 1)");
  check_arg(o.beta2 >= 0.0f && o.beta2 < 1.0f, op,
            "beta2 " + std::to_string(o.beta2) + " is outside [0, 1)");
  check_arg(o.epsilon >= 0.0f, op, "epsilon " + std::to_string(o.epsilon) + " is negative");
  check_arg(weight_decay >= 0.0f, op,
            "weight_decay " + std::to_string(weight_decay) + " is negative");
  set_learning_rate(o.learning_rate);
  m_ = add_slot("m");
  v_ = add_slot("v");
}

void Adam::step() {
  NoGradGuard no_grad;
  // Scalar factors in double: beta^t for large t and the ratio lose digits in float.
  const double t = static_cast<double>(iterations_ + 1);
  const double lr = learning_rate_;
  const float alpha = static_cast<float>(lr * std::sqrt(1.0 - std::pow(double(options_.beta2), t)) /
                                         (1.0 - std::pow(double(options_.beta1), t)));
  const float one_minus_b1 = static_cast<float>(1.0 - options_.beta1);
  const float one_minus_b2 = static_cast<float>(1.0 - options_.beta2);
  const float eps = options_.epsilon;
  const float decay = static_cast<float>(lr * weight_decay_);  // w -= decay * w

  for (size_t p = 0; p < params_.size(); ++p) {
    Tensor& param = params_[p].second;
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    float* __restrict w = param.data();
    const float* __restrict g = grad.data();
    float* __restrict m = m_[p].data();
    float* __restrict v = v_[p].data();
    const int64_t n = param.numel();
    // One pass over the parameter, decay fused in: per element it is the same arithmetic
    // as Keras' two passes (decay all variables, then update_step).
    KILN_PARALLEL_FOR_SIMD(n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float gi = g[i];
      const float mi = m[i] + (gi - m[i]) * one_minus_b1;
      const float vi = v[i] + (gi * gi - v[i]) * one_minus_b2;
      m[i] = mi;
      v[i] = vi;
      const float wi = w[i] - decay * w[i];
      w[i] = wi - (mi * alpha) / (std::sqrt(vi) + eps);
    }
  }
  ++iterations_;
}

AdamW::AdamW(NamedTensors params, AdamWOptions o)
    : Adam(std::move(params),
           AdamOptions{.learning_rate = o.learning_rate, .beta1 = o.beta1, .beta2 = o.beta2,
                       .epsilon = o.epsilon},
           o.weight_decay, "AdamW") {}

}  // namespace kiln
