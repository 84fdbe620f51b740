// kiln models -> ONNX model files (opset 13), for ONNX Runtime, OpenCV's dnn, TensorRT and
// the other programs that read ONNX.
//
//   kiln                      ONNX
//   Conv2D (+ activation)     Conv (OIHW weights, explicit pads for "same") (+ Relu/Sigmoid/Tanh/Softmax)
//   Dense (+ activation)      Gemm (+ activation)
//   MaxPool2D, AvgPool2D      MaxPool, AveragePool (count_include_pad 0: kiln's "same" mean)
//   GlobalAvgPool2D           GlobalAveragePool (+ Flatten without keepdims)
//   BatchNorm2d               BatchNormalization (moving statistics, epsilon, momentum)
//   Flatten                   Flatten (of the NHWC tensor, kiln's order)
//   Reshape, Permute          Reshape, Transpose
//   Add, Concatenate          Add, Concat
//   ZeroPadding2D             Pad
//   Dropout                   Dropout (an identity in inference)
//   Sequential, Graph         the nodes of their layers, wired as the model wires them
//
// The file takes exactly what the kiln model takes: for an image model that is NHWC
// ([N,H,W,C], the batch axis named N), as tf2onnx writes Keras models; the graph transposes to
// NCHW once and computes in NCHW, so a Flatten is preceded by a transpose back to kiln's H,W,C
// order. Importing the file into kiln (layers/io/onnx/onnx_import.h) gives the same model:
// the transposes only relabel axes there. L2 penalties are training options and are not
// written; anything without an ONNX counterpart (a module of your own that is not made of
// these) fails naming the module and its type, before anything is written.
#pragma once

#include <string>

#include "layers/module.h"

namespace kiln {

// Writes model (fed one example of shape input_shape, without the batch axis) to path as an
// ONNX model, atomically: a failure leaves no file and an existing one untouched. FileError
// naming path and the module for anything that cannot be exported.
void export_onnx(const std::string& path, const Module& model, const Shape& input_shape,
                 const std::string& name = "model");
// The same as the bytes of the file; label names the destination in errors.
std::string export_onnx_bytes(const Module& model, const Shape& input_shape, const std::string& name,
                              const std::string& label);

}  // namespace kiln
