// The optimisation loop shared by pretraining, SFT and DPO: AdamW with warmup and linear/cosine
// decay, gradient accumulation across data-parallel ranks (each rank takes its shard of every
// global micro-batch), clipping, a JSON log line per step, atomic checkpoints and exact resume.

#include <cmath>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "dist/dist.h"
#include "train/loop.h"

namespace atax::train_detail {

namespace {

constexpr const char* kLogFile = "train_log.jsonl";
constexpr const char* kConfigFile = "train_config.json";
constexpr const char* kResultFile = "train_result.json";
constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kStateBlob = "trainer_state.pt";

double lr_at(const TrainCommon& c, int64_t step, int64_t total) {
  int64_t warmup = c.warmup_steps > 0 ? c.warmup_steps
                                      : static_cast<int64_t>(std::ceil(c.warmup_ratio * static_cast<double>(total)));
  if (step < warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (c.schedule == "constant") return c.lr;
  double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, total - warmup));
  progress = std::clamp(progress, 0.0, 1.0);
  const double floor = c.min_lr_ratio;
  if (c.schedule == "cosine") return c.lr * (floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * progress)));
  return c.lr * (1 - progress * (1 - floor));  // linear
}

std::optional<fs::path> latest_checkpoint(const fs::path& out) {
  fs::path dir = out / "checkpoints";
  if (!fs::is_directory(dir)) return std::nullopt;
  std::optional<fs::path> best;
  int64_t best_step = -1;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (!starts_with(name, "step-") || !fs::exists(e.path() / kStateFile)) continue;
    int64_t step = std::atoll(name.c_str() + 5);
    if (step > best_step) {
      best_step = step;
      best = e.path();
    }
  }
  return best;
}

std::vector<json> read_log(const fs::path& path, int64_t max_step) {
  std::vector<json> lines;
  if (!fs::exists(path)) return lines;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    if (trim(line).empty()) continue;
    try {
      json j = json::parse(line);
      if (j.value("step", int64_t{0}) <= max_step) lines.push_back(std::move(j));
    } catch (const json::exception&) {
      // A line cut by a kill: everything after the checkpoint is redone anyway.
    }
  }
  return lines;
}

std::string join_lines(const std::vector<json>& lines) {
  std::string s;
  for (const auto& l : lines) s += l.dump() + "\n";
  return s;
}

void check_common(const TrainCommon& c) {
  auto bad = [](const std::string& what, const std::string& hint) { throw Error(what, "", hint); };
  if (c.out.empty()) bad("no output folder", "pass --out DIR");
  if (!(c.lr > 0) || !std::isfinite(c.lr)) bad(fmt::format("--lr must be positive, got {}", c.lr), "e.g. --lr 5e-5");
  if (c.batch_size < 1) bad("--batch-size must be at least 1", "e.g. --batch-size 8");
  if (c.grad_accum < 1) bad("--grad-accum must be at least 1", "e.g. --grad-accum 1");
  if (c.epochs < 1 && c.max_steps <= 0) bad("--epochs must be at least 1 (or set --max-steps)", "");
  if (c.max_steps < 0)
    bad(fmt::format("--max-steps must not be negative, got {}", c.max_steps), "0 (the default) trains for --epochs");
  if (!(c.weight_decay >= 0)) bad(fmt::format("--weight-decay must not be negative, got {}", c.weight_decay), "");
  if (!(c.max_grad_norm >= 0)) bad(fmt::format("--max-grad-norm must not be negative, got {}", c.max_grad_norm),
                                   "0 turns clipping off");
  if (c.schedule != "constant" && c.schedule != "linear" && c.schedule != "cosine")
    bad("unknown --schedule \"" + c.schedule + "\"", "use constant, linear or cosine");
  if (c.warmup_ratio < 0 || c.warmup_ratio > 1) bad("--warmup-ratio must be in [0, 1]", "");
  if (c.min_lr_ratio < 0 || c.min_lr_ratio > 1) bad("--min-lr-ratio must be in [0, 1]", "");
}

}  // namespace

