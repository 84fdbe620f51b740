// TensorBoard event files, read back by a reader written here from the format's description
// (TFRecord framing with masked CRC-32C; Event / Summary / Value / Image protobufs decoded by
// hand), independent of the writer's code: the CRC is computed bit by bit, not from a table.
#include "optim/report/tensorboard.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/io/file_error.h"
#include "core/io/png_image.h"
#include "data/dataset.h"
#include "layers/dense.h"
#include "layers/flatten.h"
#include "layers/sequential.h"
#include "optim/adam.h"
#include "optim/train/fit.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

// --- the reader -----------------------------------------------------------------------------

// CRC-32C bit by bit: reflected Castagnoli polynomial, register starts all ones, result inverted.
uint32_t crc32c_bitwise(std::string_view bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (const char ch : bytes) {
    crc ^= static_cast<uint8_t>(ch);
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

uint64_t little_endian(std::string_view bytes, size_t at, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[at + i])) << (8 * i);
  return v;
}

// A TFRecord stream -> the records' data. Throws std::runtime_error naming the record and
// what is wrong (truncated, length CRC, data CRC).
std::vector<std::string> read_records(std::string_view file) {
  std::vector<std::string> records;
  size_t at = 0;
  while (at < file.size()) {
    const std::string which = "record " + std::to_string(records.size());
    if (file.size() - at < 12) throw std::runtime_error(which + ": truncated header");
    const uint64_t length = little_endian(file, at, 8);
    if (little_endian(file, at + 8, 4) != mask(crc32c_bitwise(file.substr(at, 8))))
      throw std::runtime_error(which + ": length CRC mismatch");
    at += 12;
    if (file.size() - at < length + 4) throw std::runtime_error(which + ": truncated data");
    const std::string_view data = file.substr(at, length);
    if (little_endian(file, at + length, 4) != mask(crc32c_bitwise(data)))
      throw std::runtime_error(which + ": data CRC mismatch");
    records.emplace_back(data);
    at += length + 4;
  }
  return records;
}

// One protobuf field: varints and fixed-width numbers in `number`, length-delimited in `bytes`.
struct Field {
  uint32_t id = 0, wire = 0;
  uint64_t number = 0;
  std::string bytes;
};

uint64_t read_varint(std::string_view s, size_t& at) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (at >= s.size()) throw std::runtime_error("truncated varint");
    const auto b = static_cast<uint8_t>(s[at++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return v;
  }
  throw std::runtime_error("varint longer than 10 bytes");
}

std::vector<Field> parse_message(std::string_view s) {
  std::vector<Field> fields;
  size_t at = 0;
  while (at < s.size()) {
    const uint64_t key = read_varint(s, at);
    Field f;
    f.id = static_cast<uint32_t>(key >> 3);
    f.wire = static_cast<uint32_t>(key & 7);
    if (f.wire == 0) {
      f.number = read_varint(s, at);
    } else if (f.wire == 1 || f.wire == 5) {
      const int n = f.wire == 1 ? 8 : 4;
      if (s.size() - at < static_cast<size_t>(n)) throw std::runtime_error("truncated fixed field");
      f.number = little_endian(s, at, n);
      at += n;
    } else if (f.wire == 2) {
      const uint64_t n = read_varint(s, at);
      if (s.size() - at < n) throw std::runtime_error("truncated length-delimited field");
      f.bytes = std::string(s.substr(at, n));
      at += n;
    } else {
      throw std::runtime_error("unexpected wire type " + std::to_string(f.wire));
    }
    fields.push_back(std::move(f));
  }
  return fields;
}

double as_double(const Field& f) {
  EXPECT_EQ(f.wire, 1u);
  double v;
  const uint64_t bits = f.number;
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

float as_float(const Field& f) {
  EXPECT_EQ(f.wire, 5u);
  float v;
  const auto bits = static_cast<uint32_t>(f.number);
  std::memcpy(&v, &bits, sizeof v);
  return v;
}

struct ImageValue {
  int64_t height = 0, width = 0, colorspace = 0;
  std::string png;
};

struct SummaryValue {
  std::string tag;
  bool has_simple_value = false, has_image = false;
  float simple_value = 0;
  ImageValue image;
};

// Event: wall_time 1 (double), step 2 (int64), file_version 3 (string), summary 5 (Summary:
// repeated value 1 (Value: tag 1, simple_value 2 (float), image 4 (Image: height 1, width 2,
// colorspace 3, encoded_image_string 4))).
struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::vector<SummaryValue> values;
};

