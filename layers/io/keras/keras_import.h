// Keras model files -> kiln models.
//
// Reads the two formats `model.save()` writes:
//   * legacy HDF5 (".h5", ".hdf5"; Keras 2.x and 3.x): the architecture is the JSON in the
//     root attribute `model_config`; the weights of layer L are the datasets named by the
//     `weight_names` attribute of group model_weights/L, in that order;
//   * Keras 3 ".keras" zip: config.json + model.weights.h5, where a layer's variables are
//     datasets layers/<name>/vars/0, 1, ... and <name> is the snake_case class name made
//     unique by creation order (conv2d, conv2d_1, ...), not the layer's own name.
// The model must be a Sequential, or a functional model whose layers form one chain, of:
// InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, Flatten, Dense, Dropout,
// BatchNormalization, Activation, ReLU, Softmax, Reshape, Permute and nested models of
// these. Anything else fails with a FileError naming the file, the layer and the option.
//
// kiln computes in NHWC. A channels_first layer gets its input as (C,H,W) in Keras' terms;
// the importer holds such tensors as NHWC and puts a Permute wherever the Keras axis order
// matters (model input, Flatten in C,H,W order, Reshape, Dense, the model output), so the
// model takes and returns exactly what the Keras model does.
#pragma once

#include <string>

#include "layers/io/model_file.h"

namespace kiln {

// path: a Keras model file (either format, told apart by content) -> the model in inference
// mode, its input shape in Keras' order, and the Keras version that wrote it.
LoadedModel import_keras(const std::string& path);

// The architecture half of import_keras: the kiln model that a Keras model config (the JSON
// of `model_config` or config.json) describes, with fresh weights. `label` names the source
// in errors. Throws FileError for anything it cannot build. (The config fuzz target
// drives this.)
LoadedModel build_keras_model(const std::string& config_json, const std::string& label);

}  // namespace kiln