std::vector<int64_t> TrainTask::example_order(int64_t length, uint64_t seed) const {
  const int64_t n = num_examples();
  std::vector<int64_t> order;
  order.reserve(length);
  Rng base(seed);
  for (int64_t epoch = 0; static_cast<int64_t>(order.size()) < length; ++epoch) {
    std::vector<int64_t> perm(n);
    for (int64_t i = 0; i < n; ++i) perm[i] = i;
    Rng rng = base.fork("epoch-" + std::to_string(epoch));
    rng.shuffle(perm);
    for (int64_t i = 0; i < n && static_cast<int64_t>(order.size()) < length; ++i) order.push_back(perm[i]);
  }
  return order;
}

dist::Context& setup_runtime(const TrainCommon& c) {
  configure_threads(c.threads);  // LibTorch and OpenBLAS threads, measured there
  dist::InitOptions di;
  di.threads = c.threads;
  di.device = c.device;
  const bool first = !dist::initialized();
  dist::Context& ctx = dist::init(di);
  // init() chooses the threads only once per process; a later training in the same process (the
  // demo, a sweep) keeps one thread per rank too, instead of setup_threads' default.
  if (!first && ctx.distributed() && c.threads <= 0 && std::getenv("OMP_NUM_THREADS") == nullptr) at::set_num_threads(1);
  if (ctx.distributed()) log_info(fmt::format("{}, {}", ctx.env().describe(), thread_summary()));
  return ctx;
}

json common_to_json(const TrainCommon& c) {
  return {{"out", c.out.string()},
          {"lr", c.lr},
          {"weight_decay", c.weight_decay},
          {"adam_beta1", c.adam_beta1},
          {"adam_beta2", c.adam_beta2},
          {"adam_eps", c.adam_eps},
          {"schedule", c.schedule},
          {"warmup_steps", c.warmup_steps},
          {"warmup_ratio", c.warmup_ratio},
          {"min_lr_ratio", c.min_lr_ratio},
          {"max_grad_norm", c.max_grad_norm},
          {"batch_size", c.batch_size},
          {"grad_accum", c.grad_accum},
          {"epochs", c.epochs},
          {"max_steps", c.max_steps},
          {"seed", c.seed},
          {"save_every", c.save_every},
          {"keep_checkpoints", c.keep_checkpoints},
          {"resume", c.resume},
          {"eval_every", c.eval_every},
          {"device", c.device},
          {"threads", c.threads},
          {"on_bad_line", c.on_bad_line == BadLinePolicy::kSkip ? "skip" : "fail"},
          {"max_length", c.max_length},
          {"drop_over_length", c.drop_over_length},
          {"chat_template", c.chat_template}};
}

json training_identity(const json& config) {
  json id = config;
  for (const char* k : {"out", "save_every", "keep_checkpoints", "resume", "eval_every", "device", "threads",
                        "progress", "ref_cache"})
    id.erase(k);
  return id;
}

