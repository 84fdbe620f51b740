#include "optim/train/distributed/data_parallel.h"

#include "core/runtime/random.h"
#include "layers/batch_norm2d.h"

namespace kiln {
namespace {

// Every BatchNorm2d in the model, depth first.
void collect_batch_norms(Module& m, std::vector<BatchNorm2d*>& out) {
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) out.push_back(bn);
  for (const auto& [name, child] : m.named_children()) collect_batch_norms(*child, out);
}

}  // namespace

DataParallel::DataParallel(Communicator& comm, bool sync_batch_norm)
    : comm_(comm), sync_batch_norm_(sync_batch_norm) {}

void DataParallel::start(Module& model, uint64_t settings, int64_t first_epoch) {
  NamedTensors parameters = model.named_parameters(), buffers = model.named_buffers();
  check_same(comm_, "the model (its parameters' and buffers' names and shapes)",
             structure_hash(parameters) ^ mix64(structure_hash(buffers)));
  check_same(comm_, "the training data or the fit settings", settings);
  check_same(comm_, "where training starts (the epoch a checkpoint resumes after)",
             static_cast<uint64_t>(first_epoch));
  broadcast_tensors(comm_, parameters);
  broadcast_tensors(comm_, buffers);
}

DataParallel::Shard DataParallel::shard(int64_t rows) const {
  const int64_t r = rank(), p = ranks();
  return {rows * r / p, rows * (r + 1) / p};
}

float DataParallel::loss_weight(int64_t shard_rows, int64_t batch_rows) const {
  return sync_batch_norm_ ? static_cast<float>(shard_rows) / static_cast<float>(batch_rows) : 1.0f;
}

float DataParallel::gradient_weight(int64_t shard_rows, int64_t batch_rows) const {
  return sync_batch_norm_ ? 1.0f : static_cast<float>(shard_rows) / static_cast<float>(batch_rows);
}

void DataParallel::reduce(Optimizer& optimizer, int64_t shard_rows, int64_t batch_rows, double* figures,
                          int64_t n) {
  allreduce_gradients(comm_, optimizer.params(), gradient_weight(shard_rows, batch_rows));
  comm_.allreduce_sum(figures, n);
}

DataParallel::BatchNormScope DataParallel::synchronise_batch_norm(Module& model) {
  BatchNormScope scope;
  if (!sync_batch_norm_) return scope;
  collect_batch_norms(model, scope.layers_);
  Communicator* comm = &comm_;
  for (BatchNorm2d* bn : scope.layers_)
    bn->synchronise([comm](double* v, int64_t count) { comm->allreduce_sum(v, count); });
  return scope;
}

DataParallel::BatchNormScope::~BatchNormScope() {
  for (BatchNorm2d* bn : layers_) bn->synchronise({});
}

void DataParallel::gather_scores(std::vector<float>& scores, std::vector<int32_t>& labels) {
  // The AUC does not depend on the pairs' order.
  std::vector<float> label_values(labels.begin(), labels.end());
  scores = comm_.gather(scores, 0);
  label_values = comm_.gather(label_values, 0);
  labels.assign(label_values.begin(), label_values.end());
}

}  // namespace kiln
