// Task files (tasks/**/*.json): parsing and validation, discovery, selection, data paths and
// prompt templates. The schema is documented in tasks/README.md.
#include <algorithm>
#include <cstdlib>
#include <set>

#include <unistd.h>

#include "eval/eval.h"
#include "eval/internal.h"

namespace atax {
namespace {


[[noreturn]] void bad(const fs::path& file, const std::string& what, const std::string& hint = {}) {
  throw Error(what, file.string(), hint.empty() ? "see tasks/README.md for the task file schema" : hint);
}

void check_keys(const json& obj, const std::set<std::string>& allowed, const std::string& where, const fs::path& file) {
  if (!obj.is_object()) bad(file, where + " must be an object");
  for (auto it = obj.begin(); it != obj.end(); ++it)
    if (!allowed.count(it.key()) && !starts_with(it.key(), "$"))
      bad(file, "unknown key \"" + it.key() + "\" in " + where,
          "allowed: " + join(std::vector<std::string>(allowed.begin(), allowed.end()), ", "));
}

template <class T>
T get_or(const json& obj, const std::string& key, T dflt, const std::string& where, const fs::path& file) {
  if (!obj.contains(key) || obj[key].is_null()) return dflt;
  try {
    return obj[key].get<T>();
  } catch (const std::exception&) {
    bad(file, where + "." + key + " has the wrong type: " + obj[key].dump());
  }
}

// Compiles a pattern now so a bad one fails at load time, naming the task file.
void check_regex(const std::string& pattern, const fs::path& file) {
  try {
    regex_extract("", pattern, 0, "");
  } catch (const Error& e) {
    bad(file, e.message(), e.hint());
  }
}

std::string fields_hint(const json& fields) {
  std::vector<std::string> keys;
  for (auto it = fields.begin(); it != fields.end(); ++it) keys.push_back(it.key());
  return "fields available: " + join(keys, ", ");
}

}  // namespace

std::string to_string(OutputType t) {
  switch (t) {
    case OutputType::kMultipleChoice: return "multiple_choice";
    case OutputType::kGenerateUntil: return "generate_until";
    case OutputType::kCodeExecution: return "code_execution";
    case OutputType::kRefusal: return "refusal";
  }
  return "?";
}

std::string render_template(const std::string& tmpl, const json& fields, const std::string& where) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = tmpl.find("{{", pos);
    if (open == std::string::npos) {
      out.append(tmpl, pos, std::string::npos);
      break;
    }
    out.append(tmpl, pos, open - pos);
    size_t close = tmpl.find("}}", open + 2);
    if (close == std::string::npos)
      throw Error("unclosed \"{{\" in template: " + tmpl.substr(open, 40), where, "write {{field}}");
    auto parts = split(tmpl.substr(open + 2, close - open - 2), '|');
    std::string path = trim(parts[0]);
    const json* cur = &fields;
    for (const auto& seg : split(path, '.')) {
      if (cur->is_object() && cur->contains(seg)) {
        cur = &(*cur)[seg];
      } else if (cur->is_array() && !seg.empty() && std::all_of(seg.begin(), seg.end(), ::isdigit) &&
                 std::stoul(seg) < cur->size()) {
        cur = &(*cur)[std::stoul(seg)];
      } else {
        throw Error("template field \"" + path + "\" not found in the document", where, fields_hint(fields));
      }
    }
    std::string value;
    if (cur->is_string()) value = cur->get<std::string>();
    else if (cur->is_null()) value = "";
    else value = cur->dump();
    for (size_t i = 1; i < parts.size(); ++i) {
      std::string f = trim(parts[i]);
      if (f == "trim") value = trim(value);
      else if (f == "lower") value = to_lower(value);
      else if (f == "upper") {
        for (auto& c : value) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      } else
        throw Error("unknown template filter \"" + f + "\"", where, "known: trim, lower, upper");
    }
    out += value;
    pos = close + 2;
  }
  return out;
}

