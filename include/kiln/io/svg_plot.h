#pragma once
// Line plots as standalone SVG files (no plotting dependency): panels side by side,
// each with axes, ticks, a title and a legend; used for training curves.
#include <string>
#include <vector>

namespace kiln {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;  // equal lengths; non-finite points are skipped
  std::string color;         // any SVG colour; empty picks from a palette
};

struct PlotPanel {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
};

// The SVG document; each panel is width x height pixels.
std::string render_svg_plot(const std::vector<PlotPanel>& panels, int width = 480, int height = 360);
// Writes it to path (kiln::Error naming the path on failure).
void write_svg_plot(const std::string& path, const std::vector<PlotPanel>& panels, int width = 480,
                    int height = 360);

// Round tick positions covering [lo, hi], about `target` of them (1, 2 or 5 x 10^k apart).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);

}  // namespace kiln
