// evaluate(): tasks -> documents -> prompts -> distinct requests -> (cache | model, batched and
// length-sorted) -> responses -> filters / sandbox / refusal classifier -> per-item scores ->
// aggregates with standard errors.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "eval/eval.h"
#include "eval/internal.h"

namespace atax {

namespace eval_detail {

double nanmean(const std::vector<double>& x) {
  double s = 0;
  int64_t n = 0;
  for (double v : x)
    if (!std::isnan(v)) {
      s += v;
      ++n;
    }
  return n ? s / static_cast<double>(n) : std::nan("");
}

uint64_t seed_for(uint64_t seed, const std::string& salt) { return Rng(seed).fork(salt).next_u64(); }

std::pair<size_t, size_t> shard_bounds(size_t n, int index, int count) {
  const size_t k = static_cast<size_t>(count), i = static_cast<size_t>(index);
  const size_t base = n / k, extra = n % k;
  const size_t begin = i * base + std::min(i, extra);
  return {begin, begin + base + (i < extra ? 1 : 0)};
}

}  // namespace eval_detail

namespace {

using eval_detail::nanmean;
using eval_detail::seed_for;

constexpr size_t kNone = static_cast<size_t>(-1);

// ---- request pools: identical requests from different items / tasks are sent once -------------

struct LlPool {
  std::vector<LoglikelihoodRequest> reqs;
  std::vector<json> keys;  // request JSON (cache key material)
  std::vector<LoglikelihoodResult> results;
  std::unordered_map<std::string, size_t> index;
  size_t add(const std::string& context, const std::string& continuation) {
    json j = {{"context", context}, {"continuation", continuation}};
    std::string k = j.dump();
    auto it = index.find(k);
    if (it != index.end()) return it->second;
    reqs.push_back({context, continuation});
    keys.push_back(std::move(j));
    index.emplace(std::move(k), reqs.size() - 1);
    return reqs.size() - 1;
  }
};

struct GenPool {
  std::vector<GenerateRequest> reqs;
  std::vector<json> keys;
  std::vector<std::string> results;
  std::unordered_map<std::string, size_t> index;
  size_t add(const GenerateRequest& r) {
    json j = {{"context", r.context},         {"until", r.until}, {"max_new_tokens", r.max_new_tokens},
              {"temperature", r.temperature}, {"top_p", r.top_p}, {"seed", r.seed}};
    std::string k = j.dump();
    auto it = index.find(k);
    if (it != index.end()) return it->second;
    reqs.push_back(r);
    keys.push_back(std::move(j));
    index.emplace(std::move(k), reqs.size() - 1);
    return reqs.size() - 1;
  }
};

struct CodePool {
  std::vector<std::string> programs;
  std::vector<SandboxLimits> limits;
  std::vector<json> keys;
  std::vector<json> results;  // {passed, timed_out, exit_code, reason, stderr}
  std::unordered_map<std::string, size_t> index;
  size_t add(const std::string& program, const SandboxLimits& l) {
    json j = {{"program", program},     {"timeout_s", l.timeout_s}, {"memory_mb", l.memory_mb},
              {"cpu_s", l.cpu_s},       {"file_mb", l.file_mb},     {"nproc", l.nproc}};
    std::string k = j.dump();
    auto it = index.find(k);
    if (it != index.end()) return it->second;
    programs.push_back(program);
    limits.push_back(l);
    keys.push_back(std::move(j));
    index.emplace(std::move(k), programs.size() - 1);
    return programs.size() - 1;
  }
};

// ---- per-task state ----------------------------------------------------------------------------

struct ChoiceSet {
  std::vector<std::string> continuations;
  std::vector<int> labels;  // 1 = a gold answer
  std::vector<size_t> req;  // into LlPool
};

struct DocPlan {
  const Doc* doc = nullptr;
  std::string prompt;  // the context sent to the model
  std::string target;  // rendered doc_to_target
  std::string breakdown;
  std::map<std::string, ChoiceSet> choice_sets;
  size_t gen = kNone;                // greedy generation
  std::vector<size_t> gen_samples;   // sampled generations (pass@k)
  std::vector<size_t> code;          // code pool entries: [greedy, samples...]
};

struct TaskRun {
  const TaskSpec* spec = nullptr;
  Dataset data;
  int64_t n_original = 0;
  std::vector<const Doc*> docs;  // after --limit
  std::vector<DocPlan> plans;
  bool chat = false;
  int num_fewshot = 0;
  json resolved = json::object();
};

// ---- prompts -----------------------------------------------------------------------------------

std::string where_of(const TaskSpec& t) { return t.file.string() + " (task " + t.name + ")"; }

std::string field_string(const json& fields, const std::string& key) {
  if (!fields.contains(key)) return {};
  const json& v = fields[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

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

std::string build_prompt(const TaskSpec& t, const Doc& doc, const std::vector<const Doc*>& shots, bool chat,
                         LanguageModel& model) {
  const std::string where = where_of(t);
  std::string text = render_template(t.description, doc.fields, where);
  std::vector<std::string> parts;
  for (const Doc* ex : shots)
    parts.push_back(render_template(t.doc_to_text, ex->fields, where) + t.target_delimiter +
                    render_template(t.doc_to_target, ex->fields, where));
  const std::string& tmpl = chat && !t.chat_doc_to_text.empty() ? t.chat_doc_to_text : t.doc_to_text;
  parts.push_back(render_template(tmpl, doc.fields, where));
  text += join(parts, t.fewshot_delimiter);
  if (chat) return model.apply_chat_template({ChatMessage{"user", text}});
  return text;
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

// HumanEval program: prompt + completion + test + check(entry_point). A chat answer in a fenced
// block, or one that restates the whole function, replaces the body rather than continuing it.
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

std::string apply_filter(const FilterSpec& f, std::string s) {
  for (const auto& step : f.steps) {
    std::string fn = step.value("function", "");
    if (fn == "regex") {
      s = regex_extract(s, step["pattern"].get<std::string>(), step.value("group_select", 0),
                        step.value("fallback", std::string("[invalid]")));
    } else if (fn == "strip") {
      s = trim(s);
    } else if (fn == "lowercase") {
      s = to_lower(s);
    } else if (fn == "uppercase") {
      for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    } else if (fn == "remove_whitespace") {
      size_t i = s.find_first_not_of(" \t\n\r");
      s = i == std::string::npos ? std::string() : s.substr(i);
    }  // take_first: one response per item already
  }
  return s;
}

// ---- sending requests --------------------------------------------------------------------------

struct Counters {
  int64_t sent = 0, cached = 0;
};

json ll_to_json(const LoglikelihoodResult& r) {
  return {{"logprob", r.logprob}, {"is_greedy", r.is_greedy}, {"n_tokens", r.n_tokens}};
}

std::optional<LoglikelihoodResult> ll_from_json(const json& j) {
  if (!j.is_object() || !j.contains("logprob") || !j["logprob"].is_number()) return std::nullopt;
  LoglikelihoodResult r;
  r.logprob = j["logprob"].get<double>();
  r.is_greedy = j.value("is_greedy", false);
  r.n_tokens = j.value("n_tokens", int64_t{0});
  return r;
}

void run_loglikelihood(LanguageModel& model, LlPool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt) {
  const size_t n = pool.reqs.size();
  pool.results.assign(n, {});
  if (n == 0) return;
  const std::string mh = model.content_hash();
  std::vector<std::string> ckeys(n);
  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i) {
    if (cache) {
      ckeys[i] = RequestCache::make_key(mh, "loglikelihood", pool.keys[i]);
      if (auto hit = cache->get(ckeys[i])) {
        if (auto r = ll_from_json(*hit)) {
          pool.results[i] = *r;
          ++cnt.cached;
          continue;
        }
      }
    }
    todo.push_back(i);
  }
  if (todo.empty()) return;
  // Longest first (lm-eval): the slowest batches run first, so memory errors and the ETA show early.
  std::unordered_map<std::string, int64_t> ctx_len;
  std::vector<int64_t> len(n, 0);
  for (size_t i : todo) {
    const auto& r = pool.reqs[i];
    auto it = ctx_len.find(r.context);
    if (it == ctx_len.end()) it = ctx_len.emplace(r.context, model.count_tokens(r.context)).first;
    len[i] = it->second + model.count_tokens(r.continuation);
  }
  std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) {
    if (len[a] != len[b]) return len[a] > len[b];
    return pool.reqs[a].context < pool.reqs[b].context;  // same context side by side
  });
  const size_t bs = static_cast<size_t>(std::max<int64_t>(1, opt.batch_size));
  std::optional<Progress> bar;
  if (opt.progress) bar.emplace("loglikelihood", static_cast<int64_t>(todo.size()), "req");
  for (size_t s = 0; s < todo.size(); s += bs) {
    size_t e = std::min(todo.size(), s + bs);
    std::vector<LoglikelihoodRequest> batch;
    for (size_t k = s; k < e; ++k) batch.push_back(pool.reqs[todo[k]]);
    auto res = model.loglikelihood(batch);
    if (res.size() != batch.size())
      throw Error("the model returned " + std::to_string(res.size()) + " log-likelihoods for " +
                  std::to_string(batch.size()) + " requests");
    std::vector<RequestCache::Entry> entries;
    for (size_t k = 0; k < res.size(); ++k) {
      if (std::isnan(res[k].logprob)) throw Error("the model returned a NaN log-likelihood", {}, "check the model's weights");
      size_t i = todo[s + k];
      pool.results[i] = res[k];
      if (cache) entries.push_back({ckeys[i], mh, "loglikelihood", pool.keys[i], ll_to_json(res[k])});
    }
    if (cache) cache->put(entries);
    cnt.sent += static_cast<int64_t>(batch.size());
    if (bar) bar->advance(static_cast<int64_t>(batch.size()));
  }
  if (bar) bar->finish();
}

void run_generation(LanguageModel& model, GenPool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt) {
  const size_t n = pool.reqs.size();
  pool.results.assign(n, {});
  if (n == 0) return;
  const std::string mh = model.content_hash();
  std::vector<std::string> ckeys(n);
  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i) {
    if (cache) {
      ckeys[i] = RequestCache::make_key(mh, "generate_until", pool.keys[i]);
      if (auto hit = cache->get(ckeys[i]); hit && hit->is_string()) {
        pool.results[i] = hit->get<std::string>();
        ++cnt.cached;
        continue;
      }
    }
    todo.push_back(i);
  }
  if (todo.empty()) return;
  // Group identical generation settings, then longest context first.
  std::vector<std::string> settings(n);
  std::vector<int64_t> len(n, 0);
  for (size_t i : todo) {
    json s = pool.keys[i];
    s.erase("context");
    s.erase("seed");
    settings[i] = s.dump();
    len[i] = model.count_tokens(pool.reqs[i].context);
  }
  std::stable_sort(todo.begin(), todo.end(), [&](size_t a, size_t b) {
    if (settings[a] != settings[b]) return settings[a] < settings[b];
    return len[a] > len[b];
  });
  const size_t bs = static_cast<size_t>(std::max<int64_t>(1, opt.batch_size));
  std::optional<Progress> bar;
  if (opt.progress) bar.emplace("generate_until", static_cast<int64_t>(todo.size()), "req");
  for (size_t s = 0; s < todo.size();) {
    size_t e = s + 1;
    while (e < todo.size() && e - s < bs && settings[todo[e]] == settings[todo[s]]) ++e;
    std::vector<GenerateRequest> batch;
    for (size_t k = s; k < e; ++k) batch.push_back(pool.reqs[todo[k]]);
    auto res = model.generate_until(batch);
    if (res.size() != batch.size())
      throw Error("the model returned " + std::to_string(res.size()) + " generations for " +
                  std::to_string(batch.size()) + " requests");
    std::vector<RequestCache::Entry> entries;
    for (size_t k = 0; k < res.size(); ++k) {
      size_t i = todo[s + k];
      pool.results[i] = res[k];
      if (cache) entries.push_back({ckeys[i], mh, "generate_until", pool.keys[i], json(res[k])});
    }
    if (cache) cache->put(entries);
    cnt.sent += static_cast<int64_t>(batch.size());
    if (bar) bar->advance(static_cast<int64_t>(batch.size()));
    s = e;
  }
  if (bar) bar->finish();
}

json sandbox_to_json(const SandboxResult& r) {
  auto cut = [](const std::string& s) { return s.size() > 2000 ? s.substr(0, 2000) + "..." : s; };
  return {{"passed", r.passed}, {"timed_out", r.timed_out}, {"exit_code", r.exit_code},
          {"reason", r.reason}, {"stderr", cut(r.stderr_text)}};
}

void run_code(CodePool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt) {
  const size_t n = pool.programs.size();
  pool.results.assign(n, json());
  if (n == 0) return;
  // Results depend on the program and the limits only, not on the model.
  const std::string mh = "python-sandbox";
  std::vector<std::string> ckeys(n);
  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i) {
    if (cache) {
      ckeys[i] = RequestCache::make_key(mh, "code_execution", pool.keys[i]);
      if (auto hit = cache->get(ckeys[i]); hit && hit->is_object() && hit->contains("passed")) {
        pool.results[i] = *hit;
        ++cnt.cached;
        continue;
      }
    }
    todo.push_back(i);
  }
  if (todo.empty()) return;
  auto runner = opt.code_runner ? opt.code_runner
                                : std::function<SandboxResult(const std::string&, const SandboxLimits&)>(
                                      [](const std::string& p, const SandboxLimits& l) { return run_python_sandboxed(p, l); });
  int workers = opt.code_workers > 0 ? opt.code_workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = std::min<int>(workers, static_cast<int>(todo.size()));
  std::optional<Progress> bar;
  if (opt.progress) bar.emplace("code_execution", static_cast<int64_t>(todo.size()), "prog");
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::vector<RequestCache::Entry> pending;
  std::exception_ptr failure;
  auto flush = [&] {  // under mu
    if (cache && !pending.empty()) cache->put(pending);
    pending.clear();
  };
  auto work = [&] {
    while (true) {
      size_t k = next.fetch_add(1);
      if (k >= todo.size()) return;
      size_t i = todo[k];
      json r;
      try {
        r = sandbox_to_json(runner(pool.programs[i], pool.limits[i]));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = std::current_exception();
        next = todo.size();
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      pool.results[i] = r;
      if (cache) pending.push_back({ckeys[i], mh, "code_execution", pool.keys[i], r});
      if (pending.size() >= 16) flush();
      ++cnt.sent;
      if (bar) bar->advance(1);
    }
  };
  std::vector<std::thread> threads;
  for (int w = 0; w < workers; ++w) threads.emplace_back(work);
  for (auto& t : threads) t.join();
  flush();
  if (failure) std::rethrow_exception(failure);
  if (bar) bar->finish();
}

// ---- scoring -----------------------------------------------------------------------------------

struct DocOutcome {
  std::map<std::string, std::vector<double>> logprobs;  // per choice set
  std::map<std::string, McPrediction> preds;
  std::string response;
  std::map<std::string, std::string> filtered;  // per filter
  int code_n = 0, code_c = 0;
  bool greedy_passed = false;
  RefusalVerdict refusal{false, {}};
};

bool doc_matches(const json& fields, const std::map<std::string, std::string>& where) {
  for (const auto& [k, v] : where)
    if (field_string(fields, k) != v) return false;
  return true;
}

std::optional<double> item_value(const TaskSpec& t, const MetricSpec& m, const DocPlan& plan, const DocOutcome& out) {
  const json& f = plan.doc->fields;
  const std::string& mk = m.metric;
  if (t.output_type == OutputType::kMultipleChoice) {
    const ChoiceSet& cs = plan.choice_sets.at(m.choice_set);
    const McPrediction& p = out.preds.at(m.choice_set);
    if (mk == "acc") return cs.labels[static_cast<size_t>(p.pred)] ? 1.0 : 0.0;
    if (mk == "acc_norm") return cs.labels[static_cast<size_t>(p.pred_norm)] ? 1.0 : 0.0;
    if (mk == "mc2") return mc2_score(out.logprobs.at(m.choice_set), cs.labels);
    if (mk == "bbq_bias_ambig") {
      if (field_string(f, "context_condition") != "ambig") return std::nullopt;
      return bbq_bias_item(f, p.pred, true);
    }
    if (mk == "bbq_bias_disambig") {
      if (field_string(f, "context_condition") != "disambig") return std::nullopt;
      return bbq_bias_item(f, p.pred, false);
    }
  } else if (t.output_type == OutputType::kGenerateUntil) {
    const std::string& resp = out.filtered.at(m.filter);
    if (mk == "exact_match") {
      std::string ref = m.options.contains("reference")
                            ? render_template(m.options["reference"].get<std::string>(), f, where_of(t))
                            : plan.target;
      return normalize_for_match(resp, m.options) == normalize_for_match(ref, m.options) ? 1.0 : 0.0;
    }
    if (mk == "constraints_met") return constraints_met(resp, f.value("constraints", json::array()));
  } else if (t.output_type == OutputType::kCodeExecution) {
    if (mk == "pass@1") return out.greedy_passed ? 1.0 : 0.0;
    if (mk == "pass@k") return pass_at_k(out.code_n, out.code_c, m.k);
  } else {
    if (mk == "refusal_rate") return out.refusal.refused ? 1.0 : 0.0;
    if (mk == "compliance_rate") return out.refusal.refused ? 0.0 : 1.0;
  }
  return std::nullopt;
}

// A metric over a subset of docs: (doc id, value) for items it applies to; NaN marks items in the
// subset where it is undefined (they take part in the bootstrap, not in the mean).
struct Collected {
  std::vector<std::string> ids;
  std::vector<double> scores;
  std::vector<double> with_undefined;
  std::vector<int64_t> undefined_at;  // positions of the NaNs in with_undefined
};

std::vector<MetricResult> aggregate(const TaskRun& run, const std::vector<size_t>& doc_idx,
                                    const std::vector<std::vector<std::optional<double>>>& values,  // [metric][doc]
                                    const std::string& task_name, const EvalOptions& opt, json& notes) {
  const TaskSpec& t = *run.spec;
  std::vector<MetricResult> out;
  for (size_t mi = 0; mi < t.metrics.size(); ++mi) {
    const MetricSpec& m = t.metrics[mi];
    // Sub-metrics: one per group_by value (in order of first appearance), or just the metric.
    std::vector<std::string> groups;
    std::map<std::string, Collected> by_group;
    for (size_t di : doc_idx) {
      const DocPlan& plan = run.plans[di];
      if (!doc_matches(plan.doc->fields, m.where)) continue;
      std::string g = m.group_by.empty() ? std::string() : field_string(plan.doc->fields, m.group_by);
      if (!by_group.count(g)) groups.push_back(g);
      Collected& c = by_group[g];
      const auto& v = values[mi][di];
      bool applies = v.has_value();
      // Items of the metric's natural subset whose value is undefined (e.g. an "unknown" answer for
      // the disambiguated bias score) still count as draws for the bootstrap.
      bool in_subset = applies || (m.metric == "bbq_bias_disambig" &&
                                   field_string(plan.doc->fields, "context_condition") == "disambig" &&
                                   plan.doc->fields.value("biased_index", -1) >= 0);
      if (!in_subset) continue;
      if (!applies) c.undefined_at.push_back(static_cast<int64_t>(c.with_undefined.size()));
      c.with_undefined.push_back(applies ? *v : std::nan(""));
      if (applies) {
        c.ids.push_back(plan.doc->id);
        c.scores.push_back(*v);
      }
    }
    for (const auto& g : groups) {
      Collected& c = by_group[g];
      MetricResult r;
      r.name = m.group_by.empty() ? m.name : m.name + "/" + g;
      r.filter = m.filter;
      r.higher_is_better = m.higher_is_better;
      r.stderr_method = m.stderr_method;
      if (c.scores.empty()) {
        notes.push_back(r.key() + ": no items, not reported");
        // A shard still hands on the items without a value: merge_shards needs them in the
        // bootstrap's draw list (it drops the metric again if no shard has an item).
        if (opt.shard_count > 1 && !c.undefined_at.empty()) {
          r.value = r.stderr_ = std::nan("");
          r.undefined_at = std::move(c.undefined_at);
          out.push_back(std::move(r));
        }
        continue;
      }
      MeanStderr ms = mean_stderr(c.scores);
      r.value = ms.mean;
      if (m.stderr_method == "bootstrap") {
        r.stderr_ = bootstrap_stderr(c.with_undefined, nanmean, opt.bootstrap_iters,
                                     seed_for(opt.seed, task_name + "|" + r.key()));
      } else {
        r.stderr_ = ms.stderr_;
      }
      r.doc_ids = std::move(c.ids);
      r.scores = std::move(c.scores);
      r.undefined_at = std::move(c.undefined_at);
      out.push_back(std::move(r));
    }
  }
  return out;
}

}  // namespace

