#include "optim/train/bn_recalibrate.h"

#include <vector>

#include "core/autograd.h"
#include "layers/batch_norm2d.h"

namespace kiln {
namespace {

void find_batch_norms(Module& m, std::vector<BatchNorm2d*>& out) {
  if (auto* bn = dynamic_cast<BatchNorm2d*>(&m)) out.push_back(bn);
  for (auto& [name, child] : m.named_children()) find_batch_norms(*child, out);
}

// 1 - momentum of a layer, read off one training-mode pass over a constant input: with the
// moving mean at 0 and a batch mean of 1 the update leaves exactly (1 - momentum) behind.
float measure_update_weight(BatchNorm2d& bn) {
  const int64_t channels = bn.moving_mean().numel();
  const Tensor saved_mean = bn.moving_mean().clone(), saved_var = bn.moving_variance().clone();
  bn.moving_mean().fill_(0.0f);
  bn.forward(Tensor::ones({2, channels}));
  const float weight = bn.moving_mean().data()[0];
  bn.moving_mean().copy_(saved_mean);
  bn.moving_variance().copy_(saved_var);
  return weight;
}

}  // namespace

BatchNormRecalibration recalibrate_batch_norm(Module& model, const Dataset& data, int64_t batches,
                                              int64_t batch_size, uint64_t seed) {
  check_arg(batches >= 1 && batch_size >= 1, "recalibrate_batch_norm",
            "batches " + std::to_string(batches) + " and batch_size " + std::to_string(batch_size) +
                " must both be >= 1");
  check_arg(data.x.defined() && data.x.dim() >= 1 && data.x.size(0) > 0, "recalibrate_batch_norm",
            "the dataset has no images");
  Batcher batcher(data, batch_size, seed, /*shuffle=*/true);
  return recalibrate_batch_norm(model, batcher, batches, 0);
}

BatchNormRecalibration recalibrate_batch_norm(Module& model, BatchSource& source, int64_t batches,
                                              int64_t epoch) {
  check_arg(batches >= 1, "recalibrate_batch_norm",
            "batches " + std::to_string(batches) + " must be >= 1");
  check_arg(source.rows() > 0, "recalibrate_batch_norm", "the batch source has no images");
  BatchNormRecalibration report;
  std::vector<BatchNorm2d*> layers;
  find_batch_norms(model, layers);
  report.layers = static_cast<int64_t>(layers.size());
  if (layers.empty()) return report;

  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  for (BatchNorm2d* bn : layers) bn->train(true);

  std::vector<float> weight(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    weight[l] = measure_update_weight(*layers[l]);
    if (!(weight[l] > 0.0f)) {
      model.train(was_training);
      check_arg(false, "recalibrate_batch_norm",
                "a BatchNormalization layer has momentum 1: its moving statistics never change");
    }
  }

  // Per layer and channel: sums over batches of n_b * mean_b and n_b * (var_b + mean_b^2),
  // n_b = pixels of batch b per channel, from which the pooled mean and variance follow.
  std::vector<std::vector<double>> sum_mean(layers.size()), sum_square(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    sum_mean[l].assign(static_cast<size_t>(layers[l]->moving_mean().numel()), 0.0);
    sum_square[l].assign(sum_mean[l].size(), 0.0);
  }
  source.start_epoch(epoch);
  while (report.batches < batches && source.next()) {
    const Batch& b = source.batch();
    for (BatchNorm2d* bn : layers) {
      bn->moving_mean().fill_(0.0f);
      bn->moving_variance().fill_(0.0f);
    }
    model.forward(b.x);
    // Each batch weighs in proportion to its images: at a given layer every image has the
    // same number of pixels, so this pools over pixels exactly.
    const double n_b = static_cast<double>(b.size());
    for (size_t l = 0; l < layers.size(); ++l) {
      const float* m = layers[l]->moving_mean().data();
      const float* v = layers[l]->moving_variance().data();
      for (size_t c = 0; c < sum_mean[l].size(); ++c) {
        const double mean = m[c] / static_cast<double>(weight[l]);
        const double var = v[c] / static_cast<double>(weight[l]);
        sum_mean[l][c] += n_b * mean;
        sum_square[l][c] += n_b * (var + mean * mean);
      }
    }
    ++report.batches;
    report.images += b.size();
  }

  for (size_t l = 0; l < layers.size(); ++l) {
    float* m = layers[l]->moving_mean().data();
    float* v = layers[l]->moving_variance().data();
    for (size_t c = 0; c < sum_mean[l].size(); ++c) {
      const double mean = sum_mean[l][c] / static_cast<double>(report.images);
      const double var = sum_square[l][c] / static_cast<double>(report.images) - mean * mean;
      m[c] = static_cast<float>(mean);
      v[c] = static_cast<float>(var > 0.0 ? var : 0.0);
    }
  }
  model.train(was_training);
  return report;
}

}  // namespace kiln
