// Jinja parser (see jinja_parser.h): recursive descent with jinja2's operator precedence
// (lowest first): `x if c else y`, or, and, not, comparisons/in, + -, ~, * / // %, **, unary -,
// then postfix (. [] ()) and filters/tests, which bind tighter than every binary operator.
#include "template/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "template/jinja_lexer.h"
#include "template/jinja_limits.h"

namespace qnext::jinja {
namespace {

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  Body parse_all() {
    std::string end;
    Body body = parse_body({}, end);
    return body;
  }

 private:
  // ---- token helpers ---------------------------------------------------------------------
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().type == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == Tok::Name && cur().text == n; }
  bool accept_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool accept_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  [[noreturn]] void fail(const std::string& msg, int line = 0) const {
    throw JinjaError("template syntax error at line " + std::to_string(line ? line : cur().line) + ": " + msg);
  }
  std::string describe(const Token& t) const {
    switch (t.type) {
      case Tok::Text: return "text";
      case Tok::VarBegin: return "'{{'";
      case Tok::VarEnd: return "end of print statement";
      case Tok::BlockBegin: return "'{%'";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::Eof: return "end of template";
      case Tok::String: return "string";
      default: return "'" + t.text + "'";
    }
  }
  void expect_op(const char* op) {
    if (!accept_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().type != Tok::Name) fail("expected a name, got " + describe(cur()));
    std::string n = cur().text;
    next();
    return n;
  }
  void expect_block_end() {
    if (cur().type != Tok::BlockEnd) fail("expected end of statement block, got " + describe(cur()));
    next();
  }

  struct DepthGuard {
    int& d;
    DepthGuard(int& d_, const Parser& p) : d(d_) {
      if (++d > kMaxNesting) {
        --d;
        p.fail("template nested too deeply (more than " + std::to_string(kMaxNesting) +
               " levels of blocks, brackets and sub-expressions)");
      }
    }
    ~DepthGuard() { --d; }
  };

  static ExprPtr node(ExprKind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
  }

  // Sets e's height from its children; every node with children passes through here once built,
  // so no expression tree gets taller than kMaxExprHeight (chains are built in loops, which the
  // DepthGuard does not see).
  ExprPtr seal(ExprPtr e) const {
    int h = 0;
    for (const auto& a : e->args)
      if (a) h = std::max(h, a->height);
    for (const auto& kv : e->kwargs) h = std::max(h, kv.second->height);
    e->height = h + 1;
    if (e->height > kMaxExprHeight)
      fail("expression nested too deeply (more than " + std::to_string(kMaxExprHeight) +
               " levels of filters, attributes, calls and operators)",
           e->line);
    return e;
  }

