// The zip reader under .keras files, on archives built here byte by byte: stored and deflated
// entries read back; a central directory claiming more members than it can hold and a
// deflated entry claiming more bytes than deflate can produce (a zip bomb) are refused with
// the archive's name before any large allocation.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/io/file_error.h"
#include "core/io/zip_archive.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

void put16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>((v >> 8) & 0xFF);
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16);
}

std::string raw_deflate(const std::string& data) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, data.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct Member {
  std::string name, data;
  bool deflate = false;
  int64_t stated_size = -1;  // >= 0: claim this uncompressed size instead of the real one
};

// A zip archive of `members`; `claimed_count` >= 0 replaces the member count in the
// end-of-central-directory record.
std::string zip_of(const std::vector<Member>& members, int64_t claimed_count = -1) {
  std::string file, directory;
  for (const Member& m : members) {
    const std::string body = m.deflate ? raw_deflate(m.data) : m.data;
    const auto crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(m.data.data()),
                                                 static_cast<uInt>(m.data.size())));
    const auto size = static_cast<uint32_t>(m.stated_size >= 0 ? m.stated_size : static_cast<int64_t>(m.data.size()));
    const auto offset = static_cast<uint32_t>(file.size());
    put32(file, 0x04034b50);
    put16(file, 20), put16(file, 0), put16(file, m.deflate ? 8 : 0), put16(file, 0), put16(file, 0);
    put32(file, crc), put32(file, static_cast<uint32_t>(body.size())), put32(file, size);
    put16(file, static_cast<uint32_t>(m.name.size())), put16(file, 0);
    file += m.name + body;
    put32(directory, 0x02014b50);
    put16(directory, 20), put16(directory, 20), put16(directory, 0), put16(directory, m.deflate ? 8 : 0);
    put16(directory, 0), put16(directory, 0);
    put32(directory, crc), put32(directory, static_cast<uint32_t>(body.size())), put32(directory, size);
    put16(directory, static_cast<uint32_t>(m.name.size())), put16(directory, 0), put16(directory, 0);
    put16(directory, 0), put16(directory, 0), put32(directory, 0), put32(directory, offset);
    directory += m.name;
  }
  const auto cd_offset = static_cast<uint32_t>(file.size());
  file += directory;
  const uint32_t count = claimed_count >= 0 ? static_cast<uint32_t>(claimed_count) : static_cast<uint32_t>(members.size());
  put32(file, 0x06054b50);
  put16(file, 0), put16(file, 0), put16(file, count), put16(file, count);
  put32(file, static_cast<uint32_t>(directory.size())), put32(file, cd_offset), put16(file, 0);
  return file;
}

std::string write_temp(const std::string& name, const std::string& bytes) {
  const fs::path p = fs::temp_directory_path() / ("kiln_zip_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p.string();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const FileError& e) {
    return e.what();
  }
  return "";
}

TEST(ZipArchive, StoredAndDeflatedMembersReadBack) {
  const std::string text(5000, 'k');
  const std::string path = write_temp("good.zip", zip_of({{"config.json", "{\"a\": 1}"}, {"w.bin", text, true}}));
  const ZipArchive zip(path);
  EXPECT_EQ(zip.names(), (std::vector<std::string>{"config.json", "w.bin"}));
  const std::vector<char> config = zip.read("config.json"), weights = zip.read("w.bin");
  EXPECT_EQ(std::string(config.begin(), config.end()), "{\"a\": 1}");
  EXPECT_EQ(std::string(weights.begin(), weights.end()), text);
  fs::remove(path);
}

TEST(ZipArchive, AMemberCountTheDirectoryCannotHoldIsRefused) {
  const std::string path = write_temp("count.zip", zip_of({{"config.json", "{}"}}, 60000));
  const std::string e = error_of([&] { ZipArchive zip(path); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("claims 60000 members"), std::string::npos) << e;
  fs::remove(path);
}

TEST(ZipArchive, AZipBombIsRefusedBeforeItsMemoryIsTaken) {
  // 3 GB claimed from a few bytes: far past deflate's ~1032:1.
  const std::string path = write_temp("bomb.zip", zip_of({{"model.weights.h5", std::string(100, 0), true, 3000000000LL}}));
  const ZipArchive zip(path);
  const std::string e = error_of([&] { (void)zip.read("model.weights.h5"); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("more than deflate can produce"), std::string::npos) << e;
  fs::remove(path);
}

TEST(ZipArchive, AStoredMemberClaimingMoreThanItHoldsIsRefused) {
  // 2.8 GB claimed for 144 stored bytes (what the fuzzer found in a .pt file): refused by the
  // size check, which now comes before the output is allocated.
  const std::string path = write_temp("stored.zip", zip_of({{"archive/data/0", std::string(144, 'w'), false, 2818572432LL}}));
  const ZipArchive zip(path);
  const std::string e = error_of([&] { (void)zip.read("archive/data/0"); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("stored sizes disagree"), std::string::npos) << e;
  fs::remove(path);
}

TEST(ZipArchive, ADeflatedMemberThatInflatesShortIsRefused) {
  // Within deflate's ratio but not what the stream holds.
  std::string noise(1000, '\0');
  uint32_t state = 12345;
  for (char& c : noise) c = static_cast<char>((state = state * 1664525u + 1013904223u) >> 24);
  const std::string path = write_temp("short.zip", zip_of({{"w.bin", noise, true, 20000}}));
  const ZipArchive zip(path);
  const std::string e = error_of([&] { (void)zip.read("w.bin"); });
  EXPECT_NE(e.find("does not inflate to its stated 20000"), std::string::npos) << e;
  fs::remove(path);
}

}  // namespace
}  // namespace kiln
