// ProgressBar: see progress_bar.h.
#include "tools/progress_bar.h"

#include <cmath>
#include <cstdio>
#include <iomanip>
#include <sstream>

namespace kiln::cli {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = int64_t(std::llround(seconds));
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buf;
}

std::string ProgressBar::render(const std::string& label, int64_t done, int64_t total, double loss,
                                double images_per_s, double eta_s, int bar_width) {
  std::ostringstream os;
  const double frac = total > 0 ? double(done) / double(total) : 1.0;
  const int filled = int(frac * bar_width);
  os << label << " [";
  for (int i = 0; i < bar_width; ++i) os << (i < filled ? '=' : (i == filled ? '>' : ' '));
  const int digits = int(std::to_string(total).size());
  os << "] " << std::setw(digits) << done << '/' << total << "  loss " << std::fixed << std::setprecision(4) << loss
     << "  " << std::setprecision(0) << images_per_s << " img/s  ETA " << format_duration(eta_s);
  return os.str();
}

ProgressBar::ProgressBar(std::ostream& out, bool redraw) : out_(out), redraw_(redraw) {}

void ProgressBar::start(std::string label, int64_t total_batches) {
  label_ = std::move(label);
  total_ = total_batches;
  done_ = images_ = 0;
  loss_ = 0;
  start_ = last_draw_ = Clock::now();
  last_len_ = 0;
}

void ProgressBar::update(int64_t batches_done, double loss, int64_t images_done) {
  done_ = batches_done;
  loss_ = loss;
  images_ = images_done;
  draw(false);
}

void ProgressBar::finish() {
  draw(true);
  if (redraw_) out_ << '\n';
  out_.flush();
}

void ProgressBar::draw(bool force) {
  const auto now = Clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (!force && since_draw < (redraw_ ? 0.1 : 10.0)) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double rate = elapsed > 0 ? double(images_) / elapsed : 0.0;
  const double eta = done_ > 0 ? elapsed / double(done_) * double(total_ - done_) : NAN;
  const std::string line = render(label_, done_, total_, loss_, rate, eta);
  if (redraw_) {
    out_ << '\r' << line;
    if (line.size() < last_len_) out_ << std::string(last_len_ - line.size(), ' ');  // wipe a longer old line
    last_len_ = line.size();
  } else {
    out_ << line << '\n';
  }
  out_.flush();
}

}  // namespace kiln::cli
