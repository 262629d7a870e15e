// atax runs: lists the runs of a sweep's run store (settings key, status, timings, metrics) and
// compares chosen runs side by side (the settings that differ, every metric).
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "store/store.h"

namespace atax::cli {
namespace {

struct RunsCmdOptions {
  std::string store = store::RunStore::kDefaultPath;
  std::vector<int64_t> compare;
  bool json_out = false;
  std::string status, name;
  int64_t limit = 0;
};

void add_runs(CLI::App& app) {
  auto o = std::make_shared<RunsCmdOptions>();
  auto* sub = app.add_subcommand("runs", "List the runs recorded by sweeps (status, timings, metrics) and compare "
                                         "runs side by side");
  sub->add_option("--store", o->store, "the run store (SQLite)")->capture_default_str();
  sub->add_option("--compare", o->compare, "run ids to compare, e.g. 3,5")->delimiter(',');
  sub->add_flag("--json", o->json_out, "print JSON instead of a table");
  sub->add_option("--status", o->status, "only runs with this status")
      ->check(CLI::IsMember({"pending", "running", "done", "failed"}));
  sub->add_option("--name", o->name, "only runs whose name contains this");
  sub->add_option("--limit", o->limit, "at most this many runs");
  sub->callback([o] {
    store::RunStore s = store::RunStore::open_existing(o->store);
    if (!o->compare.empty()) {
      if (o->compare.size() < 2) throw Error("--compare needs at least two run ids", "", "e.g. --compare 3,5");
      store::RunComparison cmp = store::compare(s, o->compare);
      std::cout << (o->json_out ? store::comparison_json(cmp).dump(2) + "\n" : store::comparison_table(cmp));
      return;
    }
    store::RunFilter f;
    if (!o->status.empty()) f.status = store::parse_status(o->status);
    f.name_contains = o->name;
    f.limit = o->limit;
    std::vector<store::Run> runs = s.list(f);
    if (o->json_out) {
      json j = json::array();
      for (const auto& r : runs) j.push_back(store::run_json(r));
      std::cout << j.dump(2) << "\n";
    } else {
      std::cout << store::runs_table(runs);
      int64_t done = 0;
      for (const auto& r : runs) done += r.status == store::RunStatus::kDone;
      std::cout << fmt::format("{} run(s), {} done — store {}\n", runs.size(), done, o->store);
    }
  });
}

ATAX_COMMAND("runs", add_runs);

}  // namespace
}  // namespace atax::cli
