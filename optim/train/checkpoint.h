// Training checkpoints: everything a run needs to continue as if it had never stopped.
//
// A checkpoint is an HDF5 file:
//   attributes  kiln_format = "kiln-checkpoint", version = 1 (int), epochs_done (int),
//               history = JSON (the finished epochs' figures, doubles written exactly),
//               generators = JSON {name: [seed, counter]} (the model's dropout streams and
//               fit's augmentation stream), note = JSON text the caller stores with it (an
//               app's settings), in_epoch = JSON {steps_done, loss_sum, correct, seen,
//               seconds}: steps_done > 0 when training stopped inside epoch epochs_done + 1
//               (on a signal) after that many steps, with the epoch's running sums so far
//   datasets    /parameters/<name>, /buffers/<name> (the model's, as named_parameters() and
//               named_buffers() name them) and /optimizer/<name> (Optimizer::state()); with
//               steps_done > 0 and AUC on, /in_epoch/scores and /in_epoch/score_labels (the
//               epoch's positive-class scores and labels so far, float32)
// It is written under a temporary name, flushed to disk and renamed, so a kill at any moment
// leaves either the previous checkpoint or the new one, never a torn file.
//
// What makes a resumed run bit-identical to an uninterrupted one: the weights, moving
// statistics and optimizer slots are stored exactly (float32), the random streams continue
// from their saved counters, and fit draws each epoch's batch order from (seed, epoch) alone,
// so a run stopped inside an epoch goes on by skipping the batches it had done.
// Version 1 files (no in_epoch) still read.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/runtime/random.h"
#include "layers/module.h"
#include "optim/train/fit.h"
#include "optim/optimizer.h"

namespace kiln {

constexpr int kCheckpointVersion = 2;

// Where inside an epoch training stopped: steps_done of it finished (0: at an epoch's end),
// with the epoch's running figures so far (fit's per-epoch means continue from them).
struct InEpochProgress {
  int64_t steps_done = 0;
  double loss_sum = 0;
  int64_t correct = 0, seen = 0;
  double seconds = 0;
  std::vector<float> scores;          // with AUC on: positive-class scores so far
  std::vector<int32_t> score_labels;  // and their labels
};

struct GeneratorState {
  std::string name;
  uint64_t seed = 0, counter = 0;
};

struct Checkpoint {
  int64_t epochs_done = 0;
  History history;
  NamedTensors parameters, buffers, optimizer;
  std::vector<GeneratorState> generators;
  std::string note;  // whatever the writer stored ("" when nothing)
  InEpochProgress in_epoch;
};

// Generators are named as in Module::named_generators(), plus any the caller adds (fit adds
// "fit.augmentation").
using NamedGenerators = std::vector<std::pair<std::string, Generator*>>;

// Writes the state atomically (see above). Throws FileError naming path on failure; an
// existing checkpoint at path is then left as it was.
void save_checkpoint(const std::string& path, Module& model, const Optimizer& optimizer,
                     const NamedGenerators& extra_generators, int64_t epochs_done,
                     const History& history, const std::string& note = "",
                     const InEpochProgress& in_epoch = {});

// Reads a checkpoint file; throws FileError naming the file and what is wrong (not a
// checkpoint, another version, damaged, a malformed attribute).
Checkpoint read_checkpoint(const std::string& path);

// Puts a checkpoint's state into model, optimizer and the generators. Everything is checked
// first (every name present, shapes equal, nothing left over), so a checkpoint of another
// model changes nothing and throws FileError naming path and the first mismatch.
void restore_checkpoint(const Checkpoint& c, const std::string& path, Module& model,
                        Optimizer& optimizer, const NamedGenerators& extra_generators);

}  // namespace kiln
