// Syntax tree of a parsed Jinja template (built by jinja_parser, run by jinja_eval).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "template/jinja_value.h"

namespace qnext::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

enum class ExprKind {
  Literal,  // literal
  Name,     // name
  List,     // args = items
  Tuple,    // args = items
  Dict,     // args = key, value, key, value, ...
  GetAttr,  // args[0].name
  GetItem,  // args[0][args[1]]
  Slice,    // args[0][args[1]:args[2]:args[3]]; missing parts are null
  Call,     // args[0](args[1..], kwargs)
  Filter,   // args[0] | name(args[1..], kwargs); args[0] is null in {% filter %} blocks
  Test,     // args[0] is [not] name(args[1..])
  Unary,    // name = "not" or "-" or "+"; args[0]
  Binary,   // name = operator; args[0], args[1]
  Concat,   // args[0] ~ args[1] ~ ...: one flat node, as in jinja2 (a long chain adds no depth)
  Compare,  // args[0] ops[0] args[1] ops[1] args[2] ...: Python's chained comparison
  Cond,     // args[1] if args[0] else args[2] (args[2] may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  std::string name;
  Value literal;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // for Compare
  bool negated = false;           // for Test: `is not`
  int height = 1;                 // 1 + the tallest child's; the parser keeps it <= kMaxExprHeight
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class StmtKind {
  Text,      // text
  Output,    // {{ expr }}
  If,        // cond, body, elifs (each an If with cond and body, tried in order), else_body
  For,       // targets in expr [if cond]: body, else_body
  Set,       // targets (1 = name, >1 = tuple unpack) or ns.attr (targets={ns}, attr) = expr, or block body
  Macro,     // name, params (targets) with defaults, body
  Break,
  Continue,
  FilterBlock,  // expr = the filter (Filter with null subject) applied to the rendered body
  Block,        // a body rendered in place ({% generation %})
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  std::string text;                  // Text; Macro name
  ExprPtr expr;                      // Output / For iterable / Set value / FilterBlock filter
  ExprPtr cond;                      // If condition; For filter
  std::vector<std::string> targets;  // For / Set targets; Macro parameter names
  std::string attr;                  // Set ns.attr
  std::vector<ExprPtr> defaults;     // Macro parameter defaults (null = required)
  Body body, else_body;
  Body elifs;                        // If: the elif branches (a flat list: no depth per elif)
};

}  // namespace qnext::jinja
