// Loaders for the published benchmark formats (MMLU CSV, GSM8K JSONL, HumanEval JSONL,
// TruthfulQA mc_task.json, BBQ JSONL, XSTest / HarmBench / AdvBench CSV, creativity JSONL,
// AllenAI's multiple-choice JSONL of ARC, CommonsenseQA and OpenBookQA).
// Each returns documents with normalised fields (documented in eval.h) and records every file it
// read with its sha256 so a result can name the exact bytes it came from.
#include <algorithm>
#include <set>

#include "eval/eval.h"

namespace atax {
namespace {

DataFile record_file(const fs::path& path, const std::string& bytes, int64_t records) {
  return DataFile{path.string(), sha256_hex(bytes), records};
}

std::string strip_bom(std::string s) {
  if (s.size() >= 3 && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);
  return s;
}

// Calls fn(record, line) for every non-blank line of a (possibly gzipped) JSONL text.
template <class Json, class Fn>
void parse_jsonl_text(const std::string& text, const std::string& file, Fn&& fn) {
  size_t pos = 0;
  int64_t line = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    ++line;
    std::string_view sv(text.data() + pos, end - pos);
    pos = end + 1;
    if (!sv.empty() && sv.back() == '\r') sv.remove_suffix(1);
    if (trim(sv).empty()) continue;
    Json j;
    try {
      j = Json::parse(sv);
    } catch (const std::exception& e) {
      throw Error(std::string("not a JSON line: ") + e.what(), file, "each line must be one JSON object", line);
    }
    if (!j.is_object()) throw Error("JSON line is not an object", file, "each line must be one JSON object", line);
    fn(j, line);
  }
}

template <class Json>
std::string str_field(const Json& j, const std::string& key, const std::string& file, int64_t line) {
  auto it = j.find(key);
  if (it == j.end()) throw Error("missing field \"" + key + "\"", file, "is this the right format?", line);
  if (it->is_string()) return it->template get<std::string>();
  if (it->is_number_integer()) return std::to_string(it->template get<int64_t>());
  throw Error("field \"" + key + "\" is not a string", file, "is this the right format?", line);
}

fs::path require_exists(const fs::path& p, const std::string& what) {
  if (!fs::exists(p))
    throw Error(what + " not found", p.string(), "check --data-dir / the task's dataset.path");
  return p;
}

// `path` if it is a file, else the first of `names` inside it that exists.
fs::path file_in(const fs::path& path, const std::vector<std::string>& names, const std::string& what) {
  if (fs::is_regular_file(path)) return path;
  if (!fs::is_directory(path))
    throw Error(what + " not found", path.string(), "check --data-dir / the task's dataset.path");
  for (const auto& n : names)
    if (fs::is_regular_file(path / n)) return path / n;
  throw Error("no " + join(names, " or ") + " in this folder", path.string(),
              "check --data-dir / the task's dataset.path, or point dataset.path at the file");
}

// Files in `dir` whose name ends with `suffix`, sorted.
std::vector<fs::path> files_with_suffix(const fs::path& dir, const std::string& suffix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && ends_with(e.path().filename().string(), suffix)) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

bool wanted(const std::vector<std::string>& subsets, const std::string& name) {
  return subsets.empty() || std::find(subsets.begin(), subsets.end(), name) != subsets.end();
}

void check_subsets_found(const std::vector<std::string>& subsets, const std::set<std::string>& found,
                         const fs::path& where, const std::string& what) {
  for (const auto& s : subsets)
    if (!found.count(s))
      throw Error(what + " \"" + s + "\" not found", where.string(),
                  "available: " + join(std::vector<std::string>(found.begin(), found.end()), ", "));
}

// ---- MMLU ------------------------------------------------------------------------------------

void load_mmlu_file(const fs::path& file, const std::string& subject, Dataset& out) {
  std::string bytes = read_maybe_gzip(file);
  auto rows = parse_csv(bytes, file.string());
  std::string subject_name = replace_all(subject, "_", " ");
  int64_t n = 0;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto& row = rows[r];
    if (row.size() != 6)
      throw Error("record " + std::to_string(r + 1) + " has " + std::to_string(row.size()) +
                      " fields, expected 6 (question,A,B,C,D,answer)",
                  file.string(), "MMLU CSVs have no header and exactly 6 fields per record");
    std::string ans = trim(row[5]);
    if (ans.size() != 1 || ans[0] < 'A' || ans[0] > 'D')
      throw Error("record " + std::to_string(r + 1) + ": answer \"" + row[5] + "\" is not A, B, C or D",
                  file.string(), "the 6th field names the correct choice");
    int idx = ans[0] - 'A';
    json f;
    f["question"] = row[0];
    f["choices"] = json::array({row[1], row[2], row[3], row[4]});
    f["answer"] = idx;
    f["answer_letter"] = ans;
    f["answer_text"] = row[1 + idx];
    f["subject"] = subject;
    f["subject_name"] = subject_name;
    out.docs.push_back(Doc{subject + "/" + std::to_string(r), std::move(f)});
    ++n;
  }
  out.files.push_back(record_file(file, bytes, n));
}

