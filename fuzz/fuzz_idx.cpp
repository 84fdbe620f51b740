// libFuzzer target: the IDX readers (images and labels, plain or gzip) on arbitrary bytes.
// Any input must end in a result or a FileError; a crash, a sanitizer report, or a different
// exception type is a bug.
#include <cstdint>
#include <cstring>

#include "data/formats/idx.h"
#include "fuzz_input_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kiln::fuzz::input_file(data, size, ".idx");
  try {
    const kiln::ImageSet images = kiln::read_idx_images(path);
    if (images.pixels.size() != static_cast<size_t>(images.n * images.row_size())) __builtin_trap();
  } catch (const kiln::FileError&) {
  }
  try {
    const std::vector<int32_t> labels = kiln::read_idx_labels(path);
    for (const int32_t l : labels)
      if (l < 0 || l > 255) __builtin_trap();
  } catch (const kiln::FileError&) {
  }
  return 0;
}