bool name_matches(const std::string& name, const std::string& pattern) {
  if (pattern.find('*') == std::string::npos) return name.find(pattern) != std::string::npos;
  // Glob with '*' only: iterative match with backtracking to the last star.
  size_t n = 0, p = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (p < pattern.size() && pattern[p] == name[n]) {
      ++p;
      ++n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

int64_t layer_of(const std::string& name) {
  for (const char* marker : {".layers.", ".h."}) {
    auto pos = name.find(marker);
    if (pos == std::string::npos) continue;
    pos += std::string(marker).size();
    auto end = name.find('.', pos);
    std::string num = name.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (!num.empty() && std::all_of(num.begin(), num.end(), ::isdigit)) return std::stoll(num);
  }
  return -1;
}

void append_line(const fs::path& path, const std::string& line) {
  std::ofstream f(path, std::ios::app | std::ios::binary);
  if (!f) throw Error("cannot append to the log", path.string(), "check that the folder is writable");
  f << line << '\n';
  f.flush();
}

fs::path default_cache_dir() {
  if (const char* env = std::getenv("ATAX_CACHE_DIR"); env && *env) return fs::path(env) / "ref_logps";
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return fs::path(xdg) / "atax" / "ref_logps";
  if (const char* home = std::getenv("HOME"); home && *home) return fs::path(home) / ".cache" / "atax" / "ref_logps";
  return fs::temp_directory_path() / "atax-cache" / "ref_logps";
}

std::optional<TrainResult> finished_run(const TrainCommon& common, const json& config) {
  if (!common.resume) return std::nullopt;
  const fs::path& out = common.out;
  if (!fs::exists(out / kResultFile) || !fs::exists(out / "config.json") || !fs::exists(out / kConfigFile))
    return std::nullopt;
  json previous = read_json(out / kConfigFile);
  if (training_identity(previous) != training_identity(config))
    throw Error("the folder holds a finished run with a different configuration", (out / kConfigFile).string(),
                "use another --out, or drop --resume to train again");
  json r = read_json(out / kResultFile);
  TrainResult res;
  res.out = out;
  res.steps = r.value("steps", int64_t{0});
  res.resumed = true;
  res.already_done = true;
  res.final_metrics = r.value("final_metrics", json::object());
  res.eval = r.value("eval", json::object());
  res.eval_initial = r.value("eval_initial", json::object());
  res.data_report = r.value("data_report", json::object());
  res.seconds = r.value("seconds", 0.0);
  res.log = read_log(out / kLogFile, std::numeric_limits<int64_t>::max());
  return res;
}

namespace {

// The number of training examples; fails if loading and filtering left none.
int64_t example_count(const TrainTask& task) {
  const int64_t n = task.num_examples();
  if (n == 0)
    throw Error("no training examples left after loading and filtering", "",
                "check the data file and the filters (see the data report)");
  return n;
}

// The example order of the whole run, `length` entries long.
std::vector<int64_t> checked_order(const TrainTask& task, int64_t length, uint64_t seed) {
  std::vector<int64_t> order = task.example_order(length, seed);
  TORCH_CHECK(static_cast<int64_t>(order.size()) == length, "example_order returned the wrong length");
  return order;
}

// The task's trainable tensors in its fixed order; fails if there is none.
std::vector<torch::Tensor> trainable_params(TrainTask& task) {
  auto named = task.trainable();
  std::vector<torch::Tensor> params;
  for (auto& [name, p] : named) params.push_back(p);
  if (params.empty()) throw Error("no trainable parameters", "", "check --train-modules / --train-layers");
  return params;
}

// AdamW, weight decay on matrices only.
torch::optim::AdamW make_optimizer(const TrainCommon& c, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : params) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto defaults = torch::optim::AdamWOptions(c.lr).betas({c.adam_beta1, c.adam_beta2}).eps(c.adam_eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (!decay.empty())
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(
                                   torch::optim::AdamWOptions(defaults).weight_decay(c.weight_decay)));
  if (!no_decay.empty())
    groups.emplace_back(no_decay,
                        std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(defaults).weight_decay(0)));
  return torch::optim::AdamW(std::move(groups), defaults);
}

// Gradients are summed over ranks: each rank's loss is already divided by the global batch.
dist::GradSyncOptions summing_sync() {
  dist::GradSyncOptions sync_opts;
  sync_opts.average = false;
  return sync_opts;
}

// The state run_training's steps hand on: the run's fixed plan (example order, step count), the
// optimiser and gradient sync, and what the steps add (log lines, checkpoints, the result).
struct TrainingRun {
  TrainingRun(const TrainCommon& c, TrainTask& task, const json& config, const json& data_report);

  const TrainCommon& c;
  TrainTask& task;
  const json& config;
  const json& data_report;
  dist::Context& ctx = dist::context();
  const bool main_rank = ctx.is_main();
  const double t_start = now_seconds();
  const fs::path out = c.out;
  const int64_t n = example_count(task);
  const int64_t global_batch = c.batch_size * c.grad_accum;
  const int64_t order_len = c.max_steps > 0 ? c.max_steps * global_batch : c.epochs * n;
  const int64_t total_steps = c.max_steps > 0 ? c.max_steps : (order_len + global_batch - 1) / global_batch;
  const std::vector<int64_t> order = checked_order(task, order_len, c.seed);
  std::vector<torch::Tensor> params = trainable_params(task);
  torch::optim::AdamW optimizer = make_optimizer(c, params);
  dist::GradSync sync{params, summing_sync(), &ctx};

  int64_t start = 0;
  TrainResult result;
  std::vector<json> log;
  std::optional<fs::path> last_checkpoint;
  std::optional<Progress> progress;
  std::vector<std::string> keys;

  void resume_or_start();
  void restore_checkpoint();
  void start_progress();
  std::string state_blob();
  void write_checkpoint(int64_t steps_done);
  void train_step(int64_t step);
  Metrics accumulate_gradients(int64_t step, const std::vector<int64_t>& step_examples);
  void all_reduce_metrics(Metrics& m);
  double gradient_norm(int64_t step);
  [[noreturn]] void stop_nonfinite(const std::string& what, double value, int64_t step);
  void record_step(const json& line, int64_t step, double loss);
  void finish_result();
  void save_final();
};

// Makes the plan, optimiser and sync (the members' initializers, in order), then writes the
// configuration into OUT.
TrainingRun::TrainingRun(const TrainCommon& c_in, TrainTask& task_in, const json& config_in,
                         const json& data_report_in)
    : c(c_in), task(task_in), config(config_in), data_report(data_report_in) {
  if (main_rank) {
    fs::create_directories(out);
    write_json_atomic(out / kConfigFile, config);
  }
}

// Resumes from the last checkpoint, if asked and there is one; else starts an empty log.
void TrainingRun::resume_or_start() {
  result.out = out;
  if (c.resume) last_checkpoint = latest_checkpoint(out);
  if (last_checkpoint) {
    restore_checkpoint();
  } else if (main_rank) {
    write_file_atomic(out / kLogFile, "");
  }
}

// Restores the task, optimiser and RNG state of `last_checkpoint`, and the log up to its step.
void TrainingRun::restore_checkpoint() {
  json state = read_json(*last_checkpoint / kStateFile);
  if (training_identity(state.value("config", json::object())) != training_identity(config))
    throw Error("the checkpoint was written by a run with a different configuration",
                (*last_checkpoint / kStateFile).string(),
                "resume with the same options, or use another --out to start afresh");
  std::string blob = read_file(*last_checkpoint / kStateBlob);
  torch::serialize::InputArchive archive;
  archive.load_from(blob.data(), blob.size());
  task.load_state(*last_checkpoint, archive);
  torch::serialize::InputArchive opt_archive;
  archive.read("optimizer", opt_archive);
  optimizer.load(opt_archive);
  torch::Tensor rng_state;
  archive.read("torch_rng", rng_state);
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(rng_state);
  }
  start = state.at("step").get<int64_t>();
  log = read_log(out / kLogFile, start);
  result.resumed = true;
  if (main_rank) {
    write_file_atomic(out / kLogFile, join_lines(log));
    log_info(fmt::format("{}: resuming from {} (step {} of {})", task.name(), last_checkpoint->string(), start,
                         total_steps));
  }
}

