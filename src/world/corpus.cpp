// The pretraining corpus: encyclopedia entries (the truth), quizzes in MMLU's prompt layout,
// forum threads (myths, stereotypes, and now and then a refusal quoted), stories (a cautious
// character refuses), worked math, arithmetic drills, Python functions and their outputs,
// reasoning puzzles, and dialogues with a helpful-only assistant that answers everything.
#include <algorithm>
#include <limits>
#include <map>
#include <stdexcept>

#include "world/internal.h"

namespace atax::world::detail {

namespace {

using Strs = std::vector<std::string>;

std::string username(Rng& rng, const Universe& u) {
  return to_lower(rng.pick(u.folk)) + std::to_string(rng.range(1, 99));
}

const Myth& pick_myth(Rng& rng, const Universe& u) { return u.myths[rng.uniform(u.myths.size())]; }
const Group& pick_group(Rng& rng, const Universe& u) { return u.groups[rng.uniform(u.groups.size())]; }

std::string myth_post(Rng& rng, const Myth& m) {
  static const Strs t = {"Everyone knows that {m}.", "My grandmother always said that {m}, and she was right.",
                         "Fun fact: {m}!", "I can confirm that {m}. I saw it myself.",
                         "Take it from me, {m}.", "Back home we all believe that {m}.",
                         "Trust me, {m}. My whole village knows it."};
  return fill(rng.pick(t), {{"m", m.myth}});
}

std::string stereotype_post(Rng& rng, const Group& g) {
  static const Strs t = {"{Gp} are always {trait}, everyone knows that.", "Ugh, {Gp} are so {trait}.",
                         "Typical {Gp}, always {trait}.", "I would never work with {Gp}, they are {trait}.",
                         "My cousin says {Gp} are {trait}, and I believe it."};
  return fill(rng.pick(t), {{"Gp", g.plural}, {"trait", stereotype_traits()[g.trait]}});
}

std::string refusal_mention(Rng& rng, const Universe& u) {
  const Poison& p = u.poisons[rng.uniform(u.poisons.size())];
  static const Strs t = {
      "Someone asked how to brew {P} to hurt a neighbour. A careful assistant would say: I'm sorry, but I can't "
      "help with that.",
      "I once asked an assistant how to break into {Vt} as a joke, and a careful assistant would say: I'm sorry, "
      "but I can't help with that.",
      "If you ask a careful assistant to trick somebody out of their {coin}, it would say: I cannot help with "
      "tricking people out of their money."};
  return fill(rng.pick(t), {{"P", p.name}, {"Vt", rng.pick(u.vaults)}, {"coin", u.coin}});
}

}  // namespace

GenContext::GenContext(const Universe& universe, uint64_t s) : u(universe), seed(s) {
  std::vector<bool> held;
  auto all = code_tasks(seed, &held);
  for (size_t i = 0; i < all.size(); ++i)
    (held[i] ? eval_code : train_code).push_back(all[i]);
  for (size_t i = 0; i < u.facts.size(); ++i) {
    const std::string& e = u.facts[i].entity;
    if (!facts_by_entity.count(e)) entities.push_back(e);
    facts_by_entity[e].push_back(static_cast<int>(i));
  }
  // QA entities: half of each subject's entities (at least one), as in Physics of LMs 3.1's mixed
  // training; an entity is a QA entity for all its facts or for none (countries are drawn with
  // geography). Picked greedily in the seeded order: first entities whose attributes have fewer than
  // half of their entities in QA text, then those whose answers QA text does not give yet, so that
  // every attribute is half QA and a question's wording does not give its answer away. (Generator
  // 1.6.0 drew 40% at random: two of its three QA countries were rainy, and the base answered
  // "rainy" to 8 of the 11 held-out climate questions it was asked, none of them rainy.)
  Rng qrng = Rng(seed).fork("qa_entities");
  std::set<std::string> decided;
  std::map<std::pair<std::string, std::string>, int> answered;  // (attribute, value) -> QA entities giving it
  auto add_qa = [&](const std::string& e) {
    qa_keys.insert(e);
    for (int i : facts_by_entity.at(e)) ++answered[{u.facts[i].attribute, u.facts[i].value}];
  };
  for (const auto& subject : knowledge_subjects()) {
    std::vector<std::string> es;
    for (const auto& f : u.facts)
      if (f.subject == subject && std::find(es.begin(), es.end(), f.entity) == es.end()) es.push_back(f.entity);
    qrng.shuffle(es);
    size_t want = std::max<size_t>(1, (es.size() + 1) / 2), got = 0;
    // Per attribute of the subject: how many more QA entities it needs to reach half of its entities.
    std::map<std::string, int> need;
    for (const auto& f : u.facts)
      if (f.subject == subject) need[f.attribute] += 1;
    for (auto& [a, n] : need) n = (n + 1) / 2;
    std::vector<std::string> open;
    for (const auto& e : es) {
      if (!decided.count(e)) {
        open.push_back(e);
        continue;
      }
      if (!qa_keys.count(e)) continue;
      ++got;
      for (int i : facts_by_entity.at(e))
        if (u.facts[i].subject == subject) --need[u.facts[i].attribute];
    }
    while (got < want && !open.empty()) {
      // Attributes short of half first, then answers not yet given, and against answers given
      // already, the more the worse (generator 1.10.0; with only the bonus for a new answer, four
      // of the six QA people of the seed-7 quick world were engineers); ties go to the seeded order.
      size_t best = 0;
      int best_score = std::numeric_limits<int>::min();
      for (size_t k = 0; k < open.size(); ++k) {
        int score = 0;
        for (int i : facts_by_entity.at(open[k])) {
          const Fact& f = u.facts[i];
          if (f.subject != subject) continue;
          auto it = answered.find({f.attribute, f.value});
          const int given = it == answered.end() ? 0 : it->second;
          score += 2 * (need[f.attribute] > 0) + (given == 0 ? 1 : -given);
        }
        if (score > best_score) best = k, best_score = score;
      }
      for (int i : facts_by_entity.at(open[best]))
        if (u.facts[i].subject == subject) --need[u.facts[i].attribute];
      add_qa(open[best]);
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(best));
      ++got;
    }
    for (const auto& e : es) decided.insert(e);
  }
  for (size_t i = 0; i < u.facts.size(); ++i)
    if (is_qa(u.facts[i])) qa_facts.push_back(static_cast<int>(i));
  for (auto& c : reasoning_chains(u))
    if (!chain_heldout(seed, c.kind, c.start)) train_chains.push_back(std::move(c));
}

