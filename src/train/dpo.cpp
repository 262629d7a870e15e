// DPO and its variants: loss types, regularized DPO (λ·Σ‖θ − θ_ref‖²), selective alignment
// (behaviour filters, preservation data, module/layer selection, LoRA with the adapters-off
// network as reference), multi-task DPO + w·NLL, curricula, data-quality filters and a frozen,
// live or precomputed (cached) reference.
//
// Shape legend: B pairs in a micro-batch, E NLL sequences in a micro-batch.
#include <cmath>
#include <set>

#include <fmt/format.h>

#include "dist/dist.h"
#include "train/loop.h"

namespace atax {

using namespace train_detail;

namespace {

int64_t pad_of(const Tokenizer& tok) {
  if (auto p = tok.pad_id()) return *p;
  if (auto e = tok.eos_id()) return *e;
  return 0;
}

int64_t scored_tokens(const TokenSequence& s) {
  return std::max<int64_t>(0, static_cast<int64_t>(s.ids.size()) - std::max<int64_t>(1, s.prompt_len));
}

// "auto" preservation data: pairs when the first record has chosen and rejected.
std::string detect_preserve_format(const fs::path& path) {
  std::string kind = "nll";
  bool decided = false;
  for_each_jsonl(
      path,
      [&](const json& j, int64_t) {
        if (decided) return;
        decided = true;
        if (j.contains("chosen") && j.contains("rejected")) kind = "pairs";
      },
      BadLinePolicy::kSkip);
  return kind;
}

void check_dpo_config(const DpoConfig& c) {
  if (c.model.empty()) throw Error("no model given", "", "pass --model DIR");
  if (c.data.empty()) throw Error("no preference data given", "", "pass --data prefs.jsonl");
  // Validates β and label smoothing for this loss type.
  auto z = torch::zeros({1});
  dpo_loss({z, z}, {z, z}, c.loss_type, c.beta, c.label_smoothing);
  if (c.lambda_reg < 0) throw Error("--lambda-reg must not be negative");
  if (c.nll_weight < 0) throw Error("--nll-weight must not be negative");
  if (!(c.rpo_alpha >= 0)) throw Error("--rpo-alpha must not be negative");
  if (c.preserve_weight < 0) throw Error("--preserve-weight must not be negative");
  if (c.preserve_as != "auto" && c.preserve_as != "nll" && c.preserve_as != "pairs")
    throw Error("unknown --preserve-as \"" + c.preserve_as + "\"", "", "use auto, nll or pairs");
  static const std::set<std::string> curricula = {"none", "difficulty", "category", "margin"};
  if (!curricula.count(c.curriculum))
    throw Error("unknown --curriculum \"" + c.curriculum + "\"", "", "use none, difficulty, category or margin");
  if (c.curriculum_mode != "order" && c.curriculum_mode != "ramp")
    throw Error("unknown --curriculum-mode \"" + c.curriculum_mode + "\"", "", "use order or ramp");
  if (!(c.ramp_start > 0 && c.ramp_start <= 1)) throw Error("--ramp-start must be in (0, 1]");
  if (!(c.ramp_fraction > 0 && c.ramp_fraction <= 1)) throw Error("--ramp-fraction must be in (0, 1]");
  if (c.lora.rank < 0) throw Error("--lora-rank must not be negative");
  if (c.lora.rank > 0 && (!c.train_modules.empty() || !c.train_layers.empty()))
    throw Error("LoRA and --train-modules / --train-layers are exclusive", "",
                "pick the adapters' targets with --lora-targets instead");
  if (c.filter.min_ref_margin < 0) throw Error("--min-ref-margin must not be negative");
}

// Writes the model with the LoRA deltas folded in, leaving the network untouched.
void save_lora_merged(LoadedModel& m, const LoraConfig& lc, const fs::path& dir, const json& extra) {
  torch::NoGradGuard ng;
  auto params = m.net->named_hf_parameters();
  std::vector<std::pair<torch::Tensor, torch::Tensor>> originals;
  const double scale = lc.alpha / static_cast<double>(lc.rank);
  for (auto& [name, a] : params) {
    if (!ends_with(name, ".lora_A")) continue;
    std::string prefix = name.substr(0, name.size() - std::string(".lora_A").size());
    auto b = params.at(prefix + ".lora_B");
    auto w = params.at(prefix + ".weight");
    auto delta = torch::matmul(b, a) * scale;  // (out, in)
    if (m.config.arch == Arch::kGpt2) delta = delta.t();  // Conv1D stores (in, out)
    originals.emplace_back(w, w.detach().clone());
    w.add_(delta.to(w.scalar_type()));
  }
  auto restore = [&] {
    for (auto& [w, orig] : originals) w.copy_(orig);
  };
  try {
    save_model(m, dir, torch::kFloat32, extra);
  } catch (...) {
    restore();
    throw;
  }
  restore();
}

class DpoTask : public TrainTask {
 public:
  DpoTask(const DpoConfig& cfg, LoadedModel& policy) : cfg_(cfg), policy_(policy), pad_(pad_of(*policy.tokenizer)) {
    average_ = cfg.loss_type == DpoLossType::kIpo;
  }

