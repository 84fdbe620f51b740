#include "optim/sgd.h"

#include <string>

#include "core/autograd.h"
#include "core/runtime/parallel.h"

namespace kiln {
namespace {

constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save

}  // namespace

SGD::SGD(NamedTensors params, SGDOptions options)
    : Optimizer(std::move(params)), options_(options) {
  check_arg(options.momentum >= 0.0f && options.momentum <= 1.0f, "SGD",
            "momentum " + std::to_string(options.momentum) + " is outside [0, 1]");
  set_learning_rate(options.learning_rate);
  if (options.momentum != 0.0f) velocity_ = add_slot("velocity");
}

void SGD::step() {
  NoGradGuard no_grad;
  const float lr = learning_rate_;
  const float mu = options_.momentum;
  for (size_t p = 0; p < params_.size(); ++p) {
    Tensor& param = params_[p].second;
    const Tensor grad = param.grad();
    if (!grad.defined()) continue;
    float* __restrict w = param.data();
    const float* __restrict g = grad.data();
    const int64_t n = param.numel();
    if (velocity_.empty()) {
      KILN_PARALLEL_FOR_SIMD(n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) w[i] -= lr * g[i];
    } else if (options_.nesterov) {
      float* __restrict v = velocity_[p].data();
      KILN_PARALLEL_FOR_SIMD(n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        v[i] = mu * v[i] - lr * g[i];
        w[i] += mu * v[i] - lr * g[i];
      }
    } else {
      float* __restrict v = velocity_[p].data();
      KILN_PARALLEL_FOR_SIMD(n > kParallelMin)
      for (int64_t i = 0; i < n; ++i) {
        v[i] = mu * v[i] - lr * g[i];
        w[i] += v[i];
      }
    }
  }
  ++iterations_;
}

}  // namespace kiln
