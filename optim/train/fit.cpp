#include "optim/train/fit.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <stdexcept>

#include "core/autograd.h"
#include "core/io/write_atomically.h"
#include "core/ops/ops.h"
#include "core/runtime/random.h"
#include "data/augment/augment.h"
#include "layers/io/model_file.h"
#include "optim/inspect/confusion.h"
#include "optim/report/plot_history.h"
#include "optim/report/tensorboard.h"
#include "optim/train/checkpoint.h"
#include "optim/train/distributed/data_parallel.h"
#include "optim/train/metrics.h"
#include "optim/train/progress.h"

namespace kiln {
namespace {

// Positive-class scores (column 1) of a [B,2] output, appended to `out`.
void append_positive_scores(const Tensor& probs, std::vector<float>& out) {
  if (probs.dim() != 2 || probs.size(1) != 2) return;
  for (int64_t i = 0; i < probs.size(0); ++i) out.push_back(probs.data()[i * 2 + 1]);
}

std::string figures(double loss, double acc, bool has_auc, double auc, const char* prefix = "") {
  char buf[128];
  if (has_auc)
    std::snprintf(buf, sizeof buf, "%sloss %.4f  %saccuracy %.4f  %sauc %.4f", prefix, loss, prefix,
                  acc, prefix, auc);
  else
    std::snprintf(buf, sizeof buf, "%sloss %.4f  %saccuracy %.4f", prefix, loss, prefix, acc);
  return buf;
}

// What every rank must agree on before data-parallel training: the data (size, shape and a
// sample of its values) and the settings that decide the batches.
uint64_t data_and_settings_hash(const BatchSource& train, const FitOptions& o) {
  uint64_t h = train.fingerprint();
  for (const int64_t v : {o.epochs, o.batch_size, o.validation_freq, static_cast<int64_t>(o.seed),
                          static_cast<int64_t>(o.shuffle), static_cast<int64_t>(o.auc),
                          static_cast<int64_t>(o.augmentation != nullptr), static_cast<int64_t>(o.resume),
                          static_cast<int64_t>(o.sync_batch_norm), o.steps_per_epoch})
    h = mix64(h ^ static_cast<uint64_t>(v));
  return h;
}

// The epoch's figures (and at validation epochs the curves so far and the validation set's
// confusion matrix) as TensorBoard events.
void log_epoch(TensorBoardWriter& tb, const History& history, const EpochLog& log, float learning_rate, Module& model,
               const Dataset* validation, int64_t batch_size) {
  const int64_t step = log.epoch;
  tb.scalar("loss", log.loss, step);
  tb.scalar("accuracy", log.accuracy, step);
  if (history.has_auc) tb.scalar("auc", log.auc, step);
  tb.scalar("learning_rate", learning_rate, step);
  if (log.validated) {
    tb.scalar("val_loss", log.val_loss, step);
    tb.scalar("val_accuracy", log.val_accuracy, step);
    if (history.has_auc) tb.scalar("val_auc", log.val_auc, step);
    tb.image("curves", render_history(history), step);
    if (validation && validation->size() > 0) {
      const ConfusionMatrix cm = confusion_matrix(predict(model, validation->x, batch_size), validation->labels,
                                                  std::max<int64_t>(validation->num_classes, 0));
      tb.image("confusion", render_confusion(cm, {}, "validation, epoch " + std::to_string(step)), step);
    }
  }
  tb.flush();
}

}  // namespace

namespace {

// Restores the checkpoint at o.checkpoint_path when resuming; the epochs it holds (and in
// `in_epoch`, how far it got into the next one).
int64_t resume_from_checkpoint(const FitOptions& o, Module& model, Optimizer& optimizer,
                               const NamedGenerators& generators, History& history, bool quiet,
                               int64_t steps_per_epoch, InEpochProgress& in_epoch) {
  if (!o.resume || o.checkpoint_path.empty() || !std::filesystem::exists(o.checkpoint_path)) return 0;
  const Checkpoint c = read_checkpoint(o.checkpoint_path);
  if (c.epochs_done > o.epochs)
    throw FileError(o.checkpoint_path, "the checkpoint is after epoch " + std::to_string(c.epochs_done) +
                                           " but this run has only " + std::to_string(o.epochs) + " epochs");
  if (c.history.has_auc != o.auc)
    throw FileError(o.checkpoint_path, "the checkpoint's history was recorded with a different AUC setting");
  if (c.in_epoch.steps_done > 0 && (c.epochs_done >= o.epochs || c.in_epoch.steps_done > steps_per_epoch))
    throw FileError(o.checkpoint_path, "the checkpoint stopped after step " + std::to_string(c.in_epoch.steps_done) +
                                           " of epoch " + std::to_string(c.epochs_done + 1) + ", which this run (" +
                                           std::to_string(o.epochs) + " epochs of " + std::to_string(steps_per_epoch) +
                                           " steps) does not have");
  restore_checkpoint(c, o.checkpoint_path, model, optimizer, generators);
  history = c.history;
  in_epoch = c.in_epoch;
  if (!quiet) {
    if (in_epoch.steps_done > 0)
      std::printf("resumed from %s at epoch %lld of %lld, after step %lld of %lld\n", o.checkpoint_path.c_str(),
                  static_cast<long long>(c.epochs_done + 1), static_cast<long long>(o.epochs),
                  static_cast<long long>(in_epoch.steps_done), static_cast<long long>(steps_per_epoch));
    else
      std::printf("resumed from %s after epoch %lld of %lld\n", o.checkpoint_path.c_str(),
                  static_cast<long long>(c.epochs_done), static_cast<long long>(o.epochs));
  }
  return c.epochs_done;
}

void check_fit_options(const FitOptions& o, int64_t rows) {
  check_arg(o.epochs >= 0 && o.batch_size >= 1 && o.validation_freq >= 1 && o.steps_per_epoch >= 0, "fit",
            "epochs " + std::to_string(o.epochs) + ", batch_size " + std::to_string(o.batch_size) +
                ", validation_freq " + std::to_string(o.validation_freq) + ", steps_per_epoch " +
                std::to_string(o.steps_per_epoch) + " are not all valid");
  check_arg(rows > 0, "fit", "the training set is empty");
}

void check_fit_arguments(const BatchSource& train, const FitOptions& o, const DataParallel* parallel) {
  check_fit_options(o, train.rows());
  check_arg(train.batch_size() == o.batch_size, "fit",
            "the batch source hands out batches of " + std::to_string(train.batch_size()) +
                " rows but batch_size is " + std::to_string(o.batch_size));
  if (parallel && parallel->sync_batch_norm()) {
    // Synchronised batch norm needs rows on every rank in every batch (a rank without rows
    // would skip the layers' allreduces): the full batches and the last, shorter one.
    const int ranks = parallel->ranks();
    const int64_t last = train.rows() % o.batch_size;
    check_arg(std::min(o.batch_size, train.rows()) >= ranks && (last == 0 || last >= ranks), "fit",
              "sync_batch_norm needs at least one row per rank (" + std::to_string(ranks) +
                  ") in every batch, but batches of " + std::to_string(o.batch_size) + " over " +
                  std::to_string(train.rows()) + " rows leave " +
                  std::to_string(last == 0 ? std::min(o.batch_size, train.rows()) : last) + " in one");
  }
}

}  // namespace

History fit(Module& model, Optimizer& optimizer, const Dataset& train, const FitOptions& o) {
  check_fit_options(o, train.size());
  Batcher batcher(train, o.batch_size, o.seed, o.shuffle);
  return fit(model, optimizer, batcher, o);
}

History fit(Module& model, Optimizer& optimizer, BatchSource& batcher, const FitOptions& o) {
  Communicator* comm = o.communicator != nullptr && o.communicator->size() > 1 ? o.communicator : nullptr;
  std::optional<DataParallel> parallel;
  if (comm) parallel.emplace(*comm, o.sync_batch_norm);
  check_fit_arguments(batcher, o, parallel ? &*parallel : nullptr);
  const int rank = comm ? comm->rank() : 0;
  const bool quiet = o.quiet || rank != 0;
  History history;
  history.has_auc = o.auc;
  Generator augment_rng(mix64(o.seed ^ 0xa06a06a06ULL));
  const int64_t steps = steps_in_epoch(o.steps_per_epoch, batcher.batches_per_epoch());
  const NamedGenerators fit_generators = {{"fit.augmentation", &augment_rng}};
  InEpochProgress resumed;
  const int64_t first_epoch =
      resume_from_checkpoint(o, model, optimizer, fit_generators, history, quiet, steps, resumed);
  const bool may_stop = static_cast<bool>(o.stop_requested) && !parallel;
  const bool validates = o.validation != nullptr || static_cast<bool>(o.validate);
  if (parallel) parallel->start(model, data_and_settings_hash(batcher, o), first_epoch);
  TrainStepOptions step_options{.loss = o.loss, .parallel = parallel ? &*parallel : nullptr};
  std::optional<TensorBoardWriter> tensorboard;
  if (!o.tensorboard_dir.empty() && rank == 0 && first_epoch < o.epochs) tensorboard.emplace(o.tensorboard_dir);

  for (int64_t epoch = first_epoch; epoch < o.epochs; ++epoch) {
    if (o.on_epoch_begin) o.on_epoch_begin(epoch, optimizer);
    model.train();
    ProgressBar bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(o.epochs), steps,
                    quiet);
    batcher.start_epoch(epoch);
    double loss_sum = 0, earlier_seconds = 0;
    int64_t correct = 0, seen = 0, step = 0;
    std::vector<float> scores;
    std::vector<int32_t> score_labels;
    if (epoch == first_epoch && resumed.steps_done > 0) {
      // The epoch's batch order depends on (seed, epoch) alone: skip the batches done before
      // the stop and carry on with its running figures.
      while (step < resumed.steps_done && batcher.next()) ++step;
      loss_sum = resumed.loss_sum;
      correct = resumed.correct;
      seen = resumed.seen;
      earlier_seconds = resumed.seconds;
      scores = std::move(resumed.scores);
      score_labels = std::move(resumed.score_labels);
      resumed = {};
    }
    std::optional<DataParallel::BatchNormScope> synchronised;
    if (parallel) synchronised.emplace(parallel->synchronise_batch_norm(model));
    while (step < steps && batcher.next()) {
      // Every rank augments the whole global batch with the same stream (so the draws do not
      // depend on the number of ranks); train_step keeps this rank's shard of rows.
      Batch b = batcher.batch();
      if (o.augmentation) b.x = (*o.augmentation)(b.x, augment_rng, true);
      const StepResult r = train_step(model, optimizer, b, step_options);
      if (!std::isfinite(r.loss))
        throw std::runtime_error("fit: the loss became " + std::to_string(r.loss) + " at epoch " +
                                 std::to_string(epoch + 1) + ", step " + std::to_string(step + 1) +
                                 " (try a lower learning rate)");
      if (o.auc && r.output.defined()) {
        NoGradGuard no_grad;
        append_positive_scores(o.loss && model.ends_in_softmax() ? r.output : softmax(r.output), scores);
        const DataParallel::Shard mine = parallel ? parallel->shard(b.size()) : DataParallel::Shard{0, b.size()};
        score_labels.insert(score_labels.end(), b.labels.begin() + mine.first, b.labels.begin() + mine.last);
      }
      loss_sum += r.loss_sum;
      correct += r.correct;
      seen += r.rows;
      ++step;
      bar.update(step, figures(loss_sum / seen, static_cast<double>(correct) / seen, false, 0));
      if (o.on_batch_end) o.on_batch_end(epoch, step, r);
      if (may_stop && o.stop_requested()) {
        bar.finish(figures(loss_sum / seen, static_cast<double>(correct) / seen, false, 0) + "  (stopped)");
        if (!o.checkpoint_path.empty())
          save_checkpoint(o.checkpoint_path, model, optimizer, fit_generators, epoch, history, o.checkpoint_note,
                          {.steps_done = step, .loss_sum = loss_sum, .correct = correct, .seen = seen,
                           .seconds = earlier_seconds + bar.elapsed_seconds(), .scores = scores,
                           .score_labels = score_labels});
        history.stopped = true;
        history.stopped_epoch = epoch + 1;
        history.stopped_step = step;
        model.train();
        return history;
      }
    }
    synchronised.reset();
    if (parallel && o.auc) parallel->gather_scores(scores, score_labels);

    EpochLog log;
    log.epoch = epoch + 1;
    log.loss = loss_sum / seen;
    log.accuracy = static_cast<double>(correct) / seen;
    if (o.auc && rank == 0) log.auc = roc_auc(scores, score_labels);
    std::string text = figures(log.loss, log.accuracy, o.auc, log.auc);
    if (validates && rank == 0 && (epoch + 1) % o.validation_freq == 0) {
      const Evaluation v = o.validate ? o.validate(epoch + 1)
                                      : evaluate(model, *o.validation, std::max<int64_t>(o.batch_size, 256), o.auc);
      log.validated = true;
      log.val_loss = v.loss;
      log.val_accuracy = v.accuracy;
      log.val_auc = v.auc;
      text += "  " + figures(v.loss, v.accuracy, o.auc, v.auc, "val_");
    }
    log.seconds = earlier_seconds + bar.elapsed_seconds();
    bar.finish(text);
    history.epochs.push_back(log);
    if (tensorboard) log_epoch(*tensorboard, history, log, optimizer.learning_rate(), model, o.validation, o.batch_size);
    if (o.on_epoch_end) o.on_epoch_end(log);
    const bool last = epoch + 1 == o.epochs;
    if (rank == 0 && !o.checkpoint_path.empty() && (last || (o.checkpoint_every > 0 && (epoch + 1) % o.checkpoint_every == 0)))
      save_checkpoint(o.checkpoint_path, model, optimizer, fit_generators, epoch + 1, history, o.checkpoint_note);
  }
  // Every rank returns once rank 0's checkpoint and validation are done.
  if (parallel) parallel->barrier();
  model.train();
  return history;
}

