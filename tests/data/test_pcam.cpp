// PCam reading on the committed slices (course and original layout), centre crops, chunked
// streaming, and every rejection on HDF5 files written here.
#include <gtest/gtest.h>

#include <H5Cpp.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "data/formats/pcam.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const std::string kSlice = std::string(KILN_TEST_DATA_DIR) + "/pcam";
const std::string kOriginalX = kSlice + "/camelyonpatch_level_2_split_valid_x.h5";
const std::string kOriginalY = kSlice + "/camelyonpatch_level_2_split_valid_y.h5";

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "kiln-test-pcam-XXXXXX").string();
    if (mkdtemp(t.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

int64_t sum(const std::vector<uint8_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); }
int64_t sum(const std::vector<int32_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); }

// Writes dataset `name` of the given shape and type into an HDF5 file (created if new),
// filled with 0, 1, 2, ... converted to the type.
void write_dataset(const std::string& path, const std::string& name, std::vector<hsize_t> dims,
                   const H5::PredType& file_type) {
  const bool exists = fs::exists(path);
  H5::H5File f(path, exists ? H5F_ACC_RDWR : H5F_ACC_TRUNC);
  const H5::DataSpace space(static_cast<int>(dims.size()), dims.data());
  H5::DataSet ds = f.createDataSet(name, file_type, space);
  hsize_t n = 1;
  for (hsize_t d : dims) n *= d;
  std::vector<int32_t> values(n);
  for (hsize_t i = 0; i < n; ++i) values[i] = static_cast<int32_t>(i % 2);
  ds.write(values.data(), H5::PredType::NATIVE_INT32);
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const FileError& e) {
    return e.what();
  }
  return "(no FileError thrown)";
}

// A rejection must say what it says through the exception alone: HDF5's own error stack
// must not reach stderr.
std::string quiet_error_of(const std::function<void()>& fn) {
  testing::internal::CaptureStderr();
  const std::string e = error_of(fn);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(err, "") << "HDF5 printed to stderr";
  return e;
}

// ---------------------------------------------------------------- the course slice

TEST(Pcam, CourseTrainSlice) {
  const ImageSet s = load_pcam(kSlice, "train");
  EXPECT_EQ(s.n, 1000);
  EXPECT_EQ(s.h, 32);
  EXPECT_EQ(s.w, 32);
  EXPECT_EQ(s.c, 3);
  ASSERT_EQ(s.pixels.size(), 1000u * 32 * 32 * 3);
  ASSERT_EQ(s.labels.size(), 1000u);
  EXPECT_EQ(sum(s.labels), 484);  // positives among the first 1,000
  EXPECT_EQ(sum(s.pixels), 495076166);
}

TEST(Pcam, CourseValidAndUnlabelledTest) {
  const ImageSet v = load_pcam(kSlice, "valid");
  EXPECT_EQ(v.n, 300);
  EXPECT_EQ(sum(v.labels), 144);
  const ImageSet t = load_pcam(kSlice, "test");
  EXPECT_EQ(t.n, 300);
  EXPECT_TRUE(t.labels.empty());
  EXPECT_EQ(sum(t.pixels), 145125908);
  const PcamReader r(kSlice, "test");
  EXPECT_FALSE(r.has_labels());
  EXPECT_EQ(r.files().layout, PcamLayout::Course);
}

TEST(Pcam, CourseLayoutWinsWhenBothArePresent) {
  const PcamFiles f = find_pcam_files(kSlice, "valid");
  EXPECT_EQ(f.layout, PcamLayout::Course);
  EXPECT_EQ(f.x_path, kSlice + "/valid.h5");
}

// ---------------------------------------------------------------- the original layout

TEST(Pcam, OriginalLayoutIsDetectedAndRead) {
  TempDir dir;
  fs::copy_file(kOriginalX, dir.file("camelyonpatch_level_2_split_valid_x.h5"));
  fs::copy_file(kOriginalY, dir.file("camelyonpatch_level_2_split_valid_y.h5"));
  EXPECT_EQ(find_pcam_files(dir.str(), "valid").layout, PcamLayout::Original);
  const ImageSet full = load_pcam(dir.str(), "valid", 0);
  EXPECT_EQ(full.n, 32);
  EXPECT_EQ(full.h, 96);
  EXPECT_EQ(full.w, 96);
  EXPECT_EQ(sum(full.pixels), 134961915);
  EXPECT_EQ(sum(full.labels), 19);
}

