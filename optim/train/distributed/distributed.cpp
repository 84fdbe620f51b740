#include "optim/train/distributed/distributed.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "core/runtime/random.h"

namespace kiln {
namespace {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void allreduce_sum(float*, int64_t) override {}
  void allreduce_sum(double*, int64_t) override {}
  void barrier() override {}
  void broadcast(float*, int64_t, int) override {}
  std::vector<uint64_t> all_gather(uint64_t value) override { return {value}; }
  std::vector<float> gather(const std::vector<float>& data, int) override { return data; }
  [[noreturn]] void abort(const std::string& message) override { throw std::runtime_error(message); }
};

}  // namespace

uint64_t hash_text(uint64_t h, const std::string& text) {
  for (const unsigned char ch : text) h = mix64(h ^ ch);
  return mix64(h ^ text.size());
}

std::unique_ptr<Communicator> local_communicator() { return std::make_unique<LocalCommunicator>(); }

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(name) != nullptr) return true;
  return false;
}

int local_rank_count() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(name)) return std::max(1, std::atoi(v));
  return 1;
}

void broadcast_tensors(Communicator& comm, const NamedTensors& tensors) {
  if (comm.size() == 1) return;
  for (const auto& entry : tensors) {
    Tensor t = entry.second;  // a handle to the same storage, writable
    comm.broadcast(t.data(), t.numel(), 0);
  }
}

void check_same(Communicator& comm, const std::string& what, uint64_t value) {
  if (comm.size() == 1) return;
  const std::vector<uint64_t> values = comm.all_gather(value);
  std::string differing;
  for (size_t r = 1; r < values.size(); ++r)
    if (values[r] != values[0]) differing += (differing.empty() ? "" : ", ") + std::to_string(r);
  if (!differing.empty())
    throw std::runtime_error("data-parallel training: the ranks disagree about " + what + ": rank(s) " +
                             differing + " differ from rank 0 (every rank must be started with the same "
                             "data, model and settings)");
}

void allreduce_gradients(Communicator& comm, const NamedTensors& params, float weight) {
  if (comm.size() == 1) return;
  int64_t total = 0;
  for (const auto& entry : params) total += entry.second.numel();
  // Reused across steps: a fresh multi-megabyte buffer per step would fault its pages in again.
  static thread_local std::vector<float> buffer;
  buffer.resize(static_cast<size_t>(total));
  int64_t at = 0;
  for (const auto& entry : params) {
    const Tensor g = entry.second.grad();
    const int64_t n = entry.second.numel();
    float* dst = buffer.data() + at;
    if (g.defined()) {
      const float* src = g.data();
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * weight;
    } else {
      std::memset(dst, 0, sizeof(float) * static_cast<size_t>(n));
    }
    at += n;
  }
  comm.allreduce_sum(buffer.data(), total);
  at = 0;
  for (const auto& entry : params) {
    const int64_t n = entry.second.numel();
    std::memcpy(entry.second.grad_data(), buffer.data() + at, sizeof(float) * static_cast<size_t>(n));
    at += n;
  }
}

#ifndef KILN_WITH_MPI
bool built_with_mpi() { return false; }

Communicator& mpi_world() {
  throw std::runtime_error(
      "data-parallel training needs MPI, and this kiln was built without it (install libopenmpi-dev and "
      "openmpi-bin, then configure and build again)");
}
#endif

uint64_t structure_hash(const NamedTensors& tensors) {
  uint64_t h = 0x6b696c6eULL;
  for (const auto& [name, t] : tensors) {
    h = hash_text(h, name);
    for (const int64_t d : t.shape()) h = mix64(h ^ static_cast<uint64_t>(d));
  }
  return h;
}

}  // namespace kiln