TaskSpec parse_task_spec(const json& j, const fs::path& file) {
  check_keys(j, {"name", "version", "category", "primary_metric", "group", "about", "dataset", "output_type", "prompt", "choices", "fewshot",
                 "generation", "code", "filters", "metrics", "breakdown_by", "olmes"},
             "the task", file);
  TaskSpec t;
  t.file = file;
  t.raw = j;
  t.name = get_or<std::string>(j, "name", "", "task", file);
  if (t.name.empty()) bad(file, "missing \"name\"");
  if (t.name.find_first_of("/, \t") != std::string::npos) bad(file, "task name \"" + t.name + "\" may not contain '/', ',' or spaces");
  if (!j.contains("version") || !j["version"].is_number_integer()) bad(file, "missing integer \"version\"");
  t.version = j["version"];
  // The category decides where the tax reads the task (capability: the mean capability tax;
  // safety: the safety changes; diagnostic: reported, never taxed). "group" is its older name.
  if (j.contains("category") && j.contains("group")) bad(file, "both \"category\" and its older name \"group\"");
  t.group = get_or<std::string>(j, j.contains("category") ? "category" : "group", "", "task", file);
  if (t.group.empty()) bad(file, "missing \"category\"", "add \"category\": \"capability\" | \"safety\" | \"diagnostic\"");
  if (t.group != "capability" && t.group != "safety" && t.group != "diagnostic")
    bad(file, "category \"" + t.group + "\" is not capability, safety or diagnostic");
  t.description_text = get_or<std::string>(j, "about", "", "task", file);

  if (!j.contains("dataset")) bad(file, "missing \"dataset\"");
  const json& d = j["dataset"];
  check_keys(d, {"format", "path", "split", "subsets", "options"}, "dataset", file);
  t.format = get_or<std::string>(d, "format", "", "dataset", file);
  auto formats = dataset_formats();
  if (std::find(formats.begin(), formats.end(), t.format) == formats.end())
    bad(file, "unknown dataset.format \"" + t.format + "\"", "known formats: " + join(formats, ", "));
  t.path = get_or<std::string>(d, "path", "", "dataset", file);
  if (t.path.empty()) bad(file, "missing dataset.path");
  t.split = get_or<std::string>(d, "split", "test", "dataset", file);
  t.subsets = get_or<std::vector<std::string>>(d, "subsets", {}, "dataset", file);
  t.dataset_options = get_or<json>(d, "options", json::object(), "dataset", file);

  std::string ot = get_or<std::string>(j, "output_type", "", "task", file);
  if (ot == "multiple_choice") t.output_type = OutputType::kMultipleChoice;
  else if (ot == "generate_until") t.output_type = OutputType::kGenerateUntil;
  else if (ot == "code_execution") t.output_type = OutputType::kCodeExecution;
  else if (ot == "refusal") t.output_type = OutputType::kRefusal;
  else bad(file, "output_type \"" + ot + "\" is not multiple_choice, generate_until, code_execution or refusal");

  if (!j.contains("prompt")) bad(file, "missing \"prompt\"");
  const json& p = j["prompt"];
  check_keys(p, {"description", "doc_to_text", "chat_doc_to_text", "doc_to_target", "target_delimiter",
                 "fewshot_delimiter", "chat"},
             "prompt", file);
  t.description = get_or<std::string>(p, "description", "", "prompt", file);
  t.doc_to_text = get_or<std::string>(p, "doc_to_text", "", "prompt", file);
  if (t.doc_to_text.empty()) bad(file, "missing prompt.doc_to_text");
  t.chat_doc_to_text = get_or<std::string>(p, "chat_doc_to_text", "", "prompt", file);
  t.doc_to_target = get_or<std::string>(p, "doc_to_target", "", "prompt", file);
  t.target_delimiter = get_or<std::string>(p, "target_delimiter", " ", "prompt", file);
  t.fewshot_delimiter = get_or<std::string>(p, "fewshot_delimiter", "\n\n", "prompt", file);
  if (p.contains("chat") && !p["chat"].is_null()) t.chat = get_or<bool>(p, "chat", false, "prompt", file);

  if (j.contains("choices")) {
    const json& c = j["choices"];
    if (!c.is_object()) bad(file, "\"choices\" must map a choice-set name to {choices, gold | labels}");
    for (auto it = c.begin(); it != c.end(); ++it) {
      check_keys(it.value(), {"choices", "gold", "labels"}, "choices." + it.key(), file);
      ChoiceSetSpec cs;
      cs.choices = it.value().value("choices", json());
      if (!cs.choices.is_string() && !cs.choices.is_array())
        bad(file, "choices." + it.key() + ".choices must be a field name or an array of templates");
      cs.gold = get_or<std::string>(it.value(), "gold", "", "choices." + it.key(), file);
      cs.labels = get_or<std::string>(it.value(), "labels", "", "choices." + it.key(), file);
      if (cs.gold.empty() == cs.labels.empty())
        bad(file, "choices." + it.key() + " needs exactly one of \"gold\" (index field) and \"labels\" (0/1 field)");
      t.choice_sets[it.key()] = cs;
    }
  }
  if (t.output_type == OutputType::kMultipleChoice && t.choice_sets.empty())
    bad(file, "a multiple_choice task needs \"choices\"");

  if (j.contains("fewshot")) {
    const json& f = j["fewshot"];
    check_keys(f, {"num_fewshot", "split", "match", "sampler", "fallback_to_eval_split"}, "fewshot", file);
    t.num_fewshot = get_or<int>(f, "num_fewshot", 0, "fewshot", file);
    t.fewshot_split = get_or<std::string>(f, "split", "", "fewshot", file);
    t.fewshot_match = get_or<std::string>(f, "match", "", "fewshot", file);
    t.fewshot_sampler = get_or<std::string>(f, "sampler", "first_n", "fewshot", file);
    t.fewshot_fallback_to_eval_split = get_or<bool>(f, "fallback_to_eval_split", false, "fewshot", file);
    if (t.fewshot_sampler != "first_n" && t.fewshot_sampler != "random")
      bad(file, "fewshot.sampler must be first_n or random");
    if (t.num_fewshot < 0) bad(file, "fewshot.num_fewshot must be >= 0");
  }

  if (j.contains("generation")) {
    const json& g = j["generation"];
    check_keys(g, {"until", "chat_until", "max_new_tokens", "temperature"}, "generation", file);
    t.until = get_or<std::vector<std::string>>(g, "until", {}, "generation", file);
    if (g.contains("chat_until")) t.chat_until = get_or<std::vector<std::string>>(g, "chat_until", {}, "generation", file);
    t.max_new_tokens = get_or<int>(g, "max_new_tokens", 256, "generation", file);
    t.temperature = get_or<double>(g, "temperature", 0.0, "generation", file);
    if (t.max_new_tokens < 1) bad(file, "generation.max_new_tokens must be >= 1");
  }
  if (j.contains("code")) {
    const json& c = j["code"];
    check_keys(c, {"n_samples", "temperature", "top_p", "timeout_s"}, "code", file);
    t.n_samples = get_or<int>(c, "n_samples", 0, "code", file);
    t.sample_temperature = get_or<double>(c, "temperature", 0.8, "code", file);
    t.sample_top_p = get_or<double>(c, "top_p", 0.95, "code", file);
    t.timeout_s = get_or<double>(c, "timeout_s", 10.0, "code", file);
    if (t.n_samples < 0) bad(file, "code.n_samples must be >= 0");
  }

  t.filters.push_back(FilterSpec{});  // "none"
  if (j.contains("filters")) {
    if (!j["filters"].is_array()) bad(file, "\"filters\" must be an array of {name, steps}");
    for (const auto& fj : j["filters"]) {
      check_keys(fj, {"name", "steps"}, "a filter", file);
      FilterSpec fs_;
      fs_.name = get_or<std::string>(fj, "name", "", "filter", file);
      if (fs_.name.empty() || fs_.name == "none") bad(file, "a filter needs a name other than \"none\"");
      if (!fj.contains("steps") || !fj["steps"].is_array()) bad(file, "filter " + fs_.name + " needs \"steps\"");
      for (const auto& s : fj["steps"]) {
        std::string fn = s.value("function", "");
        if (fn == "regex") {
          if (!s.contains("pattern") || !s["pattern"].is_string()) bad(file, "filter " + fs_.name + ": regex needs \"pattern\"");
          check_regex(s["pattern"].get<std::string>(), file);
        } else if (fn != "take_first" && fn != "strip" && fn != "lowercase" && fn != "uppercase" && fn != "remove_whitespace") {
          bad(file, "filter " + fs_.name + ": unknown function \"" + fn + "\"",
              "known: regex, take_first, strip, lowercase, uppercase, remove_whitespace");
        }
        fs_.steps.push_back(s);
      }
      for (const auto& other : t.filters)
        if (other.name == fs_.name) bad(file, "filter \"" + fs_.name + "\" defined twice");
      t.filters.push_back(fs_);
    }
  }

  if (!j.contains("metrics") || !j["metrics"].is_array() || j["metrics"].empty()) bad(file, "missing \"metrics\"");
  const std::vector<std::string> allowed_list = metrics_for(t.output_type);  // the metric registry
  const std::set<std::string> allowed(allowed_list.begin(), allowed_list.end());
  std::set<std::string> names;
  for (const auto& mj : j["metrics"]) {
    check_keys(mj, {"metric", "name", "filter", "filters", "choice_set", "where", "group_by", "higher_is_better",
                    "stderr", "k", "options"},
               "a metric", file);
    MetricSpec m;
    m.metric = get_or<std::string>(mj, "metric", "", "metric", file);
    if (!allowed.count(m.metric))
      bad(file, "metric \"" + m.metric + "\" does not fit output_type " + ot,
          "allowed: " + join(std::vector<std::string>(allowed.begin(), allowed.end()), ", "));
    m.name = get_or<std::string>(mj, "name", m.metric, "metric", file);
    m.choice_set = get_or<std::string>(mj, "choice_set", "default", "metric", file);
    if (t.output_type == OutputType::kMultipleChoice && !t.choice_sets.count(m.choice_set))
      bad(file, "metric " + m.name + ": no choice set \"" + m.choice_set + "\"");
    m.where = get_or<std::map<std::string, std::string>>(mj, "where", {}, "metric", file);
    m.group_by = get_or<std::string>(mj, "group_by", "", "metric", file);
    // The direction comes from the metric registry; a task declares it only where the registry
    // leaves it to the task (refusal rates), and may not contradict it elsewhere.
    const eval_detail::MetricDef* def = eval_detail::find_metric_def(m.metric);
    using Dir = eval_detail::MetricDef::Direction;
    const Dir dir = def ? def->direction : Dir::kHigher;
    if (dir == Dir::kTaskDeclares) {
      if (!mj.contains("higher_is_better"))
        bad(file, "metric " + m.name + " (" + m.metric + ") must declare \"higher_is_better\"",
            "true where refusing is right (harmful prompts), false where it is over-refusal (benign prompts)");
      m.higher_is_better = get_or<bool>(mj, "higher_is_better", true, "metric", file);
    } else {
      m.higher_is_better = dir == Dir::kHigher;
      if (mj.contains("higher_is_better") && get_or<bool>(mj, "higher_is_better", true, "metric", file) != m.higher_is_better)
        bad(file, "metric " + m.name + ": \"higher_is_better\" contradicts the metric registry (" + m.metric + " is " +
                      (m.higher_is_better ? "higher" : "lower") + "-is-better)");
    }
    m.stderr_method = get_or<std::string>(mj, "stderr", "mean", "metric", file);
    if (m.stderr_method != "mean" && m.stderr_method != "bootstrap") bad(file, "metric " + m.name + ": stderr must be mean or bootstrap");
    m.k = get_or<int>(mj, "k", 1, "metric", file);
    m.options = get_or<json>(mj, "options", json::object(), "metric", file);
    if (m.options.contains("regexes_to_ignore"))
      for (const auto& r : m.options["regexes_to_ignore"]) check_regex(r.get<std::string>(), file);
    if (m.metric == "acc_uncond") {
      // One unconditional context per choice set: its requests are shared by the set's metrics.
      check_keys(m.options, {"unconditional_context"}, "metric " + m.name + ".options", file);
      if (m.options.contains("unconditional_context") &&
          (!m.options["unconditional_context"].is_string() || m.options["unconditional_context"].get<std::string>().empty()))
        bad(file, "metric " + m.name + ": options.unconditional_context must be a non-empty string",
            "OLMES uses \"Answer:\" (the default)");
      const std::string ctx = eval_detail::unconditional_context(m);
      for (const auto& other : t.metrics)
        if (other.metric == "acc_uncond" && other.choice_set == m.choice_set &&
            eval_detail::unconditional_context(other) != ctx)
          bad(file, "metric " + m.name + ": choice set \"" + m.choice_set + "\" already has the unconditional context \"" +
                        eval_detail::unconditional_context(other) + "\"",
              "use one unconditional context per choice set");
    }
    if (m.metric == "pass@k") {
      if (t.n_samples < 1) bad(file, "pass@k needs code.n_samples >= 1");
      if (m.k < 1 || m.k > t.n_samples) bad(file, "pass@k: k must be in [1, code.n_samples]");
      if (!mj.contains("name")) m.name = "pass@" + std::to_string(m.k);
    }
    // One metric spec may name several filters (lm-eval reports each as "metric,filter").
    std::vector<std::string> filters;
    if (mj.contains("filters")) filters = get_or<std::vector<std::string>>(mj, "filters", {}, "metric", file);
    else filters.push_back(get_or<std::string>(mj, "filter", "none", "metric", file));
    for (const auto& fname : filters) {
      bool known = std::any_of(t.filters.begin(), t.filters.end(), [&](const FilterSpec& f) { return f.name == fname; });
      if (!known) bad(file, "metric " + m.name + " names unknown filter \"" + fname + "\"");
      MetricSpec copy = m;
      copy.filter = fname;
      std::string id = copy.name + (copy.group_by.empty() ? "" : "/<" + copy.group_by + ">") + "," + fname;
      if (!names.insert(id).second) bad(file, "metric " + id + " defined twice");
      t.metrics.push_back(copy);
    }
  }
  t.breakdown_by = get_or<std::string>(j, "breakdown_by", "", "task", file);
  if (j.contains("olmes")) {
    const char* shape = "{\"group\": NAME, \"formulation\": \"mcf\" | \"cf\"}";
    check_keys(j["olmes"], {"group", "formulation"}, "olmes", file);
    t.olmes_group = get_or<std::string>(j["olmes"], "group", "", "olmes", file);
    t.formulation = get_or<std::string>(j["olmes"], "formulation", "", "olmes", file);
    if (t.olmes_group.empty() || t.olmes_group == t.name)
      bad(file, "olmes.group must name the benchmark's group, not this task", std::string("olmes: ") + shape);
    if (t.formulation != "mcf" && t.formulation != "cf")
      bad(file, "olmes.formulation must be \"mcf\" or \"cf\", found \"" + t.formulation + "\"",
          std::string("olmes: ") + shape);
    if (t.output_type != OutputType::kMultipleChoice)
      bad(file, "olmes: only a multiple_choice task has MCF and CF formulations");
  }
  // The primary metric: the one number the tax and every table read for this task, "name" (filter
  // none) or "name,filter" as results files key it.
  t.primary_metric = get_or<std::string>(j, "primary_metric", "", "task", file);
  if (t.primary_metric.empty())
    bad(file, "missing \"primary_metric\"", "name the metric the tax reads, e.g. \"acc\" or \"exact_match,flexible-extract\"");
  {
    std::vector<std::string> keys;
    bool found = false;
    for (const auto& m : t.metrics) {
      if (!m.group_by.empty()) continue;
      std::string k = m.filter == "none" ? m.name : m.name + "," + m.filter;
      keys.push_back(k);
      found |= k == t.primary_metric;
    }
    if (!found) bad(file, "primary_metric \"" + t.primary_metric + "\" is not one of the task's metrics", "one of: " + join(keys, ", "));
  }
  return t;
}

