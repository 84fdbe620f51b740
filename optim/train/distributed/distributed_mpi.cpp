// The MPI communicator (compiled only when kiln is built with MPI).
// Only the C API: Open MPI would otherwise pull in its deprecated C++ bindings.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "optim/train/distributed/distributed.h"

namespace kiln {
namespace {

void check_mpi(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  throw std::runtime_error(std::string("MPI: ") + call + " failed: " + std::string(text, static_cast<size_t>(len)));
}

// MPI counts are int: long buffers go in pieces.
constexpr int64_t kPiece = int64_t{1} << 28;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised) {
      int provided = 0;
      // Only the thread that called fit() talks to MPI; OpenMP's threads never do.
      check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
      std::atexit([] {
        int finalised = 0;
        MPI_Finalized(&finalised);
        if (!finalised) MPI_Finalize();
      });
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce_sum(float* data, int64_t n) override {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kPiece, n - at)), MPI_FLOAT,
                              MPI_SUM, MPI_COMM_WORLD),
                "MPI_Allreduce");
  }
  void allreduce_sum(double* data, int64_t n) override {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Allreduce(MPI_IN_PLACE, data + at, static_cast<int>(std::min(kPiece, n - at)), MPI_DOUBLE,
                              MPI_SUM, MPI_COMM_WORLD),
                "MPI_Allreduce");
  }
  void barrier() override { check_mpi(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }
  void broadcast(float* data, int64_t n, int root) override {
    for (int64_t at = 0; at < n; at += kPiece)
      check_mpi(MPI_Bcast(data + at, static_cast<int>(std::min(kPiece, n - at)), MPI_FLOAT, root, MPI_COMM_WORLD),
                "MPI_Bcast");
  }
  std::vector<uint64_t> all_gather(uint64_t value) override {
    std::vector<uint64_t> all(static_cast<size_t>(size_));
    check_mpi(MPI_Allgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
    return all;
  }
  std::vector<float> gather(const std::vector<float>& data, int root) override {
    if (data.size() > static_cast<size_t>(INT_MAX)) throw std::runtime_error("MPI gather: more than 2^31 values");
    const int count = static_cast<int>(data.size());
    std::vector<int> counts(static_cast<size_t>(size_)), offsets(static_cast<size_t>(size_));
    check_mpi(MPI_Gather(&count, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD), "MPI_Gather");
    std::vector<float> all;
    if (rank_ == root) {
      int64_t total = 0;
      for (int r = 0; r < size_; ++r) {
        offsets[static_cast<size_t>(r)] = static_cast<int>(total);
        total += counts[static_cast<size_t>(r)];
      }
      if (total > INT_MAX) throw std::runtime_error("MPI gather: more than 2^31 values");
      all.resize(static_cast<size_t>(total));
    }
    check_mpi(MPI_Gatherv(data.data(), count, MPI_FLOAT, all.data(), counts.data(), offsets.data(), MPI_FLOAT, root,
                          MPI_COMM_WORLD),
              "MPI_Gatherv");
    return all;
  }
  [[noreturn]] void abort(const std::string& message) override {
    if (rank_ == 0) std::fprintf(stderr, "%s\n", message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::exit(1);
  }

 private:
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool built_with_mpi() { return true; }

Communicator& mpi_world() {
  static MpiCommunicator world;
  return world;
}

}  // namespace kiln
