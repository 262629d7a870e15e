// Tokenizer: loading tokenizer.json + tokenizer_config.json, encoding and decoding with the
// semantics of Hugging Face's Rust `tokenizers` library (added tokens split out first, then the
// normalizer, pre-tokenizer, BPE model and post-processor).
#include <algorithm>
#include <map>

#include "tokenizer/internal.h"

namespace atax {

using namespace tok;

namespace {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

// Byte trie over added-token contents: leftmost-longest matching (Aho-Corasick's
// MatchKind::LeftmostLongest, which HF uses) by a longest-match walk at each position.
struct Trie {
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;
    int32_t token = -1;  // index into the added-token list
  };
  std::vector<Node> nodes{1};
  std::array<bool, 256> first{};
  bool empty() const { return nodes.size() == 1; }

  void insert(std::string_view s, int32_t token) {
    if (s.empty()) return;
    int32_t cur = 0;
    for (unsigned char c : s) {
      int32_t nxt = -1;
      for (auto& [ch, n] : nodes[cur].next)
        if (ch == c) nxt = n;
      if (nxt < 0) {
        nxt = int32_t(nodes.size());
        nodes[cur].next.emplace_back(c, nxt);
        nodes.emplace_back();
      }
      cur = nxt;
    }
    if (nodes[cur].token < 0) nodes[cur].token = token;
    first[(unsigned char)s[0]] = true;
  }

  // Length of the longest token starting at s[pos] (0 if none); sets `token`.
  size_t longest(std::string_view s, size_t pos, int32_t& token) const {
    int32_t cur = 0;
    size_t best = 0;
    for (size_t i = pos; i < s.size(); ++i) {
      int32_t nxt = -1;
      for (auto& [ch, n] : nodes[cur].next)
        if (ch == (unsigned char)s[i]) {
          nxt = n;
          break;
        }
      if (nxt < 0) break;
      cur = nxt;
      if (nodes[cur].token >= 0) {
        best = i + 1 - pos;
        token = nodes[cur].token;
      }
    }
    return best;
  }
};

struct Segment {
  size_t b, e;
  int32_t token;  // index into added tokens, or -1 for text
};

bool ends_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t k = s.size() - 1;
  while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) --k;
  size_t j = k;
  const uint32_t cp = utf8_next(s, j);
  return is_alphanumeric(cp) || cp == '_';
}

bool starts_with_word(std::string_view s) {
  if (s.empty()) return false;
  size_t j = 0;
  const uint32_t cp = utf8_next(s, j);
  return is_alphanumeric(cp) || cp == '_';
}

