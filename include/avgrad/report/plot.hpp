// Self-contained SVG charts for results: line charts (robust accuracy vs ε, one line per model or
// threat model), grouped bar charts (convexity per class and modality) and labelled scatter plots
// (robustness vs training cost per defense). No plotting library: an SVG is text, renders in any
// browser and in Markdown, diffs in git, and is written atomically like every other artefact.
//
// Layout: a fixed-size canvas, a plot area inside margins, "nice" 1-2-5 ticks on both axes, a
// legend on the right. Every value is checked: a NaN or infinite point is an error naming the
// series and the point (a chart that silently drops points misleads).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "avgrad/core/error.hpp"
#include "avgrad/data/atomic_file.hpp"

namespace avgrad::report {

/// One named series of (x, y) points; for a bar chart x is unused (the categories index the bars).
struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct ChartOptions {
  std::string title, x_label, y_label;
  double width = 720, height = 440;
  /// Fixed y range (both set) instead of the data's: accuracies read best on [0, 1].
  double y_min = NAN, y_max = NAN;
  /// Start the x axis at 0 whatever the data (costs and sizes read wrong from an offset origin).
  bool x_from_zero = false;
};

namespace plot_detail {

/// Series colours (colour-blind safe: Okabe–Ito), cycled.
inline const char* colour(std::size_t i) {
  static const char* const kColours[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                         "#E69F00", "#56B4E9", "#F0E442", "#000000"};
  return kColours[i % (sizeof kColours / sizeof kColours[0])];
}

inline std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  return out;
}

inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

/// Ticks covering [lo, hi] at a step of 1, 2 or 5 × 10^k, about `target` of them.
inline std::vector<double> nice_ticks(double lo, double hi, int target = 6) {
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3.5 ? 2 : norm < 7.5 ? 5 : 10) * mag;
  std::vector<double> t;
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    t.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

/// The range of `values` widened so that it is never empty, then to whole ticks.
inline std::pair<double, double> axis_range(double lo, double hi, double fixed_lo, double fixed_hi) {
  if (!std::isnan(fixed_lo) && !std::isnan(fixed_hi)) return {fixed_lo, fixed_hi};
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    lo -= std::max(0.5, std::abs(lo) * 0.1);
    hi += std::max(0.5, std::abs(hi) * 0.1);
  }
  const auto t = nice_ticks(lo, hi);
  const double step = t.size() > 1 ? t[1] - t[0] : (hi - lo);
  return {std::min(lo, std::floor(lo / step) * step), std::max(hi, std::ceil(hi / step) * step)};
}

