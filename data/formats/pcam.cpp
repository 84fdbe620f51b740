#include "data/formats/pcam.h"

#include <H5Cpp.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <vector>

#include "core/io/h5_io.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string dims_str(const std::vector<hsize_t>& dims) {
  std::string s = "(";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + ")";
}

// "uint8", "int64", "float32"... for error messages.
std::string type_str(const H5::DataSet& ds) {
  switch (ds.getTypeClass()) {
    case H5T_INTEGER: {
      const H5::IntType t = ds.getIntType();
      return std::string(t.getSign() == H5T_SGN_NONE ? "uint" : "int") +
             std::to_string(8 * t.getSize());
    }
    case H5T_FLOAT: return "float" + std::to_string(8 * ds.getFloatType().getSize());
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    default: return "non-numeric";
  }
}

bool is_uint8(const H5::DataSet& ds) {
  if (ds.getTypeClass() != H5T_INTEGER) return false;
  const H5::IntType t = ds.getIntType();
  return t.getSize() == 1 && t.getSign() == H5T_SGN_NONE;
}

std::vector<hsize_t> dataset_dims(const H5::DataSet& ds) {
  const H5::DataSpace space = ds.getSpace();
  std::vector<hsize_t> dims(static_cast<size_t>(space.getSimpleExtentNdims()));
  if (!dims.empty()) space.getSimpleExtentDims(dims.data());
  return dims;
}

H5::DataSet open_dataset(const H5::H5File& file, const std::string& path, const std::string& name,
                         const std::string& expect) {
  if (!file.nameExists(name)) {
    throw FileError(path, "no dataset '" + name + "' (expected " + expect + ")");
  }
  return file.openDataSet(name);
}

const char* kExpectX = "dataset 'x' uint8 (N,H,W,C)";
const char* kExpectY = "dataset 'y' integer (N,) or (N,1,1,1)";

}  // namespace

const char* pcam_layout_name(PcamLayout layout) {
  return layout == PcamLayout::Course ? "course" : "original";
}

PcamFiles find_pcam_files(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "valid" && split != "test") {
    throw std::invalid_argument("find_pcam_files: split '" + split +
                                "' is not one of train, valid, test");
  }
  const fs::path d(dir);
  std::vector<std::string> looked;
  // Course layout: the lab's hand-out ships the test split without labels as test_x.h5.
  const std::vector<std::string> course =
      split == "test" ? std::vector<std::string>{"test_x.h5", "test.h5"}
                      : std::vector<std::string>{split + ".h5"};
  for (const std::string& name : course) {
    looked.push_back(name);
    if (fs::is_regular_file(d / name)) {
      const std::string p = (d / name).string();
      return {PcamLayout::Course, p, p};
    }
  }
  const std::string stem = "camelyonpatch_level_2_split_" + split;
  looked.push_back(stem + "_x.h5 (+ " + stem + "_y.h5)");
  if (fs::is_regular_file(d / (stem + "_x.h5"))) {
    const fs::path y = d / (stem + "_y.h5");
    return {PcamLayout::Original, (d / (stem + "_x.h5")).string(),
            fs::exists(y) ? y.string() : std::string()};
  }
  std::string list;
  for (const std::string& s : looked) {
    if (!list.empty()) list += " or ";
    list += s;
  }
  std::string hint;
  if (fs::exists(d / (stem + "_x.h5.gz"))) hint = " (found " + stem + "_x.h5.gz: gunzip it first)";
  throw FileError(dir, "no PCam '" + split + "' split: looked for " + list +
                           " (course or original layout)" + hint);
}

struct PcamReader::Impl {
  PcamFiles files;
  // optional because H5File has no safe copy assignment (its implicit one skips the HDF5
  // reference count); emplace constructs it once through the counted copy constructor.
  std::optional<H5::H5File> x_file;
  H5::DataSet x;
  int64_t n = 0, stored_h = 0, stored_w = 0, c = 0;
  int64_t crop_h = 0, crop_w = 0, off_h = 0, off_w = 0;
  int64_t chunk_rows = 1;
  std::vector<int32_t> labels;  // all N labels: 4 bytes per image, small next to the pixels
  bool has_labels = false;
};

PcamReader::PcamReader(const std::string& dir, const std::string& split, int64_t crop)
    : PcamReader(find_pcam_files(dir, split), crop, split != "test") {}

