// SHA-256 (FIPS 180-4), written out by hand so that checking a downloaded data file needs no
// crypto library. Used to verify MNIST files whatever route they arrived by.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln {

using Sha256Digest = std::array<uint8_t, 32>;

// Incremental hasher: update() any number of times with any split of the message, then
// finish() once. finish() leaves the object spent; call reset() to hash another message.
class Sha256 {
 public:
  Sha256() { reset(); }
  void reset();
  // bytes: `size` bytes of message, appended.
  void update(const void* bytes, size_t size);
  // -> the 32-byte digest of everything passed to update().
  Sha256Digest finish();

 private:
  void compress(const uint8_t* block);  // one 64-byte block into state_

  std::array<uint32_t, 8> state_{};
  std::array<uint8_t, 64> block_{};
  size_t block_used_ = 0;   // bytes waiting in block_
  uint64_t total_bytes_ = 0;
};

// digest -> 64 lowercase hex characters.
std::string to_hex(const Sha256Digest& digest);
// One-shot: message bytes -> lowercase hex digest.
std::string sha256_hex(const void* bytes, size_t size);
std::string sha256_hex(std::string_view text);

}  // namespace kiln
