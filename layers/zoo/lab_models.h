// The three models of the lab (see README "The lab's models"), built from kiln's layers.
#pragma once

#include <memory>

#include "layers/sequential.h"

namespace kiln {

// The lab's conv_block(N, ch): N x [Conv2D(ch, 3x3, same, no activation, L2 on the kernel)
// -> BatchNormalization -> ReLU] -> MaxPool 2x2. Input channels `in_channels`.
std::shared_ptr<Sequential> conv_block(int n_convs, int64_t in_channels, int64_t channels, float l2);

// Task 1: Conv(4, relu) -> pool -> Conv(8, relu) -> pool -> Flatten -> Dense(10, softmax).
// Input [28,28,1]; 4,266 trainable parameters.
std::shared_ptr<Sequential> task1_model(int64_t height = 28, int64_t width = 28, int64_t channels = 1,
                                        int64_t classes = 10);
// Task 2: conv_block(2,64) -> conv_block(2,128) -> Dropout(0.1) -> conv_block(2,128) ->
// Dropout(0.1) -> Flatten -> Dense(512, relu) -> Dropout(0.1) -> Dense(10, softmax); L2 1e-4.
std::shared_ptr<Sequential> task2_model(int64_t height = 28, int64_t width = 28, int64_t channels = 1,
                                        int64_t classes = 10, float l2 = 1e-4f);
// Task 3: conv_block(2,128) -> conv_block(2,128) -> conv_block(2,256) -> Flatten ->
// Dropout(0.3) -> Dense(256, relu) -> Dropout(0.3) -> Dense(256, relu) -> Dense(2, softmax).
std::shared_ptr<Sequential> task3_model(int64_t height = 32, int64_t width = 32, int64_t channels = 3,
                                        int64_t classes = 2, float l2 = 1e-4f);

}  // namespace kiln
