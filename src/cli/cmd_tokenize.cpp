// atax tokenize | tokenizer train: encode JSONL text with a tokenizer.json, and train a
// byte-level BPE tokenizer from a JSONL corpus.
#include <iostream>

#include "cli/cli.h"
#include "cli/validators.h"
#include "tokenizer/tokenizer.h"

namespace atax::cli {

// In cmd_train.cpp: applies a subcommand's --config file (CLI11 2.1 reads them for the main app only).

namespace {

void add_tokenize(CLI::App& app) {
  struct Opts {
    std::string tokenizer, input, output, on_bad_line = "fail";
    bool add_special_tokens = false;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand("tokenize", "Encode {\"text\": ...} JSONL lines to {\"ids\": [...], \"tokens\": [...]}");
  sub->add_option("--tokenizer", o->tokenizer, "tokenizer.json or a folder holding it")->required();
  sub->add_flag("--add-special-tokens", o->add_special_tokens, "apply the post-processor (e.g. prepend the BOS)");
  sub->add_option("--input", o->input, "JSONL file with a \"text\" field per line")->required();
  sub->add_option("--output", o->output, "output JSONL (default: stdout)");
  sub->add_option("--on-bad-line", o->on_bad_line, "fail | skip (skipped lines are reported on stderr)")
      ->check(CLI::IsMember({"fail", "skip"}))
      ->capture_default_str();
  sub->callback([o] {
    const Tokenizer tok = Tokenizer::load(o->tokenizer);
    const bool to_stdout = o->output.empty() || o->output == "-";
    std::string buffer;
    const JsonlStats stats = for_each_jsonl(
        o->input,
        [&](const json& rec, int64_t line) {
          const std::string text = require_string(rec, "text", o->input, line);
          const std::vector<int32_t> ids = tok.encode(text, o->add_special_tokens);
          const json out = {{"ids", ids}, {"tokens", tok.tokens(ids)}};
          if (to_stdout) {
            std::cout << out.dump() << "\n";
          } else {
            buffer += out.dump();
            buffer += '\n';
          }
        },
        o->on_bad_line == "skip" ? BadLinePolicy::kSkip : BadLinePolicy::kFail);
    if (!to_stdout) write_file_atomic(o->output, buffer);
    std::cout.flush();
    for (const std::string& r : stats.skipped_reasons) std::cerr << "atax: skipped " << r << "\n";
    if (stats.lines_skipped > 0)
      std::cerr << "atax: skipped " << stats.lines_skipped << " bad line(s) of " << o->input << "\n";
  });
}

void add_tokenizer_train(CLI::App& app) {
  struct Opts {
    std::string input, out, text_field = "text", chat_template = "plain", on_bad_line = "fail", config_file;
    BpeTrainOptions train;
    bool force = false;
  };
  auto o = std::make_shared<Opts>();
  auto* group = app.add_subcommand("tokenizer", "Tokenizer tools");
  group->require_subcommand(1);
  auto* sub = group->add_subcommand("train", "Train a byte-level BPE tokenizer on a JSONL corpus");
  sub->add_option("--input", o->input, "JSONL corpus, one {\"text\": ...} per line (required)");
  sub->add_option("--vocab-size", o->train.vocab_size,
                  "vocabulary size, including the 256 byte symbols and the special tokens (required)")
      ->check(in_range(1, 1 << 24));
  sub->add_option("--out", o->out, "folder to write tokenizer.json and tokenizer_config.json into (required)");
  sub->add_option("--text-field", o->text_field, "the JSON field that holds the text")->capture_default_str();
  sub->add_option("--special-token", o->train.special_tokens, "special token (repeatable; replaces the default list)")
      ->capture_default_str();
  sub->add_option("--bos", o->train.bos_token, "BOS token (prepended when encoding with special tokens; \"\" = none)")
      ->capture_default_str();
  sub->add_option("--eos", o->train.eos_token, "EOS token")->capture_default_str();
  sub->add_option("--pad", o->train.pad_token, "padding token")->capture_default_str();
  sub->add_option("--min-frequency", o->train.min_frequency, "stop merging below this pair count")
      ->check(in_range(1, 1e18))->capture_default_str();
  sub->add_option("--on-bad-line", o->on_bad_line, "bad corpus lines: fail | skip (with a count on stderr)")
      ->check(CLI::IsMember({"fail", "skip"}))->capture_default_str();
  sub->add_flag("--force", o->force, "write into --out even if it holds something else");
  sub->add_option("--chat-template", o->chat_template, "chat format written as chat_template: chatml | llama3 | "
                                                       "llama2 | plain")
      ->capture_default_str();
  sub->add_option("--config", o->config_file, "read options from a config file (TOML/INI key = value)");
  sub->callback([o, sub] {
    apply_subcommand_config(sub, o->config_file, {"input", "vocab-size", "out"});
    o->train.chat_format = chat_format_from_name(o->chat_template);
    OutputDir claim = claim_output_dir(o->out, "tokenizer train", o->force);
    std::vector<std::string> texts;
    int64_t bytes = 0;
    const JsonlStats stats = for_each_jsonl(
        o->input,
        [&](const json& rec, int64_t line) {
          texts.push_back(require_string(rec, o->text_field, o->input, line));
          bytes += int64_t(texts.back().size());
        },
        o->on_bad_line == "skip" ? BadLinePolicy::kSkip : BadLinePolicy::kFail);
    for (const std::string& r : stats.skipped_reasons) std::cerr << "atax: skipped " << r << "\n";
    if (stats.lines_skipped > 0)
      std::cerr << "atax: skipped " << stats.lines_skipped << " bad line(s) of " << o->input << "\n";
    if (texts.empty())
      throw Error("the corpus has no text", o->input, "give a JSONL file with one {\"" + o->text_field + "\": ...} per line");
    log_info("training BPE (vocab " + std::to_string(o->train.vocab_size) + ") on " + std::to_string(texts.size()) +
             " texts, " + std::to_string(bytes) + " bytes");
    const double t0 = now_seconds();
    const Tokenizer tok = train_bpe(texts, o->train);
    const double seconds = now_seconds() - t0;
    tok.save(o->out);
    claim.mark_finished();
    const json summary = {{"out", o->out},
                          {"vocab_size", tok.vocab_size()},
                          {"merges", tok.tokenizer_json()["model"]["merges"].size()},
                          {"texts", texts.size()},
                          {"bytes", bytes},
                          {"chat_template", chat_format_name(o->train.chat_format)},
                          {"seconds", seconds}};
    std::cout << summary.dump() << "\n";
  });
}

ATAX_COMMAND("tokenize", add_tokenize);
ATAX_COMMAND("tokenizer", add_tokenizer_train);

}  // namespace
}  // namespace atax::cli
