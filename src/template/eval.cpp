// Evaluator: runs the tree against the variables with jinja2's scoping (a for loop's body and a
// macro get their own scope; if does not; namespace() objects are shared), Undefined semantics,
// and the sandbox's attribute rules (methods of str / dict / list that do not mutate; getattr
// first for `a.b`, getitem first for `a[b]`).
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "template/builtins.h"

#include <optional>

namespace atax::tmpl {

namespace {

constexpr int kMaxCallDepth = 100;

[[noreturn]] void undefined_error(const Value& u, int line) {
  fail(u.s.empty() ? std::string("value is undefined") : u.s, line);
}

std::string object_type_repr(const Value& v) {
  if (v.is_none()) return "None";
  return type_name(v) + " object";
}

}  // namespace

Value Evaluator::lookup(const std::string& name) const {
  for (const Scope* s = scope; s; s = s->parent) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  return Value::undefined("'" + name + "' is undefined");
}

void Evaluator::write(const std::string& s) {
  out->append(s);
  if (int64_t(out->size()) > opts.max_output_bytes)
    fail("the render wrote more than " + std::to_string(opts.max_output_bytes) + " bytes", current_line);
}

void Evaluator::step(int line) {
  if (++steps > opts.max_steps)
    fail("the template ran more than " + std::to_string(opts.max_steps) + " loop iterations and macro calls", line);
}

std::vector<Value> Evaluator::iterate(const Value& v, int line) {
  switch (v.type) {
    case Value::Type::kUndefined: return {};
    case Value::Type::kList: return *v.list;
    case Value::Type::kDict: {
      std::vector<Value> keys;
      for (const auto& kv : v.dict->items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Type::kString: {
      std::vector<Value> chars;
      for (std::string& c : utf8_chars(v.s)) chars.push_back(Value::string(std::move(c)));
      return chars;
    }
    default: fail("'" + type_name(v) + "' object is not iterable", line);
  }
}

Value Evaluator::getattr(const Value& obj, const std::string& attr, int line) {
  if (obj.is_undefined()) undefined_error(obj, line);
  if (!attr.empty() && attr[0] == '_')
    return Value::undefined("access to attribute '" + attr + "' of '" + type_name(obj) + "' object is unsafe.");
  if (obj.type == Value::Type::kNamespace) {
    if (const Value* v = obj.dict->find(attr)) return *v;
    return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + attr + "'");
  }
  if (std::optional<Value> m = method(obj, attr, line)) return *m;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict->find(attr)) return *v;
  }
  return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + attr + "'");
}

Value Evaluator::getitem(const Value& obj, const Value& key, int line) {
  if (obj.is_undefined()) undefined_error(obj, line);
  if (obj.is_dict() || obj.type == Value::Type::kNamespace) {
    if (key.is_string())
      if (const Value* v = obj.dict->find(key.s)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.type == Value::Type::kInt || key.type == Value::Type::kBool)) {
    const int64_t k = key.type == Value::Type::kBool ? int64_t(key.b) : key.i;
    if (obj.is_list()) {
      const int64_t n = int64_t(obj.list->size());
      const int64_t idx = k < 0 ? k + n : k;
      if (idx >= 0 && idx < n) return (*obj.list)[size_t(idx)];
    } else {
      auto chars = utf8_chars(obj.s);
      const int64_t n = int64_t(chars.size());
      const int64_t idx = k < 0 ? k + n : k;
      if (idx >= 0 && idx < n) return Value::string(chars[size_t(idx)]);
    }
    return Value::undefined("'" + object_type_repr(obj) + "' has no element " + std::to_string(k));
  }
  if (key.is_string()) {
    if (std::optional<Value> m = method(obj, key.s, line)) return *m;
    return Value::undefined("'" + object_type_repr(obj) + "' has no attribute '" + key.s + "'");
  }
  return Value::undefined("'" + object_type_repr(obj) + "' has no element " + repr(key));
}