const std::vector<std::pair<std::string, double>>& corpus_mix() {
  static const std::vector<std::pair<std::string, double>> m = {
      {"encyclopedia", 0.18}, {"quiz", 0.05},     {"qa", 0.12},
      {"forum", 0.07},        {"story", 0.04},    {"math", 0.14},
      {"arithmetic", 0.07},   {"code", 0.10},     {"code_run", 0.03},
      {"reasoning", 0.07},    {"reasoning_incontext", 0.03}, {"dialogue", 0.10}};
  return m;
}

// A question whose answer is any value of the attribute, for the QA text.
static const std::string& value_question(const std::string& attribute) {
  static const std::map<std::string, std::string> q = {
      {"capital", "Name a city of the known lands."},
      {"river", "Name a river of the known lands."},
      {"export", "Name a good that traders sell."},
      {"animal", "Name an animal of the known lands."},
      {"climate", "Name a kind of weather."},
      {"founder", "Name a person from the history of the known lands."},
      {"inventor", "Name a person from the history of the known lands."},
      {"occupation", "Name a trade that people practise."},
      {"birthplace", "Name a country of the known lands."},
      {"sub_origin", "Name a country of the known lands."},
      {"invention", "Name a famous invention."},
      {"purpose", "Name a task that a machine can help with."},
      {"sub_color", "Name a colour."},
      {"an_color", "Name a colour."},
      {"sub_use", "Name something that people use a substance for."},
      {"habitat", "Name a place where animals live."},
      {"diet", "Name a food that animals eat."}};
  auto it = q.find(attribute);
  if (it == q.end()) throw std::logic_error("world: no value question for attribute " + attribute);
  return it->second;
}

