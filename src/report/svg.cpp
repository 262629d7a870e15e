// The SVG chart toolkit: escaping, nice ticks, scales, axes, legends, and the three chart kinds
// (line, signed bars with intervals, helpfulness/harmlessness scatter).
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "report/report.h"

namespace atax::report {

const char* const kCostColor = "#D55E00";
const char* const kImprovementColor = "#009E73";

namespace {

constexpr const char* kAxisColor = "#444444";
constexpr const char* kGridColor = "#e6e6e6";
constexpr const char* kTextColor = "#222222";
constexpr const char* kMutedColor = "#666666";
constexpr const char* kFont = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif\"";
constexpr double kCharWidth = 6.6;  // average glyph width at 12px, for layout estimates

double text_width(std::string_view s, double font_px = 12) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return static_cast<double>(n) * kCharWidth * font_px / 12.0;
}

std::string num(double v) {
  if (std::fabs(v) < 0.005) v = 0;  // avoid "-0.00"
  return fmt::format("{:.2f}", v);
}

void check_id(const std::string& id) {
  if (id.empty() || !std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      }))
    throw Error("chart id '" + id + "' must be non-empty and use only a-z, 0-9 and '-'", "",
                "name charts like chart-tax or chart-beta");
}

void check_finite(double v, const std::string& what, const std::string& id) {
  if (!std::isfinite(v))
    throw Error(fmt::format("chart {}: {} is not a finite number", id, what), "",
                "leave undefined values out (n/a) instead of passing NaN or infinity");
}

// Collects SVG markup.
class Svg {
 public:
  Svg(const std::string& id, const std::string& title, int w, int h) : w_(w), h_(h) {
    out_ += fmt::format(
        "<svg class=\"chart\" id=\"{0}\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {1} {2}\" "
        "width=\"{1}\" height=\"{2}\" role=\"img\" aria-labelledby=\"{0}-title\" {3}>\n",
        escape_xml(id), w, h, kFont);
    out_ += fmt::format("<title id=\"{}-title\">{}</title>\n", escape_xml(id), escape_xml(title));
    out_ += fmt::format("<rect class=\"chart-bg\" x=\"0\" y=\"0\" width=\"{}\" height=\"{}\" fill=\"#ffffff\"/>\n", w, h);
    if (!title.empty())
      text(w / 2.0, 22, title, "chart-title", "middle", 15, kTextColor, "font-weight=\"600\"");
  }
  void open(const std::string& cls, const std::string& extra = {}) {
    out_ += "<g class=\"" + escape_xml(cls) + "\"" + (extra.empty() ? "" : " " + extra) + ">\n";
  }
  void close() { out_ += "</g>\n"; }
  void raw(const std::string& s) { out_ += s; }
  void line(double x1, double y1, double x2, double y2, const std::string& cls, const std::string& stroke,
            double width = 1, const std::string& extra = {}) {
    out_ += fmt::format(
        "<line class=\"{}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"{}\" stroke-width=\"{}\"{}/>\n",
        escape_xml(cls), num(x1), num(y1), num(x2), num(y2), stroke, width, extra.empty() ? "" : " " + extra);
  }
  void rect(double x, double y, double w, double h, const std::string& cls, const std::string& fill,
            const std::string& extra = {}, const std::string& tooltip = {}) {
    out_ += fmt::format("<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"{}", escape_xml(cls),
                        num(x), num(y), num(std::max(w, 0.0)), num(std::max(h, 0.0)), fill,
                        extra.empty() ? "" : " " + extra);
    close_with_tooltip("rect", tooltip);
  }
  void circle(double cx, double cy, double r, const std::string& cls, const std::string& fill,
              const std::string& extra = {}, const std::string& tooltip = {}) {
    out_ += fmt::format("<circle class=\"{}\" cx=\"{}\" cy=\"{}\" r=\"{}\" fill=\"{}\"{}", escape_xml(cls), num(cx),
                        num(cy), r, fill, extra.empty() ? "" : " " + extra);
    close_with_tooltip("circle", tooltip);
  }
  void path(const std::string& d, const std::string& cls, const std::string& stroke, double width,
            const std::string& extra = {}) {
    out_ += fmt::format("<path class=\"{}\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}/>\n",
                        escape_xml(cls), d, stroke, width, extra.empty() ? "" : " " + extra);
  }
  void text(double x, double y, const std::string& s, const std::string& cls, const std::string& anchor = "start",
            double size = 12, const std::string& fill = kTextColor, const std::string& extra = {}) {
    out_ += fmt::format("<text class=\"{}\" x=\"{}\" y=\"{}\" text-anchor=\"{}\" font-size=\"{}\" fill=\"{}\"{}>{}</text>\n",
                        escape_xml(cls), num(x), num(y), anchor, size, fill, extra.empty() ? "" : " " + extra,
                        escape_xml(s));
  }
  std::string finish() { return out_ + "</svg>\n"; }
  int width() const { return w_; }
  int height() const { return h_; }

