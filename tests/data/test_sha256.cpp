// SHA-256 against the FIPS 180-4 / NIST example vectors, and incremental hashing against
// one-shot hashing at every awkward split point (block and padding boundaries).
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "data/fetch/sha256.h"

namespace kiln {
namespace {

TEST(Sha256, EmptyMessage) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, Abc) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, TwoBlockMessage) {
  // 56 bytes: the length no longer fits in the first block, so padding spills into a second.
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, MillionA) {
  const std::string a(1000000, 'a');
  EXPECT_EQ(sha256_hex(a), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // The same million fed in uneven pieces.
  Sha256 h;
  size_t done = 0;
  for (size_t piece = 1; done < a.size(); piece = piece * 3 % 1000 + 1) {
    const size_t n = std::min(piece, a.size() - done);
    h.update(a.data() + done, n);
    done += n;
  }
  EXPECT_EQ(to_hex(h.finish()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalMatchesOneShotAtEverySplit) {
  std::string msg;
  for (int i = 0; i < 200; ++i) msg += static_cast<char>(i * 37 + 11);
  for (size_t len : {0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 200}) {
    const std::string one_shot = sha256_hex(msg.data(), len);
    for (size_t split = 0; split <= len; ++split) {
      Sha256 h;
      h.update(msg.data(), split);
      h.update(msg.data() + split, len - split);
      ASSERT_EQ(to_hex(h.finish()), one_shot) << "len " << len << " split " << split;
    }
  }
}

TEST(Sha256, ResetStartsAFreshMessage) {
  Sha256 h;
  h.update("garbage", 7);
  h.finish();
  h.reset();
  h.update("abc", 3);
  EXPECT_EQ(to_hex(h.finish()), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace kiln
