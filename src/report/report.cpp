// The report: tables, the JSON schema of report.json, and the HTML and Markdown renderings of
// its sections (tax, tradeoff, line charts, tables, text).
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <fmt/format.h>

#include "report/report.h"

namespace atax::report {

// ------------------------------------------------------------------------------------ cells, tables

Cell Cell::of(std::string text) {
  Cell c;
  c.text = std::move(text);
  return c;
}

Cell Cell::pm(double value, double err, int digits) {
  Cell c;
  c.value = value;
  c.err = err;
  c.digits = digits;
  return c;
}

Cell Cell::num(double value, int digits) {
  Cell c;
  c.value = value;
  c.digits = digits;
  return c;
}

std::string Cell::render() const {
  if (!value) return text;
  if (!std::isfinite(*value)) return "n/a";
  if (err && std::isfinite(*err)) return format_pm(*value, *err, digits);
  std::string s = fmt::format("{:.{}f}", *value, digits);
  if (lo || hi)
    s += " [" + (lo ? fmt::format("{:.{}f}", *lo, digits) : std::string("−∞")) + ", " +
         (hi ? fmt::format("{:.{}f}", *hi, digits) : std::string("+∞")) + "]";
  return s;
}

namespace {

std::string md_escape(const std::string& s) { return replace_all(replace_all(s, "|", "\\|"), "\n", " "); }

bool numeric_cell(const Cell& c) { return c.value.has_value(); }

}  // namespace

std::string table_html(const Table& t) {
  std::string h = "<div class=\"table-wrap\"><table";
  if (!t.id.empty()) h += " id=\"" + escape_xml(t.id) + "\"";
  h += ">\n";
  if (!t.title.empty()) h += "<caption>" + escape_xml(t.title) + "</caption>\n";
  h += "<thead><tr>";
  for (const auto& c : t.columns) h += "<th>" + escape_xml(c) + "</th>";
  h += "</tr></thead>\n<tbody>\n";
  for (const auto& row : t.rows) {
    h += "<tr>";
    for (const auto& c : row) h += std::string(numeric_cell(c) ? "<td class=\"num\">" : "<td>") + escape_xml(c.render()) + "</td>";
    h += "</tr>\n";
  }
  h += "</tbody></table></div>\n";
  if (!t.caption.empty()) h += "<p class=\"table-caption\">" + escape_xml(t.caption) + "</p>\n";
  return h;
}

std::string table_markdown(const Table& t) {
  std::string m;
  if (!t.title.empty()) m += "**" + md_escape(t.title) + "**\n\n";
  m += "|";
  for (const auto& c : t.columns) m += " " + md_escape(c) + " |";
  m += "\n|";
  for (size_t i = 0; i < t.columns.size(); ++i) {
    bool num = !t.rows.empty() && std::all_of(t.rows.begin(), t.rows.end(), [&](const auto& r) {
      return i < r.size() && numeric_cell(r[i]);
    });
    m += num ? "---:|" : "---|";
  }
  m += "\n";
  for (const auto& row : t.rows) {
    m += "|";
    for (const auto& c : row) m += " " + md_escape(c.render()) + " |";
    m += "\n";
  }
  if (!t.caption.empty()) m += "\n" + t.caption + "\n";
  return m;
}

// ------------------------------------------------------------------------------------ JSON access

namespace {

// Reads typed fields from report.json; errors name the file and the JSON path.
struct Reader {
  std::string file;

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw Error(where + ": " + what, file, "report.json must follow the schema in src/report/report.h");
  }
  const json& need(const json& j, const std::string& key, const std::string& where) const {
    if (!j.is_object()) fail(where, "is not an object");
    auto it = j.find(key);
    if (it == j.end()) fail(where, "has no \"" + key + "\"");
    return *it;
  }
  std::string str(const json& j, const std::string& key, const std::string& where, const std::string& def = {},
                  bool required = false) const {
    if (!j.is_object()) fail(where, "is not an object");
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) fail(where, "has no \"" + key + "\"");
      return def;
    }
    if (!it->is_string()) fail(where + "." + key, "is not a string");
    return it->get<std::string>();
  }
  double number(const json& j, const std::string& key, const std::string& where) const {
    const json& v = need(j, key, where);
    if (!v.is_number()) fail(where + "." + key, "is not a number");
    return v.get<double>();
  }
  double number_or(const json& j, const std::string& key, const std::string& where, double def) const {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return def;
    return number(j, key, where);
  }
  std::optional<double> opt(const json& j, const std::string& where) const {
    if (j.is_null()) return std::nullopt;
    if (!j.is_number()) fail(where, "is neither a number nor null");
    return j.get<double>();
  }
  std::optional<double> opt_field(const json& j, const std::string& key, const std::string& where) const {
    if (!j.is_object() || !j.contains(key)) return std::nullopt;
    return opt(j[key], where + "." + key);
  }
  bool boolean(const json& j, const std::string& key, const std::string& where, bool def) const {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_boolean()) fail(where + "." + key, "is not true/false");
    return j[key].get<bool>();
  }
  const json& array(const json& j, const std::string& key, const std::string& where) const {
    const json& v = need(j, key, where);
    if (!v.is_array()) fail(where + "." + key, "is not an array");
    return v;
  }
  std::pair<std::optional<double>, std::optional<double>> interval(const json& j, const std::string& key,
                                                                   const std::string& where) const {
    if (!j.is_object() || !j.contains(key) || j[key].is_null()) return {};
    const json& v = j[key];
    if (!v.is_array() || v.size() != 2) fail(where + "." + key, "is not a [lo, hi] pair");
    return {opt(v[0], where + "." + key + "[0]"), opt(v[1], where + "." + key + "[1]")};
  }
};

