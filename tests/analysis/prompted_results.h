// A results file of one capability task (toy_knowledge, acc; one item per score) carrying the
// prompt settings `atax eval` records: what the prompt-format tests of `atax tax` read.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "eval/eval.h"

namespace atax::testing_prompt {

// `settings`: the results' settings block (chat, system_instruction, fewshot_as_multiturn,
// runtime.chat_template); `task_chat`: the task's own resolved "chat".
inline EvalResults prompted_results(const std::string& model, json settings, bool task_chat,
                                    std::vector<double> scores) {
  EvalResults r;
  r.model_name = model;
  r.settings = std::move(settings);
  TaskResult t;
  t.task = "toy_knowledge";
  t.group = "capability";
  t.primary_metric = "acc";
  t.config = {{"group", "capability"}, {"primary_metric", "acc"}, {"resolved", {{"chat", task_chat}}}};
  t.n_effective = static_cast<int64_t>(scores.size());
  MetricResult m;
  m.name = "acc";
  m.scores = std::move(scores);
  for (size_t i = 0; i < m.scores.size(); ++i) m.doc_ids.push_back("doc" + std::to_string(i));
  t.metrics = {m};
  r.tasks = {t};
  return r;
}

}  // namespace atax::testing_prompt
