#include "optim/train/progress.h"

#include <unistd.h>

namespace kiln {

ProgressBar::ProgressBar(std::string title, int64_t total_steps, bool quiet, std::FILE* out)
    : title_(std::move(title)),
      total_(total_steps),
      quiet_(quiet),
      tty_(isatty(fileno(out)) != 0),
      out_(out),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

namespace {
std::string clock_text(double seconds) {
  char buf[32];
  const int s = static_cast<int>(seconds + 0.5);
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%d:%02d", s / 60, s % 60);
  return buf;
}
}  // namespace

std::string ProgressBar::line(int64_t step, const std::string& metrics) const {
  constexpr int kWidth = 24;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * step / total_) : kWidth;
  std::string bar(filled, '=');
  if (filled < kWidth) bar += '>' + std::string(kWidth - filled - 1, '.');
  const double elapsed = elapsed_seconds();
  const double eta = step > 0 && step < total_ ? elapsed / step * (total_ - step) : 0.0;
  char head[160];
  std::snprintf(head, sizeof head, "%s [%s] %lld/%lld %s%s", title_.c_str(), bar.c_str(),
                static_cast<long long>(step), static_cast<long long>(total_),
                clock_text(elapsed).c_str(), step < total_ ? (" eta " + clock_text(eta)).c_str() : "");
  return std::string(head) + (metrics.empty() ? "" : "  " + metrics);
}

void ProgressBar::update(int64_t step, const std::string& metrics) {
  step_ = step;
  if (quiet_ || !tty_) return;
  const auto now = std::chrono::steady_clock::now();
  if (step < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  std::fprintf(out_, "\r%s\033[K", line(step, metrics).c_str());
  std::fflush(out_);
}

void ProgressBar::finish(const std::string& metrics) {
  if (quiet_) return;
  std::fprintf(out_, "%s%s\n", tty_ ? "\r\033[K" : "", line(step_, metrics).c_str());
  std::fflush(out_);
}

}  // namespace kiln
