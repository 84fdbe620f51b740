// libFuzzer target: the PyTorch state_dict reader (a zip archive around a pickle and raw
// storages) on arbitrary bytes. Anything must end in tensors or a FileError.
#include <cstdint>

#include "fuzz_input_file.h"
#include "layers/io/torch/torch_weights.h"
#include "core/io/file_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kiln::fuzz::input_file(data, size, ".pt");
  try {
    kiln::read_torch_state_dict(path);
  } catch (const kiln::FileError&) {
  }
  return 0;
}
