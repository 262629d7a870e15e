// atax train pretrain | sft | dpo: the trainers of src/train on the command line. Every option can
// also come from a config file (--config FILE for sft and dpo, --options FILE for pretrain, whose
// --config names the model config); the resolved configuration is saved as OUT/train_config.json.
#include <iostream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/validators.h"
#include "dist/dist.h"
#include "train/train.h"

namespace atax::cli {

// CLI11 2.1 reads a config file for the main app only (App::_process_config_file), so the
// --config of a subcommand is applied here, in its callback: each `key = value` whose option was
// not given on the command line sets that option (the command line wins), then the required
// options are checked. Keys are the long option names without dashes ([section] headers are
// accepted and ignored).
void apply_subcommand_config(CLI::App* sub, const std::string& path, const std::vector<std::string>& required) {
  if (!path.empty()) {
    if (!fs::is_regular_file(path)) throw Error("no such config file", path, "pass a TOML/INI file of key = value lines");
    std::vector<CLI::ConfigItem> items;
    try {
      items = CLI::ConfigTOML().from_file(path);
    } catch (const CLI::Error& e) {
      throw Error(std::string("cannot read the config file: ") + e.what(), path, "write key = value lines");
    }
    for (const auto& item : items) {
      if (item.name == "++" || item.name == "--") continue;  // section markers
      CLI::Option* opt = sub->get_option_no_throw("--" + item.name);
      if (!opt || item.name == "config" || item.name == "options")
        throw Error("unknown option \"" + item.name + "\"", path,
                    "keys are the long option names without dashes, e.g. beta = 0.1 (see --help)");
      if (opt->count() > 0) continue;  // given on the command line
      try {
        if (opt->get_expected_min() == 0) {
          opt->add_result(opt->get_flag_value(item.name, item.inputs.empty() ? "true" : item.inputs.front()));
        } else {
          opt->add_result(item.inputs);
        }
        opt->run_callback();
      } catch (const CLI::Error& e) {
        throw Error("bad value for \"" + item.name + "\": " + e.what(), path);
      }
    }
  }
  for (const auto& name : required) {
    CLI::Option* opt = sub->get_option_no_throw("--" + name);
    if (opt && opt->count() == 0)
      throw Error("--" + name + " is required", "", "give it on the command line or in the --config file");
  }
}

namespace {

struct CommonOpts {
  TrainCommon c;
  std::string out, on_bad_line = "fail", config_file;
  bool no_progress = false, force = false;
  RuntimeOptions rt;
};

void add_common(CLI::App* sub, CommonOpts& o) {
  auto& c = o.c;
  sub->add_option("--out", o.out, "output folder (required): the trained HF model, train_log.jsonl, "
                                  "train_config.json, checkpoints/");
  sub->add_option("--lr", c.lr, "peak learning rate (AdamW)")->check(positive())->capture_default_str();
  sub->add_option("--weight-decay", c.weight_decay, "AdamW weight decay (matrices only)")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--adam-beta1", c.adam_beta1, "AdamW β1")->check(in_range(0, 1, false, true))->capture_default_str();
  sub->add_option("--adam-beta2", c.adam_beta2, "AdamW β2")->check(in_range(0, 1, false, true))->capture_default_str();
  sub->add_option("--adam-eps", c.adam_eps, "AdamW ε")->check(positive())->capture_default_str();
  sub->add_option("--schedule", c.schedule, "decay after warmup: constant | linear | cosine")
      ->check(CLI::IsMember({"constant", "linear", "cosine"}))->capture_default_str();
  sub->add_option("--warmup-steps", c.warmup_steps, "linear warmup steps")->check(non_negative())->capture_default_str();
  sub->add_option("--warmup-ratio", c.warmup_ratio, "warmup as a share of all steps (when --warmup-steps is 0)")
      ->check(in_range(0, 1))->capture_default_str();
  sub->add_option("--min-lr-ratio", c.min_lr_ratio, "decay floor as a share of --lr")
      ->check(in_range(0, 1))->capture_default_str();
  sub->add_option("--max-grad-norm", c.max_grad_norm, "gradient clipping norm (0 = off)")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--batch-size", c.batch_size, "examples per micro-batch (all ranks together; at most the data)")
      ->check(in_range(1, 1e9))->capture_default_str();
  sub->add_option("--grad-accum", c.grad_accum, "micro-batches per optimizer step")
      ->check(in_range(1, 1e6))->capture_default_str();
  sub->add_option("--epochs", c.epochs, "passes over the data")->check(in_range(0, 1e6))->capture_default_str();
  sub->add_option("--max-steps", c.max_steps, "optimizer steps (overrides --epochs when > 0)")
      ->check(in_range(0, 1e9))->capture_default_str();
  sub->add_option("--seed", c.seed, "seed of initialisation, data order and LoRA init")->capture_default_str();
  sub->add_option("--save-every", c.save_every, "checkpoint every N steps (0 = none)")
      ->check(non_negative())->capture_default_str();
  sub->add_flag("--keep-checkpoints", c.keep_checkpoints, "keep OUT/checkpoints after a successful run");
  sub->add_flag("--resume", c.resume, "continue from the last checkpoint in OUT (or reuse a finished run)");
  sub->add_option("--eval-every", c.eval_every, "held-out evaluation every N steps (0 = at the end)")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--on-bad-line", o.on_bad_line, "bad data lines: fail | skip (with a count)")
      ->check(CLI::IsMember({"fail", "skip"}))->capture_default_str();
  sub->add_option("--max-length", c.max_length, "tokens per sequence; longer ones are cut keeping the start")
      ->check(in_range(0, 1e9))->capture_default_str();
  sub->add_flag("--drop-over-length", c.drop_over_length, "drop examples longer than --max-length instead");
  sub->add_option("--chat-template", c.chat_template, "override the tokenizer's chat format: chatml | llama3 | "
                                                      "llama2 | plain");
  sub->add_flag("--no-progress", o.no_progress, "no progress bar");
  sub->add_flag("--force", o.force, "write into --out even if it holds something other than this command's output");
  add_runtime_options(sub, o.rt);
}

void finish_common(CommonOpts& o) {
  o.c.out = o.out;
  o.c.on_bad_line = o.on_bad_line == "skip" ? BadLinePolicy::kSkip : BadLinePolicy::kFail;
  o.c.progress = !o.no_progress;
  o.c.device = o.rt.device;
  o.c.threads = o.rt.threads;
  if (o.rt.dtype != "float32")
    throw Error("training runs in float32", "", "drop --dtype (mixed precision training is not supported)");
}

// Claims --out for `command` on the main rank (the other ranks write nothing there).
OutputDir claim_training_out(const CommonOpts& o, const std::string& command) {
  if (!dist::context().is_main()) return {};
  return claim_output_dir(o.out, command, o.force);
}

void print_result(const TrainResult& r) {
  if (r.already_done) std::cout << "(finished before; nothing trained)\n";
  for (auto it = r.data_report.begin(); it != r.data_report.end(); ++it) {
    if (!it.value().is_object() || !it.value().contains("read")) continue;
    std::cout << fmt::format("data {:<9} read {}, kept {}", it.key(), it.value().value("read", 0),
                             it.value().value("kept", 0));
    if (it.value().contains("dropped"))
      for (auto d = it.value()["dropped"].begin(); d != it.value()["dropped"].end(); ++d)
        std::cout << fmt::format(", dropped {} ({})", d.value().dump(), d.key());
    if (it.value().value("truncated", 0) > 0) std::cout << fmt::format(", truncated {}", it.value()["truncated"].dump());
    if (it.value().value("bad_lines", 0) > 0)
      std::cout << fmt::format(", bad lines skipped {}", it.value()["bad_lines"].dump());
    std::cout << "\n";
  }
  std::cout << fmt::format("steps {}  time {:.1f} s\n", r.steps, r.seconds);
  for (const char* k : {"loss", "dpo_loss", "reg_loss", "nll_loss", "rewards/accuracies", "rewards/margins",
                        "grad_norm", "tokens_per_s"})
    if (r.final_metrics.contains(k)) std::cout << fmt::format("  {:<20} {:.5g}\n", k, r.final_metrics[k].get<double>());
  for (auto it = r.eval.begin(); it != r.eval.end(); ++it)
    if (it.value().is_number()) std::cout << fmt::format("  {:<20} {:.5g}\n", it.key(), it.value().get<double>());
  std::cout << "model: " << r.out.string() << "\n";
}

// The end of a training command: the summary on rank 0 only (every rank holds the same result),
// then the final barrier, so rank 0 (which serves the rendezvous store) exits last.
void finish_training(const TrainResult& r, OutputDir& claim) {
  dist::Context& ctx = dist::context();
  if (claim.held()) claim.mark_finished({{"steps", r.steps}});
  if (ctx.is_main()) print_result(r);
  ctx.shutdown();
}

// "0,1,4-6" -> {0,1,4,5,6}.
std::vector<int64_t> parse_layers(const std::vector<std::string>& items) {
  std::vector<int64_t> out;
  for (const auto& raw : items) {
    std::string s = trim(raw);
    if (s.empty()) continue;
    try {
      auto dash = s.find('-');
      if (dash == std::string::npos) {
        out.push_back(std::stoll(s));
      } else {
        int64_t a = std::stoll(s.substr(0, dash)), b = std::stoll(s.substr(dash + 1));
        if (b < a) throw std::invalid_argument("range");
        for (int64_t i = a; i <= b; ++i) out.push_back(i);
      }
    } catch (const std::exception&) {
      throw Error("bad layer list entry \"" + s + "\"", "", "use indices and ranges, e.g. --train-layers 0,1,4-6");
    }
  }
  return out;
}

void add_pretrain(CLI::App* train) {
  struct Opts {
    CommonOpts common;
    PretrainConfig cfg;
    std::string tokenizer, model_config, init_model, data, eval_data;
  };
  auto o = std::make_shared<Opts>();
  o->common.c.lr = 1e-3;
  o->common.c.batch_size = 16;
  o->common.c.weight_decay = 0.1;
  o->common.c.schedule = "cosine";
  auto* sub = train->add_subcommand("pretrain", "Train a model from scratch on a corpus (packed sequences, EOS "
                                                "between documents)");
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer.json (or a folder holding it)");
  sub->add_option("--config", o->model_config, "model config JSON (config.json fields; vocab_size may be omitted)");
  sub->add_option("--init-model", o->init_model, "continue pretraining this HF folder instead of a fresh model");
  sub->add_option("--data", o->data, "corpus (required): JSONL with \"text\" per line, or plain text");
  sub->add_option("--eval-data", o->eval_data, "held-out corpus (default: --eval-fraction of the documents)");
  sub->add_option("--eval-fraction", o->cfg.eval_fraction, "share of documents held out without --eval-data")
      ->check(in_range(0, 1, false, true))->capture_default_str();
  sub->add_option("--seq-len", o->cfg.seq_len, "tokens per packed sequence")->check(in_range(2, 1e7))
      ->capture_default_str();
  add_common(sub, o->common);
  sub->add_option("--options", o->common.config_file,
                  "read options from a config file (TOML/INI key = value; --config is the model config)");
  sub->callback([o, sub] {
    apply_subcommand_config(sub, o->common.config_file, {"data", "out"});
    finish_common(o->common);
    PretrainConfig cfg = o->cfg;
    cfg.common = o->common.c;
    cfg.tokenizer = o->tokenizer;
    cfg.model_config = o->model_config;
    cfg.init_model = o->init_model;
    cfg.data = o->data;
    cfg.eval_data = o->eval_data;
    OutputDir claim = claim_training_out(o->common, "train pretrain");
    finish_training(pretrain(cfg), claim);
  });
}

void add_sft(CLI::App* train) {
  struct Opts {
    CommonOpts common;
    std::string model, data, eval_data;
  };
  auto o = std::make_shared<Opts>();
  o->common.c.lr = 2e-5;
  auto* sub = train->add_subcommand("sft", "Supervised fine-tuning on chat data (loss on response tokens only)");
  sub->add_option("--model", o->model, "HF model folder (required)");
  sub->add_option("--data", o->data, "JSONL (required): messages | prompt+completion | text");
  sub->add_option("--eval-data", o->eval_data, "held-out JSONL of the same kind");
  add_common(sub, o->common);
  sub->add_option("--config", o->common.config_file, "read options from a config file (TOML/INI key = value)");
  sub->callback([o, sub] {
    apply_subcommand_config(sub, o->common.config_file, {"model", "data", "out"});
    finish_common(o->common);
    SftConfig cfg;
    cfg.common = o->common.c;
    cfg.model = o->model;
    cfg.data = o->data;
    cfg.eval_data = o->eval_data;
    OutputDir claim = claim_training_out(o->common, "train sft");
    finish_training(sft(cfg), claim);
  });
}

void add_dpo(CLI::App* train) {
  struct Opts {
    CommonOpts common;
    DpoConfig cfg;
    std::string model, ref, data, eval_data, loss_type = "sigmoid", preserve, nll_data, ref_cache;
    std::vector<std::string> filters = {"empty", "identical", "duplicate"}, layers;
  };
  auto o = std::make_shared<Opts>();
  o->common.c.lr = 5e-6;
  auto& d = o->cfg;
  auto* sub = train->add_subcommand("dpo", "Direct preference optimisation and its variants (regularized, "
                                           "selective, multi-task, curriculum, LoRA)");
  sub->add_option("--model", o->model, "policy to align (HF folder; required)");
  sub->add_option("--ref", o->ref, "reference model (default: the initial policy; with LoRA, adapters off)");
  sub->add_option("--data", o->data, "preference pairs (required; TRL prompt/chosen/rejected JSONL)");
  sub->add_option("--eval-data", o->eval_data, "held-out pairs for eval/rewards/accuracies");
  sub->add_option("--loss-type", o->loss_type, "sigmoid | ipo | hinge | robust")
      ->check(CLI::IsMember({"sigmoid", "ipo", "hinge", "robust"}))->capture_default_str();
  sub->add_option("--beta", d.beta, "β: strength of the KL anchor to the reference")->check(in_range(0, 1e4, true))
      ->capture_default_str();
  sub->add_option("--label-smoothing", d.label_smoothing, "ε for sigmoid (cDPO) and robust losses")
      ->check(in_range(0, 0.5, false, true))->capture_default_str();
  sub->add_option("--lambda-reg", d.lambda_reg, "regularized DPO: + λ·Σ‖θ − θ_ref‖² over trainable parameters")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--filters", o->filters, "data-quality filters: empty, identical, duplicate, over-length")
      ->delimiter(',')->capture_default_str();
  sub->add_option("--min-ref-margin", d.filter.min_ref_margin,
                  "drop pairs whose |reference log-prob margin| is below this (0 = off)")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--behaviours", d.filter.behaviours,
                  "selective: keep harmful-refusal (kind harmless) pairs only of these categories")->delimiter(',');
  sub->add_option("--kinds", d.filter.kinds, "keep only pairs of these kinds")->delimiter(',');
  sub->add_option("--preserve", o->preserve, "capability-preservation data mixed in");
  sub->add_option("--preserve-weight", d.preserve_weight, "weight of the preservation data")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--preserve-as", d.preserve_as, "auto | nll | pairs")
      ->check(CLI::IsMember({"auto", "nll", "pairs"}))->capture_default_str();
  sub->add_option("--train-modules", d.train_modules, "train only parameters matching these patterns ('*' wildcard)")
      ->delimiter(',');
  sub->add_option("--train-layers", o->layers, "train only these layers (e.g. 0,1,4-6)")->delimiter(',');
  sub->add_option("--lora-rank", d.lora.rank, "LoRA rank (0 = full fine-tuning)")->check(in_range(0, 1e6))
      ->capture_default_str();
  sub->add_option("--lora-alpha", d.lora.alpha, "LoRA alpha")->check(positive())->capture_default_str();
  sub->add_option("--lora-targets", d.lora.target_modules, "LoRA target modules (HF leaf names)")
      ->delimiter(',')->capture_default_str();
  sub->add_option("--nll-data", o->nll_data, "capability data for the multi-task NLL term");
  sub->add_option("--rpo-alpha", d.rpo_alpha, "α of + α·NLL of the chosen responses (RPO; beside --nll-data)")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--nll-weight", d.nll_weight, "weight w of the NLL term (without --nll-data: NLL of chosen)")
      ->check(non_negative())->capture_default_str();
  sub->add_option("--nll-batch-size", d.nll_batch_size, "NLL sequences per micro-batch (0 = --batch-size)")
      ->check(in_range(0, 1e9))->capture_default_str();
  sub->add_option("--curriculum", d.curriculum, "none | difficulty | category | margin")
      ->check(CLI::IsMember({"none", "difficulty", "category", "margin"}))->capture_default_str();
  sub->add_option("--curriculum-mode", d.curriculum_mode, "order (sorted each epoch) | ramp (growing pool)")
      ->check(CLI::IsMember({"order", "ramp"}))->capture_default_str();
  sub->add_option("--curriculum-categories", d.curriculum_categories, "category order for --curriculum category")
      ->delimiter(',');
  sub->add_option("--ramp-start", d.ramp_start, "ramp: share of the data available at the start")
      ->check(in_range(0, 1, true))->capture_default_str();
  sub->add_option("--ramp-fraction", d.ramp_fraction, "ramp: share of training until all data is in")
      ->check(in_range(0, 1, true))->capture_default_str();
  sub->add_flag("--precompute-ref", d.precompute_ref,
                "compute reference log-probs once (cached on disk), then free the reference model");
  sub->add_option("--ref-cache", o->ref_cache, "cache folder for reference log-probs "
                                               "(default $ATAX_CACHE_DIR or ~/.cache/atax)");
  add_common(sub, o->common);
  sub->add_option("--config", o->common.config_file, "read options from a config file (TOML/INI key = value)");
  sub->callback([o, sub] {
    apply_subcommand_config(sub, o->common.config_file, {"model", "data", "out"});
    finish_common(o->common);
    DpoConfig cfg = o->cfg;
    cfg.common = o->common.c;
    cfg.model = o->model;
    cfg.ref = o->ref;
    cfg.data = o->data;
    cfg.eval_data = o->eval_data;
    cfg.loss_type = dpo_loss_type_from_name(o->loss_type);
    cfg.filter.drop = o->filters;
    cfg.preserve = o->preserve;
    cfg.nll_data = o->nll_data;
    cfg.ref_cache = o->ref_cache;
    cfg.train_layers = parse_layers(o->layers);
    OutputDir claim = claim_training_out(o->common, "train dpo");
    finish_training(train_dpo(cfg), claim);
  });
}

void add_train(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train models: pretrain from scratch, SFT, and DPO-family alignment");
  train->require_subcommand(1);
  add_pretrain(train);
  add_sft(train);
  add_dpo(train);
}

ATAX_COMMAND("train", add_train);

}  // namespace
}  // namespace atax::cli
