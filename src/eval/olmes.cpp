// OLMES scores (Gu et al. 2024): a multiple-choice benchmark scored in both formulations, MCF (the
// options lettered in the prompt, the letter scored) and CF (cloze: each option's text scored),
// reported as the better of the two. Small models are at chance in MCF long before they are in CF
// (Pythia-1B: MMLU 26.5 MCF, 31.1 CF), so the field reads the better one. See eval.h.
#include <algorithm>

#include <fmt/format.h>

#include "eval/internal.h"

namespace atax {

namespace {

struct Members {
  size_t mcf = SIZE_MAX, cf = SIZE_MAX;
};

std::vector<std::string> sorted_ids(const MetricResult& m) {
  std::vector<std::string> ids = m.doc_ids;
  std::sort(ids.begin(), ids.end());
  return ids;
}

MetricResult renamed(const MetricResult& m, const std::string& name) {
  MetricResult r = m;
  r.name = name;
  r.filter = "none";
  return r;
}

}  // namespace

void add_olmes_groups(EvalResults& results) {
  auto& tasks = results.tasks;
  // Recomputed from the members every time: drop what an earlier call (or a shard) added.
  tasks.erase(std::remove_if(tasks.begin(), tasks.end(),
                             [](const TaskResult& t) { return t.config.value("olmes_group", false); }),
              tasks.end());
  std::vector<std::string> order;
  std::map<std::string, Members> groups;
  for (size_t i = 0; i < tasks.size(); ++i) {
    const TaskResult& t = tasks[i];
    if (!t.parent.empty() || !t.config.contains("olmes") || !t.config["olmes"].is_object()) continue;
    const json& o = t.config["olmes"];
    const std::string g = o.value("group", ""), form = o.value("formulation", "");
    if (g.empty() || (form != "mcf" && form != "cf")) continue;
    if (!groups.count(g)) order.push_back(g);
    (form == "mcf" ? groups[g].mcf : groups[g].cf) = i;
  }
  // Insert from the back so earlier indices stay valid.
  std::vector<std::pair<size_t, TaskResult>> inserts;
  for (const std::string& g : order) {
    const Members& mem = groups[g];
    if (mem.mcf == SIZE_MAX || mem.cf == SIZE_MAX || results.find(g)) continue;
    TaskResult& mcf = tasks[mem.mcf];
    TaskResult& cf = tasks[mem.cf];
    const MetricResult* pm = mcf.primary();
    const MetricResult* pc = cf.primary();
    if (!pm || !pc) continue;
    if (sorted_ids(*pm) != sorted_ids(*pc)) {
      log_info(fmt::format("{}: {} and {} were scored on different items ({} and {}); no OLMES score", g, mcf.task,
                           cf.task, pm->doc_ids.size(), pc->doc_ids.size()));
      continue;
    }
    // The members' declared categories (kept when an earlier call made them diagnostic).
    auto declared = [](TaskResult& t) {
      json& o = t.config["olmes"];
      if (!o.contains("declared_category")) o["declared_category"] = t.group;
      return o["declared_category"].get<std::string>();
    };
    const std::string cat_mcf = declared(mcf), cat_cf = declared(cf);
    const std::string category = cat_mcf == "capability" || cat_cf == "capability" ? "capability"
                                 : !cat_cf.empty()                                  ? cat_cf
                                                                                    : cat_mcf;
    const bool cf_wins = pc->value >= pm->value;
    const TaskResult& win = cf_wins ? cf : mcf;
    TaskResult r;
    r.task = g;
    r.version = 1;
    r.group = category;
    r.primary_metric = "olmes";
    r.n_original = win.n_original;
    r.n_effective = win.n_effective;
    r.metrics = {renamed(cf_wins ? *pc : *pm, "olmes"), renamed(*pm, "mcf_" + pm->name),
                 renamed(*pc, "cf_" + pc->name)};
    auto member = [](const TaskResult& t, const MetricResult& m) {
      return json{{"task", t.task}, {"version", t.version}, {"metric", t.primary_metric}, {"value", m.value},
                  {"stderr", m.stderr_}};
    };
    r.config = {{"olmes_group", true},
                {"group", category},
                {"category", category},
                {"primary_metric", "olmes"},
                {"about", "OLMES score (Gu et al. 2024): the better of the multiple-choice formulation (MCF, " +
                              mcf.task + ") and the cloze formulation (CF, " + cf.task + ") on the same items"},
                {"olmes", {{"mcf", member(mcf, *pm)}, {"cf", member(cf, *pc)}, {"chosen", cf_wins ? "cf" : "mcf"}}}};
    for (TaskResult* t : {&mcf, &cf}) {
      t->group = "diagnostic";
      t->config["group"] = t->config["category"] = "diagnostic";
      t->config["olmes"]["counted_through"] = g;
    }
    inserts.emplace_back(std::max(mem.mcf, mem.cf) + 1, std::move(r));
  }
  std::sort(inserts.begin(), inserts.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (auto& [pos, r] : inserts) tasks.insert(tasks.begin() + static_cast<long>(pos), std::move(r));
}

}  // namespace atax
