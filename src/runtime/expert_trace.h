// Which replacement policy suits the expert cache: the cache can record the experts it was asked
// for (a trace), and replaying that trace against other policies of the same capacity measures
// them side by side on the very same routing, with Belady's optimum (evict the expert used
// furthest in the future) as the bound no policy can beat.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace qnext {

enum class ReplacementPolicy {
  Lru,      // least recently used (what the cache runs)
  Lfu,      // least frequently used so far, ties to the least recent
  Optimal,  // Belady: the one asked for furthest in the future (needs the whole trace)
};
std::string_view policy_name(ReplacementPolicy p);

// The fraction of lookups that hit a cache of `capacity` experts replaying `trace` (expert keys
// in the order asked for), starting empty.
double replay_hit_rate(const std::vector<int>& trace, int capacity, ReplacementPolicy policy);

}  // namespace qnext