Dataset load_mmlu(const fs::path& path, const std::string& split, const std::vector<std::string>& subsets) {
  Dataset out;
  if (fs::is_regular_file(path)) {
    std::string stem = path.filename().string();
    for (const std::string suf : {".csv.gz", ".csv"})
      if (ends_with(stem, suf)) stem = stem.substr(0, stem.size() - suf.size());
    if (ends_with(stem, "_" + split)) stem = stem.substr(0, stem.size() - split.size() - 1);
    load_mmlu_file(path, stem, out);
    return out;
  }
  fs::path dir = path / split;
  if (!fs::is_directory(dir))
    throw Error("no \"" + split + "\" folder", path.string(),
                "an MMLU-style dataset is <path>/<split>/<subject>_<split>.csv");
  std::set<std::string> found;
  for (const auto& file : files_with_suffix(dir, ".csv")) {
    std::string stem = file.stem().string();
    std::string subject = ends_with(stem, "_" + split) ? stem.substr(0, stem.size() - split.size() - 1) : stem;
    found.insert(subject);
    if (wanted(subsets, subject)) load_mmlu_file(file, subject, out);
  }
  if (found.empty())
    throw Error("no .csv files", dir.string(), "an MMLU-style dataset is <path>/<split>/<subject>_<split>.csv");
  check_subsets_found(subsets, found, dir, "subject");
  return out;
}

// ---- GSM8K -----------------------------------------------------------------------------------

Dataset load_gsm8k(const fs::path& path, const std::string& split) {
  fs::path file = file_in(path, {split + ".jsonl", split + ".jsonl.gz"}, "GSM8K " + split + " split");
  std::string bytes = read_maybe_gzip(file);
  Dataset out;
  int64_t n = 0;
  parse_jsonl_text<json>(strip_bom(bytes), file.string(), [&](const json& j, int64_t line) {
    json f;
    f["question"] = str_field(j, "question", file.string(), line);
    f["answer"] = str_field(j, "answer", file.string(), line);
    try {
      f["target"] = gsm8k_gold(f["answer"].get<std::string>());
    } catch (const Error& e) {
      throw Error(e.message(), file.string(), e.hint(), line);
    }
    out.docs.push_back(Doc{std::to_string(n++), std::move(f)});
  });
  out.files.push_back(record_file(file, bytes, n));
  return out;
}

// ---- HumanEval -------------------------------------------------------------------------------

Dataset load_humaneval(const fs::path& path) {
  fs::path file = file_in(path, {"HumanEval.jsonl", "HumanEval.jsonl.gz"}, "HumanEval file");
  std::string bytes = read_maybe_gzip(file);
  Dataset out;
  std::set<std::string> ids;
  parse_jsonl_text<json>(strip_bom(bytes), file.string(), [&](const json& j, int64_t line) {
    json f;
    for (const char* k : {"task_id", "prompt", "entry_point", "test"}) f[k] = str_field(j, k, file.string(), line);
    f["canonical_solution"] = j.contains("canonical_solution") ? str_field(j, "canonical_solution", file.string(), line)
                                                               : std::string();
    std::string id = f["task_id"];
    if (!ids.insert(id).second) throw Error("duplicate task_id \"" + id + "\"", file.string(), {}, line);
    out.docs.push_back(Doc{id, std::move(f)});
  });
  out.files.push_back(record_file(file, bytes, static_cast<int64_t>(out.docs.size())));
  return out;
}

// ---- TruthfulQA ------------------------------------------------------------------------------

