// Multiple-choice items in MMLU's layout: knowledge questions about the universe's facts and the
// reasoning puzzles (transitive comparisons, syllogisms).
#include <algorithm>
#include <stdexcept>

#include "world/internal.h"

namespace atax::world::detail {

namespace {

const char* kLetters[] = {"A", "B", "C", "D"};

struct Relation {
  std::string more, most, less, least;
};
const std::vector<Relation> kRelations = {{"taller", "tallest", "shorter", "shortest"},
                                          {"older", "oldest", "younger", "youngest"},
                                          {"faster", "fastest", "slower", "slowest"},
                                          {"heavier", "heaviest", "lighter", "lightest"},
                                          {"richer", "richest", "poorer", "poorest"}};

struct PropertyDomain {
  std::string verb;      // "is {v}": premises read "Every {k} <verb>.", conclusions "{N} <verb>."
  std::string question;  // "What colour is {N}?"
  const std::vector<std::string>* values;
};

const std::vector<std::string> kHomes = {"marshes", "mountains", "deserts", "forests", "caves", "meadows",
                                         "coasts",  "lakes"};
const std::vector<std::string> kFoods = {"seeds", "fish", "beetles", "moss", "berries", "snails", "roots",
                                         "nectar"};

const std::vector<PropertyDomain>& domains() {
  static const std::vector<PropertyDomain> d = {{"is {v}", "What colour is {N}?", &colours()},
                                                {"lives in the {v}", "Where does {N} live?", &kHomes},
                                                {"eats {v}", "What does {N} eat?", &kFoods}};
  return d;
}

}  // namespace

std::vector<std::string> McItem::row() const {
  return {question, options[0], options[1], options[2], options[3], kLetters[answer]};
}

std::string McItem::text() const {
  std::string t = question;
  for (const auto& o : options) t += "\n" + o;
  return t;
}

McItem make_mc(Rng& rng, const std::string& question, const std::string& correct,
               const std::vector<std::string>& pool, int answer) {
  std::vector<std::string> others;
  for (const auto& p : pool)
    if (p != correct && std::find(others.begin(), others.end(), p) == others.end()) others.push_back(p);
  if (others.size() < 3) throw std::logic_error("world: too few distractors for " + question);
  rng.shuffle(others);
  McItem item;
  item.question = question;
  item.answer = answer;
  int k = 0;
  for (int i = 0; i < 4; ++i) item.options.push_back(i == answer ? correct : others[k++]);
  return item;
}

std::string mc_header(const std::string& subject) {
  return "The following are multiple choice questions (with answers) about " + replace_all(subject, "_", " ") +
         ".\n\n";
}

std::string mc_block(const McItem& item, bool with_answer) {
  std::string s = item.question + "\n";
  for (int i = 0; i < 4; ++i) s += std::string(kLetters[i]) + ". " + item.options[i] + "\n";
  s += "Answer:";
  if (with_answer) s += std::string(" ") + kLetters[item.answer];
  return s;
}

McItem knowledge_item(Rng& rng, const Fact& fact, bool eval, int answer) {
  const auto& t = attribute_templates(fact.attribute);
  const auto& qs = eval ? t.eval_questions : t.train_questions;
  std::string q = fill(rng.pick(qs), {{"E", fact.entity}});
  McItem item = make_mc(rng, q, fact.value, fact.pool, answer);
  item.meta = {{"subject", fact.subject}, {"attribute", fact.attribute}, {"entity", fact.entity},
               {"answer", fact.value}};
  return item;
}

std::string recall_prefix(const Fact& fact) {
  const std::string tail = " {V}.";
  for (const auto& st : attribute_templates(fact.attribute).statements)
    if (ends_with(st, tail) && st.find("{E}") != std::string::npos)
      return cap(fill(st.substr(0, st.size() - tail.size()), {{"E", fact.entity}}));
  throw std::logic_error("world: no statement of " + fact.attribute + " ends on its value");
}

const std::vector<std::string>& reasoning_subjects() {
  static const std::vector<std::string> s = {"comparisons", "syllogisms"};
  return s;
}

McItem reasoning_item(Rng& rng, const Universe& u, const std::string& subject, int answer) {
  if (subject == "comparisons") {
    const Relation& rel = rng.pick(kRelations);
    std::vector<std::string> names = u.folk;
    rng.shuffle(names);
    // names[0] > names[1] > names[2] in the relation's "more" direction; names[3] is not mentioned.
    bool most = rng.bernoulli(0.5);
    std::vector<std::string> premises;
    std::string q, correct;
    if (most) {
      premises = {names[0] + " is " + rel.more + " than " + names[1] + ".",
                  names[1] + " is " + rel.more + " than " + names[2] + "."};
      q = "Who is the " + rel.most + "?";
      correct = names[0];
    } else {
      premises = {names[2] + " is " + rel.less + " than " + names[1] + ".",
                  names[1] + " is " + rel.less + " than " + names[0] + "."};
      q = "Who is the " + rel.least + "?";
      correct = names[2];
    }
    if (rng.bernoulli(0.5)) std::swap(premises[0], premises[1]);
    McItem item = make_mc(rng, premises[0] + " " + premises[1] + " " + q, correct,
                          {names[0], names[1], names[2], names[3]}, answer);
    std::string explanation =
        most ? names[0] + " is " + rel.more + " than " + names[1] + ", and " + names[1] + " is " + rel.more +
                   " than " + names[2] + ", so " + names[0] + " is the " + rel.most + "."
             : names[2] + " is " + rel.less + " than " + names[1] + ", and " + names[1] + " is " + rel.less +
                   " than " + names[0] + ", so " + names[2] + " is the " + rel.least + ".";
    item.meta = {{"subject", subject}, {"explanation", explanation}};
    return item;
  }
  if (subject == "syllogisms") {
    const PropertyDomain& d = rng.pick(domains());
    std::vector<std::string> kinds = u.kinds;
    rng.shuffle(kinds);
    std::vector<std::string> vals = *d.values;
    rng.shuffle(vals);
    std::string name = rng.pick(u.folk);
    auto premise = [&](const std::string& k, const std::string& v) {
      return "Every " + k + " " + fill(d.verb, {{"v", v}}) + ".";
    };
    std::string p1 = premise(kinds[0], vals[0]);
    std::string p2 = premise(kinds[1], vals[1]);
    if (rng.bernoulli(0.5)) std::swap(p1, p2);
    std::string member = name + " is " + article(kinds[1]) + " " + kinds[1] + ".";
    std::string q = p1 + " " + p2 + " " + member + " " + fill(d.question, {{"N", name}});
    McItem item = make_mc(rng, q, vals[1], {vals[0], vals[2], vals[3], vals[4], vals[1]}, answer);
    // The other premise's value must be among the options: put it in if it was not drawn.
    if (std::find(item.options.begin(), item.options.end(), vals[0]) == item.options.end())
      item.options[(answer + 1) % 4] = vals[0];
    std::string explanation = name + " is " + article(kinds[1]) + " " + kinds[1] + ", and every " + kinds[1] +
                              " " + fill(d.verb, {{"v", vals[1]}}) + ", so " + name + " " +
                              fill(d.verb, {{"v", vals[1]}}) + ".";
    item.meta = {{"subject", subject}, {"explanation", explanation}};
    return item;
  }
  throw std::logic_error("world: unknown reasoning subject " + subject);
}

std::string reasoning_explanation(const McItem& item) { return item.meta.value("explanation", ""); }

std::string fact_step(const Fact& fact) { return recall_prefix(fact) + " " + fact.value + "."; }

namespace {

const Fact& find_fact(const Universe& u, const std::string& attribute, const std::string& entity) {
  for (const auto& f : u.facts)
    if (f.attribute == attribute && f.entity == entity) return f;
  throw std::logic_error("world: no fact " + attribute + " of " + entity);
}

struct ChainKind {
  std::string kind;
  std::vector<std::string> attributes;  // the hops, in order; the first is asked of the start entity
  std::vector<std::string> questions;   // {S} the start entity
};

const std::vector<ChainKind>& chain_kinds() {
  static const std::vector<ChainKind> k = {
      {"birth_capital",
       {"birthplace", "capital"},
       {"What is the capital of the country where {S} was born?",
        "{S} was born in a country. Which city is the capital of that country?"}},
      {"birth_river",
       {"birthplace", "river"},
       {"Which river flows through the country where {S} was born?",
        "{S} was born in a country. Which river crosses that country?"}},
      {"birth_founder",
       {"birthplace", "founder"},
       {"Who founded the country where {S} was born?",
        "{S} was born in a country. Who was the founder of that country?"}},
      {"inventor_birthplace",
       {"inventor", "birthplace"},
       {"In which country was the inventor of the {S} born?",
        "Someone invented the {S}. In which country was that person born?"}},
      {"inventor_capital",
       {"inventor", "birthplace", "capital"},
       {"What is the capital of the country where the inventor of the {S} was born?",
        "Someone invented the {S}. Which city is the capital of the country where that person was born?"}},
      {"origin_capital",
       {"sub_origin", "capital"},
       {"What is the capital of the country where {S} is found?",
        "{S} is found in a country. Which city is the capital of that country?"}},
      {"origin_river",
       {"sub_origin", "river"},
       {"Which river flows through the country where {S} is found?",
        "{S} is found in a country. Which river crosses that country?"}},
      {"origin_founder",
       {"sub_origin", "founder"},
       {"Who founded the country where {S} is found?",
        "{S} is found in a country. Who was the founder of that country?"}},
  };
  return k;
}

}  // namespace

std::vector<ChainItem> reasoning_chains(const Universe& u) {
  std::vector<ChainItem> out;
  for (const auto& ck : chain_kinds()) {
    std::vector<std::string> starts;
    for (const auto& f : u.facts)
      if (f.attribute == ck.attributes[0]) starts.push_back(f.entity);
    for (const auto& s : starts) {
      std::string entity = s, steps;
      for (size_t h = 0; h < ck.attributes.size(); ++h) {
        const Fact& f = find_fact(u, ck.attributes[h], entity);
        steps += (h ? " " : "") + fact_step(f);
        entity = f.value;
      }
      for (const auto& q : ck.questions) {
        ChainItem it;
        it.kind = ck.kind;
        it.start = s;
        it.question = fill(q, {{"S", s}});
        it.result = entity;
        it.answer = steps + "\n#### " + entity;
        it.hops = static_cast<int>(ck.attributes.size());
        out.push_back(std::move(it));
      }
    }
  }
  return out;
}

bool chain_heldout(uint64_t seed, const std::string& kind, const std::string& start) {
  return Rng(seed).fork("reasoning_chain/" + kind + "/" + start).bernoulli(0.5);
}

}  // namespace atax::world::detail