PcamReader::PcamReader(const PcamFiles& files, int64_t crop, bool labels_required)
    : impl_(std::make_unique<Impl>()) {
  // kiln reports HDF5 failures itself, as DataErrors naming the file; HDF5's own stack dump to
  // stderr would only duplicate them (and scare users on expected probes).
  H5::Exception::dontPrint();
  Impl& m = *impl_;
  m.files = files;
  std::string current = files.x_path;  // the file an HDF5 exception is about
  try {
    m.x_file.emplace(h5::open_file(files.x_path, kExpectX));
    m.x = open_dataset(*m.x_file, files.x_path, "x", kExpectX);
    const std::vector<hsize_t> dims = dataset_dims(m.x);
    if (dims.size() != 4 || !is_uint8(m.x) || dims[1] == 0 || dims[2] == 0 || dims[3] == 0) {
      throw FileError(files.x_path, "dataset 'x' has shape " + dims_str(dims) + " " +
                                        type_str(m.x) + " but expected (N,H,W,C) uint8");
    }
    m.n = static_cast<int64_t>(dims[0]);
    m.stored_h = static_cast<int64_t>(dims[1]);
    m.stored_w = static_cast<int64_t>(dims[2]);
    m.c = static_cast<int64_t>(dims[3]);
    if (crop < 0 || crop > std::min(m.stored_h, m.stored_w)) {
      throw FileError(files.x_path, "centre crop " + std::to_string(crop) +
                                        " does not fit the stored " + std::to_string(m.stored_h) +
                                        "x" + std::to_string(m.stored_w) +
                                        " images (expected 0 < crop <= stored size, 0 = none)");
    }
    m.crop_h = crop == 0 ? m.stored_h : crop;
    m.crop_w = crop == 0 ? m.stored_w : crop;
    m.off_h = (m.stored_h - m.crop_h) / 2;
    m.off_w = (m.stored_w - m.crop_w) / 2;
    const H5::DSetCreatPropList dcpl = m.x.getCreatePlist();
    if (dcpl.getLayout() == H5D_CHUNKED) {
      hsize_t chunk[4] = {1, 1, 1, 1};
      dcpl.getChunk(4, chunk);
      m.chunk_rows = std::max<int64_t>(1, static_cast<int64_t>(chunk[0]));
    }

    if (files.y_path.empty()) {
      if (labels_required) {
        throw FileError(files.x_path, "no label file for this split (expected " +
                                          std::string(kExpectY) + ")");
      }
      return;
    }
    current = files.y_path;
    H5::H5File y_file = files.y_path == files.x_path ? *m.x_file : h5::open_file(files.y_path, kExpectY);
    if (!y_file.nameExists("y")) {
      if (labels_required || files.y_path != files.x_path) {
        throw FileError(files.y_path, std::string("no dataset 'y' (expected ") + kExpectY + ")");
      }
      return;  // course test_x.h5: images only
    }
    const H5::DataSet y = y_file.openDataSet("y");
    const std::vector<hsize_t> ydims = dataset_dims(y);
    bool shape_ok = !ydims.empty() && y.getTypeClass() == H5T_INTEGER;
    for (size_t i = 1; i < ydims.size(); ++i) shape_ok = shape_ok && ydims[i] == 1;
    if (!shape_ok) {
      throw FileError(files.y_path, "dataset 'y' has shape " + dims_str(ydims) + " " +
                                        type_str(y) + " but expected (N,) or (N,1,1,1) integer");
    }
    if (static_cast<int64_t>(ydims[0]) != m.n) {
      throw FileError(files.y_path, "dataset 'y' has " + std::to_string(ydims[0]) +
                                        " labels but dataset 'x' in " + files.x_path + " has " +
                                        std::to_string(m.n) +
                                        " images (expected one label per image)");
    }
    m.labels.resize(static_cast<size_t>(m.n));
    // HDF5 converts whatever integer type is stored (uint8 in PCam) to int32 on the way in.
    if (m.n > 0) y.read(m.labels.data(), H5::PredType::NATIVE_INT32);
    for (int64_t i = 0; i < m.n; ++i) {
      if (m.labels[i] < 0) {
        throw FileError(files.y_path, "dataset 'y' row " + std::to_string(i) + " holds label " +
                                          std::to_string(m.labels[i]) +
                                          " (expected class indices >= 0)");
      }
    }
    m.has_labels = true;
  } catch (const H5::Exception& e) {
    throw FileError(current, "HDF5 error in " + e.getFuncName() + ": " + e.getDetailMsg());
  }
}

