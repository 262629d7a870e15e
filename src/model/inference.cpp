// HfModel: lm-evaluation-harness's three request kinds on the engine, batched and sorted by
// length; KV-cache generation (greedy or sampled) with stop strings; KL drift between models.
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

#include "model/attention.h"
#include "model/model.h"

namespace atax {

namespace {

// Padded positions one scoring forward pass holds (activations ~ kBatchTokens × F floats). 256,
// not 4096: with loading down to one copy of the weights, activations set the peak (58M Llama,
// 256-token windows: 559 MB at 4096, 425 at 1024, 413 at 512; scoring time the same within noise).
constexpr int64_t kBatchTokens = 256;
// Logits held at once while scoring (4 MB of float32). With 512 positions and 8 MB the 256-token
// peak was 399 MB at b054af4 and 416 MB at 0060faf (1.51x llama-perplexity's 276 MB); 256 and 4 MB:
// 393 MB (1.42x), speed 1.32x llama.cpp's in both (idle, 2026-12-06, medians of 3).
constexpr int64_t kLogitFloats = int64_t{1} << 20;

torch::Device model_device(CausalLm& net) { return net->parameters().front().device(); }

// The ids the tokenizer's post-processor puts before a text (e.g. BOS), found by encoding a probe.
std::vector<int64_t> special_prefix(const Tokenizer& tok) {
  auto with = tok.encode("a", true), without = tok.encode("a", false);
  std::vector<int64_t> prefix;
  if (with.size() > without.size() && std::equal(without.rbegin(), without.rend(), with.rbegin()))
    prefix.assign(with.begin(), with.begin() + static_cast<long>(with.size() - without.size()));
  return prefix;
}

std::vector<int64_t> to_i64(const std::vector<int32_t>& v) { return std::vector<int64_t>(v.begin(), v.end()); }
std::vector<int32_t> to_i32(const std::vector<int64_t>& v) { return std::vector<int32_t>(v.begin(), v.end()); }

// The special prefix, unless the text already starts with it (a chat template that renders the
// BOS token itself, as Llama-3's and Llama-2's do).
std::vector<int64_t> prefix_for(const Tokenizer& tok, const std::vector<int64_t>& prefix, const std::string& text) {
  for (int64_t id : prefix) {
    std::string piece = tok.id_to_token(static_cast<int32_t>(id));
    if (!piece.empty() && tok.is_special(static_cast<int32_t>(id)) && starts_with(text, piece)) return {};
  }
  return prefix;
}

// The id that stands in front of an empty context (lm-eval's prefix_token_id): BOS, else EOS.
int64_t start_token(const Tokenizer& tok, const ModelConfig& cfg) {
  if (auto b = tok.bos_id()) return *b;
  if (auto e = tok.eos_id()) return *e;
  if (cfg.bos_token_id) return *cfg.bos_token_id;
  if (cfg.eos_token_id) return *cfg.eos_token_id;
  return 0;
}

// Log-prob of each target under the LM head applied to `hidden` (N,C), and whether it is the
// arg-max token: the head runs on blocks of rows so that at most kLogitFloats logits exist at once
// (N × V whole would be 2047 × 49k × 4 B = 400 MB for one 2048-token window). Rows are independent,
// so the values equal one log_softmax over all N rows.
std::pair<torch::Tensor, torch::Tensor> score_hidden(CausalLm& net, const torch::Tensor& hidden,
                                                     const std::vector<int64_t>& targets) {
  const int64_t N = hidden.size(0), V = net->config().vocab_size;
  const int64_t block = std::max<int64_t>(1, kLogitFloats / std::max<int64_t>(1, V));
  auto tgt = torch::tensor(targets, torch::kLong).to(hidden.device());
  auto lp = torch::empty({N}, torch::kFloat32);
  auto greedy = torch::empty({N}, torch::kBool);
  const bool fused = fast_kernels();
  for (int64_t r0 = 0; r0 < N; r0 += block) {
    const int64_t n = std::min(block, N - r0);
    auto t = tgt.narrow(0, r0, n).unsqueeze(1);           // (n,1)
    auto logits = net->lm_head(hidden.narrow(0, r0, n));  // (n,V) float32
    if (fused) {
      // log p(t) = x_t - max - log Σ exp(x - max), the formula log_softmax evaluates, in three
      // passes over the logits and no second (n,V) tensor: max with its index (the greedy token),
      // then exp in place and a row sum (log_softmax + argmax: ~2x the time, measured).
      auto [mx, arg] = logits.max(1, true);                // (n,1) each
      auto xt = logits.gather(1, t);                       // (n,1)
      auto sum = logits.sub_(mx).exp_().sum(1, true);      // (n,1)
      lp.narrow(0, r0, n).copy_((xt - mx - sum.log()).squeeze(1));
      greedy.narrow(0, r0, n).copy_((arg == t).squeeze(1));
    } else {
      auto logp = torch::log_softmax(logits, -1);  // (n,V)
      lp.narrow(0, r0, n).copy_(logp.gather(1, t).squeeze(1));
      greedy.narrow(0, r0, n).copy_(logp.argmax(1) == t.squeeze(1));
    }
  }
  return {lp, greedy};
}

}  // namespace

HfModel::HfModel(LoadedModel model, InferenceOptions opts) : model_(std::move(model)), opts_(opts) {
  if (!model_.tokenizer)
    throw Error("the model has no tokenizer.json", model_.source.string(),
                "put the model's tokenizer.json (and tokenizer_config.json) in its folder");
  if (opts_.max_length <= 0) opts_.max_length = model_.config.max_position_embeddings;
  if (opts_.batch_size <= 0) opts_.batch_size = 1;
}

int64_t HfModel::count_tokens(const std::string& text) const {
  return static_cast<int64_t>(model_.tokenizer->encode(text, false).size());
}

std::string HfModel::apply_chat_template(const std::vector<ChatMessage>& messages) const {
  return model_.tokenizer->apply_chat_template(messages, true);
}

std::vector<HfModel::TokenScore> HfModel::score_tokens(
    const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>>& pairs) {
  torch::NoGradGuard ng;
  auto& net = model_.net;
  auto dev = model_device(net);
  const int64_t L = opts_.max_length;
  // Each request becomes input = (ctx + cont)[:-1] truncated on the left to L, scoring the last
  // |cont| positions.
  struct Row {
    std::vector<int64_t> input;
    std::vector<int64_t> targets;
  };
  std::vector<Row> rows(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    const auto& [ctx, cont] = pairs[i];
    TORCH_CHECK(!cont.empty(), "empty continuation");
    std::vector<int64_t> all = ctx;
    all.insert(all.end(), cont.begin(), cont.end());
    all.pop_back();
    int64_t n_cont = static_cast<int64_t>(cont.size());
    if (n_cont > L) throw Error(fmt::format("continuation of {} tokens exceeds the maximum length {}", n_cont, L));
    if (static_cast<int64_t>(all.size()) > L) all.erase(all.begin(), all.end() - L);
    rows[i].input = std::move(all);
    rows[i].targets = cont;
  }
  // Requests with the same input share one forward pass: a multiple-choice item scored by its
  // answer letter (" A" ... " D") has the same input, context + all but the continuation's last
  // token, for every choice, so MMLU-style suites cost a quarter (lm-eval groups one-token
  // continuations the same way). Longest inputs first (one padding length per batch); equal inputs
  // end up next to each other and form one group.
  std::vector<size_t> by_input(rows.size());
  std::iota(by_input.begin(), by_input.end(), 0);
  std::stable_sort(by_input.begin(), by_input.end(), [&](size_t a, size_t b) {
    const auto &x = rows[a].input, &y = rows[b].input;
    return x.size() != y.size() ? x.size() > y.size() : x < y;
  });
  std::vector<std::vector<size_t>> members;  // per distinct input, longest first: the rows that have it
  for (size_t k = 0; k < by_input.size(); ++k) {
    if (k == 0 || rows[by_input[k]].input != rows[by_input[k - 1]].input) members.emplace_back();
    members.back().push_back(by_input[k]);
  }
  std::vector<TokenScore> out(rows.size());
  // A batch holds at most batch_size distinct inputs and kBatchTokens padded positions (one long
  // window alone may exceed it), so the activations stay bounded and short inputs do not pay for a
  // long one's padding. Inputs are sorted longest first, so each batch pads to its first row.
  size_t start = 0;
  while (start < members.size()) {
    const int64_t T = static_cast<int64_t>(rows[members[start].front()].input.size());  // the longest
    const int64_t cap = std::max<int64_t>(1, std::min<int64_t>(opts_.batch_size, kBatchTokens / std::max<int64_t>(1, T)));
    size_t end = std::min(members.size(), start + static_cast<size_t>(cap));
    const int64_t B = static_cast<int64_t>(end - start);
    auto ids = torch::zeros({B, T}, torch::kLong);
    auto mask = torch::zeros({B, T}, torch::kLong);
    auto ids_a = ids.accessor<int64_t, 2>();
    auto mask_a = mask.accessor<int64_t, 2>();
    bool padded = false;
    for (int64_t b = 0; b < B; ++b) {
      const auto& input = rows[members[start + b].front()].input;
      padded = padded || static_cast<int64_t>(input.size()) != T;
      for (size_t t = 0; t < input.size(); ++t) {
        ids_a[b][t] = input[t];
        mask_a[b][t] = 1;
      }
    }
    // Right padding never changes the real positions (causal), so an unpadded batch needs no mask.
    auto hidden = net->hidden_states(ids.to(dev), padded ? mask.to(dev) : torch::Tensor());  // (B,T,C)
    std::vector<torch::Tensor> picked;
    std::vector<int64_t> targets;
    std::vector<size_t> scored;  // rows in the order of `targets`
    for (int64_t b = 0; b < B; ++b)
      for (size_t i : members[start + b]) {
        const auto& r = rows[i];
        int64_t n = static_cast<int64_t>(r.targets.size()), len = static_cast<int64_t>(r.input.size());
        picked.push_back(hidden[b].narrow(0, len - n, n));
        targets.insert(targets.end(), r.targets.begin(), r.targets.end());
        scored.push_back(i);
      }
    auto [lp, greedy] = score_hidden(net, torch::cat(picked, 0), targets);
    hidden = torch::Tensor();
    const float* lp_a = lp.data_ptr<float>();
    const bool* gr_a = greedy.data_ptr<bool>();
    int64_t off = 0;
    for (size_t i : scored) {
      auto& s = out[i];
      int64_t n = static_cast<int64_t>(rows[i].targets.size());
      s.is_greedy = true;
      s.logprob = 0;
      for (int64_t j = 0; j < n; ++j) {
        s.token_logprobs.push_back(lp_a[off + j]);
        s.logprob += lp_a[off + j];
        s.is_greedy = s.is_greedy && gr_a[off + j];
      }
      off += n;
    }
    start = end;
  }
  return out;
}

std::vector<LoglikelihoodResult> HfModel::loglikelihood(const std::vector<LoglikelihoodRequest>& reqs) {
  const auto& tok = *model_.tokenizer;
  auto prefix = special_prefix(tok);
  if (prefix.empty()) prefix.push_back(start_token(tok, model_.config));
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> pairs;
  pairs.reserve(reqs.size());
  for (const auto& r : reqs) {
    // lm-eval's _encode_pair: trailing spaces of the context move to the continuation.
    std::string ctx = r.context, cont = r.continuation;
    size_t keep = ctx.find_last_not_of(' ');
    keep = keep == std::string::npos ? 0 : keep + 1;
    cont = ctx.substr(keep) + cont;
    ctx.resize(keep);
    auto whole = to_i64(tok.encode(ctx + cont, false));
    auto ctx_ids = to_i64(tok.encode(ctx, false));
    size_t n_ctx = std::min(ctx_ids.size(), whole.size());
    std::vector<int64_t> c = prefix_for(tok, prefix, ctx);
    c.insert(c.end(), whole.begin(), whole.begin() + static_cast<long>(n_ctx));
    std::vector<int64_t> k(whole.begin() + static_cast<long>(n_ctx), whole.end());
    if (k.empty())
      throw Error("the continuation \"" + r.continuation + "\" encodes to no tokens", "",
                  "multiple-choice continuations must be non-empty");
    pairs.emplace_back(std::move(c), std::move(k));
  }
  auto scores = score_tokens(pairs);
  std::vector<LoglikelihoodResult> out(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i)
    out[i] = {scores[i].logprob, scores[i].is_greedy, static_cast<int64_t>(pairs[i].second.size())};
  return out;
}

std::vector<RollingResult> HfModel::loglikelihood_rolling(const std::vector<std::string>& texts) {
  const auto& tok = *model_.tokenizer;
  auto prefix = special_prefix(tok);
  if (prefix.empty()) prefix.push_back(start_token(tok, model_.config));
  const int64_t L = opts_.max_length;
  // Disjoint windows of predictions, each with as much preceding context as fits in L.
  std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> pairs;
  std::vector<size_t> owner;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> seq = prefix;
    auto body = to_i64(tok.encode(texts[i], false));
    seq.insert(seq.end(), body.begin(), body.end());
    const int64_t N = static_cast<int64_t>(seq.size());
    int64_t p = static_cast<int64_t>(prefix.size());
    while (p < N) {
      int64_t q = std::min(p + L - 1, N);  // predict seq[p..q)
      int64_t s = std::max<int64_t>(0, q - L);
      std::vector<int64_t> ctx(seq.begin() + s, seq.begin() + p);
      std::vector<int64_t> cont(seq.begin() + p, seq.begin() + q);
      pairs.emplace_back(std::move(ctx), std::move(cont));
      owner.push_back(i);
      p = q;
    }
  }
  auto scores = score_tokens(pairs);
  std::vector<RollingResult> out(texts.size());
  for (size_t j = 0; j < pairs.size(); ++j) {
    out[owner[j]].logprob += scores[j].logprob;
    out[owner[j]].n_tokens += static_cast<int64_t>(pairs[j].second.size());
  }
  return out;
}

