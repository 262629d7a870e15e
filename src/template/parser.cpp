// Parser: jinja2's grammar (jinja2/parser.py) for expressions and the statements chat templates
// use. Precedence, lowest first: a if b else c, or, and, not, comparisons (== != < <= > >= in,
// not in), + -, ~, * / // %, **, unary - +, then postfix (. [] ()) with filters (|) and tests (is).
#include "template/builtins.h"

namespace atax::tmpl {

namespace {

constexpr int kMaxDepth = 200;  // nesting of expressions and blocks

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  Program run() {
    Program p;
    std::string end = parse_body(p.body, {});
    if (!end.empty()) fail("unexpected '" + end + "' tag", cur().line);
    return p;
  }

 private:
  const Token& cur() const { return t_[k_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(k_ + n, t_.size() - 1)]; }
  bool is_op(const std::string& op) const { return cur().type == Tok::kOp && cur().text == op; }
  bool is_name(const std::string& n) const { return cur().type == Tok::kName && cur().text == n; }
  void expect_op(const std::string& op) {
    if (!is_op(op)) fail("expected '" + op + "', got " + describe(cur()), cur().line);
    ++k_;
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) fail("expected a name, got " + describe(cur()), cur().line);
    return t_[k_++].text;
  }
  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::kVarEnd: return "end of print statement";
      case Tok::kBlockEnd: return "end of statement block";
      case Tok::kEnd: return "end of template";
      case Tok::kString: return "string";
      case Tok::kData: return "template data";
      default: return "'" + t.text + "'";
    }
  }
  void expect_block_end() {
    if (cur().type != Tok::kBlockEnd) fail("expected end of statement block, got " + describe(cur()), cur().line);
    ++k_;
  }
  struct DepthGuard {
    int& d;
    DepthGuard(int& depth, int line) : d(depth) {
      if (++d > kMaxDepth) fail("template nested too deeply", line);
    }
    ~DepthGuard() { --d; }
  };

  // Parses nodes until a block tag whose keyword is in `ends`; returns that keyword (the
  // block-begin and keyword consumed, the rest of the tag not) or "" at the end of input.
  std::string parse_body(Body& body, const std::vector<std::string>& ends) {
    DepthGuard g(depth_, cur().line);
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::kEnd) {
        if (!ends.empty()) fail("unexpected end of template; expected '" + ends.front() + "'", t.line);
        return {};
      }
      if (t.type == Tok::kData) {
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kText;
        n->line = t.line;
        n->text = t.text;
        body.push_back(std::move(n));
        ++k_;
        continue;
      }
      if (t.type == Tok::kVarBegin) {
        ++k_;
        auto n = std::make_unique<Node>();
        n->kind = Node::Kind::kOutput;
        n->line = t.line;
        n->expr = parse_tuple_expr();
        if (cur().type != Tok::kVarEnd) fail("expected end of print statement, got " + describe(cur()), cur().line);
        ++k_;
        body.push_back(std::move(n));
        continue;
      }
      if (t.type != Tok::kBlockBegin) fail("unexpected " + describe(t), t.line);
      ++k_;
      const int line = cur().line;
      const std::string kw = expect_name();
      for (const std::string& e : ends)
        if (kw == e) return kw;
      body.push_back(parse_statement(kw, line));
    }
  }

  NodeP parse_statement(const std::string& kw, int line) {
    auto n = std::make_unique<Node>();
    n->line = line;
    if (kw == "if") {
      n->kind = Node::Kind::kIf;
      ExprP cond = parse_expression();
      expect_block_end();
      while (true) {
        Body b;
        std::string end = parse_body(b, {"elif", "else", "endif"});
        n->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "endif") break;
        if (end == "elif") {
          cond = parse_expression();
          expect_block_end();
          continue;
        }
        expect_block_end();  // else
        Body eb;
        parse_body(eb, {"endif"});
        n->branches.emplace_back(nullptr, std::move(eb));
        break;
      }
      expect_block_end();
    } else if (kw == "for") {
      n->kind = Node::Kind::kFor;
      bool paren = false;
      if (is_op("(")) {
        paren = true;
        ++k_;
      }
      n->targets.push_back(expect_name());
      while (is_op(",")) {
        ++k_;
        if (cur().type != Tok::kName) break;
        n->targets.push_back(expect_name());
      }
      if (paren) expect_op(")");
      if (!is_name("in")) fail("expected 'in' in for loop", cur().line);
      ++k_;
      n->expr = parse_or();
      if (is_name("if")) {
        ++k_;
        n->cond = parse_expression();
      }
      if (is_name("recursive")) fail("recursive for loops are not supported", cur().line);
      expect_block_end();
      std::string end = parse_body(n->body, {"else", "endfor"});
      expect_block_end();
      if (end == "else") {
        parse_body(n->else_body, {"endfor"});
        expect_block_end();
      }
    } else if (kw == "set") {
      std::string first = expect_name();
      n->targets.push_back(first);
      if (is_op(".")) {
        ++k_;
        n->targets.push_back(expect_name());
        n->attr_set = true;
      } else {
        while (is_op(",")) {
          ++k_;
          n->targets.push_back(expect_name());
        }
      }
      if (is_op("=")) {
        ++k_;
        n->kind = Node::Kind::kSet;
        n->expr = parse_tuple_expr();
        expect_block_end();
      } else {
        if (n->attr_set || n->targets.size() != 1) fail("a block set takes one name", line);
        n->kind = Node::Kind::kSetBlock;
        expect_block_end();
        parse_body(n->body, {"endset"});
        expect_block_end();
      }
    } else if (kw == "macro") {
      n->kind = Node::Kind::kMacro;
      n->name = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        std::string p = expect_name();
        ExprP dflt;
        if (is_op("=")) {
          ++k_;
          dflt = parse_expression();
        }
        n->params.emplace_back(p, std::move(dflt));
        if (!is_op(",")) break;
        ++k_;
      }
      expect_op(")");
      expect_block_end();
      parse_body(n->body, {"endmacro"});
      if (cur().type == Tok::kName) ++k_;  // {% endmacro name %}
      expect_block_end();
    } else if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0 && false) fail("'" + kw + "' outside a loop", line);
      n->kind = kw == "break" ? Node::Kind::kBreak : Node::Kind::kContinue;
      expect_block_end();
    } else if (kw == "filter") {
      n->kind = Node::Kind::kFilterBlock;
      ExprP chain;  // filters applied to a null input (the body)
      do {
        if (chain) ++k_;  // the '|'
        chain = parse_filter(std::move(chain));
      } while (is_op("|"));
      n->expr = std::move(chain);
      expect_block_end();
      parse_body(n->body, {"endfilter"});
      expect_block_end();
    } else if (kw == "generation") {
      // transformers' AssistantTracker: marks assistant text; renders its body unchanged.
      n->kind = Node::Kind::kBlock;
      expect_block_end();
      parse_body(n->body, {"endgeneration"});
      expect_block_end();
    } else {
      fail("unsupported or unknown tag '" + kw + "'", line);
    }
    return n;
  }

  ExprP make(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }

  // An expression, or a bare tuple "a, b".
  ExprP parse_tuple_expr() {
    const int line = cur().line;
    ExprP first = parse_expression();
    if (!is_op(",")) return first;
    auto t = make(Expr::Kind::kTuple, line);
    t->args.push_back(std::move(first));
    while (is_op(",")) {
      ++k_;
      if (cur().type == Tok::kVarEnd || cur().type == Tok::kBlockEnd) break;
      t->args.push_back(parse_expression());
    }
    return t;
  }

  ExprP parse_expression() {
    DepthGuard g(depth_, cur().line);
    ExprP e = parse_or();
    while (is_name("if")) {
      const int line = cur().line;
      ++k_;
      auto c = make(Expr::Kind::kCond, line);
      c->a = std::move(e);
      c->b = parse_or();
      if (is_name("else")) {
        ++k_;
        c->c = parse_expression();
      }
      e = std::move(c);
    }
    return e;
  }
  ExprP parse_or() {
    ExprP e = parse_and();
    while (is_name("or")) {
      auto n = make(Expr::Kind::kOr, cur().line);
      ++k_;
      n->a = std::move(e);
      n->b = parse_and();
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_and() {
    ExprP e = parse_not();
    while (is_name("and")) {
      auto n = make(Expr::Kind::kAnd, cur().line);
      ++k_;
      n->a = std::move(e);
      n->b = parse_not();
      e = std::move(n);
    }
    return e;
  }
  ExprP parse_not() {
    if (is_name("not")) {
      DepthGuard g(depth_, cur().line);
      auto n = make(Expr::Kind::kNot, cur().line);
      ++k_;
      n->a = parse_not();
      return n;
    }
    return parse_compare();
  }
  ExprP parse_compare() {
    const int line = cur().line;
    ExprP e = parse_math1();
    ExprP cmp;
    while (true) {
      std::string op;
      if (cur().type == Tok::kOp &&
          (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
        op = cur().text;
        ++k_;
      } else if (is_name("in")) {
        op = "in";
        ++k_;
      } else if (is_name("not") && peek().type == Tok::kName && peek().text == "in") {
        op = "notin";
        k_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, line);
        cmp->a = std::move(e);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(e);
  }
  ExprP binary(const std::string& op, ExprP a, ExprP b, int line) {
    auto n = make(Expr::Kind::kBinary, line);
    n->name = op;
    n->a = std::move(a);
    n->b = std::move(b);
    return n;
  }
  ExprP parse_math1() {
    ExprP e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const int line = cur().line;
      ++k_;
      e = binary(op, std::move(e), parse_concat(), line);
    }
    return e;
  }
  ExprP parse_concat() {
    ExprP e = parse_math2();
    while (is_op("~")) {
      const int line = cur().line;
      ++k_;
      e = binary("~", std::move(e), parse_math2(), line);
    }
    return e;
  }
  ExprP parse_math2() {
    ExprP e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const int line = cur().line;
      ++k_;
      e = binary(op, std::move(e), parse_pow(), line);
    }
    return e;
  }
  ExprP parse_pow() {
    ExprP e = parse_unary(true);
    while (is_op("**")) {
      const int line = cur().line;
      ++k_;
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }
  ExprP parse_unary(bool with_filter) {
    DepthGuard g(depth_, cur().line);
    ExprP e;
    if (is_op("-") || is_op("+")) {
      auto n = make(is_op("-") ? Expr::Kind::kNeg : Expr::Kind::kPos, cur().line);
      ++k_;
      n->a = parse_unary(false);
      e = std::move(n);
    } else {
      e = parse_postfix(parse_primary());
    }
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }
  ExprP parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    if (t.type == Tok::kName) {
      ++k_;
      if (t.text == "true" || t.text == "True") return literal(Value::boolean(true), line);
      if (t.text == "false" || t.text == "False") return literal(Value::boolean(false), line);
      if (t.text == "none" || t.text == "None") return literal(Value::none(), line);
      auto n = make(Expr::Kind::kName, line);
      n->name = t.text;
      return n;
    }
    if (t.type == Tok::kString) {
      std::string s;
      while (cur().type == Tok::kString) s += t_[k_++].text;  // adjacent literals concatenate
      return literal(Value::string(std::move(s)), line);
    }
    if (t.type == Tok::kInt) {
      ++k_;
      try {
        return literal(Value::integer(std::stoll(t.text)), line);
      } catch (const std::exception&) {
        fail("integer literal out of range: " + t.text, line);
      }
    }
    if (t.type == Tok::kFloat) {
      ++k_;
      return literal(Value::number(std::strtod(t.text.c_str(), nullptr)), line);
    }
    if (is_op("(")) {
      ++k_;
      if (is_op(")")) {
        ++k_;
        return make(Expr::Kind::kTuple, line);
      }
      ExprP e = parse_expression();
      if (is_op(",")) {
        auto tu = make(Expr::Kind::kTuple, line);
        tu->args.push_back(std::move(e));
        while (is_op(",")) {
          ++k_;
          if (is_op(")")) break;
          tu->args.push_back(parse_expression());
        }
        e = std::move(tu);
      }
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ++k_;
      auto l = make(Expr::Kind::kList, line);
      while (!is_op("]")) {
        l->args.push_back(parse_expression());
        if (!is_op(",")) break;
        ++k_;
      }
      expect_op("]");
      return l;
    }
    if (is_op("{")) {
      ++k_;
      auto d = make(Expr::Kind::kDict, line);
      while (!is_op("}")) {
        d->args.push_back(parse_expression());
        expect_op(":");
        d->args.push_back(parse_expression());
        if (!is_op(",")) break;
        ++k_;
      }
      expect_op("}");
      return d;
    }
    fail("unexpected " + describe(t), line);
  }
  ExprP literal(Value v, int line) {
    auto n = make(Expr::Kind::kLiteral, line);
    n->literal = std::move(v);
    return n;
  }
  ExprP parse_postfix(ExprP e) {
    while (true) {
      const int line = cur().line;
      if (is_op(".")) {
        ++k_;
        auto n = make(Expr::Kind::kAttr, line);
        n->a = std::move(e);
        if (cur().type == Tok::kInt) {  // foo.0 is foo[0]
          n->kind = Expr::Kind::kItem;
          n->b = literal(Value::integer(std::stoll(t_[k_++].text)), line);
        } else {
          n->name = expect_name();
        }
        e = std::move(n);
      } else if (is_op("[")) {
        ++k_;
        e = parse_subscript(std::move(e), line);
        expect_op("]");
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }
  ExprP parse_subscript(ExprP obj, int line) {
    ExprP parts[3];
    int n = 0;
    bool slice = false;
    if (!is_op(":")) parts[0] = parse_expression();
    if (is_op(":")) {
      slice = true;
      ++k_;
      n = 1;
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression();
      if (is_op(":")) {
        ++k_;
        if (!is_op("]")) parts[2] = parse_expression();
      }
    }
    (void)n;
    if (!slice) {
      auto it = make(Expr::Kind::kItem, line);
      it->a = std::move(obj);
      it->b = std::move(parts[0]);
      return it;
    }
    auto s = make(Expr::Kind::kSlice, line);
    s->a = std::move(obj);
    for (auto& p : parts) s->args.push_back(std::move(p));
    return s;
  }
  void parse_call_args(Expr& call) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == "=") {
        std::string key = t_[k_].text;
        k_ += 2;
        call.kwargs.emplace_back(key, parse_expression());
      } else {
        if (!call.kwargs.empty()) fail("positional argument after a keyword argument", cur().line);
        call.args.push_back(parse_expression());
      }
      if (!is_op(",")) break;
      ++k_;
    }
    expect_op(")");
  }
  ExprP parse_call(ExprP fn) {
    auto c = make(Expr::Kind::kCall, cur().line);
    c->a = std::move(fn);
    parse_call_args(*c);
    return c;
  }
  ExprP parse_filter(ExprP input) {
    auto f = make(Expr::Kind::kFilter, cur().line);
    f->name = expect_name();
    while (is_op(".")) {  // dotted filter names
      ++k_;
      f->name += "." + expect_name();
    }
    if (!has_filter(f->name)) fail("No filter named '" + f->name + "'.", f->line);
    f->a = std::move(input);
    if (is_op("(")) parse_call_args(*f);
    return f;
  }
  ExprP parse_filter_expr(ExprP e) {
    while (true) {
      if (is_op("|")) {
        ++k_;
        e = parse_filter(std::move(e));
      } else if (is_name("is")) {
        ++k_;
        auto t = make(Expr::Kind::kTest, cur().line);
        if (is_name("not")) {
          ++k_;
          t->negate = true;
        }
        t->name = expect_name();
        while (is_op(".")) {
          ++k_;
          t->name += "." + expect_name();
        }
        if (!has_test(t->name)) fail("No test named '" + t->name + "'.", t->line);
        t->a = std::move(e);
        const Token& c = cur();
        if (is_op("(")) {
          parse_call_args(*t);
        } else if ((c.type == Tok::kName || c.type == Tok::kString || c.type == Tok::kInt || c.type == Tok::kFloat ||
                    is_op("[") || is_op("{")) &&
                   !is_name("else") && !is_name("or") && !is_name("and")) {
          if (is_name("is")) fail("You cannot chain multiple tests with is", c.line);
          t->args.push_back(parse_postfix(parse_primary()));
        }
        e = std::move(t);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  const std::vector<Token>& t_;
  size_t k_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Program parse(const std::vector<Token>& tokens) { return Parser(tokens).run(); }

}  // namespace atax::tmpl
