// Model files: kiln's own format, and the one entry point that opens any model file kiln
// reads (kiln's own, or a Keras model file).
//
// kiln's format is HDF5:
//   attributes  kiln_format = "kiln-model", version = 1 (int), architecture = JSON (the
//               module tree: each module's type, name and options, and the input shape)
//   datasets    /parameters/<dotted name> and /buffers/<dotted name>, float32, one per
//               named parameter and buffer (named_parameters()/named_buffers() names)
// A file of another version is refused with a message that says what was found and what
// this kiln reads.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>

#include "core/io/file_error.h"  // FileError
#include "layers/sequential.h"

namespace kiln {

struct LoadedModel {
  // A Sequential for Keras files and for kiln files saved from one; the saved module's own
  // type (a registered layer type, layers/layer_registry.h) otherwise.
  std::shared_ptr<Module> model;
  // One example's shape as the model takes it, without the batch axis, in the model's own
  // axis order: (28, 28, 1) for a channels-last model, (1, 28, 28) for a channels-first one.
  // model->forward() takes [N, input_shape...].
  Shape input_shape;
  // Every input's shape, in order, for a model with several (a Graph from an ONNX file);
  // empty for a model with one (input_shape says it).
  std::vector<Shape> input_shapes{};
  std::string name;           // the model's name in the file
  std::string format;         // "kiln", "keras-h5" (legacy HDF5), "keras-zip" (.keras) or "onnx"
  std::string keras_version;  // the Keras that wrote it ("3.1.1"); empty for other files
  std::string producer;       // ONNX: the program that wrote it and the opset ("pytorch 1.13.1, opset 13")
};

// The current version of kiln's model format.
constexpr int kModelFileVersion = 1;

// Opens any model file kiln reads, by content (not by extension): a kiln model file, a Keras
// legacy HDF5 file (model.save("m.h5")), a Keras 3 .keras zip or an ONNX model
// (layers/io/onnx/onnx_import.h; a protobuf has no magic number, so a file that is none of
// the others is read as ONNX). The model comes back in inference mode (eval()).
LoadedModel load_model(const std::string& path);

// Writes model (fed one example of shape input_shape) as a kiln model file, atomically.
// Any module saves whose parts are Sequentials and registered layer types (including a
// composite module of your own, registered with register_layer). Throws FileError when the
// model holds an unregistered module or does not run on input_shape.
void save_model(const std::string& path, const Module& model, const Shape& input_shape,
                const std::string& name = "model");

// Runs model (in eval mode, restored after) on one zero example of input_shape, so a writer
// can refuse a model that does not run on it before writing anything. Throws FileError
// naming path.
void check_model_runs(const Module& model, const Shape& input_shape, const std::string& path);

// Reads a kiln model file (load_model dispatches here for kiln's format).
LoadedModel load_kiln_model(const std::string& path);

}  // namespace kiln