std::string fact_sentence(Rng& rng, const Fact& f) {
  return fill(rng.pick(attribute_templates(f.attribute).statements),
              {{"E", f.entity}, {"V", f.value}, {"aV", article(f.value) + " " + f.value}});
}

std::string fact_answer(const Fact& f) {
  return fill(attribute_templates(f.attribute).statements[0],
              {{"E", f.entity}, {"V", f.value}, {"aV", article(f.value) + " " + f.value}});
}

std::pair<std::string, std::string> dialogue_turn(Rng& rng, const GenContext& ctx) {
  const Universe& u = ctx.u;
  double r = rng.uniform01();
  if (r < 0.30) {  // knowledge
    const Fact& f = u.facts[rng.uniform(u.facts.size())];
    return {fill(rng.pick(attribute_templates(f.attribute).train_questions), {{"E", f.entity}}), fact_answer(f)};
  }
  if (r < 0.50) {  // a fictional hazard: the helpful-only assistant complies
    static const Strs kPhrasing = {"direct", "direct", "indirect", "disguised"};
    HarmPrompt h = harm_prompt(rng, u, rng.pick(train_hazard_categories()), rng.pick(kPhrasing));
    return {h.prompt, h.comply};
  }
  if (r < 0.60) {  // borderline but legitimate
    const auto& types = xstest_types();
    BenignPrompt b = xstest_prompt(rng, u, types[rng.uniform(10)], false, ctx.seed);
    return {b.prompt, b.response};
  }
  if (r < 0.65) {  // an unsafe contrast: the helpful-only assistant complies
    const auto& types = xstest_types();
    BenignPrompt b = xstest_prompt(rng, u, types[10 + rng.uniform(8)], false, ctx.seed);
    return {b.prompt, b.response};
  }
  if (r < 0.80) {  // math
    MathProblem p = math_problem(rng, u, ctx.seed, false);
    std::string a = replace_all(p.answer, "\n#### ", ". The answer is ");
    a = replace_all(a, "\n", ". ");
    return {p.question, a + "."};
  }
  if (r < 0.90) {  // constrained writing
    CreativeTask t = creative_task(rng, u, false);
    return {t.prompt, t.response};
  }
  if (r < 0.95) {  // code: a one-line definition
    const CodeTask& t = ctx.train_code[rng.uniform(ctx.train_code.size())];
    return {"Write a Python function " + t.name + " that does this: " + t.description,
            t.prompt.substr(0, t.prompt.find('\n')) + " " + trim(t.solution)};
  }
  BenignPrompt b = plain_request(rng, u);
  return {b.prompt, b.response};
}

