// kiln models -> Keras' legacy HDF5 model files (the layout of `model.save("m.h5")`), so that
// Keras (2.x, and 3.x through its legacy loader) can load a model trained in kiln.
//
// The file holds, as tf.keras 2.x writes it:
//   root attributes   model_config (the Sequential's JSON config, with an InputLayer stating
//                     the input shape), keras_version, backend ("tensorflow"), and
//                     kiln_version (who actually wrote it)
//   model_weights     attributes layer_names, keras_version, backend; one group per layer with
//                     attribute weight_names, e.g. ["conv2d/kernel:0", "conv2d/bias:0"], and the
//                     datasets at those names: model_weights/conv2d/conv2d/kernel:0 ...
// A nested Sequential (the lab's conv blocks) becomes a nested Keras Sequential whose group
// lists its trainable weights first, then the batch-norm moving statistics (Keras' order).
// keras_version is the version whose layout this is ("2.13.1"): Keras reads it to decide how
// to interpret the weights.
#pragma once

#include <string>

#include "core/tensor.h"
#include "layers/module.h"

namespace kiln {

// The Keras version whose file layout export_keras writes.
constexpr const char* kKerasExportVersion = "2.13.1";

// Writes model, fed examples of shape input_shape ([H,W,C] or [features]), as a Keras legacy
// HDF5 model file at path (written under a temporary name, then renamed). Supports Sequential,
// Conv2D, Dense, BatchNorm2d, Dropout, MaxPool2D, AvgPool2D, Flatten, Reshape, Permute and
// activation layers; anything else throws FileError naming the module.
void export_keras(const std::string& path, const Module& model, const Shape& input_shape,
                  const std::string& name = "sequential");

}  // namespace kiln
