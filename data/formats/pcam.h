// PatchCamelyon reader (HDF5), for both layouts a PCam directory can have:
//  - course layout: train.h5, valid.h5, test_x.h5, each with dataset 'x' uint8 (N,32,32,3)
//    and (train, valid) 'y' integer (N,) or (N,1,1,1);
//  - original release: camelyonpatch_level_2_split_<split>_x.h5 with 'x' uint8 (N,96,96,3)
//    and ..._<split>_y.h5 with 'y' (N,1,1,1).
// Rows are read in hyperslabs of whole images, so memory stays bounded by one chunk of rows:
// the original train split is 7 GB and must stream. A centre crop (e.g. 96 -> 32, the region
// that decides a PCam label) is applied inside the HDF5 selection, so only cropped bytes reach
// kiln's buffers.
//
// A PcamReader is used from one thread at a time; several readers may run on several threads
// where the HDF5 library is built thread-safe (H5_HAVE_THREADSAFE, as Debian's is).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/io/file_error.h"  // FileError
#include "data/image_set.h"

namespace kiln {

enum class PcamLayout { Course, Original };
const char* pcam_layout_name(PcamLayout layout);  // "course" / "original"

// Where one split lives. y_path is empty when the split has no labels (the course test_x.h5).
// For the course layout x_path == y_path.
struct PcamFiles {
  PcamLayout layout = PcamLayout::Course;
  std::string x_path;
  std::string y_path;
};

// dir, split "train" | "valid" | "test" -> the files of that split. The course layout wins
// when both are present. Throws FileError naming dir and every file name looked for.
PcamFiles find_pcam_files(const std::string& dir, const std::string& split);

class PcamReader {
 public:
  // Opens and validates the split's files (shapes, dtypes, image/label counts).
  // crop: side of the centred square kept from each stored image; 0 keeps the stored size.
  PcamReader(const std::string& dir, const std::string& split, int64_t crop = 0);
  explicit PcamReader(const PcamFiles& files, int64_t crop = 0, bool labels_required = true);
  ~PcamReader();
  PcamReader(PcamReader&&) noexcept;
  PcamReader& operator=(PcamReader&&) noexcept;

  int64_t count() const;     // N, images in the split
  int64_t height() const;    // after the crop
  int64_t width() const;
  int64_t channels() const;  // C as stored (3 for PCam)
  int64_t stored_height() const;
  int64_t stored_width() const;
  int64_t row_size() const { return height() * width() * channels(); }  // bytes per image
  bool has_labels() const;
  // Every image's label (read when the reader opened the split; empty when unlabelled).
  const std::vector<int32_t>& labels() const;
  // Rows per HDF5 chunk of 'x' (1 when stored contiguously): reads aligned to it decompress
  // each chunk once.
  int64_t chunk_rows() const;
  const PcamFiles& files() const;

  // rows [begin, end) -> pixels: (end-begin)*row_size() bytes, NHWC; labels: end-begin values
  // (may be null; must be null when !has_labels()). Throws FileError if the range is out of
  // [0, count()] or HDF5 fails.
  void read(int64_t begin, int64_t end, uint8_t* pixels, int32_t* labels) const;

  // Streams the whole split: fn(begin, chunk) for consecutive chunks of about `rows` images
  // (rounded up to whole HDF5 chunks), chunk holding pixels [m,h,w,c] and m labels (none when
  // unlabelled). The chunk buffer is reused: copy what you keep.
  void for_each_chunk(int64_t rows,
                      const std::function<void(int64_t begin, const ImageSet& chunk)>& fn) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// dir, split -> the whole split as ImageSet [N,crop,crop,3] (crop 0: stored size), read in
// chunks of 1024 rows. Labels empty for an unlabelled test split.
ImageSet load_pcam(const std::string& dir, const std::string& split, int64_t crop = 32);

}  // namespace kiln
