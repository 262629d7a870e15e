// template internals: the value model (Python's semantics as jinja2 sees them), tokens, the
// syntax tree, and the pieces the lexer, parser and evaluator share.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/template.h"

namespace atax::tmpl {

// An error inside the engine: message and template line; ChatTemplate turns it into atax::Error.
struct TemplateError {
  std::string message;
  int line = 0;
  bool raised = false;  // raise_exception() from the template itself
};
[[noreturn]] void fail(const std::string& message, int line);

struct Value;
using List = std::vector<Value>;
struct Dict;
struct Evaluator;
struct CallArgs;
using NativeFn = std::function<Value(Evaluator&, CallArgs&, int line)>;

struct Value {
  enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kNamespace, kCallable };
  Type type = Type::kUndefined;
  bool b = false;
  bool tuple = false;  // a list that prints as a Python tuple
  int64_t i = 0;
  double f = 0;
  std::string s;  // string value; for Undefined the message an error about it gives
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // also a namespace's attributes
  std::shared_ptr<NativeFn> fn;

  static Value undefined(std::string why = {}) {
    Value v;
    v.s = std::move(why);
    return v;
  }
  static Value none() { return make(Type::kNone); }
  static Value boolean(bool x) {
    Value v = make(Type::kBool);
    v.b = x;
    return v;
  }
  static Value integer(int64_t x) {
    Value v = make(Type::kInt);
    v.i = x;
    return v;
  }
  static Value number(double x) {
    Value v = make(Type::kFloat);
    v.f = x;
    return v;
  }
  static Value string(std::string x) {
    Value v = make(Type::kString);
    v.s = std::move(x);
    return v;
  }
  static Value make_list(List items = {}, bool is_tuple = false) {
    Value v = make(Type::kList);
    v.list = std::make_shared<List>(std::move(items));
    v.tuple = is_tuple;
    return v;
  }
  static Value make_dict();
  static Value make_namespace();
  static Value callable(NativeFn f) {
    Value v = make(Type::kCallable);
    v.fn = std::make_shared<NativeFn>(std::move(f));
    return v;
  }
  static Value make(Type t) {
    Value v;
    v.type = t;
    return v;
  }

  bool is_undefined() const { return type == Type::kUndefined; }
  bool is_none() const { return type == Type::kNone; }
  bool is_string() const { return type == Type::kString; }
  bool is_list() const { return type == Type::kList; }
  bool is_dict() const { return type == Type::kDict; }
  bool is_number() const { return type == Type::kInt || type == Type::kFloat || type == Type::kBool; }
};

// A Python dict: insertion-ordered string keys.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(const std::string& key) const {
    for (const auto& [k, v] : items)
      if (k == key) return &v;
    return nullptr;
  }
  void set(const std::string& key, Value v) {
    for (auto& [k, old] : items)
      if (k == key) {
        old = std::move(v);
        return;
      }
    items.emplace_back(key, std::move(v));
  }
};

inline Value Value::make_dict() {
  Value v = make(Type::kDict);
  v.dict = std::make_shared<Dict>();
  return v;
}
inline Value Value::make_namespace() {
  Value v = make(Type::kNamespace);
  v.dict = std::make_shared<Dict>();
  return v;
}

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  // The argument at `index` or named `name`; Undefined if absent.
  Value get(size_t index, const std::string& name) const;
  bool has(size_t index, const std::string& name) const;
};

// Python semantics (value.cpp).
std::string type_name(const Value& v);            // "str", "dict", "NoneType", ... (as Python names them)
std::string to_str(const Value& v, int line);     // str(v); Undefined prints ""
std::string repr(const Value& v);                 // repr(v)
bool truthy(const Value& v);
bool equals(const Value& a, const Value& b);
int compare(const Value& a, const Value& b, int line);  // <0, 0, >0; fails for unorderable types
std::string float_repr(double x);
struct JsonStyle {
  int indent = -1;  // < 0: one line
  std::string indent_text;
  std::string item_sep = ", ", key_sep = ": ";
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonStyle& style, int line);
Value from_json(const ordered_json& j);
// Unicode code points of a UTF-8 string and back (for len(), slicing, indexing).
std::vector<std::string> utf8_chars(const std::string& s);
size_t utf8_length(const std::string& s);
// The UTF-8 encoding of one code point (builtins.cpp; the lexer's \u escapes use it too).
std::string encode_cp(uint32_t cp);

// ---- tokens and syntax tree ----

enum class Tok { kData, kVarBegin, kVarEnd, kBlockBegin, kBlockEnd, kName, kString, kInt, kFloat, kOp, kEnd };

struct Token {
  Tok type;
  std::string text;  // data / name / decoded string / operator / number text
  int line;
};

// Splits `source` into tokens with jinja2's whitespace rules (trim_blocks, lstrip_blocks, "-"
// and "+" markers, a single trailing newline dropped, comments removed, raw blocks as data).
std::vector<Token> lex(const std::string& source);

struct Expr;
using ExprP = std::unique_ptr<Expr>;
struct Expr {
  enum class Kind {
    kLiteral, kName, kList, kTuple, kDict, kAttr, kItem, kSlice, kCall, kFilter, kTest,
    kNeg, kPos, kNot, kAnd, kOr, kBinary, kCompare, kCond
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;  // variable / attribute / filter / test name, binary operator
  ExprP a, b, c;     // operands (slice: a = object, args = start, stop, step)
  std::vector<ExprP> args;
  std::vector<std::pair<std::string, ExprP>> kwargs;
  std::vector<std::string> ops;  // compare operators, one per args entry
  bool negate = false;           // `is not`
};

struct Node;
using NodeP = std::unique_ptr<Node>;
using Body = std::vector<NodeP>;
struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kSetBlock, kMacro, kBreak, kContinue, kFilterBlock, kBlock };
  Kind kind;
  int line = 0;
  std::string text;                        // kText
  ExprP expr;                              // output / set value / for iterable / filter chain
  ExprP cond;                              // for ... if cond
  std::vector<std::pair<ExprP, Body>> branches;  // if / elif (+ else with a null condition)
  std::vector<std::string> targets;        // for / set names; set "ns.attr" as {"ns", "attr"} with attr_set
  bool attr_set = false;
  std::string name;                        // macro name
  std::vector<std::pair<std::string, ExprP>> params;  // macro parameters and defaults
  Body body, else_body;
};

struct Program {
  Body body;
};
// Parses tokens into a tree; fails with TemplateError (line) on a syntax error.
Program parse(const std::vector<Token>& tokens);

}  // namespace atax::tmpl
