// 64-byte aligned float storage with a small cache of freed blocks.
//
// Training allocates the same sizes every step; handing blocks back to a per-size free list
// instead of the OS avoids the page faults of re-touching fresh memory each step.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kiln {

// Aligned storage for n floats (uninitialised), freed back into the cache.
std::shared_ptr<float> alloc_floats(int64_t n);
// The same for n int32 indices (saved argmax positions and the like): from the same cache, so
// an index buffer allocated every step does not fault its pages in again each time.
std::shared_ptr<int32_t> alloc_ints(int64_t n);

// Scratch space owned by one scope (im2col columns, saved indices...). Not copyable.
class Workspace {
 public:
  explicit Workspace(int64_t n_floats) : block_(alloc_floats(n_floats)), n_(n_floats) {}
  float* data() { return block_.get(); }
  int64_t size() const { return n_; }

 private:
  std::shared_ptr<float> block_;
  int64_t n_;
};

// Returns every cached block to the OS (for tests and long-lived processes).
void release_cached_memory();
// Bytes currently held in the cache (not in use).
size_t cached_bytes();

// The process's peak resident memory so far (Linux VmHWM), in MiB; 0 where /proc is missing.
double peak_resident_mib();

}  // namespace kiln
