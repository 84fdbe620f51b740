// The readers take paths, so each fuzz input is written to a file of this process's own first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace kiln::fuzz {

// Writes data to /tmp/kiln-fuzz-<pid><suffix> and returns the path (the same path every call).
inline std::string input_file(const uint8_t* data, size_t size, const char* suffix) {
  const std::string path = "/tmp/kiln-fuzz-" + std::to_string(::getpid()) + suffix;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();  // the harness cannot run: not an input's fault
  if (size > 0) std::fwrite(data, 1, size, f);
  std::fclose(f);
  return path;
}

}  // namespace kiln::fuzz
