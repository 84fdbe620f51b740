// Data-parallel training across processes: the communicator fit() uses to average gradients.
//
// Every rank (process) holds a replica of the model. fit() with FitOptions::communicator set
// makes the replicas start from rank 0's weights, draws the same global batch on every rank
// (same seed, same order), gives rank r the rows [r*B/P, (r+1)*B/P) of it, and before each
// optimizer step replaces every rank's gradient by the gradient of the whole global batch:
// each rank weights its shard's mean-loss gradient by shard/B and the weighted gradients are
// summed over the ranks (one allreduce over all parameters, packed into one buffer). The
// optimizer then takes the same step on every rank, so the replicas stay identical.
//
// What stays per rank: batch-norm batch statistics (each rank normalises its shard with its
// own, as in PyTorch's DistributedDataParallel without SyncBatchNorm; the moving statistics of
// rank 0 are the model's) and dropout masks (every rank's stream is the same, applied to its
// shard). Models without those two train exactly like one process on the global batch, up to
// float rounding of the sum.
//
// The MPI implementation (mpi_world()) exists when kiln was built with MPI (KILN_WITH_MPI);
// local() is the one-process stand-in, so code can take a communicator unconditionally.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "optim/optimizer.h"

namespace kiln {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // In place: data becomes the element-wise sum over all ranks.
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  virtual void allreduce_sum(double* data, int64_t n) = 0;
  // Returns when every rank has called it.
  virtual void barrier() = 0;
  // In place: data becomes root's.
  virtual void broadcast(float* data, int64_t n, int root) = 0;
  // Every rank's value of `value`, in rank order.
  virtual std::vector<uint64_t> all_gather(uint64_t value) = 0;
  // On root: the concatenation of every rank's data in rank order; elsewhere: empty.
  virtual std::vector<float> gather(const std::vector<float>& data, int root) = 0;
  // Ends every rank's process with exit status 1 after printing message (rank 0 prints it).
  [[noreturn]] virtual void abort(const std::string& message) = 0;
};

// One process: rank 0 of 1; every collective leaves the data as it is.
std::unique_ptr<Communicator> local_communicator();

// True when this build of kiln has MPI.
bool built_with_mpi();
// True when this process was started by an MPI launcher (mpirun/mpiexec set the rank and
// size in the environment), so a program can turn data parallelism on by itself.
bool launched_by_mpi();
// Ranks the launcher started on this machine (Open MPI's or MPICH's variable; 1 when unknown):
// they share its cores, so each takes cores / local_rank_count() threads by default.
int local_rank_count();
// The MPI world communicator; initialises MPI on first use (and finalises it at exit).
// Throws std::runtime_error when kiln was built without MPI.
Communicator& mpi_world();

// Copies rank 0's tensors into every other rank's (parameters, then buffers: call it with
// each list). Shapes must agree on every rank; check_same() first.
void broadcast_tensors(Communicator& comm, const NamedTensors& tensors);

// Stops every rank with a one-line error naming `what` and the ranks whose value differs
// from rank 0's, when the ranks disagree about it (data, model, flags: pass a hash).
void check_same(Communicator& comm, const std::string& what, uint64_t value);

// The data-parallel gradient: every parameter's gradient is multiplied by `weight` (this
// rank's share of the global batch) and summed over the ranks, in one allreduce over a
// buffer holding all of them. A parameter without a gradient counts as zero here and gets
// one, so every rank's optimizer sees the same set.
void allreduce_gradients(Communicator& comm, const NamedTensors& params, float weight);

// A hash of the parameters' and buffers' names and shapes (not values): what check_same()
// compares to know every rank built the same model.
uint64_t structure_hash(const NamedTensors& tensors);

// Folds text into the running hash h (order and length matter): build a hash of names and
// values for check_same().
uint64_t hash_text(uint64_t h, const std::string& text);

}  // namespace kiln