 private:
  void close_with_tooltip(const char* tag, const std::string& tooltip) {
    if (tooltip.empty()) out_ += "/>\n";
    else out_ += fmt::format("><title>{}</title></{}>\n", escape_xml(tooltip), tag);
  }
  std::string out_;
  int w_, h_;
};

// Maps a data interval onto a pixel interval (linear or log10).
struct Scale {
  double d0 = 0, d1 = 1, r0 = 0, r1 = 1;
  bool log = false;
  double operator()(double v) const {
    double a = log ? std::log10(d0) : d0, b = log ? std::log10(d1) : d1, x = log ? std::log10(v) : v;
    if (b == a) return (r0 + r1) / 2;
    return r0 + (x - a) / (b - a) * (r1 - r0);
  }
  double clamp(double v) const { return std::min(std::max(v, std::min(d0, d1)), std::max(d0, d1)); }
};

std::string tick_label(const Ticks& t, double v, bool log) {
  if (log) return fmt::format("{:g}", v);
  return format_tick(v, t.decimals);
}

struct LegendItem {
  std::string label;
  std::string kind;  // "line", "dashed", "box", "ring", "errorbar", "hollow"
  std::string color;
};

// Lays the legend out in rows under the title; returns the y just below it.
double draw_legend(Svg& svg, const std::vector<LegendItem>& items, double left, double right, double top) {
  if (items.empty()) return top;
  svg.open("legend");
  double x = left, y = top + 10;
  for (const auto& it : items) {
    double w = 26 + text_width(it.label) + 18;
    if (x + w > right && x > left) {
      x = left;
      y += 18;
    }
    svg.open("legend-item");
    const double cy = y - 4;
    if (it.kind == "box") svg.rect(x, cy - 6, 16, 12, "legend-swatch", it.color);
    else if (it.kind == "hollow")
      svg.rect(x, cy - 6, 16, 12, "legend-swatch", "#ffffff", fmt::format("stroke=\"{}\" stroke-dasharray=\"3 2\"", it.color));
    else if (it.kind == "ring") svg.circle(x + 8, cy, 6, "legend-swatch", "none", fmt::format("stroke=\"{}\" stroke-width=\"2\"", it.color));
    else if (it.kind == "errorbar") {
      svg.line(x + 8, cy - 7, x + 8, cy + 7, "legend-swatch", it.color, 1.5);
      svg.line(x + 4, cy - 7, x + 12, cy - 7, "legend-swatch", it.color, 1.5);
      svg.line(x + 4, cy + 7, x + 12, cy + 7, "legend-swatch", it.color, 1.5);
    } else if (it.kind == "point") svg.circle(x + 8, cy, 4.5, "legend-swatch", it.color);
    else {
      svg.line(x, cy, x + 20, cy, "legend-swatch", it.color, 2.5, it.kind == "dashed" ? "stroke-dasharray=\"6 4\"" : "");
    }
    svg.text(x + 26, y, it.label, "legend-label", "start", 12);
    svg.close();
    x += w;
  }
  svg.close();
  return y + 12;
}

struct Frame {
  double x0, x1, y0, y1;  // plot area: x0 left, x1 right, y0 top, y1 bottom
};

