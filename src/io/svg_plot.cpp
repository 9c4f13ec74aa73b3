// SVG line plots: data coordinates map linearly onto each panel's plot area, y growing
// upwards; axis ranges are padded out to round tick values.
#include "kiln/io/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>

#include "kiln/error.h"

namespace kiln {

namespace {

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string num(double v) {
  std::ostringstream os;
  os << std::setprecision(6) << v;
  return os.str();
}

std::string px(double v) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << v;
  return os.str();
}

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  void finish() {
    if (lo > hi) { lo = 0; hi = 1; }
    if (lo == hi) { lo -= 0.5; hi += 0.5; }
  }
};

void render_panel(std::ostringstream& os, const PlotPanel& p, double ox, int width, int height) {
  const double left = ox + 64, right = ox + width - 16, top = 36, bottom = height - 48.0;
  Range xr, yr;
  for (const auto& s : p.series) {
    KILN_CHECK(s.x.size() == s.y.size(), "svg_plot", "series '", s.label, "' has ", s.x.size(), " x values and ",
               s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) { xr.add(s.x[i]); yr.add(s.y[i]); }
  }
  xr.finish();
  yr.finish();
  const std::vector<double> xt = nice_ticks(xr.lo, xr.hi), yt = nice_ticks(yr.lo, yr.hi);
  xr.lo = std::min(xr.lo, xt.front()); xr.hi = std::max(xr.hi, xt.back());
  yr.lo = std::min(yr.lo, yt.front()); yr.hi = std::max(yr.hi, yt.back());
  auto X = [&](double v) { return left + (v - xr.lo) / (xr.hi - xr.lo) * (right - left); };
  auto Y = [&](double v) { return bottom - (v - yr.lo) / (yr.hi - yr.lo) * (bottom - top); };

  os << "<g class=\"panel\">\n";
  os << "<text x=\"" << px((left + right) / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
     << escape(p.title) << "</text>\n";
  for (double t : yt) {
    os << "<line x1=\"" << px(left) << "\" y1=\"" << px(Y(t)) << "\" x2=\"" << px(right) << "\" y2=\"" << px(Y(t))
       << "\" stroke=\"#e0e0e0\"/>\n";
    os << "<text x=\"" << px(left - 6) << "\" y=\"" << px(Y(t) + 4) << "\" text-anchor=\"end\" font-size=\"11\">"
       << num(t) << "</text>\n";
  }
  for (double t : xt) {
    os << "<line x1=\"" << px(X(t)) << "\" y1=\"" << px(bottom) << "\" x2=\"" << px(X(t)) << "\" y2=\""
       << px(bottom + 5) << "\" stroke=\"black\"/>\n";
    os << "<text x=\"" << px(X(t)) << "\" y=\"" << px(bottom + 18) << "\" text-anchor=\"middle\" font-size=\"11\">"
       << num(t) << "</text>\n";
  }
  os << "<rect x=\"" << px(left) << "\" y=\"" << px(top) << "\" width=\"" << px(right - left) << "\" height=\""
     << px(bottom - top) << "\" fill=\"none\" stroke=\"black\"/>\n";
  os << "<text x=\"" << px((left + right) / 2) << "\" y=\"" << px(height - 12.0)
     << "\" text-anchor=\"middle\" font-size=\"12\">" << escape(p.x_label) << "</text>\n";
  os << "<text transform=\"translate(" << px(ox + 16) << "," << px((top + bottom) / 2)
     << ") rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">" << escape(p.y_label) << "</text>\n";
  for (size_t k = 0; k < p.series.size(); ++k) {
    const PlotSeries& s = p.series[k];
    const std::string color = s.color.empty() ? kPalette[k % std::size(kPalette)] : s.color;
    os << "<polyline class=\"series\" fill=\"none\" stroke=\"" << escape(color) << "\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) os << px(X(s.x[i])) << ',' << px(Y(s.y[i])) << ' ';
    os << "\"/>\n";
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
        os << "<circle cx=\"" << px(X(s.x[i])) << "\" cy=\"" << px(Y(s.y[i])) << "\" r=\"3\" fill=\"" << escape(color)
           << "\"/>\n";
    const double ly = top + 16 + 16.0 * double(k);
    os << "<line x1=\"" << px(right - 165) << "\" y1=\"" << px(ly - 4) << "\" x2=\"" << px(right - 145) << "\" y2=\""
       << px(ly - 4) << "\" stroke=\"" << escape(color) << "\" stroke-width=\"2\"/>\n";
    os << "<text x=\"" << px(right - 140) << "\" y=\"" << px(ly) << "\" font-size=\"11\">" << escape(s.label)
       << "</text>\n";
  }
  os << "</g>\n";
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) { step = m * mag; break; }
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double t = first; t <= hi + step * (1 - 1e-9) && ticks.size() < 100; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
    if (t >= hi - step * 1e-9) break;
  }
  return ticks;
}

std::string render_svg_plot(const std::vector<PlotPanel>& panels, int width, int height) {
  KILN_CHECK(!panels.empty() && width >= 160 && height >= 120, "svg_plot", "need at least one panel of at least 160x120");
  std::ostringstream os;
  const int total = width * int(panels.size());
  os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
     << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << total << "\" height=\"" << height
     << "\" viewBox=\"0 0 " << total << ' ' << height << "\" font-family=\"sans-serif\">\n"
     << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  for (size_t i = 0; i < panels.size(); ++i) render_panel(os, panels[i], double(i) * width, width, height);
  os << "</svg>\n";
  return os.str();
}

void write_svg_plot(const std::string& path, const std::vector<PlotPanel>& panels, int width, int height) {
  const std::string svg = render_svg_plot(panels, width, height);
  std::ofstream out(path, std::ios::trunc);
  KILN_CHECK(out.good(), "svg_plot", path, ": cannot open file for writing");
  out << svg;
  out.close();
  KILN_CHECK(out.good(), "svg_plot", path, ": write failed");
}

}  // namespace kiln
