// The BPE model of tokenizer.json: vocab + ranked merges, byte fallback, unk fusing,
// ignore_merges, and a word cache. Merging follows HF `tokenizers` (Word::merge_all): always the
// lowest-rank adjacent pair, the leftmost on ties.
#include <algorithm>
#include <climits>
#include <queue>

#include "tokenizer/internal.h"

namespace atax::tok {

// ---------------------------------------------------------------------------------------------
// MergeMap
// ---------------------------------------------------------------------------------------------

void MergeMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n * 2) cap <<= 1;
  if (cap <= slots_.size()) return;
  std::vector<Slot> old;
  old.swap(slots_);
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  size_ = 0;
  for (const Slot& s : old)
    if (s.key != kEmpty) insert(int32_t(s.key >> 32), int32_t(uint32_t(s.key)), s.rank, s.new_id);
}

void MergeMap::grow() { reserve(std::max<size_t>(16, size_ * 2 + 2)); }

void MergeMap::insert(int32_t a, int32_t b, int32_t rank, int32_t new_id) {
  if (slots_.empty() || (size_ + 1) * 2 > slots_.size()) grow();
  const uint64_t key = pack(a, b);
  size_t i = mix(key) & mask_;
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
  if (slots_[i].key == kEmpty) ++size_;
  slots_[i] = Slot{key, rank, new_id};
}