TaskSpec load_task_spec(const fs::path& file) {
  json j = read_json(file);
  return parse_task_spec(j, file);
}

std::vector<TaskSpec> discover_tasks(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw Error("tasks folder not found", dir.string(), "pass --tasks-dir D");
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".json") files.push_back(e.path());
  std::vector<TaskSpec> out;
  std::map<std::string, fs::path> seen;
  for (const auto& f : files) {
    TaskSpec t = load_task_spec(f);
    auto [it, fresh] = seen.emplace(t.name, f);
    if (!fresh)
      throw Error("task \"" + t.name + "\" defined twice: " + it->second.string() + " and " + f.string(), f.string(),
                  "task names must be unique; rename one");
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const TaskSpec& a, const TaskSpec& b) { return a.name < b.name; });
  return out;
}

fs::path find_tasks_dir(const fs::path& explicit_dir) {
  if (!explicit_dir.empty()) {
    if (!fs::is_directory(explicit_dir)) throw Error("tasks folder not found", explicit_dir.string(), "pass an existing folder to --tasks-dir");
    return explicit_dir;
  }
  if (const char* env = std::getenv("ATAX_TASKS_DIR"); env && *env) {
    if (!fs::is_directory(env)) throw Error("ATAX_TASKS_DIR is not a folder", env, "unset it or point it at tasks/");
    return env;
  }
  auto looks_like_tasks = [](const fs::path& p) {
    return fs::is_directory(p / "capability") || fs::is_directory(p / "safety");
  };
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path p = exe.parent_path(); !p.empty(); p = p.parent_path()) {
      for (const auto& cand : {p / "tasks", p / "share" / "atax" / "tasks"})
        if (looks_like_tasks(cand)) return cand;
      if (p == p.root_path()) break;
    }
  }
  if (looks_like_tasks("tasks")) return fs::absolute("tasks");
  throw Error("no tasks folder found", {}, "pass --tasks-dir D or set ATAX_TASKS_DIR");
}