Event parse_event(std::string_view data) {
  Event e;
  for (const Field& f : parse_message(data)) {
    if (f.id == 1) e.wall_time = as_double(f);
    if (f.id == 2) e.step = static_cast<int64_t>(f.number);
    if (f.id == 3) e.file_version = f.bytes;
    if (f.id != 5) continue;
    for (const Field& sf : parse_message(f.bytes)) {
      if (sf.id != 1) continue;
      SummaryValue v;
      for (const Field& vf : parse_message(sf.bytes)) {
        if (vf.id == 1) v.tag = vf.bytes;
        if (vf.id == 2) {
          v.has_simple_value = true;
          v.simple_value = as_float(vf);
        }
        if (vf.id != 4) continue;
        v.has_image = true;
        for (const Field& imf : parse_message(vf.bytes)) {
          if (imf.id == 1) v.image.height = static_cast<int64_t>(imf.number);
          if (imf.id == 2) v.image.width = static_cast<int64_t>(imf.number);
          if (imf.id == 3) v.image.colorspace = static_cast<int64_t>(imf.number);
          if (imf.id == 4) v.image.png = imf.bytes;
        }
      }
      e.values.push_back(std::move(v));
    }
  }
  return e;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<Event> read_events(const std::string& path) {
  std::vector<Event> events;
  for (const std::string& r : read_records(read_file(path))) events.push_back(parse_event(r));
  return events;
}

// The only event file in dir.
std::string event_file_in(const fs::path& dir) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(dir)) found.push_back(entry.path().string());
  EXPECT_EQ(found.size(), 1u) << dir;
  return found.empty() ? "" : found.front();
}

fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("kiln_tensorboard_" + std::to_string(::getpid())) / name;
  fs::remove_all(dir);
  return dir;
}

// --- the tests ------------------------------------------------------------------------------

TEST(Crc32c, KnownAnswer) {
  const std::string digits = "123456789";
  EXPECT_EQ(crc32c(digits.data(), digits.size()), 0xE3069283u);
  EXPECT_EQ(crc32c_bitwise(digits), 0xE3069283u);  // the reader's own, checked too
  EXPECT_EQ(crc32c(digits.data(), 0), 0u);
  EXPECT_EQ(masked_crc32c(digits.data(), digits.size()), mask(0xE3069283u));
  // A longer input, through the writer's table and the reader's bit loop.
  std::string bytes;
  for (int i = 0; i < 1000; ++i) bytes.push_back(static_cast<char>(i * 37 + 11));
  EXPECT_EQ(crc32c(bytes.data(), bytes.size()), crc32c_bitwise(bytes));
}

TEST(TensorBoardWriter, FileVersionThenScalarsVisibleAfterFlush) {
  const fs::path dir = scratch("scalars") / "nested";  // created with its parent
  const double before = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  TensorBoardWriter tb(dir.string());
  const std::string name = fs::path(tb.path()).filename().string();
  EXPECT_EQ(fs::path(tb.path()).parent_path(), dir);
  EXPECT_EQ(name.rfind("events.out.tfevents.", 0), 0u) << name;
  EXPECT_TRUE(name.ends_with("." + std::to_string(::getpid()) + ".kiln")) << name;

  tb.scalar("loss", 0.6931, 1);
  tb.scalar("accuracy", 0.5, 1);
  tb.scalar("loss", 0.25, 2);
  tb.scalar("offset", -3.75e-5, -7);  // a negative step: a 10-byte varint
  tb.flush();  // read while the writer still has the file open, as TensorBoard does

  const std::vector<Event> events = read_events(tb.path());
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_TRUE(events[0].values.empty());
  const double after = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  for (const Event& e : events) {
    EXPECT_GE(e.wall_time, before - 1);
    EXPECT_LE(e.wall_time, after + 1);
  }
  const struct {
    const char* tag;
    double value;
    int64_t step;
  } expected[] = {{"loss", 0.6931, 1}, {"accuracy", 0.5, 1}, {"loss", 0.25, 2}, {"offset", -3.75e-5, -7}};
  for (size_t i = 0; i < std::size(expected); ++i) {
    const Event& e = events[i + 1];
    EXPECT_TRUE(e.file_version.empty());
    EXPECT_EQ(e.step, expected[i].step);
    ASSERT_EQ(e.values.size(), 1u);
    EXPECT_EQ(e.values[0].tag, expected[i].tag);
    EXPECT_TRUE(e.values[0].has_simple_value);
    EXPECT_FALSE(e.values[0].has_image);
    EXPECT_EQ(e.values[0].simple_value, static_cast<float>(expected[i].value));
  }
}

