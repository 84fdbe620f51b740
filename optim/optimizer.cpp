#include "optim/optimizer.h"

#include <cmath>
#include <map>
#include <set>
#include <stdexcept>

#include "core/autograd.h"

namespace kiln {

Optimizer::Optimizer(NamedTensors params) : params_(std::move(params)) {
  std::set<std::string> names;
  std::set<const TensorImpl*> tensors;
  for (const auto& [key, t] : params_) {
    check_arg(!key.empty(), "Optimizer", "a parameter has an empty name");
    check_arg(t.defined(), "Optimizer", "parameter '" + key + "' is an undefined tensor");
    check_arg(names.insert(key).second, "Optimizer", "parameter name '" + key + "' is repeated");
    check_arg(tensors.insert(t.impl()).second, "Optimizer",
              "parameter '" + key + "' is a tensor already listed under another name");
  }
}

Optimizer::~Optimizer() = default;

void Optimizer::zero_grad() {
  for (auto& [key, t] : params_) t.zero_grad();
}

void Optimizer::set_learning_rate(float lr) {
  check_arg(std::isfinite(lr), "set_learning_rate", "learning rate " + std::to_string(lr) +
                                                        " is not finite");
  learning_rate_ = lr;
}

std::vector<Tensor> Optimizer::add_slot(const std::string& suffix) {
  std::vector<Tensor> out;
  out.reserve(params_.size());
  for (const auto& [key, t] : params_) {
    Tensor slot = Tensor::zeros(t.shape());
    slots_.emplace_back(key + "." + suffix, slot);
    out.push_back(slot);
  }
  return out;
}

NamedTensors Optimizer::state() const {
  NoGradGuard no_grad;
  NamedTensors out;
  out.reserve(slots_.size() + 2);
  out.emplace_back("iterations", Tensor::scalar(static_cast<float>(iterations_)));
  out.emplace_back("learning_rate", Tensor::scalar(learning_rate_));
  for (const auto& [key, t] : slots_) out.emplace_back(key, t.clone());
  return out;
}

void Optimizer::load_state(const NamedTensors& state) {
  const std::string op = std::string(name()) + "::load_state";
  std::map<std::string, const Tensor*> given;
  for (const auto& [key, t] : state) {
    check_arg(t.defined(), op.c_str(), "entry '" + key + "' is an undefined tensor");
    check_arg(given.emplace(key, &t).second, op.c_str(), "entry '" + key + "' is repeated");
  }
  // Expected entries with their shapes, in state() order.
  std::vector<std::pair<std::string, Shape>> expected = {{"iterations", {}},
                                                         {"learning_rate", {}}};
  for (const auto& [key, t] : slots_) expected.emplace_back(key, t.shape());

  for (const auto& [key, shape] : expected) {
    const auto it = given.find(key);
    check_arg(it != given.end(), op.c_str(), "missing entry '" + key + "'");
    check_arg(it->second->shape() == shape, op.c_str(),
              "entry '" + key + "' has shape " + shape_str(it->second->shape()) +
                  ", expected " + shape_str(shape));
  }
  if (given.size() != expected.size()) {
    std::set<std::string> known;
    for (const auto& [key, shape] : expected) known.insert(key);
    for (const auto& [key, t] : given)
      check_arg(known.count(key) > 0, op.c_str(),
                "unexpected entry '" + key + "' (state of another optimizer or model?)");
  }
  const float it_value = given.at("iterations")->item();
  check_arg(it_value >= 0.0f && it_value == std::floor(it_value) && it_value < 9.0e18f,
            op.c_str(), "entry 'iterations' is " + std::to_string(it_value) +
                            ", expected a whole number >= 0");
  const float lr = given.at("learning_rate")->item();
  check_arg(std::isfinite(lr), op.c_str(),
            "entry 'learning_rate' is " + std::to_string(lr) + ", expected a finite number");

  // Everything checked: now write.
  iterations_ = static_cast<int64_t>(it_value);
  learning_rate_ = lr;
  for (auto& [key, t] : slots_) t.copy_(*given.at(key));
}

}  // namespace kiln
