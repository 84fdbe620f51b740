// ImageSet: images as a file stores them, before any scaling: what the IDX and PCam readers
// (data/formats/) hand back, and what data/dataset.h turns into float tensors.
#pragma once

#include <cstdint>
#include <vector>

namespace kiln {

// Raw images as stored: pixels uint8 [n,h,w,c] row-major (NHWC), labels [n] or empty when the
// file set has none (e.g. the PCam test split).
struct ImageSet {
  std::vector<uint8_t> pixels;
  int64_t n = 0, h = 0, w = 0, c = 0;
  std::vector<int32_t> labels;

  int64_t row_size() const { return h * w * c; }  // bytes per image
};


}  // namespace kiln