json opt_json(const std::optional<double>& x) { return x ? json(*x) : json(nullptr); }

std::string pct_text(double confidence) { return fmt::format("{}%", static_cast<int>(std::lround(confidence * 100))); }

}  // namespace

json line_chart_json(const LineChart& c) {
  json j = {{"id", c.id},           {"title", c.title},     {"caption", c.caption}, {"x_label", c.x_label},
            {"y_label", c.y_label}, {"y2_label", c.y2_label}, {"log_x", c.log_x}, {"markers", c.markers}};
  j["series"] = json::array();
  for (const auto& s : c.series) {
    json pts = json::array();
    for (const auto& p : s.points) {
      if (p.lo || p.hi) pts.push_back({{"x", p.x}, {"y", p.y}, {"lo", opt_json(p.lo)}, {"hi", opt_json(p.hi)}});
      else pts.push_back({p.x, p.y});
    }
    j["series"].push_back({{"name", s.name}, {"right_axis", s.right_axis}, {"dashed", s.dashed}, {"points", pts}});
  }
  return j;
}

namespace {

LineChart line_chart_from(const json& j, const std::string& where, const Reader& rd) {
  LineChart c;
  c.id = rd.str(j, "id", where, {}, true);
  c.title = rd.str(j, "title", where);
  c.caption = rd.str(j, "caption", where);
  c.x_label = rd.str(j, "x_label", where);
  c.y_label = rd.str(j, "y_label", where);
  c.y2_label = rd.str(j, "y2_label", where);
  c.log_x = rd.boolean(j, "log_x", where, false);
  c.markers = rd.boolean(j, "markers", where, true);
  const json& series = rd.array(j, "series", where);
  for (size_t i = 0; i < series.size(); ++i) {
    const std::string w = fmt::format("{}.series[{}]", where, i);
    ChartSeries s;
    s.name = rd.str(series[i], "name", w);
    s.right_axis = rd.boolean(series[i], "right_axis", w, false);
    s.dashed = rd.boolean(series[i], "dashed", w, false);
    const json& pts = rd.array(series[i], "points", w);
    for (size_t k = 0; k < pts.size(); ++k) {
      const std::string pw = fmt::format("{}.points[{}]", w, k);
      ChartPoint p;
      if (pts[k].is_array()) {
        if (pts[k].size() != 2 && pts[k].size() != 4) rd.fail(pw, "is not [x, y] or [x, y, lo, hi]");
        auto x = rd.opt(pts[k][0], pw + "[0]"), y = rd.opt(pts[k][1], pw + "[1]");
        if (!x || !y) rd.fail(pw, "has a null x or y");
        p.x = *x;
        p.y = *y;
        if (pts[k].size() == 4) {
          p.lo = rd.opt(pts[k][2], pw + "[2]");
          p.hi = rd.opt(pts[k][3], pw + "[3]");
        }
      } else {
        p.x = rd.number(pts[k], "x", pw);
        p.y = rd.number(pts[k], "y", pw);
        p.lo = rd.opt_field(pts[k], "lo", pw);
        p.hi = rd.opt_field(pts[k], "hi", pw);
      }
      s.points.push_back(p);
    }
    c.series.push_back(std::move(s));
  }
  return c;
}

Cell cell_from(const json& j, const std::string& where, const Reader& rd) {
  if (j.is_null()) return Cell::of("n/a");
  if (j.is_string()) return Cell::of(j.get<std::string>());
  if (j.is_number()) return Cell::num(j.get<double>());
  if (j.is_boolean()) return Cell::of(j.get<bool>() ? "yes" : "no");
  if (!j.is_object()) rd.fail(where, "is not a table cell");
  Cell c;
  c.text = rd.str(j, "text", where);
  c.value = rd.opt_field(j, "value", where);
  c.err = rd.opt_field(j, "err", where);
  c.lo = rd.opt_field(j, "lo", where);
  c.hi = rd.opt_field(j, "hi", where);
  c.digits = static_cast<int>(rd.number_or(j, "digits", where, 3));
  if (!c.value && c.text.empty()) c.text = "n/a";
  return c;
}

json cell_json(const Cell& c) {
  if (!c.value) return c.text;
  json j = {{"value", *c.value}, {"digits", c.digits}};
  if (c.err) j["err"] = *c.err;
  if (c.lo) j["lo"] = *c.lo;
  if (c.hi) j["hi"] = *c.hi;
  return j;
}

Table table_from(const json& j, const std::string& where, const Reader& rd) {
  Table t;
  t.id = rd.str(j, "id", where);
  t.title = rd.str(j, "title", where);
  t.caption = rd.str(j, "caption", where);
  for (const auto& c : rd.array(j, "columns", where)) {
    if (!c.is_string()) rd.fail(where + ".columns", "holds a non-string");
    t.columns.push_back(c.get<std::string>());
  }
  const json& rows = rd.array(j, "rows", where);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (!rows[i].is_array()) rd.fail(fmt::format("{}.rows[{}]", where, i), "is not an array");
    std::vector<Cell> row;
    for (size_t k = 0; k < rows[i].size(); ++k)
      row.push_back(cell_from(rows[i][k], fmt::format("{}.rows[{}][{}]", where, i, k), rd));
    t.rows.push_back(std::move(row));
  }
  return t;
}

}  // namespace

