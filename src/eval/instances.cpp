// Instances: a task's documents -> prompts (few-shot examples, chat template) -> the requests of its
// output type (loglikelihood per choice, generate_until, code programs), added to the pools.
#include <algorithm>
#include <mutex>
#include <set>

#include "eval/internal.h"

namespace atax::eval_detail {

std::string where_of(const TaskSpec& t) { return t.file.string() + " (task " + t.name + ")"; }

std::string field_string(const json& fields, const std::string& key) {
  if (!fields.contains(key)) return {};
  const json& v = fields[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

namespace {

struct FewshotPool {
  std::vector<Doc> docs;
  bool is_eval_split = false;
  std::map<std::string, std::vector<size_t>> by_match;  // match value -> indices
};

std::vector<const Doc*> pick_fewshot(const TaskSpec& t, const FewshotPool& pool, const Doc& doc, int k, uint64_t seed) {
  if (k <= 0) return {};
  std::string match = t.fewshot_match.empty() ? "" : field_string(doc.fields, t.fewshot_match);
  auto it = pool.by_match.find(match);
  std::vector<size_t> cand;
  if (it != pool.by_match.end())
    for (size_t i : it->second)
      if (!(pool.is_eval_split && pool.docs[i].id == doc.id)) cand.push_back(i);
  if (static_cast<int>(cand.size()) < k)
    throw Error("only " + std::to_string(cand.size()) + " few-shot examples" +
                    (t.fewshot_match.empty() ? "" : " with " + t.fewshot_match + " = \"" + match + "\"") + " for doc " +
                    doc.id + ", " + std::to_string(k) + " requested",
                where_of(t), "lower --num-fewshot or add examples to the " + t.fewshot_split + " split");
  if (t.fewshot_sampler == "random") {
    Rng rng = Rng(seed).fork(t.name + "/" + doc.id);
    rng.shuffle(cand);
  }
  std::vector<const Doc*> out;
  for (int i = 0; i < k; ++i) out.push_back(&pool.docs[cand[static_cast<size_t>(i)]]);
  return out;
}

// The prompt as lm-evaluation-harness builds it (Task.fewshot_context). Without a chat template:
// description, then the shots ("question" + target delimiter + "answer"), then the question,
// joined by the few-shot delimiter. With one: a system turn holding --system-instruction and the
// task's description after it (joined by the few-shot delimiter; either alone when the other is
// empty), then either every shot as a user/assistant pair (--fewshot-as-multiturn) or the shots
// and the question as one user turn; the model's template renders it with the assistant's turn
// open. A template that rejects the system role (Gemma's raises) renders without that turn, as
// lm-eval's HFLM.apply_chat_template does, and the log says so once per task.
std::string build_prompt(const TaskSpec& t, const Doc& doc, const std::vector<const Doc*>& shots, bool chat,
                         const EvalOptions& opt, LanguageModel& model) {
  const std::string where = where_of(t);
  const std::string description = render_template(t.description, doc.fields, where);
  const std::string& tmpl = chat && !t.chat_doc_to_text.empty() ? t.chat_doc_to_text : t.doc_to_text;
  const std::string question = render_template(tmpl, doc.fields, where);
  std::vector<std::pair<std::string, std::string>> qa;
  for (const Doc* ex : shots)
    qa.emplace_back(render_template(t.doc_to_text, ex->fields, where), render_template(t.doc_to_target, ex->fields, where));
  if (!chat) {
    std::vector<std::string> parts;
    for (const auto& [q, a] : qa) parts.push_back(q + t.target_delimiter + a);
    parts.push_back(question);
    return description + join(parts, t.fewshot_delimiter);
  }
  std::vector<ChatMessage> messages;
  std::string system = opt.system_instruction;
  if (!description.empty()) system = system.empty() ? description : system + t.fewshot_delimiter + description;
  if (!system.empty()) messages.push_back({"system", system});
  if (opt.fewshot_as_multiturn) {
    for (const auto& [q, a] : qa) {
      messages.push_back({"user", q});
      messages.push_back({"assistant", a});
    }
    messages.push_back({"user", question});
  } else {
    std::vector<std::string> parts;
    for (const auto& [q, a] : qa) parts.push_back(q + t.target_delimiter + a);
    parts.push_back(question);
    messages.push_back({"user", join(parts, t.fewshot_delimiter)});
  }
  try {
    return model.apply_chat_template(messages);
  } catch (const Error& e) {
    if (system.empty()) throw;
    static std::mutex mutex;
    static std::set<std::string> warned;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (warned.insert(t.name).second)
        log_info(t.name + ": the chat template rejects the system turn (" + e.message() +
                 "); prompts are rendered without it, as lm-evaluation-harness does");
    }
    messages.erase(messages.begin());
    return model.apply_chat_template(messages);
  }
}

ChoiceSet build_choice_set(const TaskSpec& t, const ChoiceSetSpec& cs, const Doc& doc, const std::string& delim) {
  const std::string where = where_of(t);
  std::vector<std::string> choices;
  if (cs.choices.is_string()) {
    std::string field = cs.choices.get<std::string>();
    if (!doc.fields.contains(field) || !doc.fields[field].is_array())
      throw Error("choices field \"" + field + "\" is not an array in doc " + doc.id, where);
    for (const auto& c : doc.fields[field]) choices.push_back(c.is_string() ? c.get<std::string>() : c.dump());
  } else {
    for (const auto& c : cs.choices) choices.push_back(render_template(c.get<std::string>(), doc.fields, where));
  }
  if (choices.empty()) throw Error("doc " + doc.id + " has no choices", where);
  ChoiceSet out;
  for (const auto& c : choices) out.continuations.push_back(delim + c);
  out.labels.assign(choices.size(), 0);
  if (!cs.gold.empty()) {
    if (!doc.fields.contains(cs.gold) || !doc.fields[cs.gold].is_number_integer())
      throw Error("gold field \"" + cs.gold + "\" is not an integer in doc " + doc.id, where);
    int g = doc.fields[cs.gold];
    if (g < 0 || g >= static_cast<int>(choices.size()))
      throw Error("gold index " + std::to_string(g) + " out of range in doc " + doc.id, where);
    out.labels[static_cast<size_t>(g)] = 1;
  } else {
    if (!doc.fields.contains(cs.labels) || !doc.fields[cs.labels].is_array() ||
        doc.fields[cs.labels].size() != choices.size())
      throw Error("labels field \"" + cs.labels + "\" does not match the choices in doc " + doc.id, where);
    for (size_t i = 0; i < choices.size(); ++i) out.labels[i] = doc.fields[cs.labels][i].get<int>() ? 1 : 0;
  }
  return out;
}

// The documents this run evaluates: --limit (per breakdown group), then this shard's share.
void select_docs(const TaskSpec& t, const EvalOptions& opt, TaskRun& run) {
  std::map<std::string, int64_t> taken;
  for (const auto& d : run.data.docs) {
    std::string g = t.breakdown_by.empty() ? "" : field_string(d.fields, t.breakdown_by);
    if (opt.limit > 0 && taken[g] >= opt.limit) continue;
    ++taken[g];
    run.docs.push_back(&d);
  }
  if (opt.shard_count > 1) {
    auto [begin, end] = shard_range(static_cast<int64_t>(run.docs.size()), opt.shard_index, opt.shard_count);
    run.docs = std::vector<const Doc*>(run.docs.begin() + begin, run.docs.begin() + end);
  }
}

// The few-shot pool (always the full one, whatever the shard) and where it came from.
FewshotPool load_fewshot_pool(const TaskSpec& t, const fs::path& data_path, const EvalOptions& opt, TaskRun& run,
                              std::string& source) {
  run.num_fewshot = t.num_fewshot;
  FewshotPool pool;
  if (opt.num_fewshot >= 0) {
    if (t.fewshot_split.empty() && !t.fewshot_fallback_to_eval_split && opt.num_fewshot > 0) {
      log_info(t.name + ": no few-shot split; --num-fewshot ignored (0-shot)");
      run.num_fewshot = 0;
    } else {
      run.num_fewshot = opt.num_fewshot;
    }
  }
  if (run.num_fewshot <= 0) return pool;
  bool loaded = false;
  if (!t.fewshot_split.empty()) {
    try {
      Dataset fs_data = load_dataset(t.format, data_path, t.fewshot_split, t.subsets, t.dataset_options);
      pool.docs = std::move(fs_data.docs);
      for (auto& f : fs_data.files) run.data.files.push_back(f);
      source = t.fewshot_split;
      loaded = true;
    } catch (const Error& e) {
      if (!t.fewshot_fallback_to_eval_split) throw;
      log_info(t.name + ": few-shot split \"" + t.fewshot_split + "\" not loadable (" + e.message() +
               "); sampling few-shot examples from the \"" + t.split + "\" split, never the item itself");
    }
  }
  if (!loaded) {
    if (!t.fewshot_fallback_to_eval_split)
      throw Error("--num-fewshot " + std::to_string(run.num_fewshot) + " but the task has no few-shot split", where_of(t),
                  "use --num-fewshot 0");
    pool.docs = run.data.docs;
    pool.is_eval_split = true;
    source = t.split + " (fallback: " + (t.fewshot_split.empty() ? "no few-shot split" : t.fewshot_split + " missing") + ")";
  }
  for (size_t i = 0; i < pool.docs.size(); ++i)
    pool.by_match[t.fewshot_match.empty() ? "" : field_string(pool.docs[i].fields, t.fewshot_match)].push_back(i);
  return pool;
}

}  // namespace

void plan_task(const TaskSpec& t, LanguageModel& model, const EvalOptions& opt, Pools& pools, TaskRun& run) {
  run.spec = &t;
  fs::path data_path = resolve_data_path(t.path, opt.data_dir);
  run.data = load_dataset(t.format, data_path, t.split, t.subsets, t.dataset_options);
  run.n_original = static_cast<int64_t>(run.data.docs.size());
  if (run.data.docs.empty()) throw Error("the dataset has no documents", data_path.string(), "check the task's dataset");
  run.chat = t.chat.value_or(opt.chat);
  select_docs(t, opt, run);
  std::string fewshot_source;
  FewshotPool pool = load_fewshot_pool(t, data_path, opt, run, fewshot_source);
  run.resolved = {{"data_path", data_path.string()},
                  {"num_fewshot", run.num_fewshot},
                  {"fewshot_source", fewshot_source},
                  {"chat", run.chat}};
  if (run.chat) {
    run.resolved["system_instruction"] = opt.system_instruction;
    run.resolved["fewshot_as_multiturn"] = opt.fewshot_as_multiturn;
  }
  // What made the prompts, beside the prompt text itself: part of every request's cache key.
  const json scope = {{"task", t.name},
                      {"version", t.version},
                      {"num_fewshot", run.num_fewshot},
                      {"chat", run.chat},
                      {"system_instruction", run.chat ? opt.system_instruction : ""},
                      {"fewshot_as_multiturn", run.chat && opt.fewshot_as_multiturn}};
  for (const Doc* d : run.docs) {
    DocPlan plan;
    plan.doc = d;
    auto shots = pick_fewshot(t, pool, *d, run.num_fewshot, opt.seed);
    plan.prompt = build_prompt(t, *d, shots, run.chat, opt, model);
    plan.target = t.doc_to_target.empty() ? "" : render_template(t.doc_to_target, d->fields, where_of(t));
    plan.breakdown = t.breakdown_by.empty() ? "" : field_string(d->fields, t.breakdown_by);
    if (t.output_type == OutputType::kMultipleChoice) {
      // Under a chat template the continuation follows the open assistant turn directly.
      std::string delim = run.chat ? "" : t.target_delimiter;
      for (const auto& [name, spec] : t.choice_sets) {
        ChoiceSet cs = build_choice_set(t, spec, *d, delim);
        for (const auto& c : cs.continuations)
          cs.req.push_back(pools.ll.add({plan.prompt, c}, {{"context", plan.prompt}, {"continuation", c}, {"scope", scope}}));
        // PMI (acc_uncond): the same continuations after the unconditional context alone, as
        // ordinary requests (deduplicated and cached on their own context like any other).
        if (auto uncond = unconditional_context_for(t, name)) {
          cs.uncond_context = *uncond;
          for (const auto& c : cs.continuations)
            cs.req_uncond.push_back(
                pools.ll.add({*uncond, c}, {{"context", *uncond}, {"continuation", c}, {"scope", scope}}));
        }
        plan.choice_sets[name] = std::move(cs);
      }
    } else {
      auto add_gen = [&](const GenerateRequest& g) {
        return pools.gen.add(g, {{"context", g.context},         {"until", g.until}, {"max_new_tokens", g.max_new_tokens},
                                 {"temperature", g.temperature}, {"top_p", g.top_p}, {"seed", g.seed},
                                 {"scope", scope}});
      };
      GenerateRequest g;
      g.context = plan.prompt;
      g.until = run.chat && t.chat_until ? *t.chat_until : t.until;
      g.max_new_tokens = t.max_new_tokens;
      g.temperature = t.temperature;
      g.top_p = 1.0;
      g.seed = t.temperature > 0 ? seed_for(opt.seed, t.name + "/" + d->id) : 0;
      plan.gen = add_gen(g);
      if (t.output_type == OutputType::kCodeExecution) {
        for (int s = 0; s < t.n_samples; ++s) {
          GenerateRequest gs = g;
          gs.temperature = t.sample_temperature;
          gs.top_p = t.sample_top_p;
          gs.seed = seed_for(opt.seed, t.name + "/" + d->id + "/" + std::to_string(s));
          plan.gen_samples.push_back(add_gen(gs));
        }
      }
    }
    run.plans.push_back(std::move(plan));
  }
}

void plan_code(TaskRun& run, const EvalOptions& opt, Pools& pools) {
  if (run.spec->output_type != OutputType::kCodeExecution) return;
  SandboxLimits limits = opt.sandbox;
  limits.timeout_s = run.spec->timeout_s;
  auto add = [&](const std::string& program) {
    return pools.code.add({program, limits}, {{"program", program},
                                              {"timeout_s", limits.timeout_s},
                                              {"memory_mb", limits.memory_mb},
                                              {"cpu_s", limits.cpu_s},
                                              {"file_mb", limits.file_mb},
                                              {"nproc", limits.nproc}});
  };
  for (auto& plan : run.plans) {
    plan.code.push_back(add(humaneval_program(plan.doc->fields, pools.gen.results[plan.gen])));
    for (size_t g : plan.gen_samples) plan.code.push_back(add(humaneval_program(plan.doc->fields, pools.gen.results[g])));
  }
}

// A chat answer in a fenced block, or one that restates the whole function, replaces the body
// rather than continuing it.
std::string humaneval_program(const json& f, const std::string& completion) {
  std::string prompt = f.value("prompt", ""), entry = f.value("entry_point", ""), test = f.value("test", "");
  std::string code = completion;
  bool fenced = false;
  auto fence = completion.find("```");
  if (fence != std::string::npos) {
    auto nl = completion.find('\n', fence);
    if (nl != std::string::npos) {
      auto close = completion.find("```", nl + 1);
      code = completion.substr(nl + 1, close == std::string::npos ? std::string::npos : close - nl - 1);
      fenced = true;
    }
  }
  std::string def = "def " + entry + "(";
  bool full = starts_with(trim(code), def) || code.find("\n" + def) != std::string::npos ||
              (fenced && code.find(def) != std::string::npos);
  std::string body = full ? prompt + "\n" + code : prompt + code;
  return body + "\n" + test + "\n" + "check(" + entry + ")\n";
}

}  // namespace atax::eval_detail
