#include "apps/common/stop_on_signal.h"

#include <algorithm>

#include <signal.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>

#include "apps/common/app_common.h"

namespace kiln::app {

namespace {

volatile std::sig_atomic_t g_signal = 0;
// Messages made before any signal can arrive: the handler may only call write and _exit.
char g_first[256], g_again[256];
struct sigaction g_previous_int {}, g_previous_term {};
bool g_active = false;

extern "C" void on_stop_signal(int sig) {
  if (g_signal != 0) {
    const ssize_t ignored = ::write(2, g_again, std::strlen(g_again));
    (void)ignored;
    ::_exit(128 + sig);
  }
  g_signal = sig;
  const ssize_t ignored = ::write(2, g_first, std::strlen(g_first));
  (void)ignored;
}

const char* signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "a signal"; }

}  // namespace

StopOnSignal::StopOnSignal(const std::string& program) {
  if (g_active) throw std::logic_error("StopOnSignal: one is already active");
  g_active = true;
  g_signal = 0;
  std::snprintf(g_first, sizeof g_first,
                "\n%s: stopping after the current training step (a second signal stops at once)\n", program.c_str());
  std::snprintf(g_again, sizeof g_again, "\n%s: second signal: stopped at once\n", program.c_str());
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  // Neither handler interrupts the other: a second signal waits until the first is recorded.
  sigemptyset(&action.sa_mask);
  sigaddset(&action.sa_mask, SIGINT);
  sigaddset(&action.sa_mask, SIGTERM);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, &g_previous_int);
  sigaction(SIGTERM, &action, &g_previous_term);
}

StopOnSignal::~StopOnSignal() {
  sigaction(SIGINT, &g_previous_int, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
  g_active = false;
}

int StopOnSignal::signal() { return g_signal; }

History fit_stopping_on_signal(const std::string& program, Module& model, Optimizer& optimizer,
                               const Dataset& train, FitOptions options, const CommonFlags& flags, int64_t run) {
  if (train.size() == 0 || options.batch_size < 1) return fit(model, optimizer, train, options);  // fit says why
  Batcher batcher(train, options.batch_size, options.seed, options.shuffle);
  return fit_stopping_on_signal(program, model, optimizer, batcher, std::move(options), flags, run);
}

History fit_stopping_on_signal(const std::string& program, Module& model, Optimizer& optimizer,
                               BatchSource& train, FitOptions options, const CommonFlags& flags, int64_t run) {
  History history;
  if (flags.communicator != nullptr) return fit(model, optimizer, train, options);
  {
    const StopOnSignal stop(program);
    options.stop_requested = StopOnSignal::requested;
    history = fit(model, optimizer, train, options);
  }
  if (!history.stopped) return history;
  const int64_t steps_per_epoch = steps_in_epoch(options.steps_per_epoch, train.batches_per_epoch());
  const int sig = StopOnSignal::signal() != 0 ? StopOnSignal::signal() : SIGTERM;
  std::string message = "stopped by " + std::string(signal_name(sig)) + " in run " + std::to_string(run) +
                        " at epoch " + std::to_string(history.stopped_epoch) + ", after step " +
                        std::to_string(history.stopped_step) + " of " + std::to_string(steps_per_epoch) + "; ";
  if (flags.checkpoint_dir.empty())
    message += "nothing was saved (start with --checkpoint-dir DIR to be able to go on with --resume DIR)";
  else
    message += "checkpoint written to " + flags.checkpoint_path(run) + "; go on with: " + program + " --resume " +
               flags.checkpoint_dir;
  throw Stopped(sig, message);
}

}  // namespace kiln::app
