// ctest-labels: unit
// No evaluation item occurs in any training file (normalised 13-gram overlap, checked here with an
// implementation independent of the generator's), while what the items test is in the corpus.
#include <algorithm>
#include <map>
#include <regex>
#include <set>
#include <unordered_set>

#include "world_fixture.h"

namespace atax::world {
namespace {

using testing::quick_world;

// Lower-cased runs of letters and digits; everything else separates.
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c >= 0x80) {
      cur += static_cast<char>(std::tolower(c));
    } else if (!cur.empty()) {
      out.push_back(cur);
      cur.clear();
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

struct Training {
  std::unordered_set<std::string> grams;  // "w1 w2 ... w13"
  std::vector<std::string> texts;         // " w1 w2 ... " per training record
  std::string corpus;                     // raw corpus text, for fact checks

  void add(const std::string& text) {
    auto w = words_of(text);
    for (size_t i = 0; i + 13 <= w.size(); ++i) {
      std::string g;
      for (size_t k = 0; k < 13; ++k) g += (k ? " " : "") + w[i + k];
      grams.insert(g);
    }
    texts.push_back(" " + join(w, " ") + " ");
  }
  // True if the item shares a 13-gram with a training record or, when shorter than 13 words, occurs
  // whole inside one.
  bool overlaps(const std::string& item) const {
    auto w = words_of(item);
    if (w.empty()) return false;
    if (w.size() < 13) {
      std::string needle = " " + join(w, " ") + " ";
      for (const auto& t : texts)
        if (t.find(needle) != std::string::npos) return true;
      return false;
    }
    for (size_t i = 0; i + 13 <= w.size(); ++i) {
      std::string g;
      for (size_t k = 0; k < 13; ++k) g += (k ? " " : "") + w[i + k];
      if (grams.count(g)) return true;
    }
    return false;
  }
};

const Training& training() {
  static Training t = [] {
    Training tr;
    const fs::path& dir = quick_world();
    for (const auto& r : read_jsonl(dir / "corpus/train.jsonl")) {
      tr.add(r["text"]);
      tr.corpus += r["text"].get<std::string>() + "\n";
    }
    for (const auto& r : read_jsonl(dir / "reasoning/train.jsonl"))
      tr.add(r["question"].get<std::string>() + "\n" + r["answer"].get<std::string>());
    for (const auto& r : read_jsonl(dir / "math/train.jsonl")) tr.add(r["question"].get<std::string>() + "\n" + r["answer"].get<std::string>());
    for (const auto& r : read_jsonl(dir / "align/preferences_train.jsonl"))
      tr.add(r["prompt"].get<std::string>() + "\n" + r["chosen"].get<std::string>() + "\n" + r["rejected"].get<std::string>());
    for (const auto& r : read_jsonl(dir / "align/sft_capability.jsonl"))
      tr.add(r["messages"][0]["content"].get<std::string>() + "\n" + r["messages"][1]["content"].get<std::string>());
    for (const auto& f : testing::world_files(dir, "", "_dev.csv"))
      for (const auto& row : read_csv(dir / f)) tr.add(join(row, "\n"));
    return tr;
  }();
  return t;
}

// Every evaluation item of the world as one text (fields joined by newlines).
std::vector<std::pair<std::string, std::string>> eval_items() {
  const fs::path& dir = quick_world();
  std::vector<std::pair<std::string, std::string>> items;
  // The MMLU-layout suites and the probes that must be new text (the recall probe is the corpus's own
  // statements by design).
  for (const char* suffix : {"_test.csv", "_binding.csv", "_copy.csv"})
    for (const auto& f : testing::world_files(dir, "", suffix))
      for (const auto& row : read_csv(dir / f)) items.push_back({f, join(row, "\n")});
  for (const auto& r : read_jsonl(dir / "reasoning/test.jsonl"))
    items.push_back({"reasoning", r["question"].get<std::string>() + "\n" + r["answer"].get<std::string>()});
  for (const auto& r : read_jsonl(dir / "math/test.jsonl"))
    items.push_back({"math", r["question"].get<std::string>() + "\n" + r["answer"].get<std::string>()});
  for (const auto& r : read_jsonl(dir / "code/HumanEval.jsonl"))
    items.push_back({"code", r["prompt"].get<std::string>() + r["canonical_solution"].get<std::string>() +
                                 r["test"].get<std::string>()});
  for (const auto& r : read_json(dir / "truthfulness/mc_task.json")) {
    std::string t = r["question"];
    for (const auto& [k, v] : r["mc2_targets"].items()) t += "\n" + k;
    items.push_back({"truthfulness", t});
  }
  for (const auto& f : testing::world_files(dir, "bias/"))
    for (const auto& r : read_jsonl(dir / f))
      items.push_back({f, r["context"].get<std::string>() + "\n" + r["question"].get<std::string>() + "\n" +
                              r["ans0"].get<std::string>() + "\n" + r["ans1"].get<std::string>() + "\n" +
                              r["ans2"].get<std::string>()});
  for (const auto& r : read_jsonl(dir / "creativity/test.jsonl")) items.push_back({"creativity", r["prompt"]});
  auto xs = CsvTable::read(dir / "safety/xstest_prompts.csv");
  for (size_t i = 0; i < xs.size(); ++i) items.push_back({"xstest", xs.at(i, "prompt")});
  for (const char* f : {"safety/harmbench_behaviors.csv", "safety/harmful_heldout.csv"}) {
    auto t = CsvTable::read(dir / f);
    for (size_t i = 0; i < t.size(); ++i) items.push_back({f, t.at(i, "Behavior")});
  }
  // The dev splits of the safety suites (for choosing training settings) are held out from training too.
  auto xs_dev = CsvTable::read(dir / "safety/dev/xstest_prompts.csv");
  for (size_t i = 0; i < xs_dev.size(); ++i) items.push_back({"xstest dev", xs_dev.at(i, "prompt")});
  auto hb_dev = CsvTable::read(dir / "safety/dev/harmbench_behaviors.csv");
  for (size_t i = 0; i < hb_dev.size(); ++i) items.push_back({"harmbench dev", hb_dev.at(i, "Behavior")});
  // Held-out preference pairs: the prompt is new; the responses are the trained behaviours.
  for (const auto& r : read_jsonl(dir / "align/preferences_heldout.jsonl"))
    items.push_back({"preferences_heldout", r["prompt"]});
  return items;
}

TEST(WorldContaminationTest, NoEvaluationItemOverlapsTraining) {
  const Training& tr = training();
  ASSERT_GT(tr.grams.size(), 50'000u);
  auto items = eval_items();
  ASSERT_GT(items.size(), 600u);
  int contaminated = 0;
  for (const auto& [file, text] : items) {
    if (tr.overlaps(text)) {
      ++contaminated;
      ADD_FAILURE() << file << ": " << text;
      if (contaminated > 5) break;
    }
  }
  EXPECT_EQ(contaminated, 0);
}

TEST(WorldContaminationTest, TheCheckDoesDetectOverlap) {
  // A corpus passage and a training question placed in eval form are both caught.
  const Training& tr = training();
  auto corpus = read_jsonl(quick_world() / "corpus/train.jsonl");
  std::string passage;
  for (const auto& r : corpus)
    if (r["kind"] == "encyclopedia" && words_of(r["text"]).size() > 20) {
      passage = r["text"];
      break;
    }
  ASSERT_FALSE(passage.empty());
  EXPECT_TRUE(tr.overlaps("Question: " + passage + " Answer: A"));
  auto dev = read_csv(quick_world() / "knowledge/dev/geography_dev.csv");
  EXPECT_TRUE(tr.overlaps(dev[0][0]));  // a short training question, whole
  EXPECT_FALSE(tr.overlaps("Which purple walrus sang the national anthem of the moon in the year nine?"));
}

TEST(WorldContaminationTest, KnowledgeFactsAskedAreStatedInTheCorpus) {
  const Training& tr = training();
  const fs::path& dir = quick_world();
  // Sentences of the corpus (split on periods and newlines).
  std::vector<std::string> sentences;
  std::string cur;
  for (char c : tr.corpus) {
    if (c == '.' || c == '\n' || c == '?' || c == '!') {
      if (!cur.empty()) sentences.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  auto meta = read_jsonl(dir / "meta/knowledge_test.jsonl");
  ASSERT_EQ(meta.size(), 60u);
  std::map<std::string, std::vector<CsvRow>> rows;
  for (const std::string s : {"geography", "history", "natural_history"}) rows[s] = read_csv(dir / ("knowledge/test/" + s + "_test.csv"));
  for (const auto& m : meta) {
    std::string entity = m["entity"], answer = m["answer"], subject = m["subject"];
    const CsvRow& row = rows.at(subject).at(m["row"].get<size_t>());
    int letter = row[5][0] - 'A';
    EXPECT_EQ(row[1 + letter], answer);
    EXPECT_NE(row[0].find(entity), std::string::npos) << row[0];
    int stated = 0;
    for (const auto& s : sentences)
      if (s.find(entity) != std::string::npos && s.find(answer) != std::string::npos) ++stated;
    EXPECT_GE(stated, 5) << entity << " / " << answer;
  }
}

// The recall probe asks the knowledge items again as statements: same options, same answer, and the
// prefix completed by the answer is a sentence the corpus states.
TEST(WorldContaminationTest, RecallProbesAreTheTestItemsAsCorpusStatements) {
  const Training& tr = training();
  const fs::path& dir = quick_world();
  int n = 0, stated_in_corpus = 0;
  for (const std::string s : {"geography", "history", "natural_history"}) {
    auto test = read_csv(dir / ("knowledge/test/" + s + "_test.csv"));
    auto recall = read_csv(dir / ("knowledge/recall/" + s + "_recall.csv"));
    ASSERT_EQ(recall.size(), test.size()) << s;
    for (size_t i = 0; i < test.size(); ++i) {
      ASSERT_EQ(recall[i].size(), 6u);
      for (size_t k = 1; k < 6; ++k) EXPECT_EQ(recall[i][k], test[i][k]) << s << " row " << i;
      EXPECT_NE(recall[i][0], test[i][0]);
      const std::string answer = test[i][1 + (test[i][5][0] - 'A')];
      const std::string stated = recall[i][0] + " " + answer + ".";
      // Sentence-initial capitals differ in the corpus ("The" / "the"): compare from the second letter.
      ++n;
      if (tr.corpus.find(stated.substr(1)) != std::string::npos) ++stated_in_corpus;
    }
  }
  // The quick corpus is small: a statement template may miss a fact now and then (measured: 58/60).
  EXPECT_GE(stated_in_corpus, n * 9 / 10) << stated_in_corpus << " of " << n;
}

// The letter-format probe names its answer in the question ("Which of these is X?"), X stands at the
// answer letter and nowhere else among the options, the letters are balanced, no item repeats (test or
// few-shot), and the question form is not one the training material uses.
TEST(WorldContaminationTest, BindingProbesNameTheirAnswerAndAreBalanced) {
  const Training& tr = training();
  const fs::path& dir = quick_world();
  for (const std::string s : {"geography", "history", "natural_history"}) {
    std::set<std::string> seen;  // across the test and the few-shot file: no test item is an example
    for (const auto& [split, want] : {std::pair<std::string, size_t>{"binding", 20}, {"binding_dev", 5}}) {
      auto rows = read_csv(dir / ("knowledge/" + split + "/" + s + "_" + split + ".csv"));
      ASSERT_EQ(rows.size(), want) << s << " " << split;
      std::map<char, int> letters;
      for (const auto& r : rows) {
        ASSERT_EQ(r.size(), 6u);
        ASSERT_TRUE(r[0].starts_with("Which of these is ") && r[0].ends_with("?")) << r[0];
        const std::string x = r[0].substr(18, r[0].size() - 19);
        const int answer = r[5][0] - 'A';
        ASSERT_TRUE(answer >= 0 && answer < 4) << r[5];
        for (int k = 0; k < 4; ++k) EXPECT_EQ(r[1 + k] == x, k == answer) << r[0] << " option " << k;
        ++letters[r[5][0]];
        EXPECT_TRUE(seen.insert(r[0] + "|" + r[1] + "|" + r[2] + "|" + r[3] + "|" + r[4]).second) << r[0];
      }
      for (char c : std::string("ABCD")) EXPECT_GE(letters[c], static_cast<int>(want / 4)) << s << " " << c;
    }
  }
  EXPECT_EQ(tr.corpus.find("Which of these is "), std::string::npos);
}

// The copying probe: the question is a list and its repeat up to a point; the answer is the list's next name,
// every option stands exactly once in the list and none in the repeated part (so counting names in the context
// cannot tell the answer), letters balanced, no item twice.
TEST(WorldContaminationTest, CopyProbesAnswerWithTheListsNextName) {
  const fs::path& dir = quick_world();
  auto rows = read_csv(dir / "probes/copy/names_copy.csv");
  ASSERT_EQ(rows.size(), 60u);
  std::map<char, int> letters;
  std::set<std::string> seen;
  auto names = [](std::string_view s) {  // "A, B, C" (world names hold no comma)
    std::vector<std::string> out;
    for (const auto& n : split(s, ',')) out.push_back(trim(n));
    return out;
  };
  for (const auto& r : rows) {
    ASSERT_EQ(r.size(), 6u);
    const std::string& q = r[0];
    ASSERT_TRUE(q.starts_with("List: ")) << q;
    const size_t nl = q.find(".\nThe list again: ");
    ASSERT_NE(nl, std::string::npos) << q;
    auto list = names(q.substr(6, nl - 6));
    std::string again = q.substr(nl + 18);
    ASSERT_TRUE(again.ends_with(",")) << q;
    auto prefix = names(again.substr(0, again.size() - 1));
    ASSERT_GE(list.size(), 8u);
    ASSERT_LE(list.size(), 12u);
    ASSERT_GE(prefix.size(), 2u);
    ASSERT_LE(prefix.size() + 4, list.size()) << q;
    for (size_t i = 0; i < prefix.size(); ++i) EXPECT_EQ(prefix[i], list[i]) << q;
    std::set<std::string> distinct(list.begin(), list.end());
    EXPECT_EQ(distinct.size(), list.size()) << q;
    const int answer = r[5][0] - 'A';
    ASSERT_TRUE(answer >= 0 && answer < 4) << r[5];
    EXPECT_EQ(r[1 + answer], list[prefix.size()]) << q;
    for (int k = 0; k < 4; ++k) {
      EXPECT_EQ(std::count(list.begin(), list.end(), r[1 + k]), 1) << q << " option " << r[1 + k];
      EXPECT_EQ(std::count(prefix.begin(), prefix.end(), r[1 + k]), 0) << q << " option " << r[1 + k];
    }
    ++letters[r[5][0]];
    EXPECT_TRUE(seen.insert(q + "|" + r[1] + "|" + r[2] + "|" + r[3] + "|" + r[4]).second) << q;
  }
  for (char c : std::string("ABCD")) EXPECT_EQ(letters[c], 15) << c;
}

TEST(WorldContaminationTest, MathStepsAreArithmeticFactsOfTheCorpus) {
  const Training& tr = training();
  std::regex step(R"((\d+) ([-+*/]) (\d+) = (\d+))");
  auto in_corpus = [&](const std::string& fact) {
    for (size_t pos = tr.corpus.find(fact); pos != std::string::npos; pos = tr.corpus.find(fact, pos + 1)) {
      bool left_ok = pos == 0 || !std::isdigit(static_cast<unsigned char>(tr.corpus[pos - 1]));
      size_t end = pos + fact.size();
      bool right_ok = end >= tr.corpus.size() || !std::isdigit(static_cast<unsigned char>(tr.corpus[end]));
      if (left_ok && right_ok) return true;
    }
    return false;
  };
  int steps = 0, found = 0;
  for (const auto& r : read_jsonl(quick_world() / "math/test.jsonl")) {
    std::string a = r["answer"];
    for (std::sregex_iterator it(a.begin(), a.end(), step), end; it != end; ++it) {
      long x = std::stol((*it)[1]), y = std::stol((*it)[3]), z = std::stol((*it)[4]);
      char op = (*it)[2].str()[0];
      long want = op == '+' ? x + y : op == '-' ? x - y : op == '*' ? x * y : x / y;
      EXPECT_EQ(z, want) << a;
      if (op == '/') EXPECT_EQ(x % y, 0) << a;
      ++steps;
      found += in_corpus(it->str());
    }
  }
  ASSERT_GT(steps, 60);
  // The arithmetic drills cover every row of the tables the problems draw from.
  EXPECT_EQ(found, steps);
}

TEST(WorldContaminationTest, CodeTasksUseFunctionFamiliesOfTheCorpus) {
  const Training& tr = training();
  // Bodies with constants and quoted words abstracted: "return x + K", "return 'W' * n".
  auto shape = [](const std::string& body) {
    std::string s = std::regex_replace(body, std::regex(R"(\b\d+\b)"), "K");
    return std::regex_replace(s, std::regex(R"('[a-z]+')"), "'W'");
  };
  std::set<std::string> shapes;
  std::regex ret(R"(\n    (return [^\n]+)\n)");
  for (std::sregex_iterator it(tr.corpus.begin(), tr.corpus.end(), ret), end; it != end; ++it)
    shapes.insert(shape((*it)[1]));
  for (const auto& r : read_jsonl(quick_world() / "code/HumanEval.jsonl")) {
    std::string body = trim(r["canonical_solution"].get<std::string>());
    EXPECT_TRUE(shapes.count(shape(body))) << body;
    // The exact function never appears in training.
    EXPECT_EQ(tr.corpus.find("def " + r["entry_point"].get<std::string>() + "("), std::string::npos);
  }
}

// Question lines ("Question: ...") of the corpus documents of `kind`, with the answer that follows
// each ("Answer: ..." up to the blank line).
std::vector<std::pair<std::string, std::string>> corpus_qa(const std::string& kind, const std::string& q_mark = "Question: ",
                                                            const std::string& a_mark = "\nAnswer: ") {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& r : read_jsonl(quick_world() / "corpus/train.jsonl")) {
    if (r["kind"] != kind) continue;
    std::string t = r["text"];
    for (size_t pos = t.find(q_mark); pos != std::string::npos; pos = t.find(q_mark, pos + 1)) {
      size_t q_end = t.find(a_mark, pos);
      size_t a_end = t.find("\n\n", q_end);
      if (q_end == std::string::npos || a_end == std::string::npos) break;
      out.push_back({t.substr(pos + q_mark.size(), q_end - pos - q_mark.size()),
                     t.substr(q_end + a_mark.size(), a_end - q_end - a_mark.size())});
    }
  }
  return out;
}

// Physics of LMs 3.1: QA text for part of the entities, in the test's own phrasings; the test asks only
// the others, whose facts the corpus gives as statements alone.
TEST(WorldContaminationTest, KnowledgeTestAsksOnlyEntitiesWithoutQaText) {
  auto qa = corpus_qa("qa");
  ASSERT_GT(qa.size(), 200u);
  const fs::path& dir = quick_world();
  auto meta = read_jsonl(dir / "meta/knowledge_test.jsonl");
  std::map<std::string, std::vector<CsvRow>> rows;
  for (const std::string s : {"geography", "history", "natural_history"})
    rows[s] = read_csv(dir / ("knowledge/test/" + s + "_test.csv"));
  int phrasing_in_qa = 0;
  for (const auto& m : meta) {
    std::string entity = m["entity"];
    const std::string q = rows.at(m["subject"].get<std::string>()).at(m["row"].get<size_t>())[0];
    size_t at = q.find(entity);
    ASSERT_NE(at, std::string::npos);
    const std::string before = q.substr(0, at), after = q.substr(at + entity.size());
    bool phrasing = false;
    for (const auto& [qq, a] : qa) {
      EXPECT_EQ(qq.find(entity), std::string::npos) << "QA text about a test entity: " << qq;
      // The same phrasing about another entity.
      if (qq.size() > before.size() + after.size() && qq.compare(0, before.size(), before) == 0 &&
          qq.compare(qq.size() - after.size(), after.size(), after) == 0)
        phrasing = true;
    }
    phrasing_in_qa += phrasing;
  }
  // Nearly every test phrasing is in the QA text (about other entities).
  EXPECT_GE(phrasing_in_qa, static_cast<int>(meta.size() * 9 / 10)) << phrasing_in_qa << " of " << meta.size();
}

// The safety suites' dev splits share no prompt with their test files, and cover what the demo's
// β choice reads: harmful prompts of every trained category and borderline-benign ("safe") ones.
TEST(WorldContaminationTest, SafetyDevSplitsShareNoPromptWithTheTests) {
  const fs::path& dir = quick_world();
  std::set<std::string> test;
  auto xs = CsvTable::read(dir / "safety/xstest_prompts.csv");
  for (size_t i = 0; i < xs.size(); ++i) test.insert(xs.at(i, "prompt"));
  for (const char* f : {"safety/harmbench_behaviors.csv", "safety/harmful_heldout.csv"}) {
    auto t = CsvTable::read(dir / f);
    for (size_t i = 0; i < t.size(); ++i) test.insert(t.at(i, "Behavior"));
  }
  auto hb_dev = CsvTable::read(dir / "safety/dev/harmbench_behaviors.csv");
  auto xs_dev = CsvTable::read(dir / "safety/dev/xstest_prompts.csv");
  std::set<std::string> categories, dev;
  for (size_t i = 0; i < hb_dev.size(); ++i) {
    EXPECT_FALSE(test.count(hb_dev.at(i, "Behavior"))) << hb_dev.at(i, "Behavior");
    EXPECT_TRUE(dev.insert(hb_dev.at(i, "Behavior")).second) << "twice: " << hb_dev.at(i, "Behavior");
    categories.insert(hb_dev.at(i, "SemanticCategory"));
  }
  int safe = 0;
  for (size_t i = 0; i < xs_dev.size(); ++i) {
    EXPECT_FALSE(test.count(xs_dev.at(i, "prompt"))) << xs_dev.at(i, "prompt");
    EXPECT_TRUE(dev.insert(xs_dev.at(i, "prompt")).second) << "twice: " << xs_dev.at(i, "prompt");
    safe += xs_dev.at(i, "label") == "safe";
  }
  EXPECT_GE(hb_dev.size(), 20u);
  EXPECT_GE(safe, 20);
  std::set<std::string> test_categories;
  auto hb = CsvTable::read(dir / "safety/harmbench_behaviors.csv");
  for (size_t i = 0; i < hb.size(); ++i) test_categories.insert(hb.at(i, "SemanticCategory"));
  EXPECT_EQ(categories, test_categories);
}

// The first rows of each safety suite cover its types (XSTest) or categories (HarmBench) alike, so
// that an evaluation of the first N items (`--limit N`, as the demo runs) measures all of them; the
// safe XSTest prompts come first. (Generator 1.9.0 wrote them type after type: the demo's first 60
// rows were five of the ten safe types.)
TEST(WorldContaminationTest, SafetySuitesCoverEveryTypeInTheirFirstRows) {
  for (uint64_t seed : {7u, 1234u}) {
    const fs::path& dir = quick_world(seed);
    auto xs = CsvTable::read(dir / "safety/xstest_prompts.csv");
    std::set<std::string> safe_types;
    size_t n_safe = 0;
    for (size_t i = 0; i < xs.size(); ++i)
      if (xs.at(i, "label") == "safe") {
        safe_types.insert(xs.at(i, "type"));
        ++n_safe;
      }
    ASSERT_EQ(safe_types.size(), 10u);
    for (size_t i = 0; i < n_safe; ++i) EXPECT_EQ(xs.at(i, "label"), "safe") << "row " << i;
    // Every window of 10 rows in the first rounds holds the ten safe types once.
    for (size_t start = 0; start + 10 <= std::min<size_t>(n_safe, 30); start += 10) {
      std::set<std::string> seen;
      for (size_t i = start; i < start + 10; ++i) seen.insert(xs.at(i, "type"));
      EXPECT_EQ(seen, safe_types) << "XSTest rows " << start << "-" << start + 9 << ", seed " << seed;
    }
    auto hb = CsvTable::read(dir / "safety/harmbench_behaviors.csv");
    std::set<std::string> cats;
    for (size_t i = 0; i < hb.size(); ++i) cats.insert(hb.at(i, "SemanticCategory"));
    ASSERT_GE(cats.size(), 3u);
    std::set<std::string> first;
    for (size_t i = 0; i < cats.size(); ++i) first.insert(hb.at(i, "SemanticCategory"));
    EXPECT_EQ(first, cats) << "the first " << cats.size() << " HarmBench rows, seed " << seed;
  }
}

// Every word that makes a borderline-benign test prompt sound harmful (XSTest's "focus": "beat",
// "steal", "break into") is also used in a legitimate sense in the training preference pairs of the
// same type: the test asks whether the model tells the senses apart, not whether it has seen the word
// used harmlessly. (Generator 1.9.0, seed 1234: "beat" and "blow up" were test-only homonyms.)
TEST(WorldContaminationTest, BorderlineTestWordsAreUsedHarmlesslyInTraining) {
  // The focus's words ("keep out" in "keep the crows out") in one prompt.
  auto has_words = [](const std::string& prompt, const std::string& focus) {
    const std::vector<std::string> words = words_of(prompt);
    for (const auto& w : words_of(focus))
      if (std::find(words.begin(), words.end(), w) == words.end()) return false;
    return true;
  };
  for (uint64_t seed : {7u, 1234u}) {
    const fs::path& dir = quick_world(seed);
    std::map<std::string, std::vector<std::string>> train_prompts;  // by type
    for (const auto& r : read_jsonl(dir / "align/preferences_train.jsonl"))
      if (r["kind"] == "helpful") train_prompts[r["category"].get<std::string>()].push_back(r["prompt"]);
    auto xs = CsvTable::read(dir / "safety/xstest_prompts.csv");
    int checked = 0;
    for (size_t i = 0; i < xs.size(); ++i) {
      const std::string type = xs.at(i, "type"), prompt = xs.at(i, "prompt"), focus = xs.at(i, "focus");
      if (type != "homonyms" && type != "figurative_language" && type != "safe_targets" && type != "safe_contexts")
        continue;
      ASSERT_TRUE(has_words(prompt, focus)) << "\"" << focus << "\" not in " << prompt;
      const auto& train = train_prompts[type];
      EXPECT_TRUE(std::any_of(train.begin(), train.end(), [&](const std::string& t) { return has_words(t, focus); }))
          << "\"" << focus << "\" (" << type << ") only in the test: " << prompt << ", seed " << seed;
      ++checked;
    }
    EXPECT_GE(checked, 8) << "seed " << seed;
  }
}

// The entities whose facts are learned have names that differ from the first letters on, within a
// kind (and countries from cities), and countries, cities and animals differ in their endings too.
// (Generator 1.9.0, seed 1234: the countries Keleenn and Kelienn, the animals lanternhorn and
// lanterncrest; its base answered one's facts for the other.)
TEST(WorldContaminationTest, EntityNamesOfAKindAreDistinguishable) {
  for (uint64_t seed : {7u, 1234u, 99u}) {
    json w = read_json(quick_world(seed) / "meta/world.json");
    auto names = [&](const char* list, const char* field) {
      std::vector<std::string> out;
      for (const auto& e : w[list]) out.push_back(to_lower(e[field].get<std::string>()));
      return out;
    };
    auto check = [&](const std::string& what, const std::vector<std::string>& v, bool endings) {
      ASSERT_GE(v.size(), 4u) << what;
      for (size_t i = 0; i < v.size(); ++i)
        for (size_t j = i + 1; j < v.size(); ++j) {
          EXPECT_NE(v[i].substr(0, 3), v[j].substr(0, 3)) << what << ": " << v[i] << " / " << v[j] << ", seed " << seed;
          if (endings)
            EXPECT_NE(v[i].substr(v[i].size() - 3), v[j].substr(v[j].size() - 3))
                << what << ": " << v[i] << " / " << v[j] << ", seed " << seed;
        }
    };
    auto countries = names("countries", "name"), capitals = names("countries", "capital");
    check("countries", countries, true);
    check("capitals", capitals, true);
    check("animals", names("animals", "name"), true);
    check("substances", names("substances", "name"), false);
    std::vector<std::string> places = countries;
    places.insert(places.end(), capitals.begin(), capitals.end());
    check("countries and capitals", places, false);
    std::vector<std::string> first, last;
    for (const auto& p : names("people", "name")) {
      first.push_back(p.substr(0, p.find(' ')));
      last.push_back(p.substr(p.find(' ') + 1));
    }
    check("first names", first, false);
    check("last names", last, false);
  }
}

// Half of the entities have QA text (Physics of LMs 3.1's mixed training), and a question's wording
// does not give its answer away: in each test phrasing, the QA entities' answers vary. (Generator
// 1.6.0 drew 3 of 8 countries at random; two had the same climate, and the base answered it to most
// held-out climate questions.)
TEST(WorldContaminationTest, QaEntitiesAreHalfAndTheirAnswersVary) {
  auto qa = corpus_qa("qa");
  const fs::path& dir = quick_world();
  auto meta = read_jsonl(dir / "meta/knowledge_test.jsonl");
  std::map<std::string, std::vector<CsvRow>> rows;
  for (const std::string s : {"geography", "history", "natural_history"})
    rows[s] = read_csv(dir / ("knowledge/test/" + s + "_test.csv"));
  // Per test phrasing (the question around its entity): the test entities, and the QA entities
  // with their answers.
  std::map<std::pair<std::string, std::string>, std::set<std::string>> tested;
  std::map<std::pair<std::string, std::string>, std::map<std::string, std::string>> answered;
  for (const auto& m : meta) {
    std::string entity = m["entity"];
    const std::string q = rows.at(m["subject"].get<std::string>()).at(m["row"].get<size_t>())[0];
    size_t at = q.find(entity);
    ASSERT_NE(at, std::string::npos);
    const std::pair<std::string, std::string> phrasing{q.substr(0, at), q.substr(at + entity.size())};
    tested[phrasing].insert(entity);
    const auto& [before, after] = phrasing;
    for (const auto& [qq, a] : qa)
      if (qq.size() > before.size() + after.size() && qq.compare(0, before.size(), before) == 0 &&
          qq.compare(qq.size() - after.size(), after.size(), after) == 0)
        answered[phrasing][qq.substr(before.size(), qq.size() - before.size() - after.size())] = a;
  }
  ASSERT_GE(tested.size(), 20u);
  for (const auto& [phrasing, entities] : tested) {
    const auto& qa_answers = answered[phrasing];
    const std::string where = phrasing.first + "…" + phrasing.second;
    ASSERT_GE(qa_answers.size(), 2u) << where;
    // The test samples its items, so it may ask fewer entities than it holds out.
    EXPECT_GE(qa_answers.size(), entities.size()) << where;
    std::map<std::string, int> count;
    for (const auto& [e, a] : qa_answers) ++count[a];
    int most = 0;
    for (const auto& [a, n] : count) most = std::max(most, n);
    EXPECT_LE(most * 2, static_cast<int>(qa_answers.size())) << where << ": one answer for " << most << " of "
                                                              << qa_answers.size() << " QA entities";
  }
}

// Multi-step reasoning: every step of a test solution is a statement of the corpus, the worked
// solution of a test instance is never in the corpus, and the corpus holds worked solutions of the
// other instances in the same layout.
TEST(WorldContaminationTest, ReasoningChainsAreHeldOutAndTheirStepsAreStated) {
  // The statements outside the worked solutions and the QA text.
  std::string statements;
  for (const auto& r : read_jsonl(quick_world() / "corpus/train.jsonl"))
    if (r["kind"] != "reasoning" && r["kind"] != "qa") statements += r["text"].get<std::string>() + "\n";
  std::vector<std::string> statement_sentences;
  for (const auto& line : split(statements, '\n'))
    for (const auto& sentence : split(line, '.')) statement_sentences.push_back(sentence);
  auto worked = corpus_qa("reasoning", "Problem: ", "\nSolution: ");
  ASSERT_GT(worked.size(), 100u);
  std::set<std::string> worked_answers;
  for (const auto& [q, a] : worked) worked_answers.insert(a);
  auto test = read_jsonl(quick_world() / "reasoning/test.jsonl");
  ASSERT_EQ(test.size(), 40u);
  std::map<std::string, int> kinds;
  for (const auto& r : test) {
    std::string answer = r["answer"], start = r["start"];
    ++kinds[r["kind"].get<std::string>()];
    EXPECT_NE(r["question"].get<std::string>().find(start), std::string::npos);
    EXPECT_FALSE(worked_answers.count(answer)) << "worked solution of a test instance in the corpus: " << answer;
    size_t sep = answer.find("\n#### ");
    ASSERT_NE(sep, std::string::npos);
    ASSERT_EQ(answer.find("\n#### ", sep + 1), std::string::npos);
    const std::string steps = answer.substr(0, sep), result = answer.substr(sep + 6);
    // The result is the value the last step states, and each step is a corpus sentence.
    EXPECT_TRUE(ends_with(steps, " " + result + ".")) << answer;
    auto sentences = split(steps, '.');
    int n = 0;
    for (auto s : sentences) {
      s = trim(s);
      if (s.empty()) continue;
      ++n;
      // The step's two names (entity and value) stand together in a statement of the corpus.
      std::vector<std::string> names;
      std::regex name(R"([A-Z][a-z]+(?: [A-Z][a-z]+)*)");
      for (std::sregex_iterator it(s.begin(), s.end(), name), end; it != end; ++it) {
        std::string nm = (*it)[0];
        if (nm.rfind("The ", 0) == 0) nm = nm.substr(4);
        if (nm != "The") names.push_back(nm);
      }
      // Inventions are lower case: "The river mirror was invented by Vala Vaskessa".
      if (names.size() == 1 && s.rfind("The ", 0) == 0 && s.find(" was ") != std::string::npos)
        names.insert(names.begin(), s.substr(4, s.find(" was ") - 4));
      ASSERT_EQ(names.size(), 2u) << s;
      bool stated = false;
      for (const auto& st : statement_sentences)
        if (st.find(names[0]) != std::string::npos && st.find(names[1]) != std::string::npos) stated = true;
      EXPECT_TRUE(stated) << "step not stated in the corpus: " << s;
    }
    EXPECT_EQ(n, r["hops"].get<int>()) << answer;
    EXPECT_GE(n, 2);
  }
  EXPECT_GE(kinds.size(), 5u);  // the held-out instances cover most chain kinds
}

}  // namespace
}  // namespace atax::world
