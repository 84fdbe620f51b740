#include "data/formats/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>

namespace kiln {
namespace {

// gzopen/gzread read gzip files and, transparently, plain ones, so one code path serves both
// "train-images-idx3-ubyte" and "train-images-idx3-ubyte.gz".
class GzFile {
 public:
  explicit GzFile(const std::string& path) : path_(path) {
    if (!std::filesystem::exists(path)) throw FileError(path, "file not found");
    file_ = gzopen(path.c_str(), "rb");
    if (file_ == nullptr) throw FileError(path, "cannot open for reading");
    gzbuffer(file_, 1 << 17);
  }
  ~GzFile() {
    if (file_ != nullptr) gzclose(file_);
  }
  GzFile(const GzFile&) = delete;
  GzFile& operator=(const GzFile&) = delete;

  // Reads up to `size` bytes; returns how many came. A short count means end of data; a
  // broken or cut-off gzip stream throws instead, so truncation is never silent.
  size_t read(uint8_t* out, size_t size) {
    size_t got = 0;
    while (got < size) {
      const unsigned ask = static_cast<unsigned>(std::min<size_t>(size - got, 1u << 30));
      const int n = gzread(file_, out + got, ask);
      if (n < 0) fail();
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    if (got < size) {
      int err = Z_OK;
      gzerror(file_, &err);
      if (err != Z_OK) fail();
    }
    return got;
  }

  // After the last byte was read: for a gzip file, the trailer's size field (the last four
  // bytes, the uncompressed size mod 2^32) must match the `uncompressed` bytes read. zlib
  // itself skips anything after the end of the gzip stream, so without this check a padded
  // or damaged download would pass.
  void check_gzip_ends(uint64_t uncompressed) const {
    if (gzdirect(file_) != 0) return;  // a plain file: read() has seen its every byte
    std::unique_ptr<FILE, int (*)(FILE*)> raw(std::fopen(path_.c_str(), "rb"), std::fclose);
    uint8_t t[4];
    if (!raw || std::fseek(raw.get(), -4, SEEK_END) != 0 || std::fread(t, 1, 4, raw.get()) != 4)
      throw FileError(path_, "cannot read the gzip trailer");
    const uint32_t isize = uint32_t(t[0]) | (uint32_t(t[1]) << 8) | (uint32_t(t[2]) << 16) | (uint32_t(t[3]) << 24);
    if (isize != static_cast<uint32_t>(uncompressed))
      throw FileError(path_, "data after the end of the gzip stream: its last four bytes say " + std::to_string(isize) +
                                 " bytes uncompressed, but the stream held " + std::to_string(uncompressed) +
                                 " (a padded or damaged download, or several gzip members)");
  }

 private:
  [[noreturn]] void fail() {
    int err = Z_OK;
    const char* msg = gzerror(file_, &err);
    throw FileError(path_, std::string("corrupt or truncated gzip data (zlib: ") +
                               (msg != nullptr ? msg : "unknown error") + ")");
  }

  std::string path_;
  gzFile file_ = nullptr;
};

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

const char* idx_type_name(uint8_t type) {
  switch (type) {
    case 0x08: return "uint8";
    case 0x09: return "int8";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown type";
  }
}

// Reads the header of an IDX file that must hold uint8 values of the given rank, then the
// payload, which must be exactly the product of the extents long.
struct IdxContents {
  std::vector<int64_t> dims;
  std::vector<uint8_t> values;
};

IdxContents read_idx(const std::string& path, uint8_t want_rank, const char* what) {
  GzFile f(path);
  const uint32_t want_magic = 0x0800u | want_rank;
  uint8_t magic[4];
  const size_t got_magic = f.read(magic, 4);
  if (got_magic < 4) {
    throw FileError(path, "file is " + std::to_string(got_magic) +
                              " bytes long, too short for an IDX header (expected IDX " +
                              what + ", magic " + hex32(want_magic) + ")");
  }
  const uint32_t found_magic = (uint32_t(magic[0]) << 24) | (uint32_t(magic[1]) << 16) |
                               (uint32_t(magic[2]) << 8) | magic[3];
  if (magic[0] != 0 || magic[1] != 0) {
    throw FileError(path, "magic " + hex32(found_magic) + " but expected " + hex32(want_magic) +
                              " (IDX " + what + "): not an IDX file");
  }
  if (magic[2] != 0x08) {
    throw FileError(path, "magic " + hex32(found_magic) + " says " + idx_type_name(magic[2]) +
                              " values but expected " + hex32(want_magic) + " (uint8 " + what +
                              ")");
  }
  if (magic[3] != want_rank) {
    throw FileError(path, "magic " + hex32(found_magic) + " says rank " +
                              std::to_string(magic[3]) + " but expected " + hex32(want_magic) +
                              " (" + what + ", rank " + std::to_string(want_rank) + ")");
  }

  IdxContents out;
  uint64_t total = 1;
  for (int i = 0; i < want_rank; ++i) {
    uint8_t b[4];
    if (f.read(b, 4) < 4) throw FileError(path, "IDX header cut off in the extents");
    const uint32_t d = (uint32_t(b[0]) << 24) | (uint32_t(b[1]) << 16) | (uint32_t(b[2]) << 8) | b[3];
    if (d == 0 && i > 0) {
      throw FileError(path, "extent " + std::to_string(i) + " is 0; an " + what +
                                " file needs positive sizes");
    }
    out.dims.push_back(d);
    // 2^32 per extent: a product above 2^60 would overflow; no real file comes near that.
    if (d != 0 && total > (uint64_t(1) << 60) / d) {
      throw FileError(path, "IDX header claims an impossibly large payload");
    }
    total *= d;
  }

  // Grow the buffer as data arrives rather than trusting the header with one allocation:
  // a corrupt header must not make us ask for terabytes before noticing the file is short.
  constexpr uint64_t kStep = uint64_t(64) << 20;
  uint64_t have = 0;
  while (have < total) {
    const uint64_t want = std::min(total - have, kStep);
    out.values.resize(have + want);
    const size_t n = f.read(out.values.data() + have, want);
    have += n;
    if (n < want) {
      std::string shape;
      for (size_t i = 0; i < out.dims.size(); ++i) {
        if (i > 0) shape += ",";
        shape += std::to_string(out.dims[i]);
      }
      throw FileError(path, "truncated: header says (" + shape + ") = " + std::to_string(total) +
                                " bytes of " + what + " but only " + std::to_string(have) +
                                " follow the header");
    }
  }
  uint8_t extra[256];
  const size_t trailing = f.read(extra, sizeof extra);
  if (trailing > 0) {
    throw FileError(path, "trailing bytes: " + std::to_string(trailing) +
                              (trailing == sizeof extra ? " or more" : "") +
                              " bytes after the " + std::to_string(total) +
                              " the header describes (expected the file to end there)");
  }
  f.check_gzip_ends(4 + 4 * uint64_t(want_rank) + total);
  return out;
}

}  // namespace

ImageSet read_idx_images(const std::string& path) {
  IdxContents idx = read_idx(path, 3, "images");
  ImageSet set;
  set.n = idx.dims[0];
  set.h = idx.dims[1];
  set.w = idx.dims[2];
  set.c = 1;
  set.pixels = std::move(idx.values);
  return set;
}

std::vector<int32_t> read_idx_labels(const std::string& path) {
  IdxContents idx = read_idx(path, 1, "labels");
  return std::vector<int32_t>(idx.values.begin(), idx.values.end());
}

std::string find_data_file(const std::string& dir, const std::vector<std::string>& candidates,
                           const std::string& what) {
  namespace fs = std::filesystem;
  for (const std::string& name : candidates) {
    const fs::path p = fs::path(dir) / name;
    if (fs::is_regular_file(p)) return p.string();
  }
  std::string list;
  for (const std::string& name : candidates) {
    if (!list.empty()) list += ", ";
    list += name;
  }
  throw FileError(dir, "no " + what + " found; looked for " + list);
}

ImageSet load_mnist(const std::string& dir, const std::string& prefix) {
  const std::string images_path = find_data_file(
      dir,
      {prefix + "-images-idx3-ubyte", prefix + "-images-idx3-ubyte.gz",
       prefix + "-images.idx3-ubyte", prefix + "-images.idx3-ubyte.gz"},
      "'" + prefix + "' images");
  const std::string labels_path = find_data_file(
      dir,
      {prefix + "-labels-idx1-ubyte", prefix + "-labels-idx1-ubyte.gz",
       prefix + "-labels.idx1-ubyte", prefix + "-labels.idx1-ubyte.gz"},
      "'" + prefix + "' labels");
  ImageSet set = read_idx_images(images_path);
  set.labels = read_idx_labels(labels_path);
  if (static_cast<int64_t>(set.labels.size()) != set.n) {
    throw FileError(labels_path, "holds " + std::to_string(set.labels.size()) +
                                     " labels but " + images_path + " holds " +
                                     std::to_string(set.n) + " images (expected equal counts)");
  }
  // MNIST (and Fashion-MNIST, which shares its file names) has ten classes. A label outside
  // them would silently add classes to a model built from the training labels.
  for (size_t i = 0; i < set.labels.size(); ++i)
    if (set.labels[i] > kMnistClasses - 1)
      throw FileError(labels_path, "label " + std::to_string(i) + " is " + std::to_string(set.labels[i]) +
                                       "; MNIST labels are 0.." + std::to_string(kMnistClasses - 1));
  return set;
}

}  // namespace kiln
