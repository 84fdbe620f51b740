// TensorBoard event files: scalars and images of a run, written the way TensorFlow's summary
// writer lays them out, so `tensorboard --logdir DIR` shows them. The file is a TFRecord stream
// (each record: uint64 length, masked CRC32C of the length, the data, masked CRC32C of the
// data; all little-endian), each record one serialized `Event` protobuf. The few protobuf
// fields this needs are encoded by hand in the .cpp; nothing here needs protoc.
//
// Unlike kiln's other outputs, an event file is an append-only log, not a file replaced
// atomically: TensorBoard reads it while it grows, so each record goes to the file as it comes
// and flush() pushes it to the operating system. A run cut short leaves the records written
// so far. A later run (a resumed one) adds a new file beside it; TensorBoard merges the files
// of one directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

#include "core/io/png_image.h"

namespace kiln {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) of n bytes; "123456789" -> 0xE3069283.
uint32_t crc32c(const void* data, size_t n);
// The TFRecord form of a CRC: rotated right by 15 bits plus 0xa282ead8, modulo 2^32.
uint32_t masked_crc32c(const void* data, size_t n);

class TensorBoardWriter {
 public:
  // Creates dir (and its parents) when missing and opens
  // dir/events.out.tfevents.<unix seconds>.<hostname>.<pid>.kiln, then writes the first event
  // (file_version "brain.Event:2"). A file of that name (the same second, host and process)
  // is appended to. Throws FileError naming the directory or the file when either fails.
  explicit TensorBoardWriter(const std::string& dir);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // One event holding a float scalar (value is rounded to float, as TensorBoard stores it).
  void scalar(const std::string& tag, double value, int64_t step);
  // One event holding the canvas as an RGB PNG image.
  void image(const std::string& tag, const RgbCanvas& canvas, int64_t step);
  // Hands what is buffered to the operating system, so TensorBoard sees it.
  void flush();

  const std::string& path() const { return path_; }

 private:
  // wall_time now, `step`, and the already encoded Event fields `fields` -> one record.
  void write_event(int64_t step, const std::string& fields);

  struct CloseFile {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::string path_;
  std::unique_ptr<std::FILE, CloseFile> file_;
};

}  // namespace kiln