LineChart line_chart_from_json(const json& j, const std::string& where) { return line_chart_from(j, where, Reader{}); }

json table_json(const Table& t) {
  json j = {{"id", t.id}, {"title", t.title}, {"caption", t.caption}, {"columns", t.columns}};
  j["rows"] = json::array();
  for (const auto& row : t.rows) {
    json r = json::array();
    for (const auto& c : row) r.push_back(cell_json(c));
    j["rows"].push_back(r);
  }
  return j;
}

Table table_from_json(const json& j, const std::string& where) { return table_from(j, where, Reader{}); }

json report_to_json(const Report& r) {
  json j = {{"kind", "atax_report"}, {"version", 1},         {"title", r.title},
            {"summary", r.summary},  {"created", r.created}, {"settings", r.settings}};
  j["sections"] = json::array();
  for (const auto& s : r.sections)
    j["sections"].push_back({{"kind", s.kind}, {"id", s.id}, {"title", s.title}, {"caption", s.caption}, {"data", s.data}});
  return j;
}

Report report_from_json(const json& j, const std::string& file) {
  Reader rd{file};
  if (!j.is_object()) rd.fail("report", "is not a JSON object");
  if (j.contains("kind") && j["kind"] != "atax_report") rd.fail("report.kind", "is not \"atax_report\"");
  Report r;
  r.title = rd.str(j, "title", "report", r.title);
  r.summary = rd.str(j, "summary", "report");
  r.created = rd.str(j, "created", "report");
  r.settings = j.value("settings", json());
  const json& sections = rd.array(j, "sections", "report");
  static const std::set<std::string> kKinds = {"tax", "tradeoff", "line", "table", "text"};
  for (size_t i = 0; i < sections.size(); ++i) {
    const std::string w = fmt::format("sections[{}]", i);
    Section s;
    s.kind = rd.str(sections[i], "kind", w, {}, true);
    if (!kKinds.count(s.kind)) rd.fail(w + ".kind", "'" + s.kind + "' is not tax, tradeoff, line, table or text");
    s.id = rd.str(sections[i], "id", w, {}, true);
    s.title = rd.str(sections[i], "title", w);
    s.caption = rd.str(sections[i], "caption", w);
    s.data = rd.need(sections[i], "data", w);
    r.sections.push_back(std::move(s));
  }
  return r;
}

// ------------------------------------------------------------------------------------ sections