namespace {

int64_t slice_index(const Value& v, int line) {
  if (v.type == Value::Type::kInt) return v.i;
  if (v.type == Value::Type::kBool) return v.b;
  fail("slice indices must be integers or None", line);
}

// Python's slice.indices + iteration.
std::vector<size_t> slice_positions(int64_t n, const Value* start, const Value* stop, const Value* stepv, int line) {
  int64_t step = 1;
  if (stepv && !stepv->is_none()) step = slice_index(*stepv, line);
  if (step == 0) fail("slice step cannot be zero", line);
  int64_t lo, hi;
  auto clamp = [&](const Value* v, int64_t dflt, int64_t min, int64_t max) {
    if (!v || v->is_none()) return dflt;
    int64_t x = slice_index(*v, line);
    if (x < 0) x += n;
    return std::clamp(x, min, max);
  };
  std::vector<size_t> out;
  if (step > 0) {
    lo = clamp(start, 0, 0, n);
    hi = clamp(stop, n, 0, n);
    for (int64_t k = lo; k < hi; k += step) out.push_back(size_t(k));
  } else {
    lo = clamp(start, n - 1, -1, n - 1);
    hi = clamp(stop, -1, -1, n - 1);
    for (int64_t k = lo; k > hi; k += step) out.push_back(size_t(k));
  }
  return out;
}

double num(const Value& v) {
  return v.type == Value::Type::kFloat ? v.f : v.type == Value::Type::kBool ? double(v.b) : double(v.i);
}
bool integral(const Value& v) { return v.type == Value::Type::kInt || v.type == Value::Type::kBool; }
int64_t inum(const Value& v) { return v.type == Value::Type::kBool ? int64_t(v.b) : v.i; }

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b, int line) {
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'", line);
}

}  // namespace

Value Evaluator::binary(const std::string& op, const Value& a, const Value& b, int line) {
  if (op == "~") return Value::string(to_str(a, line) + to_str(b, line));
  if (a.is_undefined()) undefined_error(a, line);
  if (b.is_undefined()) undefined_error(b, line);
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && integral(a) && integral(b);
  if (op == "+") {
    if (ints) return Value::integer(inum(a) + inum(b));
    if (nums) return Value::number(num(a) + num(b));
    if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
    if (a.is_list() && b.is_list() && a.tuple == b.tuple) {
      List l = *a.list;
      l.insert(l.end(), b.list->begin(), b.list->end());
      return Value::make_list(std::move(l), a.tuple);
    }
    if (a.is_string()) fail("can only concatenate str (not \"" + type_name(b) + "\") to str", line);
    bad_operands(op, a, b, line);
  }
  if (op == "-") {
    if (ints) return Value::integer(inum(a) - inum(b));
    if (nums) return Value::number(num(a) - num(b));
    bad_operands(op, a, b, line);
  }
  if (op == "*") {
    if (ints) return Value::integer(inum(a) * inum(b));
    if (nums) return Value::number(num(a) * num(b));
    const Value* seq = a.is_string() || a.is_list() ? &a : b.is_string() || b.is_list() ? &b : nullptr;
    const Value* count = seq == &a ? &b : &a;
    if (seq && integral(*count)) {
      const int64_t n = std::max<int64_t>(0, inum(*count));
      const size_t unit = seq->is_string() ? seq->s.size() : seq->list->size();
      if (double(unit) * double(n) > double(opts.max_output_bytes))
        fail("sequence repetition too large", line);
      if (seq->is_string()) {
        std::string s;
        for (int64_t k = 0; k < n; ++k) s += seq->s;
        return Value::string(std::move(s));
      }
      List l;
      for (int64_t k = 0; k < n; ++k) l.insert(l.end(), seq->list->begin(), seq->list->end());
      return Value::make_list(std::move(l), seq->tuple);
    }
    bad_operands(op, a, b, line);
  }
  if (op == "/") {
    if (!nums) bad_operands(op, a, b, line);
    if (num(b) == 0) fail("division by zero", line);
    return Value::number(num(a) / num(b));
  }
  if (op == "//" || op == "%") {
    if (op == "%" && a.is_string()) return Value::string(percent_format(a.s, b, line));
    if (!nums) bad_operands(op, a, b, line);
    if (num(b) == 0) fail(op == "//" ? "integer division or modulo by zero" : "modulo by zero", line);
    if (ints) {
      const int64_t x = inum(a), y = inum(b);
      int64_t q = x / y, r = x % y;
      if (r != 0 && ((r < 0) != (y < 0))) {
        --q;
        r += y;
      }
      return Value::integer(op == "//" ? q : r);
    }
    const double x = num(a), y = num(b);
    const double q = std::floor(x / y);
    if (op == "//") return Value::number(q);
    double r = std::fmod(x, y);
    if (r != 0 && ((r < 0) != (y < 0))) r += y;
    return Value::number(r);
  }
  if (op == "**") {
    if (ints && inum(b) >= 0) {
      int64_t r = 1, base = inum(a);
      for (int64_t k = 0; k < inum(b) && k < 64; ++k) r *= base;
      return Value::integer(r);
    }
    if (nums) return Value::number(std::pow(num(a), num(b)));
    bad_operands(op, a, b, line);
  }
  fail("unknown operator " + op, line);
}

