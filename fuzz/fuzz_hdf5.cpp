// libFuzzer target: every reader of HDF5 files on arbitrary bytes: the PatchCamelyon reader
// (course layout), kiln model files and Keras legacy .h5 files (load_model), and checkpoints.
// Each must end in a result or kiln's own error types, never a crash.
#include <cstdint>

#include "data/formats/idx.h"
#include "data/formats/pcam.h"
#include "fuzz_input_file.h"
#include "layers/io/model_file.h"
#include "optim/train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kiln::fuzz::input_file(data, size, ".h5");
  try {
    const kiln::PcamReader reader(kiln::PcamFiles{kiln::PcamLayout::Course, path, path}, 0, false);
    const int64_t n = std::min<int64_t>(reader.count(), 4);
    std::vector<uint8_t> pixels(static_cast<size_t>(n * reader.row_size()));
    std::vector<int32_t> labels(static_cast<size_t>(n));
    reader.read(0, n, pixels.data(), reader.has_labels() ? labels.data() : nullptr);
  } catch (const kiln::FileError&) {
  }
  try {
    kiln::load_model(path);
  } catch (const kiln::FileError&) {
  }
  try {
    kiln::read_checkpoint(path);
  } catch (const kiln::FileError&) {
  }
  return 0;
}
