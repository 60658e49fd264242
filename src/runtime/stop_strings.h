// Stop strings on streamed text: text that could still be the start of a stop string is held
// back, so a stop string is never emitted, not even in part.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace qnext {

class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stops);

  // Adds text; returns what is now safe to emit. After a stop string is found, stopped() is
  // true and the returned text ends right before it (the rest is dropped).
  std::string feed(std::string_view text);
  // End of generation: whatever was held is emitted.
  std::string flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace qnext
