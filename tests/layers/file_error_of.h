// error_of(f): what a call says when it refuses a file. The FileError's text, or
// "(no FileError)" when f returns normally, so a test can look for the message it expects.
#pragma once

#include <functional>
#include <string>

#include "core/io/file_error.h"

namespace kiln {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const FileError& e) {
    return e.what();
  }
  return "(no FileError)";
}

}  // namespace kiln