void draw_y_axis(Svg& svg, const Frame& f, const Scale& s, const Ticks& t, const std::string& label, bool right,
                 bool grid) {
  svg.open(right ? "axis axis-y2" : "axis axis-y");
  const double x = right ? f.x1 : f.x0;
  for (double v : t.values) {
    double y = s(v);
    if (grid) svg.line(f.x0, y, f.x1, y, "gridline", kGridColor, 1);
    svg.line(x, y, right ? x + 5 : x - 5, y, "tick", kAxisColor, 1);
    svg.text(right ? x + 8 : x - 8, y + 4, tick_label(t, v, s.log), "tick-label", right ? "start" : "end", 11, kMutedColor);
  }
  svg.line(x, f.y0, x, f.y1, "axis-line", kAxisColor, 1);
  if (!label.empty()) {
    const double cx = right ? svg.width() - 14 : 16, cy = (f.y0 + f.y1) / 2;
    svg.text(cx, cy, label, "axis-label", "middle", 12, kTextColor,
             fmt::format("transform=\"rotate({} {} {})\"", right ? 90 : -90, num(cx), num(cy)));
  }
  svg.close();
}

void draw_x_axis(Svg& svg, const Frame& f, const Scale& s, const Ticks& t, const std::string& label) {
  svg.open("axis axis-x");
  for (double v : t.values) {
    double x = s(v);
    svg.line(x, f.y0, x, f.y1, "gridline", kGridColor, 1);
    svg.line(x, f.y1, x, f.y1 + 5, "tick", kAxisColor, 1);
    svg.text(x, f.y1 + 18, tick_label(t, v, s.log), "tick-label", "middle", 11, kMutedColor);
  }
  svg.line(f.x0, f.y1, f.x1, f.y1, "axis-line", kAxisColor, 1);
  if (!label.empty()) svg.text((f.x0 + f.x1) / 2, f.y1 + 38, label, "axis-label", "middle", 12);
  svg.close();
}

void draw_errorbar(Svg& svg, double x, double y_lo, double y_hi, const std::string& color, double cap = 4,
                   const std::string& cls = "errorbar") {
  svg.open(cls);
  svg.line(x, y_lo, x, y_hi, "errorbar-line", color, 1.4);
  svg.line(x - cap, y_lo, x + cap, y_lo, "errorbar-cap", color, 1.4);
  svg.line(x - cap, y_hi, x + cap, y_hi, "errorbar-cap", color, 1.4);
  svg.close();
}

std::string no_data(Svg& svg) {
  svg.text(svg.width() / 2.0, svg.height() / 2.0, "no data", "no-data", "middle", 14, kMutedColor);
  return svg.finish();
}

// Domain from a list of values through nice ticks; an empty list gives [0, 1].
Ticks ticks_for(std::vector<double> vals, int max_ticks, bool include_zero = false) {
  if (include_zero) vals.push_back(0);
  if (vals.empty()) return nice_ticks(0, 1, max_ticks);
  auto [lo, hi] = std::minmax_element(vals.begin(), vals.end());
  return nice_ticks(*lo, *hi, max_ticks);
}

}  // namespace

// ------------------------------------------------------------------------------------ toolkit

std::string escape_xml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Ticks nice_ticks(double lo, double hi, int max_ticks) {
  max_ticks = std::max(max_ticks, 3);  // a range across zero needs three
  if (lo > hi) std::swap(lo, hi);
  if (!(hi > lo)) {
    const double d = lo == 0 ? 1.0 : std::fabs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const double raw = (hi - lo) / (max_ticks - 1);
  double mag = std::pow(10.0, std::floor(std::log10(raw)));
  Ticks t;
  for (int guard = 0; guard < 40; ++guard) {
    bool fit = false;
    for (double m : {1.0, 2.0, 5.0}) {
      const double step = m * mag;
      const double k0 = std::floor(lo / step + 1e-9), k1 = std::ceil(hi / step - 1e-9);
      if (k1 - k0 + 1 <= max_ticks) {
        t.step = step;
        for (double k = k0; k <= k1; k += 1) {
          double v = k * step;
          if (std::fabs(v) < step * 1e-9) v = 0;
          t.values.push_back(v);
        }
        fit = true;
        break;
      }
    }
    if (fit) break;
    mag *= 10;
  }
  t.decimals = std::max(0, static_cast<int>(-std::floor(std::log10(t.step) + 1e-9)));
  return t;
}

Ticks log_ticks(double lo, double hi) {
  if (lo > hi) std::swap(lo, hi);
  const int a = static_cast<int>(std::floor(std::log10(lo) + 1e-12));
  const int b = static_cast<int>(std::ceil(std::log10(hi) - 1e-12));
  const bool fine = b - a <= 2;
  std::vector<double> all;
  for (int e = a; e <= std::max(b, a + 1); ++e)
    for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
      // round to 12 significant digits so 10^-2·2 prints as 0.02
      double v = m * std::pow(10.0, e);
      v = std::stod(fmt::format("{:.12g}", v));
      all.push_back(v);
    }
  Ticks t;
  size_t first = 0, last = all.size() - 1;
  for (size_t i = 0; i < all.size(); ++i)
    if (all[i] <= lo * (1 + 1e-12)) first = i;
  for (size_t i = all.size(); i-- > 0;)
    if (all[i] >= hi * (1 - 1e-12)) last = i;
  t.values.assign(all.begin() + static_cast<long>(first), all.begin() + static_cast<long>(last) + 1);
  t.step = 10;
  t.decimals = std::max(0, -a);
  return t;
}

