// write_atomically: the file lands whole or not at all, the temporary never stays behind, and
// a failure (a writer that throws, a missing directory, a disk that fills up) leaves the old
// file as it was and names the target.
#include "core/io/write_atomically.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/io/h5_io.h"

namespace fs = std::filesystem;
using kiln::FileError;

namespace {

class WriteAtomically : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kiln_write_atomically_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    return names;
  }
  static std::string read(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    return s.str();
  }

  fs::path dir_;
};

// A soft limit on the size of any file this process writes: writing past it fails with EFBIG,
// as a full disk fails with ENOSPC. SIGXFSZ is ignored so the write returns the error instead
// of killing the process.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    old_handler_ = signal(SIGXFSZ, SIG_IGN);
    rlimit limited = saved_;
    limited.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limited);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &saved_);
    signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  sighandler_t old_handler_;
};

TEST_F(WriteAtomically, WritesTheContentAndLeavesNoTemporary) {
  kiln::write_bytes_atomically(file("a.txt"), "hello\n");
  EXPECT_EQ(read(file("a.txt")), "hello\n");
  EXPECT_EQ(entries(), std::vector<std::string>{"a.txt"});
}

TEST_F(WriteAtomically, ReplacesAnExistingFile) {
  kiln::write_bytes_atomically(file("a.txt"), "old");
  kiln::write_stream_atomically(file("a.txt"), [](std::ostream& out) { out << "new, longer"; });
  EXPECT_EQ(read(file("a.txt")), "new, longer");
  EXPECT_EQ(entries(), std::vector<std::string>{"a.txt"});
}

TEST_F(WriteAtomically, AWriterThatThrowsLeavesTheOldFileAndNoTemporary) {
  kiln::write_bytes_atomically(file("a.txt"), "old");
  std::string seen_tmp;
  EXPECT_THROW(kiln::write_atomically(file("a.txt"),
                                      [&](const std::string& tmp) {
                                        seen_tmp = tmp;
                                        std::ofstream(tmp) << "half";
                                        throw std::logic_error("writer gave up");
                                      }),
               std::logic_error);
  EXPECT_EQ(read(file("a.txt")), "old");
  EXPECT_EQ(entries(), std::vector<std::string>{"a.txt"});
  // The temporary is hidden, beside the target, and says whose it is.
  EXPECT_EQ(fs::path(seen_tmp).parent_path(), dir_);
  EXPECT_EQ(fs::path(seen_tmp).filename().string().rfind(".a.txt.tmp-" + std::to_string(::getpid()), 0), 0u)
      << seen_tmp;
}

TEST_F(WriteAtomically, TwoWritesNeverShareATemporary) {
  std::string first, second;
  kiln::write_atomically(file("a"), [&](const std::string& tmp) {
    first = tmp;
    kiln::write_atomically(file("b"), [&](const std::string& inner) {
      second = inner;
      std::ofstream(inner) << "b";
    });
    std::ofstream(tmp) << "a";
  });
  EXPECT_NE(fs::path(first).filename().string().substr(3), fs::path(second).filename().string().substr(3));
  EXPECT_EQ(read(file("a")), "a");
  EXPECT_EQ(read(file("b")), "b");
}

TEST_F(WriteAtomically, AFileErrorAboutTheTemporaryNamesTheTarget) {
  try {
    kiln::write_atomically(file("m.h5"), [](const std::string& tmp) {
      throw FileError(tmp, "library refused");
    });
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), file("m.h5"));
    EXPECT_EQ(std::string(e.what()), file("m.h5") + ": library refused");
  }
  EXPECT_TRUE(entries().empty());
}

TEST_F(WriteAtomically, AWriterThatCreatesNothingIsAnError) {
  EXPECT_THROW(kiln::write_atomically(file("a"), [](const std::string&) {}), FileError);
  EXPECT_TRUE(entries().empty());
}

TEST_F(WriteAtomically, AMissingDirectoryNamesTheTarget) {
  const std::string target = file("no/such/dir/a.txt");
  try {
    kiln::write_bytes_atomically(target, "x");
    FAIL() << "no error";
  } catch (const FileError& e) {
    EXPECT_EQ(e.path(), target);
  }
}

TEST_F(WriteAtomically, AFullDiskLeavesTheOldFileAndNoTemporary) {
  kiln::write_bytes_atomically(file("big.bin"), "old");
  const std::string big(1 << 20, 'x');
  {
    FileSizeLimit limit(64 * 1024);
    try {
      kiln::write_bytes_atomically(file("big.bin"), big);
      FAIL() << "a write past the file size limit succeeded";
    } catch (const FileError& e) {
      EXPECT_EQ(e.path(), file("big.bin"));
      EXPECT_NE(std::string(e.what()).find("write failed"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(read(file("big.bin")), "old");
  EXPECT_EQ(entries(), std::vector<std::string>{"big.bin"});
}

TEST_F(WriteAtomically, AnHdf5FileOnAFullDiskIsAFileErrorNotACrash) {
  const std::string path = file("model.h5");
  kiln::h5::write_atomically(path, [](H5::H5File& f) { kiln::h5::write_int(f, "version", 1); });
  const kiln::Tensor big = kiln::Tensor::zeros({256, 1024});  // 1 MiB of float32
  {
    FileSizeLimit limit(64 * 1024);
    try {
      kiln::h5::write_atomically(path, [&](H5::H5File& f) { kiln::h5::write_tensor(f, "w", big); });
      FAIL() << "an HDF5 write past the file size limit succeeded";
    } catch (const FileError& e) {
      EXPECT_EQ(e.path(), path);
    }
  }
  EXPECT_EQ(entries(), std::vector<std::string>{"model.h5"});
  const H5::H5File f = kiln::h5::open_file(path);
  EXPECT_EQ(kiln::h5::read_int(f, "version", path), 1);
}

}  // namespace