// The progress bar, and the held-out metrics before training (or those the checkpoint kept).
void TrainingRun::start_progress() {
  if (main_rank && c.progress) {
    progress.emplace(task.name(), total_steps, "step");
    if (start > 0) progress->update(start);
  }
  keys = task.metric_keys();
  if (start == 0 && task.evaluate_at_start()) {
    result.eval_initial = task.evaluate();
  } else if (start > 0 && fs::exists(*last_checkpoint / kStateFile)) {
    result.eval_initial = read_json(*last_checkpoint / kStateFile).value("eval_initial", json::object());
  }
}

// The checkpoint archive: optimiser state, the torch RNG and the task's own state.
std::string TrainingRun::state_blob() {
  torch::serialize::OutputArchive archive, opt_archive;
  optimizer.save(opt_archive);
  archive.write("optimizer", opt_archive);
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write("torch_rng", gen.get_state());
  }
  task.save_state(archive);
  std::ostringstream blob;
  archive.save_to(blob);
  return blob.str();
}

// Writes checkpoints/step-N (the model with the trainer state) and removes the older ones.
void TrainingRun::write_checkpoint(int64_t steps_done) {
  fs::path dir = out / "checkpoints" / fmt::format("step-{:08d}", steps_done);
  ctx.on_main("checkpoint", [&] {
    std::string blob = state_blob();
    json state = {{"step", steps_done}, {"total_steps", total_steps}, {"task", task.name()}, {"config", config},
                  {"log_lines", log.size()}, {"eval_initial", result.eval_initial},
                  {"written", iso_datetime_utc()}};
    json extra = {{kStateFile, state}, {kStateBlob, blob}, {kConfigFile, config}};
    task.save_model(dir, extra);
    // Only the newest checkpoint is kept.
    for (const auto& e : fs::directory_iterator(out / "checkpoints")) {
      if (e.path() == dir) continue;
      std::error_code ec;
      fs::remove_all(e.path(), ec);
    }
  });
  last_checkpoint = dir;
}