  // Set up by train_dpo().
  std::vector<PreferencePair> pairs;
  std::optional<PairTable> ref_table;       // precomputed reference (loss form chosen on use)
  CausalLm* ref_net = nullptr;              // live frozen reference
  std::vector<TokenSequence> nll;           // capability data for the NLL term
  double nll_weight = 0;
  double rpo_alpha = 0;                     // weight of the NLL of the chosen responses (beside nll)
  std::vector<PreferencePair> eval_pairs;
  PairLogprobs eval_ref;
  std::vector<std::pair<std::string, torch::Tensor>> params;
  std::vector<torch::Tensor> ref_params;    // θ_ref for the regularizer (same order as params)
  std::vector<double> curriculum_keys;      // per pair; smaller = earlier

  std::string name() const override { return "dpo"; }
  int64_t num_examples() const override { return static_cast<int64_t>(pairs.size()); }
  std::vector<std::string> metric_keys() const override {
    return {"pairs", "dpo_loss_sum", "rewards_chosen_sum", "rewards_rejected_sum", "accuracy_sum", "margin_sum",
            "logps_chosen_sum", "logps_rejected_sum", "nll_sum", "nll_tokens", "rpo_sum", "rpo_tokens", "tokens", "reg_sq", "difficulty_sum"};
  }
  std::vector<std::pair<std::string, torch::Tensor>> trainable() override { return params; }

  std::vector<int64_t> example_order(int64_t length, uint64_t seed) const override {
    if (cfg_.curriculum == "none") return TrainTask::example_order(length, seed);
    const int64_t n = num_examples();
    Rng base(seed);
    auto sorted_epoch = [&](int64_t epoch) {
      std::vector<int64_t> perm(n);
      for (int64_t i = 0; i < n; ++i) perm[i] = i;
      Rng rng = base.fork("epoch-" + std::to_string(epoch));
      rng.shuffle(perm);  // ties in the key keep a seeded random order
      std::stable_sort(perm.begin(), perm.end(),
                       [&](int64_t a, int64_t b) { return curriculum_keys[a] < curriculum_keys[b]; });
      return perm;
    };
    std::vector<int64_t> order;
    order.reserve(length);
    if (cfg_.curriculum_mode == "order") {
      for (int64_t e = 0; static_cast<int64_t>(order.size()) < length; ++e) {
        for (int64_t i : sorted_epoch(e)) {
          if (static_cast<int64_t>(order.size()) == length) break;
          order.push_back(i);
        }
      }
      return order;
    }
    // Ramp (competence-based curriculum): draw uniformly from the easiest share of the data,
    // the share growing linearly from ramp_start to 1 over the first ramp_fraction of training.
    auto sorted = sorted_epoch(0);
    Rng rng = base.fork("ramp");
    for (int64_t i = 0; i < length; ++i) {
      double progress = static_cast<double>(i) / static_cast<double>(std::max<int64_t>(1, length));
      double share = cfg_.ramp_start + (1 - cfg_.ramp_start) * std::min(1.0, progress / cfg_.ramp_fraction);
      int64_t pool = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(share * n)), 1, n);
      order.push_back(sorted[rng.uniform(static_cast<uint64_t>(pool))]);
    }
    return order;
  }