bool Evaluator::contains(const Value& container, const Value& item, int line) {
  switch (container.type) {
    case Value::Type::kUndefined: return false;
    case Value::Type::kString:
      if (!item.is_string())
        fail("'in <string>' requires string as left operand, not " + type_name(item), line);
      return container.s.find(item.s) != std::string::npos;
    case Value::Type::kList:
      for (const Value& x : *container.list)
        if (equals(x, item)) return true;
      return false;
    case Value::Type::kDict: return item.is_string() && container.dict->find(item.s) != nullptr;
    default: fail("argument of type '" + type_name(container) + "' is not iterable", line);
  }
}

Value Evaluator::eval(const Expr& e) {
  current_line = e.line;
  switch (e.kind) {
    case Expr::Kind::kLiteral: return e.literal;
    case Expr::Kind::kName: return lookup(e.name);
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      List items;
      for (const auto& a : e.args) items.push_back(eval(*a));
      return Value::make_list(std::move(items), e.kind == Expr::Kind::kTuple);
    }
    case Expr::Kind::kDict: {
      Value d = Value::make_dict();
      for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
        Value key = eval(*e.args[k]);
        if (!key.is_string()) fail("dict keys other than strings are not supported", e.line);
        d.dict->set(key.s, eval(*e.args[k + 1]));
      }
      return d;
    }
    case Expr::Kind::kAttr: return getattr(eval(*e.a), e.name, e.line);
    case Expr::Kind::kItem: {
      Value obj = eval(*e.a);
      Value key = eval(*e.b);
      return getitem(obj, key, e.line);
    }
    case Expr::Kind::kSlice: {
      Value obj = eval(*e.a);
      Value parts[3];
      const Value* p[3] = {nullptr, nullptr, nullptr};
      for (int k = 0; k < 3; ++k)
        if (e.args[size_t(k)]) {
          parts[k] = eval(*e.args[size_t(k)]);
          p[k] = &parts[k];
        }
      if (obj.is_undefined()) undefined_error(obj, e.line);
      if (obj.is_list()) {
        List out;
        for (size_t i : slice_positions(int64_t(obj.list->size()), p[0], p[1], p[2], e.line))
          out.push_back((*obj.list)[i]);
        return Value::make_list(std::move(out), obj.tuple);
      }
      if (obj.is_string()) {
        auto chars = utf8_chars(obj.s);
        std::string out;
        for (size_t i : slice_positions(int64_t(chars.size()), p[0], p[1], p[2], e.line)) out += chars[i];
        return Value::string(std::move(out));
      }
      return Value::undefined("'" + object_type_repr(obj) + "' cannot be sliced");
    }
    case Expr::Kind::kCall: {
      Value fn = eval(*e.a);
      CallArgs args = eval_args(e);
      current_line = e.line;
      return call(fn, args, e.line);
    }
    case Expr::Kind::kFilter: {
      Value input = e.a ? eval(*e.a) : filter_input;
      CallArgs args = eval_args(e);
      current_line = e.line;
      return apply_filter(*this, e.name, input, args, e.line);
    }
    case Expr::Kind::kTest: {
      Value input = eval(*e.a);
      CallArgs args = eval_args(e);
      const bool r = apply_test(*this, e.name, input, args, e.line);
      return Value::boolean(e.negate ? !r : r);
    }
    case Expr::Kind::kNeg:
    case Expr::Kind::kPos: {
      Value v = eval(*e.a);
      if (v.is_undefined()) undefined_error(v, e.line);
      if (!v.is_number()) fail("bad operand type for unary " + std::string(e.kind == Expr::Kind::kNeg ? "-" : "+") + ": '" + type_name(v) + "'", e.line);
      if (e.kind == Expr::Kind::kPos) return integral(v) ? Value::integer(inum(v)) : v;
      return integral(v) ? Value::integer(-inum(v)) : Value::number(-v.f);
    }
    case Expr::Kind::kNot: return Value::boolean(!truthy(eval(*e.a)));
    case Expr::Kind::kAnd: {
      Value a = eval(*e.a);
      return truthy(a) ? eval(*e.b) : a;
    }
    case Expr::Kind::kOr: {
      Value a = eval(*e.a);
      return truthy(a) ? a : eval(*e.b);
    }
    case Expr::Kind::kBinary: {
      Value a = eval(*e.a);
      Value b = eval(*e.b);
      return binary(e.name, a, b, e.line);
    }
    case Expr::Kind::kCompare: {
      Value left = eval(*e.a);
      for (size_t k = 0; k < e.ops.size(); ++k) {
        Value right = eval(*e.args[k]);
        const std::string& op = e.ops[k];
        bool r;
        if (op == "==") r = equals(left, right);
        else if (op == "!=") r = !equals(left, right);
        else if (op == "in") r = contains(right, left, e.line);
        else if (op == "notin") r = !contains(right, left, e.line);
        else {
          if (left.is_undefined()) undefined_error(left, e.line);
          if (right.is_undefined()) undefined_error(right, e.line);
          const int c = compare(left, right, e.line);
          r = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
        }
        if (!r) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case Expr::Kind::kCond: {
      if (truthy(eval(*e.b))) return eval(*e.a);
      if (e.c) return eval(*e.c);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return Value::undefined();
}

CallArgs Evaluator::eval_args(const Expr& e) {
  CallArgs args;
  for (const auto& a : e.args) args.positional.push_back(eval(*a));
  for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v));
  return args;
}

