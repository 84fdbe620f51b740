// Readers for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//
// IDX: a 4-byte magic (two zero bytes, a type byte, a rank byte), then `rank` big-endian
// uint32 extents, then the values row-major. kiln reads only type 0x08 (uint8): images
// have magic 0x00000803 (N,H,W), labels 0x00000801 (N). The payload must be exactly as long as
// the header says; a truncated file or one with trailing bytes is rejected, because either
// means the file is not the one the header describes.
//
// ImageSet and DataError also serve the PCam reader (data/pcam.h): both readers hand back
// raw uint8 pixels, and data/dataset.h turns those into float tensors.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace kiln {

// A data file that is missing, unreadable, or not what it should be. what() starts with the
// file's path, then says what was expected and what was found.
class DataError : public std::runtime_error {
 public:
  DataError(const std::string& path, const std::string& message)
      : std::runtime_error(path + ": " + message), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Raw images as stored: pixels uint8 [n,h,w,c] row-major (NHWC), labels [n] or empty when the
// file set has none (e.g. the PCam test split).
struct ImageSet {
  std::vector<uint8_t> pixels;
  int64_t n = 0, h = 0, w = 0, c = 0;
  std::vector<int32_t> labels;

  int64_t row_size() const { return h * w * c; }  // bytes per image
};

// path: IDX images, magic 0x00000803, (N,H,W) uint8, plain or .gz -> ImageSet with c = 1 and
// no labels.
ImageSet read_idx_images(const std::string& path);
// path: IDX labels, magic 0x00000801, (N) uint8, plain or .gz -> N labels in 0..255.
std::vector<int32_t> read_idx_labels(const std::string& path);

// dir holding <prefix>-images-idx3-ubyte[.gz] and <prefix>-labels-idx1-ubyte[.gz]
// (prefix "train" or "t10k"; the "-images.idx3-ubyte" spelling is also accepted)
// -> ImageSet [N,28,28,1] with N labels. Throws DataError if a file is missing (listing the
// names looked for) or the image and label counts differ.
ImageSet load_mnist(const std::string& dir, const std::string& prefix);

// The path of the first of `candidates` (file names) that exists in dir. Throws DataError
// naming dir and every candidate when none does.
std::string find_data_file(const std::string& dir, const std::vector<std::string>& candidates,
                           const std::string& what);

}  // namespace kiln
