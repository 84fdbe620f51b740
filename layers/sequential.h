// Sequential: modules applied in order. A nested Sequential (the lab's conv_block) is one
// child whose own layers appear with dotted names.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "layers/module.h"

namespace kiln {

class Sequential : public Module {
 public:
  Sequential() = default;
  // Appends a module. Without a name it gets Keras-style "conv2d", "conv2d_1", ... by type.
  Sequential& add(std::shared_ptr<Module> module, const std::string& name = "");
  Tensor forward(const Tensor& x) override;
  Tensor forward_logits(const Tensor& x) override;
  bool ends_in_softmax() const override;
  std::string type_name() const override { return "Sequential"; }

  size_t size() const { return layers_.size(); }
  Module& operator[](size_t i) { return *layers_.at(i); }
  const std::vector<std::shared_ptr<Module>>& layers() const { return layers_; }

 private:
  std::vector<std::shared_ptr<Module>> layers_;
};

// A Keras-like table for a model fed `input` = [H,W,C] (or [features]): one row per leaf
// layer with its output shape and parameter count, then trainable / non-trainable totals.
std::string summary(Module& model, const Shape& input, const std::string& title = "");

}  // namespace kiln