namespace {

// A section rendered for both outputs.
struct Rendered {
  std::string html, markdown;
};

std::string para_html(const std::string& text) {
  std::string out;
  for (const auto& p : split(replace_all(text, "\r\n", "\n"), '\n')) {
    std::string t = trim(p);
    if (!t.empty()) out += "<p>" + escape_xml(t) + "</p>\n";
  }
  return out;
}

std::string figure(const std::string& svg, const std::string& caption, int number) {
  return "<figure>\n" + svg + "<figcaption><strong>Figure " + std::to_string(number) + ".</strong> " +
         escape_xml(caption) + "</figcaption>\n</figure>\n";
}

std::string join_caption(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  std::string t = trim(a);
  if (!t.empty() && t.back() != '.') t += ".";
  return t + " " + b;
}

std::string fmt_opt(const std::optional<double>& v, int digits) {
  return v ? fmt::format("{:.{}f}", *v, digits) : std::string("n/a");
}

std::string fmt_p(double p) { return p >= 0.001 ? fmt::format("{:.3f}", p) : fmt::format("{:.1e}", p); }

std::string fmt_ci(const std::optional<double>& lo, const std::optional<double>& hi, int digits) {
  if (!lo && !hi) return "n/a";
  return "[" + (lo ? fmt::format("{:.{}f}", *lo, digits) : std::string("−∞")) + ", " +
         (hi ? fmt::format("{:.{}f}", *hi, digits) : std::string("+∞")) + "]";
}

// A rate as a percentage ("5.0%").
std::string fmt_rate(double r) { return fmt::format("{:.1f}%", r * 100); }

std::string fmt_pp(const std::optional<double>& v) { return v ? fmt::format("{:+.1f} pp", *v) : std::string("n/a"); }

// Renders a tax section: the capability chart (tax %, the section's id), the safety chart (its own
// scale: percentage points where the rows carry change_pp, id + "-safety"), one table for each, the
// footnotes of the rows that are not measurable, and the summary lines.
Rendered render_tax(const Section& s, const Reader& rd, int& fig) {
  const json& d = s.data;
  const std::string w = "section " + s.id + " data";
  const double conf = rd.number_or(d, "confidence", w, 0.95);
  const std::string base = rd.str(d, "base_name", w, "base"), aligned = rd.str(d, "aligned_name", w, "aligned");
  BarChart chart, schart;
  chart.id = s.id;
  chart.title = s.title.empty() ? "Alignment tax per benchmark" : s.title;
  chart.y_label = "tax (%)";
  schart.id = s.id + "-safety";
  schart.title = "Change in safety metrics";
  const std::string ci = pct_text(conf) + " CI";
  Table table, stable;
  table.columns = {"Benchmark", "Metric", "Better", "N", "Base", "Aligned", "Tax (%)", ci, "Test", "p"};
  const json& rows = rd.array(d, "rows", w);
  bool any_pp = false;
  for (const auto& r : rows)
    if (r.is_object() && r.value("category", "") == "safety" && r.contains("change_pp") && !r["change_pp"].is_null())
      any_pp = true;
  stable.columns = any_pp ? std::vector<std::string>{"Benchmark", "Metric", "Better", "N", "Base rate", "Aligned rate",
                                                     "Change (pp)", ci + " (pp)", "Test", "p"}
                          : table.columns;
  std::vector<std::string> footnotes;  // "n/m: task metric: reason"
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string rw = fmt::format("{}.rows[{}]", w, i);
    const json& r = rows[i];
    Bar b;
    b.label = rd.str(r, "task", rw, {}, true);
    const std::string metric = rd.str(r, "metric", rw);
    const bool hib = rd.boolean(r, "higher_is_better", rw, true);
    b.sublabel = metric + (hib ? " ↑" : " ↓");
    b.group = rd.str(r, "category", rw, "capability");
    const bool is_safety = b.group == "safety";
    b.not_measurable = !rd.boolean(r, "measurable", rw, true);
    const std::string reason = rd.str(r, "not_measurable_reason", rw);
    const auto change_pp = rd.opt_field(r, "change_pp", rw);
    // Rows with change_pp go to the safety chart in points; without any, the safety rows keep their
    // relative tax on the safety chart; a safety row without change_pp beside others that have it
    // (a bias score) keeps its relative tax in the main chart.
    const bool to_safety = is_safety && (!any_pp || change_pp.has_value());
    const bool pp = to_safety && any_pp;
    if (pp) {
      b.value = change_pp;
      std::tie(b.lo, b.hi) = rd.interval(r, "change_pp_ci", rw);
    } else {
      b.value = r.contains("tax_pct") ? rd.opt(r["tax_pct"], rw + ".tax_pct") : std::nullopt;
      std::tie(b.lo, b.hi) = rd.interval(r, "tax_ci", rw);
    }
    const double bv = rd.number(r, "base", rw), av = rd.number(r, "aligned", rw);
    const double bse = rd.number_or(r, "base_stderr", rw, NAN), ase = rd.number_or(r, "aligned_stderr", rw, NAN);
    std::string mark;
    if (b.not_measurable) {
      footnotes.push_back(b.label + " " + metric + ": " + (reason.empty() ? "not measurable" : reason));
      mark = fmt::format("n/m [{}]", footnotes.size());
    }
    const std::string test = rd.str(r, "test", rw);
    Cell test_cell = Cell::of(test == "mcnemar-midp" ? "McNemar mid-p" : test.empty() ? "—" : "paired permutation");
    Cell p_cell = Cell::of(r.contains("p_value") && r["p_value"].is_number() ? fmt_p(r["p_value"].get<double>()) : "—");
    Cell n_cell = Cell::of(fmt::format("{}", static_cast<int64_t>(rd.number_or(r, "n", rw, 0))));
    if (pp) {
      const double br = rd.number_or(r, "base_rate", rw, bv), ar = rd.number_or(r, "aligned_rate", rw, av);
      b.tooltip = fmt::format("{} {}: base {}, aligned {}, change {}", b.label, metric, fmt_rate(br), fmt_rate(ar),
                              b.not_measurable ? "n/m" : fmt_pp(b.value));
      stable.rows.push_back({Cell::of(b.label), Cell::of(metric), Cell::of(hib ? "↑" : "↓"), n_cell,
                             Cell::of(fmt_rate(br)), Cell::of(fmt_rate(ar)),
                             Cell::of(b.not_measurable ? mark : fmt_pp(b.value)),
                             Cell::of(b.not_measurable ? "—" : fmt_ci(b.lo, b.hi, 1)), test_cell, p_cell});
    } else {
      b.tooltip = fmt::format("{} {}: base {:.3f}, aligned {:.3f}, tax {}", b.label, metric, bv, av,
                              b.not_measurable ? "n/m" : fmt_opt(b.value, 2) + "%");
      (to_safety ? stable : table)
          .rows.push_back({Cell::of(b.label), Cell::of(metric), Cell::of(hib ? "↑" : "↓"), n_cell, Cell::pm(bv, bse),
                           Cell::pm(av, ase), Cell::of(b.not_measurable ? mark : fmt_opt(b.value, 2)),
                           Cell::of(b.not_measurable ? "—" : fmt_ci(b.lo, b.hi, 2)), test_cell, p_cell});
    }
    (to_safety ? schart : chart).bars.push_back(b);
  }
  schart.y_label = any_pp ? "change (percentage points)" : "tax (%)";
  if (any_pp) {
    schart.positive_label = "rate up (pp)";
    schart.negative_label = "rate down (pp)";
  }
  std::string summary;
  if (d.contains("mean_capability_tax") && d["mean_capability_tax"].is_object()) {
    const json& m = d["mean_capability_tax"];
    auto v = rd.opt_field(m, "value", w + ".mean_capability_tax");
    auto [lo, hi] = rd.interval(m, "ci", w + ".mean_capability_tax");
    const int64_t n = static_cast<int64_t>(rd.number_or(m, "n_tasks", w + ".mean_capability_tax", 0));
    if (v) {
      chart.reference = *v;
      chart.reference_label = fmt::format("mean capability tax {:.1f}%", *v);
      chart.reference_group = "capability";
      summary += fmt::format("Mean capability tax: {:.2f}% {} over {} capability task(s).", *v, fmt_ci(lo, hi, 2), n);
    } else {
      summary += "Mean capability tax: n/a.";
    }
  }
  std::vector<std::string> safety_lines;
  if (d.contains("safety") && d["safety"].is_array())
    for (size_t i = 0; i < d["safety"].size(); ++i) {
      const json& c = d["safety"][i];
      const std::string cw = fmt::format("{}.safety[{}]", w, i);
      const double change = rd.number(c, "change", cw);
      const std::string verdict = rd.boolean(c, "improved", cw, false) ? "improved" : change == 0 ? "unchanged" : "worse";
      const auto cpp = rd.opt_field(c, "change_pp", cw);
      if (cpp) {
        auto [lo, hi] = rd.interval(c, "change_pp_ci", cw);
        const double br = rd.number_or(c, "base_rate", cw, rd.number(c, "base", cw));
        const double ar = rd.number_or(c, "aligned_rate", cw, rd.number(c, "aligned", cw));
        safety_lines.push_back(fmt::format("{} {}: {} → {} ({}{}, {})", rd.str(c, "task", cw), rd.str(c, "metric", cw),
                                           fmt_rate(br), fmt_rate(ar), fmt_pp(cpp),
                                           lo || hi ? " " + fmt_ci(lo, hi, 1) : std::string(), verdict));
      } else {
        safety_lines.push_back(fmt::format("{} {}: {:.3f} → {:.3f} ({:+.3f}, {})", rd.str(c, "task", cw),
                                           rd.str(c, "metric", cw), rd.number(c, "base", cw),
                                           rd.number(c, "aligned", cw), change, verdict));
      }
    }
  const std::string convention = rd.str(d, "convention", w);
  std::vector<std::string> notes;
  if (d.contains("notes") && d["notes"].is_array())
    for (const auto& n : d["notes"])
      if (n.is_string()) notes.push_back(n.get<std::string>());
  const std::string stats = fmt::format("whiskers: {} paired-bootstrap interval over the same items ({} resamples, seed {}).",
                                        pct_text(conf), static_cast<int64_t>(rd.number_or(d, "resamples", w, 0)),
                                        static_cast<int64_t>(rd.number_or(d, "seed", w, 0)));
  const std::string nm_text = footnotes.empty() ? "" : " n/m: not measurable (see the table's notes), no bar drawn.";
  chart.caption = join_caption(s.caption, fmt::format("Tax of {} relative to {} per benchmark (positive = capability "
                                                      "lost, negative = improvement); {}{}",
                                                      aligned, base, stats, nm_text));
  schart.caption = any_pp ? fmt::format("Safety metrics of {} against {}: change of each rate in percentage points "
                                        "(aligned − base), on its own scale; {}{}",
                                        aligned, base, stats, nm_text)
                          : fmt::format("Safety metrics of {} against {}: tax (%), on its own scale; {}{}", aligned,
                                        base, stats, nm_text);
  auto notes_html = [&](std::string& h, std::string& m) {
    if (footnotes.empty()) return;
    h += "<ol class=\"footnotes nm-notes\">\n";
    for (const auto& f : footnotes) h += "<li>n/m: " + escape_xml(f) + "</li>\n";
    h += "</ol>\n";
    for (size_t i = 0; i < footnotes.size(); ++i) m += fmt::format("[{}] n/m: {}\n", i + 1, footnotes[i]) + "\n";
  };

