#include "optim/train/train_step.h"

#include <cmath>

#include "core/ops/ops.h"
#include "optim/train/distributed/data_parallel.h"
#include "optim/train/metrics.h"

namespace kiln {
namespace {

// Rows [first, last) of a batch, sharing its tensors' storage.
Batch rows_of(const Batch& b, int64_t first, int64_t last) {
  Batch part;
  part.x = b.x.slice(first, last);
  part.y_onehot = b.y_onehot.slice(first, last);
  part.labels.assign(b.labels.begin() + first, b.labels.begin() + last);
  part.indices.assign(b.indices.begin() + first, b.indices.begin() + last);
  return part;
}

}  // namespace

Tensor softmax_cross_entropy_loss(const Tensor& logits, const Batch& batch) {
  return softmax_cross_entropy(logits, batch.y_onehot);
}

StepResult train_step(Module& model, Optimizer& optimizer, const Batch& batch, const TrainStepOptions& o) {
  check_arg(batch.size() > 0 && batch.x.defined() && batch.x.size(0) == batch.size(), "train_step",
            "the batch is empty or its x " + (batch.x.defined() ? shape_str(batch.x.shape()) : std::string("(none)")) +
                " does not hold its " + std::to_string(batch.size()) + " rows");
  DataParallel* parallel = o.parallel;
  const int64_t rows = batch.size();
  int64_t first = 0, last = rows;
  if (parallel) {
    const DataParallel::Shard s = parallel->shard(rows);
    first = s.first;
    last = s.last;
  }
  const int64_t n = last - first;
  StepResult result;
  optimizer.zero_grad();
  double figures[3] = {0, 0, static_cast<double>(n)};  // loss * rows, correct, rows
  if (n > 0) {
    const Batch local = parallel ? rows_of(batch, first, last) : batch;
    result.output = o.loss ? model.forward(local.x) : model.forward_logits(local.x);
    Tensor loss = o.loss ? o.loss(result.output, local) : softmax_cross_entropy_loss(result.output, local);
    check_arg(loss.defined() && loss.numel() == 1, "train_step",
              "the loss must be a scalar tensor, got " + (loss.defined() ? shape_str(loss.shape()) : std::string("none")));
    const Tensor reg = model.regularization_loss();
    if (reg.defined()) loss = add(loss, reg);
    const float weight = parallel ? parallel->loss_weight(n, rows) : 1.0f;
    if (weight != 1.0f) mul(loss, weight).backward();
    else loss.backward();
    figures[0] = static_cast<double>(loss.item()) * n;
    figures[1] = std::llround(accuracy(result.output, local.labels) * n);
  }
  if (parallel) parallel->reduce(optimizer, n, rows, figures, 3);
  optimizer.step();
  result.rows = static_cast<int64_t>(figures[2]);
  result.correct = static_cast<int64_t>(figures[1]);
  result.loss_sum = figures[0];
  result.loss = figures[0] / figures[2];
  return result;
}

}  // namespace kiln
