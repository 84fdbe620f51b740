// ONNX TensorProto <-> numbers, shared by the importer and the exporter. Internal to
// layers/io/onnx (it names protobuf classes, which kiln's public headers do not).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace onnx {
class TensorProto;
}

namespace kiln::onnx_io {

// A constant: its extents and its numbers. double holds every float32 and every integer up
// to 2^53 exactly, so one type serves weights and shapes alike.
struct Constant {
  Shape shape;
  std::vector<double> values;
  int64_t numel() const { return static_cast<int64_t>(values.size()); }
};

// t -> a Constant; throws std::runtime_error saying what is wrong (an element type kiln does
// not read, data stored outside the file, a count that disagrees with the dims). The caller
// adds the file and the tensor's name.
Constant to_constant(const onnx::TensorProto& t);
Tensor to_tensor(const Constant& c);

// A float32 initializer named name holding t's numbers in t's shape.
void set_float_tensor(onnx::TensorProto& out, const std::string& name, const Shape& shape, const float* data);
void set_int64_tensor(onnx::TensorProto& out, const std::string& name, const std::vector<int64_t>& values);

}  // namespace kiln::onnx_io
