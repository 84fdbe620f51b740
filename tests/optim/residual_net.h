// The residual CNN the training-step and graph tests share: a model of the user's own,
// written as a Module subclass whose forward() says how its layers connect (conv -> batch
// norm -> relu, one residual block, pool, a dense head that outputs logits), and the 192
// real MNIST training rows they train it on.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/ops/ops.h"
#include "data/dataset.h"
#include "data/formats/idx.h"
#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/max_pool2d.h"

namespace kiln::testing_models {

// conv -> batch norm -> relu, then one residual block (conv -> batch norm, added to its
// input, relu), pool, and a dense head that outputs logits.
class ResidualNet : public Module {
 public:
  ResidualNet() {
    stem_ = register_module("stem", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 1, .filters = 8}));
    stem_bn_ = register_module("stem_bn", std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 8}));
    conv_ = register_module("conv", std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 8, .filters = 8}));
    bn_ = register_module("bn", std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = 8}));
    pool_ = register_module("pool", std::make_shared<MaxPool2D>());
    flatten_ = register_module("flatten", std::make_shared<Flatten>());
    head_ = register_module("head", std::make_shared<Dense>(DenseOptions{.in_features = 14 * 14 * 8, .units = 10}));
  }
  Tensor forward(const Tensor& x) override {
    const Tensor h = relu((*stem_bn_)((*stem_)(x)));
    const Tensor r = (*bn_)((*conv_)(h));
    return (*head_)((*flatten_)((*pool_)(relu(add(h, r)))));
  }
  std::string type_name() const override { return "ResidualNet"; }

 private:
  std::shared_ptr<Conv2D> stem_, conv_;
  std::shared_ptr<BatchNorm2d> stem_bn_, bn_;
  std::shared_ptr<MaxPool2D> pool_;
  std::shared_ptr<Flatten> flatten_;
  std::shared_ptr<Dense> head_;
};

// The first 192 rows of the committed MNIST training slice, one-hot over 10 classes.
inline const Dataset& train_rows() {
  static const Dataset d = [] {
    const ImageSet set = load_mnist(std::string(KILN_TEST_DATA_DIR) + "/mnist", "train");
    std::vector<int64_t> rows(192);
    for (int64_t i = 0; i < 192; ++i) rows[static_cast<size_t>(i)] = i;
    return make_dataset(set, rows, 10);
  }();
  return d;
}

// Every parameter and buffer of a and b, by name, shape and bits.
inline void expect_same_state(const Module& a, const Module& b) {
  for (const bool buffers : {false, true}) {
    const NamedTensors ta = buffers ? a.named_buffers() : a.named_parameters();
    const NamedTensors tb = buffers ? b.named_buffers() : b.named_parameters();
    ASSERT_EQ(ta.size(), tb.size());
    for (size_t i = 0; i < ta.size(); ++i) {
      SCOPED_TRACE(ta[i].first);
      ASSERT_EQ(ta[i].first, tb[i].first);
      ASSERT_EQ(ta[i].second.shape(), tb[i].second.shape());
      EXPECT_EQ(std::memcmp(ta[i].second.data(), tb[i].second.data(), sizeof(float) * ta[i].second.numel()), 0);
    }
  }
}

}  // namespace kiln::testing_models