TEST(TensorBoardWriter, EveryFlippedByteFailsACrc) {
  std::string path;
  {
    TensorBoardWriter tb(scratch("flip").string());
    tb.scalar("loss", 1.5, 3);
    path = tb.path();
  }  // closing writes what is buffered
  const std::string good = read_file(path);
  ASSERT_EQ(read_records(good).size(), 2u);
  // Every byte of the file: the length, the length's CRC, the data and the data's CRC. A flipped
  // length may also make the record run past the end, which the reader reports as truncation.
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    EXPECT_THROW(read_records(bad), std::runtime_error) << "byte " << i << " flipped";
  }
  std::string bad = good;
  bad[bad.size() - 6] ^= 1;  // inside the second record's data
  try {
    read_records(bad);
    ADD_FAILURE() << "not detected";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "record 1: data CRC mismatch");
  }
}

TEST(TensorBoardWriter, ImageHoldsAPngOfTheCanvas) {
  RgbCanvas canvas(37, 23, {250, 250, 250});
  canvas.fill_rect(3, 4, 10, 6, {200, 30, 40});
  canvas.draw_line(0, 22, 36, 0, {10, 120, 220});
  TensorBoardWriter tb(scratch("image").string());
  tb.image("curves", canvas, 4);
  tb.flush();

  const std::vector<Event> events = read_events(tb.path());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].step, 4);
  ASSERT_EQ(events[1].values.size(), 1u);
  const SummaryValue& v = events[1].values[0];
  EXPECT_EQ(v.tag, "curves");
  EXPECT_FALSE(v.has_simple_value);
  ASSERT_TRUE(v.has_image);
  EXPECT_EQ(v.image.width, 37);
  EXPECT_EQ(v.image.height, 23);
  EXPECT_EQ(v.image.colorspace, 3);  // RGB
  ASSERT_EQ(v.image.png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  const std::string png_path = (fs::path(tb.path()).parent_path() / "decoded.png").string();
  std::ofstream(png_path, std::ios::binary) << v.image.png;
  const PngImage decoded = read_png(png_path);
  EXPECT_EQ(decoded.width, 37);
  EXPECT_EQ(decoded.height, 23);
  EXPECT_EQ(decoded.channels, 3);
  EXPECT_EQ(decoded.pixels, canvas.pixels);
}

TEST(TensorBoardWriter, UnusableDirectoryIsAFileError) {
  const fs::path dir = scratch("blocked");
  fs::create_directories(dir.parent_path());
  std::ofstream(dir) << "a file, not a directory";
  try {
    TensorBoardWriter tb((dir / "logs").string());
    ADD_FAILURE() << "no error for a directory under a regular file";
  } catch (const FileError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.string()), std::string::npos) << e.what();
  }
  EXPECT_THROW(TensorBoardWriter(""), std::invalid_argument);
}

// Rows of 4x4 noise, labels alternating 0/1, each class shifted so a linear model can learn it.
Dataset two_class_noise(int64_t n) {
  Dataset d;
  d.x = Tensor::normal({n, 4, 4, 1}, 0.0f, 1.0f, 17);
  d.num_classes = 2;
  for (int64_t i = 0; i < n; ++i) {
    d.labels.push_back(static_cast<int32_t>(i % 2));
    for (int64_t k = 0; k < 16; ++k) d.x.data()[i * 16 + k] += d.labels.back() == 1 ? 0.5f : -0.5f;
  }
  d.y_onehot = one_hot(d.labels, 2);
  return d;
}

