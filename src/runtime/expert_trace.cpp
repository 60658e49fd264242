#include "runtime/expert_trace.h"

#include <limits>
#include <set>
#include <tuple>
#include <unordered_map>

namespace qnext {

std::string_view policy_name(ReplacementPolicy p) {
  switch (p) {
    case ReplacementPolicy::Lru: return "LRU";
    case ReplacementPolicy::Lfu: return "LFU";
    case ReplacementPolicy::Optimal: return "optimal";
  }
  return "?";
}

double replay_hit_rate(const std::vector<int>& trace, int capacity, ReplacementPolicy policy) {
  if (trace.empty() || capacity <= 0) return 0;
  // next_use[i]: where trace[i]'s key is asked for again (size() when never), for the optimum.
  std::vector<size_t> next_use(trace.size(), trace.size());
  if (policy == ReplacementPolicy::Optimal) {
    std::unordered_map<int, size_t> seen;
    for (size_t i = trace.size(); i-- > 0;) {
      auto it = seen.find(trace[i]);
      if (it != seen.end()) next_use[i] = it->second;
      seen[trace[i]] = i;
    }
  }
  // Residents ordered by eviction priority, the victim first: (priority..., key).
  using Rank = std::tuple<uint64_t, uint64_t, int>;
  std::set<Rank> order;
  std::unordered_map<int, Rank> rank_of;
  std::unordered_map<int, uint64_t> uses;
  size_t hits = 0;
  for (size_t i = 0; i < trace.size(); ++i) {
    const int key = trace[i];
    auto it = rank_of.find(key);
    if (it != rank_of.end()) {
      ++hits;
      order.erase(it->second);
    } else if (int(rank_of.size()) == capacity) {
      const Rank victim = *order.begin();
      order.erase(order.begin());
      rank_of.erase(std::get<2>(victim));
    }
    const uint64_t n = ++uses[key];
    Rank r;
    switch (policy) {
      case ReplacementPolicy::Lru: r = {uint64_t(i), 0, key}; break;
      case ReplacementPolicy::Lfu: r = {n, uint64_t(i), key}; break;
      case ReplacementPolicy::Optimal:  // furthest next use first: order by its complement
        r = {std::numeric_limits<uint64_t>::max() - next_use[i], 0, key};
        break;
    }
    order.insert(r);
    rank_of[key] = r;
  }
  return double(hits) / double(trace.size());
}

}  // namespace qnext
