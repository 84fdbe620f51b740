#include "layers/module.h"

#include <atomic>
#include <cmath>

#include "core/ops/ops.h"
#include "core/runtime/random.h"

namespace kiln {

Tensor* Module::register_parameter(const std::string& name, Tensor value) {
  value.set_requires_grad(true);
  parameters_.push_back({name, std::move(value)});
  return &parameters_.back().value;
}

Tensor* Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.push_back({name, std::move(value)});
  return &buffers_.back().value;
}

void Module::register_generator(const std::string& name, Generator* g) {
  check_arg(g != nullptr, "register_generator", "generator '" + name + "' is null");
  generators_.emplace_back(name, g);
}

std::vector<std::pair<std::string, Generator*>> Module::named_generators() {
  std::vector<std::pair<std::string, Generator*>> out = generators_;
  for (const auto& [name, child] : children_)
    for (const auto& [n, g] : child->named_generators()) out.emplace_back(name + "." + n, g);
  return out;
}

Tensor Module::forward_many(const std::vector<Tensor>& xs) {
  check_arg(xs.size() == 1, "Module::forward_many",
            type_name() + " takes one input, got " + std::to_string(xs.size()));
  return forward(xs[0]);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> module) {
  check_arg(module != nullptr, "register_module", "module '" + name + "' is null");
  for (const auto& [n, m] : children_)
    check_arg(n != name, "register_module", "a sub-module named '" + name + "' already exists");
  module->train(training_);
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool buffers, NamedTensors& out) const {
  for (const Entry& e : buffers ? buffers_ : parameters_) out.emplace_back(prefix + e.name, e.value);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", buffers, out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", false, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_children() const {
  std::vector<std::pair<std::string, Module*>> out;
  for (const auto& [name, child] : children_) out.emplace_back(name, child.get());
  return out;
}

int64_t Module::count_trainable() const {
  int64_t n = 0;
  for (auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

int64_t Module::count_non_trainable() const {
  int64_t n = 0;
  for (auto& [name, t] : named_buffers()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

Tensor Module::regularization_loss() const {
  Tensor total;
  for (const auto& [name, child] : children_) {
    Tensor r = child->regularization_loss();
    if (r.defined()) total = total.defined() ? add(total, r) : r;
  }
  return total;
}

namespace {
std::atomic<uint64_t>& layer_seed_counter() {
  static std::atomic<uint64_t> counter{0x5eed};
  return counter;
}
}  // namespace

void manual_seed(uint64_t seed) { layer_seed_counter() = mix64(seed); }
uint64_t next_layer_seed() { return mix64(layer_seed_counter()++); }

Tensor glorot_uniform(const Shape& shape, int64_t fan_in, int64_t fan_out, uint64_t seed) {
  const float limit = std::sqrt(6.0f / static_cast<float>(fan_in + fan_out));
  return Tensor::uniform(shape, -limit, limit, seed);
}

}  // namespace kiln
