// atax info | generate | score | init: the engine's own commands.
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/validators.h"
#include "model/model.h"

namespace atax::cli {
namespace {

LoadOptions load_options(const RuntimeOptions& rt) {
  configure_threads(rt.threads);
  LoadOptions o;
  o.device = rt.device;
  o.dtype = rt.dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
  o.weights = parse_weight_format(rt.weights);
  return o;
}

void write_lines(const std::string& out_path, const std::vector<json>& lines) {
  if (out_path.empty() || out_path == "-") {
    for (const auto& l : lines) std::cout << l.dump() << "\n";
  } else {
    write_jsonl_atomic(out_path, lines);
  }
}

void add_info(CLI::App& app) {
  auto* sub = app.add_subcommand("info", "Print a model's architecture, shapes and parameter count as JSON");
  auto model = std::make_shared<std::string>();
  sub->add_option("--model", *model, "model folder or .gguf file")->required();
  sub->callback([model] {
    auto m = load_model(*model, LoadOptions{"cpu"});
    json shapes = json::object();
    for (const auto& [k, v] : m.net->hf_state_dict()) shapes[k] = v.sizes().vec();
    json out = {{"path", *model},
                {"architecture", m.config.architecture},
                {"model_type", m.config.model_type},
                {"parameters", m.net->num_parameters()},
                {"vocab_size", m.config.vocab_size},
                {"hidden_size", m.config.hidden_size},
                {"intermediate_size", m.config.intermediate_size},
                {"num_hidden_layers", m.config.num_hidden_layers},
                {"num_attention_heads", m.config.num_attention_heads},
                {"num_key_value_heads", m.config.kv_heads()},
                {"head_dim", m.config.dim_per_head()},
                {"max_position_embeddings", m.config.max_position_embeddings},
                {"tie_word_embeddings", m.config.tie_word_embeddings},
                {"tokenizer_vocab", m.tokenizer ? m.tokenizer->vocab_size() : 0},
                {"content_hash", m.content_hash},
                {"tensors", shapes}};
    std::cout << out.dump(2) << "\n";
  });
}

void add_generate(CLI::App& app) {
  struct Opts {
    std::string model, prompt, chat_template;
    bool chat = false;
    int max_new_tokens = 64;
    double temperature = 0, top_p = 1.0;
    uint64_t seed = 0;
    std::vector<std::string> stop;
    RuntimeOptions rt;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("generate", "Generate a continuation of a prompt (KV cache; greedy or sampled)");
  sub->add_option("--model", o->model, "model folder or .gguf file")->required();
  sub->add_option("--prompt", o->prompt, "the prompt text")->required();
  sub->add_flag("--chat", o->chat, "wrap the prompt as a user turn with the model's chat template");
  sub->add_option("--chat-template", o->chat_template, "override the chat format: chatml | llama3 | llama2 | plain");
  sub->add_option("--max-new-tokens", o->max_new_tokens, "at most this many new tokens")
      ->check(in_range(1, 1 << 20))->capture_default_str();
  sub->add_option("--temperature", o->temperature, "0 = greedy")->check(in_range(0, 100))->capture_default_str();
  sub->add_option("--top-p", o->top_p, "nucleus sampling mass")->check(in_range(0, 1, true))->capture_default_str();
  sub->add_option("--seed", o->seed, "sampling seed")->capture_default_str();
  sub->add_option("--stop", o->stop, "stop string (repeatable)");
  add_runtime_options(sub, o->rt);
  add_weights_option(sub, o->rt);
  sub->callback([o] {
    HfModel m(load_model(o->model, load_options(o->rt)));
    if (!o->chat_template.empty()) m.model().tokenizer->set_chat_format(chat_format_from_name(o->chat_template));
    GenerateRequest r;
    r.context = o->chat ? m.apply_chat_template({{"user", o->prompt}}) : o->prompt;
    r.max_new_tokens = o->max_new_tokens;
    r.temperature = o->temperature;
    r.top_p = o->top_p;
    r.seed = o->seed;
    r.until = o->stop;
    if (o->chat && r.until.empty() && m.tokenizer().chat_format() == ChatFormat::kPlain) r.until = {"\nUser:"};
    std::cout << m.generate_until({r})[0] << "\n";
  });
}

void add_score(CLI::App& app) {
  struct Opts {
    std::string model, input, output = "-", on_bad_line = "fail";
    bool rolling = false;
    int64_t batch_size = 16;
    RuntimeOptions rt;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "score", "Score {context, continuation} lines (log-prob, is_greedy), or {text} lines with --rolling");
  sub->add_option("--model", o->model, "model folder or .gguf file")->required();
  sub->add_option("--input", o->input, "input JSONL")->required()->check(CLI::ExistingFile);
  sub->add_option("--output", o->output, "output JSONL (- = stdout)")->capture_default_str();
  sub->add_flag("--rolling", o->rolling, "rolling log-likelihood of {text} lines");
  sub->add_option("--batch-size", o->batch_size, "requests per forward pass")
      ->check(in_range(1, 1 << 20))->capture_default_str();
  sub->add_option("--on-bad-line", o->on_bad_line, "fail | skip")->check(CLI::IsMember({"fail", "skip"}));
  add_runtime_options(sub, o->rt);
  add_weights_option(sub, o->rt);
  sub->callback([o] {
    InferenceOptions io;
    io.batch_size = o->batch_size;
    HfModel m(load_model(o->model, load_options(o->rt)), io);
    auto policy = o->on_bad_line == "skip" ? BadLinePolicy::kSkip : BadLinePolicy::kFail;
    std::vector<json> out;
    JsonlStats stats;
    if (o->rolling) {
      std::vector<std::string> texts;
      stats = for_each_jsonl(o->input, [&](const json& j, int64_t line) { texts.push_back(require_string(j, "text")); },
                             policy);
      auto res = m.loglikelihood_rolling(texts);
      for (const auto& r : res)
        out.push_back({{"logprob", r.logprob},
                       {"n_tokens", r.n_tokens},
                       {"perplexity", r.n_tokens ? std::exp(-r.logprob / r.n_tokens) : 0.0}});
    } else {
      std::vector<LoglikelihoodRequest> reqs;
      stats = for_each_jsonl(
          o->input,
          [&](const json& j, int64_t) {
            auto cont = require_string(j, "continuation");
            if (cont.empty()) throw Error("empty \"continuation\"");
            reqs.push_back({require_string(j, "context"), cont});
          },
          policy);
      auto res = m.loglikelihood(reqs);
      for (const auto& r : res) out.push_back({{"logprob", r.logprob}, {"is_greedy", r.is_greedy}, {"n_tokens", r.n_tokens}});
    }
    if (stats.lines_skipped) log_info(fmt::format("skipped {} bad lines of {}", stats.lines_skipped, o->input));
    write_lines(o->output, out);
  });
}

void add_init(CLI::App& app) {
  struct Opts {
    std::string config, tokenizer, out;
    uint64_t seed = 0;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("init", "Write a randomly initialised model folder (config, weights, tokenizer)");
  sub->add_option("--config", o->config, "config.json of the model")->required()->check(CLI::ExistingFile);
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer.json or a folder holding it")->required();
  sub->add_option("--out", o->out, "output folder")->required();
  sub->add_option("--seed", o->seed, "initialisation seed")->capture_default_str();
  sub->add_flag("--force", o->force, "write into --out even if it holds something else (it is replaced)");
  sub->callback([o] {
    OutputDir claim = claim_output_dir(o->out, "init", o->force);
    torch::manual_seed(o->seed);
    auto tok = std::make_shared<Tokenizer>(Tokenizer::load(o->tokenizer));
    json cj = read_json(o->config);
    if (!cj.contains("vocab_size")) cj["vocab_size"] = tok->vocab_size();
    auto cfg = ModelConfig::from_json(cj, o->config);
    if (!cfg.eos_token_id && tok->eos_id()) cfg.eos_token_id = *tok->eos_id();
    if (!cfg.bos_token_id && tok->bos_id()) cfg.bos_token_id = *tok->bos_id();
    auto m = make_model(cfg, {}, tok, LoadOptions{"cpu"}, o->out);
    save_model(m, o->out);
    claim.mark_finished();
    std::cout << json({{"out", o->out}, {"parameters", m.net->num_parameters()}, {"seed", o->seed}}).dump() << "\n";
  });
}

ATAX_COMMAND("info", add_info);
ATAX_COMMAND("generate", add_generate);
ATAX_COMMAND("score", add_score);
ATAX_COMMAND("init", add_init);

}  // namespace
}  // namespace atax::cli
