#include "layers/io/onnx/onnx_tensor.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

namespace kiln::onnx_io {
namespace {

// IEEE half -> float.
float half_to_float(uint16_t h) {
  const int sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  float v;
  if (exponent == 0) v = std::ldexp(static_cast<float>(mantissa), -24);
  else if (exponent == 31) v = mantissa ? NAN : INFINITY;
  else v = std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
  return sign ? -v : v;
}

// Elements stored little-endian in raw_data, each `bytes` wide, read by `get`.
template <class T>
void from_raw(const std::string& raw, int64_t n, std::vector<double>& out) {
  if (raw.size() != static_cast<size_t>(n) * sizeof(T))
    throw std::runtime_error("raw_data holds " + std::to_string(raw.size()) + " bytes, " +
                             std::to_string(n) + " elements of " + std::to_string(sizeof(T)) + " bytes need " +
                             std::to_string(static_cast<size_t>(n) * sizeof(T)));
  out.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * static_cast<int64_t>(sizeof(T)), sizeof(T));
    out[static_cast<size_t>(i)] = static_cast<double>(v);
  }
}

template <class Field>
void from_field(const Field& field, int64_t n, const char* name, std::vector<double>& out) {
  if (field.size() != n)
    throw std::runtime_error(std::string(name) + " holds " + std::to_string(field.size()) + " numbers, the dims need " +
                             std::to_string(n));
  out.assign(field.begin(), field.end());
}

}  // namespace

Constant to_constant(const onnx::TensorProto& t) {
  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    throw std::runtime_error("its data is stored outside the model file (external data); kiln reads "
                             "models whose weights are inside the file");
  Constant c;
  // Every tensor's numbers are in the file, so their count is bounded by its size: a dims
  // product past 2^40 is a damaged or hostile file, refused before anything is allocated.
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) throw std::runtime_error("a negative extent " + std::to_string(d) + " in its dims");
    if (d > 0 && n > (int64_t{1} << 40) / d) throw std::runtime_error("dims whose product is past 2^40 elements");
    n *= d;
    c.shape.push_back(d);
  }
  const std::string& raw = t.raw_data();
  const bool has_raw = t.has_raw_data();
  switch (t.data_type()) {
    case onnx::TensorProto_DataType_FLOAT:
      has_raw ? from_raw<float>(raw, n, c.values) : from_field(t.float_data(), n, "float_data", c.values);
      break;
    case onnx::TensorProto_DataType_DOUBLE:
      has_raw ? from_raw<double>(raw, n, c.values) : from_field(t.double_data(), n, "double_data", c.values);
      break;
    case onnx::TensorProto_DataType_INT64:
      has_raw ? from_raw<int64_t>(raw, n, c.values) : from_field(t.int64_data(), n, "int64_data", c.values);
      break;
    case onnx::TensorProto_DataType_INT32:
      has_raw ? from_raw<int32_t>(raw, n, c.values) : from_field(t.int32_data(), n, "int32_data", c.values);
      break;
    case onnx::TensorProto_DataType_BOOL:
      has_raw ? from_raw<uint8_t>(raw, n, c.values) : from_field(t.int32_data(), n, "int32_data", c.values);
      break;
    case onnx::TensorProto_DataType_FLOAT16: {
      std::vector<double> bits;
      has_raw ? from_raw<uint16_t>(raw, n, bits) : from_field(t.int32_data(), n, "int32_data", bits);
      c.values.resize(bits.size());
      for (size_t i = 0; i < bits.size(); ++i) c.values[i] = half_to_float(static_cast<uint16_t>(bits[i]));
      break;
    }
    default:
      throw std::runtime_error("element type " + std::to_string(t.data_type()) +
                               " (kiln reads float, double, float16, int32, int64 and bool tensors)");
  }
  return c;
}

Tensor to_tensor(const Constant& c) {
  Tensor out = Tensor::empty(c.shape);
  float* p = out.data();
  for (size_t i = 0; i < c.values.size(); ++i) p[i] = static_cast<float>(c.values[i]);
  return out;
}

void set_float_tensor(onnx::TensorProto& out, const std::string& name, const Shape& shape, const float* data) {
  out.set_name(name);
  out.set_data_type(onnx::TensorProto_DataType_FLOAT);
  for (int64_t d : shape) out.add_dims(d);
  out.set_raw_data(std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(shape_numel(shape)) * sizeof(float)));
}

void set_int64_tensor(onnx::TensorProto& out, const std::string& name, const std::vector<int64_t>& values) {
  out.set_name(name);
  out.set_data_type(onnx::TensorProto_DataType_INT64);
  out.add_dims(static_cast<int64_t>(values.size()));
  for (int64_t v : values) out.add_int64_data(v);
}

}  // namespace kiln::onnx_io