/// The canvas: frame, title, axes with ticks and labels, and the mapping data → pixels.
class Canvas {
 public:
  Canvas(const ChartOptions& o, std::pair<double, double> xr, std::pair<double, double> yr, bool x_ticks = true)
      : o_(o), x0_(xr.first), x1_(xr.second), y0_(yr.first), y1_(yr.second) {
    svg_ += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(o.width) + "\" height=\"" + num(o.height) +
            "\" viewBox=\"0 0 " + num(o.width) + " " + num(o.height) +
            "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    if (!o.title.empty()) text(o.width / 2, 20, o.title, "middle", "font-size=\"15\" font-weight=\"bold\"");
    for (double t : nice_ticks(y0_, y1_)) {
      if (t < y0_ - 1e-12 || t > y1_ + 1e-12) continue;
      line(left(), py(t), right(), py(t), "#e0e0e0");
      text(left() - 6, py(t) + 4, num(t), "end");
    }
    if (x_ticks)
      for (double t : nice_ticks(x0_, x1_)) {
        if (t < x0_ - 1e-12 || t > x1_ + 1e-12) continue;
        line(px(t), bottom(), px(t), bottom() + 5, "#000");
        text(px(t), bottom() + 18, num(t), "middle");
      }
    line(left(), bottom(), right(), bottom(), "#000");
    line(left(), top(), left(), bottom(), "#000");
    text((left() + right()) / 2, o.height - 10, o.x_label, "middle");
    svg_ += "<text transform=\"translate(16," + num((top() + bottom()) / 2) +
            ") rotate(-90)\" text-anchor=\"middle\">" + escape(o.y_label) + "</text>\n";
  }

  double left() const { return 64; }
  double right() const { return o_.width - 170; }
  double top() const { return 36; }
  double bottom() const { return o_.height - 48; }
  double px(double x) const { return left() + (x - x0_) / (x1_ - x0_) * (right() - left()); }
  double py(double y) const { return bottom() - (y - y0_) / (y1_ - y0_) * (bottom() - top()); }

  void line(double xa, double ya, double xb, double yb, const char* stroke) {
    svg_ += "<line x1=\"" + num(xa) + "\" y1=\"" + num(ya) + "\" x2=\"" + num(xb) + "\" y2=\"" + num(yb) +
            "\" stroke=\"" + stroke + "\"/>\n";
  }
  void text(double x, double y, std::string_view s, const char* anchor, std::string_view extra = {}) {
    svg_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\"" +
            (extra.empty() ? "" : " ") + std::string(extra) + ">" + escape(s) + "</text>\n";
  }
  void raw(std::string_view s) { svg_ += s; }
  /// Legend entry i: a colour swatch and the name, right of the plot area.
  void legend(std::size_t i, std::string_view name) {
    const double y = top() + 8 + 18 * static_cast<double>(i);
    svg_ += "<rect x=\"" + num(right() + 14) + "\" y=\"" + num(y - 9) + "\" width=\"12\" height=\"12\" fill=\"" +
            colour(i) + "\"/>\n";
    text(right() + 32, y + 1, name, "start");
  }
  std::string finish() { return svg_ + "</svg>\n"; }

 private:
  ChartOptions o_;
  double x0_, x1_, y0_, y1_;
  std::string svg_;
};

inline void check_series(const std::vector<Series>& series, bool need_x, const char* who) {
  AVGRAD_CHECK(!series.empty(), who, "no series to plot");
  for (const auto& s : series) {
    AVGRAD_CHECK(!s.y.empty(), who, "series '", s.name, "' has no points");
    if (need_x)
      AVGRAD_CHECK(s.x.size() == s.y.size(), who, "series '", s.name, "' has ", s.x.size(), " x values and ",
                   s.y.size(), " y values");
    for (std::size_t i = 0; i < s.y.size(); ++i) {
      AVGRAD_CHECK(std::isfinite(s.y[i]), who, "series '", s.name, "' point ", i, ": y = ", s.y[i], " is not finite");
      if (need_x)
        AVGRAD_CHECK(std::isfinite(s.x[i]), who, "series '", s.name, "' point ", i, ": x = ", s.x[i], " is not finite");
    }
  }
}

inline std::pair<double, double> extent(const std::vector<Series>& series, bool x) {
  double lo = INFINITY, hi = -INFINITY;
  for (const auto& s : series)
    for (double v : x ? s.x : s.y) lo = std::min(lo, v), hi = std::max(hi, v);
  return {lo, hi};
}

}  // namespace plot_detail

/// A line chart: one polyline with point markers per series, in the order of its points.
inline std::string line_chart_svg(const std::vector<Series>& series, const ChartOptions& o = {}) {
  using namespace plot_detail;
  check_series(series, true, "line_chart_svg");
  const auto [xl, xh] = extent(series, true);
  const auto [yl, yh] = extent(series, false);
  Canvas c(o, axis_range(o.x_from_zero ? std::min(xl, 0.0) : xl, xh, NAN, NAN), axis_range(yl, yh, o.y_min, o.y_max));
  for (std::size_t i = 0; i < series.size(); ++i) {
    std::string pts;
    for (std::size_t j = 0; j < series[i].y.size(); ++j) {
      if (j) pts += ' ';
      pts += num(c.px(series[i].x[j]));
      pts += ',';
      pts += num(c.py(series[i].y[j]));
    }
    c.raw("<polyline fill=\"none\" stroke=\"" + std::string(colour(i)) + "\" stroke-width=\"2\" points=\"" + pts +
          "\"/>\n");
    for (std::size_t j = 0; j < series[i].y.size(); ++j)
      c.raw("<circle cx=\"" + num(c.px(series[i].x[j])) + "\" cy=\"" + num(c.py(series[i].y[j])) +
            "\" r=\"3\" fill=\"" + colour(i) + "\"/>\n");
    c.legend(i, series[i].name);
  }
  return c.finish();
}