std::vector<std::vector<int64_t>> HfModel::generate_tokens(const std::vector<std::vector<int64_t>>& prompts,
                                                           const GenerateRequest& settings) {
  torch::NoGradGuard ng;
  auto& net = model_.net;
  auto dev = model_device(net);
  const auto& tok = *model_.tokenizer;
  std::vector<int32_t> stop_ids_v = tok.stop_ids();
  if (stop_ids_v.empty() && model_.config.eos_token_id) stop_ids_v.push_back(static_cast<int32_t>(*model_.config.eos_token_id));
  std::set<int64_t> stop_ids(stop_ids_v.begin(), stop_ids_v.end());
  const int64_t B = static_cast<int64_t>(prompts.size());
  int64_t T = 0;
  for (const auto& p : prompts) T = std::max<int64_t>(T, static_cast<int64_t>(p.size()));
  TORCH_CHECK(T > 0, "empty prompt");
  // Left padding so every row's next token sits at the last column.
  auto ids = torch::zeros({B, T}, torch::kLong);
  auto mask = torch::zeros({B, T}, torch::kLong);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[b];
    int64_t off = T - static_cast<int64_t>(p.size());
    for (size_t t = 0; t < p.size(); ++t) {
      ids[b][off + static_cast<int64_t>(t)] = p[t];
      mask[b][off + static_cast<int64_t>(t)] = 1;
    }
  }
  ids = ids.to(dev);
  mask = mask.to(dev);
  std::vector<at::Generator> gens;
  if (settings.temperature > 0)
    for (int64_t b = 0; b < B; ++b) gens.push_back(at::detail::createCPUGenerator(settings.seed + static_cast<uint64_t>(b)));
  std::vector<std::vector<int64_t>> out(B);
  std::vector<bool> done(B, false);
  KvCache cache;
  auto logits = net->forward(ids, mask, &cache).select(1, T - 1);  // (B,V)
  const int64_t max_new = std::min<int64_t>(settings.max_new_tokens, opts_.max_length - T);
  std::vector<std::string> prompt_text(B);
  if (!settings.until.empty())
    for (int64_t b = 0; b < B; ++b) prompt_text[b] = tok.decode(to_i32(prompts[b]), true);
  for (int64_t step = 0; step < max_new; ++step) {
    torch::Tensor next;
    if (settings.temperature <= 0) {
      next = logits.argmax(-1).to(torch::kCPU);
    } else {
      auto probs = torch::softmax(logits.to(torch::kFloat32) / settings.temperature, -1).to(torch::kCPU);
      if (settings.top_p < 1.0) {
        auto sorted = probs.sort(-1, true);
        auto sp = std::get<0>(sorted), si = std::get<1>(sorted);
        auto cum = sp.cumsum(-1);
        auto drop = (cum - sp) > settings.top_p;  // keep the smallest prefix reaching top_p
        sp = sp.masked_fill(drop, 0);
        probs = torch::zeros_like(probs).scatter(-1, si, sp);
      }
      next = torch::empty({B}, torch::kLong);
      for (int64_t b = 0; b < B; ++b)
        next[b] = torch::multinomial(probs[b], 1, false, gens[b]).item<int64_t>();
    }
    auto next_a = next.accessor<int64_t, 1>();
    bool all_done = true;
    for (int64_t b = 0; b < B; ++b) {
      if (done[b]) continue;
      int64_t t = next_a[b];
      if (stop_ids.count(t)) {
        done[b] = true;
        continue;
      }
      out[b].push_back(t);
      if (!settings.until.empty()) {
        std::vector<int64_t> all = prompts[b];
        all.insert(all.end(), out[b].begin(), out[b].end());
        std::string text = tok.decode(to_i32(all), true);
        std::string gen = starts_with(text, prompt_text[b]) ? text.substr(prompt_text[b].size()) : text;
        for (const auto& s : settings.until)
          if (!s.empty() && gen.find(s) != std::string::npos) done[b] = true;
      }
      all_done = all_done && done[b];
    }
    if (all_done || step + 1 == max_new) break;
    // Rows already finished keep feeding a token; their output is no longer extended.
    mask = torch::cat({mask, torch::ones({B, 1}, mask.options())}, 1);
    logits = net->forward(next.to(dev).unsqueeze(1), mask, &cache).select(1, 0);
  }
  return out;
}