std::string format_tick(double v, int decimals) {
  std::string s = fmt::format("{:.{}f}", std::fabs(v), decimals);
  bool zero = std::all_of(s.begin(), s.end(), [](char c) { return c == '0' || c == '.'; });
  if (v < 0 && !zero) return "−" + s;
  return s;
}

const char* series_color(size_t i) {
  static const char* const kPalette[] = {"#0072B2", "#E69F00", "#009E73", "#D55E00",
                                         "#CC79A7", "#56B4E9", "#555555", "#000000"};
  return kPalette[i % 8];
}

// ------------------------------------------------------------------------------------ line chart

std::string render_line_chart(const LineChart& c, int width, int height) {
  check_id(c.id);
  Svg svg(c.id, c.title, width, height);
  std::vector<double> xs, ys, y2s;
  bool has_right = false;
  for (const auto& s : c.series) {
    for (const auto& p : s.points) {
      check_finite(p.x, "an x value of series '" + s.name + "'", c.id);
      check_finite(p.y, "a y value of series '" + s.name + "'", c.id);
      if (c.log_x && p.x <= 0)
        throw Error(fmt::format("chart {}: series '{}' has x = {} on a log axis", c.id, s.name, p.x), "",
                    "use a linear axis (log_x = false) when x can be 0");
      xs.push_back(p.x);
      auto& dst = s.right_axis ? y2s : ys;
      dst.push_back(p.y);
      for (auto b : {p.lo, p.hi})
        if (b) {
          check_finite(*b, "an interval bound of series '" + s.name + "'", c.id);
          dst.push_back(*b);
        }
    }
    has_right = has_right || (s.right_axis && !s.points.empty());
  }
  if (xs.empty()) return no_data(svg);

  std::vector<LegendItem> legend;
  for (size_t i = 0; i < c.series.size(); ++i)
    legend.push_back({c.series[i].name + (has_right && c.series[i].right_axis ? " (right axis)" : ""),
                      c.series[i].dashed ? "dashed" : "line", series_color(i)});
  const double ml = 68, mr = has_right ? 68 : 24, mb = 52;
  const double legend_bottom = draw_legend(svg, legend, ml, width - mr, 34);
  Frame f{ml, width - mr, legend_bottom + 10, height - mb};

  auto [xmin, xmax] = std::minmax_element(xs.begin(), xs.end());
  Ticks xt = c.log_x ? log_ticks(*xmin, *xmax) : nice_ticks(*xmin, *xmax, 8);
  Scale sx{xt.values.front(), xt.values.back(), f.x0, f.x1, c.log_x};
  Ticks yt = ticks_for(ys, 6);
  Scale sy{yt.values.front(), yt.values.back(), f.y1, f.y0};
  Ticks y2t = ticks_for(y2s, 6);
  Scale sy2{y2t.values.front(), y2t.values.back(), f.y1, f.y0};

  draw_x_axis(svg, f, sx, xt, c.x_label);
  draw_y_axis(svg, f, sy, yt, c.y_label, false, true);
  if (has_right) draw_y_axis(svg, f, sy2, y2t, c.y2_label, true, false);

  svg.open("plot");
  for (size_t i = 0; i < c.series.size(); ++i) {
    const auto& s = c.series[i];
    if (s.points.empty()) continue;
    const Scale& ys_ = s.right_axis ? sy2 : sy;
    const std::string color = series_color(i);
    svg.open("series-group", fmt::format("data-series=\"{}\"", escape_xml(s.name)));
    for (const auto& p : s.points)
      if (p.lo && p.hi) draw_errorbar(svg, sx(p.x), ys_(*p.lo), ys_(*p.hi), color, 3);
    std::string d;
    for (size_t k = 0; k < s.points.size(); ++k)
      d += fmt::format("{}{} {}", k == 0 ? "M" : " L", num(sx(s.points[k].x)), num(ys_(s.points[k].y)));
    if (s.points.size() == 1) d += fmt::format(" h 0.01");
    svg.path(d, "series", color, 2.2,
             std::string("stroke-linejoin=\"round\" stroke-linecap=\"round\"") +
                 (s.dashed ? " stroke-dasharray=\"6 4\"" : ""));
    if (c.markers && s.points.size() <= 60)
      for (const auto& p : s.points)
        svg.circle(sx(p.x), ys_(p.y), 3.6, "point", color, "stroke=\"#ffffff\" stroke-width=\"1\"",
                   fmt::format("{}: {} = {:g}, {} = {:.4g}", s.name, c.x_label.empty() ? "x" : c.x_label, p.x,
                               c.y_label.empty() ? "y" : (s.right_axis ? c.y2_label : c.y_label), p.y));
    svg.close();
  }
  svg.close();
  return svg.finish();
}