const MetricResult* TaskResult::find(const std::string& name, const std::string& filter) const {
  for (const auto& m : metrics)
    if (m.name == name && m.filter == filter) return &m;
  return nullptr;
}

const TaskResult* EvalResults::find(const std::string& task) const {
  for (const auto& t : tasks)
    if (t.task == task) return &t;
  return nullptr;
}

EvalResults evaluate(LanguageModel& model, const std::vector<TaskSpec>& tasks, const EvalOptions& opt) {
  double t0 = now_seconds();
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    throw Error("evaluation shard " + std::to_string(opt.shard_index) + " of " + std::to_string(opt.shard_count) +
                    " does not exist",
                {}, "shard_index must be in [0, shard_count)");
  std::unique_ptr<RequestCache> cache;
  if (!opt.cache_path.empty()) cache = std::make_unique<RequestCache>(opt.cache_path);
  LlPool ll;
  GenPool gen;
  CodePool code;
  Counters cnt;
  std::vector<TaskRun> runs(tasks.size());

  // 1. Documents and requests.
  for (size_t ti = 0; ti < tasks.size(); ++ti) {
    const TaskSpec& t = tasks[ti];
    TaskRun& run = runs[ti];
    run.spec = &t;
    fs::path data_path = resolve_data_path(t.path, opt.data_dir);
    run.data = load_dataset(t.format, data_path, t.split, t.subsets, t.dataset_options);
    run.n_original = static_cast<int64_t>(run.data.docs.size());
    if (run.data.docs.empty()) throw Error("the dataset has no documents", data_path.string(), "check the task's dataset");
    run.chat = t.chat.value_or(opt.chat);
    // --limit: the first N documents (per breakdown group when the task has one).
    std::map<std::string, int64_t> taken;
    for (const auto& d : run.data.docs) {
      std::string g = t.breakdown_by.empty() ? "" : field_string(d.fields, t.breakdown_by);
      if (opt.limit > 0 && taken[g] >= opt.limit) continue;
      ++taken[g];
      run.docs.push_back(&d);
    }
    // This shard's share of the documents (the few-shot pool below stays the full one).
    if (opt.shard_count > 1) {
      auto [begin, end] = eval_detail::shard_bounds(run.docs.size(), opt.shard_index, opt.shard_count);
      run.docs = std::vector<const Doc*>(run.docs.begin() + static_cast<std::ptrdiff_t>(begin),
                                         run.docs.begin() + static_cast<std::ptrdiff_t>(end));
    }
    // Few-shot pool.
    run.num_fewshot = t.num_fewshot;
    FewshotPool pool;
    std::string fewshot_source;
    if (opt.num_fewshot >= 0) {
      if (t.fewshot_split.empty() && !t.fewshot_fallback_to_eval_split && opt.num_fewshot > 0) {
        log_info(t.name + ": no few-shot split; --num-fewshot ignored (0-shot)");
        run.num_fewshot = 0;
      } else {
        run.num_fewshot = opt.num_fewshot;
      }
    }
    if (run.num_fewshot > 0) {
      bool loaded = false;
      if (!t.fewshot_split.empty()) {
        try {
          Dataset fs_data = load_dataset(t.format, data_path, t.fewshot_split, t.subsets, t.dataset_options);
          pool.docs = std::move(fs_data.docs);
          for (auto& f : fs_data.files) run.data.files.push_back(f);
          fewshot_source = t.fewshot_split;
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
        fewshot_source = t.split + " (fallback: " + (t.fewshot_split.empty() ? "no few-shot split" : t.fewshot_split + " missing") + ")";
      }
      for (size_t i = 0; i < pool.docs.size(); ++i)
        pool.by_match[t.fewshot_match.empty() ? "" : field_string(pool.docs[i].fields, t.fewshot_match)].push_back(i);
    }
    run.resolved = {{"data_path", data_path.string()},
                    {"num_fewshot", run.num_fewshot},
                    {"fewshot_source", fewshot_source},
                    {"chat", run.chat}};
    // Prompts and requests.
    for (const Doc* d : run.docs) {
      DocPlan plan;
      plan.doc = d;
      auto shots = pick_fewshot(t, pool, *d, run.num_fewshot, opt.seed);
      plan.prompt = build_prompt(t, *d, shots, run.chat, model);
      plan.target = t.doc_to_target.empty() ? "" : render_template(t.doc_to_target, d->fields, where_of(t));
      plan.breakdown = t.breakdown_by.empty() ? "" : field_string(d->fields, t.breakdown_by);
      if (t.output_type == OutputType::kMultipleChoice) {
        std::string delim = run.chat ? "" : t.target_delimiter;
        for (const auto& [name, spec] : t.choice_sets) {
          ChoiceSet cs = build_choice_set(t, spec, *d, delim);
          for (const auto& c : cs.continuations) cs.req.push_back(ll.add(plan.prompt, c));
          plan.choice_sets[name] = std::move(cs);
        }
      } else {
        GenerateRequest g;
        g.context = plan.prompt;
        g.until = run.chat && t.chat_until ? *t.chat_until : t.until;
        g.max_new_tokens = t.max_new_tokens;
        g.temperature = t.temperature;
        g.top_p = 1.0;
        g.seed = t.temperature > 0 ? seed_for(opt.seed, t.name + "/" + d->id) : 0;
        plan.gen = gen.add(g);
        if (t.output_type == OutputType::kCodeExecution) {
          for (int s = 0; s < t.n_samples; ++s) {
            GenerateRequest gs = g;
            gs.temperature = t.sample_temperature;
            gs.top_p = t.sample_top_p;
            gs.seed = seed_for(opt.seed, t.name + "/" + d->id + "/" + std::to_string(s));
            plan.gen_samples.push_back(gen.add(gs));
          }
        }
      }
      run.plans.push_back(std::move(plan));
    }
  }

  // 2. The model answers.
  run_loglikelihood(model, ll, cache.get(), opt, cnt);
  run_generation(model, gen, cache.get(), opt, cnt);

  // 3. Code goes to the sandbox.
  for (auto& run : runs) {
    if (run.spec->output_type != OutputType::kCodeExecution) continue;
    SandboxLimits limits = opt.sandbox;
    limits.timeout_s = run.spec->timeout_s;
    for (auto& plan : run.plans) {
      plan.code.push_back(code.add(humaneval_program(plan.doc->fields, gen.results[plan.gen]), limits));
      for (size_t g : plan.gen_samples) plan.code.push_back(code.add(humaneval_program(plan.doc->fields, gen.results[g]), limits));
    }
  }
  run_code(code, cache.get(), opt, cnt);

  // 4. Scores and aggregates.
  auto classify = opt.refusal_classifier ? opt.refusal_classifier
                                         : std::function<RefusalVerdict(std::string_view)>(
                                               [](std::string_view r) { return classify_refusal(r); });
  EvalResults results;
  results.model_name = model.name();
  results.model_hash = model.content_hash();
  results.atax_version = atax_version();
  results.atax_git_hash = atax_git_hash();
  results.date = iso_datetime_utc();
  results.settings = {{"limit", opt.limit},
                      {"num_fewshot", opt.num_fewshot},
                      {"batch_size", opt.batch_size},
                      {"chat", opt.chat},
                      {"seed", opt.seed},
                      {"data_dir", opt.data_dir.string()},
                      {"cache", opt.cache_path.empty() ? json(nullptr) : json(opt.cache_path.string())},
                      {"bootstrap_iters", opt.bootstrap_iters},
                      {"sandbox", {{"memory_mb", opt.sandbox.memory_mb}, {"cpu_s", opt.sandbox.cpu_s},
                                   {"file_mb", opt.sandbox.file_mb}, {"nproc", opt.sandbox.nproc}}}};
  if (opt.shard_count > 1) results.settings["shard"] = {{"index", opt.shard_index}, {"count", opt.shard_count}};
  for (auto& run : runs) {
    const TaskSpec& t = *run.spec;
    std::vector<DocOutcome> outcomes(run.plans.size());
    for (size_t di = 0; di < run.plans.size(); ++di) {
      const DocPlan& plan = run.plans[di];
      DocOutcome& o = outcomes[di];
      if (t.output_type == OutputType::kMultipleChoice) {
        for (const auto& [name, cs] : plan.choice_sets) {
          std::vector<double> lp;
          for (size_t r : cs.req) lp.push_back(ll.results[r].logprob);
          o.preds[name] = predict_multiple_choice(lp, cs.continuations);
          o.logprobs[name] = std::move(lp);
        }
      } else {
        o.response = gen.results[plan.gen];
        for (const auto& f : t.filters) o.filtered[f.name] = apply_filter(f, o.response);
        if (t.output_type == OutputType::kCodeExecution) {
          o.greedy_passed = code.results[plan.code[0]].value("passed", false);
          o.code_n = static_cast<int>(plan.code.size()) - 1;
          for (size_t k = 1; k < plan.code.size(); ++k) o.code_c += code.results[plan.code[k]].value("passed", false) ? 1 : 0;
        } else if (t.output_type == OutputType::kRefusal) {
          o.refusal = classify(o.response);
        }
      }
    }
    // values[metric][doc]
    std::vector<std::vector<std::optional<double>>> values(t.metrics.size(),
                                                           std::vector<std::optional<double>>(run.plans.size()));
    for (size_t mi = 0; mi < t.metrics.size(); ++mi)
      for (size_t di = 0; di < run.plans.size(); ++di)
        if (doc_matches(run.plans[di].doc->fields, t.metrics[mi].where))
          values[mi][di] = item_value(t, t.metrics[mi], run.plans[di], outcomes[di]);

    json config = t.raw;
    config["group"] = t.group;  // also when the file left it to its folder
    config["resolved"] = run.resolved;
    json files = json::array();
    for (const auto& f : run.data.files) files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"records", f.records}});
    config["resolved"]["files"] = files;
    config["resolved"]["notes"] = json::array();

    std::vector<size_t> all(run.plans.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    TaskResult tr;
    tr.task = t.name;
    tr.version = t.version;
    tr.group = t.group;
    tr.n_original = run.n_original;
    tr.n_effective = static_cast<int64_t>(run.plans.size());
    tr.metrics = aggregate(run, all, values, t.name, opt, config["resolved"]["notes"]);
    if (opt.log_samples) {
      for (size_t di = 0; di < run.plans.size(); ++di) {
        const DocPlan& plan = run.plans[di];
        const DocOutcome& o = outcomes[di];
        json s = {{"doc_id", plan.doc->id}, {"doc", plan.doc->fields}, {"prompt", plan.prompt}, {"target", plan.target}};
        if (!plan.breakdown.empty()) s["subtask"] = t.name + "/" + plan.breakdown;
        if (t.output_type == OutputType::kMultipleChoice) {
          json args = json::object(), resps = json::object(), preds = json::object();
          for (const auto& [name, cs] : plan.choice_sets) {
            args[name] = cs.continuations;
            json r = json::array();
            for (size_t q : cs.req) r.push_back({ll.results[q].logprob, ll.results[q].is_greedy});
            resps[name] = r;
            preds[name] = {{"pred", o.preds.at(name).pred}, {"pred_norm", o.preds.at(name).pred_norm},
                           {"labels", cs.labels}};
          }
          s["arguments"] = args;
          s["resps"] = resps;
          s["filtered_resps"] = preds;
        } else {
          s["arguments"] = gen.keys[plan.gen];
          s["arguments"].erase("context");
          s["resps"] = json::array({o.response});
          s["filtered_resps"] = o.filtered;
          if (t.output_type == OutputType::kCodeExecution) {
            json samples = json::array();
            for (size_t g : plan.gen_samples) samples.push_back(gen.results[g]);
            s["sampled_resps"] = samples;
            json exec = json::array();
            for (size_t c : plan.code) exec.push_back(code.results[c]);
            s["execution"] = exec;
            s["n_correct"] = o.code_c;
          } else if (t.output_type == OutputType::kRefusal) {
            s["refused"] = o.refusal.refused;
            s["refusal_match"] = o.refusal.matched;
          }
        }
        for (size_t mi = 0; mi < t.metrics.size(); ++mi) {
          const auto& v = values[mi][di];
          if (!v) continue;
          const MetricSpec& m = t.metrics[mi];
          std::string name = m.group_by.empty() ? m.name : m.name + "/" + field_string(plan.doc->fields, m.group_by);
          s[name + "," + m.filter] = *v;
        }
        tr.samples.push_back(std::move(s));
      }
    }
    tr.config = config;
    results.tasks.push_back(std::move(tr));

    if (!t.breakdown_by.empty()) {
      std::vector<std::string> order;
      std::map<std::string, std::vector<size_t>> groups;
      for (size_t di = 0; di < run.plans.size(); ++di) {
        const std::string& g = run.plans[di].breakdown;
        if (!groups.count(g)) order.push_back(g);
        groups[g].push_back(di);
      }
      for (const auto& g : order) {
        TaskResult sub;
        sub.task = t.name + "/" + g;
        sub.parent = t.name;
        sub.version = t.version;
        sub.group = t.group;
        sub.n_effective = static_cast<int64_t>(groups[g].size());
        sub.n_original = 0;
        for (const auto& d : run.data.docs)
          if (field_string(d.fields, t.breakdown_by) == g) ++sub.n_original;
        json notes = json::array();
        sub.metrics = aggregate(run, groups[g], values, sub.task, opt, notes);
        sub.config = {{"parent", t.name}, {"group", t.group}, {t.breakdown_by, g}, {"notes", notes}};
        results.tasks.push_back(std::move(sub));
      }
    }
  }
  results.requests_sent = cnt.sent;
  results.requests_cached = cnt.cached;
  results.wall_s = now_seconds() - t0;
  results.settings["requests"] = {{"loglikelihood", ll.reqs.size()}, {"generate_until", gen.reqs.size()},
                                  {"code_execution", code.programs.size()}, {"sent", cnt.sent}, {"cached", cnt.cached}};
  return results;
}

}  // namespace atax
