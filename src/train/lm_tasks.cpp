// Next-token training: pretraining on packed corpus blocks and SFT on chat-formatted responses.
// Both minimise the mean NLL over the step's scored tokens (normalised by the global count, so
// gradient accumulation and data-parallel ranks give the same update as one big batch).
#include <cmath>

#include <fmt/format.h>

#include "dist/dist.h"
#include "train/loop.h"

namespace atax {

using namespace train_detail;

namespace {

int64_t scored_tokens(const TokenSequence& s) {
  return std::max<int64_t>(0, static_cast<int64_t>(s.ids.size()) - std::max<int64_t>(1, s.prompt_len));
}

int64_t pad_of(const Tokenizer* tok) {
  if (tok) {
    if (auto p = tok->pad_id()) return *p;
    if (auto e = tok->eos_id()) return *e;
  }
  return 0;
}

class LmTask : public TrainTask {
 public:
  LmTask(std::string name, LoadedModel& model, std::vector<TokenSequence> train, std::vector<TokenSequence> eval,
         int64_t eval_batch)
      : name_(std::move(name)), model_(model), train_(std::move(train)), eval_(std::move(eval)),
        eval_batch_(eval_batch), pad_(pad_of(model.tokenizer.get())) {
    for (auto& [n, p] : model_.net->named_hf_parameters()) {
      p.set_requires_grad(true);
      params_.emplace_back(n, p);
    }
  }
  std::string name() const override { return name_; }
  int64_t num_examples() const override { return static_cast<int64_t>(train_.size()); }
  std::vector<std::string> metric_keys() const override { return {"nll_sum", "nll_tokens", "tokens"}; }
  std::vector<std::pair<std::string, torch::Tensor>> trainable() override { return params_; }

  void begin_step(int64_t, const std::vector<int64_t>& ex, int64_t) override {
    step_tokens_ = 0;
    for (int64_t i : ex) step_tokens_ += static_cast<double>(scored_tokens(train_[i]));
  }

  void micro_step(int64_t, int64_t, const std::vector<int64_t>& ex, Metrics& m) override {
    std::vector<const TokenSequence*> seqs;
    for (int64_t i : ex) seqs.push_back(&train_[i]);
    auto batch = make_token_batch(seqs, pad_, net_device(model_.net));
    auto lp = sequence_logprobs(model_.net, batch);
    auto nll = -lp.sum.sum();  // scalar
    (nll / std::max(1.0, step_tokens_)).backward();
    m["nll_sum"] += nll.item<double>();
    m["nll_tokens"] += lp.count.sum().item<double>();
    m["tokens"] += static_cast<double>(batch.tokens);
  }

  json log_fields(const Metrics& m) const override {
    double nll = m.at("nll_tokens") > 0 ? m.at("nll_sum") / m.at("nll_tokens") : 0.0;
    return {{"loss", nll}, {"nll_loss", nll}};
  }

  json evaluate() override {
    if (eval_.empty()) return json::object();
    auto& ctx = dist::context();
    auto [b, e] = dist::shard_range(static_cast<int64_t>(eval_.size()), ctx.rank(), ctx.world_size());
    auto [sum, count] = nll_sums(model_.net, eval_, b, e, pad_, eval_batch_);
    if (ctx.distributed()) {
      sum = ctx.all_reduce_sum(sum);
      count = ctx.all_reduce_sum(count);
    }
    double loss = count > 0 ? sum / count : 0.0;
    return {{"eval_loss", loss}, {"eval_ppl", std::exp(loss)}, {"eval_tokens", count}};
  }

  bool evaluate_at_start() const override { return true; }

  void save_model(const fs::path& dir, const json& extra) override {
    atax::save_model(model_, dir, torch::kFloat32, extra);
  }

  void load_state(const fs::path& dir, torch::serialize::InputArchive&) override {
    auto w = load_safetensors_dir(dir);
    model_.net->load_hf_state_dict(w, (dir / "model.safetensors").string());
  }