  // ---- statements --------------------------------------------------------------------------
  // Parses until a block tag whose first name is in `ends` (returned in `end`, left consumed).
  Body parse_body(std::initializer_list<const char*> ends, std::string& end, int open_line = 0) {
    DepthGuard g(depth_, *this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.type == Tok::Eof) {
        if (ends.size() == 0) return body;
        fail(std::string("unexpected end of template: missing '") + *ends.begin() + "' for the tag opened at line " +
                 std::to_string(open_line),
             t.line);
      }
      if (t.type == Tok::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Text;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == Tok::VarBegin) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::Output;
        s->line = t.line;
        next();
        s->expr = parse_tuple(true);
        if (cur().type != Tok::VarEnd) fail("expected end of print statement, got " + describe(cur()));
        next();
        body.push_back(std::move(s));
      } else if (t.type == Tok::BlockBegin) {
        next();
        if (cur().type != Tok::Name) fail("expected a tag name, got " + describe(cur()));
        std::string name = cur().text;
        for (const char* e : ends)
          if (name == e) {
            end = name;
            next();
            return body;
          }
        body.push_back(parse_statement());
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  StmtPtr parse_statement() {
    auto s = std::make_unique<Stmt>();
    s->line = cur().line;
    std::string kw = cur().text;
    next();
    std::string end;
    if (kw == "if") {
      parse_if(*s);
      return s;
    }
    if (kw == "for") {
      s->kind = StmtKind::For;
      s->targets = parse_targets();
      if (!accept_name("in")) fail("expected 'in' in for loop, got " + describe(cur()));
      s->expr = parse_tuple(false);
      if (accept_name("if")) s->cond = parse_expr(true);
      if (is_name("recursive")) fail("recursive for loops are not supported");
      expect_block_end();
      s->body = parse_body({"endfor", "else"}, end, s->line);
      if (end == "else") {
        expect_block_end();
        s->else_body = parse_body({"endfor"}, end, s->line);
      }
      expect_block_end();
      return s;
    }
    if (kw == "set") {
      s->kind = StmtKind::Set;
      std::string first = expect_name();
      if (accept_op(".")) {
        s->targets = {first};
        s->attr = expect_name();
      } else {
        s->targets = {first};
        while (accept_op(",")) s->targets.push_back(expect_name());
      }
      if (accept_op("=")) {
        s->expr = parse_tuple(true);
        expect_block_end();
      } else {
        if (!s->attr.empty() || s->targets.size() != 1) fail("block set needs a single name");
        expect_block_end();
        s->body = parse_body({"endset"}, end, s->line);
        expect_block_end();
      }
      return s;
    }
    if (kw == "macro") {
      s->kind = StmtKind::Macro;
      s->text = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        s->targets.push_back(expect_name());
        s->defaults.push_back(accept_op("=") ? parse_expr(true) : nullptr);
        if (!accept_op(",")) break;
      }
      expect_op(")");
      expect_block_end();
      s->body = parse_body({"endmacro"}, end, s->line);
      if (cur().type == Tok::Name) next();  // {% endmacro name %}
      expect_block_end();
      return s;
    }
    if (kw == "break" || kw == "continue") {
      s->kind = kw == "break" ? StmtKind::Break : StmtKind::Continue;
      expect_block_end();
      return s;
    }
    if (kw == "filter") {
      s->kind = StmtKind::FilterBlock;
      s->expr = parse_filter(nullptr, s->line);
      while (accept_op("|")) s->expr = parse_filter(std::move(s->expr), s->line);
      expect_block_end();
      s->body = parse_body({"endfilter"}, end, s->line);
      expect_block_end();
      return s;
    }
    if (kw == "generation") {  // transformers' assistant-mask marker: renders its body unchanged
      s->kind = StmtKind::Block;
      expect_block_end();
      s->body = parse_body({"endgeneration"}, end, s->line);
      expect_block_end();
      return s;
    }
    static const char* unsupported[] = {"include", "import", "from", "extends", "block", "call", "with", "do"};
    for (const char* u : unsupported)
      if (kw == u) fail("unsupported tag '" + kw + "'", s->line);
    fail("unknown or unexpected tag '" + kw + "'", s->line);
  }

