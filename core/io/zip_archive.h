// A reader for zip archives, enough for Keras' .keras files: the central directory (zip64
// included), entries stored or deflated (zlib's raw inflate), each checked against its CRC-32.
// The archive is read into memory whole.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln {

class ZipArchive {
 public:
  // Archives claiming more members are refused as damaged (a .keras file has three).
  static constexpr uint64_t kMaxMembers = 100000;
  // Throws FileError naming path when it is missing or not a complete zip archive.
  explicit ZipArchive(const std::string& path);

  // True when path starts with a zip signature (a local file header or an empty archive).
  static bool looks_like_zip(const std::string& path);

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const;
  // The entry's bytes, inflated and CRC-checked. Throws FileError naming the archive and
  // the entry when it is missing, encrypted, compressed with another method, or damaged.
  std::vector<char> read(const std::string& name) const;

 private:
  struct Entry {
    std::string name;
    uint16_t flags = 0, method = 0;
    uint32_t crc = 0;
    uint64_t compressed = 0, size = 0, local_offset = 0;
  };
  const Entry* find(const std::string& name) const;

  std::string path_;
  std::vector<unsigned char> bytes_;
  std::vector<Entry> entries_;
};

}  // namespace kiln
