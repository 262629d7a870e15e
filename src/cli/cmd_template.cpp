// atax template render: renders a chat template (a .jinja file, or the chat_template of a
// tokenizer_config.json) over JSONL lines of variables, one {"text"} or {"error"} line each.
#include <cstdlib>
#include <map>
#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "template/template.h"

namespace atax::cli {
namespace {

// "2024-07-26" or "2024-07-26T13:45:00[Z]" -> seconds since the epoch (UTC).
std::time_t parse_date(const std::string& s) {
  std::tm tm{};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  char tail = 0;
  const int n = std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &tail);
  if (!(n == 3 || n == 6 || (n == 7 && tail == 'Z')) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
      sec > 60)
    throw Error("--date \"" + s + "\" is not a date", {}, "use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return timegm(&tm);
}

void add_template(CLI::App& app) {
  struct Opts {
    std::string tmpl, input, name, date;
  };
  auto o = std::make_shared<Opts>();
  auto* group = app.add_subcommand("template", "Chat templates (Jinja, rendered as Hugging Face transformers does)");
  group->require_subcommand(1);
  auto* sub = group->add_subcommand("render", "Render a chat template over JSONL lines of variables");
  sub->add_option("--template", o->tmpl, "a .jinja file, or a tokenizer_config.json holding chat_template")
      ->required();
  sub->add_option("--input", o->input,
                  "JSONL, one object of variables per line (messages, tools, add_generation_prompt, bos_token, ...)")
      ->required();
  sub->add_option("--name", o->name, "the named template of a chat_template list (default: \"default\", or "
                                     "\"tool_use\" for a line with tools)");
  sub->add_option("--date", o->date, "the date strftime_now() sees (YYYY-MM-DD[THH:MM:SSZ], UTC; default: now)");
  sub->callback([o] {
    TemplateRenderOptions opts;
    if (!o->date.empty()) opts.now = parse_date(o->date);
    const fs::path path = o->tmpl;
    const bool is_config = path.extension() == ".json";
    json cfg;
    ordered_json defaults = ordered_json::object();
    if (is_config) {
      cfg = read_json(path);
      if (!cfg.is_object()) throw Error("tokenizer_config.json must hold a JSON object", path.string());
      if (!cfg.contains("chat_template"))
        throw Error("the file has no chat_template", path.string(), "pass a tokenizer_config.json that has one, or a .jinja file");
      defaults = special_token_vars(cfg);
    } else if (!o->name.empty()) {
      throw Error("--name applies to a tokenizer_config.json with named templates", path.string());
    }
    // Parsed once per selected template (a named list can pick per line).
    std::map<std::string, ChatTemplate> parsed;
    auto get_template = [&](bool has_tools) -> const ChatTemplate& {
      ChatTemplateSource src = is_config ? *select_chat_template(cfg["chat_template"], path.string(), o->name, has_tools)
                                         : ChatTemplateSource{read_file(path), path.string()};
      auto it = parsed.find(src.name);
      if (it == parsed.end()) it = parsed.emplace(src.name, ChatTemplate::parse(src.text, src.name)).first;
      return it->second;
    };
    if (!is_config) get_template(false);  // a syntax error fails before any line
    std::istringstream in(read_file(o->input));
    std::string line;
    int64_t line_no = 0, failed = 0;
    while (std::getline(in, line)) {
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (trim(line).empty()) continue;
      ordered_json out;
      try {
        ordered_json vars;
        try {
          vars = ordered_json::parse(line);
        } catch (const std::exception& e) {
          throw Error("not valid JSON: " + std::string(e.what()), o->input, {}, line_no);
        }
        if (!vars.is_object()) throw Error("the line is not a JSON object of variables", o->input, {}, line_no);
        ordered_json all = defaults;
        for (auto it = vars.begin(); it != vars.end(); ++it) all[it.key()] = it.value();
        const bool has_tools = all.contains("tools") && !all["tools"].is_null();
        out["text"] = get_template(has_tools).render(all, opts);
      } catch (const Error& e) {
        ++failed;
        out = ordered_json::object();
        out["error"] = e.what();
      }
      std::cout << out.dump(-1, ' ', false, ordered_json::error_handler_t::replace) << "\n";
    }
    std::cout.flush();
    if (failed > 0) {
      std::cerr << "atax: " << failed << " of the lines in " << o->input << " did not render\n";
      std::exit(1);
    }
  });
}

ATAX_COMMAND("template", add_template);

}  // namespace
}  // namespace atax::cli