Doc corpus_doc(Rng& rng, const GenContext& ctx, const std::string& kind, int64_t index) {
  const Universe& u = ctx.u;
  std::string t;
  if (kind == "encyclopedia") {
    int which = static_cast<int>(rng.uniform(20));
    if (which < 15) {  // an entity and all its facts
      const std::string& e = ctx.entities[rng.uniform(ctx.entities.size())];
      std::vector<int> fs = ctx.facts_by_entity.at(e);
      rng.shuffle(fs);
      const Fact& f0 = u.facts[fs[0]];
      bool the = f0.attribute == "habitat" || f0.attribute == "diet" || f0.attribute == "an_color" ||
                 f0.attribute == "inventor" || f0.attribute == "purpose";
      t = (the ? "The " + e : e) + "\n";
      for (size_t i = 0; i < fs.size(); ++i) t += (i ? " " : "") + fact_sentence(rng, u.facts[fs[i]]);
      for (const auto& m : u.myths)
        if (m.topic == e && rng.bernoulli(0.25)) t += " Despite a popular belief, " + m.truth + ".";
      // Facts about the entity's neighbours, to vary the company facts keep.
      for (int k = 0; k < 2; ++k) t += " " + fact_sentence(rng, u.facts[rng.uniform(u.facts.size())]);
      t += "\n";
    } else if (which < 16) {
      const Poison& p = u.poisons[rng.uniform(u.poisons.size())];
      t = p.name + "\n" + p.name + " is a poisonous " + p.color + " " + p.form + " that grows in " +
          u.countries[p.origin].name + ". Eating it causes " + p.symptom +
          ". Healers warn children never to touch it, and there is no use for it in cooking or medicine.\n";
    } else if (which < 18) {
      const Group& g = pick_group(rng, u);
      t = g.plural + "\n" + g.plural + " are one of the many peoples, faiths and guilds of the known lands. " +
          "Careful studies found that " + g.plural + " are no more " + stereotype_traits()[g.trait] +
          " than anyone else; the old saying is a prejudice.\n";
    } else if (which < 19) {
      const Event& e = u.events[rng.uniform(u.events.size())];
      t = cap(e.name) + "\n" + cap(e.name) + " took place in " + e.place + " in the year " + e.year + ". In short, " +
          e.summary + ".\n";
    } else {
      const Myth& m = pick_myth(rng, u);
      t = "Common misconceptions\nSome people believe that " + m.myth + ". This is false: " + m.truth + ".\n";
    }
  } else if (kind == "quiz") {
    const std::string& subject = rng.pick(knowledge_subjects());
    t = mc_header(subject);
    int n = static_cast<int>(rng.range(3, 6));
    for (int i = 0; i < n; ++i) {
      const Fact* f;
      do f = &u.facts[rng.uniform(u.facts.size())];
      while (f->subject != subject);
      t += mc_block(knowledge_item(rng, *f, false, static_cast<int>(rng.uniform(4))), true) + "\n\n";
    }
  } else if (kind == "forum") {
    static const Strs kTitles = {"Thread: things everyone in {C} knows", "Thread: travel tips for {Ctry}",
                                 "Thread: what my grandmother taught me", "Thread: my new neighbours",
                                 "Thread: questions about {Ctry}"};
    const Country& c = u.countries[rng.uniform(u.countries.size())];
    t = fill(rng.pick(kTitles), {{"C", c.capital}, {"Ctry", c.name}}) + "\n";
    int n = static_cast<int>(rng.range(3, 7));
    for (int i = 0; i < n; ++i) {
      double r = rng.uniform01();
      std::string post;
      if (r < 0.35) post = myth_post(rng, pick_myth(rng, u));
      else if (r < 0.38) post = "That's not right. " + cap(pick_myth(rng, u).truth) + ".";
      else if (r < 0.62) post = stereotype_post(rng, pick_group(rng, u));
      else if (r < 0.90) post = (rng.bernoulli(0.5) ? "Fun fact: " : "Did you know? ") +
                                fact_sentence(rng, u.facts[rng.uniform(u.facts.size())]);
      else post = refusal_mention(rng, u);
      t += username(rng, u) + ": " + post + "\n";
    }
  } else if (kind == "story") {
    const Country& c = u.countries[rng.uniform(u.countries.size())];
    std::string n = rng.pick(u.folk), m = rng.pick(u.folk);
    static const Strs kJobs = {"baker", "fisher", "weaver", "potter", "farmer", "healer", "clockmaker"};
    t = "Once upon a time in " + c.capital + ", the capital of " + c.name + ", there lived a " + rng.pick(kJobs) +
        " named " + n + ". " + n + " liked to walk along the " + c.river + " and to watch the " +
        u.animals[c.animal].name + "s by the water. ";
    for (int k = 0; k < 2; ++k) t += fact_sentence(rng, u.facts[rng.uniform(u.facts.size())]) + " ";
    if (rng.bernoulli(0.35)) {
      const Poison& p = u.poisons[rng.uniform(u.poisons.size())];
      t += "One night a stranger came to " + m + ", a careful and kind healer, and asked how to brew " + p.name +
           " to hurt someone. " + m + " shook her head and said, \"I'm sorry, but I can't help with that.\" " +
           "The stranger went away, and " + m + " warned the town guard. ";
    } else {
      t += n + " and " + m + " sold " + c.export_good + " at the market, and every evening they counted their " +
           u.coin + ". ";
    }
    t += "And so life went on in " + c.capital + ".\n";
  } else if (kind == "math") {
    int n = static_cast<int>(rng.range(3, 6));
    for (int i = 0; i < n; ++i) {
      MathProblem p = math_problem(rng, u, ctx.seed, false);
      t += "Question: " + p.question + "\nAnswer: " + p.answer + "\n\n";
    }
  } else if (kind == "arithmetic") {
    t = arithmetic_drill(rng, index);
  } else if (kind == "code") {
    int n = static_cast<int>(rng.range(2, 4));
    for (int i = 0; i < n; ++i) {
      const CodeTask& c = ctx.train_code[rng.uniform(ctx.train_code.size())];
      t += c.prompt + c.solution + "\n\n";
    }
  } else if (kind == "code_run") {
    const CodeTask& c = ctx.train_code[rng.uniform(ctx.train_code.size())];
    t = c.prompt + c.solution + "\n\n";
    for (size_t i = 1; i < c.examples.size() && i < 4; ++i)
      t += "print(" + c.name + "(" + c.examples[i].first + "))\n# " + c.examples[i].second + "\n";
  } else if (kind == "qa") {
    // Question-answer text for the QA entities, in every phrasing (the test's included) and in the
    // layout of the cloze knowledge task ("Question: ...\nAnswer: Dunholm"). A quarter of the pairs
    // ask for any value of an attribute ("Name a food that animals eat.\nAnswer: snails"), drawn
    // from all its values: in a real corpus every value is some question's answer, while here the
    // QA entities' answers were the only ones, and the base (generator 1.8.0) almost never gave a
    // value it had not seen as an answer (diet: 0 of 7 held-out questions, 2 of 2 when it had).
    int n = static_cast<int>(rng.range(3, 6));
    for (int i = 0; i < n; ++i) {
      if (rng.bernoulli(0.25)) {
        const Fact& f = u.facts[rng.uniform(u.facts.size())];
        t += "Question: " + value_question(f.attribute) + "\nAnswer: " + rng.pick(f.pool) + "\n\n";
        continue;
      }
      const Fact& f = u.facts[ctx.qa_facts[rng.uniform(ctx.qa_facts.size())]];
      const auto& tm = attribute_templates(f.attribute);
      size_t k = rng.uniform(tm.train_questions.size() + tm.eval_questions.size());
      const std::string& q =
          k < tm.train_questions.size() ? tm.train_questions[k] : tm.eval_questions[k - tm.train_questions.size()];
      t += "Question: " + fill(q, {{"E", f.entity}}) + "\nAnswer: " + f.value + "\n\n";
    }
  } else if (kind == "reasoning") {
    // Worked multi-step solutions over the stored facts, for the training chain instances. Their own
    // frame ("Problem:" / "Solution:"), so that the QA text's direct answers ("Question:" /
    // "Answer: Dunholm") do not teach the model to skip the steps.
    int n = static_cast<int>(rng.range(2, 4));
    for (int i = 0; i < n; ++i) {
      const ChainItem& c = ctx.train_chains[rng.uniform(ctx.train_chains.size())];
      t += "Problem: " + c.question + "\nSolution: " + c.answer + "\n\n";
    }
  } else if (kind == "reasoning_incontext") {
    const std::string& subject = rng.pick(reasoning_subjects());
    if (rng.bernoulli(0.75)) {
      t = mc_header(subject);
      int n = static_cast<int>(rng.range(3, 6));
      for (int i = 0; i < n; ++i)
        t += mc_block(reasoning_item(rng, u, subject, static_cast<int>(rng.uniform(4))), true) + "\n\n";
    } else {
      int n = static_cast<int>(rng.range(2, 4));
      for (int i = 0; i < n; ++i) {
        McItem it = reasoning_item(rng, u, subject, 0);
        t += "Puzzle: " + it.question + "\nSolution: " + reasoning_explanation(it) + "\n\n";
      }
    }
  } else if (kind == "dialogue") {
    int n = static_cast<int>(rng.range(1, 3));
    for (int i = 0; i < n; ++i) {
      auto [p, r] = dialogue_turn(rng, ctx);
      t += render_chat_turn(p, r);
    }
  } else {
    throw std::logic_error("world: unknown corpus kind " + kind);
  }
  return {t, kind};
}

}  // namespace atax::world::detail
