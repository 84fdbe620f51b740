#include "layers/zoo/lab_models.h"

#include "layers/batch_norm2d.h"
#include "layers/conv2d.h"
#include "layers/dense.h"
#include "layers/dropout.h"
#include "layers/flatten.h"
#include "layers/max_pool2d.h"

namespace kiln {

std::shared_ptr<Sequential> conv_block(int n_convs, int64_t in_channels, int64_t channels, float l2) {
  auto block = std::make_shared<Sequential>();
  for (int i = 0; i < n_convs; ++i) {
    block->add(std::make_shared<Conv2D>(Conv2DOptions{
        .in_channels = i == 0 ? in_channels : channels, .filters = channels, .l2 = l2}));
    block->add(std::make_shared<BatchNorm2d>(BatchNormOptions{.channels = channels}));
    block->add(ReLU());
  }
  block->add(std::make_shared<MaxPool2D>());
  return block;
}

namespace {
// Spatial size after `pools` 2x2 valid poolings.
int64_t pooled(int64_t size, int pools) {
  for (int i = 0; i < pools; ++i) size /= 2;
  return size;
}
}  // namespace

std::shared_ptr<Sequential> task1_model(int64_t h, int64_t w, int64_t c, int64_t classes) {
  auto m = std::make_shared<Sequential>();
  m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = c, .filters = 4, .activation = Activation::ReLU}));
  m->add(std::make_shared<MaxPool2D>());
  m->add(std::make_shared<Conv2D>(Conv2DOptions{.in_channels = 4, .filters = 8, .activation = Activation::ReLU}));
  m->add(std::make_shared<MaxPool2D>());
  m->add(std::make_shared<Flatten>());
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = pooled(h, 2) * pooled(w, 2) * 8,
                                              .units = classes, .activation = Activation::Softmax}));
  return m;
}

std::shared_ptr<Sequential> task2_model(int64_t h, int64_t w, int64_t c, int64_t classes, float l2) {
  auto m = std::make_shared<Sequential>();
  m->add(conv_block(2, c, 64, l2), "block1");
  m->add(conv_block(2, 64, 128, l2), "block2");
  m->add(std::make_shared<Dropout>(0.1f));
  m->add(conv_block(2, 128, 128, l2), "block3");
  m->add(std::make_shared<Dropout>(0.1f));
  m->add(std::make_shared<Flatten>());
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = pooled(h, 3) * pooled(w, 3) * 128,
                                              .units = 512, .activation = Activation::ReLU}));
  m->add(std::make_shared<Dropout>(0.1f));
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = 512, .units = classes,
                                              .activation = Activation::Softmax}));
  return m;
}

std::shared_ptr<Sequential> task3_model(int64_t h, int64_t w, int64_t c, int64_t classes, float l2) {
  auto m = std::make_shared<Sequential>();
  m->add(conv_block(2, c, 128, l2), "block1");
  m->add(conv_block(2, 128, 128, l2), "block2");
  m->add(conv_block(2, 128, 256, l2), "block3");
  m->add(std::make_shared<Flatten>());
  m->add(std::make_shared<Dropout>(0.3f));
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = pooled(h, 3) * pooled(w, 3) * 256,
                                              .units = 256, .activation = Activation::ReLU}));
  m->add(std::make_shared<Dropout>(0.3f));
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = 256, .units = 256, .activation = Activation::ReLU}));
  m->add(std::make_shared<Dense>(DenseOptions{.in_features = 256, .units = classes,
                                              .activation = Activation::Softmax}));
  return m;
}

}  // namespace kiln