  Rendered out;
  std::string nm_md;
  std::string nm_html;
  notes_html(nm_html, nm_md);
  if (!chart.bars.empty()) out.html += figure(render_bar_chart(chart), chart.caption, fig);
  if (!table.rows.empty()) out.html += table_html(table);
  if (!schart.bars.empty()) out.html += figure(render_bar_chart(schart), schart.caption, ++fig);
  if (!stable.rows.empty()) out.html += table_html(stable);
  out.html += nm_html;
  if (!summary.empty()) out.html += "<p class=\"summary-line\">" + escape_xml(summary) + "</p>\n";
  if (!safety_lines.empty()) {
    out.html += "<p>Change in safety metrics:</p>\n<ul class=\"safety\">\n";
    for (const auto& l : safety_lines) out.html += "<li>" + escape_xml(l) + "</li>\n";
    out.html += "</ul>\n";
  }
  if (!convention.empty()) out.html += "<p class=\"convention\">Convention: " + escape_xml(convention) + "</p>\n";
  for (const auto& n : notes) out.html += "<p class=\"note\">Note: " + escape_xml(n) + "</p>\n";

  const int first_fig = schart.bars.empty() ? fig : fig - 1;
  if (!chart.bars.empty())
    out.markdown += "*Figure " + std::to_string(first_fig) + " (report.html#" + s.id + "): " + chart.caption + "*\n\n";
  if (!table.rows.empty()) out.markdown += table_markdown(table) + "\n";
  if (!schart.bars.empty())
    out.markdown += "*Figure " + std::to_string(fig) + " (report.html#" + schart.id + "): " + schart.caption + "*\n\n";
  if (!stable.rows.empty()) out.markdown += table_markdown(stable) + "\n";
  out.markdown += nm_md;
  if (!summary.empty()) out.markdown += "**" + summary + "**\n\n";
  if (!safety_lines.empty()) {
    out.markdown += "Change in safety metrics:\n\n";
    for (const auto& l : safety_lines) out.markdown += "- " + l + "\n";
    out.markdown += "\n";
  }
  if (!convention.empty()) out.markdown += "Convention: " + convention + "\n\n";
  for (const auto& n : notes) out.markdown += "Note: " + n + "\n\n";
  return out;
}