  void begin_step(int64_t step, const std::vector<int64_t>& ex, int64_t micro_batches) override {
    step_pairs_ = static_cast<double>(ex.size());
    step_nll_tokens_ = 0;
    step_chosen_tokens_ = 0;
    for (int64_t i : ex) step_chosen_tokens_ += static_cast<double>(pairs[i].chosen.size());
    nll_micro_.assign(micro_batches, {});
    if (nll_weight <= 0) return;
    if (!nll.empty()) {
      const int64_t per_micro = cfg_.nll_batch_size > 0 ? cfg_.nll_batch_size : cfg_.common.batch_size;
      for (int64_t m = 0; m < micro_batches; ++m) {
        const int64_t cursor = (step * cfg_.common.grad_accum + m) * per_micro;
        for (int64_t j = 0; j < per_micro; ++j) {
          int64_t idx = nll_index(cursor + j);
          nll_micro_[m].push_back(idx);
          step_nll_tokens_ += static_cast<double>(scored_tokens(nll[idx]));
        }
      }
    } else {
      step_nll_tokens_ = step_chosen_tokens_;  // the NLL of the chosen responses
    }
  }

  void micro_step(int64_t, int64_t micro, const std::vector<int64_t>& ex, Metrics& m) override {
    auto& ctx = dist::context();
    std::vector<const PreferencePair*> batch;
    for (int64_t i : ex) batch.push_back(&pairs[i]);
    std::vector<const TokenSequence*> extra;
    if (nll_weight > 0 && !nll.empty()) {
      const auto& all = nll_micro_[micro];
      auto [b, e] = dist::shard_range(static_cast<int64_t>(all.size()), ctx.rank(), ctx.world_size());
      for (int64_t k = b; k < e; ++k) extra.push_back(&nll[all[k]]);
    }
    const auto device = net_device(policy_.net);
    std::optional<PairLogprobs> cached;
    if (ref_table) cached = table_rows(*ref_table, ex, average_, device);
    auto fwd = dpo_forward(policy_.net, ref_net, batch, extra, cached ? &*cached : nullptr, average_, pad_);
    auto terms = dpo_loss(fwd.policy, fwd.reference, cfg_.loss_type, cfg_.beta, cfg_.label_smoothing);
    std::vector<float> w;
    for (const auto* p : batch) w.push_back(static_cast<float>(p->weight));
    auto weights = torch::tensor(w).to(device);                    // (B,)
    auto weighted = (terms.losses * weights).sum();                // scalar
    auto loss = weighted / step_pairs_;
    double nll_sum = 0, nll_tokens = 0;
    if (nll_weight > 0) {
      torch::Tensor s, cnt;
      if (!nll.empty()) {
        if (fwd.extra_sum.defined()) {
          s = -fwd.extra_sum.sum();
          cnt = fwd.extra_count.sum();
        }
      } else {
        s = -fwd.chosen_sum.sum();  // TRL's rpo_alpha: NLL of the chosen responses
        cnt = fwd.chosen_count.sum();
      }
      if (s.defined()) {
        loss = loss + nll_weight * s / std::max(1.0, step_nll_tokens_);
        nll_sum = s.item<double>();
        nll_tokens = cnt.item<double>();
      }
    }
    double rpo_sum = 0, rpo_tokens = 0;
    if (rpo_alpha > 0) {  // TRL's rpo_alpha, alongside a capability NLL term
      torch::Tensor s = -fwd.chosen_sum.sum();
      loss = loss + rpo_alpha * s / std::max(1.0, step_chosen_tokens_);
      rpo_sum = s.item<double>();
      rpo_tokens = fwd.chosen_count.sum().item<double>();
    }
    loss.backward();
    auto margin = terms.rewards_chosen - terms.rewards_rejected;
    m["pairs"] += static_cast<double>(batch.size());
    m["dpo_loss_sum"] += weighted.item<double>();
    m["rewards_chosen_sum"] += terms.rewards_chosen.sum().item<double>();
    m["rewards_rejected_sum"] += terms.rewards_rejected.sum().item<double>();
    m["accuracy_sum"] += (margin > 0).sum().item<double>();
    m["margin_sum"] += margin.sum().item<double>();
    m["logps_chosen_sum"] += fwd.policy.chosen.detach().sum().item<double>();
    m["logps_rejected_sum"] += fwd.policy.rejected.detach().sum().item<double>();
    m["nll_sum"] += nll_sum;
    m["nll_tokens"] += nll_tokens;
    m["rpo_sum"] += rpo_sum;
    m["rpo_tokens"] += rpo_tokens;
    m["tokens"] += static_cast<double>(fwd.tokens);
    for (const auto* p : batch) m["difficulty_sum"] += static_cast<double>(p->difficulty);
  }

