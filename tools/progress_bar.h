#pragma once
// A one-line training progress bar: batch count, loss, images/s, ETA. On a terminal it
// redraws in place with \r (at most 10 times a second); otherwise (logs, pipes) it
// prints a plain line every few seconds so the log stays readable.
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace kiln::cli {

std::string format_duration(double seconds);  // "0:07", "12:34", "1:02:03"

class ProgressBar {
 public:
  ProgressBar(std::ostream& out, bool redraw);
  void start(std::string label, int64_t total_batches);
  void update(int64_t batches_done, double loss, int64_t images_done);
  void finish();  // the final state, ending the line

  // The text of one bar (no \r or newline).
  static std::string render(const std::string& label, int64_t done, int64_t total, double loss,
                            double images_per_s, double eta_s, int bar_width = 24);

 private:
  using Clock = std::chrono::steady_clock;
  void draw(bool force);
  std::ostream& out_;
  bool redraw_;
  std::string label_;
  int64_t total_ = 0, done_ = 0, images_ = 0;
  double loss_ = 0;
  Clock::time_point start_, last_draw_;
  size_t last_len_ = 0;
};

}  // namespace kiln::cli
