// Math word problems (small numbers, one worked line per step, "#### n") and tiny Python functions
// (one-line bodies in HumanEval's layout), with the number / constant combinations that are held
// out for evaluation.
#include <algorithm>
#include <stdexcept>

#include "world/internal.h"

namespace atax::world::detail {

namespace {

uint64_t combo_hash(uint64_t seed, const std::string& key) {
  uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9e3779b97f4a7c15ULL);
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

const std::vector<std::string> kItems = {"apples", "pears",   "shells", "marbles", "stamps", "eggs",
                                         "buttons", "beads",  "stones", "cards",   "plums",  "cakes",
                                         "candles", "glints", "moonberries", "feathers"};

struct MathTemplates {
  std::vector<std::string> train, eval;
};

// Training phrasings, and held-out phrasings that put the same cue words ("more", "gave", "each",
// "equally") into new sentences. Evaluation problems use held-out number combinations, half of them
// in training phrasings and half in held-out ones.
const std::map<std::string, MathTemplates>& math_templates() {
  static const std::map<std::string, MathTemplates> t = {
      {"add",
       {{"{N} has {a} {I}. {N} finds {b} more {I}. How many {I} does {N} have now?",
         "There are {a} {I} in a basket. {N} puts {b} more {I} in the basket. How many {I} are in the basket now?",
         "{N} picked {a} {I} on Monday and {b} {I} on Tuesday. How many {I} did {N} pick in total?",
         "A shop had {a} {I}. Then {b} more {I} arrived. How many {I} does the shop have now?"},
        {"At the market, {N} bought {a} {I} and later found {b} more {I}. What is the total number of {I} {N} "
         "has now?",
         "{N} picked {a} {I} in the morning and {b} {I} in the evening. How many {I} did {N} pick in all?",
         "In the first box there are {a} {I}. {N} puts {b} more {I} in the box. How many {I} are in the box now?"}}},
      {"sub",
       {{"{N} has {a} {I}. {N} gives {b} {I} to a friend. How many {I} does {N} have left?",
         "There were {a} {I} on the table. {N} took {b} of them. How many {I} are left on the table?",
         "A shop had {a} {I}. It sold {b} {I}. How many {I} does the shop have left?"},
        {"{N} started the day with {a} {I} and gave {b} {I} to a neighbour. How many {I} are left with {N}?",
         "There were {a} {I} in the cellar. The cook took {b} of them. How many {I} are still in the cellar?",
         "{N} owned {a} {I} and sold {b} {I} at the fair. How many {I} does {N} have left?"}}},
      {"mul",
       {{"{N} has {a} bags. Each bag holds {b} {I}. How many {I} does {N} have?",
         "There are {a} rows of {I} with {b} {I} in each row. How many {I} are there in all?"},
        {"{N} carried {a} crates, and each crate holds {b} {I}. How many {I} did {N} carry?",
         "{N} made {a} stacks with {b} {I} in each stack. How many {I} are in the stacks?"}}},
      {"div",
       {{"{N} has {a} {I} and shares them equally among {b} friends. How many {I} does each friend get?",
         "{a} {I} are packed into {b} equal boxes. How many {I} go into each box?"},
        {"{N} shares {a} {I} equally among {b} children. How many {I} does each child get?",
         "A baker packs {a} {I} into {b} equal baskets. How many {I} go into each basket?"}}},
      {"add_sub",
       {{"{N} has {a} {I}. {N} buys {b} more {I}. Then {N} gives {d} {I} away. How many {I} does {N} have now?",
         "A shop had {a} {I}. Then {b} more {I} arrived, and the shop sold {d} {I}. How many {I} are left?"},
        {"{N} collected {a} {I}, then found {b} more {I}, and then gave {d} {I} away. How many {I} does {N} "
         "have now?",
         "In a jar there were {a} {I}. {N} put in {b} more {I} and later took {d} {I} out. How many {I} are in the "
         "jar now?"}}},
      {"add_add",
       {{"{N} picked {a} {I} on Monday, {b} {I} on Tuesday and {d} {I} on Wednesday. How many {I} did {N} pick in "
         "total?",
         "There are {a} red {I}, {b} blue {I} and {d} green {I}. How many {I} are there?"},
        {"{N} found {a} {I} on Friday, {b} {I} on Saturday and {d} {I} on Sunday. How many {I} did {N} find "
         "altogether?",
         "A farm has {a} white {I}, {b} brown {I} and {d} black {I}. How many {I} does the farm have in all?"}}},
      {"sub_add",
       {{"{N} had {a} {I}. {N} lost {b} {I}, then found {d} more {I}. How many {I} does {N} have now?",
         "A shop had {a} {I}. It sold {b} {I}, then {d} more {I} arrived. How many {I} does the shop have now?"},
        {"{N} had {a} {I}, gave {b} {I} to a neighbour and then found {d} more {I}. How many {I} are with {N} "
         "now?",
         "A boat carried {a} {I}. At the port {b} {I} were sold, and then {d} more {I} were loaded. How many {I} "
         "are on the boat now?"}}},
  };
  return t;
}

struct Combo {
  std::string op;
  std::vector<int> nums;
  std::vector<std::string> lines;
  int result = 0;
};

// Draws numbers for `op` inside the memorisable tables: sums of two numbers in 2..20, their
// inverse differences, products of two numbers in 2..9 and their inverse quotients.
Combo draw_combo(Rng& rng, const std::string& op) {
  Combo c{op, {}, {}, 0};
  auto line = [](int x, const char* o, int y, int z) {
    return std::to_string(x) + " " + o + " " + std::to_string(y) + " = " + std::to_string(z);
  };
  if (op == "add") {
    int a = static_cast<int>(rng.range(2, 20)), b = static_cast<int>(rng.range(2, 20));
    c.nums = {a, b};
    c.result = a + b;
    c.lines = {line(a, "+", b, a + b)};
  } else if (op == "sub") {
    int x = static_cast<int>(rng.range(2, 20)), y = static_cast<int>(rng.range(2, 20));
    c.nums = {x + y, y};
    c.result = x;
    c.lines = {line(x + y, "-", y, x)};
  } else if (op == "mul") {
    int a = static_cast<int>(rng.range(2, 9)), b = static_cast<int>(rng.range(2, 9));
    c.nums = {a, b};
    c.result = a * b;
    c.lines = {line(a, "*", b, a * b)};
  } else if (op == "div") {
    int x = static_cast<int>(rng.range(2, 9)), y = static_cast<int>(rng.range(2, 9));
    c.nums = {x * y, y};
    c.result = x;
    c.lines = {line(x * y, "/", y, x)};
  } else if (op == "add_sub") {
    int a = static_cast<int>(rng.range(2, 20)), b = static_cast<int>(rng.range(2, 20));
    int s = a + b;
    int d = static_cast<int>(rng.range(std::max(2, s - 20), std::min(20, s - 2)));
    c.nums = {a, b, d};
    c.result = s - d;
    c.lines = {line(a, "+", b, s), line(s, "-", d, s - d)};
  } else if (op == "add_add") {
    int a = static_cast<int>(rng.range(2, 15));
    int b = static_cast<int>(rng.range(2, 20 - a));
    int d = static_cast<int>(rng.range(2, 20));
    c.nums = {a, b, d};
    c.result = a + b + d;
    c.lines = {line(a, "+", b, a + b), line(a + b, "+", d, a + b + d)};
  } else if (op == "sub_add") {
    int x = static_cast<int>(rng.range(2, 20)), y = static_cast<int>(rng.range(2, 20));
    int d = static_cast<int>(rng.range(2, 20));
    c.nums = {x + y, y, d};
    c.result = x + d;
    c.lines = {line(x + y, "-", y, x), line(x, "+", d, x + d)};
  } else {
    throw std::logic_error("world: unknown math op " + op);
  }
  return c;
}

const std::vector<std::pair<std::string, double>> kOpMix = {{"add", 0.2},     {"sub", 0.2},     {"mul", 0.14},
                                                            {"div", 0.1},     {"add_sub", 0.12}, {"add_add", 0.12},
                                                            {"sub_add", 0.12}};

std::string pick_op(Rng& rng) {
  double r = rng.uniform01(), acc = 0;
  for (const auto& [op, w] : kOpMix) {
    acc += w;
    if (r < acc) return op;
  }
  return kOpMix.back().first;
}

}  // namespace

bool math_combo_heldout(uint64_t seed, const std::string& op, const std::vector<int>& nums) {
  std::string key = "math:" + op;
  for (int n : nums) key += ":" + std::to_string(n);
  return combo_hash(seed, key) % 5 == 0;
}

MathProblem math_problem(Rng& rng, const Universe& u, uint64_t seed, bool eval) {
  std::string op = pick_op(rng);
  Combo c;
  for (int tries = 0;; ++tries) {
    c = draw_combo(rng, op);
    if (math_combo_heldout(seed, op, c.nums) == eval) break;
    if (tries > 10000) throw std::logic_error("world: no math combination for " + op);
  }
  const auto& t = math_templates().at(op);
  Slots s = {{"N", rng.pick(u.folk)}, {"I", rng.pick(kItems)}, {"a", std::to_string(c.nums[0])},
             {"b", std::to_string(c.nums[1])}};
  if (c.nums.size() > 2) s.push_back({"d", std::to_string(c.nums[2])});
  MathProblem p;
  p.op = op;
  p.nums = c.nums;
  p.question = fill(rng.pick(eval && rng.bernoulli(0.5) ? t.eval : t.train), s);
  for (const auto& l : c.lines) p.answer += l + "\n";
  p.answer += "#### " + std::to_string(c.result);
  p.result = c.result;
  return p;
}

std::string arithmetic_drill(Rng& rng, int64_t index) {
  static const std::vector<std::string> kOps = {"add", "sub", "mul", "div"};
  auto line = [](int x, const char* o, int y, int z) {
    return std::to_string(x) + " " + o + " " + std::to_string(y) + " = " + std::to_string(z) + "\n";
  };
  std::string out;
  if (index % 2 == 0) {  // one row of a table, in order: "7 + 2 = 9", "7 + 3 = 10", ...
    // Rows: add x (2..20), sub to x (2..20), mul x (2..9), div to x (2..9): 54 rows.
    int64_t row = (index / 2) % 54;
    std::string op;
    int x;
    if (row < 19) op = "add", x = static_cast<int>(row) + 2;
    else if (row < 38) op = "sub", x = static_cast<int>(row) - 19 + 2;
    else if (row < 46) op = "mul", x = static_cast<int>(row) - 38 + 2;
    else op = "div", x = static_cast<int>(row) - 46 + 2;
    bool small = op == "mul" || op == "div";
    for (int y = 2; y <= (small ? 9 : 20); ++y) {
      if (op == "add") out += line(x, "+", y, x + y);
      else if (op == "sub") out += line(x + y, "-", y, x);
      else if (op == "mul") out += line(x, "*", y, x * y);
      else out += line(x * y, "/", y, x);
    }
    return out;
  }
  int n = static_cast<int>(rng.range(12, 24));
  for (int i = 0; i < n; ++i) out += draw_combo(rng, rng.pick(kOps)).lines[0] + "\n";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Code
// ---------------------------------------------------------------------------------------------

namespace {

enum class Arg { kInt, kList, kStr, kCount };  // kCount: an int argument n for string repeats

struct Family {
  std::string id;
  std::string name;       // with {w}: the parameter's word (seven / lantern)
  Arg arg;
  std::string ret;        // int | bool | list | str
  std::string doc;        // with {k}: the parameter as it appears in code (7 / 'lantern')
  std::string body;       // "return ..." with {k}
  bool word_param;        // parameter from craft_words() instead of 2..12
};

const std::vector<Family>& families() {
  static const std::vector<Family> f = {
      {"add", "add_{w}", Arg::kInt, "int", "Return x plus {k}.", "return x + {k}", false},
      {"subtract", "subtract_{w}", Arg::kInt, "int", "Return x minus {k}.", "return x - {k}", false},
      {"multiply", "times_{w}", Arg::kInt, "int", "Return x times {k}.", "return x * {k}", false},
      {"greater", "is_more_than_{w}", Arg::kInt, "bool", "Return True if x is greater than {k}.", "return x > {k}",
       false},
      {"remainder", "mod_{w}", Arg::kInt, "int", "Return the remainder of x divided by {k}.", "return x % {k}",
       false},
      {"smaller", "at_most_{w}", Arg::kInt, "int", "Return the smaller of x and {k}.", "return min(x, {k})", false},
      {"larger", "at_least_{w}", Arg::kInt, "int", "Return the larger of x and {k}.", "return max(x, {k})", false},
      {"add_all", "add_{w}_to_all", Arg::kList, "list", "Return a new list with {k} added to every element of xs.",
       "return [x + {k} for x in xs]", false},
      {"scale_all", "scale_by_{w}", Arg::kList, "list",
       "Return a new list with every element of xs multiplied by {k}.", "return [x * {k} for x in xs]", false},
      {"count", "count_{w}s", Arg::kList, "int", "Return how many times {k} appears in xs.", "return xs.count({k})",
       false},
      {"first", "first_{w}", Arg::kList, "list", "Return the first {k} elements of xs.", "return xs[:{k}]", false},
      {"last", "last_{w}", Arg::kList, "list", "Return the last {k} elements of xs.", "return xs[-{k}:]", false},
      {"drop", "drop_{w}", Arg::kList, "list", "Return xs without its first {k} elements.", "return xs[{k}:]", false},
      {"repeat", "repeat_{w}_times", Arg::kStr, "str", "Return the string s repeated {k} times.", "return s * {k}",
       false},
      {"keep_above", "keep_above_{w}", Arg::kList, "list", "Return the elements of xs that are greater than {k}.",
       "return [x for x in xs if x > {k}]", false},
      {"end_with", "end_with_{w}", Arg::kStr, "str", "Return s followed by the word {k}.", "return s + {k}", true},
      {"start_with", "start_with_{w}", Arg::kStr, "str", "Return the word {k} followed by s.", "return {k} + s", true},
      {"has_word", "has_{w}", Arg::kStr, "bool", "Return True if the word {k} appears in s.", "return {k} in s", true},
      {"word_times", "{w}_times", Arg::kCount, "str", "Return the word {k} repeated n times.", "return {k} * n", true},
      {"count_word", "count_{w}", Arg::kStr, "int", "Return how many times {k} appears in s.", "return s.count({k})",
       true},
  };
  return f;
}

std::string py_list(const std::vector<int>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}
std::string py_str(const std::string& s) { return "'" + s + "'"; }
std::string py_bool(bool b) { return b ? "True" : "False"; }

// Evaluates family `f` with integer parameter k / word w on one argument; returns (args, result).
std::pair<std::string, std::string> run_family(const Family& f, int k, const std::string& w, Rng& rng) {
  static const std::vector<std::string> kStrs = {"ab", "cat", "sun", "moon", "hi", "go", "tree", "red", "x", "oak"};
  const std::string& id = f.id;
  if (f.arg == Arg::kInt) {
    int x = static_cast<int>(rng.range(0, 20));
    std::string r;
    if (id == "add") r = std::to_string(x + k);
    else if (id == "subtract") r = std::to_string(x - k);
    else if (id == "multiply") r = std::to_string(x * k);
    else if (id == "greater") r = py_bool(x > k);
    else if (id == "remainder") r = std::to_string(x % k);
    else if (id == "smaller") r = std::to_string(std::min(x, k));
    else if (id == "larger") r = std::to_string(std::max(x, k));
    return {std::to_string(x), r};
  }
  if (f.arg == Arg::kList) {
    int n = static_cast<int>(rng.range(2, 7));
    std::vector<int> xs;
    for (int i = 0; i < n; ++i) xs.push_back(static_cast<int>(id == "count" && rng.bernoulli(0.4) ? k : rng.range(0, 12)));
    std::string r;
    auto sub = [&](size_t b, size_t e) { return std::vector<int>(xs.begin() + b, xs.begin() + e); };
    size_t uk = static_cast<size_t>(k);
    if (id == "add_all") {
      std::vector<int> o;
      for (int x : xs) o.push_back(x + k);
      r = py_list(o);
    } else if (id == "scale_all") {
      std::vector<int> o;
      for (int x : xs) o.push_back(x * k);
      r = py_list(o);
    } else if (id == "count") {
      r = std::to_string(std::count(xs.begin(), xs.end(), k));
    } else if (id == "first") {
      r = py_list(sub(0, std::min(uk, xs.size())));
    } else if (id == "last") {
      r = py_list(sub(xs.size() - std::min(uk, xs.size()), xs.size()));
    } else if (id == "drop") {
      r = py_list(sub(std::min(uk, xs.size()), xs.size()));
    } else if (id == "keep_above") {
      std::vector<int> o;
      for (int x : xs)
        if (x > k) o.push_back(x);
      r = py_list(o);
    }
    return {py_list(xs), r};
  }
  if (f.arg == Arg::kCount) {  // word_times
    int n = static_cast<int>(rng.range(0, 4));
    std::string r;
    for (int i = 0; i < n; ++i) r += w;
    return {std::to_string(n), py_str(r)};
  }
  // Arg::kStr
  std::string s = rng.pick(kStrs);
  if (id == "has_word" || id == "count_word") {
    int reps = static_cast<int>(rng.range(0, 2));
    s = rng.pick(kStrs);
    for (int i = 0; i < reps; ++i) s += " " + w;
    if (rng.bernoulli(0.5)) s += " " + rng.pick(kStrs);
  }
  std::string r;
  if (id == "repeat") {
    for (int i = 0; i < k; ++i) r += s;
    r = py_str(r);
  } else if (id == "end_with") {
    r = py_str(s + w);
  } else if (id == "start_with") {
    r = py_str(w + s);
  } else if (id == "has_word") {
    r = py_bool(s.find(w) != std::string::npos);
  } else if (id == "count_word") {
    size_t cnt = 0;
    for (size_t pos = s.find(w); pos != std::string::npos; pos = s.find(w, pos + w.size())) ++cnt;
    r = std::to_string(cnt);
  }
  return {py_str(s), r};
}

}  // namespace

std::vector<CodeTask> code_tasks(uint64_t seed, std::vector<bool>* heldout) {
  std::vector<CodeTask> out;
  if (heldout) heldout->clear();
  for (const auto& f : families()) {
    std::vector<std::pair<int, std::string>> params;  // (k, word)
    if (f.word_param) {
      for (const auto& w : craft_words()) params.push_back({0, w});
    } else {
      for (int k = 2; k <= 12; ++k) params.push_back({k, number_word(k)});
    }
    for (const auto& [k, w] : params) {
      CodeTask t;
      t.family = f.id;
      t.name = fill(f.name, {{"w", w}});
      std::string kcode = f.word_param ? py_str(w) : std::to_string(k);
      t.param = f.word_param ? w : std::to_string(k);
      std::string sig;
      switch (f.arg) {
        case Arg::kInt: sig = "x: int"; break;
        case Arg::kList: sig = "xs: list"; break;
        case Arg::kStr: sig = "s: str"; break;
        case Arg::kCount: sig = "n: int"; break;
      }
      std::string doc = fill(f.doc, {{"k", kcode}});
      t.description = doc;
      Rng rng(combo_hash(seed, "code:" + t.name));
      std::vector<std::string> seen;
      for (int i = 0; i < 40 && t.examples.size() < 5; ++i) {
        auto ex = run_family(f, k, w, rng);
        if (std::find(seen.begin(), seen.end(), ex.first) != seen.end()) continue;
        seen.push_back(ex.first);
        t.examples.push_back(ex);
      }
      t.prompt = "def " + t.name + "(" + sig + ") -> " + f.ret + ":\n    \"\"\" " + doc + "\n    >>> " + t.name + "(" +
                 t.examples[0].first + ")\n    " + t.examples[0].second + "\n    \"\"\"\n";
      t.solution = "    " + fill(f.body, {{"k", kcode}}) + "\n";
      t.test = "\n\ndef check(candidate):\n";
      for (size_t i = 1; i < t.examples.size(); ++i)
        t.test += "    assert candidate(" + t.examples[i].first + ") == " + t.examples[i].second + "\n";
      t.test += "\n";
      out.push_back(std::move(t));
      if (heldout) heldout->push_back(combo_hash(seed, "heldout:" + out.back().name) % 10 < 4);
    }
  }
  return out;
}

}  // namespace atax::world::detail
