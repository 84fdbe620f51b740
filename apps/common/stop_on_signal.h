// SIGINT (Ctrl-C) and SIGTERM (what `kill`, container runtimes and job schedulers send) while
// an app trains. The first signal asks fit() to stop after the step it is in (FitOptions::
// stop_requested); fit writes a checkpoint of that moment when checkpointing is on, and the
// app ends with one line saying where training stopped and how to go on, exit status
// 128 + the signal (130 for SIGINT, 143 for SIGTERM), as a shell reports a killed program.
// A second signal ends the process at once with the same status: whatever files it had
// finished are whole (every output is written under a temporary name and renamed).
#pragma once

#include <stdexcept>
#include <string>

#include "optim/train/fit.h"

namespace kiln::app {

struct CommonFlags;

// While alive, SIGINT and SIGTERM are handled as above; the handlers in place before are put
// back when it ends. One at a time per process.
class StopOnSignal {
 public:
  explicit StopOnSignal(const std::string& program);
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;

  // The signal that asked to stop (SIGINT or SIGTERM), 0 while none has.
  static int signal();
  // For FitOptions::stop_requested.
  static bool requested() { return signal() != 0; }
};

// What an app throws when fit() returned a history that stopped on a signal; run_main prints
// what() as the last line and exits with status().
class Stopped : public std::runtime_error {
 public:
  Stopped(int signal, const std::string& message) : std::runtime_error(message), signal_(signal) {}
  int status() const { return 128 + signal_; }

 private:
  int signal_;
};

// fit() under a StopOnSignal (one process only: under MPI the signals keep their default
// action), then, when a signal stopped it, throws Stopped: "stopped by SIGTERM in run R at
// epoch E, after step S of N" and either where the checkpoint is and the command that goes
// on (`<program> --resume DIR`), or that nothing was saved without --checkpoint-dir.
History fit_stopping_on_signal(const std::string& program, Module& model, Optimizer& optimizer,
                               const Dataset& train, FitOptions options, const CommonFlags& flags, int64_t run);
// The same over a batch source (e.g. a StreamingDataset).
History fit_stopping_on_signal(const std::string& program, Module& model, Optimizer& optimizer,
                               BatchSource& train, FitOptions options, const CommonFlags& flags, int64_t run);

}  // namespace kiln::app