std::vector<std::string> HfModel::generate_until(const std::vector<GenerateRequest>& reqs) {
  const auto& tok = *model_.tokenizer;
  auto prefix = special_prefix(tok);
  if (prefix.empty()) prefix.push_back(start_token(tok, model_.config));
  std::vector<std::vector<int64_t>> prompts(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto p = prefix_for(tok, prefix, reqs[i].context);
    auto body = to_i64(tok.encode(reqs[i].context, false));
    p.insert(p.end(), body.begin(), body.end());
    // Room kept for the answer: max_new_tokens, but never more than half the window, so a task asking
    // for as many new tokens as the model's context (toy_code's 512 on a 512-position model) keeps
    // its prompt instead of being cut to its last token. Generation then stops at the window's end.
    int64_t room = std::min<int64_t>(reqs[i].max_new_tokens, opts_.max_length / 2);
    int64_t budget = std::max<int64_t>(1, opts_.max_length - room);
    if (static_cast<int64_t>(p.size()) > budget) p.erase(p.begin(), p.end() - budget);
    prompts[i] = std::move(p);
  }
  // Group requests that share settings (seeds differ per request in sampling: batch of one).
  std::vector<size_t> order(reqs.size());
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](size_t i) {
    const auto& r = reqs[i];
    return json({r.until, r.max_new_tokens, r.temperature, r.top_p, r.temperature > 0 ? r.seed : 0}).dump();
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    auto ka = key(a), kb = key(b);
    if (ka != kb) return ka < kb;
    return prompts[a].size() > prompts[b].size();
  });
  std::vector<std::string> out(reqs.size());
  size_t i = 0;
  while (i < order.size()) {
    size_t j = i;
    std::string k = key(order[i]);
    while (j < order.size() && j - i < static_cast<size_t>(opts_.batch_size) && key(order[j]) == k) ++j;
    std::vector<std::vector<int64_t>> batch;
    for (size_t t = i; t < j; ++t) batch.push_back(prompts[order[t]]);
    auto gen = generate_tokens(batch, reqs[order[i]]);
    for (size_t t = i; t < j; ++t) {
      const auto& p = prompts[order[t]];
      auto all = p;
      all.insert(all.end(), gen[t - i].begin(), gen[t - i].end());
      std::string full = tok.decode(to_i32(all), true), head = tok.decode(to_i32(p), true);
      std::string text = starts_with(full, head) ? full.substr(head.size()) : tok.decode(to_i32(gen[t - i]), true);
      size_t cut = std::string::npos;
      for (const auto& s : reqs[order[t]].until)
        if (!s.empty()) cut = std::min(cut, text.find(s));
      if (cut != std::string::npos) text.resize(cut);
      out[order[t]] = text;
    }
    i = j;
  }
  return out;
}

