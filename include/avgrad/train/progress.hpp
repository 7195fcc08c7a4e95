// A progress bar for long loops: steps done, ETA, rate and the caller's live
// metrics on one line. On a terminal it redraws in place; in a log (CI, pipes)
// it prints a plain line every ~10% so logs stay short and readable.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace avgrad {

class ProgressBar {
 public:
  /// `total` steps of `unit` (e.g. "step"); `samples_per_step` feeds the samples/s figure.
  ProgressBar(std::string label, std::int64_t total, std::int64_t samples_per_step = 0, std::FILE* out = stderr)
      : label_(std::move(label)),
        total_(total > 0 ? total : 1),
        samples_per_step_(samples_per_step),
        out_(out),
        tty_(isatty(fileno(out)) != 0),
        start_(Clock::now()) {}

  /// Marks `done` steps complete and shows `metrics` (name, value) beside the bar.
  void update(std::int64_t done, const std::vector<std::pair<std::string, double>>& metrics = {}) {
    done_ = done;
    const double elapsed = seconds();
    const double frac = static_cast<double>(done) / static_cast<double>(total_);
    const bool last = done >= total_;
    if (!tty_) {
      int decile = static_cast<int>(frac * 10);
      if (decile <= last_decile_ && !last) return;
      last_decile_ = decile;
    }
    std::string line = label_ + " [";
    const int width = 24, filled = static_cast<int>(frac * width);
    for (int i = 0; i < width; ++i) line += i < filled ? '#' : '.';
    char buf[160];
    const double eta = done > 0 ? elapsed / static_cast<double>(done) * static_cast<double>(total_ - done) : 0.0;
    std::snprintf(buf, sizeof buf, "] %lld/%lld  %s %s", static_cast<long long>(done), static_cast<long long>(total_),
                  last ? "took" : "eta", format_duration(last ? elapsed : eta).c_str());
    line += buf;
    for (const auto& [name, value] : metrics) {
      std::snprintf(buf, sizeof buf, "  %s %.4g", name.c_str(), value);
      line += buf;
    }
    if (samples_per_step_ > 0 && elapsed > 0) {
      std::snprintf(buf, sizeof buf, "  %.0f samples/s", static_cast<double>(done * samples_per_step_) / elapsed);
      line += buf;
    }
    std::fprintf(out_, tty_ ? "\r%s\033[K%s" : "%s%s", line.c_str(), (last || !tty_) ? "\n" : "");
    std::fflush(out_);
  }

  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  static std::string format_duration(double s) {
    char buf[32];
    if (s < 60)
      std::snprintf(buf, sizeof buf, "%.1fs", s);
    else if (s < 3600)
      std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
    else
      std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, static_cast<int>(s) % 3600 / 60);
    return buf;
  }

 private:
  using Clock = std::chrono::steady_clock;
  std::string label_;
  std::int64_t total_, done_ = 0, samples_per_step_;
  std::FILE* out_;
  bool tty_;
  int last_decile_ = -1;
  Clock::time_point start_;
};

}  // namespace avgrad