TEST(Pcam, OriginalCentreCropEqualsTheCourseFile) {
  // The course valid.h5 was made by cropping these very patches at rows/cols 32..63.
  const ImageSet original = load_pcam(kSlice, "valid", 32);  // course, no-op crop
  const PcamReader r(PcamFiles{PcamLayout::Original, kOriginalX, kOriginalY}, 32);
  EXPECT_EQ(r.stored_height(), 96);
  EXPECT_EQ(r.height(), 32);
  std::vector<uint8_t> px(static_cast<size_t>(32 * r.row_size()));
  std::vector<int32_t> labels(32);
  r.read(0, 32, px.data(), labels.data());
  EXPECT_TRUE(std::equal(px.begin(), px.end(), original.pixels.begin()));
  EXPECT_TRUE(std::equal(labels.begin(), labels.end(), original.labels.begin()));
}

TEST(Pcam, OddCropIsCentredLikeAManualCrop) {
  const PcamFiles files{PcamLayout::Original, kOriginalX, kOriginalY};
  const PcamReader full(files, 0), cropped(files, 31);
  std::vector<uint8_t> a(static_cast<size_t>(4 * full.row_size())), b(static_cast<size_t>(4 * cropped.row_size()));
  full.read(3, 7, a.data(), nullptr);
  cropped.read(3, 7, b.data(), nullptr);
  const int64_t off = (96 - 31) / 2;
  for (int64_t n = 0; n < 4; ++n)
    for (int64_t y = 0; y < 31; ++y)
      for (int64_t x = 0; x < 31; ++x)
        for (int64_t c = 0; c < 3; ++c)
          ASSERT_EQ(b[((n * 31 + y) * 31 + x) * 3 + c],
                    a[((n * 96 + y + off) * 96 + x + off) * 3 + c]);
}

// ---------------------------------------------------------------- streaming

TEST(Pcam, ReadsInPiecesLikeAWhole) {
  const ImageSet whole = load_pcam(kSlice, "valid");
  const PcamReader r(kSlice, "valid", 32);
  EXPECT_EQ(r.count(), 300);
  EXPECT_EQ(r.chunk_rows(), 256);
  std::vector<uint8_t> px(whole.pixels.size());
  std::vector<int32_t> labels(300);
  const int64_t cuts[] = {0, 1, 7, 255, 256, 257, 300};
  for (int i = 0; i + 1 < 7; ++i) {
    r.read(cuts[i], cuts[i + 1], px.data() + cuts[i] * r.row_size(), labels.data() + cuts[i]);
  }
  EXPECT_EQ(px, whole.pixels);
  EXPECT_EQ(labels, whole.labels);
}

TEST(Pcam, ForEachChunkCoversEveryRowOnceInWholeChunks) {
  const ImageSet whole = load_pcam(kSlice, "train");
  const PcamReader r(kSlice, "train", 32);
  std::vector<uint8_t> px;
  std::vector<int32_t> labels;
  std::vector<int64_t> begins;
  r.for_each_chunk(100, [&](int64_t begin, const ImageSet& chunk) {
    begins.push_back(begin);
    EXPECT_EQ(chunk.h, 32);
    EXPECT_EQ(static_cast<int64_t>(chunk.pixels.size()), chunk.n * chunk.row_size());
    px.insert(px.end(), chunk.pixels.begin(), chunk.pixels.end());
    labels.insert(labels.end(), chunk.labels.begin(), chunk.labels.end());
  });
  EXPECT_EQ(begins, (std::vector<int64_t>{0, 256, 512, 768}));  // 100 rounded up to a chunk
  EXPECT_EQ(px, whole.pixels);
  EXPECT_EQ(labels, whole.labels);
}

// ---------------------------------------------------------------- rejections

TEST(PcamRejects, NeitherLayoutListsWhatWasLookedFor) {
  TempDir dir;
  const std::string e = error_of([&] { load_pcam(dir.str(), "train"); });
  EXPECT_NE(e.find(dir.str()), std::string::npos) << e;
  EXPECT_NE(e.find("train.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("camelyonpatch_level_2_split_train_x.h5"), std::string::npos) << e;
}

TEST(PcamRejects, UnknownSplit) {
  EXPECT_THROW(find_pcam_files(kSlice, "training"), std::invalid_argument);
}

TEST(PcamRejects, NotAnHdf5File) {
  TempDir dir;
  std::ofstream(dir.file("train.h5")) << "this is not HDF5\n";
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "train"); });
  EXPECT_NE(e.find(dir.file("train.h5")), std::string::npos) << e;
  EXPECT_NE(e.find("not an HDF5 file"), std::string::npos) << e;
}

TEST(PcamRejects, MissingDatasetX) {
  TempDir dir;
  write_dataset(dir.file("train.h5"), "images", {4, 8, 8, 3}, H5::PredType::STD_U8LE);
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "train"); });
  EXPECT_NE(e.find("train.h5"), std::string::npos) << e;
  EXPECT_NE(e.find("no dataset 'x'"), std::string::npos) << e;
}