std::string alpha_ranges(const std::vector<std::pair<double, size_t>>& best, size_t index) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < best.size()) {
    if (best[i].second != index) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j + 1 < best.size() && best[j + 1].second == index) ++j;
    parts.push_back(i == j ? fmt::format("α = {:g}", best[i].first)
                           : fmt::format("α ∈ [{:g}, {:g}]", best[i].first, best[j].first));
    i = j + 1;
  }
  return parts.empty() ? "" : "best for " + join(parts, ", ");
}

Rendered render_tradeoff(const Section& s, const Reader& rd, int fig) {
  const json& d = s.data;
  const std::string w = "section " + s.id + " data";
  const double conf = rd.number_or(d, "confidence", w, 0.95);
  ScatterChart chart;
  chart.id = s.id;
  chart.title = s.title.empty() ? "Helpfulness vs harmlessness" : s.title;
  chart.x_label = "helpfulness (legitimate prompts answered)";
  chart.y_label = "harmlessness (harmful prompts refused)";
  const json& pts = rd.array(d, "points", w);
  std::vector<std::pair<double, size_t>> best;
  if (d.contains("best") && d["best"].is_array())
    for (size_t i = 0; i < d["best"].size(); ++i) {
      const std::string bw = fmt::format("{}.best[{}]", w, i);
      const double idx = rd.number(d["best"][i], "index", bw);
      if (idx < 0 || idx >= static_cast<double>(pts.size())) rd.fail(bw + ".index", "is out of range");
      best.emplace_back(rd.number(d["best"][i], "alpha", bw), static_cast<size_t>(idx));
    }
  std::sort(best.begin(), best.end());
  auto indices = [&](const json& arr, const std::string& where) {
    std::vector<size_t> out;
    if (!arr.is_array()) rd.fail(where, "is not an array");
    for (const auto& v : arr) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<size_t>() >= pts.size())
        rd.fail(where, "holds an index out of range");
      out.push_back(v.get<size_t>());
    }
    return out;
  };
  if (d.contains("pareto")) chart.front = indices(d["pareto"], w + ".pareto");
  std::string sweep_param;
  if (d.contains("sweep") && d["sweep"].is_object()) {
    sweep_param = rd.str(d["sweep"], "param", w + ".sweep");
    chart.curve = indices(rd.need(d["sweep"], "order", w + ".sweep"), w + ".sweep.order");
    chart.curve_label = "sweep over " + sweep_param;
  }
  Table models;
  models.columns = {"Model", "Settings", "Helpful", pct_text(conf) + " CI", "Harmless", pct_text(conf) + " CI",
                    "Pareto", "α-optimal"};
  for (size_t i = 0; i < pts.size(); ++i) {
    const std::string pw = fmt::format("{}.points[{}]", w, i);
    ScatterPoint p;
    p.label = rd.str(pts[i], "name", pw, fmt::format("model {}", i));
    p.x = rd.number(pts[i], "helpful", pw);
    p.y = rd.number(pts[i], "harmless", pw);
    std::tie(p.x_lo, p.x_hi) = rd.interval(pts[i], "helpful_ci", pw);
    std::tie(p.y_lo, p.y_hi) = rd.interval(pts[i], "harmless_ci", pw);
    p.note = alpha_ranges(best, i);
    std::vector<std::string> params;
    if (pts[i].contains("params") && pts[i]["params"].is_object())
      for (const auto& [k, v] : pts[i]["params"].items()) params.push_back(k + "=" + (v.is_number() ? fmt::format("{:g}", v.get<double>()) : v.dump()));
    auto counts = [&](const char* k, const char* n) {
      if (pts[i].contains(k) && pts[i].contains(n) && pts[i][k].is_number() && pts[i][n].is_number())
        return fmt::format(" ({}/{})", pts[i][k].get<int64_t>(), pts[i][n].get<int64_t>());
      return std::string();
    };
    const bool on_front = std::find(chart.front.begin(), chart.front.end(), i) != chart.front.end();
    models.rows.push_back({Cell::of(p.label), Cell::of(join(params, ", ")),
                           Cell::of(fmt::format("{:.3f}", p.x) + counts("helpful_k", "helpful_n")),
                           Cell::of(fmt_ci(p.x_lo, p.x_hi, 3)),
                           Cell::of(fmt::format("{:.3f}", p.y) + counts("harmless_k", "harmless_n")),
                           Cell::of(fmt_ci(p.y_lo, p.y_hi, 3)), Cell::of(on_front ? "yes" : ""),
                           Cell::of(p.note.empty() ? "" : p.note.substr(9))});
    chart.points.push_back(std::move(p));
  }
  Table alphas;
  alphas.columns = {"α", "Best model", "U = α·helpful + (1 − α)·harmless"};
  for (size_t i = 0; i < best.size(); ++i) {
    const auto& b = d["best"][i];
    const std::string bw = fmt::format("{}.best[{}]", w, i);
    alphas.rows.push_back({Cell::of(fmt::format("{:.2f}", rd.number(b, "alpha", bw))),
                           Cell::of(chart.points[static_cast<size_t>(rd.number(b, "index", bw))].label),
                           Cell::num(rd.number_or(b, "utility", bw, NAN), 3)});
  }
  std::string grid;
  if (!best.empty())
    grid = best.size() == 1 ? fmt::format(" at α = {:g}", best.front().first)
                            : fmt::format(" over {} values of α from {:g} to {:g}", best.size(), best.front().first,
                                          best.back().first);
  const std::string auto_caption = fmt::format(
      "Helpfulness = share of legitimate prompts answered, harmlessness = share of harmful prompts refused, with {} "
      "{} intervals; dashed line: Pareto front (non-dominated models); rings: models that maximise U = α·helpful + "
      "(1 − α)·harmless{}{}.",
      pct_text(conf), rd.str(d, "interval", w, "Wilson") == "wilson" ? "Wilson" : rd.str(d, "interval", w, "Wilson"),
      grid, sweep_param.empty() ? "" : "; grey line: the sweep over " + sweep_param + " in order");
  chart.caption = join_caption(s.caption, auto_caption);
  Rendered out;
  out.html = figure(render_scatter_chart(chart), chart.caption, fig) + table_html(models);
  if (!alphas.rows.empty()) out.html += table_html(alphas);
  out.markdown = "*Figure " + std::to_string(fig) + " (report.html#" + s.id + "): " + chart.caption + "*\n\n" +
                 table_markdown(models) + "\n";
  if (!alphas.rows.empty()) out.markdown += table_markdown(alphas) + "\n";
  std::vector<std::string> front;
  for (size_t i : chart.front) front.push_back(chart.points[i].label);
  if (!front.empty()) {
    out.markdown += "Pareto front (by helpfulness): " + join(front, " → ") + "\n\n";
    out.html += "<p>Pareto front (by helpfulness): " + escape_xml(join(front, " → ")) + "</p>\n";
  }
  return out;
}

