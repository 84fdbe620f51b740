// FileError: a file that is missing, unreadable, damaged, or not what it should be. what()
// starts with the file's path, then says what was expected and what was found. Every reader
// and writer in kiln throws it (or a class derived from it) for anything wrong with a file.
#pragma once

#include <stdexcept>
#include <string>

namespace kiln {

class FileError : public std::runtime_error {
 public:
  FileError(const std::string& path, const std::string& message)
      : std::runtime_error(path + ": " + message), path_(path) {}
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace kiln
