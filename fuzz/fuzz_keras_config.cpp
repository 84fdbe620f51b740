// libFuzzer target: the Keras model-config parser and model builder on arbitrary text (the
// JSON of model_config / config.json). Anything must end in a model or a FileError.
#include <cstdint>
#include <string>

#include "layers/io/keras/keras_import.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const kiln::LoadedModel m = kiln::build_keras_model(text, "fuzz input");
    if (!m.model) __builtin_trap();
  } catch (const kiln::FileError&) {
  }
  return 0;
}