KlStats kl_divergence(HfModel& base, HfModel& other, const std::vector<std::string>& texts) {
  torch::NoGradGuard ng;
  if (base.tokenizer().tokenizer_json() != other.tokenizer().tokenizer_json() ||
      base.model().config.vocab_size != other.model().config.vocab_size)
    throw Error("KL divergence needs both models to share one tokenizer and vocabulary, but " +
                    base.model().source.string() + " and " + other.model().source.string() + " differ",
                other.model().source.string(), "compare a model with one aligned or quantised from the same base");
  std::vector<double> kls;
  int64_t same = 0, n_texts = 0;
  auto& bn = base.model().net;
  auto& on = other.model().net;
  auto prefix = special_prefix(base.tokenizer());
  if (prefix.empty()) prefix.push_back(start_token(base.tokenizer(), base.model().config));
  const int64_t L = std::min(base.model().config.max_position_embeddings, other.model().config.max_position_embeddings);
  for (const auto& text : texts) {
    auto ids = prefix;
    auto body = to_i64(base.tokenizer().encode(text, false));
    ids.insert(ids.end(), body.begin(), body.end());
    if (static_cast<int64_t>(ids.size()) > L) ids.resize(L);
    if (ids.size() < 2) continue;
    ++n_texts;
    auto t = torch::tensor(ids, torch::kLong).unsqueeze(0);
    auto lb = torch::log_softmax(bn->forward(t.to(model_device(bn))).to(torch::kCPU, torch::kFloat64), -1)[0];
    auto lo = torch::log_softmax(on->forward(t.to(model_device(on))).to(torch::kCPU, torch::kFloat64), -1)[0];
    auto kl = (lb.exp() * (lb - lo)).sum(-1);  // (T)
    auto agree = (lb.argmax(-1) == lo.argmax(-1));
    auto kl_a = kl.accessor<double, 1>();
    for (int64_t i = 0; i < kl.size(0); ++i) kls.push_back(std::max(0.0, kl_a[i]));
    same += agree.sum().item<int64_t>();
  }
  KlStats s;
  s.n_positions = static_cast<int64_t>(kls.size());
  s.n_texts = n_texts;
  if (kls.empty()) return s;
  double sum = 0, sq = 0;
  for (double v : kls) sum += v, sq += v * v;
  double n = static_cast<double>(kls.size());
  s.mean = sum / n;
  s.stderr_ = kls.size() > 1 ? std::sqrt(std::max(0.0, (sq / n - s.mean * s.mean)) * n / (n - 1) / n) : 0;
  std::sort(kls.begin(), kls.end());
  auto pct = [&](double q) { return kls[static_cast<size_t>(std::min(n - 1, std::floor(q * (n - 1) + 0.5)))]; };
  s.min = kls.front();
  s.p1 = pct(0.01);
  s.p5 = pct(0.05);
  s.p10 = pct(0.1);
  s.median = pct(0.5);
  s.p90 = pct(0.9);
  s.p99 = pct(0.99);
  s.p99_9 = pct(0.999);
  s.max = kls.back();
  s.same_top_share = static_cast<double>(same) / n;
  s.same_top_stderr = n > 1 ? std::sqrt(s.same_top_share * (1 - s.same_top_share) / (n - 1)) : 0;
  return s;
}

}  // namespace atax