// ---------------------------------------------------------------------------------------------
// Encoding one word
// ---------------------------------------------------------------------------------------------

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  // Initial symbols: one per character (with the subword prefix/suffix), byte fallback for
  // characters outside the vocab, and <unk> (fused when fuse_unk) as the last resort.
  std::vector<int32_t> syms;
  syms.reserve(w.size());
  int32_t pending_unk = -1;  // an <unk> not yet emitted (fused while fuse_unk)
  std::string buf;
  size_t i = 0;
  while (i < w.size()) {
    const size_t start = i;
    i += std::min(utf8_seq_len((unsigned char)w[i]), w.size() - i);
    std::string_view ch = w.substr(start, i - start);
    const bool is_first = start == 0, is_last = i >= w.size();
    std::string_view key = ch;
    if ((!is_first && !continuing_subword_prefix.empty()) || (is_last && !end_of_word_suffix.empty())) {
      buf.clear();
      if (!is_first) buf += continuing_subword_prefix;
      buf += ch;
      if (is_last) buf += end_of_word_suffix;
      key = buf;
    }
    auto it = vocab.find(key);
    if (it != vocab.end()) {
      if (pending_unk >= 0) {
        syms.push_back(pending_unk);
        pending_unk = -1;
      }
      syms.push_back(it->second);
      continue;
    }
    if (byte_fallback) {
      bool all = true;
      for (unsigned char c : key) all = all && byte_token_ids[c] >= 0;
      if (all) {
        for (unsigned char c : key) syms.push_back(byte_token_ids[c]);
        continue;
      }
    }
    if (unk_id) {
      if (pending_unk >= 0 && !fuse_unk) syms.push_back(pending_unk);
      pending_unk = *unk_id;
    }
    // Without an unk token the character is dropped, as HF does.
  }
  if (pending_unk >= 0) syms.push_back(pending_unk);

  const size_t n = syms.size();
  if (n <= 64) {
    // Short words: rescan for the best pair after each merge (same order as the heap).
    std::vector<int32_t> rank(n, INT_MAX), nid(n, 0);
    auto score = [&](size_t k) {
      int32_t r, id;
      if (k + 1 < syms.size() && merges.find(syms[k], syms[k + 1], r, id)) {
        rank[k] = r;
        nid[k] = id;
      } else {
        rank[k] = INT_MAX;
      }
    };
    for (size_t k = 0; k + 1 < n; ++k) score(k);
    while (syms.size() > 1) {
      size_t best = 0;
      int32_t best_rank = INT_MAX;
      for (size_t k = 0; k + 1 < syms.size(); ++k)
        if (rank[k] < best_rank) {
          best_rank = rank[k];
          best = k;
        }
      if (best_rank == INT_MAX) break;
      syms[best] = nid[best];
      syms.erase(syms.begin() + best + 1);
      rank.erase(rank.begin() + best + 1);
      nid.erase(nid.begin() + best + 1);
      score(best);
      if (best > 0) score(best - 1);
    }
    out.insert(out.end(), syms.begin(), syms.end());
    return;
  }

  // Long words: linked list + priority queue of (rank, position), HF's Word::merge_all.
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Sym> s(n);
  for (size_t k = 0; k < n; ++k) s[k] = Sym{syms[k], int32_t(k) - 1, k + 1 < n ? int32_t(k + 1) : -1, true};
  struct Entry {
    int32_t rank, pos, new_id;
    bool operator<(const Entry& o) const {  // max-heap: smallest rank, then leftmost first
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Entry> queue;
  for (size_t k = 0; k + 1 < n; ++k) {
    int32_t r, id;
    if (merges.find(s[k].id, s[k + 1].id, r, id)) queue.push({r, int32_t(k), id});
  }
  while (!queue.empty()) {
    const Entry top = queue.top();
    queue.pop();
    Sym& cur = s[top.pos];
    if (!cur.alive || cur.next < 0) continue;
    const int32_t right_pos = cur.next;
    int32_t r, id;
    if (!merges.find(cur.id, s[right_pos].id, r, id) || id != top.new_id) continue;  // stale
    cur.id = top.new_id;
    s[right_pos].alive = false;
    cur.next = s[right_pos].next;
    if (cur.next >= 0) s[cur.next].prev = top.pos;
    if (cur.prev >= 0 && merges.find(s[cur.prev].id, cur.id, r, id)) queue.push({r, cur.prev, id});
    if (cur.next >= 0 && merges.find(cur.id, s[cur.next].id, r, id)) queue.push({r, top.pos, id});
  }
  for (int32_t k = 0; k >= 0 && k < int32_t(n); k = s[k].next) out.push_back(s[k].id);
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    auto it = vocab.find(word);
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cacheable = word.size() < kCacheMaxWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu);
    auto it = cache.find(word);
    if (it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t before = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::vector<int32_t> ids(out.begin() + before, out.end());
    std::lock_guard<std::mutex> lock(cache_mu);
    if (cache.size() >= kCacheMaxEntries) cache.clear();
    cache.emplace(std::string(word), std::move(ids));
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

namespace {

std::optional<std::string> opt_string(const json& model, const char* key, const std::string& file) {
  auto it = model.find(key);
  if (it == model.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) fail(file, std::string("model.") + key + " must be a string or null");
  return it->get<std::string>();
}

bool opt_bool(const json& model, const char* key, const std::string& file) {
  auto it = model.find(key);
  if (it == model.end() || it->is_null()) return false;
  if (!it->is_boolean()) fail(file, std::string("model.") + key + " must be true or false");
  return it->get<bool>();
}

}  // namespace

std::unique_ptr<BpeModel> parse_bpe_model(const json& model, const std::string& file, int64_t extra_ids) {
  auto m = std::make_unique<BpeModel>();
  const auto vit = model.find("vocab");
  if (vit == model.end() || !vit->is_object()) fail(file, "model.vocab is missing or not an object");
  m->vocab.reserve(vit->size());
  int32_t max_id = -1;
  for (auto it = vit->begin(); it != vit->end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 ||
        it.value().get<int64_t>() > INT32_MAX)
      fail(file, "model.vocab[\"" + it.key() + "\"] is not a non-negative integer id");
    const auto id = int32_t(it.value().get<int64_t>());
    // Ids may have gaps, but an id far past every token the file defines is absurd (each id
    // reserves a slot for every id below it).
    const int64_t n_defined = int64_t(vit->size()) + std::max<int64_t>(extra_ids, 0);
    if (int64_t(id) > max_token_id(n_defined))
      fail(file, "model.vocab[\"" + it.key() + "\"] has id " + std::to_string(id) + ", but the file defines only " +
                     std::to_string(n_defined) + " tokens",
           "ids may have gaps, but not past " + std::to_string(max_token_id(n_defined)) + " for a file of this size");
    m->vocab.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  m->id_to_token.assign(size_t(max_id + 1), std::string());
  for (const auto& [tok, id] : m->vocab) {
    if (!m->id_to_token[id].empty())
      fail(file, "model.vocab gives id " + std::to_string(id) + " to both \"" + m->id_to_token[id] +
                     "\" and \"" + tok + "\"");
    m->id_to_token[id] = tok;
  }

  if (auto d = model.find("dropout"); d != model.end() && !d->is_null()) {
    if (!d->is_number()) fail(file, "model.dropout must be a number or null");
    if (d->get<double>() > 0)
      fail(file, "model.dropout > 0 (BPE dropout) is not supported: encoding would be random",
           "set \"dropout\": null in the tokenizer.json used for inference");
  }
  m->byte_fallback = opt_bool(model, "byte_fallback", file);
  m->fuse_unk = opt_bool(model, "fuse_unk", file);
  m->ignore_merges = opt_bool(model, "ignore_merges", file);
  m->continuing_subword_prefix = opt_string(model, "continuing_subword_prefix", file).value_or("");
  m->end_of_word_suffix = opt_string(model, "end_of_word_suffix", file).value_or("");
  if (auto unk = opt_string(model, "unk_token", file)) {
    auto it = m->vocab.find(*unk);
    if (it == m->vocab.end())
      fail(file, "model.unk_token \"" + *unk + "\" is not in model.vocab");
    m->unk_id = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    auto it = m->vocab.find(std::string_view(name));
    m->byte_token_ids[b] = it == m->vocab.end() ? -1 : it->second;
  }

  const auto mit = model.find("merges");
  if (mit == model.end() || mit->is_null()) return m;  // no merges: characters only
  if (!mit->is_array()) fail(file, "model.merges must be an array");
  m->merges.reserve(mit->size());
  const size_t prefix_len = m->continuing_subword_prefix.size();
  std::string_view a, b;
  std::string merged;
  for (size_t rank = 0; rank < mit->size(); ++rank) {
    const json& e = (*mit)[rank];
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos)
        fail(file, "model.merges[" + std::to_string(rank) + "] = \"" + s + "\" is not of the form \"a b\"");
      a = std::string_view(s).substr(0, sp);
      b = std::string_view(s).substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get_ref<const std::string&>();
      b = e[1].get_ref<const std::string&>();
    } else {
      fail(file, "model.merges[" + std::to_string(rank) + "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto ia = m->vocab.find(a), ib = m->vocab.find(b);
    if (ia == m->vocab.end() || ib == m->vocab.end())
      fail(file, "model.merges[" + std::to_string(rank) + "] references \"" +
                     std::string(ia == m->vocab.end() ? a : b) + "\", which is not in model.vocab");
    merged.assign(a);
    if (b.size() >= prefix_len) merged.append(b.substr(prefix_len));
    auto im = m->vocab.find(merged);
    if (im == m->vocab.end())
      fail(file, "model.merges[" + std::to_string(rank) + "] produces \"" + merged +
                     "\", which is not in model.vocab");
    m->merges.insert(ia->second, ib->second, int32_t(rank), im->second);
  }
  return m;
}

}  // namespace atax::tok
