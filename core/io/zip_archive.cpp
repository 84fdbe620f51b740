#include "core/io/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/io/file_error.h"  // FileError

namespace kiln {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDir = 0x06054b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr uint32_t kZip64EndOfCentralDir = 0x06064b50;

// Little-endian reads, bounds-checked against the buffer.
class Reader {
 public:
  Reader(const std::vector<unsigned char>& b, const std::string& path) : b_(b), path_(path) {}
  uint64_t get(uint64_t at, int bytes) const {
    if (at > b_.size() || b_.size() - at < static_cast<uint64_t>(bytes))
      throw FileError(path_, "zip archive is truncated or damaged (a record runs past the end)");
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | b_[at + static_cast<uint64_t>(i)];
    return v;
  }
  uint16_t u16(uint64_t at) const { return static_cast<uint16_t>(get(at, 2)); }
  uint32_t u32(uint64_t at) const { return static_cast<uint32_t>(get(at, 4)); }
  uint64_t u64(uint64_t at) const { return get(at, 8); }

 private:
  const std::vector<unsigned char>& b_;
  const std::string& path_;
};

}  // namespace

bool ZipArchive::looks_like_zip(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  unsigned char sig[4] = {0, 0, 0, 0};
  if (!f.read(reinterpret_cast<char*>(sig), 4)) return false;
  const uint32_t v = sig[0] | sig[1] << 8 | sig[2] << 16 | static_cast<uint32_t>(sig[3]) << 24;
  return v == kLocalHeader || v == kEndOfCentralDir;
}