 private:
  std::string name_;
  LoadedModel& model_;
  std::vector<TokenSequence> train_, eval_;
  int64_t eval_batch_;
  int64_t pad_;
  std::vector<std::pair<std::string, torch::Tensor>> params_;
  double step_tokens_ = 0;
};

int64_t effective_max_length(const TrainCommon& c, const ModelConfig& mc) {
  int64_t limit = mc.max_position_embeddings;
  return c.max_length > 0 ? std::min(c.max_length, limit) : limit;
}

void apply_chat_override(const TrainCommon& c, Tokenizer& tok) {
  if (!c.chat_template.empty()) tok.set_chat_format(chat_format_from_name(c.chat_template));
}

}  // namespace

json PretrainConfig::to_json() const {
  json j = common_to_json(common);
  j["task"] = "pretrain";
  j["tokenizer"] = tokenizer.string();
  j["model_config"] = model_config.string();
  j["init_model"] = init_model.string();
  j["data"] = data.string();
  j["eval_data"] = eval_data.string();
  j["eval_fraction"] = eval_fraction;
  j["seq_len"] = seq_len;
  // The inputs' content, so a changed file is not mistaken for a finished run.
  for (const auto& [key, path] : {std::pair{"tokenizer_sha256", tokenizer}, {"model_config_sha256", model_config},
                                  {"data_sha256", data}, {"eval_data_sha256", eval_data}}) {
    fs::path p = path;
    if (fs::is_directory(p)) p /= "tokenizer.json";
    j[key] = !path.empty() && fs::is_regular_file(p) ? sha256_file(p) : "";
  }
  return j;
}

json SftConfig::to_json() const {
  json j = common_to_json(common);
  j["task"] = "sft";
  j["model"] = model.string();
  j["data"] = data.string();
  j["eval_data"] = eval_data.string();
  j["data_sha256"] = fs::is_regular_file(data) ? sha256_file(data) : "";
  j["eval_data_sha256"] = fs::is_regular_file(eval_data) ? sha256_file(eval_data) : "";
  j["model_config_sha256"] = fs::is_regular_file(model / "config.json") ? sha256_file(model / "config.json") : "";
  return j;
}

// Batches are sized from the data, as DPO's are: a micro-batch never holds more sequences than
// the data has, an optimizer step never repeats sequences to reach --batch-size × --grad-accum,
// and the memory one micro-batch needs is checked before any of it is reserved.
static TrainCommon fit_lm_batch(const std::string& what, TrainCommon c, const std::vector<TokenSequence>& train,
                         const LoadedModel& model) {
  const int64_t n = static_cast<int64_t>(train.size());
  if (n > 0 && c.batch_size > n) {
    log_info(fmt::format("{}: --batch-size {} is more than the {} training sequences; using {}", what, c.batch_size, n, n));
    c.batch_size = n;
  }
  if (n > 0 && c.grad_accum > 1 && c.batch_size * c.grad_accum > n) {
    const int64_t fit = std::max<int64_t>(1, n / c.batch_size);
    log_info(fmt::format("{}: --grad-accum {} × --batch-size {} is more than the {} training sequences; using "
                         "--grad-accum {}",
                         what, c.grad_accum, c.batch_size, n, fit));
    c.grad_accum = fit;
  }
  int64_t longest = 0;
  for (const auto& t : train) longest = std::max<int64_t>(longest, static_cast<int64_t>(t.ids.size()));
  // Logits with their log-softmax and gradients (3 × V floats a token), activations kept for
  // backward (about 16 × C floats a token and layer): the same estimate as DPO's.
  const double per_token = 4.0 * (3.0 * static_cast<double>(model.config.vocab_size) +
                                  16.0 * static_cast<double>(model.config.hidden_size) *
                                      static_cast<double>(model.config.num_hidden_layers));
  check_memory_need(static_cast<int64_t>(std::min(9e18, per_token * static_cast<double>(c.batch_size * longest))),
                    fmt::format("a {} micro-batch of {} sequences of up to {} tokens", what, c.batch_size, longest),
                    "lower --batch-size (raise --grad-accum to keep the effective batch) or --seq-len / --max-length");
  return c;
}

TrainResult pretrain(const PretrainConfig& cfg) {
  const json config = cfg.to_json();
  setup_runtime(cfg.common);
  if (auto done = finished_run(cfg.common, config)) return *done;
  if (cfg.data.empty()) throw Error("no corpus given", "", "pass --data CORPUS.jsonl");
  if (cfg.seq_len < 2) throw Error("--seq-len must be at least 2", "", "e.g. --seq-len 256");
  LoadOptions lo;
  lo.device = cfg.common.device;
  LoadedModel model;
  torch::manual_seed(cfg.common.seed);
  if (!cfg.init_model.empty()) {
    model = load_model(cfg.init_model, lo);
    if (!model.tokenizer) throw Error("the model folder has no tokenizer.json", cfg.init_model.string());
  } else {
    if (cfg.tokenizer.empty() || cfg.model_config.empty())
      throw Error("pretraining from scratch needs a tokenizer and a model config", "",
                  "pass --tokenizer TOKENIZER.json --config MODEL.json (or --init-model DIR)");
    auto tok = std::make_shared<Tokenizer>(Tokenizer::load(cfg.tokenizer));
    json mj = read_json(cfg.model_config);
    if (!mj.is_object()) throw Error("the model config is not a JSON object", cfg.model_config.string());
    if (!mj.contains("vocab_size") || mj["vocab_size"].is_null() || mj["vocab_size"] == 0)
      mj["vocab_size"] = tok->vocab_size();
    if (!mj.contains("eos_token_id") && tok->eos_id()) mj["eos_token_id"] = *tok->eos_id();
    if (!mj.contains("bos_token_id") && tok->bos_id()) mj["bos_token_id"] = *tok->bos_id();
    if (!mj.contains("pad_token_id") && tok->pad_id()) mj["pad_token_id"] = *tok->pad_id();
    ModelConfig mc = ModelConfig::from_json(mj, cfg.model_config.string());
    model = make_model(mc, {}, tok, lo, cfg.common.out);  // seeded init (torch::manual_seed above)
  }
  apply_chat_override(cfg.common, *model.tokenizer);
  if (cfg.seq_len + 1 > model.config.max_position_embeddings)
    throw Error(fmt::format("--seq-len {} needs {} positions, the model has max_position_embeddings {}", cfg.seq_len,
                            cfg.seq_len + 1, model.config.max_position_embeddings),
                cfg.model_config.string(), "lower --seq-len or raise max_position_embeddings");
  DataReport train_rep, eval_rep;
  auto docs = load_corpus_documents(cfg.data, *model.tokenizer, cfg.common.on_bad_line, &train_rep);
  std::vector<std::vector<int32_t>> eval_docs;
  if (!cfg.eval_data.empty()) {
    eval_docs = load_corpus_documents(cfg.eval_data, *model.tokenizer, cfg.common.on_bad_line, &eval_rep);
  } else if (cfg.eval_fraction > 0 && docs.size() > 1) {
    // A seeded share of the documents is held out; the rest keep their file order.
    const size_t k = std::clamp<size_t>(static_cast<size_t>(std::llround(cfg.eval_fraction * docs.size())), 1,
                                        docs.size() - 1);
    std::vector<size_t> idx(docs.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    Rng(cfg.common.seed).fork("eval-split").shuffle(idx);
    std::vector<bool> held(docs.size(), false);
    for (size_t i = 0; i < k; ++i) held[idx[i]] = true;
    std::vector<std::vector<int32_t>> kept;
    for (size_t i = 0; i < docs.size(); ++i) (held[i] ? eval_docs : kept).push_back(std::move(docs[i]));
    docs = std::move(kept);
    train_rep.dropped["held out for evaluation"] = static_cast<int64_t>(k);
    train_rep.kept = static_cast<int64_t>(docs.size());
  }
  auto flatten = [](const std::vector<std::vector<int32_t>>& d) {
    std::vector<int32_t> t;
    for (const auto& x : d) t.insert(t.end(), x.begin(), x.end());
    return t;
  };
  auto train_tokens = flatten(docs);
  auto blocks = pack_blocks(train_tokens, cfg.seq_len);
  auto eval_tokens = flatten(eval_docs);
  auto eval_blocks = pack_blocks(eval_tokens, cfg.seq_len);
  if (eval_blocks.empty() && !eval_tokens.empty() && eval_tokens.size() >= 2) {
    TokenSequence s;  // a held-out stream shorter than one block is still scored
    s.ids = eval_tokens;
    eval_blocks.push_back(std::move(s));
  }
  if (blocks.empty())
    throw Error(fmt::format("the corpus has {} tokens, fewer than one block of --seq-len {}", train_tokens.size(),
                            cfg.seq_len),
                cfg.data.string(), "lower --seq-len or add text");
  json report = {{"train", train_rep.to_json()}, {"train_tokens", train_tokens.size()}, {"train_blocks", blocks.size()}};
  if (!eval_docs.empty()) report["eval"] = {{"documents", eval_docs.size()}, {"tokens", eval_tokens.size()}};
  log_info(fmt::format("pretrain: {} parameters; {}; {} tokens in {} blocks of {}", model.net->num_parameters(),
                       train_rep.summary(), train_tokens.size(), blocks.size(), cfg.seq_len));
  const TrainCommon common = fit_lm_batch("pretrain", cfg.common, blocks, model);
  LmTask task("pretrain", model, std::move(blocks), std::move(eval_blocks), common.batch_size);
  return run_training(common, task, config, report);
}

TrainResult sft(const SftConfig& cfg) {
  const json config = cfg.to_json();
  setup_runtime(cfg.common);
  if (auto done = finished_run(cfg.common, config)) return *done;
  LoadOptions lo;
  lo.device = cfg.common.device;
  LoadedModel model = load_model(cfg.model, lo);
  if (!model.tokenizer)
    throw Error("the model folder has no tokenizer.json", cfg.model.string(), "SFT needs the model's tokenizer");
  apply_chat_override(cfg.common, *model.tokenizer);
  TokenizeOptions to;
  to.max_length = effective_max_length(cfg.common, model.config);
  to.drop_over_length = cfg.common.drop_over_length;
  to.on_bad_line = cfg.common.on_bad_line;
  DataReport train_rep, eval_rep;
  auto train = load_sft(cfg.data, *model.tokenizer, to, &train_rep);
  std::vector<TokenSequence> eval;
  if (!cfg.eval_data.empty()) eval = load_sft(cfg.eval_data, *model.tokenizer, to, &eval_rep);
  json report = {{"train", train_rep.to_json()}};
  if (!cfg.eval_data.empty()) report["eval"] = eval_rep.to_json();
  log_info("sft: " + train_rep.summary());
  const TrainCommon common = fit_lm_batch("sft", cfg.common, train, model);
  LmTask task("sft", model, std::move(train), std::move(eval), common.batch_size);
  return run_training(common, task, config, report);
}

}  // namespace atax
