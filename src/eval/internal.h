// eval internals shared by evaluate.cpp and shards.cpp. Only src/eval/*.cpp include this; other
// modules use eval.h.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "eval/eval.h"

namespace atax::eval_detail {

// The seed of one consumer (a bootstrap, a sampled generation) derived from the run's seed and a
// salt naming it ("<task>|acc,none", "<task>/<doc id>"): independent of evaluation order.
uint64_t seed_for(uint64_t seed, const std::string& salt);

// Mean of the non-NaN values; NaN when there are none.
double nanmean(const std::vector<double>& x);

// The contiguous share [begin, end) of n items that shard `index` of `count` takes (the first
// n % count shards take one more); the same arithmetic as dist::shard_range.
std::pair<size_t, size_t> shard_bounds(size_t n, int index, int count);

}  // namespace atax::eval_detail
