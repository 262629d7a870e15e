// atax tasks list | show: the evaluation tasks defined as data files under tasks/.
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "eval/eval.h"

namespace atax::cli {
namespace {

std::string metric_names(const TaskSpec& t) {
  std::vector<std::string> names;
  for (const auto& m : t.metrics) {
    std::string n = m.name + (m.group_by.empty() ? "" : "/<" + m.group_by + ">");
    if (m.filter != "none") n += "," + m.filter;
    names.push_back(n);
  }
  return join(names, " ");
}

void add_tasks(CLI::App& app) {
  auto* tasks = app.add_subcommand("tasks", "List and inspect evaluation tasks (tasks/**/*.json)");
  tasks->require_subcommand(1);

  struct ListOpts {
    std::string tasks_dir;
    bool as_json = false;
  };
  auto lo = std::make_shared<ListOpts>();
  auto* list = tasks->add_subcommand("list", "One line per task: name, group, version, kind, data, metrics");
  list->add_option("--tasks-dir", lo->tasks_dir, "tasks folder (default: $ATAX_TASKS_DIR or the tasks/ of this build)");
  list->add_flag("--json", lo->as_json, "print the parsed task files as a JSON array");
  list->callback([lo] {
    fs::path dir = find_tasks_dir(lo->tasks_dir);
    auto all = discover_tasks(dir);
    if (lo->as_json) {
      json out = json::array();
      for (const auto& t : all) {
        json j = t.raw;
        j["file"] = t.file.string();
        out.push_back(j);
      }
      std::cout << out.dump(2) << "\n";
      return;
    }
    std::cout << fmt::format("{} tasks in {}\n", all.size(), dir.string());
    std::cout << fmt::format("{:<16} {:<10} {:>3}  {:<15} {:<18} {:<28} {}\n", "name", "group", "ver", "kind",
                             "format", "data (under --data-dir)", "metrics");
    for (const auto& t : all) {
      std::string shots = t.num_fewshot > 0 ? fmt::format(" {}-shot", t.num_fewshot) : "";
      std::cout << fmt::format("{:<16} {:<10} {:>3}  {:<15} {:<18} {:<28} {}{}\n", t.name, t.group, t.version,
                               to_string(t.output_type), t.format, t.path, metric_names(t), shots);
    }
  });

  struct ShowOpts {
    std::string tasks_dir, name;
  };
  auto so = std::make_shared<ShowOpts>();
  auto* show = tasks->add_subcommand("show", "Print one task's file, its description and where it reads its data");
  show->add_option("name", so->name, "task name or path to a .json task file")->required();
  show->add_option("--tasks-dir", so->tasks_dir, "tasks folder");
  show->callback([so] {
    auto t = select_tasks({so->name}, find_tasks_dir(so->tasks_dir))[0];
    std::cout << "# " << t.name << " (version " << t.version << ", " << t.group << ") — " << t.file.string() << "\n";
    if (!t.description_text.empty()) std::cout << t.description_text << "\n";
    std::cout << t.raw.dump(2) << "\n";
  });
}

ATAX_COMMAND("tasks", add_tasks);

}  // namespace
}  // namespace atax::cli
