// Grammar text -> flat rules (Grammar::parse), with the checks that keep matching finite: every
// rule defined, no left recursion. The matcher's stepping lives in grammar_matcher.cpp.
#include "runtime/grammar.h"

#include <algorithm>
#include <map>
#include <optional>

namespace qnext::grammar {

namespace {

// A symbol of a rule while parsing: a set of code points or a reference to a rule.
struct Sym {
  bool is_ref = false;
  bool negated = false;
  std::vector<Range> ranges;
  uint32_t rule = 0;
};
using Seq = std::vector<Sym>;

struct RuleDef {
  std::string name;
  std::vector<Seq> alts;
  bool defined = false;
  int line = 0;          // where it was defined, or first referenced
  bool repeat = false;   // a helper made for `*`, `+` or `{m,n}`
};

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string quoted(uint32_t cp) {
  if (cp >= 0x20 && cp < 0x7f) return std::string("'") + static_cast<char>(cp) + "'";
  char buf[16];
  std::snprintf(buf, sizeof buf, "U+%04X", cp);
  return buf;
}

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Result<std::shared_ptr<const Grammar>> run() {
    try {
      parse_rules();
      return build();
    } catch (const Failure& f) {
      return err("grammar: line " + std::to_string(f.line) + ": " + f.message);
    }
  }

 private:
  struct Failure {
    int line;
    std::string message;
  };
  [[noreturn]] void fail(const std::string& message) const { throw Failure{line_, message}; }

  // --- lexing ---

