// ChatTemplate: parse once, render many times; and where a model keeps its template
// (tokenizer_config.json's chat_template as a string or a named list, chat_template.jinja, GGUF).
#include "template/builtins.h"

namespace atax {

using namespace tmpl;

struct ChatTemplate::Impl {
  std::string source, name, identity;
  Program program;
};

namespace {

Error to_error(const TemplateError& e, const std::string& name) {
  if (e.raised)
    return Error("the chat template raised an error: " + e.message, name,
                 "the template rejects this conversation (e.g. roles out of order or a role it does not know)",
                 e.line);
  return Error("chat template error: " + e.message, name,
               "check the variables given to the template (messages, tools, add_generation_prompt, ...)", e.line);
}

}  // namespace

ChatTemplate ChatTemplate::parse(const std::string& source, const std::string& name) {
  auto impl = std::make_shared<Impl>();
  impl->source = source;
  impl->name = name;
  impl->identity = "jinja:" + sha256_hex(source);
  try {
    impl->program = tmpl::parse(lex(source));
  } catch (const TemplateError& e) {
    throw Error("chat template syntax error: " + e.message, name, "fix the template's Jinja syntax", e.line);
  }
  ChatTemplate t;
  t.impl_ = std::move(impl);
  return t;
}

std::string ChatTemplate::render(const ordered_json& vars, const TemplateRenderOptions& opts) const {
  if (!vars.is_object())
    throw Error("the template's variables must be a JSON object", impl_->name, "pass {\"messages\": [...], ...}");
  Scope globals;
  install_globals(globals, opts);
  Scope root{{}, &globals};
  for (auto it = vars.begin(); it != vars.end(); ++it) root.vars[it.key()] = from_json(it.value());
  std::string out;
  Evaluator ev;
  ev.opts = opts;
  ev.root = &root;
  ev.scope = &root;
  ev.out = &out;
  try {
    ev.exec_body(impl_->program.body);
  } catch (const TemplateError& e) {
    throw to_error(e, impl_->name);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(std::string("chat template error: ") + e.what(), impl_->name, {}, ev.current_line);
  }
  return out;
}

const std::string& ChatTemplate::source() const { return impl_->source; }
const std::string& ChatTemplate::name() const { return impl_->name; }
std::string ChatTemplate::identity() const { return impl_->identity; }

std::vector<std::string> chat_template_names(const json& value) {
  std::vector<std::string> names;
  if (value.is_array())
    for (const json& e : value)
      if (e.is_object() && e.contains("name") && e["name"].is_string()) names.push_back(e["name"].get<std::string>());
  return names;
}

std::optional<ChatTemplateSource> select_chat_template(const json& value, const std::string& file,
                                                       const std::string& wanted, bool has_tools) {
  if (value.is_null()) return std::nullopt;
  if (value.is_string()) {
    if (!wanted.empty() && wanted != "default")
      throw Error("the chat_template is a single template, it has no template named \"" + wanted + "\"", file,
                  "drop the template name");
    return ChatTemplateSource{value.get<std::string>(), file + ":chat_template"};
  }
  if (!value.is_array())
    throw Error("chat_template must be a string or a list of {\"name\", \"template\"}", file);
  auto find = [&](const std::string& name) -> std::optional<ChatTemplateSource> {
    for (const json& e : value) {
      if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
          !e["template"].is_string())
        throw Error("each chat_template entry must be {\"name\": string, \"template\": string}", file);
      if (e["name"].get<std::string>() == name)
        return ChatTemplateSource{e["template"].get<std::string>(), file + ":chat_template[" + name + "]"};
    }
    return std::nullopt;
  };
  const std::string names = join(chat_template_names(value), ", ");
  if (!wanted.empty()) {
    if (auto t = find(wanted)) return t;
    throw Error("the tokenizer has no chat template named \"" + wanted + "\"", file, "its templates: " + names);
  }
  if (has_tools)
    if (auto t = find("tool_use")) return t;
  if (auto t = find("default")) return t;
  throw Error("this model has several chat templates and none is named \"default\"", file,
              "choose one by name: " + names);
}

std::optional<ChatTemplateSource> find_chat_template(const fs::path& path, const std::string& wanted,
                                                     bool has_tools) {
  if (path.extension() == ".jinja") return ChatTemplateSource{read_file(path), path.string()};
  const fs::path dir = fs::is_directory(path) ? path : path.parent_path();
  if (path.filename() == "tokenizer_config.json" || !fs::exists(dir / "chat_template.jinja")) {
    const fs::path cfg_path = path.filename() == "tokenizer_config.json" ? path : dir / "tokenizer_config.json";
    if (!fs::exists(cfg_path)) return std::nullopt;
    const json cfg = read_json(cfg_path);
    if (!cfg.is_object()) throw Error("tokenizer_config.json must hold a JSON object", cfg_path.string());
    auto it = cfg.find("chat_template");
    if (it == cfg.end()) return std::nullopt;
    return select_chat_template(*it, cfg_path.string(), wanted, has_tools);
  }
  return ChatTemplateSource{read_file(dir / "chat_template.jinja"), (dir / "chat_template.jinja").string()};
}

ordered_json special_token_vars(const json& cfg) {
  ordered_json vars = ordered_json::object();
  if (!cfg.is_object()) return vars;
  auto text = [](const json& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
  };
  for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"})
    if (auto it = cfg.find(key); it != cfg.end())
      if (auto t = text(*it)) vars[key] = *t;
  if (auto it = cfg.find("additional_special_tokens"); it != cfg.end() && it->is_array()) {
    ordered_json list = ordered_json::array();
    for (const json& v : *it)
      if (auto t = text(v)) list.push_back(*t);
    vars["additional_special_tokens"] = list;
  }
  return vars;
}

ChatTemplateSource chat_template_from_gguf(const std::string& text, const std::string& file) {
  return ChatTemplateSource{text, file + ":tokenizer.chat_template"};
}

}  // namespace atax