  void parse_if(Stmt& s) {
    s.kind = StmtKind::If;
    s.cond = parse_tuple(false);
    expect_block_end();
    std::string end;
    s.body = parse_body({"endif", "elif", "else"}, end, s.line);
    while (end == "elif") {  // a flat list of branches, however many
      auto e = std::make_unique<Stmt>();
      e->kind = StmtKind::If;
      e->line = t_[i_ - 1].line;
      e->cond = parse_tuple(false);
      expect_block_end();
      e->body = parse_body({"endif", "elif", "else"}, end, s.line);
      s.elifs.push_back(std::move(e));
    }
    if (end == "else") {
      expect_block_end();
      s.else_body = parse_body({"endif"}, end, s.line);
    }
    expect_block_end();
  }

  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = accept_op("(");
    names.push_back(expect_name());
    while (accept_op(",")) names.push_back(expect_name());
    if (paren) expect_op(")");
    return names;
  }

  // ---- expressions -------------------------------------------------------------------------
  // An expression or an unparenthesized tuple `a, b`.
  ExprPtr parse_tuple(bool with_cond) {
    int line = cur().line;
    ExprPtr first = parse_expr(with_cond);
    if (!is_op(",")) return first;
    auto t = node(ExprKind::Tuple, line);
    t->args.push_back(std::move(first));
    while (accept_op(",")) {
      if (cur().type == Tok::BlockEnd || cur().type == Tok::VarEnd || is_op(")")) break;
      t->args.push_back(parse_expr(with_cond));
    }
    return seal(std::move(t));
  }

  ExprPtr parse_expr(bool with_cond) {
    DepthGuard g(depth_, *this);
    ExprPtr e = parse_or();
    while (with_cond && is_name("if")) {
      int line = cur().line;
      next();
      auto c = node(ExprKind::Cond, line);
      c->args.push_back(parse_or());
      c->args.push_back(std::move(e));
      c->args.push_back(accept_name("else") ? parse_expr(true) : nullptr);
      e = seal(std::move(c));
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, int line) {
    auto e = node(ExprKind::Binary, line);
    e->name = op;
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return seal(std::move(e));
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      int line = cur().line;
      next();
      e = binary("or", std::move(e), parse_and(), line);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      int line = cur().line;
      next();
      e = binary("and", std::move(e), parse_not(), line);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard g(depth_, *this);
      auto e = node(ExprKind::Unary, cur().line);
      next();
      e->name = "not";
      e->args.push_back(parse_not());
      return seal(std::move(e));
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int start_line = cur().line;
    ExprPtr first = parse_math1();
    ExprPtr e;  // the Compare node, once there is an operator
    while (true) {
      std::string op;
      if (cur().type == Tok::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                    cur().text == ">" || cur().text == "<=" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == Tok::Name && peek().text == "in") {
        op = "not in";
        next();
        next();
      } else {
        return e ? seal(std::move(e)) : std::move(first);
      }
      if (!e) {
        e = node(ExprKind::Compare, start_line);
        e->args.push_back(std::move(first));
      }
      e->ops.push_back(op);
      e->args.push_back(parse_math1());
    }
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      std::string op = cur().text;
      int line = cur().line;
      next();
      e = binary(op, std::move(e), parse_concat(), line);
    }
    return e;
  }

  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr e = parse_math2();
    if (!is_op("~")) return e;
    auto c = node(ExprKind::Concat, line);
    c->args.push_back(std::move(e));
    while (accept_op("~")) c->args.push_back(parse_math2());
    return seal(std::move(c));
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      std::string op = cur().text;
      int line = cur().line;
      next();
      e = binary(op, std::move(e), parse_pow(), line);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      int line = cur().line;
      next();
      e = binary("**", std::move(e), parse_unary(true), line);
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      DepthGuard g(depth_, *this);  // `- - - x` recurses here; brackets go through parse_expr
      e = node(ExprKind::Unary, cur().line);
      e->name = cur().text;
      next();
      e->args.push_back(parse_unary(false));
      e = seal(std::move(e));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(std::move(e));
    if (with_filter) e = parse_filter_expr(std::move(e));
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    int line = t.line;
    if (t.type == Tok::Name) {
      std::string n = t.text;
      next();
      auto e = node(ExprKind::Literal, line);
      if (n == "true" || n == "True") e->literal = Value(true);
      else if (n == "false" || n == "False") e->literal = Value(false);
      else if (n == "none" || n == "None") e->literal = Value(None{});
      else {
        e->kind = ExprKind::Name;
        e->name = n;
      }
      return e;
    }
    if (t.type == Tok::String) {
      std::string s;
      while (cur().type == Tok::String) {  // adjacent literals concatenate
        s += cur().text;
        next();
      }
      auto e = node(ExprKind::Literal, line);
      e->literal = Value(std::move(s));
      return e;
    }
    if (t.type == Tok::Int || t.type == Tok::Float) {
      auto e = node(ExprKind::Literal, line);
      e->literal = t.type == Tok::Int ? Value(t.ival) : Value(t.fval);
      next();
      return e;
    }
    if (accept_op("(")) {
      if (accept_op(")")) return node(ExprKind::Tuple, line);
      ExprPtr first = parse_expr(true);
      if (accept_op(")")) return first;
      auto tup = node(ExprKind::Tuple, line);
      tup->args.push_back(std::move(first));
      while (accept_op(",")) {
        if (is_op(")")) break;
        tup->args.push_back(parse_expr(true));
      }
      expect_op(")");
      return seal(std::move(tup));
    }
    if (accept_op("[")) {
      auto e = node(ExprKind::List, line);
      while (!is_op("]")) {
        e->args.push_back(parse_expr(true));
        if (!accept_op(",")) break;
      }
      expect_op("]");
      return seal(std::move(e));
    }
    if (accept_op("{")) {
      auto e = node(ExprKind::Dict, line);
      while (!is_op("}")) {
        e->args.push_back(parse_expr(true));
        expect_op(":");
        e->args.push_back(parse_expr(true));
        if (!accept_op(",")) break;
      }
      expect_op("}");
      return seal(std::move(e));
    }
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      int line = cur().line;
      if (accept_op(".")) {
        if (cur().type == Tok::Int) {  // x.0 is x[0]
          auto g = node(ExprKind::GetItem, line);
          auto idx = node(ExprKind::Literal, line);
          idx->literal = Value(cur().ival);
          next();
          g->args.push_back(std::move(e));
          g->args.push_back(std::move(idx));
          e = seal(std::move(g));
        } else {
          auto g = node(ExprKind::GetAttr, line);
          g->name = expect_name();
          g->args.push_back(std::move(e));
          e = seal(std::move(g));
        }
      } else if (accept_op("[")) {
        e = parse_subscript(std::move(e), line);
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj, int line) {
    ExprPtr parts[3];
    bool is_slice = false;
    if (!is_op(":")) parts[0] = parse_expr(true);
    if (accept_op(":")) {
      is_slice = true;
      if (!is_op(":") && !is_op("]")) parts[1] = parse_expr(true);
      if (accept_op(":") && !is_op("]")) parts[2] = parse_expr(true);
    } else if (is_op(",")) {  // x[a, b]: a tuple key
      auto t = node(ExprKind::Tuple, line);
      t->args.push_back(std::move(parts[0]));
      while (accept_op(",") && !is_op("]")) t->args.push_back(parse_expr(true));
      parts[0] = seal(std::move(t));
    }
    expect_op("]");
    auto e = node(is_slice ? ExprKind::Slice : ExprKind::GetItem, line);
    e->args.push_back(std::move(obj));
    e->args.push_back(std::move(parts[0]));
    if (is_slice) {
      e->args.push_back(std::move(parts[1]));
      e->args.push_back(std::move(parts[2]));
    }
    return seal(std::move(e));
  }

  // Call arguments `(a, b, k=v)` appended to e's args/kwargs.
  void parse_call_args(Expr& e) {
    expect_op("(");
    while (!is_op(")")) {
      if (cur().type == Tok::Name && peek().type == Tok::Op && peek().text == "=") {
        std::string k = cur().text;
        next();
        next();
        e.kwargs.emplace_back(k, parse_expr(true));
      } else {
        if (!e.kwargs.empty()) fail("positional argument after keyword argument");
        e.args.push_back(parse_expr(true));
      }
      if (!accept_op(",")) break;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto e = node(ExprKind::Call, cur().line);
    e->args.push_back(std::move(callee));
    parse_call_args(*e);
    return seal(std::move(e));
  }

  ExprPtr parse_filter(ExprPtr subject, int line) {
    auto f = node(ExprKind::Filter, line);
    f->name = expect_name();
    while (accept_op(".")) f->name += "." + expect_name();
    f->args.push_back(std::move(subject));
    if (is_op("(")) parse_call_args(*f);
    return seal(std::move(f));
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      int line = cur().line;
      if (accept_op("|")) {
        e = parse_filter(std::move(e), line);
      } else if (accept_name("is")) {
        auto t = node(ExprKind::Test, line);
        t->negated = accept_name("not");
        t->name = expect_name();
        while (accept_op(".")) t->name += "." + expect_name();
        t->args.push_back(std::move(e));
        const Token& c = cur();
        bool arg_start = c.type == Tok::Name || c.type == Tok::String || c.type == Tok::Int ||
                         c.type == Tok::Float || (c.type == Tok::Op && (c.text == "[" || c.text == "{"));
        if (is_op("(")) {
          parse_call_args(*t);
        } else if (arg_start && !(c.type == Tok::Name && (c.text == "else" || c.text == "or" ||
                                                           c.text == "and" || c.text == "is"))) {
          t->args.push_back(parse_postfix(parse_primary()));  // `is divisibleby 3`
        }
        e = seal(std::move(t));
      } else if (is_op("(")) {
        e = parse_call(std::move(e));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace

Result<std::shared_ptr<const Body>> parse_template(const std::string& source) {
  auto toks = lex(source);
  if (!toks.ok()) return Error{toks.error()};
  try {
    Parser p(std::move(toks.value()));
    return std::make_shared<const Body>(p.parse_all());
  } catch (const JinjaError& e) {
    return err(e.what());
  }
}

}  // namespace qnext::jinja