// ------------------------------------------------------------------------------------ bar chart

std::string render_bar_chart(const BarChart& c, int width, int height) {
  check_id(c.id);
  Svg svg(c.id, c.title, width, height);
  if (c.bars.empty()) return no_data(svg);
  std::vector<double> vals;
  bool any_na = false, any_nm = false, any_pos = false, any_neg = false, any_interval = false;
  for (const auto& b : c.bars) {
    if (b.not_measurable) {
      any_nm = true;
      continue;
    }
    if (b.value) {
      check_finite(*b.value, "the value of bar '" + b.label + "'", c.id);
      vals.push_back(*b.value);
      if (*b.value > 0) any_pos = true;
      if (*b.value < 0) any_neg = true;
    } else {
      any_na = true;
    }
    for (auto x : {b.lo, b.hi})
      if (x) {
        check_finite(*x, "an interval bound of bar '" + b.label + "'", c.id);
        vals.push_back(*x);
        any_interval = true;
      }
  }
  if (c.reference) vals.push_back(*c.reference);
  std::vector<LegendItem> legend;
  if (any_pos || !any_neg) legend.push_back({c.positive_label, "box", kCostColor});
  if (any_neg) legend.push_back({c.negative_label, "box", kImprovementColor});
  if (any_na) legend.push_back({"n/a (undefined)", "hollow", "#999999"});
  if (any_nm) legend.push_back({"n/m (not measurable)", "hollow", "#999999"});
  if (any_interval) legend.push_back({"interval", "errorbar", kAxisColor});
  if (c.reference) legend.push_back({c.reference_label, "dashed", kMutedColor});

  // Bottom margin: two label lines, or rotated labels when the slots are narrow, plus group labels.
  const double ml = 68, mr = 24;
  const double slot = (width - ml - mr) / static_cast<double>(c.bars.size());
  double max_label = 0;
  for (const auto& b : c.bars) max_label = std::max({max_label, text_width(b.label), text_width(b.sublabel, 10)});
  const bool rotate = max_label > slot - 6;
  bool groups = false;
  for (const auto& b : c.bars) groups = groups || b.group != c.bars.front().group;
  // rotated by 35°: the label's vertical extent is about sin(35°) of its length
  double mb = rotate ? std::min(170.0, 26 + max_label * 0.58) : 48;
  if (groups) mb += 24;
  const double legend_bottom = draw_legend(svg, legend, ml, width - mr, 34);
  Frame f{ml, width - mr, legend_bottom + 10, height - mb};

  Ticks yt = ticks_for(vals, 7, /*include_zero=*/true);
  Scale sy{yt.values.front(), yt.values.back(), f.y1, f.y0};
  draw_y_axis(svg, f, sy, yt, c.y_label, false, true);
  svg.open("axis axis-x");
  svg.line(f.x0, f.y1, f.x1, f.y1, "axis-line", kAxisColor, 1);
  svg.close();

  // Group separators and labels.
  if (groups) {
    svg.open("groups");
    size_t start = 0;
    for (size_t i = 1; i <= c.bars.size(); ++i) {
      if (i < c.bars.size() && c.bars[i].group == c.bars[start].group) continue;
      const double gx0 = f.x0 + slot * static_cast<double>(start), gx1 = f.x0 + slot * static_cast<double>(i);
      if (start > 0) svg.line(gx0, f.y0, gx0, height - 8, "group-sep", "#bbbbbb", 1, "stroke-dasharray=\"2 3\"");
      svg.text((gx0 + gx1) / 2, height - 10, c.bars[start].group, "group-label", "middle", 12, kMutedColor,
               "font-style=\"italic\"");
      start = i;
    }
    svg.close();
  }

  const double zero_y = sy(0);
  const double bw = std::min(56.0, slot * 0.58);
  svg.open("plot");
  for (size_t i = 0; i < c.bars.size(); ++i) {
    const Bar& b = c.bars[i];
    const double cx = f.x0 + slot * (static_cast<double>(i) + 0.5);
    svg.open("bar-group", fmt::format("data-label=\"{}\"", escape_xml(b.label)));
    std::string tip = b.tooltip.empty() ? b.label + (b.sublabel.empty() ? "" : " " + b.sublabel) : b.tooltip;
    if (b.not_measurable) {
      svg.rect(cx - bw / 2, zero_y - 12, bw, 24, "bar nm", "#ffffff",
               "stroke=\"#999999\" stroke-dasharray=\"1 2\"", tip + ": not measurable");
      svg.text(cx, zero_y + 4, "n/m", "bar-value", "middle", 11, kMutedColor);
    } else if (b.value) {
      const double v = *b.value;
      double y = sy(v);
      double top = std::min(y, zero_y), h = std::fabs(y - zero_y);
      if (h < 1.5) {  // keep a zero bar visible
        top = zero_y - 0.75;
        h = 1.5;
      }
      const bool improvement = v < 0;
      svg.rect(cx - bw / 2, top, bw, h, improvement ? "bar improvement" : "bar cost",
               improvement ? kImprovementColor : kCostColor, "", tip + fmt::format(": {:.2f}", v));
      double label_y;
      if (b.lo || b.hi) {
        const double ylo = b.lo ? sy(*b.lo) : f.y1, yhi = b.hi ? sy(*b.hi) : f.y0;
        svg.open("errorbar");
        svg.line(cx, ylo, cx, yhi, "errorbar-line", kAxisColor, 1.4);
        if (b.lo) svg.line(cx - 6, ylo, cx + 6, ylo, "errorbar-cap", kAxisColor, 1.4);
        else svg.path(fmt::format("M{} {} L{} {} L{} {}", num(cx - 5), num(ylo - 7), num(cx), num(ylo), num(cx + 5), num(ylo - 7)),
                      "errorbar-open", kAxisColor, 1.4);
        if (b.hi) svg.line(cx - 6, yhi, cx + 6, yhi, "errorbar-cap", kAxisColor, 1.4);
        else svg.path(fmt::format("M{} {} L{} {} L{} {}", num(cx - 5), num(yhi + 7), num(cx), num(yhi), num(cx + 5), num(yhi + 7)),
                      "errorbar-open", kAxisColor, 1.4);
        svg.close();
        label_y = v >= 0 ? std::min(y, yhi) - 6 : std::max(y, ylo) + 15;
      } else {
        label_y = v >= 0 ? y - 6 : y + 15;
      }
      label_y = std::clamp(label_y, f.y0 + 10, f.y1 - 4);
      svg.text(cx, label_y, fmt::format("{:.1f}", v), "bar-value", "middle", 11, kTextColor,
               "font-weight=\"600\" paint-order=\"stroke\" stroke=\"#ffffff\" stroke-width=\"3\"");
    } else {
      svg.rect(cx - bw / 2, zero_y - 12, bw, 24, "bar na", "#f4f4f4",
               "stroke=\"#999999\" stroke-dasharray=\"3 2\"", tip + ": n/a");
      svg.text(cx, zero_y + 4, "n/a", "bar-value", "middle", 11, kMutedColor);
    }
    // category labels
    if (rotate) {
      const double ly = f.y1 + 14;
      svg.text(cx + 4, ly, b.label + (b.sublabel.empty() ? "" : " · " + b.sublabel), "bar-label", "end", 11, kTextColor,
               fmt::format("transform=\"rotate(-35 {} {})\"", num(cx + 4), num(ly)));
    } else {
      svg.text(cx, f.y1 + 17, b.label, "bar-label", "middle", 12, kTextColor);
      if (!b.sublabel.empty()) svg.text(cx, f.y1 + 32, b.sublabel, "bar-sublabel", "middle", 10, kMutedColor);
    }
    svg.close();
  }
  svg.line(f.x0, zero_y, f.x1, zero_y, "zero-line", "#111111", 1.3);
  if (c.reference) {
    const double ry = sy(*c.reference);
    double rx0 = f.x0, rx1 = f.x1;
    if (!c.reference_group.empty()) {
      size_t first = c.bars.size(), last = 0;
      for (size_t i = 0; i < c.bars.size(); ++i)
        if (c.bars[i].group == c.reference_group) {
          first = std::min(first, i);
          last = i;
        }
      if (first < c.bars.size()) {
        rx0 = f.x0 + slot * static_cast<double>(first) + 4;
        rx1 = f.x0 + slot * static_cast<double>(last + 1) - 4;
      }
    }
    svg.line(rx0, ry, rx1, ry, "reference", kMutedColor, 1.5, "stroke-dasharray=\"6 4\"");
  }
  svg.close();
  return svg.finish();
}