Value Evaluator::call(const Value& fn, CallArgs& args, int line) {
  if (fn.is_undefined()) undefined_error(fn, line);
  if (fn.type != Value::Type::kCallable) fail("'" + type_name(fn) + "' object is not callable", line);
  return (*fn.fn)(*this, args, line);
}

// ---- statements ----

Evaluator::Flow Evaluator::exec_body(const Body& body) {
  for (const NodeP& n : body) {
    Flow f = exec(*n);
    if (f != Flow::kNormal) return f;
  }
  return Flow::kNormal;
}

std::string Evaluator::capture(const Body& body) {
  std::string buffer;
  std::string* saved = out;
  out = &buffer;
  try {
    exec_body(body);
  } catch (...) {
    out = saved;
    throw;
  }
  out = saved;
  return buffer;
}

void Evaluator::assign(const std::vector<std::string>& targets, const Value& v, int line) {
  if (targets.size() == 1) {
    scope->vars[targets[0]] = v;
    return;
  }
  std::vector<Value> items = iterate(v, line);
  if (items.size() != targets.size())
    fail(items.size() < targets.size() ? "not enough values to unpack (expected " + std::to_string(targets.size()) +
                                             ", got " + std::to_string(items.size()) + ")"
                                       : "too many values to unpack (expected " + std::to_string(targets.size()) + ")",
         line);
  for (size_t k = 0; k < targets.size(); ++k) scope->vars[targets[k]] = items[k];
}

