// atax report: renders report.json (or tax / tradeoff JSON written by `atax tax` and
// `atax tradeoff`) into a self-contained report.html with SVG charts, report.md and report.json.
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "report/report.h"

namespace atax::cli {
namespace {

struct ReportCmdOptions {
  std::string in, out = "out/report", title;
  std::vector<std::string> tax, tradeoff;
};

// A section id from a file name: "chart-" + the stem in [a-z0-9-].
std::string section_id(const std::string& prefix, const std::string& path, size_t index) {
  std::string stem = to_lower(fs::path(path).stem().string()), id;
  for (char c : stem) id += (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ? c : '-';
  return fmt::format("chart-{}-{}-{}", prefix, index + 1, id.empty() ? "x" : id);
}

void add_report(CLI::App& app) {
  auto o = std::make_shared<ReportCmdOptions>();
  auto* sub = app.add_subcommand(
      "report", "Write report.html (self-contained, SVG charts), report.md and report.json from a report JSON, or "
                "from the JSON outputs of `atax tax` and `atax tradeoff`");
  sub->add_option("--in", o->in, "report.json (schema: src/report/report.h)")->check(CLI::ExistingFile);
  sub->add_option("--tax", o->tax, "tax JSON files (atax tax --format json) to add as sections")
      ->delimiter(',')->check(CLI::ExistingFile);
  sub->add_option("--tradeoff", o->tradeoff, "tradeoff JSON files (atax tradeoff --format json) to add")
      ->delimiter(',')->check(CLI::ExistingFile);
  sub->add_option("--title", o->title, "report title");
  sub->add_option("--out", o->out, "output folder")->capture_default_str();
  sub->callback([o] {
    if (o->in.empty() && o->tax.empty() && o->tradeoff.empty())
      throw Error("nothing to report", "", "pass --in report.json, or --tax / --tradeoff JSON files");
    report::Report r;
    if (!o->in.empty()) r = report::report_from_json(read_json(o->in), o->in);
    if (!o->title.empty()) r.title = o->title;
    for (size_t i = 0; i < o->tax.size(); ++i) {
      json d = read_json(o->tax[i]);
      if (d.value("kind", "") != "tax_table")
        throw Error("not a tax table (kind != \"tax_table\")", o->tax[i], "write it with `atax tax --format json`");
      r.sections.push_back({"tax", section_id("tax", o->tax[i], i),
                            fmt::format("Tax of {} relative to {}", d.value("aligned_name", "aligned"),
                                        d.value("base_name", "base")),
                            "From " + o->tax[i] + ".", d});
    }
    for (size_t i = 0; i < o->tradeoff.size(); ++i) {
      json d = read_json(o->tradeoff[i]);
      if (d.value("kind", "") != "tradeoff")
        throw Error("not a tradeoff (kind != \"tradeoff\")", o->tradeoff[i],
                    "write it with `atax tradeoff --format json`");
      r.sections.push_back({"tradeoff", section_id("tradeoff", o->tradeoff[i], i), "Helpfulness vs harmlessness",
                            "From " + o->tradeoff[i] + ".", d});
    }
    report::write_report(r, o->out);
    std::cout << (fs::path(o->out) / "report.html").string() << "\n";
  });
}

ATAX_COMMAND("report", add_report);

}  // namespace
}  // namespace atax::cli
