// template internals: the evaluator's state, and the filters, tests, methods and globals it
// calls (builtins.cpp).
#pragma once

#include <optional>
#include <unordered_map>

#include "template/internal.h"

namespace atax::tmpl {

struct Scope {
  std::unordered_map<std::string, Value> vars;
  Scope* parent = nullptr;
};

struct Evaluator {
  enum class Flow { kNormal, kBreak, kContinue };

  TemplateRenderOptions opts;
  Scope* root = nullptr;   // the render's variables (macros resolve names from here)
  Scope* scope = nullptr;  // the innermost scope
  std::string* out = nullptr;
  int64_t steps = 0;
  int call_depth = 0;
  int current_line = 0;
  Value filter_input;  // the body of a {% filter %} block

  Flow exec_body(const Body& body);
  Flow exec(const Node& n);
  Value eval(const Expr& e);
  CallArgs eval_args(const Expr& e);
  Value call(const Value& fn, CallArgs& args, int line);
  Value call_macro(const Node& def, CallArgs& args, int line);
  std::string capture(const Body& body);
  void assign(const std::vector<std::string>& targets, const Value& v, int line);

  Value lookup(const std::string& name) const;
  void write(const std::string& s);
  void step(int line);
  // Python iteration: a list's items, a dict's keys, a string's characters; Undefined is empty.
  std::vector<Value> iterate(const Value& v, int line);
  Value getattr(const Value& obj, const std::string& attr, int line);   // a.b
  Value getitem(const Value& obj, const Value& key, int line);          // a[b]
  Value binary(const std::string& op, const Value& a, const Value& b, int line);
  bool contains(const Value& container, const Value& item, int line);
  // A bound method of a str / dict / list (nullopt if `name` is none), or an Undefined that
  // fails when used for the sandbox's mutating methods.
  std::optional<Value> method(const Value& obj, const std::string& name, int line);
};

Value apply_filter(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args, int line);
bool apply_test(Evaluator& ev, const std::string& name, const Value& input, CallArgs& args, int line);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
// range, dict, namespace, raise_exception, strftime_now, joiner, cycler-free: what transformers has.
void install_globals(Scope& globals, const TemplateRenderOptions& opts);
// Python's `fmt % args` for %s %r %d %i %f %%.
std::string percent_format(const std::string& fmt, const Value& args, int line);

}  // namespace atax::tmpl
