// DistEnv: which rank this process is, from torchrun-style or Slurm variables.
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "dist/dist.h"

extern char** environ;

namespace atax::dist {
namespace {

const char* const kLaunchHint =
    "start the ranks with `atax launch --nproc N -- <command>`, torchrun-style variables "
    "(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) or srun; unset them all (or set "
    "ATAX_DIST=0) for one process";

std::optional<std::string> lookup(const std::map<std::string, std::string>& vars, const std::string& name) {
  auto it = vars.find(name);
  if (it == vars.end() || trim(it->second).empty()) return std::nullopt;
  return trim(it->second);
}

int64_t parse_int(const std::string& name, const std::string& value, int64_t lo, int64_t hi) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(value.c_str(), &end, 10);
  if (errno != 0 || end == value.c_str() || *end != '\0')
    throw Error(fmt::format("dist: {}='{}' is not an integer", name, value), "", kLaunchHint);
  if (v < lo || v > hi)
    throw Error(fmt::format("dist: {}={} is outside [{}, {}]", name, v, lo, hi), "", kLaunchHint);
  return v;
}

}  // namespace

DistEnv DistEnv::parse(const std::map<std::string, std::string>& vars) {
  DistEnv env;
  if (auto t = lookup(vars, "ATAX_DIST_TIMEOUT")) {
    errno = 0;
    char* end = nullptr;
    double v = std::strtod(t->c_str(), &end);
    if (errno != 0 || end == t->c_str() || *end != '\0' || !std::isfinite(v) || v <= 0)
      throw Error(fmt::format("dist: ATAX_DIST_TIMEOUT='{}' is not a positive number of seconds", *t), "",
                  "set ATAX_DIST_TIMEOUT to the seconds a rank may wait for the others (default 60)");
    env.timeout_s = v;
  }
  if (auto off = lookup(vars, "ATAX_DIST"); off && (*off == "0" || to_lower(*off) == "off")) return env;

  auto rank = lookup(vars, "RANK");
  auto world = lookup(vars, "WORLD_SIZE");
  auto slurm_rank = lookup(vars, "SLURM_PROCID");
  auto slurm_world = lookup(vars, "SLURM_STEP_NUM_TASKS");
  if (!slurm_world) slurm_world = lookup(vars, "SLURM_NTASKS");
  if (rank || world) {
    if (!rank || !world)
      throw Error(fmt::format("dist: {} is set but {} is not", rank ? "RANK" : "WORLD_SIZE",
                              rank ? "WORLD_SIZE" : "RANK"),
                  "", kLaunchHint);
    env.source = "torchrun";
    env.world_size = static_cast<int>(parse_int("WORLD_SIZE", *world, 1, 1 << 20));
    env.rank = static_cast<int>(parse_int("RANK", *rank, 0, env.world_size - 1));
    env.local_world_size = env.world_size;
    if (auto lw = lookup(vars, "LOCAL_WORLD_SIZE"))
      env.local_world_size = static_cast<int>(parse_int("LOCAL_WORLD_SIZE", *lw, 1, env.world_size));
    env.local_rank = env.rank % env.local_world_size;
    if (auto lr = lookup(vars, "LOCAL_RANK"))
      env.local_rank = static_cast<int>(parse_int("LOCAL_RANK", *lr, 0, env.world_size - 1));
    auto addr = lookup(vars, "MASTER_ADDR");
    if (!addr && env.world_size > 1)
      throw Error("dist: WORLD_SIZE > 1 but MASTER_ADDR is not set", "",
                  "set MASTER_ADDR to the host of rank 0 (127.0.0.1 on one machine), or use `atax launch`");
    if (addr) env.master_addr = *addr;
  } else if (slurm_rank && slurm_world) {
    env.source = "slurm";
    env.world_size = static_cast<int>(parse_int("SLURM_NTASKS", *slurm_world, 1, 1 << 20));
    env.rank = static_cast<int>(parse_int("SLURM_PROCID", *slurm_rank, 0, env.world_size - 1));
    env.local_world_size = env.world_size;
    if (auto lw = lookup(vars, "SLURM_NTASKS_PER_NODE"); lw && lw->find_first_not_of("0123456789") == std::string::npos)
      env.local_world_size = static_cast<int>(parse_int("SLURM_NTASKS_PER_NODE", *lw, 1, env.world_size));
    env.local_rank = env.rank % env.local_world_size;
    if (auto lr = lookup(vars, "SLURM_LOCALID"))
      env.local_rank = static_cast<int>(parse_int("SLURM_LOCALID", *lr, 0, env.world_size - 1));
    // srun starts every task from the batch host, the allocation's first node: rank 0 lives there
    // unless MASTER_ADDR says otherwise.
    if (auto addr = lookup(vars, "MASTER_ADDR")) env.master_addr = *addr;
    else if (auto launch = lookup(vars, "SLURM_LAUNCH_NODE_IPADDR")) env.master_addr = *launch;
    else if (env.world_size > 1)
      throw Error("dist: a Slurm job step with several tasks but no MASTER_ADDR", "",
                  "export MASTER_ADDR=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1) before srun");
  } else {
    return env;
  }
  if (auto port = lookup(vars, "MASTER_PORT"))
    env.master_port = static_cast<int>(parse_int("MASTER_PORT", *port, 1, 65535));
  if (env.world_size == 1) env.source = "none";
  return env;
}

DistEnv DistEnv::from_env() {
  std::map<std::string, std::string> vars;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    vars.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  return parse(vars);
}

std::string DistEnv::describe() const {
  if (world_size == 1) return "single process";
  return fmt::format("rank {}/{} (local {}/{}) via {}, master {}:{}, timeout {} s", rank, world_size, local_rank,
                     local_world_size, source, master_addr, master_port, timeout_s);
}

}  // namespace atax::dist