Evaluation evaluate(Module& model, const Dataset& data, int64_t batch_size, bool auc) {
  check_arg(data.size() > 0, "evaluate", "the dataset is empty");
  Batcher batcher(data, batch_size, 0, /*shuffle=*/false);
  return evaluate(model, batcher, auc);
}

Evaluation evaluate(Module& model, BatchSource& batcher, bool auc) {
  check_arg(batcher.rows() > 0 && batcher.num_classes() > 0, "evaluate",
            "the data is empty or has no labels (" + std::to_string(batcher.rows()) + " rows)");
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  batcher.start_epoch(0);
  double loss_sum = 0;
  int64_t correct = 0;
  std::vector<float> scores;
  std::vector<int32_t> labels;
  while (batcher.next()) {
    const Batch& b = batcher.batch();
    // A model without a final softmax outputs logits (what the default training loss takes).
    const Tensor out = model.forward(b.x);
    const Tensor probs = model.ends_in_softmax() ? out : softmax(out);
    loss_sum += categorical_cross_entropy(probs, b.y_onehot) * b.size();
    correct += static_cast<int64_t>(std::llround(accuracy(probs, b.labels) * b.size()));
    if (auc) {
      append_positive_scores(probs, scores);
      labels.insert(labels.end(), b.labels.begin(), b.labels.end());
    }
  }
  model.train(was_training);
  Evaluation e;
  e.n = batcher.rows();
  e.loss = loss_sum / e.n;
  e.accuracy = static_cast<double>(correct) / e.n;
  if (auc) e.auc = roc_auc(scores, labels);
  return e;
}