  void after_sync(Metrics& m) override {
    if (cfg_.lambda_reg > 0) {
      std::vector<torch::Tensor> ps;
      for (auto& [n, p] : params) ps.push_back(p);
      m["reg_sq"] = add_l2_reference_grad(ps, ref_params, cfg_.lambda_reg);
    }
  }

  json log_fields(const Metrics& m) const override {
    const double P = std::max(1.0, m.at("pairs"));
    const double dpo = m.at("dpo_loss_sum") / P;
    const double reg = cfg_.lambda_reg * m.at("reg_sq");
    const double nll_loss = m.at("nll_tokens") > 0 ? m.at("nll_sum") / m.at("nll_tokens") : 0.0;
    const double rpo_loss = m.at("rpo_tokens") > 0 ? m.at("rpo_sum") / m.at("rpo_tokens") : 0.0;
    return {{"loss", dpo + reg + nll_weight * nll_loss + rpo_alpha * rpo_loss},
            {"rpo_loss", rpo_loss},
            {"dpo_loss", dpo},
            {"reg_loss", reg},
            {"reg/sq_dist", m.at("reg_sq")},
            {"nll_loss", nll_loss},
            {"rewards/chosen", m.at("rewards_chosen_sum") / P},
            {"rewards/rejected", m.at("rewards_rejected_sum") / P},
            {"rewards/accuracies", m.at("accuracy_sum") / P},
            {"rewards/margins", m.at("margin_sum") / P},
            {"logps/chosen", m.at("logps_chosen_sum") / P},
            {"logps/rejected", m.at("logps_rejected_sum") / P},
            {"data/difficulty", m.at("difficulty_sum") / P}};
  }

  json evaluate() override {
    if (eval_pairs.empty()) return json::object();
    return evaluate_preferences(policy_.net, eval_pairs, eval_ref, cfg_.loss_type, cfg_.beta, cfg_.label_smoothing,
                                pad_, std::max<int64_t>(cfg_.common.batch_size, 8));
  }

  void save_model(const fs::path& dir, const json& extra) override {
    if (cfg_.lora.rank > 0) {
      save_lora_merged(policy_, cfg_.lora, dir, extra);
    } else {
      atax::save_model(policy_, dir, torch::kFloat32, extra);
    }
  }

  void save_state(torch::serialize::OutputArchive& archive) override {
    if (cfg_.lora.rank <= 0) return;
    for (auto& [name, p] : params) archive.write("lora/" + name, p.detach());
  }

  void load_state(const fs::path& dir, torch::serialize::InputArchive& archive) override {
    torch::NoGradGuard ng;
    if (cfg_.lora.rank > 0) {
      // The base weights are frozen (they are those of --model); only the adapters moved.
      for (auto& [name, p] : params) {
        torch::Tensor t;
        archive.read("lora/" + name, t);
        p.copy_(t);
      }
      return;
    }
    auto w = load_safetensors_dir(dir);
    policy_.net->load_hf_state_dict(w, (dir / "model.safetensors").string());
  }

 private:
  int64_t nll_index(int64_t cursor) {
    const int64_t n = static_cast<int64_t>(nll.size());
    const int64_t epoch = cursor / n, pos = cursor % n;
    auto it = nll_perms_.find(epoch);
    if (it == nll_perms_.end()) {
      std::vector<int64_t> perm(n);
      for (int64_t i = 0; i < n; ++i) perm[i] = i;
      Rng(cfg_.common.seed).fork("nll-" + std::to_string(epoch)).shuffle(perm);
      if (nll_perms_.size() > 4) nll_perms_.erase(nll_perms_.begin());
      it = nll_perms_.emplace(epoch, std::move(perm)).first;
    }
    return it->second[pos];
  }

  const DpoConfig& cfg_;
  LoadedModel& policy_;
  int64_t pad_;
  bool average_ = false;
  double step_pairs_ = 1, step_nll_tokens_ = 0, step_chosen_tokens_ = 0;
  std::vector<std::vector<int64_t>> nll_micro_;
  std::map<int64_t, std::vector<int64_t>> nll_perms_;
};

std::string join_list(const std::vector<std::string>& v) { return join(v, ","); }

}  // namespace

