#include "optim/report/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <system_error>

#include "core/io/file_error.h"

namespace kiln {
namespace {

// --- CRC-32C --------------------------------------------------------------------------------

// One entry per byte value: the CRC register after shifting that byte through, LSB first.
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t r = b;
    for (int bit = 0; bit < 8; ++bit) r = (r & 1) ? (r >> 1) ^ 0x82F63B78u : r >> 1;
    table[b] = r;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

// --- protobuf wire format -------------------------------------------------------------------
// A field is a key (field number << 3 | wire type) as a varint, then its value. Only what an
// Event with scalars and images needs: varints, fixed 64/32-bit numbers, length-delimited bytes.

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_little_endian(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (field << 3) | type); }

// int32 and int64 fields: a negative value is its 64-bit two's complement, as protobuf has it.
void put_int(std::string& out, uint32_t field, int64_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(v));
}

void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed64);
  put_little_endian(out, bits, 8);
}

void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed32);
  put_little_endian(out, bits, 4);
}

// A string, bytes or an embedded message.
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// Field numbers of tensorflow/core/util/event.proto and framework/summary.proto.
namespace event {
constexpr uint32_t kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5;
}
namespace summary {
constexpr uint32_t kValue = 1;
}
namespace value {
constexpr uint32_t kTag = 1, kSimpleValue = 2, kImage = 4;
}
namespace image {
constexpr uint32_t kHeight = 1, kWidth = 2, kColorspace = 3, kEncodedImage = 4;
constexpr int64_t kRgb = 3;
}

// Event fields holding a Summary of one Value: its tag and the already encoded rest.
std::string summary_of_one(const std::string& tag, const std::string& value_fields) {
  std::string value;
  put_bytes(value, value::kTag, tag);
  value += value_fields;
  std::string summary;
  put_bytes(summary, summary::kValue, value);
  std::string fields;
  put_bytes(fields, event::kSummary, summary);
  return fields;
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t r = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) r = kCrc32cTable[(r ^ p[i]) & 0xff] ^ (r >> 8);
  return r ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir) {
  check_arg(!dir.empty(), "TensorBoardWriter", "the directory name is empty");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw FileError(dir, "cannot create the TensorBoard log directory: " + ec.message());
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  path_ = dir + "/events.out.tfevents." +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now).count()) + "." +
          host_name() + "." + std::to_string(::getpid()) + ".kiln";
  file_.reset(std::fopen(path_.c_str(), "ab"));
  if (!file_) throw FileError(path_, std::string("cannot open the event file for writing: ") + std::strerror(errno));
  std::string fields;
  put_bytes(fields, event::kFileVersion, "brain.Event:2");
  write_event(0, fields);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() = default;

void TensorBoardWriter::scalar(const std::string& tag, double value, int64_t step) {
  std::string fields;
  put_float(fields, value::kSimpleValue, static_cast<float>(value));
  write_event(step, summary_of_one(tag, fields));
}

void TensorBoardWriter::image(const std::string& tag, const RgbCanvas& canvas, int64_t step) {
  std::string img;
  put_int(img, image::kHeight, canvas.height);
  put_int(img, image::kWidth, canvas.width);
  put_int(img, image::kColorspace, image::kRgb);
  put_bytes(img, image::kEncodedImage, encode_png(canvas));
  std::string fields;
  put_bytes(fields, value::kImage, img);
  write_event(step, summary_of_one(tag, fields));
}

void TensorBoardWriter::flush() {
  if (std::fflush(file_.get()) != 0)
    throw FileError(path_, std::string("cannot write the event file: ") + std::strerror(errno));
}

void TensorBoardWriter::write_event(int64_t step, const std::string& fields) {
  const double wall_time =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string data;
  put_double(data, event::kWallTime, wall_time);
  put_int(data, event::kStep, step);
  data += fields;

  std::string record;
  put_little_endian(record, data.size(), 8);
  put_little_endian(record, masked_crc32c(record.data(), 8), 4);
  record += data;
  put_little_endian(record, masked_crc32c(data.data(), data.size()), 4);
  if (std::fwrite(record.data(), 1, record.size(), file_.get()) != record.size())
    throw FileError(path_, std::string("cannot write the event file: ") + std::strerror(errno));
}

}  // namespace kiln
