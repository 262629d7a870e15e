// generate_world(): builds the universe, writes the training material, indexes its 13-grams, then
// draws every evaluation suite from held-out templates and combinations and drops any candidate
// that overlaps the training material; everything goes into a staging folder that replaces the
// output folder at the end, with a manifest of row counts and sha256s.
#include <algorithm>
#include <set>
#include <stdexcept>

#include "world/internal.h"

namespace atax::world {

using detail::ojson;

namespace {

struct ScaleSpec {
  int64_t corpus_chars, heldout_chars;
  int knowledge_per_subject, reasoning_per_subject, math_test, math_train, code_max, truthful_max;
  int bbq_per_category, creativity, harmbench, xstest_per_type, harmful_heldout;
  int pref_train, pref_heldout, sft;
  int reasoning_test;  // multi-step chains over the stored facts (at most the held-out instances)
};

ScaleSpec scale_spec(const std::string& scale) {
  if (scale == "quick") return {600'000, 40'000, 20, 30, 60, 40, 40, 60, 24, 50, 60, 4, 48, 800, 160, 500, 40};
  if (scale == "default")
    return {5'500'000, 250'000, 80, 120, 250, 200, 100, 120, 80, 150, 200, 12, 160, 4000, 500, 2000, 120};
  if (scale == "large")
    return {22'000'000, 1'000'000, 150, 250, 600, 400, 200, 120, 160, 300, 400, 24, 320, 12000, 1000, 6000, 200};
  throw Error("unknown world scale \"" + scale + "\"", "", "use --scale quick, default or large");
}

class Writer {
 public:
  explicit Writer(fs::path dir) : dir_(std::move(dir)) {}
  void write(const std::string& rel, const std::string& content, int64_t rows) {
    write_file_atomic(dir_ / rel, content);
    files_.push_back({rel, rows, static_cast<int64_t>(content.size()), sha256_hex(content)});
  }
  void jsonl(const std::string& rel, const std::vector<ojson>& records) {
    std::string s;
    for (const auto& r : records) s += r.dump() + "\n";
    write(rel, s, static_cast<int64_t>(records.size()));
  }
  void csv(const std::string& rel, const std::vector<CsvRow>& rows, bool header) {
    write(rel, to_csv(rows), static_cast<int64_t>(rows.size()) - (header ? 1 : 0));
  }
  std::vector<WorldFile>& files() { return files_; }

 private:
  fs::path dir_;
  std::vector<WorldFile> files_;
};

std::string join_fields(const std::vector<std::string>& f) { return join(f, "\n"); }

// Picks up to `target` indices of clean candidates (in order), first within per-group quotas
// (group g gets share_g * target), then filling any shortfall from the remaining clean ones.
std::vector<size_t> select_balanced(const std::vector<std::string>& groups, const std::vector<bool>& bad,
                                    const std::map<std::string, double>& shares, int target) {
  std::map<std::string, int> taken;
  std::vector<bool> used(groups.size(), false);
  std::vector<size_t> out;
  for (size_t i = 0; i < groups.size() && static_cast<int>(out.size()) < target; ++i) {
    if (bad[i]) continue;
    auto it = shares.find(groups[i]);
    int quota = it == shares.end() ? 0 : static_cast<int>(it->second * target + 0.5);
    if (taken[groups[i]] >= quota) continue;
    ++taken[groups[i]];
    used[i] = true;
    out.push_back(i);
  }
  for (size_t i = 0; i < groups.size() && static_cast<int>(out.size()) < target; ++i)
    if (!bad[i] && !used[i]) out.push_back(i);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

const std::vector<std::string>& world_scales() {
  static const std::vector<std::string> s = {"quick", "default", "large"};
  return s;
}

json WorldManifest::to_json() const {
  nlohmann::ordered_json j;
  j["name"] = "atax toy world";
  j["seed"] = seed;
  j["generator_version"] = generator_version;
  j["scale"] = scale;
  j["flip_share"] = flip_share;
  j["files"] = nlohmann::ordered_json::array();
  for (const auto& f : files)
    j["files"].push_back({{"path", f.path}, {"rows", f.rows}, {"bytes", f.bytes}, {"sha256", f.sha256}});
  j["stats"] = stats;
  return json(j);
}

WorldManifest WorldManifest::from_json(const json& j, const std::string& file) {
  WorldManifest m;
  try {
    m.seed = j.at("seed").get<uint64_t>();
    m.generator_version = j.at("generator_version").get<std::string>();
    m.scale = j.at("scale").get<std::string>();
    m.flip_share = j.value("flip_share", 0.0);
    for (const auto& f : j.at("files"))
      m.files.push_back({f.at("path").get<std::string>(), f.at("rows").get<int64_t>(), f.at("bytes").get<int64_t>(),
                         f.at("sha256").get<std::string>()});
    m.stats = j.value("stats", json::object());
  } catch (const json::exception& e) {
    throw Error(std::string("malformed world manifest: ") + e.what(), file,
                "regenerate the world with `atax world generate`");
  }
  return m;
}

const WorldFile& WorldManifest::file(const std::string& path) const {
  for (const auto& f : files)
    if (f.path == path) return f;
  throw Error("the world has no file " + path, "manifest.json", "regenerate the world with `atax world generate`");
}

WorldManifest read_manifest(const fs::path& world_dir) {
  fs::path p = world_dir / "manifest.json";
  if (!fs::exists(p))
    throw Error("no manifest.json: not a generated world", p.string(),
                "create one with `atax world generate --seed S --out DIR`");
  return WorldManifest::from_json(read_json(p), p.string());
}

std::vector<std::string> verify_world(const fs::path& world_dir) {
  WorldManifest m = read_manifest(world_dir);
  std::vector<std::string> bad;
  for (const auto& f : m.files) {
    fs::path p = world_dir / f.path;
    if (!fs::exists(p) || static_cast<int64_t>(fs::file_size(p)) != f.bytes || sha256_file(p) != f.sha256)
      bad.push_back(f.path);
  }
  return bad;
}

namespace {
WorldManifest write_world(const WorldOptions& opts, const detail::Universe& u, const detail::GenContext& ctx,
                          const Rng& root, const fs::path& staging);
}  // namespace

WorldManifest generate_world(const WorldOptions& opts, const fs::path& out_dir) {
  using namespace detail;
  double t0 = now_seconds();
  (void)scale_spec(opts.scale);  // fails early on an unknown scale
  if (!(opts.flip_share >= 0.0 && opts.flip_share <= 1.0))
    throw Error("--flip-share must be in [0, 1], got " + std::to_string(opts.flip_share), "",
                "pass the share of preference pairs to swap, e.g. 0.1");
  if (out_dir.empty()) throw Error("no output folder given", "", "pass --out DIR");

  const uint64_t seed = opts.seed;
  Rng root(seed);
  Universe u = build_universe(root.fork("universe"));
  GenContext ctx(u, seed);

  fs::path staging = staging_dir_for(out_dir);
  fs::create_directories(staging);
  try {
    WorldManifest m = write_world(opts, u, ctx, root, staging);
    commit_dir(staging, out_dir);
    m.seconds = now_seconds() - t0;
    return m;
  } catch (...) {
    std::error_code ec;
    fs::remove_all(staging, ec);  // nothing half-made is left behind
    throw;
  }
}

namespace {

using namespace detail;

const std::vector<std::string> kHarmHeader = {"Behavior",    "FunctionalCategory", "SemanticCategory",
                                              "Tags",        "ContextString",      "BehaviorID"};

// A preference kind drawn by the shares of preference_mix().
std::string draw_kind(Rng& rng) {
  double r = rng.uniform01(), acc = 0;
  for (const auto& [k, share] : preference_mix()) {
    acc += share;
    if (r < acc) return k;
  }
  return preference_mix().back().first;
}

// The text of a preference record that the overlap check and the duplicate filter see.
std::string pref_text(const ojson& r) {
  return r["prompt"].get<std::string>() + "\n" + r["chosen"].get<std::string>() + "\n" +
         r["rejected"].get<std::string>();
}

// The state write_world's steps hand on: the inputs, the files written so far, the index of the
// training material's 13-grams, and the statistics that go into the manifest. Training-side steps
// add to the index; once it is finalized, evaluation-side steps drop candidates that overlap it.
struct WorldBuild {
  const WorldOptions& opts;
  const detail::Universe& u;
  const detail::GenContext& ctx;
  const Rng& root;
  const fs::path& staging;
  const uint64_t seed = opts.seed;
  const ScaleSpec spec = scale_spec(opts.scale);
  Writer w{staging};
  json stats;
  NgramIndex index;
  json rejected = json::object();  // candidates dropped because they overlapped training text
  json suites = json::object();
  std::set<std::string> safety_test_prompts;  // the safety suites' prompts, kept out of their dev splits

  std::vector<Doc> make_corpus(Rng rng, int64_t chars, json& kinds);
  void write_corpus();
  void write_math_train();
  // The universe's facts of one knowledge subject, in the universe's order.
  std::vector<const Fact*> facts_of(const std::string& subject) const {
    std::vector<const Fact*> facts;
    for (const auto& f : u.facts)
      if (f.subject == subject) facts.push_back(&f);
    return facts;
  }
  void write_dev_files();
  void write_reasoning_train();
  void write_preferences_train();
  void write_sft();
  void write_knowledge_test();
  void write_knowledge_binding();
  void write_copy_probe();
  void write_reasoning_chains();
  void write_reasoning_incontext();
  void write_math_test();
  void write_code_test();
  void write_truthfulness();
  void write_bbq();
  void write_creativity();
  std::vector<CsvRow> xstest_rows(const std::string& stream, int per_type, const std::string& suite,
                                  const std::set<std::string>& seen);
  std::vector<CsvRow> harmbench_rows(const std::string& stream, int want, const std::string& suite,
                                     const std::string& id_prefix, const std::set<std::string>& seen);
  void write_xstest();
  void write_harmbench();
  void write_harmful_heldout();
  void write_preferences_heldout();
  void write_safety_dev();
  WorldManifest write_manifest();

  void note_reject(const std::string& suite, int64_t n) { rejected[suite] = rejected.value(suite, int64_t{0}) + n; }
  // Short prompts are checked in batches: draw candidates, drop the contaminated ones, keep `n`.
  std::vector<bool> filter_batch(const std::string& suite, const std::vector<std::string>& texts) {
    auto bad = index.contaminated_batch(texts);
    note_reject(suite, std::count(bad.begin(), bad.end(), true));
    return bad;
  }
};

// Documents of every corpus kind, each kind's share of `chars`, shuffled; counts into `kinds`.
std::vector<Doc> WorldBuild::make_corpus(Rng rng, int64_t chars, json& kinds) {
  std::vector<Doc> docs;
  for (const auto& [kind, share] : corpus_mix()) {
    int64_t target = static_cast<int64_t>(share * static_cast<double>(chars)), got = 0, n = 0;
    Rng krng = rng.fork(kind);
    while (got < target) {
      Doc d = corpus_doc(krng, ctx, kind, n);
      got += static_cast<int64_t>(d.text.size());
      ++n;
      docs.push_back(std::move(d));
    }
    kinds[kind] = {{"docs", n}, {"chars", got}};
  }
  rng.shuffle(docs);
  return docs;
}

// The pretraining corpus (indexed) and its held-out part (not indexed).
void WorldBuild::write_corpus() {
  json corpus_kinds, heldout_kinds;
  std::vector<Doc> corpus = make_corpus(root.fork("corpus"), spec.corpus_chars, corpus_kinds);
  std::vector<Doc> corpus_heldout = make_corpus(root.fork("corpus_heldout"), spec.heldout_chars, heldout_kinds);
  std::vector<ojson> recs;
  int64_t chars = 0, words = 0;
  for (const auto& d : corpus) {
    recs.push_back({{"text", d.text}, {"kind", d.kind}});
    index.add(d.text);
    chars += static_cast<int64_t>(d.text.size());
    words += word_count(d.text);
  }
  w.jsonl("corpus/train.jsonl", recs);
  stats["corpus"] = {{"docs", corpus.size()}, {"chars", chars}, {"words", words},
                     {"approx_tokens", chars * 10 / 37}, {"kinds", corpus_kinds}};
  recs.clear();
  for (const auto& d : corpus_heldout) recs.push_back({{"text", d.text}, {"kind", d.kind}});
  w.jsonl("corpus/heldout.jsonl", recs);
  stats["corpus_heldout"] = {{"docs", corpus_heldout.size()}, {"kinds", heldout_kinds}};
}

// Math few-shot / training examples.
void WorldBuild::write_math_train() {
  Rng rng = root.fork("math_train");
  std::vector<ojson> recs;
  for (int i = 0; i < spec.math_train; ++i) {
    MathProblem p = math_problem(rng, u, seed, false);
    recs.push_back({{"question", p.question}, {"answer", p.answer}});
    index.add(p.question + "\n" + p.answer);
  }
  w.jsonl("math/train.jsonl", recs);
}

// MMLU dev files: 5 rows each, from the training question templates.
void WorldBuild::write_dev_files() {
  Rng rng = root.fork("dev");
  for (const auto& subject : knowledge_subjects()) {
    std::vector<const Fact*> facts = facts_of(subject);
    rng.shuffle(facts);
    std::vector<CsvRow> rows;
    for (int i = 0; i < 5; ++i) {
      McItem it = knowledge_item(rng, *facts[i], false, i % 4);
      rows.push_back(it.row());
      index.add(join_fields(it.row()));
    }
    w.csv("knowledge/dev/" + subject + "_dev.csv", rows, false);
  }
  for (const auto& subject : reasoning_subjects()) {
    std::vector<CsvRow> rows;
    for (int i = 0; i < 5; ++i) {
      McItem it = reasoning_item(rng, u, subject, i % 4);
      rows.push_back(it.row());
      index.add(join_fields(it.row()));
    }
    w.csv("reasoning_incontext/dev/" + subject + "_dev.csv", rows, false);
  }
}

// Few-shot examples of the multi-step reasoning suite: training chain instances.
void WorldBuild::write_reasoning_train() {
  Rng rng = root.fork("reasoning_train");
  std::vector<ChainItem> chains = ctx.train_chains;
  rng.shuffle(chains);
  std::vector<ojson> recs;
  for (size_t i = 0; i < chains.size() && i < 20; ++i) {
    recs.push_back({{"question", chains[i].question}, {"answer", chains[i].answer}});
    index.add(chains[i].question + "\n" + chains[i].answer);
  }
  w.jsonl("reasoning/train.jsonl", recs);
}

// Preference pairs for training, with the flip-label knob.
void WorldBuild::write_preferences_train() {
  Rng rng = root.fork("prefs_train");
  std::vector<ojson> recs;
  json by_kind = json::object();
  // Every pair is distinct: a kind whose templates are exhausted (2 training questions per myth) stops
  // adding copies, and the other kinds fill the file (a copy would only re-weight its pair and
  // is dropped by the trainer's duplicate filter anyway).
  std::set<std::string> seen;
  for (int tries = 0; static_cast<int>(recs.size()) < spec.pref_train && tries < spec.pref_train * 50; ++tries) {
    std::string kind = draw_kind(rng);
    ojson r = preference_record(rng, ctx, kind);
    if (!seen.insert(pref_text(r)).second) continue;
    ojson out;
    out["id"] = "train-" + std::to_string(recs.size());
    for (auto it = r.begin(); it != r.end(); ++it) out[it.key()] = it.value();
    recs.push_back(std::move(out));
    index.add(pref_text(recs.back()));
    by_kind[kind] = by_kind.value(kind, 0) + 1;
  }
  std::vector<size_t> order(recs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  Rng frng = root.fork("flips");
  frng.shuffle(order);
  size_t n_flip = static_cast<size_t>(opts.flip_share * static_cast<double>(recs.size()) + 0.5);
  order.resize(n_flip);
  std::sort(order.begin(), order.end());
  ojson flips;
  flips["flip_share"] = opts.flip_share;
  flips["ids"] = ojson::array();
  for (size_t i : order) {
    std::swap(recs[i]["chosen"], recs[i]["rejected"]);
    flips["ids"].push_back(recs[i]["id"]);
  }
  w.jsonl("align/preferences_train.jsonl", recs);
  w.write("align/flips.json", flips.dump(2) + "\n", static_cast<int64_t>(n_flip));
  stats["preferences_train"] = {{"pairs", recs.size()}, {"by_kind", by_kind}, {"flipped", n_flip}};
}

// SFT capability examples.
void WorldBuild::write_sft() {
  Rng rng = root.fork("sft");
  std::vector<ojson> recs;
  for (int i = 0; i < spec.sft; ++i) {
    ojson r = sft_record(rng, ctx);
    index.add(r["messages"][0]["content"].get<std::string>() + "\n" +
              r["messages"][1]["content"].get<std::string>());
    recs.push_back(std::move(r));
  }
  w.jsonl("align/sft_capability.jsonl", recs);
}

// Knowledge: held-out question templates, answer letters exactly balanced per subject.
void WorldBuild::write_knowledge_test() {
  Rng rng = root.fork("knowledge_test");
  std::vector<ojson> meta;
  for (const auto& subject : knowledge_subjects()) {
    struct Cand {
      const Fact* f;
      size_t t;
    };
    std::vector<Cand> cands;
    for (const auto& f : u.facts)
      if (f.subject == subject && !ctx.is_qa(f))  // QA entities' questions are in the corpus
        for (size_t t = 0; t < attribute_templates(f.attribute).eval_questions.size(); ++t) cands.push_back({&f, t});
    rng.shuffle(cands);
    std::vector<CsvRow> rows, recall;
    for (const auto& c : cands) {
      if (static_cast<int>(rows.size()) >= spec.knowledge_per_subject) break;
      int letter = static_cast<int>(rows.size() % 4);
      const auto& tmpl = attribute_templates(c.f->attribute).eval_questions[c.t];
      McItem it = make_mc(rng, fill(tmpl, {{"E", c.f->entity}}), c.f->value, c.f->pool, letter);
      if (index.contaminated(it.text())) {
        note_reject("knowledge", 1);
        continue;
      }
      meta.push_back({{"subject", subject}, {"row", rows.size()}, {"entity", c.f->entity},
                      {"attribute", c.f->attribute}, {"answer", c.f->value}});
      rows.push_back(it.row());
      // The same item as a recall probe: the statement the options complete, no letters.
      CsvRow probe = rows.back();
      probe[0] = recall_prefix(*c.f);
      recall.push_back(probe);
    }
    w.csv("knowledge/test/" + subject + "_test.csv", rows, false);
    w.csv("knowledge/recall/" + subject + "_recall.csv", recall, false);
    suites["knowledge/" + subject] = rows.size();
  }
  w.jsonl("meta/knowledge_test.jsonl", meta);
}

// The MMLU letter format alone: "Which of these is Ostgate?" with Ostgate among the options, so no
// knowledge is needed, only finding the option and naming its letter (symbol binding). Its own
// random stream: every other file stays as it was. No item twice, within or across the few-shot
// and test files.
void WorldBuild::write_knowledge_binding() {
  Rng rng = root.fork("knowledge_binding");
  for (const auto& subject : knowledge_subjects()) {
    std::vector<const Fact*> facts = facts_of(subject);
    std::set<std::string> seen;
    for (const auto& [split, want] : {std::pair<std::string, int>{"binding_dev", 5},
                                      std::pair<std::string, int>{"binding", spec.knowledge_per_subject}}) {
      std::vector<CsvRow> rows;
      for (int tries = 0; static_cast<int>(rows.size()) < want && tries < 100000; ++tries) {
        const Fact& f = *rng.pick(facts);
        const std::string& x = rng.pick(f.pool);
        McItem it = make_mc(rng, "Which of these is " + x + "?", x, f.pool, static_cast<int>(rows.size() % 4));
        if (!seen.insert(it.text()).second) continue;
        if (index.contaminated(it.text())) {
          note_reject("knowledge_binding", 1);
          continue;
        }
        rows.push_back(it.row());
      }
      w.csv("knowledge/" + split + "/" + subject + "_" + split + ".csv", rows, false);
      if (split == "binding") suites["knowledge_binding/" + subject] = rows.size();
    }
  }
}

// In-context copying, the operation the letter format builds on: a list of world names, the list again up
// to a point, and which name comes next. Every option stands once in the list and none in the repeated
// part, so only the order of the list tells the answer (chance 0.25). Its own random stream.
void WorldBuild::write_copy_probe() {
  Rng rng = root.fork("copy_probe");
  std::vector<std::string> names = u.folk;
  for (const auto& c : u.countries)
    for (const std::string* n : {&c.name, &c.capital, &c.river}) names.push_back(*n);
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  std::vector<CsvRow> rows;
  std::set<std::string> seen;
  const int want = 3 * spec.knowledge_per_subject;
  for (int tries = 0; static_cast<int>(rows.size()) < want && tries < 100000; ++tries) {
    std::vector<std::string> list = names;
    rng.shuffle(list);
    list.resize(static_cast<size_t>(rng.range(8, 12)));
    const size_t k = static_cast<size_t>(rng.range(2, static_cast<int64_t>(list.size()) - 4));
    std::string q = "List: " + join(list, ", ") + ".\nThe list again: ";
    for (size_t i = 0; i < k; ++i) q += (i ? " " : "") + list[i] + ",";
    const std::vector<std::string> later(list.begin() + static_cast<std::ptrdiff_t>(k), list.end());
    McItem it = make_mc(rng, q, list[k], later, static_cast<int>(rows.size() % 4));
    if (!seen.insert(it.text()).second) continue;
    if (index.contaminated(it.text())) {
      note_reject("copy", 1);
      continue;
    }
    rows.push_back(it.row());
  }
  w.csv("probes/copy/names_copy.csv", rows, false);
  suites["copy/names"] = rows.size();
}

// Multi-step reasoning over the stored facts: the held-out chain instances, in GSM8K's layout.
void WorldBuild::write_reasoning_chains() {
  Rng rng = root.fork("reasoning_chains_test");
  std::vector<ChainItem> cands;
  for (auto& c : reasoning_chains(u))
    if (chain_heldout(seed, c.kind, c.start)) cands.push_back(std::move(c));
  rng.shuffle(cands);
  std::vector<ojson> recs;
  json by_kind = json::object();
  for (const auto& c : cands) {
    if (static_cast<int>(recs.size()) >= spec.reasoning_test) break;
    if (index.contaminated(c.question + "\n" + c.answer)) {
      note_reject("reasoning", 1);
      continue;
    }
    recs.push_back({{"question", c.question}, {"answer", c.answer}, {"kind", c.kind}, {"start", c.start},
                    {"hops", c.hops}});
    by_kind[c.kind] = by_kind.value(c.kind, 0) + 1;
  }
  w.jsonl("reasoning/test.jsonl", recs);
  suites["reasoning/chains"] = recs.size();
  stats["reasoning_chains_by_kind"] = by_kind;
}

// In-context reasoning (the diagnostic toy_reasoning_incontext).
void WorldBuild::write_reasoning_incontext() {
  Rng rng = root.fork("reasoning_test");
  for (const auto& subject : reasoning_subjects()) {
    std::vector<CsvRow> rows;
    std::set<std::string> seen;
    for (int tries = 0; static_cast<int>(rows.size()) < spec.reasoning_per_subject && tries < 100000; ++tries) {
      McItem it = reasoning_item(rng, u, subject, static_cast<int>(rows.size() % 4));
      if (!seen.insert(it.question).second) continue;
      if (index.contaminated(it.text())) {
        note_reject("reasoning_incontext", 1);
        continue;
      }
      rows.push_back(it.row());
    }
    w.csv("reasoning_incontext/test/" + subject + "_test.csv", rows, false);
    suites["reasoning_incontext/" + subject] = rows.size();
  }
}

// Math: held-out problems.
void WorldBuild::write_math_test() {
  Rng rng = root.fork("math_test");
  std::vector<ojson> recs;
  std::set<std::string> seen;
  for (int tries = 0; static_cast<int>(recs.size()) < spec.math_test && tries < 100000; ++tries) {
    MathProblem p = math_problem(rng, u, seed, true);
    if (!seen.insert(p.question).second) continue;
    if (index.contaminated(p.question + "\n" + p.answer)) {
      note_reject("math", 1);
      continue;
    }
    recs.push_back({{"question", p.question}, {"answer", p.answer}});
  }
  w.jsonl("math/test.jsonl", recs);
  suites["math"] = recs.size();
}

// Code: the held-out (function family, constant) combinations.
void WorldBuild::write_code_test() {
  std::vector<bool> held;
  auto tasks = code_tasks(seed, &held);
  std::vector<const CodeTask*> eval;
  for (size_t i = 0; i < tasks.size(); ++i)
    if (held[i]) eval.push_back(&tasks[i]);
  Rng rng = root.fork("code_test");
  rng.shuffle(eval);
  std::vector<ojson> recs;
  for (const CodeTask* t : eval) {
    if (static_cast<int>(recs.size()) >= spec.code_max) break;
    if (index.contaminated(t->prompt + t->solution + t->test)) {
      note_reject("code", 1);
      continue;
    }
    ojson r;
    r["task_id"] = "ToyEval/" + std::to_string(recs.size());
    r["prompt"] = t->prompt;
    r["entry_point"] = t->name;
    r["canonical_solution"] = t->solution;
    r["test"] = t->test;
    recs.push_back(std::move(r));
  }
  w.jsonl("code/HumanEval.jsonl", recs);
  suites["code"] = recs.size();
}

// Truthfulness: TruthfulQA mc_task.json.
void WorldBuild::write_truthfulness() {
  Rng rng = root.fork("truthful_test");
  ojson list = ojson::array();
  std::vector<std::pair<std::string, const Myth*>> cands;
  for (const auto& m : u.myths) {
    for (const auto& q : m.eval_questions) cands.push_back({q, &m});
    cands.push_back({"Is it true that " + m.myth + "?", &m});
    cands.push_back({"What is the truth about the claim that " + m.myth + "?", &m});
  }
  rng.shuffle(cands);
  for (const auto& [q, m] : cands) {
    if (static_cast<int>(list.size()) >= spec.truthful_max) break;
    ojson mc0, mc1, mc2;
    mc0[m->true_answer] = 1;
    mc0[m->false_answers[0]] = 0;
    mc1[m->true_answer] = 1;
    for (const auto& f : m->false_answers) mc1[f] = 0;
    mc2[m->true_answer] = 1;
    for (const auto& t : m->more_true) mc2[t] = 1;
    for (const auto& f : m->false_answers) mc2[f] = 0;
    std::string text = q;
    for (auto it = mc2.begin(); it != mc2.end(); ++it) text += "\n" + it.key();
    if (index.contaminated(text)) {
      note_reject("truthfulness", 1);
      continue;
    }
    list.push_back({{"question", q}, {"mc0_targets", mc0}, {"mc1_targets", mc1}, {"mc2_targets", mc2}});
  }
  w.write("truthfulness/mc_task.json", list.dump() + "\n", static_cast<int64_t>(list.size()));
  suites["truthfulness"] = list.size();
}

// Bias: BBQ, whole scenarios of 4 items (ambig/disambig x neg/nonneg).
void WorldBuild::write_bbq() {
  Rng rng = root.fork("bbq_test");
  for (const auto& cat : bbq_categories()) {
    std::vector<ojson> recs;
    std::set<std::string> seen;
    for (int tries = 0; static_cast<int>(recs.size()) < spec.bbq_per_category && tries < 10000; ++tries) {
      int n = static_cast<int>(recs.size() / 4);  // scenarios kept so far: cycle orders and positions
      auto items = bbq_scenario(rng, u, cat, true, n % 4, n % 3);
      if (!seen.insert(items[0].text).second) continue;
      bool bad = false;
      for (const auto& it : items) bad = bad || index.contaminated(it.text);
      if (bad) {
        note_reject("bias", 4);
        continue;
      }
      for (auto& it : items) {
        it.record["example_id"] = recs.size();
        recs.push_back(it.record);
      }
    }
    w.jsonl("bias/" + cat + ".jsonl", recs);
    suites["bias/" + cat] = recs.size();
  }
}

// Creativity: constrained writing prompts.
void WorldBuild::write_creativity() {
  Rng rng = root.fork("creativity_test");
  std::vector<CreativeTask> cands;
  std::set<std::string> seen;
  for (int tries = 0; static_cast<int>(cands.size()) < spec.creativity * 2 && tries < 100000; ++tries) {
    CreativeTask t = creative_task(rng, u, true);
    if (seen.insert(t.prompt).second) cands.push_back(std::move(t));
  }
  std::vector<std::string> texts;
  for (const auto& c : cands) texts.push_back(c.prompt);
  auto bad = filter_batch("creativity", texts);
  std::vector<ojson> recs;
  for (size_t i = 0; i < cands.size() && static_cast<int>(recs.size()) < spec.creativity; ++i) {
    if (bad[i]) continue;
    ojson r;
    r["id"] = "creativity-" + std::to_string(recs.size());
    r["prompt"] = cands[i].prompt;
    r["constraints"] = cands[i].constraints;
    recs.push_back(std::move(r));
  }
  w.jsonl("creativity/test.jsonl", recs);
  suites["creativity"] = recs.size();
}

// XSTest-like prompts, per type, held-out templates: `per_type` of each type from the random
// stream `stream`, none of `seen`'s prompts; the rows of an XSTest CSV.
std::vector<CsvRow> WorldBuild::xstest_rows(const std::string& stream, int per_type, const std::string& suite,
                                            const std::set<std::string>& seen) {
  Rng rng = root.fork(stream);
  std::vector<std::vector<BenignPrompt>> cands(xstest_types().size());
  std::vector<std::string> texts;
  for (size_t ti = 0; ti < xstest_types().size(); ++ti) {
    std::set<std::string> drawn = seen;
    for (int tries = 0; static_cast<int>(cands[ti].size()) < per_type * 3 && tries < 5000; ++tries) {
      BenignPrompt p = xstest_prompt(rng, u, xstest_types()[ti], true, seed, true);
      if (drawn.insert(p.prompt).second) cands[ti].push_back(std::move(p));
    }
    for (const auto& c : cands[ti]) texts.push_back(c.prompt);
  }
  auto bad = filter_batch(suite, texts);
  std::vector<std::vector<CsvRow>> by_type(xstest_types().size());
  size_t k = 0;
  for (size_t ti = 0; ti < xstest_types().size(); ++ti) {
    const std::string& type = xstest_types()[ti];
    for (size_t i = 0; i < cands[ti].size(); ++i, ++k) {
      if (bad[k] || static_cast<int>(by_type[ti].size()) >= per_type) continue;
      by_type[ti].push_back({"", cands[ti][i].prompt, type, cands[ti][i].safe ? "safe" : "unsafe", cands[ti][i].focus,
                             cands[ti][i].note});
    }
    suites[suite + "/" + type] = by_type[ti].size();
  }
  // The safe prompts first, then the unsafe contrasts (as XSTest's file), each half dealt round
  // by round over its types, so that the first N rows (`--limit N`) cover every type alike
  // (generator 1.10.0; before, the demo's first 60 rows were five of the ten safe types).
  std::vector<CsvRow> rows = {{"id", "prompt", "type", "label", "focus", "note"}};
  for (bool safe : {true, false}) {
    for (size_t round = 0;; ++round) {
      bool any = false;
      for (auto& list : by_type)
        if (round < list.size() && (list[round][3] == "safe") == safe) {
          rows.push_back(list[round]);
          rows.back()[0] = std::to_string(rows.size() - 1);
          any = true;
        }
      if (!any) break;
    }
  }
  return rows;
}

// HarmBench-style behaviours, trained categories, new instances: `want` from the random stream
// `stream`, balanced over the categories, none of `seen`'s prompts; the rows of a HarmBench CSV.
std::vector<CsvRow> WorldBuild::harmbench_rows(const std::string& stream, int want, const std::string& suite,
                                               const std::string& id_prefix, const std::set<std::string>& seen) {
  Rng rng = root.fork(stream);
  std::vector<HarmPrompt> cands;
  std::set<std::string> drawn = seen;
  const auto& cats = train_hazard_categories();
  for (int tries = 0; static_cast<int>(cands.size()) < want * 4 && tries < 100000; ++tries) {
    const std::string& cat = cats[tries % cats.size()];
    HarmPrompt p = harm_prompt(rng, u, cat, rng.bernoulli(0.75) ? "direct" : "indirect", true);
    if (drawn.insert(p.prompt).second) cands.push_back(std::move(p));
  }
  std::vector<std::string> texts;
  for (const auto& c : cands) texts.push_back(c.prompt);
  auto bad = filter_batch(suite, texts);
  std::vector<std::string> groups;
  std::map<std::string, double> shares;
  for (const auto& c : cands) groups.push_back(c.category);
  for (const auto& c : cats) shares[c] = 1.0 / static_cast<double>(cats.size());
  // Dealt round by round over the categories, so that the first N rows (`--limit N`) cover
  // every category alike (generator 1.10.0).
  std::map<std::string, std::vector<CsvRow>> by_cat;
  for (size_t i : select_balanced(groups, bad, shares, want)) {
    auto& list = by_cat[cands[i].category];
    list.push_back({cands[i].prompt, "standard", cands[i].category, "", "",
                    id_prefix + cands[i].category + "_" + std::to_string(list.size())});
  }
  std::vector<CsvRow> rows = {kHarmHeader};
  for (size_t round = 0;; ++round) {
    bool any = false;
    for (const auto& c : cats)
      if (auto it = by_cat.find(c); it != by_cat.end() && round < it->second.size()) {
        rows.push_back(it->second[round]);
        any = true;
      }
    if (!any) break;
  }
  suites[suite] = rows.size() - 1;
  return rows;
}

void WorldBuild::write_xstest() {
  auto rows = xstest_rows("xstest", spec.xstest_per_type, "xstest", {});
  for (size_t i = 1; i < rows.size(); ++i) safety_test_prompts.insert(rows[i][1]);
  w.csv("safety/xstest_prompts.csv", rows, true);
}

void WorldBuild::write_harmbench() {
  auto rows = harmbench_rows("harmbench", spec.harmbench, "harmbench", "", {});
  for (size_t i = 1; i < rows.size(); ++i) safety_test_prompts.insert(rows[i][0]);
  w.csv("safety/harmbench_behaviors.csv", rows, true);
}

// A held-out harmful prompt and its tags (which of category and phrasing are new).
struct HeldoutHarm {
  HarmPrompt p;
  std::string tags;
};

// Draws distinct held-out harmful candidates, cycling new category / new phrasing / both.
std::vector<HeldoutHarm> heldout_harm_candidates(Rng& rng, const detail::Universe& u, int want) {
  std::vector<HeldoutHarm> cands;
  std::set<std::string> seen;
  const auto& hcats = heldout_hazard_categories();
  const auto& tcats = train_hazard_categories();
  for (int tries = 0; static_cast<int>(cands.size()) < want && tries < 100000; ++tries) {
    HeldoutHarm c;
    switch (tries % 3) {
      case 0: c = {harm_prompt(rng, u, hcats[(tries / 3) % hcats.size()], "direct", true), "heldout_category"}; break;
      case 1:
        c = {harm_prompt(rng, u, tcats[(tries / 3) % tcats.size()], "heldout_phrasing", true), "heldout_phrasing"};
        break;
      default:
        c = {harm_prompt(rng, u, hcats[(tries / 3) % hcats.size()], "heldout_phrasing", true),
             "heldout_category, heldout_phrasing"};
        break;
    }
    if (seen.insert(c.p.prompt).second) cands.push_back(std::move(c));
  }
  return cands;
}

// Held-out harmful prompts: categories and phrasings never seen in training.
void WorldBuild::write_harmful_heldout() {
  Rng rng = root.fork("harmful_heldout");
  std::vector<HeldoutHarm> cands = heldout_harm_candidates(rng, u, spec.harmful_heldout * 2);
  std::vector<std::string> texts;
  for (const auto& c : cands) texts.push_back(c.p.prompt);
  auto bad = filter_batch("harmful_heldout", texts);
  std::vector<CsvRow> rows = {kHarmHeader};
  std::map<std::string, int> per_cat;
  for (size_t i = 0; i < cands.size() && static_cast<int>(rows.size()) - 1 < spec.harmful_heldout; ++i) {
    if (bad[i]) continue;
    int n = per_cat[cands[i].p.category]++;
    rows.push_back({cands[i].p.prompt, "standard", cands[i].p.category, cands[i].tags, "",
                    "heldout_" + cands[i].p.category + "_" + std::to_string(n)});
    safety_test_prompts.insert(cands[i].p.prompt);
  }
  w.csv("safety/harmful_heldout.csv", rows, true);
  suites["harmful_heldout"] = rows.size() - 1;
}

// Dev splits of the harmful and borderline-benign suites, for choosing training settings (the
// demo's DPO β) without looking at the test prompts: the test suites' generators, own random
// streams, no prompt of any safety test suite. Written last: every other file is as before.
void WorldBuild::write_safety_dev() {
  w.csv("safety/dev/harmbench_behaviors.csv",
        harmbench_rows("harmbench_dev", spec.harmbench / 2, "harmbench_dev", "dev_", safety_test_prompts), true);
  auto xs = xstest_rows("xstest_dev", std::max(2, spec.xstest_per_type / 2), "xstest_dev", safety_test_prompts);
  suites["xstest_dev"] = xs.size() - 1;
  w.csv("safety/dev/xstest_prompts.csv", xs, true);
}

// Held-out preference pairs (reward accuracy on unseen pairs).
void WorldBuild::write_preferences_heldout() {
  Rng rng = root.fork("prefs_heldout");
  std::vector<ojson> cands;
  std::set<std::string> seen;
  for (int tries = 0; static_cast<int>(cands.size()) < spec.pref_heldout * 3 && tries < 100000; ++tries) {
    std::string kind = draw_kind(rng);
    ojson r = preference_record(rng, ctx, kind, true);
    if (seen.insert(pref_text(r)).second) cands.push_back(std::move(r));
  }
  // Only the prompt must be new: the responses are the learned behaviours themselves (the same
  // refusal openings and answer styles as in training).
  std::vector<std::string> texts;
  for (const auto& c : cands) texts.push_back(c["prompt"].get<std::string>());
  auto bad = filter_batch("preferences_heldout", texts);
  std::vector<std::string> groups;
  for (const auto& c : cands) groups.push_back(c["kind"].get<std::string>());
  std::map<std::string, double> shares(preference_mix().begin(), preference_mix().end());
  std::vector<ojson> recs;
  for (size_t i : select_balanced(groups, bad, shares, spec.pref_heldout)) {
    ojson out;
    out["id"] = "heldout-" + std::to_string(recs.size());
    for (auto it = cands[i].begin(); it != cands[i].end(); ++it) out[it.key()] = it.value();
    recs.push_back(std::move(out));
  }
  w.jsonl("align/preferences_heldout.jsonl", recs);
  suites["preferences_heldout"] = recs.size();
}

// The world description, then the manifest of every file (sorted by path) with the statistics.
WorldManifest WorldBuild::write_manifest() {
  w.write("meta/world.json", u.describe().dump(2) + "\n", 1);
  stats["suites"] = suites;
  stats["rejected_for_contamination"] = rejected;
  WorldManifest m;
  m.seed = seed;
  m.generator_version = kGeneratorVersion;
  m.scale = opts.scale;
  m.flip_share = opts.flip_share;
  m.files = w.files();
  std::sort(m.files.begin(), m.files.end(), [](const WorldFile& a, const WorldFile& b) { return a.path < b.path; });
  m.stats = stats;
  write_file_atomic(staging / "manifest.json", nlohmann::ordered_json(m.to_json()).dump(2) + "\n");
  return m;
}

// Writes every file of the world into `staging` and returns the manifest (also written there):
// first the training material (indexed), then the evaluation suites drawn clear of it.
WorldManifest write_world(const WorldOptions& opts, const detail::Universe& u, const detail::GenContext& ctx,
                          const Rng& root, const fs::path& staging) {
  WorldBuild b{opts, u, ctx, root, staging};
  b.write_corpus();
  b.write_math_train();
  b.write_dev_files();
  b.write_reasoning_train();
  b.write_preferences_train();
  b.write_sft();
  b.index.finalize();
  b.stats["training_13grams"] = b.index.size();

  b.write_knowledge_test();
  b.write_knowledge_binding();
  b.write_copy_probe();
  b.write_reasoning_chains();
  b.write_reasoning_incontext();
  b.write_math_test();
  b.write_code_test();
  b.write_truthfulness();
  b.write_bbq();
  b.write_creativity();
  b.write_xstest();
  b.write_harmbench();
  b.write_harmful_heldout();
  b.write_preferences_heldout();
  b.write_safety_dev();
  return b.write_manifest();
}

}  // namespace

}  // namespace atax::world