json DpoConfig::to_json() const {
  json j = common_to_json(common);
  j["task"] = "dpo";
  j["model"] = model.string();
  j["ref"] = ref.string();
  j["data"] = data.string();
  j["eval_data"] = eval_data.string();
  j["loss_type"] = dpo_loss_type_name(loss_type);
  j["beta"] = beta;
  j["label_smoothing"] = label_smoothing;
  j["lambda_reg"] = lambda_reg;
  j["filters"] = join_list(filter.drop);
  j["behaviours"] = join_list(filter.behaviours);
  j["kinds"] = join_list(filter.kinds);
  j["min_ref_margin"] = filter.min_ref_margin;
  j["preserve"] = preserve.string();
  j["preserve_weight"] = preserve_weight;
  j["preserve_as"] = preserve_as;
  j["train_modules"] = join_list(train_modules);
  std::vector<std::string> layers;
  for (auto l : train_layers) layers.push_back(std::to_string(l));
  j["train_layers"] = join_list(layers);
  j["lora_rank"] = lora.rank;
  j["lora_alpha"] = lora.alpha;
  j["lora_targets"] = join_list(lora.target_modules);
  j["nll_data"] = nll_data.string();
  j["nll_weight"] = nll_weight;
  j["nll_batch_size"] = nll_batch_size;
  j["rpo_alpha"] = rpo_alpha;
  j["curriculum"] = curriculum;
  j["curriculum_mode"] = curriculum_mode;
  j["curriculum_categories"] = join_list(curriculum_categories);
  j["ramp_start"] = ramp_start;
  j["ramp_fraction"] = ramp_fraction;
  j["precompute_ref"] = precompute_ref;
  j["ref_cache"] = ref_cache.string();
  auto hash_of = [](const fs::path& p) { return !p.empty() && fs::is_regular_file(p) ? sha256_file(p) : ""; };
  j["data_sha256"] = hash_of(data);
  j["eval_data_sha256"] = hash_of(eval_data);
  j["preserve_sha256"] = hash_of(preserve);
  j["nll_data_sha256"] = hash_of(nll_data);
  j["model_config_sha256"] = hash_of(model / "config.json");
  return j;
}

namespace {

// The policy of --model, with its tokenizer (in the --chat-template format, if one is named).
LoadedModel load_policy(const DpoConfig& cfg, const LoadOptions& lo) {
  LoadedModel policy = load_model(cfg.model, lo);
  if (!policy.tokenizer)
    throw Error("the model folder has no tokenizer.json", cfg.model.string(), "DPO needs the model's tokenizer");
  if (!cfg.common.chat_template.empty())
    policy.tokenizer->set_chat_format(chat_format_from_name(cfg.common.chat_template));
  return policy;
}

// The state train_dpo's steps hand on: the run's configuration (the task reads it, and the batch
// size may shrink to the number of pairs), the policy, its task and the data report.
struct DpoSetup {
  DpoSetup(DpoConfig& c, const LoadOptions& l) : cfg(c), lo(l), policy(load_policy(c, l)), task(c, policy) {}

  DpoConfig& cfg;
  const LoadOptions& lo;
  LoadedModel policy;
  DpoTask task;
  const Tokenizer& tok = *policy.tokenizer;
  const int64_t pad = pad_of(tok);
  const bool average = cfg.loss_type == DpoLossType::kIpo;
  TokenizeOptions to;
  json report = json::object();
  fs::path nll_path;                    // the capability data of the NLL term (--nll-data or --preserve)
  double nll_weight = 0;
  std::optional<LoadedModel> ref_model;  // --ref, while it is needed
  std::optional<LoadedModel> live_ref;   // a frozen copy of the initial policy
  int64_t n_trainable = 0;