std::optional<std::string> token_string(const json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string())
    return (*it)["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

struct Tokenizer::Impl {
  std::string name;
  json tok_json, config;
  std::unique_ptr<BpeModel> model;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<Decoder> decoder;
  PostProcessor post;
  std::vector<AddedToken> added;
  Trie raw_trie, norm_trie;
  std::vector<std::string> id_to_token;  // model vocab overlaid with added tokens
  std::vector<bool> defined, special;
  Vocab added_by_content;
  std::optional<int32_t> bos, eos, pad;
  std::string bos_token, eos_token;
  std::string chat_template;  // the default template's text ("" = none)
  json chat_template_value;   // tokenizer_config's chat_template (string or named list)
  // Parsed templates by selection key, made on first use.
  mutable std::mutex template_mutex;
  mutable std::map<std::string, std::shared_ptr<const ChatTemplate>> templates;

  std::optional<int32_t> token_to_id(std::string_view t) const {
    if (auto it = added_by_content.find(t); it != added_by_content.end()) return it->second;
    if (auto it = model->vocab.find(t); it != model->vocab.end()) return it->second;
    return std::nullopt;
  }

  // HF AddedVocabulary::find_matches: added tokens in `s`, honouring single_word/lstrip/rstrip.
  void find_matches(std::string_view s, const Trie& trie, std::vector<Segment>& out) const {
    size_t start_offset = 0, pos = 0;
    while (pos < s.size()) {
      if (!trie.first[(unsigned char)s[pos]]) {
        ++pos;
        continue;
      }
      int32_t tok = -1;
      const size_t len = trie.longest(s, pos, tok);
      if (len == 0) {
        ++pos;
        continue;
      }
      size_t start = pos, stop = pos + len;
      pos = stop;
      const AddedToken& t = added[tok];
      if (t.single_word) {
        const bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
        const bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) {
        size_t k = start;
        while (k > 0) {
          size_t b = k - 1;
          while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80) --b;
          size_t j = b;
          if (!is_whitespace(utf8_next(s, j))) break;
          k = b;
        }
        start = std::max(k, start_offset);
      }
      if (t.rstrip) {
        size_t j = stop;
        while (j < s.size()) {
          size_t n = j;
          if (!is_whitespace(utf8_next(s, n))) break;
          j = n;
        }
        stop = j;
        pos = std::max(pos, stop);
      }
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, tok});
      start_offset = stop;
    }
    if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
  }

  void encode_piece(std::string piece, bool at_text_start, std::vector<int32_t>& ids) const {
    if (!pre_tokenizer) {
      model->encode_word(piece, ids);
      return;
    }
    std::vector<std::string> pieces;
    pieces.push_back(std::move(piece));
    pre_tokenizer->pre_tokenize(pieces, at_text_start);
    for (const std::string& p : pieces) model->encode_word(p, ids);
  }

  void encode_text(std::string_view text, std::vector<int32_t>& ids) const {
    std::vector<Segment> segs;
    find_matches(text, raw_trie, segs);
    std::vector<Segment> sub;
    for (const Segment& s : segs) {
      if (s.token >= 0) {
        ids.push_back(added[s.token].id);
        continue;
      }
      std::string piece(text.substr(s.b, s.e - s.b));
      if (normalizer) normalizer->normalize(piece);
      if (piece.empty()) continue;  // HF drops pieces that normalize to nothing
      if (norm_trie.empty()) {
        encode_piece(std::move(piece), s.b == 0, ids);
        continue;
      }
      sub.clear();
      find_matches(piece, norm_trie, sub);
      for (const Segment& q : sub) {
        if (q.token >= 0) ids.push_back(added[q.token].id);
        else encode_piece(piece.substr(q.b, q.e - q.b), s.b == 0 && q.b == 0, ids);
      }
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------------------------

Tokenizer Tokenizer::load(const fs::path& path) {
  fs::path tok_path = path, dir = path.parent_path();
  if (fs::is_directory(path)) {
    tok_path = path / "tokenizer.json";
    dir = path;
    if (!fs::exists(tok_path))
      throw Error("no tokenizer.json in this folder", path.string(),
                  "pass a Hugging Face model folder or the path of a tokenizer.json file");
  } else if (!fs::exists(path)) {
    throw Error("tokenizer file does not exist", path.string(),
                "pass a Hugging Face model folder or the path of a tokenizer.json file");
  }
  json tj = read_json(tok_path);
  json config = json::object();
  const fs::path config_path = dir / "tokenizer_config.json";
  if (fs::exists(config_path)) {
    config = read_json(config_path);
    if (!config.is_object())
      throw Error("tokenizer_config.json is not a JSON object", config_path.string(),
                  "it should hold the keys of a Hugging Face tokenizer_config.json");
  }
  // transformers prefers a chat_template.jinja file beside the tokenizer to the config's template.
  if (fs::exists(dir / "chat_template.jinja")) config["chat_template"] = read_file(dir / "chat_template.jinja");
  return build(std::move(tj), std::move(config), tok_path.string());
}

Tokenizer Tokenizer::from_json(const json& tj, const json& tokenizer_config, const std::string& name) {
  return build(tj, tokenizer_config, name);
}

Tokenizer Tokenizer::build(json tok_json, json tokenizer_config, const std::string& name) {
  auto impl = std::make_shared<Impl>();
  impl->name = name;
  impl->tok_json = std::move(tok_json);
  impl->config = tokenizer_config.is_object() ? std::move(tokenizer_config) : json::object();
  const json& tj = impl->tok_json;
  const std::string& file = name;
  if (!tj.is_object()) fail(file, "the top level is not a JSON object");
  const auto mit = tj.find("model");
  if (mit == tj.end() || !mit->is_object()) fail(file, "there is no \"model\" object");
  std::string type = mit->value("type", std::string());
  if (type.empty() && mit->contains("merges")) type = "BPE";
  if (type != "BPE")
    fail(file, "model type \"" + type + "\" is not supported (only BPE)",
         "atax supports BPE tokenizers (byte-level as in GPT-2/Llama-3/Qwen, or SentencePiece-style BPE as "
         "in Llama-2/Mistral); WordPiece, Unigram and WordLevel models are not");
  int64_t n_added = 0;
  if (auto at = tj.find("added_tokens"); at != tj.end() && at->is_array()) n_added = int64_t(at->size());
  impl->model = parse_bpe_model(*mit, file, n_added);
  impl->normalizer = parse_normalizer(tj.value("normalizer", json()), file);
  impl->pre_tokenizer = parse_pre_tokenizer(tj.value("pre_tokenizer", json()), file);
  impl->decoder = parse_decoder(tj.value("decoder", json()), file);

  // Added tokens.
  int32_t max_id = int32_t(impl->model->id_to_token.size()) - 1;
  if (auto at = tj.find("added_tokens"); at != tj.end() && !at->is_null()) {
    if (!at->is_array()) fail(file, "added_tokens must be an array");
    for (size_t k = 0; k < at->size(); ++k) {
      const json& e = (*at)[k];
      const std::string where = "added_tokens[" + std::to_string(k) + "]";
      if (!e.is_object() || !e.contains("content") || !e["content"].is_string() || e["content"].get<std::string>().empty())
        fail(file, where + " has no non-empty \"content\" string");
      if (!e.contains("id") || !e["id"].is_number_integer() || e["id"].get<int64_t>() < 0 ||
          e["id"].get<int64_t>() > INT32_MAX)
        fail(file, where + " has no non-negative integer \"id\"");
      // Ids are dense: none lies past every token the file defines (it would reserve a slot for
      // each id below it).
      const int64_t n_defined = int64_t(impl->model->vocab.size()) + int64_t(at->size());
      if (e["id"].get<int64_t>() > max_token_id(n_defined))
        fail(file, where + " has id " + std::to_string(e["id"].get<int64_t>()) + ", but the file defines only " +
                       std::to_string(n_defined) + " tokens",
             "ids may have gaps, but not past " + std::to_string(max_token_id(n_defined)) + " for a file of this size");
      AddedToken t;
      t.content = e["content"].get<std::string>();
      t.id = e["id"].get<int32_t>();
      auto flag = [&](const char* key, bool dflt) {
        auto it = e.find(key);
        if (it == e.end() || it->is_null()) return dflt;
        if (!it->is_boolean()) fail(file, where + "." + key + " must be true or false");
        return it->get<bool>();
      };
      t.special = flag("special", false);
      t.lstrip = flag("lstrip", false);
      t.rstrip = flag("rstrip", false);
      t.single_word = flag("single_word", false);
      t.normalized = flag("normalized", !t.special);
      // HF gives an added token that is already in the vocab the vocab's id.
      if (auto it = impl->model->vocab.find(t.content); it != impl->model->vocab.end()) t.id = it->second;
      if (impl->added_by_content.count(t.content)) continue;
      impl->added_by_content.emplace(t.content, t.id);
      max_id = std::max(max_id, t.id);
      impl->added.push_back(std::move(t));
    }
  }
  impl->id_to_token.assign(size_t(max_id + 1), std::string());
  impl->defined.assign(size_t(max_id + 1), false);
  impl->special.assign(size_t(max_id + 1), false);
  for (size_t id = 0; id < impl->model->id_to_token.size(); ++id) {
    if (impl->model->id_to_token[id].empty()) continue;
    impl->id_to_token[id] = impl->model->id_to_token[id];
    impl->defined[id] = true;
  }
  for (size_t k = 0; k < impl->added.size(); ++k) {
    const AddedToken& t = impl->added[k];
    impl->id_to_token[t.id] = t.content;
    impl->defined[t.id] = true;
    impl->special[t.id] = t.special;
    if (!t.normalized) {
      impl->raw_trie.insert(t.content, int32_t(k));
    } else {
      std::string c = t.content;
      if (impl->normalizer) impl->normalizer->normalize(c);
      impl->norm_trie.insert(c, int32_t(k));
    }
  }

  auto resolve = [&](const std::string& t) { return impl->token_to_id(t); };
  impl->post = parse_post_processor(tj.value("post_processor", json()), file, resolve);

  // tokenizer_config.json: special tokens, add_bos/add_eos, chat template.
  const json& cfg = impl->config;
  const std::string cfg_name = (fs::path(file).parent_path() / "tokenizer_config.json").string();
  auto special_id = [&](const char* key, std::string* text) -> std::optional<int32_t> {
    auto s = token_string(cfg, key);
    if (!s) return std::nullopt;
    if (text) *text = *s;
    auto id = impl->token_to_id(*s);
    if (!id)
      throw Error(std::string(key) + " \"" + *s + "\" is not a token of the tokenizer", cfg_name,
                  "the token must be in tokenizer.json's vocab or added_tokens");
    return id;
  };
  impl->bos = special_id("bos_token", &impl->bos_token);
  impl->eos = special_id("eos_token", &impl->eos_token);
  impl->pad = special_id("pad_token", nullptr);
  if (cfg.empty()) {
    // No config: the post-processor's leading token is the BOS; a conventional EOS if present.
    if (impl->post.active && !impl->post.prefix.empty()) {
      impl->bos = impl->post.prefix.front();
      impl->bos_token = impl->id_to_token[*impl->bos];
    }
    for (const char* e : {"</s>", "<|endoftext|>", "<|end_of_text|>"}) {
      auto it = impl->added_by_content.find(std::string_view(e));
      if (it != impl->added_by_content.end() && impl->special[it->second]) {
        impl->eos = it->second;
        impl->eos_token = e;
        break;
      }
    }
  }
  // transformers' LlamaTokenizerFast (and a config that sets add_bos_token / add_eos_token)
  // replaces the post-processor by the template "[bos] $A [eos]".
  const std::string cls = cfg.value("tokenizer_class", std::string());
  const bool llama_class = cls == "LlamaTokenizer" || cls == "LlamaTokenizerFast" || cls == "CodeLlamaTokenizer" ||
                           cls == "CodeLlamaTokenizerFast" || cls == "GemmaTokenizer" || cls == "GemmaTokenizerFast";
  if (llama_class || cfg.contains("add_bos_token") || cfg.contains("add_eos_token")) {
    auto flag = [&](const char* key, bool dflt) {
      auto it = cfg.find(key);
      if (it == cfg.end() || it->is_null()) return dflt;
      if (!it->is_boolean()) throw Error(std::string(key) + " must be true or false", cfg_name);
      return it->get<bool>();
    };
    const bool add_bos = flag("add_bos_token", llama_class);
    const bool add_eos = flag("add_eos_token", false);
    if (add_bos && !impl->bos)
      throw Error("add_bos_token is true but there is no bos_token", cfg_name, "set bos_token or add_bos_token: false");
    if (add_eos && !impl->eos)
      throw Error("add_eos_token is true but there is no eos_token", cfg_name, "set eos_token or add_eos_token: false");
    PostProcessor pp;
    pp.active = true;
    if (add_bos) pp.prefix = {*impl->bos};
    if (add_eos) pp.suffix = {*impl->eos};
    impl->post = pp;
  }
  if (auto ct = cfg.find("chat_template"); ct != cfg.end()) {
    impl->chat_template_value = *ct;
    if (ct->is_string()) {
      impl->chat_template = ct->get<std::string>();
    } else if (ct->is_array()) {
      // [{"name": "default", "template": ...}, ...]
      for (const json& e : *ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          impl->chat_template = e["template"].get<std::string>();
    }
  }

  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding
// ---------------------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::string fixed;
  if (!utf8_valid(text)) {
    fixed = utf8_lossy(text);
    text = fixed;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  const bool post = add_special_tokens && impl_->post.active;
  if (post) ids = impl_->post.prefix;
  impl_->encode_text(text, ids);
  if (post) ids.insert(ids.end(), impl_->post.suffix.begin(), impl_->post.suffix.end());
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  const int32_t n = vocab_size();
  for (int32_t id : ids) {
    if (id < 0 || id >= n)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (size " + std::to_string(n) + ")",
                  impl_->name, "the ids were not produced by this tokenizer");
    if (!impl_->defined[id]) continue;
    if (skip_special_tokens && impl_->special[id]) continue;
    toks.push_back(impl_->id_to_token[id]);
  }
  if (!impl_->decoder) return join(toks, " ");
  impl_->decoder->decode_chain(toks);
  std::string out;
  for (const std::string& t : toks) out += t;
  return out;
}

std::vector<std::string> Tokenizer::tokens(const std::vector<int32_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (int32_t id : ids) out.push_back(id_to_token(id));
  return out;
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->id_to_token.size()); }

std::string Tokenizer::id_to_token(int32_t id) const {
  if (id < 0 || id >= vocab_size() || !impl_->defined[id])
    throw Error("token id " + std::to_string(id) + " is not in the vocabulary", impl_->name);
  return impl_->id_to_token[id];
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && impl_->special[id];
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }

std::vector<int32_t> Tokenizer::stop_ids() const {
  std::vector<int32_t> out;
  if (impl_->eos) out.push_back(*impl_->eos);
  for (const char* t : {"<|im_end|>", "<|eot_id|>"})
    if (auto id = token_to_id(t); id && std::find(out.begin(), out.end(), *id) == out.end()) out.push_back(*id);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------------------------

ChatFormat Tokenizer::chat_format() const {
  if (chat_override_) return *chat_override_;
  const std::string cfg_name = (fs::path(impl_->name).parent_path() / "tokenizer_config.json").string();
  if (impl_->chat_template.empty())
    throw Error("the tokenizer has no chat_template", cfg_name,
                "pass --chat-template chatml|llama3|llama2|plain to choose the chat format");
  return detect_chat_format(impl_->chat_template, cfg_name);
}

void Tokenizer::set_chat_format(ChatFormat f) { chat_override_ = f; }

void Tokenizer::set_chat_template_name(const std::string& name) {
  const std::string cfg_name = (fs::path(impl_->name).parent_path() / "tokenizer_config.json").string();
  select_chat_template(impl_->chat_template_value, cfg_name, name);  // fails for an unknown name
  chat_template_name_ = name;
}

bool Tokenizer::has_chat_template() const { return !impl_->chat_template_value.is_null(); }

namespace {

// The model's template for this selection, parsed once per tokenizer.
std::shared_ptr<const ChatTemplate> model_template(const Tokenizer::Impl& impl, const std::string& wanted,
                                                   bool has_tools) {
  const std::string cfg_name = (fs::path(impl.name).parent_path() / "tokenizer_config.json").string();
  std::optional<ChatTemplateSource> src = select_chat_template(impl.chat_template_value, cfg_name, wanted, has_tools);
  if (!src || src->text.empty())
    throw Error("the tokenizer has no chat_template", cfg_name,
                "pass --chat-template chatml|llama3|llama2|plain to choose the chat format");
  std::lock_guard<std::mutex> lock(impl.template_mutex);
  auto it = impl.templates.find(src->name);
  if (it == impl.templates.end())
    it = impl.templates.emplace(src->name, std::make_shared<const ChatTemplate>(ChatTemplate::parse(src->text, src->name))).first;
  return it->second;
}

}  // namespace

std::string Tokenizer::apply_chat_template(const ordered_json& messages, bool add_generation_prompt,
                                           const ordered_json& tools, const ordered_json& extra) const {
  if (!messages.is_array()) throw Error("chat messages must be a JSON array", impl_->name);
  if (chat_override_) {
    // The built-in formats take role/content messages only.
    if (!tools.is_null())
      throw Error("the built-in chat format " + chat_format_name(*chat_override_) + " cannot show tools", {},
                  "use the model's own chat template for tool use");
    std::vector<ChatMessage> plain;
    for (const auto& m : messages) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        throw Error("each chat message must be an object with a string \"role\"", impl_->name);
      const auto content = m.find("content");
      if (content != m.end() && !content->is_string() && !content->is_null())
        throw Error("the built-in chat formats take string message contents", impl_->name);
      plain.push_back({m["role"].get<std::string>(),
                       content == m.end() || content->is_null() ? std::string() : content->get<std::string>()});
    }
    return render_chat(*chat_override_, plain, add_generation_prompt);
  }
  const bool has_tools = !tools.is_null();
  std::shared_ptr<const ChatTemplate> t = model_template(*impl_, chat_template_name_, has_tools);
  ordered_json vars = special_token_vars(impl_->config);
  vars["messages"] = messages;
  vars["tools"] = tools;
  vars["documents"] = nullptr;
  vars["add_generation_prompt"] = add_generation_prompt;
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) vars[it.key()] = it.value();
  return t->render(vars);
}

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const {
  if (chat_override_) return render_chat(*chat_override_, messages, add_generation_prompt);
  ordered_json list = ordered_json::array();
  for (const ChatMessage& m : messages) {
    ordered_json o = ordered_json::object();
    o["role"] = m.role;
    o["content"] = m.content;
    list.push_back(std::move(o));
  }
  return apply_chat_template(list, add_generation_prompt);
}

std::string Tokenizer::chat_template_identity() const {
  if (chat_override_) return "builtin:" + chat_format_name(*chat_override_);
  if (impl_->chat_template_value.is_null()) return "none";
  return model_template(*impl_, chat_template_name_, false)->identity();
}

std::vector<int32_t> Tokenizer::encode_prompt(std::string_view text) const {
  if (!impl_->post.active || impl_->post.prefix.empty()) return encode(text, true);
  std::string prefix_text;
  for (int32_t id : impl_->post.prefix) prefix_text += id_to_token(id);
  if (prefix_text.empty() || text.substr(0, prefix_text.size()) != prefix_text) return encode(text, true);
  std::vector<int32_t> ids = encode(text, false);
  ids.insert(ids.end(), impl_->post.suffix.begin(), impl_->post.suffix.end());
  return ids;
}

const json& Tokenizer::tokenizer_json() const { return impl_->tok_json; }
const json& Tokenizer::tokenizer_config() const { return impl_->config; }

void Tokenizer::save(const fs::path& dir) const {
  json cfg = impl_->config;
  if (chat_override_) cfg["chat_template"] = chat_template_jinja(*chat_override_);
  write_json_atomic(dir / "tokenizer.json", impl_->tok_json, 2);
  write_json_atomic(dir / "tokenizer_config.json", cfg, 2);
}

}  // namespace atax