/// A grouped bar chart: `categories` along x; series i gives bar i of every group (y[k] is the
/// bar of category k). Bars start at 0 (or at the lower fixed y).
inline std::string bar_chart_svg(const std::vector<std::string>& categories, const std::vector<Series>& series,
                                 const ChartOptions& o = {}) {
  using namespace plot_detail;
  check_series(series, false, "bar_chart_svg");
  AVGRAD_CHECK(!categories.empty(), "bar_chart_svg", "no categories");
  for (const auto& s : series)
    AVGRAD_CHECK(s.y.size() == categories.size(), "bar_chart_svg", "series '", s.name, "' has ", s.y.size(),
                 " values for ", categories.size(), " categories");
  auto [yl, yh] = extent(series, false);
  yl = std::min(yl, 0.0), yh = std::max(yh, 0.0);
  const auto n = static_cast<double>(categories.size());
  Canvas c(o, {0, n}, axis_range(yl, yh, o.y_min, o.y_max), false);
  const double group = (c.px(1) - c.px(0)), bar = group * 0.8 / static_cast<double>(series.size());
  for (std::size_t k = 0; k < categories.size(); ++k)
    c.text(c.px(static_cast<double>(k) + 0.5), c.bottom() + 18, categories[k], "middle");
  for (std::size_t i = 0; i < series.size(); ++i) {
    for (std::size_t k = 0; k < categories.size(); ++k) {
      const double x = c.px(static_cast<double>(k)) + group * 0.1 + bar * static_cast<double>(i);
      const double base = c.py(std::isnan(o.y_min) ? 0.0 : std::max(0.0, o.y_min)), top = c.py(series[i].y[k]);
      c.raw("<rect x=\"" + num(x) + "\" y=\"" + num(std::min(base, top)) + "\" width=\"" + num(bar * 0.95) +
            "\" height=\"" + num(std::abs(base - top)) + "\" fill=\"" + colour(i) + "\"><title>" +
            escape(series[i].name + ", " + categories[k] + ": " + num(series[i].y[k])) + "</title></rect>\n");
    }
    c.legend(i, series[i].name);
  }
  return c.finish();
}

/// A scatter plot: series i's points as markers, each series one colour (e.g. one point per
/// defense: training cost on x, robust accuracy on y).
inline std::string scatter_svg(const std::vector<Series>& series, const ChartOptions& o = {}) {
  using namespace plot_detail;
  check_series(series, true, "scatter_svg");
  const auto [xl, xh] = extent(series, true);
  const auto [yl, yh] = extent(series, false);
  Canvas c(o, axis_range(o.x_from_zero ? std::min(xl, 0.0) : xl, xh, NAN, NAN), axis_range(yl, yh, o.y_min, o.y_max));
  for (std::size_t i = 0; i < series.size(); ++i) {
    for (std::size_t j = 0; j < series[i].y.size(); ++j)
      c.raw("<circle cx=\"" + num(c.px(series[i].x[j])) + "\" cy=\"" + num(c.py(series[i].y[j])) +
            "\" r=\"6\" fill=\"" + colour(i) + "\" fill-opacity=\"0.85\"/>\n");
    c.legend(i, series[i].name);
  }
  return c.finish();
}

/// Writes an SVG string to `path` atomically.
inline void write_svg(const std::filesystem::path& path, const std::string& svg) { write_file_atomic(path, svg); }

}  // namespace avgrad::report