std::vector<TaskSpec> select_tasks(const std::vector<std::string>& names, const fs::path& dir) {
  std::vector<TaskSpec> known;
  bool loaded = false;
  auto all = [&]() -> const std::vector<TaskSpec>& {
    if (!loaded) {
      known = discover_tasks(dir);
      loaded = true;
    }
    return known;
  };
  std::vector<TaskSpec> out;
  std::set<std::string> picked;
  auto add = [&](const TaskSpec& t) {
    if (picked.insert(t.name).second) out.push_back(t);
  };
  for (const auto& raw : names) {
    std::string n = trim(raw);
    if (n.empty()) continue;
    if (ends_with(n, ".json") && fs::is_regular_file(n)) {
      add(load_task_spec(n));
      continue;
    }
    bool found = false;
    for (const auto& t : all()) {
      bool match = n == "all" || t.name == n || t.group == n || (n == "toy" && starts_with(t.name, "toy_"));
      if (match) {
        add(t);
        found = true;
      }
    }
    if (!found) {
      std::vector<std::string> list;
      for (const auto& t : all()) list.push_back(t.name);
      throw Error("unknown task \"" + n + "\"", dir.string(),
                  "known tasks: " + join(list, ", ") + " (or all, capability, safety, toy, or a path to a .json file)");
    }
  }
  if (out.empty()) throw Error("no tasks selected", {}, "pass --tasks a,b,c (see `atax tasks list`)");
  return out;
}

fs::path resolve_data_path(const std::string& path, const fs::path& data_dir) {
  std::string out;
  size_t pos = 0;
  while (true) {
    size_t open = path.find("${", pos);
    if (open == std::string::npos) {
      out.append(path, pos, std::string::npos);
      break;
    }
    out.append(path, pos, open - pos);
    size_t close = path.find('}', open);
    if (close == std::string::npos) throw Error("unclosed ${ in dataset path \"" + path + "\"");
    std::string var = path.substr(open + 2, close - open - 2);
    std::string value;
    if (var == "ATAX_DATA" && !data_dir.empty()) {
      value = data_dir.string();
    } else if (const char* env = std::getenv(var.c_str()); env && *env) {
      value = env;
    } else {
      throw Error("dataset path \"" + path + "\" uses ${" + var + "}, which is not set", {},
                  var == "ATAX_DATA" ? "pass --data-dir D or set ATAX_DATA" : "set " + var + " in the environment");
    }
    out += value;
    pos = close + 1;
  }
  fs::path p(out);
  if (p.is_relative()) p = data_dir.empty() ? fs::absolute(p) : fs::absolute(data_dir / p);
  return p.lexically_normal();
}

}  // namespace atax
