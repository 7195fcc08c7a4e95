// SVG charts: tick choice, the data-to-pixel mapping, one element per series and point, escaping,
// errors on bad data, and the atomic write.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "avgrad/report/plot.hpp"
#include "support/testing.hpp"

using namespace avgrad;
using namespace avgrad::report;
using avgrad::testing::expect_error;

namespace {

std::size_t count(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Plot, NiceTicksStepOneTwoOrFive) {
  EXPECT_EQ(plot_detail::nice_ticks(0, 1), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  const auto t = plot_detail::nice_ticks(0, 0.031);
  ASSERT_GE(t.size(), 4u);
  EXPECT_NEAR(t[1] - t[0], 0.005, 1e-15);
  const auto big = plot_detail::nice_ticks(-120, 480);
  EXPECT_NEAR(big[1] - big[0], 100, 1e-9);
  EXPECT_LE(big.front(), -100);
  EXPECT_GE(big.back(), 400);
}

TEST(Plot, LineChartMapsPointsIntoThePlotArea) {
  ChartOptions o{.title = "robust accuracy vs eps", .x_label = "eps", .y_label = "accuracy", .y_min = 0, .y_max = 1};
  const auto svg =
      line_chart_svg({{"late <fusion>", {0, 0.5, 1}, {1, 0.5, 0}}, {"audio & video", {0, 1}, {0.9, 0.1}}}, o);
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_EQ(count(svg, "<polyline"), 2u);
  EXPECT_EQ(count(svg, "<circle"), 5u);
  EXPECT_NE(svg.find("late &lt;fusion&gt;"), std::string::npos);  // names are escaped
  EXPECT_NE(svg.find("audio &amp; video"), std::string::npos);
  EXPECT_EQ(svg.find("<fusion>"), std::string::npos);
  // x from 0 to 1 spans [left, right] = [64, 720 − 170]; y = 1 is the top (36), y = 0 the bottom (440 − 48)
  EXPECT_NE(svg.find("points=\"64,36 307,214 550,392\""), std::string::npos) << svg;
  // The same points with the x axis from 0: x = 2..4 now sits in the right half of [64, 550].
  const auto shifted =
      line_chart_svg({{"late", {2, 3, 4}, {1, 0.5, 0}}},
                     {.title = "", .x_label = "", .y_label = "", .y_min = 0, .y_max = 1, .x_from_zero = true});
  EXPECT_NE(shifted.find("points=\"307,36 428.5,214 550,392\""), std::string::npos) << shifted;
  const auto unshifted = line_chart_svg({{"late", {2, 3, 4}, {1, 0.5, 0}}},
                                        {.title = "", .x_label = "", .y_label = "", .y_min = 0, .y_max = 1});
  EXPECT_EQ(unshifted.find("points=\"307,36"), std::string::npos) << "without it the axis fits the data";
}

TEST(Plot, BarAndScatterChartsDrawOneMarkPerValue) {
  const auto bars = bar_chart_svg({"0", "1", "2"}, {{"audio", {}, {0.2, 0.5, 0.9}}, {"video", {}, {0.3, 0.4, 0.1}}},
                                  {.title = "convexity per class",
                                   .x_label = "class",
                                   .y_label = "convexity",
                                   .width = 720,
                                   .height = 440,
                                   .y_min = 0,
                                   .y_max = 1});
  EXPECT_EQ(count(bars, "<rect x="), 6u + 2u);  // 6 bars and 2 legend swatches
  EXPECT_NE(bars.find("<title>video, 2: 0.1</title>"), std::string::npos);
  const auto dots = scatter_svg({{"plain", {1}, {0.1}}, {"PGD-AT", {11}, {0.6}}, {"mix-up", {1.1}, {0.3}}});
  EXPECT_EQ(count(dots, "<circle"), 3u);
  EXPECT_EQ(count(dots, "<rect x="), 3u);
}

TEST(Plot, RejectsDataThatWouldMislead) {
  expect_error([] { line_chart_svg({}); }, {"line_chart_svg", "no series"});
  expect_error([] { line_chart_svg({{"pgd", {0, 1}, {0.5}}}); }, {"line_chart_svg", "'pgd'", "2 x values and 1 y"});
  expect_error(
      [] {
        line_chart_svg({{"pgd", {0, 1}, {0.5, NAN}}});
      },
      {"line_chart_svg", "'pgd' point 1", "not finite"});
  expect_error([] { scatter_svg({{"at", {INFINITY}, {0.5}}}); }, {"scatter_svg", "'at' point 0", "x = inf"});
  expect_error([] { bar_chart_svg({"a", "b"}, {{"s", {}, {1}}}); }, {"bar_chart_svg", "'s' has 1 values for 2"});
}

TEST(Plot, WritesAtomicallyAndNamesTheFailingPath) {
  const auto dir = std::filesystem::temp_directory_path() / "avgrad_test_plot";
  std::filesystem::create_directories(dir);
  const auto svg = line_chart_svg({{"s", {0, 1}, {0, 1}}});
  write_svg(dir / "chart.svg", svg);
  std::ifstream in(dir / "chart.svg");
  std::stringstream back;
  back << in.rdbuf();
  EXPECT_EQ(back.str(), svg);
  expect_error([&] { write_svg(dir / "missing" / "chart.svg", svg); }, {"missing/chart.svg"});
  std::filesystem::remove_all(dir);
}

}  // namespace
