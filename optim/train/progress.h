// The one-line-per-epoch progress display of fit(): a bar, step count, elapsed time and ETA,
// running loss and metrics. On a terminal the line updates in place; in a log (not a tty) only
// the finished line of each epoch is written, so logs stay readable.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace kiln {

class ProgressBar {
 public:
  ProgressBar(std::string title, int64_t total_steps, bool quiet, std::FILE* out = stdout);
  // After step `step` (1-based) of total; `metrics` is the text after the timing ("loss 0.1234 ...").
  void update(int64_t step, const std::string& metrics);
  // Ends the line with the final figures (e.g. including validation).
  void finish(const std::string& metrics);
  double elapsed_seconds() const;

 private:
  std::string line(int64_t step, const std::string& metrics) const;

  std::string title_;
  int64_t total_;
  bool quiet_, tty_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int64_t step_ = 0;
};

}  // namespace kiln
