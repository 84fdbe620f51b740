#include "core/io/write_atomically.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace kiln {
namespace fs = std::filesystem;

namespace {

std::string temporary_name(const std::string& path) {
  static std::atomic<unsigned> counter{0};
  const fs::path target(path);
  // Appended piece by piece: one long operator+ chain trips GCC 12's -Wrestrict.
  std::string name = ".";
  name += target.filename().string();
  name += ".tmp-";
  name += std::to_string(::getpid());
  name += "-";
  name += std::to_string(counter.fetch_add(1));
  return (target.parent_path() / name).string();
}

std::string errno_text(int err) { return err != 0 ? std::strerror(err) : "unknown error"; }

// fsync on a descriptor opened read-only flushes the file's data and metadata (Linux and
// POSIX fsync act on the file, not on the descriptor).
void flush_to_disk(const std::string& tmp, const std::string& path) {
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw FileError(path, "cannot reopen the temporary file to flush it: " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw FileError(path, "cannot flush it to disk: " + errno_text(err));
}

// The rename itself is on disk only once the directory is; a failure here loses nothing
// (the file is complete under its final name), so it is not an error.
void flush_directory(const std::string& path) {
  fs::path dir = fs::path(path).parent_path();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void remove_quietly(const std::string& tmp) {
  std::error_code ignored;
  fs::remove(tmp, ignored);
}

}  // namespace

void write_atomically(const std::string& path, const std::function<void(const std::string&)>& fill) {
  const std::string tmp = temporary_name(path);
  try {
    fill(tmp);
    std::error_code ec;
    if (!fs::is_regular_file(tmp, ec))
      throw FileError(path, "the writer finished without creating the file");
    flush_to_disk(tmp, path);
    fs::rename(tmp, path, ec);
    if (ec) throw FileError(path, "cannot move the finished file into place: " + ec.message());
  } catch (const FileError& e) {
    remove_quietly(tmp);
    if (e.path() == tmp) {
      std::string message = e.what();
      message.erase(0, tmp.size() + 2);  // "<tmp>: "
      throw FileError(path, message);
    }
    throw;
  } catch (...) {
    remove_quietly(tmp);
    throw;
  }
  flush_directory(path);
}

void write_stream_atomically(const std::string& path, const std::function<void(std::ostream&)>& fill) {
  write_atomically(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw FileError(path, "cannot create a file in its directory: " + errno_text(errno));
    fill(out);
    out.flush();
    if (!out) throw FileError(path, "write failed (disk full?): " + errno_text(errno));
    out.close();
    if (out.fail()) throw FileError(path, "write failed on close (disk full?): " + errno_text(errno));
  });
}

void write_bytes_atomically(const std::string& path, std::string_view bytes) {
  write_stream_atomically(path, [&](std::ostream& out) {
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  });
}

}  // namespace kiln