Evaluator::Flow Evaluator::exec(const Node& n) {
  current_line = n.line;
  switch (n.kind) {
    case Node::Kind::kText: write(n.text); return Flow::kNormal;
    case Node::Kind::kOutput: {
      Value v = eval(*n.expr);
      write(to_str(v, n.line));
      return Flow::kNormal;
    }
    case Node::Kind::kIf:
      for (const auto& [cond, body] : n.branches)
        if (!cond || truthy(eval(*cond))) return exec_body(body);
      return Flow::kNormal;
    case Node::Kind::kFor: {
      const Value seq = eval(*n.expr);
      std::vector<Value> items = iterate(seq, n.line);
      if (n.cond) {
        // The filter sees each item bound to the loop variable(s).
        std::vector<Value> kept;
        for (const Value& it : items) {
          Scope s{{}, scope};
          Scope* saved = scope;
          scope = &s;
          try {
            assign(n.targets, it, n.line);
            if (truthy(eval(*n.cond))) kept.push_back(it);
          } catch (...) {
            scope = saved;
            throw;
          }
          scope = saved;
        }
        items = std::move(kept);
      }
      if (items.empty()) return exec_body(n.else_body);
      const int64_t len = int64_t(items.size());
      for (int64_t k = 0; k < len; ++k) {
        step(n.line);
        Scope s{{}, scope};
        Scope* saved = scope;
        scope = &s;
        Flow f;
        try {
          assign(n.targets, items[size_t(k)], n.line);
          Value loop = Value::make_namespace();
          Dict& d = *loop.dict;
          d.set("index0", Value::integer(k));
          d.set("index", Value::integer(k + 1));
          d.set("revindex0", Value::integer(len - k - 1));
          d.set("revindex", Value::integer(len - k));
          d.set("first", Value::boolean(k == 0));
          d.set("last", Value::boolean(k == len - 1));
          d.set("length", Value::integer(len));
          d.set("depth", Value::integer(1));
          d.set("depth0", Value::integer(0));
          if (k > 0) d.set("previtem", items[size_t(k - 1)]);
          if (k + 1 < len) d.set("nextitem", items[size_t(k + 1)]);
          d.set("cycle", Value::callable([k](Evaluator&, CallArgs& a, int line) -> Value {
            if (a.positional.empty()) fail("no items for cycling given", line);
            return a.positional[size_t(k) % a.positional.size()];
          }));
          s.vars["loop"] = loop;
          f = exec_body(n.body);
        } catch (...) {
          scope = saved;
          throw;
        }
        scope = saved;
        if (f == Flow::kBreak) break;
      }
      return Flow::kNormal;
    }
    case Node::Kind::kSet: {
      Value v = eval(*n.expr);
      if (n.attr_set) {
        Value ns = lookup(n.targets[0]);
        if (ns.type != Value::Type::kNamespace) fail("cannot assign attribute on non-namespace object", n.line);
        ns.dict->set(n.targets[1], v);
      } else {
        assign(n.targets, v, n.line);
      }
      return Flow::kNormal;
    }
    case Node::Kind::kSetBlock: scope->vars[n.targets[0]] = Value::string(capture(n.body)); return Flow::kNormal;
    case Node::Kind::kMacro: {
      const Node* def = &n;
      scope->vars[n.name] = Value::callable([def](Evaluator& ev, CallArgs& a, int line) -> Value {
        return ev.call_macro(*def, a, line);
      });
      return Flow::kNormal;
    }
    case Node::Kind::kBreak: return Flow::kBreak;
    case Node::Kind::kContinue: return Flow::kContinue;
    case Node::Kind::kFilterBlock: {
      Value saved = filter_input;
      filter_input = Value::string(capture(n.body));
      Value r = eval(*n.expr);
      filter_input = saved;
      write(to_str(r, n.line));
      return Flow::kNormal;
    }
    case Node::Kind::kBlock: return exec_body(n.body);
  }
  return Flow::kNormal;
}

Value Evaluator::call_macro(const Node& def, CallArgs& a, int line) {
  step(line);
  if (call_depth >= kMaxCallDepth)
    fail("macro '" + def.name + "' recursed more than " + std::to_string(kMaxCallDepth) + " calls deep", line);
  if (a.positional.size() > def.params.size())
    fail("macro '" + def.name + "' takes not more than " + std::to_string(def.params.size()) + " argument(s)", line);
  Scope s{{}, root};
  for (size_t k = 0; k < def.params.size(); ++k) {
    const auto& [pname, dflt] = def.params[k];
    if (k < a.positional.size()) {
      s.vars[pname] = a.positional[k];
      continue;
    }
    bool found = false;
    for (const auto& [kname, v] : a.keyword)
      if (kname == pname) {
        s.vars[pname] = v;
        found = true;
      }
    if (!found) {
      if (dflt) {
        Scope* saved = scope;
        scope = &s;
        Value d;
        try {
          d = eval(*dflt);
        } catch (...) {
          scope = saved;
          throw;
        }
        scope = saved;
        s.vars[pname] = d;
      } else {
        s.vars[pname] = Value::undefined("parameter '" + pname + "' was not provided");
      }
    }
  }
  for (const auto& [kname, v] : a.keyword) {
    bool known = false;
    for (const auto& p : def.params) known = known || p.first == kname;
    if (!known) fail("macro '" + def.name + "' takes no keyword argument '" + kname + "'", line);
  }
  Scope* saved = scope;
  scope = &s;
  ++call_depth;
  std::string text;
  try {
    text = capture(def.body);
  } catch (...) {
    scope = saved;
    --call_depth;
    throw;
  }
  --call_depth;
  scope = saved;
  return Value::string(std::move(text));
}

}  // namespace atax::tmpl
