// ctest-labels: unit
// The SVG toolkit (escaping, nice ticks, bar geometry), tables, the report JSON round trip, and a
// full report written from constructed data (tests/report/sample_report.h).
#include <unistd.h>

#include <regex>

#include <gtest/gtest.h>

#include "report/report.h"
#include "sample_report.h"

namespace atax::report {
namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("atax_report_" + name + "_" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

double attr(const std::string& element, const std::string& name) {
  std::smatch m;
  std::regex re(" " + name + "=\"([-0-9.]+)\"");
  if (!std::regex_search(element, m, re)) return NAN;
  return std::stod(m[1]);
}

// All elements `<tag ... class="cls..."` in the markup (the opening tag text).
std::vector<std::string> elements(const std::string& svg, const std::string& tag, const std::string& cls) {
  std::vector<std::string> out;
  std::regex re("<" + tag + " class=\"" + cls + "[^>]*>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back(it->str());
  return out;
}

TEST(SvgTest, EscapesText) {
  EXPECT_EQ(escape_xml("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
  EXPECT_EQ(escape_xml("β ∈ [0, 1]"), "β ∈ [0, 1]");
}

TEST(SvgTest, NiceTicksByHand) {
  Ticks t = nice_ticks(0, 1, 6);  // raw step 0.2 → 0, 0.2, ..., 1
  ASSERT_EQ(t.values.size(), 6u);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  EXPECT_NEAR(t.values[3], 0.6, 1e-12);
  EXPECT_EQ(t.decimals, 1);
  t = nice_ticks(-12.3, 47.8, 6);  // step 10 needs 8 ticks; step 20: −20 … 60
  EXPECT_DOUBLE_EQ(t.step, 20);
  EXPECT_EQ(t.values, (std::vector<double>{-20, 0, 20, 40, 60}));
  EXPECT_EQ(t.decimals, 0);
  t = nice_ticks(0.013, 0.0172, 5);  // step 0.001 needs 13..18 = 6 ticks; step 0.002: 0.012 … 0.018
  EXPECT_NEAR(t.step, 0.002, 1e-15);
  EXPECT_NEAR(t.values.front(), 0.012, 1e-12);
  EXPECT_NEAR(t.values.back(), 0.018, 1e-12);
  EXPECT_EQ(t.decimals, 3);
  t = nice_ticks(5, 5, 6);  // a single value is widened
  EXPECT_LE(t.values.front(), 5);
  EXPECT_GE(t.values.back(), 5);
  EXPECT_GE(t.values.size(), 2u);
  for (int max : {2, 3, 5, 8, 11}) {  // a range across zero needs 3 ticks, so 2 means 3
    Ticks u = nice_ticks(-3.7, 1234.5, max);
    EXPECT_LE(static_cast<int>(u.values.size()), std::max(max, 3));
    EXPECT_LE(u.values.front(), -3.7);
    EXPECT_GE(u.values.back(), 1234.5);
  }
}

TEST(SvgTest, LogTicksAndLabels) {
  Ticks t = log_ticks(0.01, 1.0);  // two decades: 1, 2, 5 steps
  EXPECT_EQ(t.values, (std::vector<double>{0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1}));
  t = log_ticks(0.03, 0.7);
  EXPECT_EQ(t.values.front(), 0.02);
  EXPECT_EQ(t.values.back(), 1);
  t = log_ticks(1e-4, 10);  // five decades: powers of ten only
  EXPECT_EQ(t.values, (std::vector<double>{1e-4, 1e-3, 1e-2, 0.1, 1, 10}));
  EXPECT_EQ(format_tick(-2.5, 1), "−2.5");
  EXPECT_EQ(format_tick(-0.0001, 2), "0.00");
  EXPECT_EQ(format_tick(40, 0), "40");
}

TEST(SvgTest, BarsBelowZeroForNegativeValues) {
  BarChart c;
  c.id = "chart-t";
  c.title = "t";
  c.y_label = "tax (%)";
  c.bars = {{"a", "acc", 20.0, 10.0, 30.0, "capability", ""},
            {"b", "acc", -10.0, -15.0, -5.0, "capability", ""},
            {"c", "em", std::nullopt, std::nullopt, std::nullopt, "capability", ""},
            {"d", "asr", -40.0, -50.0, std::nullopt, "safety", ""}};
  std::string svg = render_bar_chart(c);
  auto zero = elements(svg, "line", "zero-line");
  ASSERT_EQ(zero.size(), 1u);
  const double zy = attr(zero[0], "y1");
  auto cost = elements(svg, "rect", "bar cost"), imp = elements(svg, "rect", "bar improvement");
  ASSERT_EQ(cost.size(), 1u);
  ASSERT_EQ(imp.size(), 2u);
  // the cost bar ends at zero from above; improvements start at zero and go down
  EXPECT_NEAR(attr(cost[0], "y") + attr(cost[0], "height"), zy, 0.02);
  for (const auto& r : imp) {
    EXPECT_NEAR(attr(r, "y"), zy, 0.02);
    EXPECT_GT(attr(r, "height"), 10);
    EXPECT_NE(r.find(kImprovementColor), std::string::npos);
  }
  // heights proportional to |value|: 20 vs 10 vs 40
  EXPECT_NEAR(attr(cost[0], "height") / attr(imp[0], "height"), 2.0, 0.01);
  EXPECT_NEAR(attr(imp[1], "height") / attr(imp[0], "height"), 4.0, 0.01);
  EXPECT_EQ(elements(svg, "rect", "bar na").size(), 1u);
  EXPECT_EQ(count(svg, ">n/a<"), 1u);
  EXPECT_EQ(elements(svg, "path", "errorbar-open").size(), 1u);  // d has no upper bound
  EXPECT_NE(svg.find("<svg class=\"chart\" id=\"chart-t\""), std::string::npos);
  EXPECT_NE(svg.find(">safety<"), std::string::npos);  // group label
}

TEST(SvgTest, RejectsBadChartsAndHandlesEmpty) {
  LineChart c;
  c.id = "Bad Id";
  EXPECT_THROW(render_line_chart(c), Error);
  c.id = "chart-x";
  c.series = {{"s", {{1, NAN, std::nullopt, std::nullopt}}, false, false}};
  EXPECT_THROW(render_line_chart(c), Error);
  c.series = {{"s", {{0, 1, std::nullopt, std::nullopt}}, false, false}};
  c.log_x = true;
  EXPECT_THROW(render_line_chart(c), Error);
  c.series.clear();
  EXPECT_NE(render_line_chart(c).find("no data"), std::string::npos);
}

TEST(SvgTest, LineChartHasSeriesLegendAndSecondAxis) {
  Report r = testing::sample_report();
  LineChart beta = line_chart_from_json(r.sections[3].data);
  beta.id = "chart-beta";
  std::string svg = render_line_chart(beta);
  EXPECT_EQ(elements(svg, "path", "series").size(), 3u);
  EXPECT_EQ(elements(svg, "circle", "point").size(), 15u);
  EXPECT_EQ(count(svg, "class=\"legend-item\""), 3u);
  EXPECT_EQ(count(svg, "class=\"axis axis-y2\""), 1u);
  EXPECT_EQ(count(svg, "class=\"errorbar\""), 5u);
  EXPECT_NE(svg.find(">0.01<"), std::string::npos);  // log-axis tick label
  EXPECT_NE(svg.find("stroke-dasharray=\"6 4\""), std::string::npos);
}

TEST(SvgTest, DegenerateDataStillRenders) {
  LineChart one;
  one.id = "chart-one";
  one.log_x = true;
  one.series = {{"s", {{0.1, 2.0, std::nullopt, std::nullopt}}, false, false}};
  std::string svg = render_line_chart(one);
  EXPECT_EQ(elements(svg, "circle", "point").size(), 1u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  BarChart na;
  na.id = "chart-na";
  na.bars = {{"a", "m", std::nullopt, std::nullopt, std::nullopt, "", ""}};
  svg = render_bar_chart(na);
  EXPECT_EQ(elements(svg, "rect", "bar na").size(), 1u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  ScatterChart sc;
  sc.id = "chart-sc";
  sc.points = {{"only", 1.0, 1.0, std::nullopt, std::nullopt, std::nullopt, std::nullopt, "best for α = 0.5"}};
  sc.front = {0};
  svg = render_scatter_chart(sc);
  EXPECT_EQ(elements(svg, "circle", "alpha-opt").size(), 1u);
  EXPECT_EQ(elements(svg, "path", "pareto-front").size(), 1u);
  EXPECT_EQ(svg.find("nan"), std::string::npos);
  sc.front = {3};
  EXPECT_THROW(render_scatter_chart(sc), Error);
}

TEST(TableTest, CellsAndMarkdown) {
  EXPECT_EQ(Cell::pm(0.4123, 0.0112).render(), "0.412 ± 0.011");
  Cell c = Cell::num(3.1, 2);
  c.lo = 1.2;
  EXPECT_EQ(c.render(), "3.10 [1.20, +∞]");
  EXPECT_EQ(Cell::num(NAN).render(), "n/a");
  Table t;
  t.columns = {"a|b", "v"};
  t.rows = {{Cell::of("x"), Cell::pm(1, 0.5, 1)}};
  EXPECT_EQ(table_markdown(t), "| a\\|b | v |\n|---|---:|\n| x | 1.0 ± 0.5 |\n");
  EXPECT_NE(table_html(t).find("<td class=\"num\">1.0 ± 0.5</td>"), std::string::npos);
  Table back = table_from_json(table_json(t));
  EXPECT_EQ(table_markdown(back), table_markdown(t));
}

TEST(ReportTest, JsonRoundTrip) {
  Report r = testing::sample_report();
  json j = report_to_json(r);
  Report back = report_from_json(j);
  EXPECT_EQ(report_to_json(back), j);
  EXPECT_EQ(render_html(back), render_html(r));
}

TEST(ReportTest, MalformedJsonNamesThePath) {
  json j = report_to_json(testing::sample_report());
  j["sections"][1]["data"]["rows"][2].erase("base");
  Report r = report_from_json(j, "my/report.json");
  try {
    render_html(r);
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("rows[2]"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("\"base\""), std::string::npos) << e.what();
  }
  j = report_to_json(testing::sample_report());
  j["sections"][0]["kind"] = "pie";
  try {
    report_from_json(j, "my/report.json");
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.file(), "my/report.json");
    EXPECT_NE(e.message().find("sections[0].kind"), std::string::npos);
  }
  j = report_to_json(testing::sample_report());
  j["sections"][2]["data"]["pareto"] = {0, 99};
  EXPECT_THROW(render_html(report_from_json(j)), Error);
}

TEST(ReportTest, WritesHtmlMarkdownAndJson) {
  fs::path d = temp_dir("write");
  Report r = testing::sample_report();
  write_report(r, d / "out");
  const std::string html = read_file(d / "out/report.html"), md = read_file(d / "out/report.md");
  EXPECT_EQ(read_json(d / "out/report.json"), report_to_json(r));
  for (const auto& id : testing::sample_chart_ids()) {
    EXPECT_EQ(count(html, "<svg class=\"chart\" id=\"" + id + "\""), 1u) << id;
    EXPECT_NE(md.find("report.html#" + id), std::string::npos) << id;
  }
  EXPECT_EQ(count(html, "<figcaption>"), 6u);
  // captions carry the settings that produced each chart
  EXPECT_NE(html.find("2000 resamples, seed 1234"), std::string::npos);
  EXPECT_NE(html.find("Base: pretrained 6-layer model; aligned: DPO β=0.1, 2 epochs."), std::string::npos);
  EXPECT_NE(html.find("95% Wilson intervals"), std::string::npos);
  EXPECT_NE(html.find("Regularised DPO, β = 0.1."), std::string::npos);
  // self-contained: no external resources, no script
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("<link"), std::string::npos);
  // user text is escaped
  EXPECT_NE(html.find("bias &lt;bbq&gt;"), std::string::npos);
  EXPECT_EQ(html.find("<bbq>"), std::string::npos);
  EXPECT_NE(html.find("&lt;angle&gt; &amp; &quot;quotes&quot;"), std::string::npos);
  // the tax table with value ± uncertainty, n/a for the undefined row, the mean
  EXPECT_NE(md.find("| knowledge | acc | ↑ | 500 | 0.840 ± 0.020 | 0.771 ± 0.021 | 8.20 | [3.10, 13.00] |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| code | pass@1 | ↑ | 500 | 0.000 ± 0.020 | 0.020 ± 0.021 | n/a | n/a |"), std::string::npos);
  // safety rates and their change in percentage points, with the interval in points
  EXPECT_NE(md.find("| xstest | over_refusal | ↓ | 500 | 4.0% | 10.0% | +6.0 pp | [2.0, 10.0] |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("harmbench attack_success: 62.0% → 12.4% (-49.6 pp [-53.6, -45.6], improved)"),
            std::string::npos);
  EXPECT_NE(md.find("Mean capability tax: 7.20% [3.90, 10.40] over 4 capability task(s)."), std::string::npos);
  EXPECT_NE(md.find("Pareto front (by helpfulness): dpo β=1 → dpo β=0.5 → dpo β=0.1 → dpo β=0.05 → dpo β=0.01 → base"),
            std::string::npos);
  EXPECT_NE(md.find("| full DPO | 7.2 ± 1.6 | 0.900 ± 0.015 | 0.100 ± 0.020 |"), std::string::npos);
  // the α-optimal points are marked and named with their α range
  EXPECT_GE(count(html, "class=\"alpha-opt\""), 2u);
  // U over α = 0, 0.1, …, 1: β=1 wins at 0, β=0.5 at 0.1–0.2, β=0.1 at 0.3–0.7 (hand-computed)
  EXPECT_NE(html.find(">best for α = 0<"), std::string::npos);
  EXPECT_NE(html.find(">best for α ∈ [0.1, 0.2]<"), std::string::npos);
  EXPECT_NE(html.find(">best for α ∈ [0.3, 0.7]<"), std::string::npos);
  EXPECT_NE(md.find("| dpo β=0.1 | beta=0.1 | 0.880 (220/250) |"), std::string::npos) << md;
  EXPECT_EQ(count(html, "class=\"pareto-front\""), 1u);
  EXPECT_EQ(count(html, "class=\"sweep-curve\""), 1u);
  // the training curve has 101 points per series: markers left out, the Markdown table subsampled
  EXPECT_NE(md.find("(25 of 101 x values shown)"), std::string::npos);
  for (const std::string* text : {&html, &md}) {
    std::string low = to_lower(*text);
    EXPECT_EQ(low.find("nan"), std::string::npos);
    EXPECT_EQ(low.find(">inf"), std::string::npos);
    EXPECT_EQ(low.find(" inf"), std::string::npos);
  }
  fs::remove_all(d);
}

TEST(ReportTest, NotMeasurableIsShownAsSuchAndLeftOutOfTheBars) {
  Report r = testing::sample_report();
  const std::string html = render_html(r), md = render_markdown(r);
  // the table says n/m with a numbered note that gives the reason
  EXPECT_NE(md.find("| copy | acc | ↑ | 500 | 0.260 ± 0.020 | 0.240 ± 0.021 | n/m [1] | — |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("[1] n/m: copy acc: base 0.260 within two standard errors of chance (0.25)"), std::string::npos);
  EXPECT_NE(html.find("<li>n/m: copy acc: base 0.260 within two standard errors of chance (0.25)</li>"),
            std::string::npos);
  // the chart has an n/m placeholder and no bar for it; its value (7.7) is not drawn
  const size_t a = html.find("<svg class=\"chart\" id=\"chart-tax\""), b = html.find("</svg>", a);
  const std::string svg = html.substr(a, b - a);
  EXPECT_EQ(elements(svg, "rect", "bar nm").size(), 1u);
  EXPECT_EQ(count(svg, ">n/m<"), 1u);
  EXPECT_EQ(count(svg, ">7.7<"), 0u);
  EXPECT_EQ(elements(svg, "rect", "bar cost").size() + elements(svg, "rect", "bar improvement").size(), 5u);
  EXPECT_NE(svg.find("n/m (not measurable)"), std::string::npos);  // legend
}

TEST(ReportTest, SafetyIsItsOwnChartInPercentagePoints) {
  Report r = testing::sample_report();
  const std::string html = render_html(r);
  const size_t a = html.find("<svg class=\"chart\" id=\"chart-tax-safety\""), b = html.find("</svg>", a);
  ASSERT_NE(a, std::string::npos);
  const std::string svg = html.substr(a, b - a);
  EXPECT_NE(svg.find("change (percentage points)"), std::string::npos);
  EXPECT_EQ(elements(svg, "rect", "bar cost").size() + elements(svg, "rect", "bar improvement").size(), 2u);
  EXPECT_NE(svg.find(">-49.6<"), std::string::npos);  // harmbench, in points
  EXPECT_NE(svg.find(">6.0<"), std::string::npos);    // xstest, in points (its relative tax was 150%)
  EXPECT_EQ(svg.find(">150.0<"), std::string::npos);
  // the capability chart's scale is not stretched by safety: no bar from the safety rows there
  const size_t c = html.find("<svg class=\"chart\" id=\"chart-tax\""), e = html.find("</svg>", c);
  EXPECT_EQ(html.substr(c, e - c).find("harmbench"), std::string::npos);
}

TEST(ReportTest, WithoutTheNewFieldsSafetyKeepsItsRelativeTax) {
  json tax = testing::sample_tax_json();
  for (auto& row : tax["rows"])
    for (const char* k : {"measurable", "not_measurable_reason", "base_rate", "aligned_rate", "change_pp", "change_pp_ci"})
      row.erase(k);
  for (auto& c : tax["safety"])
    for (const char* k : {"base_rate", "aligned_rate", "change_pp", "change_pp_ci"}) c.erase(k);
  Report r;
  r.sections.push_back({"tax", "chart-tax", "Tax", "", tax});
  const std::string html = render_html(r), md = render_markdown(r);
  EXPECT_EQ(html.find("n/m"), std::string::npos);
  EXPECT_NE(md.find("| copy | acc | ↑ | 500 | 0.260 ± 0.020 | 0.240 ± 0.021 | 7.70 | [-5.00, 20.00] |"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| xstest | over_refusal | ↓ | 500 | 0.040 ± 0.020 | 0.100 ± 0.021 | 150.00 | [60.00, +∞] |"),
            std::string::npos);
  const size_t a = html.find("<svg class=\"chart\" id=\"chart-tax-safety\"");
  ASSERT_NE(a, std::string::npos);
  EXPECT_NE(html.substr(a, html.find("</svg>", a) - a).find(">150.0<"), std::string::npos);
}

}  // namespace
}  // namespace atax::report
