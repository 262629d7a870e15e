// The request pools meet the model: cached answers are taken from the SQLite cache (keyed by the
// model's identity, its runtime settings and the request), the rest are sent in batches, longest
// first, and stored batch by batch so an interrupted run keeps what it finished.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>

#include "eval/internal.h"

namespace atax::eval_detail {

std::string model_key(const LanguageModel& model) {
  return sha256_hex("atax-request-model-v2\n" + model.content_hash() + "\n" + model.runtime_settings().dump());
}

namespace {

// Looks every request of `pool` up in the cache; returns the indices still to compute and fills
// `keys` with each request's cache key. `decode` turns a cached JSON into a response (false: the
// entry is unusable and the request is recomputed).
template <class Pool, class Decode>
std::vector<size_t> take_cached(Pool& pool, RequestCache* cache, const std::string& mk, const std::string& kind,
                                Decode decode, std::vector<std::string>& keys, Counters& cnt) {
  const size_t n = pool.size();
  pool.results.assign(n, {});
  keys.assign(n, {});
  std::vector<size_t> todo;
  for (size_t i = 0; i < n; ++i) {
    if (cache) {
      keys[i] = RequestCache::make_key(mk, kind, pool.keys[i]);
      if (auto hit = cache->get(keys[i]); hit && decode(*hit, pool.results[i])) {
        ++cnt.cached;
        continue;
      }
    }
    todo.push_back(i);
  }
  return todo;
}

bool decode_ll(const json& j, LoglikelihoodResult& r) {
  if (!j.is_object() || !j.contains("logprob") || !j["logprob"].is_number()) return false;
  r.logprob = j["logprob"].get<double>();
  r.is_greedy = j.value("is_greedy", false);
  r.n_tokens = j.value("n_tokens", int64_t{0});
  return true;
}

json encode_ll(const LoglikelihoodResult& r) {
  return {{"logprob", r.logprob}, {"is_greedy", r.is_greedy}, {"n_tokens", r.n_tokens}};
}

bool decode_string(const json& j, std::string& r) {
  if (!j.is_string()) return false;
  r = j.get<std::string>();
  return true;
}

bool decode_code(const json& j, json& r) {
  if (!j.is_object() || !j.contains("passed")) return false;
  r = j;
  return true;
}

json sandbox_to_json(const SandboxResult& r) {
  auto cut = [](const std::string& s) { return s.size() > 2000 ? s.substr(0, 2000) + "..." : s; };
  return {{"passed", r.passed}, {"timed_out", r.timed_out}, {"exit_code", r.exit_code},
          {"reason", r.reason}, {"stderr", cut(r.stderr_text)}};
}

void check_count(size_t got, size_t want, const char* what) {
  if (got != want)
    throw Error("the model returned " + std::to_string(got) + " " + what + " for " + std::to_string(want) + " requests");
}

}  // namespace

void run_loglikelihood(LanguageModel& model, LlPool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt) {
  if (pool.size() == 0) return;
  const std::string mk = model_key(model);
  std::vector<std::string> ckeys;
  auto todo = take_cached(pool, cache, mk, "loglikelihood", decode_ll, ckeys, cnt);
  if (todo.empty()) return;
  // Longest first (lm-eval): the slowest batches run first, so memory errors and the ETA show early.
  std::unordered_map<std::string, int64_t> ctx_len;
  std::vector<int64_t> len(pool.size(), 0);
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
    check_count(res.size(), batch.size(), "log-likelihoods");
    std::vector<RequestCache::Entry> entries;
    for (size_t k = 0; k < res.size(); ++k) {
      if (std::isnan(res[k].logprob)) throw Error("the model returned a NaN log-likelihood", {}, "check the model's weights");
      size_t i = todo[s + k];
      pool.results[i] = res[k];
      if (cache) entries.push_back({ckeys[i], mk, "loglikelihood", pool.keys[i], encode_ll(res[k])});
    }
    if (cache) cache->put(entries);
    cnt.sent += static_cast<int64_t>(batch.size());
    if (bar) bar->advance(static_cast<int64_t>(batch.size()));
  }
  if (bar) bar->finish();
}

void run_generation(LanguageModel& model, GenPool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt) {
  if (pool.size() == 0) return;
  const std::string mk = model_key(model);
  std::vector<std::string> ckeys;
  auto todo = take_cached(pool, cache, mk, "generate_until", decode_string, ckeys, cnt);
  if (todo.empty()) return;
  // Group identical generation settings, then longest context first.
  std::vector<std::string> settings(pool.size());
  std::vector<int64_t> len(pool.size(), 0);
  for (size_t i : todo) {
    json s = pool.keys[i];
    for (const char* k : {"context", "seed", "scope"}) s.erase(k);
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
    check_count(res.size(), batch.size(), "generations");
    std::vector<RequestCache::Entry> entries;
    for (size_t k = 0; k < res.size(); ++k) {
      size_t i = todo[s + k];
      pool.results[i] = res[k];
      if (cache) entries.push_back({ckeys[i], mk, "generate_until", pool.keys[i], json(res[k])});
    }
    if (cache) cache->put(entries);
    cnt.sent += static_cast<int64_t>(batch.size());
    if (bar) bar->advance(static_cast<int64_t>(batch.size()));
    s = e;
  }
  if (bar) bar->finish();
}

void run_code(CodePool& pool, RequestCache* cache, const EvalOptions& opt, Counters& cnt) {
  if (pool.size() == 0) return;
  // Results depend on the program and the limits only, not on the model.
  const std::string mk = "python-sandbox";
  std::vector<std::string> ckeys;
  auto todo = take_cached(pool, cache, mk, "code_execution", decode_code, ckeys, cnt);
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
        r = sandbox_to_json(runner(pool.reqs[i].program, pool.reqs[i].limits));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failure) failure = std::current_exception();
        next = todo.size();
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      pool.results[i] = r;
      if (cache) pending.push_back({ckeys[i], mk, "code_execution", pool.keys[i], r});
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

}  // namespace atax::eval_detail
