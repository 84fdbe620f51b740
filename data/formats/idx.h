// Readers for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//
// IDX: a 4-byte magic (two zero bytes, a type byte, a rank byte), then `rank` big-endian
// uint32 extents, then the values row-major. kiln reads only type 0x08 (uint8): images
// have magic 0x00000803 (N,H,W), labels 0x00000801 (N). The payload must be exactly as long as
// the header says; a truncated file or one with trailing bytes is rejected, because either
// means the file is not the one the header describes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/io/file_error.h"  // FileError
#include "data/image_set.h"

namespace kiln {

// path: IDX images, magic 0x00000803, (N,H,W) uint8, plain or .gz -> ImageSet with c = 1 and
// no labels.
ImageSet read_idx_images(const std::string& path);
// path: IDX labels, magic 0x00000801, (N) uint8, plain or .gz -> N labels in 0..255.
std::vector<int32_t> read_idx_labels(const std::string& path);

// dir holding <prefix>-images-idx3-ubyte[.gz] and <prefix>-labels-idx1-ubyte[.gz]
// (prefix "train" or "t10k"; the "-images.idx3-ubyte" spelling is also accepted)
// -> ImageSet [N,28,28,1] with N labels in 0..9. Throws FileError if a file is missing
// (listing the names looked for), the image and label counts differ, or a label is 10 or more.
inline constexpr int32_t kMnistClasses = 10;
ImageSet load_mnist(const std::string& dir, const std::string& prefix);

// The path of the first of `candidates` (file names) that exists in dir. Throws FileError
// naming dir and every candidate when none does.
std::string find_data_file(const std::string& dir, const std::vector<std::string>& candidates,
                           const std::string& what);

}  // namespace kiln
