// The cache of freed blocks behind every tensor: a freed block is kept and handed out again for
// the same size, and when the idle blocks would pass the cap the sizes used least recently go
// first, so a finished phase's blocks never crowd out the sizes in use. (The large blocks are
// never written, so they take address space, not memory.)
#include <gtest/gtest.h>

#include <cstdint>

#include "core/runtime/memory.h"

namespace kiln {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;  // floats: 4 MiB each

TEST(MemoryCache, AFreedBlockIsHandedOutAgainForItsSize) {
  release_cached_memory();
  float* first = nullptr;
  {
    auto block = alloc_floats(kMiB);
    first = block.get();
  }
  EXPECT_EQ(cached_bytes(), 4u << 20);
  auto again = alloc_floats(kMiB);
  EXPECT_EQ(again.get(), first);
  EXPECT_EQ(cached_bytes(), 0u);
  { auto small = alloc_floats(100); }  // 400 bytes: left to malloc, never cached
  EXPECT_EQ(cached_bytes(), 0u);
}

TEST(MemoryCache, IndexBuffersShareTheCache) {
  // max_pool2d's saved argmax indices: a freed index block is cached like a float block of the
  // same size and handed out again, aligned as the floats are.
  release_cached_memory();
  const void* first = nullptr;
  {
    auto indices = alloc_ints(kMiB);
    first = indices.get();
    EXPECT_EQ(reinterpret_cast<uintptr_t>(first) % 64, 0u);
    indices.get()[kMiB - 1] = -7;  // the whole range is usable
    EXPECT_EQ(indices.get()[kMiB - 1], -7);
  }
  EXPECT_EQ(cached_bytes(), 4u << 20);
  auto again = alloc_ints(kMiB);
  EXPECT_EQ(static_cast<const void*>(again.get()), first);
  EXPECT_EQ(cached_bytes(), 0u);
  again.reset();
  auto as_floats = alloc_floats(kMiB);
  EXPECT_EQ(static_cast<const void*>(as_floats.get()), first);
}

TEST(MemoryCache, TheSizesUsedLeastRecentlyAreFreedFirst) {
  release_cached_memory();
  // 1.5 GB idle from an earlier phase, then a phase of 1 GB blocks: with a cap of 2 GB (nothing
  // larger was ever in use at once) the new block is kept and the old one freed, not the reverse.
  { auto old_phase = alloc_floats(384 * kMiB); }
  EXPECT_EQ(cached_bytes(), size_t{1536} << 20);
  float* current = nullptr;
  {
    auto block = alloc_floats(256 * kMiB);
    current = block.get();
  }
  EXPECT_EQ(cached_bytes(), size_t{1024} << 20);
  auto reused = alloc_floats(256 * kMiB);
  EXPECT_EQ(reused.get(), current);
  reused.reset();
  release_cached_memory();
  EXPECT_EQ(cached_bytes(), 0u);
}

}  // namespace
}  // namespace kiln
