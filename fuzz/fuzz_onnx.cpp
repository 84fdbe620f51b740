// libFuzzer target: the ONNX importer (a protobuf ModelProto turned into a kiln Graph) on
// arbitrary bytes. Anything must end in a model or a FileError. A model that imports is then
// run once on a zero batch of one example of each input shape, so that the layers it built
// and the shapes the importer worked out are exercised too: it must run, and keep the batch.
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/autograd.h"
#include "core/io/file_error.h"
#include "core/tensor.h"
#include "layers/io/onnx/onnx_import.h"

namespace {

kiln::Tensor zero_batch(const kiln::Shape& example) {
  kiln::Shape batch = {1};
  batch.insert(batch.end(), example.begin(), example.end());
  return kiln::Tensor::zeros(batch);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const kiln::LoadedModel m = kiln::import_onnx_bytes(bytes, "fuzz input");
    if (!m.model) __builtin_trap();
    kiln::NoGradGuard no_grad;
    kiln::Tensor out;
    if (m.input_shapes.empty()) {
      out = m.model->forward(zero_batch(m.input_shape));
    } else {
      std::vector<kiln::Tensor> xs;
      for (const kiln::Shape& s : m.input_shapes) xs.push_back(zero_batch(s));
      out = m.model->forward_many(xs);
    }
    // The importer's contract: the first axis of the output is the batch.
    if (out.shape().empty() || out.shape()[0] != 1) __builtin_trap();
  } catch (const kiln::FileError&) {
  }
  return 0;
}