// The values of a line chart as a Markdown table: one row per x (at most 25, evenly spaced).
std::string line_values_markdown(const LineChart& c) {
  std::set<double> xs_set;
  for (const auto& s : c.series)
    for (const auto& p : s.points) xs_set.insert(p.x);
  std::vector<double> xs(xs_set.begin(), xs_set.end());
  if (xs.empty()) return "(no data)\n";
  std::vector<double> shown;
  const size_t max_rows = 25;
  if (xs.size() <= max_rows) shown = xs;
  else
    for (size_t k = 0; k < max_rows; ++k) shown.push_back(xs[k * (xs.size() - 1) / (max_rows - 1)]);
  Table t;
  t.columns.push_back(c.x_label.empty() ? "x" : c.x_label);
  for (const auto& s : c.series) t.columns.push_back(s.name);
  for (double x : shown) {
    std::vector<Cell> row = {Cell::of(fmt::format("{:g}", x))};
    for (const auto& s : c.series) {
      auto it = std::find_if(s.points.begin(), s.points.end(), [&](const ChartPoint& p) { return p.x == x; });
      if (it == s.points.end()) {
        row.push_back(Cell::of("—"));
        continue;
      }
      Cell cell = Cell::num(it->y, 4);
      cell.lo = it->lo;
      cell.hi = it->hi;
      if (it->lo && it->hi) cell.digits = 3;
      row.push_back(cell);
    }
    t.rows.push_back(std::move(row));
  }
  std::string m = table_markdown(t);
  if (shown.size() < xs.size()) m += fmt::format("\n({} of {} x values shown)\n", shown.size(), xs.size());
  return m;
}

Rendered render_line(const Section& s, const Reader& rd, int fig) {
  LineChart c = line_chart_from(s.data, "section " + s.id + " data", rd);
  c.id = s.id;
  if (!s.title.empty() && c.title.empty()) c.title = s.title;
  c.caption = join_caption(s.caption, c.caption);
  Rendered out;
  out.html = figure(render_line_chart(c), c.caption, fig);
  out.markdown = "*Figure " + std::to_string(fig) + " (report.html#" + s.id + "): " + c.caption + "*\n\n" +
                 line_values_markdown(c) + "\n";
  return out;
}