TEST(TensorBoardWriter, FitLogsEveryEpochAsItsHistory) {
  const Dataset train = two_class_noise(40), valid = two_class_noise(16);
  Sequential model;
  model.add(std::make_shared<Flatten>())
      .add(std::make_shared<Dense>(DenseOptions{.in_features = 16, .units = 2, .activation = Activation::Softmax, .seed = 3}));
  Adam adam(model.named_parameters(), {.learning_rate = 0.01f});
  const fs::path dir = scratch("fit");
  FitOptions options{.epochs = 4, .batch_size = 8, .validation = &valid, .validation_freq = 2, .seed = 5,
                     .quiet = true, .auc = true};
  options.tensorboard_dir = dir.string();
  const History history = fit(model, adam, train, options);
  ASSERT_EQ(history.epochs.size(), 4u);

  const std::vector<Event> events = read_events(event_file_in(dir));
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  std::map<std::string, std::map<int64_t, float>> scalars;
  std::map<int64_t, ImageValue> curves, confusions;  // images at validation epochs
  for (size_t i = 1; i < events.size(); ++i) {
    for (const SummaryValue& v : events[i].values) {
      if (v.has_simple_value) {
        EXPECT_EQ(scalars[v.tag].count(events[i].step), 0u) << v.tag << " twice at step " << events[i].step;
        scalars[v.tag][events[i].step] = v.simple_value;
      }
      if (v.has_image) {
        EXPECT_TRUE(v.tag == "curves" || v.tag == "confusion") << v.tag;
        (v.tag == "curves" ? curves : confusions)[events[i].step] = v.image;
      }
    }
  }
  const std::set<std::string> tags = {"loss", "accuracy", "auc", "learning_rate", "val_loss", "val_accuracy", "val_auc"};
  for (const auto& [tag, by_step] : scalars) EXPECT_EQ(tags.count(tag), 1u) << "unexpected tag " << tag;

  for (const EpochLog& log : history.epochs) {
    const int64_t step = log.epoch;
    SCOPED_TRACE("epoch " + std::to_string(step));
    EXPECT_EQ(scalars["loss"].at(step), static_cast<float>(log.loss));
    EXPECT_EQ(scalars["accuracy"].at(step), static_cast<float>(log.accuracy));
    EXPECT_EQ(scalars["auc"].at(step), static_cast<float>(log.auc));
    EXPECT_EQ(scalars["learning_rate"].at(step), 0.01f);
    EXPECT_EQ(log.validated, step % 2 == 0);
    if (log.validated) {
      EXPECT_EQ(scalars["val_loss"].at(step), static_cast<float>(log.val_loss));
      EXPECT_EQ(scalars["val_accuracy"].at(step), static_cast<float>(log.val_accuracy));
      EXPECT_EQ(scalars["val_auc"].at(step), static_cast<float>(log.val_auc));
      ASSERT_EQ(curves.count(step), 1u);
      EXPECT_GT(curves[step].width, curves[step].height);  // panels side by side
      const std::string png_path = (dir / ("curves" + std::to_string(step) + ".png")).string();
      std::ofstream(png_path, std::ios::binary) << curves[step].png;
      const PngImage decoded = read_png(png_path);
      EXPECT_EQ(decoded.width, curves[step].width);
      EXPECT_EQ(decoded.height, curves[step].height);
      ASSERT_EQ(confusions.count(step), 1u);  // the validation set's confusion matrix, as a PNG
      const std::string cm_path = (dir / ("confusion" + std::to_string(step) + ".png")).string();
      std::ofstream(cm_path, std::ios::binary) << confusions[step].png;
      EXPECT_EQ(read_png(cm_path).width, confusions[step].width);
    } else {
      EXPECT_EQ(scalars["val_loss"].count(step), 0u);
      EXPECT_EQ(curves.count(step), 0u);
      EXPECT_EQ(confusions.count(step), 0u);
    }
  }
  EXPECT_EQ(scalars["loss"].size(), 4u);
  EXPECT_EQ(scalars["val_loss"].size(), 2u);
  EXPECT_EQ(curves.size(), 2u);
  fs::remove_all(dir.parent_path());
}

}  // namespace
}  // namespace kiln
