// Python str operations on UTF-8 strings (by code point), shared by string methods and filters.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qnext::jinja {

// str.strip/lstrip/rstrip: chars = the set of code points to remove; nullopt = whitespace.
std::string py_strip(const std::string& s, const std::optional<std::string>& chars, bool left, bool right);
// str.split / str.rsplit: sep nullopt = runs of whitespace; maxsplit < 0 = unlimited.
std::vector<std::string> py_split(const std::string& s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right);
std::vector<std::string> py_split_lines(const std::string& s);
std::string py_replace(const std::string& s, const std::string& old, const std::string& repl, int64_t count);
std::string py_upper(const std::string& s);
std::string py_lower(const std::string& s);
std::string py_title(const std::string& s);
std::string py_capitalize(const std::string& s);

}  // namespace qnext::jinja