Tensor predict(Module& model, const Tensor& x, int64_t batch_size) {
  check_arg(x.dim() >= 1 && batch_size >= 1, "predict",
            "input " + shape_str(x.shape()) + " needs a batch axis; batch_size " +
                std::to_string(batch_size));
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  Tensor out;
  const int64_t n = x.size(0);
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    const int64_t end = std::min(n, begin + batch_size);
    const Tensor y = model.forward(x.slice(begin, end));
    if (!out.defined()) {
      Shape s = y.shape();
      s[0] = n;
      out = Tensor::empty(s);
    }
    const int64_t row = y.numel() / (end - begin);
    std::memcpy(out.data() + begin * row, y.data(), sizeof(float) * y.numel());
  }
  model.train(was_training);
  return out;
}

Tensor predict(Module& model, BatchSource& data) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  Tensor out;
  data.start_epoch(0);
  int64_t done = 0;
  while (data.next()) {
    const Batch& b = data.batch();
    const Tensor y = model.forward(b.x);
    if (!out.defined()) {
      Shape s = y.shape();
      s[0] = data.rows();
      out = Tensor::empty(s);
    }
    const int64_t row = y.numel() / b.size();
    for (int64_t i = 0; i < b.size(); ++i)  // row i of the batch is row indices[i] of the data
      std::memcpy(out.data() + b.indices[i] * row, y.data() + i * row, sizeof(float) * row);
    done += b.size();
  }
  check_arg(done == data.rows(), "predict", "the batch source gave " + std::to_string(done) + " of its " +
                                                std::to_string(data.rows()) + " rows");
  model.train(was_training);
  return out;
}

void History::write_csv(const std::string& path) const {
  write_stream_atomically(path, [&](std::ostream& f) {
    f << "epoch,loss,accuracy" << (has_auc ? ",auc" : "") << ",val_loss,val_accuracy"
      << (has_auc ? ",val_auc" : "") << ",seconds\n";
    char buf[64];
    auto num = [&](double v) {
      std::snprintf(buf, sizeof buf, "%.6g", v);
      return std::string(buf);
    };
    for (const EpochLog& e : epochs) {
      f << e.epoch << "," << num(e.loss) << "," << num(e.accuracy);
      if (has_auc) f << "," << num(e.auc);
      f << "," << (e.validated ? num(e.val_loss) : "") << "," << (e.validated ? num(e.val_accuracy) : "");
      if (has_auc) f << "," << (e.validated ? num(e.val_auc) : "");
      f << "," << num(e.seconds) << "\n";
    }
  });
}

}  // namespace kiln
