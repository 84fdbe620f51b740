// ONNX model files -> kiln models.
//
// An ONNX model is a protobuf (onnx.proto, read with the classes Debian's libonnx-dev
// generates from it): a graph of nodes in topological order, its weights as initializers.
// kiln builds one Graph node per ONNX node it needs (layers/graph.h), opsets 9 to 17 of the
// default domain, this op set:
//
//   Conv, Gemm, MatMul (+ Add of a bias), Add, Relu, Sigmoid, Tanh, Softmax, MaxPool,
//   AveragePool, GlobalAveragePool, BatchNormalization, Flatten, Reshape, Transpose, Concat,
//   Pad (zeros around images), Dropout, Identity, Constant
//
// with the attributes kiln's layers can honour (Conv without groups or dilation, square
// kernels, equal strides, ...). Anything else fails with a FileError naming the file, the
// node, its op and the attribute or input in question.
//
// Axis order. ONNX image models are NCHW; kiln computes in NHWC. The importer keeps, for each
// ONNX value, which ONNX axis each axis of kiln's tensor holds: convolution weights are turned
// from OIHW to HWIO, a Transpose only relabels axes, a Flatten followed by Gemm/MatMul has the
// weight rows reordered once at load, and a Permute node is added only where an op needs the
// ONNX order itself (a Reshape, a Concat of mixed layouts, the graph's output). The kiln model
// takes and returns exactly what the ONNX model does: an NCHW input stays NCHW (one Permute
// at the start), an NHWC input (as tf2onnx and kiln's exporter write) needs none.
//
// The first axis of every input and of the output is the batch; the other input extents must
// be fixed numbers. A Reshape keeps the batch axis (its first entry 0, -1, or the batch size
// the file fixes). A graph with several inputs becomes a Graph that takes them through
// forward_many, in the file's order; it has one output.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "layers/io/model_file.h"

namespace kiln {

struct OnnxImportOptions {
  // Graph inputs held fixed: each becomes a constant with this value, as if it were an
  // initializer (the ONNX node tests pass weights as inputs; a user may freeze one too).
  std::map<std::string, Tensor> constants{};
};

// path: an ONNX model file -> the model in inference mode, its input shape without the batch
// axis in the file's own order ((1, 28, 28) for an NCHW MNIST model), name = the graph's name,
// format "onnx", producer = "<producer_name> <producer_version>, opset <n>".
LoadedModel import_onnx(const std::string& path, const OnnxImportOptions& options = {});
// The same from the file's bytes; label names the source in errors. (The fuzz target drives this.)
LoadedModel import_onnx_bytes(std::string_view bytes, const std::string& label,
                              const OnnxImportOptions& options = {});

// A serialized ONNX TensorProto (the .pb files of ONNX test data sets) as a float32 tensor
// (float, double, float16, int32, int64 and bool elements are converted). FileError for
// anything else.
Tensor read_onnx_tensor(const std::string& path);

}  // namespace kiln
