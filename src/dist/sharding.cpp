// Sharding helpers: which items a rank takes, and gathering per-rank results on rank 0.
#include <fmt/format.h>

#include "dist/dist.h"

namespace atax::dist {

std::pair<int64_t, int64_t> shard_range(int64_t n, int rank, int world) { return atax::shard_range(n, rank, world); }

std::pair<int64_t, int64_t> my_shard(int64_t n) {
  Context& ctx = context();
  return shard_range(n, ctx.rank(), ctx.world_size());
}

json gather_to_main(const json& part) {
  Context& ctx = context();
  if (!ctx.distributed()) return json::array({part});
  // MessagePack keeps doubles bit-exact and is smaller than text.
  std::vector<uint8_t> packed = json::to_msgpack(part);
  auto all = ctx.all_gather(std::string(packed.begin(), packed.end()));
  if (!ctx.is_main()) return json();
  json out = json::array();
  for (int r = 0; r < ctx.world_size(); ++r) {
    try {
      out.push_back(json::from_msgpack(all[r]));
    } catch (const std::exception& e) {
      throw Error(fmt::format("dist: rank {}'s gathered data is corrupt: {}", r, e.what()), "",
                  "all ranks must run the same atax build");
    }
  }
  return out;
}

std::vector<json> gather_lists_to_main(const std::vector<json>& part) {
  json gathered = gather_to_main(json(part));
  std::vector<json> out;
  if (gathered.is_null()) return out;
  for (auto& list : gathered)
    for (auto& item : list) out.push_back(std::move(item));
  return out;
}

fs::path per_rank_path(const fs::path& path) {
  Context& ctx = context();
  if (!ctx.distributed() || ctx.rank() == 0) return path;
  fs::path out = path;
  out.replace_filename(fmt::format("{}.rank{}{}", path.stem().string(), ctx.rank(), path.extension().string()));
  return out;
}

}  // namespace atax::dist