  // Skips spaces, newlines and comments.
  void skip_space() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == '#') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
      } else if (c == '\n') {
        ++line_;
        ++i_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++i_;
      } else {
        break;
      }
    }
  }
  bool at_end() const { return i_ >= s_.size(); }
  std::string_view rest() const { return s_.substr(i_); }

  std::string parse_name() {
    size_t start = i_;
    while (i_ < s_.size() && is_name_char(s_[i_])) ++i_;
    if (i_ == start) fail("expected a rule name");
    return std::string(s_.substr(start, i_ - start));
  }

  // Is the text here `name ::=`? (the start of the next rule)
  bool at_rule_start() {
    size_t save_i = i_;
    int save_line = line_;
    bool yes = false;
    if (i_ < s_.size() && is_name_char(s_[i_])) {
      while (i_ < s_.size() && is_name_char(s_[i_])) ++i_;
      skip_space();
      yes = rest().starts_with("::=");
    }
    i_ = save_i;
    line_ = save_line;
    return yes;
  }

  // One UTF-8 character of the grammar text.
  uint32_t next_utf8() {
    auto b = static_cast<unsigned char>(s_[i_]);
    int n = b < 0x80 ? 0 : (b & 0xE0) == 0xC0 ? 1 : (b & 0xF0) == 0xE0 ? 2 : (b & 0xF8) == 0xF0 ? 3 : -1;
    if (n < 0 || i_ + n >= s_.size()) fail("the grammar text is not valid UTF-8");
    uint32_t cp = n == 0 ? b : b & (0x3F >> n);
    for (int k = 1; k <= n; ++k) {
      auto c = static_cast<unsigned char>(s_[i_ + k]);
      if ((c & 0xC0) != 0x80) fail("the grammar text is not valid UTF-8");
      cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("the grammar text is not valid UTF-8");
    i_ += n + 1;
    if (cp == '\n') ++line_;
    return cp;
  }

  uint32_t parse_hex(int digits) {
    uint32_t v = 0;
    for (int k = 0; k < digits; ++k) {
      if (i_ >= s_.size()) fail("unfinished escape");
      char c = s_[i_++];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) fail(std::string("bad hex digit '") + c + "' in an escape");
      v = v * 16 + d;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) fail("escape \\u/\\U names no Unicode character");
    return v;
  }

  // A character of a literal or class, escapes decoded. `extra` are further characters that may
  // follow a backslash (the class's ] - ^ [).
  uint32_t parse_char(std::string_view extra) {
    if (i_ >= s_.size()) fail("unfinished literal or class");
    if (s_[i_] != '\\') return next_utf8();
    ++i_;
    if (i_ >= s_.size()) fail("unfinished escape");
    char c = s_[i_++];
    switch (c) {
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case '\\': return '\\';
      case '"': return '"';
      case '\'': return '\'';
      case 'x': return parse_hex(2);
      case 'u': return parse_hex(4);
      case 'U': return parse_hex(8);
      default:
        if (extra.find(c) != std::string_view::npos) return static_cast<unsigned char>(c);
        fail(std::string("unknown escape '\\") + c + "'");
    }
  }

  // --- rules ---

  uint32_t rule_id(const std::string& name) {
    auto [it, fresh] = ids_.try_emplace(name, static_cast<uint32_t>(rules_.size()));
    if (fresh) {
      rules_.push_back({});
      rules_.back().name = name;
      rules_.back().line = line_;
    }
    return it->second;
  }

  uint32_t helper(const std::string& of, std::vector<Seq> alts, bool repeat) {
    auto id = static_cast<uint32_t>(rules_.size());
    rules_.push_back({});
    RuleDef& r = rules_.back();
    r.name = of + "/" + std::to_string(++helpers_);
    r.alts = std::move(alts);
    r.defined = true;
    r.line = line_;
    r.repeat = repeat;
    count(r.alts);
    return id;
  }

  void count(const std::vector<Seq>& alts) {
    for (const Seq& s : alts) elements_ += s.size() + 1;
    if (elements_ > kMaxElements) fail("the grammar is larger than " + std::to_string(kMaxElements) + " elements");
  }

  void parse_rules() {
    if (s_.size() > kMaxGrammarBytes) fail("the grammar text is larger than " + std::to_string(kMaxGrammarBytes) + " bytes");
    skip_space();
    while (!at_end()) {
      int line = line_;
      std::string name = parse_name();
      skip_space();
      if (!rest().starts_with("::=")) fail("expected '::=' after rule name '" + name + "'");
      i_ += 3;
      uint32_t id = rule_id(name);
      if (rules_[id].defined) fail("rule '" + name + "' is defined twice");
      current_ = name;
      std::vector<Seq> alts = parse_alternatives(0);
      count(alts);
      RuleDef& r = rules_[id];
      r.alts = std::move(alts);
      r.defined = true;
      r.line = line;
      skip_space();
      if (!at_end() && !at_rule_start()) fail(std::string("unexpected ") + quoted(static_cast<unsigned char>(s_[i_])));
    }
  }

  std::vector<Seq> parse_alternatives(int depth) {
    if (depth > kMaxNesting) fail("parentheses nested deeper than " + std::to_string(kMaxNesting));
    std::vector<Seq> alts;
    alts.push_back(parse_sequence(depth));
    skip_space();
    while (!at_end() && s_[i_] == '|') {
      ++i_;
      alts.push_back(parse_sequence(depth));
      skip_space();
    }
    return alts;
  }

  Seq parse_sequence(int depth) {
    Seq seq;
    for (;;) {
      skip_space();
      if (at_end() || s_[i_] == '|' || s_[i_] == ')' || at_rule_start()) return seq;
      Seq item = parse_primary(depth);
      skip_space();
      item = parse_repetition(std::move(item));
      seq.insert(seq.end(), std::make_move_iterator(item.begin()), std::make_move_iterator(item.end()));
    }
  }

  Seq parse_primary(int depth) {
    char c = s_[i_];
    if (c == '"') {
      ++i_;
      Seq seq;
      while (i_ < s_.size() && s_[i_] != '"') {
        uint32_t cp = parse_char("");
        seq.push_back({false, false, {{cp, cp}}, 0});
      }
      if (i_ >= s_.size()) fail("unfinished literal");
      ++i_;
      return seq;
    }
    if (c == '[') return {parse_class()};
    if (c == '.') {
      ++i_;
      return {Sym{false, true, {}, 0}};
    }
    if (c == '(') {
      ++i_;
      std::vector<Seq> alts = parse_alternatives(depth + 1);
      skip_space();
      if (at_end() || s_[i_] != ')') fail("expected ')'");
      ++i_;
      if (alts.size() == 1) return std::move(alts[0]);
      Sym ref;
      ref.is_ref = true;
      ref.rule = helper(current_, std::move(alts), false);
      return {ref};
    }
    if (is_name_char(c)) {
      Sym ref;
      ref.is_ref = true;
      ref.rule = rule_id(parse_name());
      return {ref};
    }
    fail(std::string("unexpected ") + quoted(static_cast<unsigned char>(c)));
  }

  Sym parse_class() {
    ++i_;  // [
    Sym sym;
    if (i_ < s_.size() && s_[i_] == '^') {
      sym.negated = true;
      ++i_;
    }
    while (i_ < s_.size() && s_[i_] != ']') {
      uint32_t lo = parse_char("]-^[");
      uint32_t hi = lo;
      if (i_ + 1 < s_.size() && s_[i_] == '-' && s_[i_ + 1] != ']') {
        ++i_;
        hi = parse_char("]-^[");
        if (hi < lo) fail("character range " + quoted(lo) + "-" + quoted(hi) + " runs backwards");
      }
      sym.ranges.push_back({lo, hi});
    }
    if (i_ >= s_.size()) fail("unfinished character class");
    ++i_;
    if (sym.ranges.empty()) fail("empty character class");
    return sym;
  }

  int parse_count() {
    size_t start = i_;
    long v = 0;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      v = v * 10 + (s_[i_] - '0');
      if (v > kMaxRepeat) fail("repetition count over " + std::to_string(kMaxRepeat));
      ++i_;
    }
    if (i_ == start) fail("expected a number in {m,n}");
    return static_cast<int>(v);
  }

  // item followed by * + ? {m} {m,} {m,n}, rewritten with helper rules.
  Seq parse_repetition(Seq item) {
    if (at_end()) return item;
    char c = s_[i_];
    if (c != '*' && c != '+' && c != '?' && c != '{') return item;
    ++i_;
    int min = 0, max = -1;  // -1: unbounded
    if (c == '+') min = 1;
    if (c == '?') max = 1;
    if (c == '{') {
      skip_space();
      min = parse_count();
      skip_space();
      max = min;
      if (!at_end() && s_[i_] == ',') {
        ++i_;
        skip_space();
        max = !at_end() && s_[i_] == '}' ? -1 : parse_count();
        skip_space();
      }
      if (at_end() || s_[i_] != '}') fail("expected '}'");
      ++i_;
      if (max >= 0 && max < min) fail("repetition {" + std::to_string(min) + "," + std::to_string(max) + "} runs backwards");
    }
    // One symbol standing for the item.
    Sym x;
    if (item.size() == 1) {
      x = item[0];
    } else {
      x.is_ref = true;
      x.rule = helper(current_, {std::move(item)}, false);
    }
    Seq out(min, x);
    if (max < 0) {
      // star ::= x star | ε
      auto star = static_cast<uint32_t>(rules_.size());
      Sym self;
      self.is_ref = true;
      self.rule = star;
      helper(current_, {Seq{x, self}, Seq{}}, true);
      out.push_back(self);
    } else if (max > min) {
      // (x (x (...)?)?)? : nested optionals, max - min deep
      Sym tail;
      bool has_tail = false;
      for (int k = 0; k < max - min; ++k) {
        Seq more{x};
        if (has_tail) more.push_back(tail);
        tail.is_ref = true;
        tail.rule = helper(current_, {std::move(more), Seq{}}, true);
        has_tail = true;
      }
      out.push_back(tail);
    }
    return out;  // counted with the rule it ends up in
  }

  // --- checks and layout ---

  Result<std::shared_ptr<const Grammar>> build() {
    auto root = ids_.find("root");
    if (root == ids_.end() || !rules_[root->second].defined) return err("grammar: no rule named 'root'");
    for (const RuleDef& r : rules_)
      if (!r.defined) return err("grammar: line " + std::to_string(r.line) + ": rule '" + r.name + "' is used but not defined");
    if (auto e = check_left_recursion()) return err(*e);

    auto g = std::make_shared<Grammar>();
    g->root = root->second;
    g->rule_alts.resize(rules_.size());
    for (size_t r = 0; r < rules_.size(); ++r) {
      g->rule_names.push_back(rules_[r].name);
      for (const Seq& seq : rules_[r].alts) {
        g->rule_alts[r].push_back(static_cast<uint32_t>(g->elements.size()));
        for (const Sym& sym : seq) g->elements.push_back(layout(*g, sym));
        g->elements.push_back({Element::End, 0, 0});
      }
    }
    return std::shared_ptr<const Grammar>(std::move(g));
  }

  // A symbol as an element, its ranges sorted and merged (so a range query is one lookup).
  static Element layout(Grammar& g, const Sym& sym) {
    if (sym.is_ref) return {Element::Ref, sym.rule, 0};
    std::vector<Range> r = sym.ranges;
    std::sort(r.begin(), r.end(), [](Range a, Range b) { return a.lo < b.lo; });
    std::vector<Range> merged;
    for (Range x : r) {
      if (!merged.empty() && x.lo <= merged.back().hi + 1) merged.back().hi = std::max(merged.back().hi, x.hi);
      else merged.push_back(x);
    }
    auto at = static_cast<uint32_t>(g.ranges.size());
    g.ranges.insert(g.ranges.end(), merged.begin(), merged.end());
    return {sym.negated ? Element::CharsNot : Element::Chars, at, static_cast<uint32_t>(merged.size())};
  }

  // Left recursion (a rule reaching itself before any code point is consumed) would make
  // expansion loop forever: refused, naming the cycle.
  std::optional<std::string> check_left_recursion() {
    size_t n = rules_.size();
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (const Seq& seq : rules_[r].alts) {
          bool all = std::all_of(seq.begin(), seq.end(), [&](const Sym& s) { return s.is_ref && nullable[s.rule]; });
          if (all) {
            nullable[r] = 1;
            changed = true;
            break;
          }
        }
      }
    }
    // Edges: r -> q when q can come first in an alternative of r.
    std::vector<std::vector<uint32_t>> first(n);
    for (size_t r = 0; r < n; ++r)
      for (const Seq& seq : rules_[r].alts)
        for (const Sym& s : seq) {
          if (!s.is_ref) break;
          first[r].push_back(s.rule);
          if (!nullable[s.rule]) break;
        }
    std::vector<char> color(n, 0);  // 0 new, 1 on the path, 2 done
    std::vector<uint32_t> path;
    std::optional<std::string> found;
    // Iterative DFS (a generated grammar can chain many rules).
    std::vector<std::pair<uint32_t, size_t>> todo;
    for (uint32_t start = 0; start < n && !found; ++start) {
      if (color[start]) continue;
      todo.push_back({start, 0});
      color[start] = 1;
      path.push_back(start);
      while (!todo.empty() && !found) {
        auto& [r, k] = todo.back();
        if (k < first[r].size()) {
          uint32_t q = first[r][k++];
          if (color[q] == 1) {
            found = describe_cycle(path, q);
          } else if (color[q] == 0) {
            color[q] = 1;
            path.push_back(q);
            todo.push_back({q, 0});
          }
        } else {
          color[r] = 2;
          path.pop_back();
          todo.pop_back();
        }
      }
    }
    return found;
  }

  std::string describe_cycle(const std::vector<uint32_t>& path, uint32_t q) const {
    auto from = std::find(path.begin(), path.end(), q);
    std::string names;
    bool repeat = false;
    for (auto it = from; it != path.end(); ++it) {
      names += "'" + rules_[*it].name + "' -> ";
      repeat = repeat || rules_[*it].repeat;
    }
    names += "'" + rules_[q].name + "'";
    const RuleDef& r = rules_[q];
    if (repeat)
      return "grammar: line " + std::to_string(r.line) + ": a repetition of something that can match nothing (" + names + ")";
    return "grammar: line " + std::to_string(r.line) + ": left recursion " + names;
  }

  std::string_view s_;
  size_t i_ = 0;
  int line_ = 1;
  std::vector<RuleDef> rules_;
  std::map<std::string, uint32_t> ids_;
  std::string current_;
  int helpers_ = 0;
  size_t elements_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Grammar>> Grammar::parse(std::string_view text) { return Parser(text).run(); }

bool Grammar::matches(uint32_t pos, uint32_t cp) const {
  const Element& e = elements[pos];
  const Range* r = ranges.data() + e.a;
  // Ranges are sorted and disjoint: the last one starting at or below cp decides.
  const Range* end = r + e.b;
  const Range* it = std::upper_bound(r, end, cp, [](uint32_t c, const Range& x) { return c < x.lo; });
  bool in = it != r && cp <= (it - 1)->hi;
  return in != (e.kind == Element::CharsNot);
}

bool Grammar::may_match(uint32_t pos, uint32_t lo, uint32_t hi) const {
  const Element& e = elements[pos];
  const Range* r = ranges.data() + e.a;
  const Range* end = r + e.b;
  if (e.kind == Element::Chars) {
    const Range* it = std::upper_bound(r, end, hi, [](uint32_t c, const Range& x) { return c < x.lo; });
    return it != r && (it - 1)->hi >= lo;
  }
  // CharsNot: some code point of [lo, hi] outside every range, i.e. no one range covers it all.
  const Range* it = std::upper_bound(r, end, lo, [](uint32_t c, const Range& x) { return c < x.lo; });
  return !(it != r && (it - 1)->hi >= hi);
}

}  // namespace qnext::grammar
