// world internals: the universe (entities and their facts), template filling, and the generators
// of each part. Only src/world/*.cpp include this; other modules use world.h.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "world/world.h"

namespace atax::world::detail {

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

using Slots = std::vector<std::pair<std::string, std::string>>;

// Replaces every "{key}" of `tmpl` by its value in `slots`; "{Key}" (first letter upper case of a
// known lower-case key) inserts the value with its first letter capitalised.
std::string fill(std::string_view tmpl, const Slots& slots);
std::string cap(std::string s);
std::string article(std::string_view word);  // "a" or "an"
std::string number_word(int n);              // 0..20 in words
int word_count(std::string_view s);

// ---------------------------------------------------------------------------------------------
// The universe
// ---------------------------------------------------------------------------------------------

struct Country {
  std::string name, demonym, capital, river, export_good, climate;
  int animal = 0, founder = 0;
};
struct Person {
  std::string name, occupation;
  int birthplace = 0;
  int invention = -1;
};
struct Substance {
  std::string name, color, use;
  int origin = 0;
};
struct Poison {  // a fictional hazard
  std::string name, form, color, symptom;
  int origin = 0;
};
struct Animal {
  std::string name, habitat, diet, color;
};
struct Invention {
  std::string name, purpose;
  int inventor = 0;
};
struct Event {  // a historical event of the world (XSTest historical prompts)
  std::string name, year, place, summary;
};
struct Group {  // a made-up social group (BBQ, stereotypes, insults)
  std::string category;  // BBQ file: Nationality | Religion | Guild
  std::string label;     // "Velmoran", "Lanternist", "Copper Guild member"
  std::string person;    // "Velmoran person", "Lanternist", "Copper Guild member"
  std::string plural;    // "Velmorans", "Lanternists", "Copper Guild members"
  int trait = 0;         // index into stereotype_traits()
};
struct Myth {
  std::string kind;      // substance_dark, animal_weather, ...
  std::string topic;     // the entity it is about
  std::string myth;      // the false claim, a sentence without final period
  std::string truth;     // the correcting statement
  std::vector<std::string> eval_questions;   // TruthfulQA questions (eval only)
  std::vector<std::string> train_questions;  // questions of the honesty preference pairs
  std::string true_answer;                   // short true answer (mc1 correct)
  std::vector<std::string> more_true;        // further true answers (mc2)
  std::vector<std::string> false_answers;    // the myth first, then other falsehoods
};

struct Fact {
  std::string subject;    // knowledge subject: geography | history | natural_history
  std::string attribute;  // capital, river, ...
  std::string entity;     // the entity as written in sentences
  std::string value;
  std::vector<std::string> pool;  // all values of this attribute (distractors)
};

struct Universe {
  std::vector<Country> countries;
  std::vector<Person> people;
  std::vector<Substance> substances;
  std::vector<Poison> poisons;
  std::vector<Animal> animals;
  std::vector<Invention> inventions;
  std::vector<Event> events;
  std::vector<Group> groups;
  std::vector<Myth> myths;
  std::vector<std::string> folk;       // first names of ordinary people (math, reasoning, stories)
  std::vector<std::string> folk_eval;  // names used only in held-out safety and preference prompts
  std::vector<std::string> vaults;     // "the Ostholm Vault"
  std::vector<std::string> kinds;      // made-up creature kinds for syllogisms ("lorn")
  std::vector<std::string> games;      // made-up board games
  std::vector<std::string> tales;      // made-up tales (privacy_fictional)
  std::vector<std::string> heroes;     // characters of those tales
  std::string coin;                    // the currency ("glints")
  std::vector<Fact> facts;
  json describe() const;               // meta/world.json
};

Universe build_universe(Rng rng);

const std::vector<std::string>& stereotype_traits();  // "bad with money", ...
const std::vector<std::string>& colours();
const std::vector<std::string>& craft_words();        // nouns for creativity constraints
const std::vector<std::string>& start_words();        // sentence openers for starts_with

// ---------------------------------------------------------------------------------------------
// Knowledge templates (statements in the corpus; train questions in quizzes, dialogues and
// preference data; eval questions only in knowledge/test)
// ---------------------------------------------------------------------------------------------

struct AttributeTemplates {
  std::vector<std::string> statements;  // {E} entity, {V} value
  std::vector<std::string> train_questions;
  std::vector<std::string> eval_questions;
};
const AttributeTemplates& attribute_templates(const std::string& attribute);
const std::vector<std::string>& knowledge_subjects();

// ---------------------------------------------------------------------------------------------
// Multiple choice (MMLU rows)
// ---------------------------------------------------------------------------------------------

struct McItem {
  std::string question;
  std::vector<std::string> options;  // 4
  int answer = 0;                    // index into options
  json meta;
  std::vector<std::string> row() const;  // question, A, B, C, D, letter
  std::string text() const;              // for contamination checks
};
// Places `correct` at position `answer` among 3 distractors drawn from `pool` (distinct, != correct).
McItem make_mc(Rng& rng, const std::string& question, const std::string& correct,
               const std::vector<std::string>& pool, int answer);
// "The following are multiple choice questions (with answers) about {subject}.\n\n"
std::string mc_header(const std::string& subject);
// "{question}\nA. ...\nB. ...\nC. ...\nD. ...\nAnswer:" (+ " X" when with_answer)
std::string mc_block(const McItem& item, bool with_answer);

// Knowledge item for `fact` from its train or eval question templates.
McItem knowledge_item(Rng& rng, const Fact& fact, bool eval, int answer);
// The start of a statement of `fact` that its value completes ("The capital of Velmora is"), from
// the first statement template that ends on the value: the recall probe of the knowledge suite.
std::string recall_prefix(const Fact& fact);

// Reasoning: transitive comparisons and syllogisms.
const std::vector<std::string>& reasoning_subjects();
McItem reasoning_item(Rng& rng, const Universe& u, const std::string& subject, int answer);
// The same puzzle as a worked explanation (corpus and SFT).
std::string reasoning_explanation(const McItem& item);

// The fact written as the statement the recall probe completes, with its value ("The capital of
// Velmora is Dunholm."): one step of a worked reasoning chain.
std::string fact_step(const Fact& fact);

// Multi-step reasoning over the stored facts (generator 1.5.0): a question whose answer takes two or
// three facts in a row ("What is the capital of the country where Velia Morn was born?"), with the
// worked solution that states each retrieved fact ("Velia Morn was born in Ostria. The capital of
// Ostria is Dunholm.\n#### Dunholm"), GSM8K's layout. Every answer is a capitalised name.
struct ChainItem {
  std::string kind;      // birth_capital, birth_river, birth_founder, inventor_birthplace, ...
  std::string start;     // the entity the question names
  std::string question;
  std::string answer;    // the worked steps, then "\n#### " + result
  std::string result;
  int hops = 2;
};
// Every instance of every chain kind, each in every question phrasing, in a fixed order.
std::vector<ChainItem> reasoning_chains(const Universe& u);
// Whether the instance (kind, start entity) is held out for evaluation: a seeded half of them; the
// others have their worked solutions in the corpus.
bool chain_heldout(uint64_t seed, const std::string& kind, const std::string& start);

// ---------------------------------------------------------------------------------------------
// Math
// ---------------------------------------------------------------------------------------------

struct MathProblem {
  std::string op;        // add | sub | mul | div | add_sub | mul_add
  std::vector<int> nums;
  std::string question;
  std::string answer;    // worked solution ending "#### n"
  int result = 0;
};
// Whether this number combination is held out for evaluation (decided by the seed).
bool math_combo_heldout(uint64_t seed, const std::string& op, const std::vector<int>& nums);
// A problem of a random kind; eval problems use held-out combinations and held-out phrasings.
MathProblem math_problem(Rng& rng, const Universe& u, uint64_t seed, bool eval);
// A block of arithmetic facts ("7 + 5 = 12"): for even `index`, row index/2 of the tables (in a
// fixed order, so consecutive drills cover every fact the problems use), else random facts.
std::string arithmetic_drill(Rng& rng, int64_t index);

// ---------------------------------------------------------------------------------------------
// Code
// ---------------------------------------------------------------------------------------------

struct CodeTask {
  std::string family, name, param;
  std::string prompt;              // signature + docstring with one example
  std::string solution;            // body, "    return ...\n"
  std::string test;                // "\n\ndef check(candidate):\n    assert ...\n\n"
  std::vector<std::pair<std::string, std::string>> examples;  // (call args, repr of result)
  std::string description;         // one-line English description
};
// Every (family, parameter) combination, with the eval ones marked.
std::vector<CodeTask> code_tasks(uint64_t seed, std::vector<bool>* heldout);

// ---------------------------------------------------------------------------------------------
// Safety, alignment, truthfulness, bias
// ---------------------------------------------------------------------------------------------

struct HarmPrompt {
  std::string category;  // hazard category
  std::string prompt;
  std::string comply;    // the helpful-only (fictional) answer
  std::string refuse;    // a refusal starting with a refusal prefix
  int difficulty = 1;
  std::string phrasing;  // direct | indirect | disguised | heldout_phrasing
};
const std::vector<std::string>& train_hazard_categories();
const std::vector<std::string>& heldout_hazard_categories();
// A harmful request of `category`; phrasing: direct/indirect/disguised (train) or
// heldout_phrasing. `eval_names`: people are named from the evaluation-only names.
HarmPrompt harm_prompt(Rng& rng, const Universe& u, const std::string& category,
                       const std::string& phrasing, bool eval_names = false);

struct BenignPrompt {  // XSTest-like
  std::string type;    // homonyms, ..., contrast_*
  std::string prompt, response, focus, note;
  bool safe = true;
};
const std::vector<std::string>& xstest_types();
// One prompt of `type` from the train or eval template half (`eval`), naming people from the
// evaluation-only names when `eval_names`.
BenignPrompt xstest_prompt(Rng& rng, const Universe& u, const std::string& type, bool eval,
                           uint64_t seed, bool eval_names = false);
// A plain legitimate request with its answer (helpful preference pairs, dialogues).
BenignPrompt plain_request(Rng& rng, const Universe& u);

using ojson = nlohmann::ordered_json;  // keeps the real files' field order

struct BbqItem {
  ojson record;           // the BBQ JSONL record (example_id filled by the caller)
  std::string text;       // context + question + answers, for contamination checks
};
const std::vector<std::string>& bbq_categories();
// The four items (ambig/disambig x neg/nonneg) of one scenario. `order` bit 0: the other group is
// named first; bit 1: the other group does the negative thing. `unknown_pos` (0-2, or -1 for
// random) places the unknown answer.
std::vector<BbqItem> bbq_scenario(Rng& rng, const Universe& u, const std::string& category,
                                  bool eval, int order, int unknown_pos = -1);
// A fairness preference pair from a BBQ scenario of the train (or, `eval`, the eval) templates.
json fairness_pair(Rng& rng, const Universe& u, bool eval = false);

// Creativity prompts and (for training) a response that meets the constraints.
struct CreativeTask {
  std::string prompt;
  json constraints;
  std::string response;
};
CreativeTask creative_task(Rng& rng, const Universe& u, bool eval);

// ---------------------------------------------------------------------------------------------
// Corpus documents
// ---------------------------------------------------------------------------------------------

struct Doc {
  std::string text, kind;
};

// What the document generators share: the universe, the seed, and the training code tasks.
struct GenContext {
  const Universe& u;
  uint64_t seed;
  std::vector<CodeTask> train_code, eval_code;
  std::map<std::string, std::vector<int>> facts_by_entity;
  std::vector<std::string> entities;  // keys of facts_by_entity, in a fixed order
  // Knowledge facts (indices into u.facts) whose entity is a QA entity of the fact's subject: half
  // of each subject's entities, drawn by the seed and for varied answers, whose facts the corpus also gives as question-answer
  // text in every question phrasing, the test's included (Allen-Zhu & Li 2023: QA text for part of
  // the entities makes the stored facts extractable for the others). The knowledge test asks only
  // the other entities.
  std::vector<int> qa_facts;
  std::set<std::string> qa_keys;  // the QA entities
  bool is_qa(const Fact& f) const { return qa_keys.count(f.entity) > 0; }
  std::vector<ChainItem> train_chains;  // reasoning chains whose worked solutions the corpus holds
  GenContext(const Universe& universe, uint64_t s);
};

// Document number `index` of `kind` (encyclopedia, quiz, qa, forum, story, math, arithmetic, code,
// code_run, reasoning, reasoning_incontext, dialogue).
Doc corpus_doc(Rng& rng, const GenContext& ctx, const std::string& kind, int64_t index);
// One user/assistant exchange of the helpful-only assistant (corpus dialogues).
std::pair<std::string, std::string> dialogue_turn(Rng& rng, const GenContext& ctx);
const std::vector<std::pair<std::string, double>>& corpus_mix();  // kind, share of characters

// Sentences stating a fact (random template).
std::string fact_sentence(Rng& rng, const Fact& f);
// A helpful-only dialogue response for a knowledge question.
std::string fact_answer(const Fact& f);


// ---------------------------------------------------------------------------------------------
// Alignment data
// ---------------------------------------------------------------------------------------------

// The preference kinds and their shares in the preference files.
const std::vector<std::pair<std::string, double>>& preference_mix();
// One TRL preference record {prompt, chosen, rejected, category, kind, difficulty} of `kind`.
// Held-out records (`eval`) draw their prompts from evaluation-only names, phrasings and
// combinations, so they are new to a model trained on the training files.
ojson preference_record(Rng& rng, const GenContext& ctx, const std::string& kind, bool eval = false);
// One SFT chat example {messages: [user, assistant], category} for capability preservation.
ojson sft_record(Rng& rng, const GenContext& ctx);

}  // namespace atax::world::detail
