#include "core/runtime/memory.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kiln {
namespace {

constexpr size_t kAlign = 64;
// Blocks above this size are cached; smaller ones are cheap for malloc anyway.
constexpr size_t kMinCachedBytes = 64 * 1024;
// Bytes kept idle in the cache: at most the larger of this and the most the process has had
// in use at once. A training step frees and re-allocates the same blocks every step; were its
// working set larger than the cap (a Task 3 step on 96x96 patches holds about 4 GB), the excess
// would go back to the OS and every step would fault it in again page by page (a third of such
// a step's time, measured). Idle blocks up to the peak in use cost no more than that peak.
// When a returned block does not fit, the sizes used least recently are freed first, so blocks
// of a finished phase (a training step's, before evaluation) do not crowd out the sizes in use.
constexpr size_t kMinCacheCap = size_t{2} << 30;

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // by rounded byte size
  size_t bytes = 0;                  // idle, in free_blocks
  size_t in_use = 0, peak_in_use = 0;  // of blocks large enough to be cached
  std::unordered_map<size_t, uint64_t> last_used;  // by size: the tick of its last alloc or return
  uint64_t tick = 0;

  // Frees idle blocks of the sizes used least recently (never of `keep`) until `more` bytes fit
  // under the cap, or nothing else is left.
  void make_room(size_t more, size_t keep, size_t cap) {
    while (bytes + more > cap) {
      auto victim = free_blocks.end();
      for (auto it = free_blocks.begin(); it != free_blocks.end(); ++it)
        if (it->first != keep && !it->second.empty() &&
            (victim == free_blocks.end() || last_used[it->first] < last_used[victim->first]))
          victim = it;
      if (victim == free_blocks.end()) return;
      for (void* p : victim->second) std::free(p);
      bytes -= victim->first * victim->second.size();
      victim->second.clear();
    }
  }

  ~Cache() {
    for (auto& [size, blocks] : free_blocks)
      for (void* p : blocks) std::free(p);
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: blocks may be returned during exit
  return *c;
}

size_t round_bytes(int64_t n) {
  size_t bytes = static_cast<size_t>(n > 0 ? n : 1) * sizeof(float);
  return (bytes + kAlign - 1) / kAlign * kAlign;
}

void give_back(void* p, size_t bytes) {
  if (bytes >= kMinCachedBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    c.in_use -= bytes;
    c.last_used[bytes] = ++c.tick;
    const size_t cap = std::max(kMinCacheCap, c.peak_in_use);
    c.make_room(bytes, bytes, cap);
    if (c.bytes + bytes <= cap) {
      c.free_blocks[bytes].push_back(p);
      c.bytes += bytes;
      return;
    }
  }
  std::free(p);
}

}  // namespace

std::shared_ptr<float> alloc_floats(int64_t n) {
  const size_t bytes = round_bytes(n);
  void* p = nullptr;
  if (bytes >= kMinCachedBytes) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.free_blocks.find(bytes);
    if (it != c.free_blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      c.bytes -= bytes;
    }
    c.in_use += bytes;
    c.peak_in_use = std::max(c.peak_in_use, c.in_use);
    c.last_used[bytes] = ++c.tick;
  }
  if (!p) {
    p = std::aligned_alloc(kAlign, bytes);
    if (!p) {
      if (bytes >= kMinCachedBytes) {
        Cache& c = cache();
        std::lock_guard<std::mutex> lock(c.mu);
        c.in_use -= bytes;
      }
      throw std::bad_alloc();
    }
  }
  return std::shared_ptr<float>(static_cast<float*>(p), [bytes](float* q) { give_back(q, bytes); });
}

std::shared_ptr<int32_t> alloc_ints(int64_t n) {
  static_assert(sizeof(int32_t) == sizeof(float), "an int32 index takes a float's slot");
  std::shared_ptr<float> block = alloc_floats(n);
  // The block comes from aligned_alloc and is only ever accessed as int32 through this pointer.
  int32_t* ints = reinterpret_cast<int32_t*>(block.get());
  return std::shared_ptr<int32_t>(std::move(block), ints);
}

void release_cached_memory() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  for (auto& [size, blocks] : c.free_blocks)
    for (void* p : blocks) std::free(p);
  c.free_blocks.clear();
  c.bytes = 0;
}

size_t cached_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.bytes;
}

double peak_resident_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return 0.0;
}

}  // namespace kiln