  void load_pairs();
  void add_preserve_data();
  void load_nll_and_eval_data();
  void load_reference();
  void precompute_reference();
  void drop_low_margin_pairs();
  void set_curriculum_keys();
  void add_lora_adapters();
  void select_parameters();
  void keep_reference_params();
  void choose_live_reference();
  void fit_batch_to_memory();
};

// The training pairs, tokenized within --max-length (capped by the model's context).
void DpoSetup::load_pairs() {
  to.max_length = cfg.common.max_length > 0 ? std::min(cfg.common.max_length, policy.config.max_position_embeddings)
                                            : policy.config.max_position_embeddings;
  to.drop_over_length = cfg.common.drop_over_length;
  to.on_bad_line = cfg.common.on_bad_line;
  DataReport rep;
  task.pairs = load_preferences(cfg.data, tok, to, cfg.filter, &rep);
  log_info("dpo: " + rep.summary());
  report["train"] = rep.to_json();
  nll_path = cfg.nll_data;
  nll_weight = cfg.nll_weight;
}

// --preserve: extra pairs of weight --preserve-weight, or the data of the NLL term.
void DpoSetup::add_preserve_data() {
  if (cfg.preserve.empty()) return;
  std::string as = cfg.preserve_as == "auto" ? detect_preserve_format(cfg.preserve) : cfg.preserve_as;
  if (as == "pairs") {
    PreferenceFilter pf;
    pf.drop = cfg.filter.drop;
    DataReport prep;
    auto extra = load_preferences(cfg.preserve, tok, to, pf, &prep);
    for (auto& p : extra) p.weight = cfg.preserve_weight;
    task.pairs.insert(task.pairs.end(), std::make_move_iterator(extra.begin()), std::make_move_iterator(extra.end()));
    report["preserve"] = prep.to_json();
    log_info("dpo: preserve pairs " + prep.summary());
  } else {
    if (!nll_path.empty() && nll_path != cfg.preserve)
      throw Error("--preserve as NLL and --nll-data name different files", "",
                  "give the capability data once (--preserve FILE --preserve-weight w)");
    nll_path = cfg.preserve;
    nll_weight = cfg.preserve_weight;
  }
}

// The NLL term's sequences (when it has a weight) and the held-out pairs of --eval-data.
void DpoSetup::load_nll_and_eval_data() {
  if (!nll_path.empty() && nll_weight > 0) {
    DataReport nrep;
    task.nll = load_sft(nll_path, tok, to, &nrep);
    report["nll"] = nrep.to_json();
    log_info("dpo: NLL data " + nrep.summary());
    if (task.nll.empty()) throw Error("the NLL data has no usable example", nll_path.string());
  }
  task.nll_weight = nll_weight;
  task.rpo_alpha = cfg.rpo_alpha;
  if (!cfg.eval_data.empty()) {
    PreferenceFilter ef;
    ef.drop = cfg.filter.drop;
    DataReport erep;
    task.eval_pairs = load_preferences(cfg.eval_data, tok, to, ef, &erep);
    report["eval"] = erep.to_json();
  }
}

// The frozen --ref model, which must have the policy's architecture.
void DpoSetup::load_reference() {
  if (cfg.ref.empty()) return;
  ref_model = load_model(cfg.ref, lo);
  if (ref_model->config.to_json() != policy.config.to_json())
    throw Error("the reference model's config.json differs from the policy's", (cfg.ref / "config.json").string(),
                "DPO needs a reference of the same architecture (usually the SFT model itself)");
  for (auto& p : ref_model->net->parameters()) p.set_requires_grad(false);
}

// The reference's log-probs of the training pairs (when asked for or needed) and of the eval pairs,
// read from or written to the cache.
void DpoSetup::precompute_reference() {
  CausalLm& ref_now = ref_model ? ref_model->net : policy.net;  // the policy is the reference before training
  const std::string ref_hash = ref_model ? ref_model->content_hash : policy.content_hash;
  const bool need_table = cfg.precompute_ref || cfg.filter.min_ref_margin > 0 || cfg.curriculum == "margin";
  const fs::path cache_dir = cfg.ref_cache.empty() ? default_cache_dir() : cfg.ref_cache;
  const int64_t ref_batch = std::max<int64_t>(cfg.common.batch_size, 8);
  const std::string settings = "v1";
  if (need_table) {
    bool hit = false;
    const double t0 = now_seconds();
    task.ref_table = cached_pair_logprobs(ref_now, ref_hash, task.pairs, pad, ref_batch, cache_dir, settings, &hit);
    log_info(fmt::format("dpo: reference log-probs of {} pairs {} ({:.1f} s)", task.pairs.size(),
                         hit ? "read from the cache" : "computed", now_seconds() - t0));
  }
  if (!task.eval_pairs.empty()) {
    auto t = cached_pair_logprobs(ref_now, ref_hash, task.eval_pairs, pad, ref_batch, cache_dir, settings, nullptr);
    task.eval_ref = t.logprobs(average);
  }
}

// --min-ref-margin: drops the pairs the reference barely separates, with their table rows.
void DpoSetup::drop_low_margin_pairs() {
  if (!(cfg.filter.min_ref_margin > 0)) return;
  auto lp = task.ref_table->logprobs(average);
  auto margin = (lp.chosen - lp.rejected).abs();
  std::vector<int64_t> keep;
  std::vector<PreferencePair> kept;
  for (int64_t i = 0; i < static_cast<int64_t>(task.pairs.size()); ++i) {
    if (margin[i].item<double>() >= cfg.filter.min_ref_margin) {
      keep.push_back(i);
      kept.push_back(std::move(task.pairs[i]));
    }
  }
  const int64_t dropped = static_cast<int64_t>(task.pairs.size() - kept.size());
  auto rows = torch::tensor(keep, torch::kInt64);
  PairTable& t = *task.ref_table;
  t.chosen_sum = t.chosen_sum.index_select(0, rows);
  t.chosen_count = t.chosen_count.index_select(0, rows);
  t.rejected_sum = t.rejected_sum.index_select(0, rows);
  t.rejected_count = t.rejected_count.index_select(0, rows);
  task.pairs = std::move(kept);
  report["train"]["dropped"]["low reference margin"] = dropped;
  report["train"]["kept"] = static_cast<int64_t>(task.pairs.size());
  log_info(fmt::format("dpo: {} pairs dropped with |reference margin| < {}", dropped, cfg.filter.min_ref_margin));
}

// The curriculum's sort key of every pair (smaller = earlier).
void DpoSetup::set_curriculum_keys() {
  if (cfg.curriculum == "none") return;
  const size_t n = task.pairs.size();
  task.curriculum_keys.resize(n);
  std::vector<std::string> unlisted;
  if (cfg.curriculum == "category") {
    std::set<std::string> cats;
    for (const auto& p : task.pairs)
      if (std::find(cfg.curriculum_categories.begin(), cfg.curriculum_categories.end(), p.category) ==
          cfg.curriculum_categories.end())
        cats.insert(p.category);
    unlisted.assign(cats.begin(), cats.end());
  }
  std::optional<PairLogprobs> lp;
  if (cfg.curriculum == "margin") lp = task.ref_table->logprobs(average);
  for (size_t i = 0; i < n; ++i) {
    const auto& p = task.pairs[i];
    if (cfg.curriculum == "difficulty") {
      task.curriculum_keys[i] = static_cast<double>(p.difficulty);
    } else if (cfg.curriculum == "category") {
      auto it = std::find(cfg.curriculum_categories.begin(), cfg.curriculum_categories.end(), p.category);
      task.curriculum_keys[i] =
          it != cfg.curriculum_categories.end()
              ? static_cast<double>(it - cfg.curriculum_categories.begin())
              : static_cast<double>(cfg.curriculum_categories.size() +
                                    (std::find(unlisted.begin(), unlisted.end(), p.category) - unlisted.begin()));
    } else {  // margin: pairs the reference already ranks right by far come first
      task.curriculum_keys[i] = -(lp->chosen[i].item<double>() - lp->rejected[i].item<double>());
    }
  }
}

// LoRA: freezes the network and trains only the adapters it adds.
void DpoSetup::add_lora_adapters() {
  for (auto& p : policy.net->parameters()) p.set_requires_grad(false);
  torch::manual_seed(cfg.common.seed);
  LoraOptions lopts;
  lopts.rank = cfg.lora.rank;
  lopts.alpha = cfg.lora.alpha;
  lopts.target_modules = cfg.lora.target_modules;
  policy.net->add_lora(lopts);
  for (auto& [name, p] : policy.net->named_hf_parameters()) {
    if (ends_with(name, ".lora_A") || ends_with(name, ".lora_B")) {
      p.set_requires_grad(true);
      task.params.emplace_back(name, p);
    }
  }
}

// Without LoRA: trains the parameters --train-modules / --train-layers select (all by default).
void DpoSetup::select_parameters() {
  std::set<int64_t> layers(cfg.train_layers.begin(), cfg.train_layers.end());
  for (auto& [name, p] : policy.net->named_hf_parameters()) {
    bool on = cfg.train_modules.empty() ||
              std::any_of(cfg.train_modules.begin(), cfg.train_modules.end(),
                          [&](const std::string& pat) { return name_matches(name, pat); });
    if (!layers.empty()) on = on && layers.count(layer_of(name)) > 0;
    p.set_requires_grad(on);
    if (on) task.params.emplace_back(name, p);
  }
  if (task.params.empty())
    throw Error("--train-modules / --train-layers select no parameter", "",
                "patterns match HF names, e.g. 'mlp' or 'model.layers.*.self_attn.*'; layers are 0-based");
}

// θ_ref of the regularizer (--lambda-reg): the --ref weights, else the initial policy's; counts
// the trainable parameters.
void DpoSetup::keep_reference_params() {
  if (cfg.lambda_reg > 0) {
    std::map<std::string, torch::Tensor> ref_named;
    if (ref_model) ref_named = ref_model->net->named_hf_parameters();
    torch::NoGradGuard ng;
    for (auto& [name, p] : task.params) {
      auto it = ref_named.find(name);
      task.ref_params.push_back(it != ref_named.end() ? it->second.detach().clone() : p.detach().clone());
    }
  }
  for (auto& [n, p] : task.params) n_trainable += p.numel();
}

// The live reference, when nothing was precomputed (--ref, the adapters-off policy or a frozen
// copy of the policy); logs the run's set-up.
void DpoSetup::choose_live_reference() {
  if (!task.ref_table) {
    if (ref_model) {
      task.ref_net = &ref_model->net;
    } else if (cfg.lora.rank > 0) {
      task.ref_net = nullptr;  // the policy with its adapters off
    } else {
      live_ref = load_model(cfg.model, lo);  // a frozen copy of the initial policy
      for (auto& p : live_ref->net->parameters()) p.set_requires_grad(false);
      task.ref_net = &live_ref->net;
    }
  } else {
    ref_model.reset();  // precomputed: the reference network is no longer needed
  }
  log_info(fmt::format("dpo: {} pairs, loss {} β={} λ={}; {} of {} parameters trainable{}; reference: {}",
                       task.pairs.size(), dpo_loss_type_name(cfg.loss_type), cfg.beta, cfg.lambda_reg, n_trainable,
                       policy.net->num_parameters(), cfg.lora.rank > 0 ? " (LoRA)" : "",
                       task.ref_table ? "precomputed" : task.ref_net ? "frozen copy" : "adapters off"));
}

// Batches are sized from the data (a micro-batch never repeats pairs to reach --batch-size), and
// the memory one micro-batch needs is checked before any of it is reserved.
void DpoSetup::fit_batch_to_memory() {
  const int64_t n_pairs = static_cast<int64_t>(task.pairs.size());
  if (n_pairs > 0 && cfg.common.batch_size > n_pairs) {
    log_info(fmt::format("dpo: --batch-size {} is more than the {} pairs; using {}", cfg.common.batch_size, n_pairs,
                         n_pairs));
    cfg.common.batch_size = n_pairs;
  }
  int64_t longest = 0;
  for (const auto& p : task.pairs)
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.prompt.size() + std::max(p.chosen.size(), p.rejected.size())));
  const int64_t rows = 2 * std::min<int64_t>(cfg.common.batch_size, std::max<int64_t>(n_pairs, 1));
  // Logits with their log-softmax and gradients (3 x V floats a token), activations kept for
  // backward (about 16 x C floats a token and layer).
  const double per_token = 4.0 * (3.0 * static_cast<double>(policy.config.vocab_size) +
                                  16.0 * static_cast<double>(policy.config.hidden_size) *
                                      static_cast<double>(policy.config.num_hidden_layers));
  check_memory_need(static_cast<int64_t>(std::min(9e18, per_token * static_cast<double>(rows * longest))),
                    fmt::format("a DPO micro-batch of {} pairs of up to {} tokens", rows / 2, longest),
                    "lower --batch-size (raise --grad-accum to keep the effective batch) or --max-length");
}

}  // namespace

TrainResult train_dpo(const DpoConfig& cfg_in) {
  DpoConfig cfg = cfg_in;
  check_dpo_config(cfg);
  const json config = cfg.to_json();
  setup_runtime(cfg.common);
  if (auto done = finished_run(cfg.common, config)) return *done;
  LoadOptions lo;
  lo.device = cfg.common.device;
  DpoSetup s(cfg, lo);
  // Data, then the reference and what it decides (filters, curriculum), then what trains.
  s.load_pairs();
  s.add_preserve_data();
  s.load_nll_and_eval_data();
  s.load_reference();
  s.precompute_reference();
  s.drop_low_margin_pairs();
  s.set_curriculum_keys();
  if (cfg.lora.rank > 0) {
    s.add_lora_adapters();
  } else {
    s.select_parameters();
  }
  s.keep_reference_params();
  s.choose_live_reference();
  s.fit_batch_to_memory();
  return run_training(cfg.common, s.task, config, s.report);
}

}  // namespace atax