TEST(PcamRejects, WrongRank) {
  TempDir dir;
  write_dataset(dir.file("train.h5"), "x", {20, 32, 32}, H5::PredType::STD_U8LE);
  write_dataset(dir.file("train.h5"), "y", {20}, H5::PredType::STD_U8LE);
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "train"); });
  EXPECT_NE(e.find("train.h5: dataset 'x' has shape (20,32,32) uint8 but expected (N,H,W,C) uint8"),
            std::string::npos) << e;
}

TEST(PcamRejects, WrongPixelType) {
  TempDir dir;
  write_dataset(dir.file("valid.h5"), "x", {4, 8, 8, 3}, H5::PredType::IEEE_F32LE);
  write_dataset(dir.file("valid.h5"), "y", {4}, H5::PredType::STD_U8LE);
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "valid", 0); });
  EXPECT_NE(e.find("(4,8,8,3) float32 but expected"), std::string::npos) << e;
}

TEST(PcamRejects, LabelCountMismatch) {
  TempDir dir;
  write_dataset(dir.file("train.h5"), "x", {4, 8, 8, 3}, H5::PredType::STD_U8LE);
  write_dataset(dir.file("train.h5"), "y", {3}, H5::PredType::STD_U8LE);
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "train", 0); });
  EXPECT_NE(e.find("3 labels"), std::string::npos) << e;
  EXPECT_NE(e.find("4 images"), std::string::npos) << e;
}

TEST(PcamRejects, LabelsWithWrongShapeOrType) {
  TempDir dir;
  write_dataset(dir.file("train.h5"), "x", {4, 8, 8, 3}, H5::PredType::STD_U8LE);
  write_dataset(dir.file("train.h5"), "y", {4, 2}, H5::PredType::STD_U8LE);
  EXPECT_NE(quiet_error_of([&] { load_pcam(dir.str(), "train", 0); }).find("dataset 'y' has shape (4,2)"),
            std::string::npos);
  write_dataset(dir.file("valid.h5"), "x", {4, 8, 8, 3}, H5::PredType::STD_U8LE);
  write_dataset(dir.file("valid.h5"), "y", {4, 1, 1, 1}, H5::PredType::IEEE_F64LE);
  EXPECT_NE(quiet_error_of([&] { load_pcam(dir.str(), "valid", 0); }).find("float64"),
            std::string::npos);
}

TEST(PcamRejects, TrainWithoutLabels) {
  TempDir dir;
  write_dataset(dir.file("train.h5"), "x", {4, 8, 8, 3}, H5::PredType::STD_U8LE);
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "train", 0); });
  EXPECT_NE(e.find("no dataset 'y'"), std::string::npos) << e;
}

TEST(PcamRejects, OriginalWithoutLabelFile) {
  TempDir dir;
  fs::copy_file(kOriginalX, dir.file("camelyonpatch_level_2_split_valid_x.h5"));
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "valid"); });
  EXPECT_NE(e.find("no label file"), std::string::npos) << e;
}

TEST(PcamRejects, OriginalLabelFileWithoutY) {
  TempDir dir;
  fs::copy_file(kOriginalX, dir.file("camelyonpatch_level_2_split_valid_x.h5"));
  write_dataset(dir.file("camelyonpatch_level_2_split_valid_y.h5"), "labels", {32}, H5::PredType::STD_U8LE);
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "valid"); });
  EXPECT_NE(e.find("camelyonpatch_level_2_split_valid_y.h5: no dataset 'y'"), std::string::npos) << e;
}

TEST(PcamRejects, CropLargerThanStored) {
  const std::string e = error_of([] { load_pcam(kSlice, "valid", 64); });
  EXPECT_NE(e.find("crop 64"), std::string::npos) << e;
  EXPECT_NE(e.find("32x32"), std::string::npos) << e;
}

TEST(PcamRejects, ReadOutOfRange) {
  const PcamReader r(kSlice, "valid", 32);
  std::vector<uint8_t> px(static_cast<size_t>(2 * r.row_size()));
  EXPECT_THROW(r.read(299, 301, px.data(), nullptr), FileError);
  EXPECT_THROW(r.read(-1, 1, px.data(), nullptr), FileError);
}

TEST(PcamRejects, TruncatedFile) {
  TempDir dir;
  std::ifstream in(kSlice + "/valid.h5", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.resize(bytes.size() / 2);
  std::ofstream(dir.file("valid.h5"), std::ios::binary) << bytes;
  const std::string e = quiet_error_of([&] { load_pcam(dir.str(), "valid"); });
  EXPECT_NE(e.find(dir.file("valid.h5") + ": HDF5 cannot open it"), std::string::npos) << e;
}

}  // namespace
}  // namespace kiln