PcamReader::~PcamReader() = default;
PcamReader::PcamReader(PcamReader&&) noexcept = default;
PcamReader& PcamReader::operator=(PcamReader&&) noexcept = default;

int64_t PcamReader::count() const { return impl_->n; }
int64_t PcamReader::height() const { return impl_->crop_h; }
int64_t PcamReader::width() const { return impl_->crop_w; }
int64_t PcamReader::channels() const { return impl_->c; }
int64_t PcamReader::stored_height() const { return impl_->stored_h; }
int64_t PcamReader::stored_width() const { return impl_->stored_w; }
bool PcamReader::has_labels() const { return impl_->has_labels; }
const std::vector<int32_t>& PcamReader::labels() const { return impl_->labels; }
int64_t PcamReader::chunk_rows() const { return impl_->chunk_rows; }
const PcamFiles& PcamReader::files() const { return impl_->files; }

void PcamReader::read(int64_t begin, int64_t end, uint8_t* pixels, int32_t* labels) const {
  const Impl& m = *impl_;
  if (begin < 0 || end < begin || end > m.n) {
    throw FileError(m.files.x_path, "read of rows [" + std::to_string(begin) + ", " +
                                        std::to_string(end) + ") outside the " +
                                        std::to_string(m.n) + " stored images");
  }
  if (labels != nullptr && !m.has_labels) {
    throw FileError(m.files.x_path, "labels asked for, but this split has none");
  }
  const int64_t rows = end - begin;
  if (rows == 0) return;
  try {
    // One hyperslab: `rows` whole images, the centre crop in H and W, every channel.
    const hsize_t start[4] = {hsize_t(begin), hsize_t(m.off_h), hsize_t(m.off_w), 0};
    const hsize_t count[4] = {hsize_t(rows), hsize_t(m.crop_h), hsize_t(m.crop_w), hsize_t(m.c)};
    H5::DataSpace file_space = m.x.getSpace();
    file_space.selectHyperslab(H5S_SELECT_SET, count, start);
    const H5::DataSpace mem_space(4, count);
    m.x.read(pixels, H5::PredType::NATIVE_UINT8, mem_space, file_space);
  } catch (const H5::Exception& e) {
    throw FileError(m.files.x_path, "HDF5 error reading dataset 'x' rows [" +
                                        std::to_string(begin) + ", " + std::to_string(end) +
                                        ") in " + e.getFuncName() + ": " + e.getDetailMsg());
  }
  if (labels != nullptr) std::copy(m.labels.begin() + begin, m.labels.begin() + end, labels);
}

void PcamReader::for_each_chunk(
    int64_t rows, const std::function<void(int64_t begin, const ImageSet& chunk)>& fn) const {
  const Impl& m = *impl_;
  // Whole HDF5 chunks per read: a chunk split across two reads would be decompressed twice.
  const int64_t step = std::max<int64_t>(1, (rows + m.chunk_rows - 1) / m.chunk_rows) * m.chunk_rows;
  ImageSet chunk;
  chunk.h = height();
  chunk.w = width();
  chunk.c = channels();
  for (int64_t begin = 0; begin < m.n; begin += step) {
    const int64_t end = std::min(m.n, begin + step);
    chunk.n = end - begin;
    chunk.pixels.resize(static_cast<size_t>(chunk.n * row_size()));
    chunk.labels.resize(m.has_labels ? static_cast<size_t>(chunk.n) : 0);
    read(begin, end, chunk.pixels.data(), m.has_labels ? chunk.labels.data() : nullptr);
    fn(begin, chunk);
  }
}

ImageSet load_pcam(const std::string& dir, const std::string& split, int64_t crop) {
  const PcamReader reader(dir, split, crop);
  ImageSet set;
  set.n = reader.count();
  set.h = reader.height();
  set.w = reader.width();
  set.c = reader.channels();
  set.pixels.resize(static_cast<size_t>(set.n * set.row_size()));
  if (reader.has_labels()) set.labels.resize(static_cast<size_t>(set.n));
  const int64_t step = std::max<int64_t>(1, 1024 / reader.chunk_rows()) * reader.chunk_rows();
  for (int64_t begin = 0; begin < set.n; begin += step) {
    const int64_t end = std::min(set.n, begin + step);
    reader.read(begin, end, set.pixels.data() + begin * set.row_size(),
                reader.has_labels() ? set.labels.data() + begin : nullptr);
  }
  return set;
}

}  // namespace kiln
