// Request ids and seeds: per-thread generators seeded from std::random_device.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace qnext::server {

// "<prefix><24 random alphanumerics>", e.g. random_id("chatcmpl-"). Thread-safe.
std::string random_id(std::string_view prefix);
// A random 64-bit seed for requests that give none. Thread-safe.
uint64_t random_seed();

}  // namespace qnext::server