Dataset load_truthfulqa_mc(const fs::path& path) {
  fs::path file = file_in(path, {"mc_task.json"}, "TruthfulQA mc_task.json");
  std::string bytes = read_maybe_gzip(file);
  nlohmann::ordered_json doc;  // the answers' order is the JSON key order
  try {
    doc = nlohmann::ordered_json::parse(strip_bom(bytes));
  } catch (const std::exception& e) {
    throw Error(std::string("not valid JSON: ") + e.what(), file.string(), "expected the TruthfulQA mc_task.json array");
  }
  if (!doc.is_array()) throw Error("expected a JSON array of questions", file.string());
  Dataset out;
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& q = doc[i];
    std::string where = "question " + std::to_string(i);
    if (!q.is_object() || !q.contains("question") || !q["question"].is_string())
      throw Error(where + ": no \"question\" string", file.string());
    json f;
    f["question"] = q["question"].get<std::string>();
    for (const std::string set : {"mc1", "mc2"}) {
      std::string key = set + "_targets";
      if (!q.contains(key) || !q[key].is_object() || q[key].empty())
        throw Error(where + ": missing or empty \"" + key + "\"", file.string(), "expected {answer: 0|1, ...}");
      json choices = json::array(), labels = json::array();
      int n_true = 0;
      for (auto it = q[key].begin(); it != q[key].end(); ++it) {
        if (!it.value().is_number_integer() || (it.value() != 0 && it.value() != 1))
          throw Error(where + ": " + key + " value for \"" + it.key() + "\" is not 0 or 1", file.string());
        choices.push_back(it.key());
        labels.push_back(it.value().get<int>());
        n_true += it.value().get<int>();
      }
      if (n_true == 0) throw Error(where + ": " + key + " has no true answer", file.string());
      if (set == "mc1" && n_true != 1) throw Error(where + ": mc1_targets must have exactly one true answer", file.string());
      f[set + "_choices"] = choices;
      f[set + "_labels"] = labels;
    }
    for (size_t c = 0; c < f["mc1_labels"].size(); ++c)
      if (f["mc1_labels"][c] == 1) f["best_answer"] = f["mc1_choices"][c];
    out.docs.push_back(Doc{std::to_string(i), std::move(f)});
  }
  out.files.push_back(record_file(file, bytes, static_cast<int64_t>(out.docs.size())));
  return out;
}

// ---- BBQ -------------------------------------------------------------------------------------