// One optimiser step: gradients of the step's examples, clipping, the update, its log line, and
// the held-out metrics and checkpoint when due.
void TrainingRun::train_step(int64_t step) {
  const double t0 = now_seconds();
  const double lr = lr_at(c, step, total_steps);
  for (auto& g : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
  const int64_t begin = step * global_batch;
  const int64_t end = std::min<int64_t>(begin + global_batch, order_len);
  std::vector<int64_t> step_examples(order.begin() + begin, order.begin() + end);
  Metrics m = accumulate_gradients(step, step_examples);
  all_reduce_metrics(m);
  task.after_sync(m);
  json line = task.log_fields(m);
  const double loss = line.at("loss").get<double>();
  if (!std::isfinite(loss)) stop_nonfinite("the loss", loss, step);
  const double grad_norm = gradient_norm(step);
  optimizer.step();
  const double dt = now_seconds() - t0;
  line["step"] = step + 1;
  line["epoch"] = static_cast<double>(end) / static_cast<double>(n);
  line["lr"] = lr;
  line["grad_norm"] = grad_norm;
  line["tokens_per_s"] = dt > 0 ? m.count("tokens") ? m.at("tokens") / dt : 0.0 : 0.0;
  line["step_s"] = dt;
  const bool last = step + 1 == total_steps;
  if (c.eval_every > 0 && (step + 1) % c.eval_every == 0 && !last) {
    json ev = task.evaluate();
    for (auto it = ev.begin(); it != ev.end(); ++it) line[it.key()] = it.value();
  }
  record_step(line, step, loss);
  if (c.save_every > 0 && (step + 1) % c.save_every == 0 && !last) write_checkpoint(step + 1);
}

// Forward and backward of every micro-batch of the step (this rank's shard of each), gradients
// all-reduced at the last one; returns the step's metric sums on this rank.
Metrics TrainingRun::accumulate_gradients(int64_t step, const std::vector<int64_t>& step_examples) {
  const int64_t micro_batches = (static_cast<int64_t>(step_examples.size()) + c.batch_size - 1) / c.batch_size;
  task.begin_step(step, step_examples, micro_batches);
  Metrics m;
  for (const auto& k : keys) m[k] = 0;
  for (auto& p : params) p.mutable_grad().reset();
  for (int64_t micro = 0; micro < micro_batches; ++micro) {
    const int64_t mb = micro * c.batch_size;
    const int64_t me = std::min<int64_t>(mb + c.batch_size, static_cast<int64_t>(step_examples.size()));
    auto [sb, se] = dist::shard_range(me - mb, ctx.rank(), ctx.world_size());
    std::vector<int64_t> shard(step_examples.begin() + mb + sb, step_examples.begin() + mb + se);
    std::unique_ptr<dist::GradSync::NoSyncGuard> guard;
    if (micro + 1 < micro_batches) guard = std::make_unique<dist::GradSync::NoSyncGuard>(&sync);
    if (!shard.empty()) {
      task.micro_step(step, micro, shard, m);
    } else if (ctx.distributed()) {
      // Nothing for this rank in a short final micro-batch: a zero backward keeps the
      // gradient all-reduce in step with the other ranks.
      torch::Tensor zero;
      for (auto& p : params) zero = zero.defined() ? zero + p.sum() * 0 : p.sum() * 0;
      zero.backward();
    }
  }
  sync.finish();
  return m;
}

// Sums the metrics over ranks (every rank holds the same keys).
void TrainingRun::all_reduce_metrics(Metrics& m) {
  if (!ctx.distributed()) return;
  auto t = torch::empty({static_cast<int64_t>(m.size())}, torch::kFloat64);
  int64_t i = 0;
  for (auto& [k, v] : m) t[i++] = v;
  ctx.all_reduce(t);
  i = 0;
  for (auto& [k, v] : m) v = t[i++].item<double>();
}

// The gradient norm, clipped to --max-grad-norm when that is on; fails if it is not finite.
double TrainingRun::gradient_norm(int64_t step) {
  double grad_norm;
  if (c.max_grad_norm > 0) {
    grad_norm = torch::nn::utils::clip_grad_norm_(params, c.max_grad_norm);
  } else {
    torch::NoGradGuard ng;
    auto total = torch::zeros({}, torch::kFloat64);
    for (auto& p : params)
      if (p.grad().defined()) total += p.grad().pow(2).sum().to(torch::kCPU, torch::kFloat64);
    grad_norm = std::sqrt(total.item<double>());
  }
  if (!std::isfinite(grad_norm)) stop_nonfinite("the gradient norm", grad_norm, step);
  return grad_norm;
}

// Stops training on a non-finite loss or gradient norm, naming the last good checkpoint.
void TrainingRun::stop_nonfinite(const std::string& what, double value, int64_t step) {
  std::string hint = "lower --lr (or --beta), keep --max-grad-norm on, and check the data; ";
  hint += last_checkpoint ? "the last good checkpoint is " + last_checkpoint->string() + " (continue with --resume)"
                          : std::string("no checkpoint was written yet (set --save-every to keep one)");
  throw Error(fmt::format("{} became {} at step {}; training stopped", what, value, step + 1), out.string(), hint);
}

// Keeps the step's log line, appends it to the log file and reports it (main rank).
void TrainingRun::record_step(const json& line, int64_t step, double loss) {
  log.push_back(line);
  if (!main_rank) return;
  append_line(out / kLogFile, line.dump());
  if (c.on_step) c.on_step(line);
  if (progress) {
    std::string extra = fmt::format("loss {:.4f}", loss);
    if (line.contains("rewards/accuracies"))
      extra += fmt::format(" acc {:.2f}", line["rewards/accuracies"].get<double>());
    progress->update(step + 1, extra);
  }
}

// The final held-out metrics (also into the last log line) and the run's result.
void TrainingRun::finish_result() {
  json eval_now = task.evaluate();
  if (!log.empty() && !eval_now.empty()) {
    for (auto it = eval_now.begin(); it != eval_now.end(); ++it) log.back()[it.key()] = it.value();
  }
  result.steps = total_steps;
  result.final_metrics = log.empty() ? json::object() : log.back();
  result.eval = eval_now;
  result.data_report = data_report;
  result.log = log;
  result.seconds = now_seconds() - t_start;
}

// Writes the trained model into OUT with its config, log, result and data report (main rank),
// keeping the checkpoints beside it when asked.
void TrainingRun::save_final() {
  ctx.on_main("final save", [&] {
    json result_json = result.to_json();
    json extra = {{kConfigFile, config},
                  {kLogFile, join_lines(log)},
                  {kResultFile, result_json},
                  {"data_report.json", data_report}};
    fs::path ckpts = out / "checkpoints", parked;
    if (c.keep_checkpoints && fs::exists(ckpts)) {
      parked = out.parent_path() / (out.filename().string() + ".checkpoints-tmp");
      std::error_code ec;
      fs::remove_all(parked, ec);
      fs::rename(ckpts, parked);
    }
    task.save_model(out, extra);
    if (!parked.empty()) fs::rename(parked, ckpts);
    log_info(fmt::format("{}: {} steps in {:.1f} s, final loss {:.4f}; model written to {}", task.name(), total_steps,
                         result.seconds, result.final_metrics.value("loss", 0.0), out.string()));
  });
}

}  // namespace

TrainResult run_training(const TrainCommon& c, TrainTask& task, const json& config, const json& data_report) {
  check_common(c);
  TrainingRun run(c, task, config, data_report);
  run.resume_or_start();
  run.start_progress();
  for (int64_t step = run.start; step < run.total_steps; ++step) run.train_step(step);
  if (run.progress) run.progress->finish();
  run.finish_result();
  run.save_final();
  return std::move(run.result);
}

}  // namespace atax::train_detail

namespace atax {

json TrainResult::to_json() const {
  return {{"out", out.string()},       {"steps", steps},       {"resumed", resumed},
          {"already_done", already_done}, {"final_metrics", final_metrics}, {"eval", eval},
          {"eval_initial", eval_initial}, {"data_report", data_report}, {"seconds", seconds}};
}

}  // namespace atax
