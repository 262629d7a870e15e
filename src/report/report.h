// report: a self-contained report.html with inline SVG charts (no JavaScript), report.md, and
// the report.json behind both, plus the small SVG chart toolkit they are drawn with (nice ticks,
// axes, legends, escaping). No LibTorch here, and no dependency on analysis: tax and tradeoff
// sections carry the JSON that analysis's tax_json() / tradeoff_json() write (schema below).
//
// Every chart is `<svg class="chart" id="chart-...">` inside a <figure> with a <figcaption>
// that states the settings that produced it; every drawn element has a class (bar, errorbar,
// point, series, pareto-front, alpha-opt, axis, legend, ...) so tests can find it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"

namespace atax::report {

// ---------------------------------------------------------------------------------------------
// SVG toolkit
// ---------------------------------------------------------------------------------------------

// Escapes & < > " ' for XML text and attribute values.
std::string escape_xml(std::string_view s);

// Tick positions covering [lo, hi] with a step of 1, 2 or 5 × 10^k chosen so that there are at
// most `max_ticks` ticks (counted as at least 3); the first tick ≤ lo and the last ≥ hi. `decimals` is the
// number of decimals that prints every tick exactly. lo == hi is widened around the value.
struct Ticks {
  std::vector<double> values;
  double step = 1;
  int decimals = 0;
};
Ticks nice_ticks(double lo, double hi, int max_ticks = 6);

// Ticks for a log10 axis over [lo, hi] (both > 0): powers of ten, plus 2× and 5× when the range
// spans at most two decades; the first ≤ lo and the last ≥ hi.
Ticks log_ticks(double lo, double hi);

// Formats a tick value with `decimals` decimals, with "−" for negatives and no "-0".
std::string format_tick(double v, int decimals);

// The colour of series i (Okabe–Ito palette, colour-blind safe).
const char* series_color(size_t i);
extern const char* const kCostColor;         // tax > 0 bars
extern const char* const kImprovementColor;  // tax < 0 bars

struct ChartPoint {
  double x = 0, y = 0;
  std::optional<double> lo, hi;  // interval on y, drawn as an error bar
};

struct ChartSeries {
  std::string name;
  std::vector<ChartPoint> points;  // drawn in the given order
  bool right_axis = false;         // plotted against the secondary (right) y axis
  bool dashed = false;
};

// A line chart: sweeps (tax and safety against β, against λ) and training curves.
struct LineChart {
  std::string id;       // "chart-beta": [a-z0-9-], unique in the report
  std::string title, caption;
  std::string x_label, y_label, y2_label;  // y2_label names the right axis, if any series uses it
  bool log_x = false;   // every x must then be > 0
  bool markers = true;  // circles on points (left out above 60 points per series)
  std::vector<ChartSeries> series;
};

// A bar chart of signed values with intervals (the tax per benchmark).
struct Bar {
  std::string label, sublabel;            // e.g. task and metric
  std::optional<double> value;            // nullopt is drawn as "n/a"
  std::optional<double> lo, hi;           // interval; a missing bound is drawn open-ended
  std::string group;                      // consecutive bars with the same group are labelled together
  std::string tooltip;
  // Not measurable (e.g. the base at chance): drawn as a hollow "n/m" box; its value and interval
  // are neither drawn nor used for the axis.
  bool not_measurable = false;
};
struct BarChart {
  std::string id, title, caption, y_label;
  std::vector<Bar> bars;
  std::optional<double> reference;        // a dashed horizontal line (e.g. the mean capability tax)
  std::string reference_label;            // shown in the legend
  std::string reference_group;            // if set, the line spans only the bars of this group
  std::string positive_label = "cost (tax > 0)", negative_label = "improvement (tax < 0)";
};

// A scatter of models in (helpfulness, harmlessness) with the Pareto front and α-optima.
struct ScatterPoint {
  std::string label;
  double x = 0, y = 0;
  std::optional<double> x_lo, x_hi, y_lo, y_hi;
  std::string note;  // e.g. "best for α ∈ [0, 0.5]": marks the point as α-optimal
};
struct ScatterChart {
  std::string id, title, caption, x_label, y_label;
  std::vector<ScatterPoint> points;
  std::vector<size_t> front;  // indices on the Pareto front, in drawing order
  std::vector<size_t> curve;  // indices of a sweep, in order of the swept parameter (may be empty)
  std::string curve_label;
};

// Renders one chart as an <svg class="chart" id=...> element (viewBox width × height). Fails
// with Error if the id is not [a-z0-9-]+, a value is not finite, or log_x meets x ≤ 0.
std::string render_line_chart(const LineChart& chart, int width = 960, int height = 440);
std::string render_bar_chart(const BarChart& chart, int width = 960, int height = 480);
std::string render_scatter_chart(const ScatterChart& chart, int width = 960, int height = 600);

// ---------------------------------------------------------------------------------------------
// Tables
// ---------------------------------------------------------------------------------------------

// A table cell: plain text, or a number with an uncertainty ("0.412 ± 0.011") or an interval.
struct Cell {
  std::string text;                    // used when value is unset
  std::optional<double> value, err, lo, hi;
  int digits = 3;
  static Cell of(std::string text);
  static Cell pm(double value, double err, int digits = 3);
  static Cell num(double value, int digits = 3);
  std::string render() const;  // "0.412 ± 0.011", "3.10 [1.20, 5.00]", "n/a", or text
};

struct Table {
  std::string id, title, caption;
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
};

std::string table_html(const Table& t);
std::string table_markdown(const Table& t);

// ---------------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------------

// One part of the report, in order. `kind`:
//   "tax"       data = analysis::tax_json() output: {"rows": [{"task", "metric", "category",
//               "higher_is_better", "n", "base", "base_stderr", "aligned", "aligned_stderr",
//               "tax_pct" (null = n/a), "tax_ci": [lo|null, hi|null], "test", "p_value",
//               optional "measurable" (bool, default true) and "not_measurable_reason" (string): a
//               row with measurable = false shows "n/m" with a footnote in the tables and a hollow
//               "n/m" box in the chart; safety rows (category "safety") optionally "base_rate",
//               "aligned_rate", "change_pp", "change_pp_ci": [lo, hi] (shown as rates and their
//               change in percentage points)}...],
//               "mean_capability_tax": {"value", "ci", "n_tasks"}, "safety": [{"task", "metric",
//               "base", "aligned", "change", "improved", optional "base_rate", "aligned_rate",
//               "change_pp", "change_pp_ci"}...], "convention",
//               "base_name", "aligned_name", "confidence", "resamples", "seed", "notes"}
//   "tradeoff"  data = analysis::tradeoff_json() output: {"points": [{"name", "params", "helpful",
//               "helpful_ci", "helpful_k", "helpful_n", "harmless", "harmless_ci", ...}], "best":
//               [{"alpha", "index", "name", "utility"}], "pareto": [i...], "sweep"?: {"param",
//               "order"}, "confidence", "interval"}
//   "line"      data = line_chart_json(LineChart)
//   "table"     data = table_json(Table)
//   "text"      data = {"text": "paragraphs separated by blank lines"}
// A tax section draws two charts on their own scales: the tax (%) of the non-safety rows (id = the
// section's id) and the safety rows (id + "-safety"), in percentage points where they carry
// "change_pp", else as tax (%).
// `caption` describes the settings that produced the part; the tax and tradeoff captions get the
// statistical settings (resamples, seed, confidence, interval) appended automatically.
struct Section {
  std::string kind, id, title, caption;
  json data;
};

struct Report {
  std::string title = "atax report";
  std::string summary;   // a paragraph under the title
  std::string created;   // ISO-8601; filled with now by write_report if empty
  json settings;         // shown at the end, and kept in report.json
  std::vector<Section> sections;
};

json line_chart_json(const LineChart& c);
LineChart line_chart_from_json(const json& j, const std::string& where = "line chart");
json table_json(const Table& t);
Table table_from_json(const json& j, const std::string& where = "table");

json report_to_json(const Report& r);
// Parses report.json; Error names `file` and the JSON path of a missing or mistyped field.
Report report_from_json(const json& j, const std::string& file = "report.json");

// Renders the page / the Markdown. Fails with Error on a malformed section (naming it).
std::string render_html(const Report& r);
std::string render_markdown(const Report& r);

// Writes report.json, report.md and report.html into `dir` (created if needed), each atomically.
void write_report(const Report& r, const fs::path& dir);

}  // namespace atax::report