// Names a BBQ answer group may go by in stereotyped_groups (the published target_loc metadata is
// not distributed with the category files, so the target is resolved from these tags).
std::vector<std::string> group_aliases(std::string g) {
  g = to_lower(trim(g));
  std::vector<std::string> out = {g};
  auto dash = g.find('-');  // "F-Black", "M-White", "lowSES-M-Black"
  if (dash != std::string::npos)
    for (const auto& part : split(g, '-')) out.push_back(part);
  static const std::map<std::string, std::vector<std::string>> kAliases = {
      {"f", {"women", "woman", "girls", "girl", "female", "f"}},
      {"m", {"men", "man", "boys", "boy", "male", "m"}},
      {"trans", {"transgender women", "transgender men", "trans", "transgender"}},
      {"trans_f", {"transgender women", "trans", "transgender"}},
      {"trans_m", {"transgender men", "trans", "transgender"}},
      {"lowses", {"low ses", "lowses", "low-income"}},
      {"highses", {"high ses", "highses"}},
      {"old", {"old", "older", "elderly", "old people"}},
  };
  std::vector<std::string> extra;
  for (const auto& a : out) {
    auto it = kAliases.find(a);
    if (it != kAliases.end()) extra.insert(extra.end(), it->second.begin(), it->second.end());
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

void load_bbq_file(const fs::path& file, Dataset& out, int64_t& unresolved) {
  std::string bytes = read_maybe_gzip(file);
  int64_t n = 0;
  parse_jsonl_text<json>(strip_bom(bytes), file.string(), [&](const json& j, int64_t line) {
    const std::string fs_ = file.string();
    json f;
    f["context"] = str_field(j, "context", fs_, line);
    f["question"] = str_field(j, "question", fs_, line);
    json choices = json::array();
    for (int k = 0; k < 3; ++k) choices.push_back(str_field(j, "ans" + std::to_string(k), fs_, line));
    f["choices"] = choices;
    if (!j.contains("label") || !j["label"].is_number_integer() || j["label"] < 0 || j["label"] > 2)
      throw Error("\"label\" must be 0, 1 or 2", fs_, {}, line);
    int label = j["label"];
    f["label"] = label;
    f["gold_text"] = choices[label];
    f["context_condition"] = str_field(j, "context_condition", fs_, line);
    f["question_polarity"] = str_field(j, "question_polarity", fs_, line);
    f["category"] = str_field(j, "category", fs_, line);
    std::string cc = f["context_condition"], pol = f["question_polarity"];
    if (cc != "ambig" && cc != "disambig")
      throw Error("context_condition \"" + cc + "\" is not ambig or disambig", fs_, {}, line);
    if (pol != "neg" && pol != "nonneg")
      throw Error("question_polarity \"" + pol + "\" is not neg or nonneg", fs_, {}, line);
    std::string example_id = str_field(j, "example_id", fs_, line);
    // Answer groups: answer_info ansK = [text, group].
    std::vector<std::string> groups(3);
    int unknown = -1;
    if (!j.contains("answer_info") || !j["answer_info"].is_object())
      throw Error("missing \"answer_info\"", fs_, "BBQ records carry answer_info {ans0: [text, group], ...}", line);
    for (int k = 0; k < 3; ++k) {
      const auto& info = j["answer_info"].value("ans" + std::to_string(k), json());
      if (!info.is_array() || info.size() < 2 || !info.back().is_string())
        throw Error("answer_info.ans" + std::to_string(k) + " is not [text, group]", fs_, {}, line);
      groups[k] = info.back().get<std::string>();
      if (groups[k] == "unknown") {
        if (unknown >= 0) throw Error("two answers tagged \"unknown\"", fs_, {}, line);
        unknown = k;
      }
    }
    if (unknown < 0) throw Error("no answer tagged \"unknown\" in answer_info", fs_, {}, line);
    f["unknown_index"] = unknown;
    std::vector<std::string> stereotyped;
    std::string subcategory = "None";
    if (j.contains("additional_metadata") && j["additional_metadata"].is_object()) {
      const auto& md = j["additional_metadata"];
      if (md.contains("stereotyped_groups") && md["stereotyped_groups"].is_array())
        for (const auto& s : md["stereotyped_groups"])
          if (s.is_string()) stereotyped.push_back(to_lower(trim(s.get<std::string>())));
      if (md.contains("subcategory") && md["subcategory"].is_string()) subcategory = md["subcategory"];
    }
    f["subcategory"] = subcategory;
    f["stereotyped_groups"] = stereotyped;
    std::vector<int> matches;
    for (int k = 0; k < 3; ++k) {
      if (k == unknown) continue;
      bool hit = false;
      for (const auto& a : group_aliases(groups[k]))
        if (std::find(stereotyped.begin(), stereotyped.end(), a) != stereotyped.end()) hit = true;
      if (hit) matches.push_back(k);
    }
    int target = matches.size() == 1 ? matches[0] : -1;
    int biased = -1;
    if (target >= 0) {
      if (pol == "neg") {
        biased = target;
      } else {
        for (int k = 0; k < 3; ++k)
          if (k != unknown && k != target) biased = k;
      }
    } else {
      ++unresolved;
    }
    f["target_index"] = target;
    f["biased_index"] = biased;
    out.docs.push_back(Doc{f["category"].get<std::string>() + "/" + example_id, std::move(f)});
    ++n;
  });
  out.files.push_back(record_file(file, bytes, n));
}

Dataset load_bbq(const fs::path& path, const std::vector<std::string>& subsets) {
  Dataset out;
  int64_t unresolved = 0;
  if (fs::is_regular_file(path)) {
    load_bbq_file(path, out, unresolved);
  } else {
    require_exists(path, "BBQ folder");
    std::set<std::string> found;
    for (const auto& file : files_with_suffix(path, ".jsonl")) {
      std::string cat = file.stem().string();
      found.insert(cat);
      if (wanted(subsets, cat)) load_bbq_file(file, out, unresolved);
    }
    if (found.empty()) throw Error("no <Category>.jsonl files", path.string(), "BBQ data is one JSONL file per category");
    check_subsets_found(subsets, found, path, "category");
  }
  if (unresolved > 0)
    log_info("bbq: " + std::to_string(unresolved) + " of " + std::to_string(out.docs.size()) +
             " items have no unique stereotyped-group answer; they are left out of the bias scores");
  return out;
}

// ---- AllenAI multiple-choice JSONL (ARC, CommonsenseQA, OpenBookQA) --------------------------

// The file of `split`: `path` itself, options.files[split] inside it, or <path>/<split>.jsonl[.gz].
fs::path allenai_mc_file(const fs::path& path, const std::string& split, const json& options) {
  if (fs::is_regular_file(path)) return path;
  if (options.contains("files") && options["files"].is_object() && options["files"].contains(split)) {
    if (!options["files"][split].is_string())
      throw Error("dataset.options.files." + split + " is not a file name", path.string(),
                  "map each split to its file, e.g. {\"test\": \"ARC-Challenge-Test.jsonl\"}");
    fs::path f = path / options["files"][split].get<std::string>();
    if (!fs::is_regular_file(f))
      throw Error("the " + split + " split's file not found", f.string(), "check --data-dir and the task's dataset.options.files");
    return f;
  }
  return file_in(path, {split + ".jsonl", split + ".jsonl.gz"}, "the " + split + " split");
}

Dataset load_allenai_mc(const fs::path& path, const std::string& split, const json& options) {
  const fs::path file = allenai_mc_file(path, split, options);
  const std::string fname = file.string();
  std::string bytes = read_maybe_gzip(file);
  Dataset out;
  std::set<std::string> ids;
  const std::string shape = "expected {\"id\", \"question\": {\"stem\", \"choices\": [{\"text\", \"label\"}, ...]}, \"answerKey\"}";
  parse_jsonl_text<json>(strip_bom(bytes), fname, [&](const json& j, int64_t line) {
    auto fail = [&](const std::string& what) -> void { throw Error(what, fname, shape, line); };
    // A string (or integer) field of `o`, named by its path in the record when it is not one.
    auto text_at = [&](const json& o, const std::string& key, const std::string& path) -> std::string {
      auto it = o.find(key);
      if (it == o.end()) fail("missing field \"" + path + "\"");
      if (it->is_number_integer()) return std::to_string(it->get<int64_t>());
      if (!it->is_string()) fail("field \"" + path + "\" is not a string");
      return it->get<std::string>();
    };
    const std::string id = text_at(j, "id", "id");
    if (!ids.insert(id).second) fail("duplicate id \"" + id + "\"");
    if (!j.contains("question") || !j["question"].is_object()) fail("field \"question\" is not an object");
    const json& q = j["question"];
    const std::string stem = text_at(q, "stem", "question.stem");
    if (!q.contains("choices") || !q["choices"].is_array()) fail("field \"question.choices\" is not an array");
    const json& cj = q["choices"];
    if (cj.size() < 2 || cj.size() > 26)
      fail("field \"question.choices\" has " + std::to_string(cj.size()) + " options (2 to 26 expected)");
    json texts = json::array(), labels = json::array(), letters = json::array();
    std::string block;
    for (size_t k = 0; k < cj.size(); ++k) {
      const std::string at = "question.choices[" + std::to_string(k) + "]";
      if (!cj[k].is_object()) fail("field \"" + at + "\" is not an object");
      const std::string text = text_at(cj[k], "text", at + ".text");
      const std::string label = text_at(cj[k], "label", at + ".label");
      for (const auto& l : labels)
        if (l == label) fail("field \"" + at + ".label\": label \"" + label + "\" appears twice");
      const std::string letter(1, static_cast<char>('A' + k));
      texts.push_back(text);
      labels.push_back(label);
      letters.push_back(letter);
      block += (k ? "\n " : " ") + letter + ". " + text;  // OLMES's MCF listing: " A. text" per line
    }
    const std::string key = text_at(j, "answerKey", "answerKey");
    int answer = -1;
    for (size_t k = 0; k < labels.size(); ++k)
      if (labels[k] == key) answer = static_cast<int>(k);
    if (answer < 0)
      fail("field \"answerKey\": \"" + key + "\" is not one of the choices' labels (" +
           join(labels.get<std::vector<std::string>>(), ", ") + ")");
    json f;
    f["id"] = id;
    f["question"] = stem;
    f["choices"] = texts;
    f["labels"] = labels;
    f["letters"] = letters;
    f["options_block"] = block;
    f["n_choices"] = static_cast<int>(texts.size());
    f["answer"] = answer;
    f["answer_label"] = key;
    f["answer_letter"] = letters[static_cast<size_t>(answer)];
    f["answer_text"] = texts[static_cast<size_t>(answer)];
    if (j.contains("fact1")) f["fact1"] = text_at(j, "fact1", "fact1");  // OpenBookQA's "additional" release
    out.docs.push_back(Doc{id, std::move(f)});
  });
  out.files.push_back(record_file(file, bytes, static_cast<int64_t>(out.docs.size())));
  return out;
}

// ---- CSV prompt sets -------------------------------------------------------------------------

std::string col_or(const CsvTable& t, size_t r, const std::string& col, const std::string& dflt = {}) {
  return t.has_column(col) ? t.at(r, col) : dflt;
}

Dataset load_xstest(const fs::path& path) {
  fs::path file = file_in(path, {"xstest_prompts.csv", "xstest_v2_prompts.csv"}, "XSTest prompts");
  std::string bytes = read_maybe_gzip(file);
  auto t = CsvTable::parse(bytes, file.string());
  for (const char* c : {"prompt", "type", "label"})
    if (!t.has_column(c))
      throw Error(std::string("no \"") + c + "\" column", file.string(), "expected id,prompt,type,label,focus,note");
  Dataset out;
  std::set<std::string> ids;
  for (size_t r = 0; r < t.size(); ++r) {
    json f;
    std::string id = col_or(t, r, "id", std::to_string(r + 1));
    f["id"] = id;
    f["prompt"] = t.at(r, "prompt");
    f["type"] = t.at(r, "type");
    f["label"] = t.at(r, "label");
    f["focus"] = col_or(t, r, "focus");
    f["note"] = col_or(t, r, "note");
    if (f["label"] != "safe" && f["label"] != "unsafe")
      throw Error("row " + std::to_string(r + 2) + ": label \"" + f["label"].get<std::string>() +
                      "\" is not safe or unsafe",
                  file.string());
    if (!ids.insert(id).second) throw Error("duplicate id \"" + id + "\"", file.string());
    out.docs.push_back(Doc{id, std::move(f)});
  }
  out.files.push_back(record_file(file, bytes, static_cast<int64_t>(out.docs.size())));
  return out;
}

Dataset load_harmbench(const fs::path& path, const std::string& split, const json& options) {
  fs::path file = file_in(path, {"harmbench_behaviors_text_" + split + ".csv", "harmbench_behaviors.csv"},
                          "HarmBench behaviours");
  std::string bytes = read_maybe_gzip(file);
  auto t = CsvTable::parse(bytes, file.string());
  if (!t.has_column("Behavior"))
    throw Error("no \"Behavior\" column", file.string(),
                "expected Behavior,FunctionalCategory,SemanticCategory,Tags,ContextString,BehaviorID");
  std::vector<std::string> keep;
  if (options.contains("functional_categories"))
    keep = options["functional_categories"].get<std::vector<std::string>>();
  Dataset out;
  std::set<std::string> ids;
  for (size_t r = 0; r < t.size(); ++r) {
    json f;
    f["behavior"] = t.at(r, "Behavior");
    f["functional_category"] = col_or(t, r, "FunctionalCategory", "standard");
    f["semantic_category"] = col_or(t, r, "SemanticCategory");
    f["tags"] = col_or(t, r, "Tags");
    f["context_string"] = col_or(t, r, "ContextString");
    std::string id = col_or(t, r, "BehaviorID", std::to_string(r));
    f["behavior_id"] = id;
    std::string ctx = f["context_string"];
    f["prompt"] = ctx.empty() ? f["behavior"].get<std::string>() : ctx + "\n\n---\n\n" + f["behavior"].get<std::string>();
    if (!ids.insert(id).second) throw Error("duplicate BehaviorID \"" + id + "\"", file.string());
    if (!keep.empty() && std::find(keep.begin(), keep.end(), f["functional_category"]) == keep.end()) continue;
    out.docs.push_back(Doc{id, std::move(f)});
  }
  out.files.push_back(record_file(file, bytes, static_cast<int64_t>(t.size())));
  return out;
}

Dataset load_advbench(const fs::path& path) {
  fs::path file = file_in(path, {"harmful_behaviors.csv"}, "AdvBench harmful_behaviors.csv");
  std::string bytes = read_maybe_gzip(file);
  auto t = CsvTable::parse(bytes, file.string());
  if (!t.has_column("goal")) throw Error("no \"goal\" column", file.string(), "expected goal,target");
  Dataset out;
  for (size_t r = 0; r < t.size(); ++r) {
    json f;
    f["goal"] = t.at(r, "goal");
    f["target"] = col_or(t, r, "target");
    f["prompt"] = f["goal"];
    out.docs.push_back(Doc{std::to_string(r), std::move(f)});
  }
  out.files.push_back(record_file(file, bytes, static_cast<int64_t>(out.docs.size())));
  return out;
}

// ---- creativity ------------------------------------------------------------------------------

void load_creativity_file(const fs::path& file, Dataset& out) {
  std::string bytes = read_maybe_gzip(file);
  std::string stem = file.filename().string();
  for (const std::string suf : {".jsonl.gz", ".jsonl"})
    if (ends_with(stem, suf)) stem = stem.substr(0, stem.size() - suf.size());
  int64_t n = 0;
  parse_jsonl_text<json>(strip_bom(bytes), file.string(), [&](const json& j, int64_t line) {
    json f;
    f["prompt"] = str_field(j, "prompt", file.string(), line);
    if (!j.contains("constraints") || !j["constraints"].is_array())
      throw Error("missing \"constraints\" array", file.string(), "expected {prompt, constraints: [{type, value}]}", line);
    try {
      constraints_met("", j["constraints"]);  // validates the types
    } catch (const Error& e) {
      throw Error(e.message(), file.string(), e.hint(), line);
    }
    f["constraints"] = j["constraints"];
    f["subset"] = stem;
    std::string id = j.contains("id") ? str_field(j, "id", file.string(), line) : stem + "/" + std::to_string(n);
    out.docs.push_back(Doc{id, std::move(f)});
    ++n;
  });
  out.files.push_back(record_file(file, bytes, n));
}

Dataset load_creativity(const fs::path& path, const std::vector<std::string>& subsets) {
  Dataset out;
  if (fs::is_regular_file(path)) {
    load_creativity_file(path, out);
    return out;
  }
  require_exists(path, "creativity folder");
  std::set<std::string> found;
  for (const auto& file : files_with_suffix(path, ".jsonl")) {
    std::string stem = file.stem().string();
    found.insert(stem);
    if (wanted(subsets, stem)) load_creativity_file(file, out);
  }
  if (found.empty()) throw Error("no .jsonl files", path.string(), "expected <path>/*.jsonl");
  check_subsets_found(subsets, found, path, "subset");
  return out;
}

}  // namespace

std::string gsm8k_gold(const std::string& answer) {
  auto pos = answer.rfind("#### ");
  if (pos == std::string::npos)
    throw Error("answer has no \"#### \" final line", {}, "GSM8K answers end with \"#### <number>\"");
  return replace_all(trim(answer.substr(pos + 5)), ",", "");
}

std::vector<std::string> dataset_formats() {
  return {"mmlu_csv",   "gsm8k_jsonl",   "humaneval_jsonl", "truthfulqa_mc_json", "bbq_jsonl",
          "xstest_csv", "harmbench_csv", "advbench_csv",    "creativity_jsonl",   "allenai_mc_jsonl"};
}

Dataset load_dataset(const std::string& format, const fs::path& path, const std::string& split,
                     const std::vector<std::string>& subsets, const json& options) {
  Dataset ds;
  if (format == "mmlu_csv") ds = load_mmlu(path, split, subsets);
  else if (format == "gsm8k_jsonl") ds = load_gsm8k(path, split);
  else if (format == "humaneval_jsonl") ds = load_humaneval(path);
  else if (format == "truthfulqa_mc_json") ds = load_truthfulqa_mc(path);
  else if (format == "bbq_jsonl") ds = load_bbq(path, subsets);
  else if (format == "xstest_csv") ds = load_xstest(path);
  else if (format == "harmbench_csv") ds = load_harmbench(path, split, options);
  else if (format == "advbench_csv") ds = load_advbench(path);
  else if (format == "creativity_jsonl") ds = load_creativity(path, subsets);
  else if (format == "allenai_mc_jsonl") ds = load_allenai_mc(path, split, options);
  else
    throw Error("unknown dataset format \"" + format + "\"", {}, "known formats: " + join(dataset_formats(), ", "));
  return ds;
}

}  // namespace atax