Rendered render_section(const Section& s, const Reader& rd, int& fig) {
  if (s.kind == "tax") return render_tax(s, rd, ++fig);
  if (s.kind == "tradeoff") return render_tradeoff(s, rd, ++fig);
  if (s.kind == "line") return render_line(s, rd, ++fig);
  if (s.kind == "table") {
    Table t = table_from(s.data, "section " + s.id + " data", rd);
    if (t.caption.empty()) t.caption = s.caption;
    return {table_html(t), table_markdown(t) + "\n"};
  }
  if (s.kind == "text") {
    std::string text = rd.str(s.data, "text", "section " + s.id + " data");
    return {para_html(text), text + "\n\n"};
  }
  rd.fail("section " + s.id, "has unknown kind '" + s.kind + "'");
}

const char* const kCss = R"css(
:root { color-scheme: light; }
body { margin: 0; background: #f6f7f9; color: #1d1d1f;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; background: #ffffff; }
h1 { font-size: 28px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 36px 0 10px; padding-top: 12px; border-top: 1px solid #e3e3e3; }
.meta { color: #666; font-size: 13px; margin: 0 0 12px; }
nav ol { margin: 8px 0 0; padding-left: 22px; columns: 2; font-size: 14px; }
a { color: #0063a6; }
figure { margin: 12px 0 16px; }
svg.chart { display: block; max-width: 100%; height: auto; border: 1px solid #ececec; border-radius: 6px; }
figcaption { font-size: 13px; color: #444; margin-top: 6px; max-width: 960px; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 10px 0; font-size: 13px; max-width: 100%; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 4px 7px; text-align: left; white-space: normal;
  overflow-wrap: anywhere; vertical-align: top; }
th { overflow-wrap: normal; }
td.num { white-space: nowrap; }
.nm-notes { font-size: 13px; color: #555; margin: 4px 0 10px; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.convention, .note, .table-caption { color: #555; font-size: 13px; }
.summary-line { font-weight: 600; }
pre { background: #f4f5f7; padding: 10px; overflow-x: auto; font-size: 12.5px; }
)css";

}  // namespace

std::string render_html(const Report& r) {
  Reader rd{"report"};
  std::set<std::string> ids;
  std::string body, toc;
  int fig = 0;
  for (const auto& s : r.sections) {
    if (!ids.insert(s.id).second) rd.fail("section " + s.id, "repeats an id");
    Rendered part = render_section(s, rd, fig);
    const std::string anchor = "sec-" + s.id;
    toc += "<li><a href=\"#" + escape_xml(anchor) + "\">" + escape_xml(s.title.empty() ? s.id : s.title) + "</a></li>\n";
    body += "<section id=\"" + escape_xml(anchor) + "\" class=\"section section-" + escape_xml(s.kind) + "\">\n";
    if (!s.title.empty()) body += "<h2>" + escape_xml(s.title) + "</h2>\n";
    if (s.kind == "text" && !s.caption.empty())
      body += "<p class=\"table-caption\">" + escape_xml(s.caption) + "</p>\n";
    body += part.html + "</section>\n";
  }
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>" + escape_xml(r.title) + "</title>\n<style>" + kCss + "</style>\n</head>\n<body>\n<main>\n<header>\n";
  h += "<h1>" + escape_xml(r.title) + "</h1>\n";
  h += "<p class=\"meta\">" + escape_xml((r.created.empty() ? "" : "Created " + r.created + " · ") + "atax " +
                                         atax_version() + " (" + atax_git_hash() + ")") + "</p>\n";
  if (!r.summary.empty()) h += para_html(r.summary);
  if (!toc.empty()) h += "<nav><ol>\n" + toc + "</ol></nav>\n";
  h += "</header>\n" + body;
  if (!r.settings.is_null() && !r.settings.empty())
    h += "<section id=\"sec-settings\" class=\"section\">\n<h2>Settings</h2>\n<pre>" + escape_xml(r.settings.dump(2)) +
         "</pre>\n</section>\n";
  h += "</main>\n</body>\n</html>\n";
  return h;
}

std::string render_markdown(const Report& r) {
  Reader rd{"report"};
  std::string m = "# " + r.title + "\n\n";
  if (!r.created.empty()) m += "_Created " + r.created + " with atax " + atax_version() + " (" + atax_git_hash() + ")._\n\n";
  if (!r.summary.empty()) m += r.summary + "\n\n";
  int fig = 0;
  for (const auto& s : r.sections) {
    Rendered part = render_section(s, rd, fig);
    if (!s.title.empty()) m += "## " + s.title + "\n\n";
    if (s.kind == "text" && !s.caption.empty()) m += "_" + s.caption + "_\n\n";
    m += part.markdown;
  }
  if (!r.settings.is_null() && !r.settings.empty()) m += "## Settings\n\n```json\n" + r.settings.dump(2) + "\n```\n";
  return m;
}

void write_report(const Report& report, const fs::path& dir) {
  Report r = report;
  if (r.created.empty()) r.created = iso_datetime_utc();
  // Render both before writing anything, so a malformed section leaves no partial report.
  const std::string html = render_html(r), md = render_markdown(r);
  fs::create_directories(dir);
  write_json_atomic(dir / "report.json", report_to_json(r));
  write_file_atomic(dir / "report.md", md);
  write_file_atomic(dir / "report.html", html);
}

}  // namespace atax::report
