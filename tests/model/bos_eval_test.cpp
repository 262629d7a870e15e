// ctest-labels: model
// BOS exactly once on the evaluation path (HfModel::loglikelihood and generate_until, which put
// the tokenizer's prefix before a context unless the context already starts with its text): for
// a tokenizer whose rule adds BOS, a chat-templated prompt is scored after exactly one BOS,
// whether the template writes the BOS text itself (Llama's, Gemma's) or not. A tiny random model
// with sharp distributions tells one BOS from two: its log-probs are compared with a direct
// forward pass over the expected ids (tolerance 1e-4 nats, float32 both ways).
#include <algorithm>

#include <gtest/gtest.h>

#include "model/model.h"
#include "../tokenizer/bos_tokenizer.h"

using namespace atax;

namespace {

constexpr double kTol = 1e-4;

// A byte-level BPE whose post-processor is "<s> $A", with `chat_template` as its template.
std::shared_ptr<Tokenizer> tokenizer_with(const std::string& chat_template) {
  const Tokenizer trained = atax::testing::bos_bpe_tokenizer({"hello world", "hi there", "the answer is"});
  json cfg = trained.tokenizer_config();
  cfg["bos_token"] = "<s>";
  cfg["chat_template"] = chat_template;
  return std::make_shared<Tokenizer>(Tokenizer::from_json(trained.tokenizer_json(), cfg, "tokenizer.json"));
}

HfModel tiny_model(std::shared_ptr<Tokenizer> tok) {
  json cj = {{"architectures", {"LlamaForCausalLM"}}, {"vocab_size", tok->vocab_size()}, {"hidden_size", 32},
             {"intermediate_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
             {"num_key_value_heads", 2}, {"max_position_embeddings", 256}, {"rms_norm_eps", 1e-5}};
  torch::manual_seed(11);
  LoadedModel m = make_model(ModelConfig::from_json(cj), {}, std::move(tok), LoadOptions{"cpu"}, "tiny");
  torch::NoGradGuard ng;
  for (auto& [name, t] : m.net->named_hf_parameters())
    if (t.dim() == 2) t.normal_(0.0, 0.5);  // sharp distributions: a second BOS moves every log-prob
  return HfModel(std::move(m));
}

// Σ log p(ids[n_ctx:] | ids[:i]) by one forward pass over the whole sequence.
double reference_logprob(HfModel& m, const std::vector<int64_t>& ids, size_t n_ctx) {
  torch::NoGradGuard ng;
  std::vector<int64_t> input(ids.begin(), ids.end() - 1);
  auto logp = torch::log_softmax(m.model().net->forward(torch::tensor(input).unsqueeze(0))[0], -1);
  double s = 0;
  for (size_t i = n_ctx; i < ids.size(); ++i) s += logp[static_cast<int64_t>(i - 1)][ids[i]].item<double>();
  return s;
}

std::vector<int64_t> to_i64(const std::vector<int32_t>& v) { return {v.begin(), v.end()}; }

// The ids the evaluator must score for `prompt` + `cont`: one BOS, then the text's own tokens
// (a BOS text at the start of the prompt is that one BOS).
std::vector<int64_t> expected_ids(const Tokenizer& tok, const std::string& text) {
  std::vector<int64_t> ids = to_i64(tok.encode(text, false));
  const int64_t bos = *tok.bos_id();
  if (ids.empty() || ids[0] != bos) ids.insert(ids.begin(), bos);
  return ids;
}

void expect_one_bos(const std::string& chat_template, bool template_writes_bos) {
  SCOPED_TRACE(chat_template);
  auto tok = tokenizer_with(chat_template);
  HfModel m = tiny_model(tok);
  const int64_t bos = *tok->bos_id();
  const std::string prompt = m.apply_chat_template({{"user", "hello world"}});
  ASSERT_EQ(starts_with(prompt, "<s>"), template_writes_bos) << prompt;
  const std::string cont = " the answer";

  const std::vector<int64_t> ids = expected_ids(*tok, prompt + cont);
  ASSERT_EQ(std::count(ids.begin(), ids.end(), bos), 1);
  ASSERT_EQ(ids[0], bos);
  const size_t n_ctx = expected_ids(*tok, prompt).size();
  ASSERT_LT(n_ctx, ids.size());
  const double want = reference_logprob(m, ids, n_ctx);

  // Two BOS would score differently: the check below can fail.
  std::vector<int64_t> twice = ids;
  twice.insert(twice.begin(), bos);
  EXPECT_GT(std::abs(reference_logprob(m, twice, n_ctx + 1) - want), 1e-2);

  const auto got = m.loglikelihood({{prompt, cont}});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NEAR(got[0].logprob, want, kTol);
  EXPECT_EQ(got[0].n_tokens, static_cast<int64_t>(ids.size() - n_ctx));

  // Generation starts from the same single-BOS context.
  GenerateRequest g;
  g.context = prompt;
  g.max_new_tokens = 6;
  const std::vector<int64_t> ctx(ids.begin(), ids.begin() + static_cast<long>(n_ctx));
  const auto tokens = m.generate_tokens({ctx}, g);
  ASSERT_EQ(tokens.size(), 1u);
  std::vector<int64_t> all = ctx;
  all.insert(all.end(), tokens[0].begin(), tokens[0].end());
  const std::string full = tok->decode(std::vector<int32_t>(all.begin(), all.end()), true);
  const std::string head = tok->decode(std::vector<int32_t>(ctx.begin(), ctx.end()), true);
  ASSERT_TRUE(starts_with(full, head));
  EXPECT_EQ(m.generate_until({g}), std::vector<std::string>{full.substr(head.size())});
}

TEST(BosEvalTest, TemplateThatWritesBosGetsItOnce) {
  expect_one_bos("{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                 "{% if add_generation_prompt %}[assistant]{% endif %}",
                 true);
}

TEST(BosEvalTest, TemplateWithoutBosGetsTheTokenizersOne) {
  expect_one_bos("{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}"
                 "{% if add_generation_prompt %}[assistant]{% endif %}",
                 false);
}

}  // namespace
