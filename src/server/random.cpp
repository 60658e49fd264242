#include "server/random.h"

#include <random>

namespace qnext::server {
namespace {

std::mt19937_64& rng() {
  thread_local std::mt19937_64 gen{(uint64_t(std::random_device{}()) << 32) ^ std::random_device{}()};
  return gen;
}

}  // namespace

std::string random_id(std::string_view prefix) {
  static constexpr char kAlnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::string id(prefix);
  for (int i = 0; i < 24; ++i) id += kAlnum[rng()() % 62];
  return id;
}

uint64_t random_seed() { return rng()(); }

}  // namespace qnext::server