ZipArchive::ZipArchive(const std::string& path) : path_(path) {
  if (!std::filesystem::is_regular_file(path)) throw FileError(path, "file not found");
  {
    std::ifstream f(path, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (!f.eof() && f.fail()) throw FileError(path, "cannot read the file");
  }
  const Reader r(bytes_, path_);
  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes.
  if (bytes_.size() < 22) throw FileError(path, "not a zip archive (too short)");
  uint64_t eocd = std::numeric_limits<uint64_t>::max();
  const uint64_t lowest = bytes_.size() > 22 + 65535 ? bytes_.size() - 22 - 65535 : 0;
  for (uint64_t at = bytes_.size() - 22 + 1; at-- > lowest;) {
    if (r.u32(at) == kEndOfCentralDir && at + 22 + r.u16(at + 20) == bytes_.size()) {
      eocd = at;
      break;
    }
  }
  if (eocd == std::numeric_limits<uint64_t>::max())
    throw FileError(path, "not a complete zip archive: no end-of-central-directory record "
                               "(the file looks truncated or damaged)");
  uint64_t count = r.u16(eocd + 10), cd_size = r.u32(eocd + 12), cd_offset = r.u32(eocd + 16);
  if ((count == 0xFFFF || cd_size == 0xFFFFFFFF || cd_offset == 0xFFFFFFFF) && eocd >= 20 &&
      r.u32(eocd - 20) == kZip64Locator) {
    const uint64_t z = r.u64(eocd - 20 + 8);
    if (r.u32(z) != kZip64EndOfCentralDir)
      throw FileError(path, "zip64 end-of-central-directory record is missing or damaged");
    count = r.u64(z + 32);
    cd_size = r.u64(z + 40);
    cd_offset = r.u64(z + 48);
  }
  if (cd_offset > bytes_.size() || cd_size > bytes_.size() - cd_offset)
    throw FileError(path, "zip central directory lies outside the file (truncated or damaged)");
  // Every entry of the central directory takes at least 46 bytes of it; a model archive has a
  // handful. The limit keeps a damaged count from driving a long walk.
  if (count > kMaxMembers || count > cd_size / 46)
    throw FileError(path, "the zip archive claims " + std::to_string(count) + " members in a central directory of " +
                              std::to_string(cd_size) + " bytes (at most " + std::to_string(kMaxMembers) +
                              " members, 46 bytes each, are read): damaged");

  uint64_t at = cd_offset;
  for (uint64_t i = 0; i < count; ++i) {
    if (r.u32(at) != kCentralHeader)
      throw FileError(path, "zip central directory entry " + std::to_string(i) + " is damaged");
    Entry e;
    e.flags = r.u16(at + 8);
    e.method = r.u16(at + 10);
    e.crc = r.u32(at + 16);
    e.compressed = r.u32(at + 20);
    e.size = r.u32(at + 24);
    const uint16_t name_len = r.u16(at + 28), extra_len = r.u16(at + 30), comment_len = r.u16(at + 32);
    e.local_offset = r.u32(at + 42);
    r.get(at + 46, name_len);  // bounds check
    e.name.assign(reinterpret_cast<const char*>(bytes_.data() + at + 46), name_len);
    // Zip64 extended information: the 64-bit values of the fields saturated above, in order.
    for (uint64_t x = at + 46 + name_len; x + 4 <= at + 46 + name_len + extra_len;) {
      const uint16_t id = r.u16(x), len = r.u16(x + 2);
      if (id == 0x0001) {
        uint64_t f = x + 4;
        if (e.size == 0xFFFFFFFF) e.size = r.u64(f), f += 8;
        if (e.compressed == 0xFFFFFFFF) e.compressed = r.u64(f), f += 8;
        if (e.local_offset == 0xFFFFFFFF) e.local_offset = r.u64(f);
      }
      x += 4 + len;
    }
    entries_.push_back(std::move(e));
    at += 46 + name_len + extra_len + comment_len;
  }
}

std::vector<std::string> ZipArchive::names() const {
  std::vector<std::string> out;
  for (const Entry& e : entries_) out.push_back(e.name);
  return out;
}

const ZipArchive::Entry* ZipArchive::find(const std::string& name) const {
  for (const Entry& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

bool ZipArchive::contains(const std::string& name) const { return find(name) != nullptr; }

std::vector<char> ZipArchive::read(const std::string& name) const {
  const Entry* e = find(name);
  const std::string where = "zip entry '" + name + "'";
  if (!e) throw FileError(path_, "no " + where + " in the archive");
  if (e->flags & 0x1) throw FileError(path_, where + " is encrypted");
  const Reader r(bytes_, path_);
  if (r.u32(e->local_offset) != kLocalHeader)
    throw FileError(path_, where + ": local header is damaged");
  const uint64_t data = e->local_offset + 30 + r.u16(e->local_offset + 26) + r.u16(e->local_offset + 28);
  if (data > bytes_.size() || e->compressed > bytes_.size() - data)
    throw FileError(path_, where + " runs past the end of the file (truncated)");
  if (e->size >= static_cast<uint64_t>(std::numeric_limits<uInt>::max()) ||
      e->compressed > static_cast<uint64_t>(std::numeric_limits<uInt>::max()))
    throw FileError(path_, where + " is larger than 4 GiB, which kiln does not read");
  // Every claim about the sizes is checked before the output is allocated. A stored entry's
  // size is its compressed size, which lies inside the file.
  if (e->method != 0 && e->method != 8)
    throw FileError(path_, where + " uses compression method " + std::to_string(e->method) +
                                    "; kiln reads stored (0) and deflate (8)");
  if (e->method == 0 && e->compressed != e->size) throw FileError(path_, where + ": stored sizes disagree");
  // Deflate cannot expand data more than about 1032 times: a larger claim is a damaged entry
  // or a zip bomb, refused before its memory is taken.
  if (e->method == 8 && e->size > 1032 * e->compressed + 1024)
    throw FileError(path_, where + " claims " + std::to_string(e->size) + " bytes from " +
                               std::to_string(e->compressed) + " compressed, more than deflate can produce: damaged "
                               "(or a zip bomb)");
  std::vector<char> out(static_cast<size_t>(e->size));
  const unsigned char* src = bytes_.data() + data;
  if (e->method == 0) {
    std::copy(src, src + e->size, out.begin());
  } else {  // deflate
    z_stream z{};
    if (inflateInit2(&z, -15) != Z_OK) throw FileError(path_, "zlib cannot start inflating " + where);
    z.next_in = const_cast<Bytef*>(src);
    z.avail_in = static_cast<uInt>(e->compressed);
    // One spare byte: inflate never sees a full output buffer, and a longer stream shows.
    out.resize(out.size() + 1);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int rc = inflate(&z, Z_FINISH);
    const uint64_t produced = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || produced != e->size)
      throw FileError(path_, where + " does not inflate to its stated " + std::to_string(e->size) +
                                      " bytes (damaged)");
    out.resize(static_cast<size_t>(e->size));
  }
  const uint32_t crc = static_cast<uint32_t>(
      crc32(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef*>(out.data()), static_cast<uInt>(out.size())));
  if (crc != e->crc) throw FileError(path_, where + " fails its CRC-32 check (damaged)");
  return out;
}

}  // namespace kiln