// ------------------------------------------------------------------------------------ scatter

std::string render_scatter_chart(const ScatterChart& c, int width, int height) {
  check_id(c.id);
  Svg svg(c.id, c.title, width, height);
  if (c.points.empty()) return no_data(svg);
  std::vector<double> xs, ys;
  for (const auto& p : c.points) {
    check_finite(p.x, "the x of point '" + p.label + "'", c.id);
    check_finite(p.y, "the y of point '" + p.label + "'", c.id);
    xs.push_back(p.x);
    ys.push_back(p.y);
    for (auto b : {p.x_lo, p.x_hi}) if (b) xs.push_back(*b);
    for (auto b : {p.y_lo, p.y_hi}) if (b) ys.push_back(*b);
  }
  for (size_t i : c.front)
    if (i >= c.points.size()) throw Error(fmt::format("chart {}: Pareto index {} out of range", c.id, i));
  for (size_t i : c.curve)
    if (i >= c.points.size()) throw Error(fmt::format("chart {}: curve index {} out of range", c.id, i));
  bool any_note = std::any_of(c.points.begin(), c.points.end(), [](const auto& p) { return !p.note.empty(); });
  std::vector<LegendItem> legend = {{"model (with interval)", "point", series_color(0)}};
  if (!c.front.empty()) legend.push_back({"Pareto front", "dashed", "#E69F00"});
  if (any_note) legend.push_back({"α-optimal", "ring", kCostColor});
  if (!c.curve.empty()) legend.push_back({c.curve_label.empty() ? "sweep" : c.curve_label, "line", "#999999"});

  const double ml = 68, mr = 24, mb = 52;
  const double legend_bottom = draw_legend(svg, legend, ml, width - mr, 34);
  Frame f{ml, width - mr, legend_bottom + 10, height - mb};
  auto pad = [](std::vector<double>& v) {
    auto [lo, hi] = std::minmax_element(v.begin(), v.end());
    double l = *lo, h = *hi, d = std::max(0.02, (h - l) * 0.06);
    bool unit = l >= 0 && h <= 1;
    l -= d;
    h += d;
    if (unit) {
      l = std::max(0.0, l);
      h = std::min(1.0, h);
    }
    return std::pair{l, h};
  };
  auto [xl, xh] = pad(xs);
  auto [yl, yh] = pad(ys);
  Ticks xt = nice_ticks(xl, xh, 7), yt = nice_ticks(yl, yh, 7);
  Scale sx{xt.values.front(), xt.values.back(), f.x0, f.x1};
  Scale sy{yt.values.front(), yt.values.back(), f.y1, f.y0};
  draw_x_axis(svg, f, sx, xt, c.x_label);
  draw_y_axis(svg, f, sy, yt, c.y_label, false, true);

  svg.open("plot");
  if (c.curve.size() >= 2) {
    std::string d;
    for (size_t k = 0; k < c.curve.size(); ++k)
      d += fmt::format("{}{} {}", k == 0 ? "M" : " L", num(sx(c.points[c.curve[k]].x)), num(sy(c.points[c.curve[k]].y)));
    svg.path(d, "sweep-curve", "#999999", 1.6, "stroke-linejoin=\"round\"");
  }
  if (!c.front.empty()) {
    std::string d;
    for (size_t k = 0; k < c.front.size(); ++k)
      d += fmt::format("{}{} {}", k == 0 ? "M" : " L", num(sx(c.points[c.front[k]].x)), num(sy(c.points[c.front[k]].y)));
    if (c.front.size() == 1) d += " h 0.01";
    svg.path(d, "pareto-front", "#E69F00", 2.5, "stroke-dasharray=\"7 4\" stroke-linejoin=\"round\"");
  }
  for (const auto& p : c.points) {
    const double px = sx(p.x), py = sy(p.y);
    svg.open("errorbar");
    if (p.x_lo && p.x_hi) {
      svg.line(sx(*p.x_lo), py, sx(*p.x_hi), py, "errorbar-line", "#9ab8d6", 1.2);
    }
    if (p.y_lo && p.y_hi) {
      svg.line(px, sy(*p.y_lo), px, sy(*p.y_hi), "errorbar-line", "#9ab8d6", 1.2);
    }
    svg.close();
  }
  // Labels placed greedily at the first free spot among eight around each point.
  std::vector<std::array<double, 4>> boxes;  // x0, y0, x1, y1 of placed labels and points
  for (const auto& p : c.points) boxes.push_back({sx(p.x) - 6, sy(p.y) - 6, sx(p.x) + 6, sy(p.y) + 6});
  auto overlaps = [&](const std::array<double, 4>& b) {
    for (const auto& o : boxes)
      if (b[0] < o[2] && b[2] > o[0] && b[1] < o[3] && b[3] > o[1]) return true;
    return false;
  };
  for (size_t i = 0; i < c.points.size(); ++i) {
    const auto& p = c.points[i];
    const double px = sx(p.x), py = sy(p.y);
    const bool on_front = std::find(c.front.begin(), c.front.end(), i) != c.front.end();
    svg.open(on_front ? "point-group on-front" : "point-group", fmt::format("data-label=\"{}\"", escape_xml(p.label)));
    if (!p.note.empty()) svg.circle(px, py, 10, "alpha-opt", "none", fmt::format("stroke=\"{}\" stroke-width=\"2.2\"", kCostColor));
    svg.circle(px, py, on_front ? 5.5 : 4.5, "point", on_front ? series_color(0) : "#ffffff",
               fmt::format("stroke=\"{}\" stroke-width=\"2\"", series_color(0)),
               fmt::format("{}: {} = {:.3f}, {} = {:.3f}{}", p.label, c.x_label, p.x, c.y_label, p.y,
                           p.note.empty() ? "" : " (" + p.note + ")"));
    const double tw = std::max(text_width(p.label, 11), p.note.empty() ? 0.0 : text_width(p.note, 10));
    const double th = p.note.empty() ? 12 : 25;
    const std::array<std::pair<double, double>, 8> offsets = {
        std::pair{12.0, -14.0}, {12.0, 4.0}, {-12.0 - tw, -14.0}, {-12.0 - tw, 4.0},
        {-tw / 2, -18.0 - th + 6}, {-tw / 2, 14.0}, {18.0, -5.0 - th / 2}, {-18.0 - tw, -5.0 - th / 2}};
    std::array<double, 4> box{};
    bool placed = false;
    for (const auto& [dx, dy] : offsets) {
      box = {px + dx, py + dy, px + dx + tw, py + dy + th};
      if (box[0] < f.x0 || box[2] > f.x1 || box[1] < f.y0 || box[3] > f.y1) continue;
      if (!overlaps(box)) {
        placed = true;
        break;
      }
    }
    if (!placed) box = {px + 12, py - 14, px + 12 + tw, py - 14 + th};
    boxes.push_back(box);
    svg.text(box[0], box[1] + 10, p.label, "point-label", "start", 11, kTextColor,
             "paint-order=\"stroke\" stroke=\"#ffffff\" stroke-width=\"3\"");
    if (!p.note.empty())
      svg.text(box[0], box[1] + 23, p.note, "alpha-note", "start", 10, kCostColor,
               "paint-order=\"stroke\" stroke=\"#ffffff\" stroke-width=\"3\"");
    svg.close();
  }
  svg.close();
  return svg.finish();
}

}  // namespace atax::report
