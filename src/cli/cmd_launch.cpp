// atax launch: start N local ranks of an atax command (torchrun's job on one machine).
#include <fmt/format.h>

#include "cli/cli.h"
#include "dist/dist.h"

namespace atax::cli {
namespace {

void add_launch(CLI::App& app) {
  struct Opts {
    int nproc = 1;
    int master_port = 0;
    double grace_s = 10;
    std::vector<std::string> command;
  };
  auto o = std::make_shared<Opts>();
  auto* sub = app.add_subcommand(
      "launch",
      "Run an atax command as N local ranks: atax launch --nproc 2 -- train dpo ... "
      "(sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; prefixes output with [rank k])");
  sub->add_option("--nproc", o->nproc, "number of ranks (processes) to start")->required()->check(CLI::Range(1, 4096));
  sub->add_option("--master-port", o->master_port, "rendezvous port of rank 0 (0 = a free one)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  sub->add_option("--grace", o->grace_s,
                  "seconds the other ranks get to stop on their own after one fails, before SIGTERM")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  // Everything after "--" is the ranks' command line, options included.
  sub->add_option("command", o->command, "the atax command and its options, after --")->required();
  sub->callback([o] {
    dist::LaunchOptions lo;
    lo.nproc = o->nproc;
    lo.master_port = o->master_port;
    lo.grace_s = o->grace_s;
    lo.args = o->command;
    if (!lo.args.empty() && lo.args.front() == "launch")
      throw Error("launch: the ranks' command is itself `launch`", "", "give the command to run, e.g. `-- train dpo ...`");
    dist::LaunchResult r = dist::launch_local(lo);
    if (r.failed_rank >= 0) {
      const bool killed = r.message.find("killed by signal") != std::string::npos;
      if (r.forwarded_signal)
        throw Error(fmt::format("launch: interrupted (signal {} passed on to the ranks); {}", r.forwarded_signal,
                                r.message),
                    "", "outputs are written atomically, so only completed checkpoints and results remain; rerun "
                    "(training: with --resume)");
      throw Error("launch: " + r.message, "",
                  killed ? fmt::format("rank {} was killed from outside (out of memory? `dmesg` tells); what it "
                                       "printed last is in the lines prefixed [rank {}] above",
                                       r.failed_rank, r.failed_rank)
                         : fmt::format("the first error of rank {} is in the lines prefixed [rank {}] above",
                                       r.failed_rank, r.failed_rank));
    }
  });
}

ATAX_COMMAND("launch", add_launch);

}  // namespace
}  // namespace atax::cli
