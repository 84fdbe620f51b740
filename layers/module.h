// Module: the base of every layer and model. A module registers what it owns by name:
// parameters (trained), buffers (state such as batch-norm moving statistics, saved but not
// trained) and sub-modules. The registry is the only owner; a layer's members are pointers
// into it, so a parameter can never be assigned without the registry seeing it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/runtime/random.h"
#include "core/tensor.h"

namespace kiln {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // Not copyable: a module's registry points into its own members.
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // x -> y. Training-mode behaviour (dropout, batch statistics, augmentation) follows is_training().
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  // Like forward, but a module whose last step is a softmax returns the logits before it, so
  // the loss can use the fused, stable softmax + cross-entropy.
  virtual Tensor forward_logits(const Tensor& x) { return forward(x); }
  // A graph node's call: its inputs in order. Most layers take exactly one and this calls
  // forward(); a layer that joins tensors (Add, Concatenate: layers/merge.h) takes two or
  // more and says so in joins_inputs().
  virtual Tensor forward_many(const std::vector<Tensor>& xs);
  virtual bool joins_inputs() const { return false; }
  virtual bool ends_in_softmax() const { return false; }
  // Class name as Keras prints it ("Conv2D", "Dense", ...).
  virtual std::string type_name() const = 0;
  // Extra text for summary() ("3x3, same, relu"); empty by default.
  virtual std::string describe() const { return ""; }

  // Recursive, dotted names in registration order: "conv2d.kernel", "block1.conv2d_1.bias".
  NamedTensors named_parameters() const;  // trainable
  NamedTensors named_buffers() const;     // non-trainable state
  std::vector<Tensor> parameters() const;
  std::vector<std::pair<std::string, Module*>> named_children() const;
  // Random streams the module draws from while training (dropout masks), recursive and
  // dotted like the tensors: a checkpoint saves their state so a resumed run draws on exactly
  // where the interrupted one stopped.
  std::vector<std::pair<std::string, Generator*>> named_generators();
  int64_t count_trainable() const;
  int64_t count_non_trainable() const;

  // Sets training mode here and in every sub-module.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Sum of the weight penalties (L2 kernel regularisers) of this module and its children,
  // a scalar tensor in the graph, or an undefined tensor when there are none.
  virtual Tensor regularization_loss() const;

 protected:
  Tensor* register_parameter(const std::string& name, Tensor value);
  Tensor* register_buffer(const std::string& name, Tensor value);
  // g must live as long as the module (a member of it).
  void register_generator(const std::string& name, Generator* g);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  void add_child(const std::string& name, std::shared_ptr<Module> module);

 private:
  struct Entry {
    std::string name;
    Tensor value;
  };
  void collect(const std::string& prefix, bool buffers, NamedTensors& out) const;

  std::deque<Entry> parameters_;  // deque: pointers to entries stay valid as it grows
  std::deque<Entry> buffers_;
  std::vector<std::pair<std::string, Generator*>> generators_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// The seed that layers draw their initialisation and dropout seeds from, in construction
// order (like torch.manual_seed): the same seed builds the same model.
void manual_seed(uint64_t seed);
uint64_t next_layer_seed();

// Glorot (Xavier) uniform: U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), Keras' default kernel init.
Tensor glorot_uniform(const Shape& shape, int64_t fan_in, int64_t fan_out, uint64_t seed);

}  // namespace kiln
