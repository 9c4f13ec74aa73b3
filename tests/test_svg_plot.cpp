// SVG plots: data points land where the linear map of the axes puts them, ticks are
// round numbers covering the data, text is escaped.
#include <gtest/gtest.h>

#include "kiln/error.h"
#include "kiln/io/svg_plot.h"

using namespace kiln;

TEST(SvgPlot, NiceTicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(nice_ticks(0, 1), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  const auto t = nice_ticks(0.13, 0.92);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_DOUBLE_EQ(t.front(), 0.0);
  EXPECT_NEAR(t.back(), 1.0, 1e-12);
  const auto big = nice_ticks(3, 97);
  EXPECT_EQ(big.front(), 0);
  EXPECT_EQ(big[1], 20);
  EXPECT_EQ(big.back(), 100);
  EXPECT_EQ(nice_ticks(2, 2), (std::vector<double>{2}));
}

TEST(SvgPlot, PointsMapLinearlyOntoThePlotArea) {
  // A 480x360 panel's plot area is x in [64, 464], y in [36, 312] (y grows downwards).
  // x ticks 0..2 and y ticks 0..1 are already round, so the axes span exactly the data.
  PlotPanel p{"loss <a&b>", "epoch", "value", {{"train", {0, 1, 2}, {0, 0.5, 1}, "red"}}};
  const std::string svg = render_svg_plot({p});
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"480\" height=\"360\""), std::string::npos);
  EXPECT_NE(svg.find("points=\"64.0,312.0 264.0,174.0 464.0,36.0 \""), std::string::npos) << svg;
  EXPECT_NE(svg.find("loss &lt;a&amp;b&gt;"), std::string::npos);
  EXPECT_NE(svg.find(">train</text>"), std::string::npos);
  EXPECT_EQ(svg.find("<a&b>"), std::string::npos);
  EXPECT_NE(svg.rfind("</svg>"), std::string::npos);
}

TEST(SvgPlot, PanelsSitSideBySideAndBadSeriesRaise) {
  PlotPanel a{"a", "x", "y", {{"s", {0, 1}, {0, 1}, ""}}};
  PlotPanel b{"b", "x", "y", {{"s", {0, 1}, {0, 1}, ""}}};
  const std::string svg = render_svg_plot({a, b});
  EXPECT_NE(svg.find("width=\"960\""), std::string::npos);
  EXPECT_NE(svg.find("points=\"544.0,312.0 944.0,36.0 \""), std::string::npos) << svg;  // offset by 480
  PlotPanel bad{"bad", "x", "y", {{"s", {0, 1}, {0}, ""}}};
  EXPECT_THROW((void)render_svg_plot({bad}), Error);
}
