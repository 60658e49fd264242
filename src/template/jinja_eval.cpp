// Jinja evaluator (see jinja_eval.h): a tree walk over the parsed template.
#include "template/jinja_eval.h"

#include <ctime>
#include <unordered_map>

#include "template/jinja_builtins.h"
#include "template/jinja_limits.h"
#include "template/jinja_ops.h"

namespace qnext::jinja {
namespace {

class Scope {
 public:
  explicit Scope(const Scope* parent) : parent_(parent) {}
  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent_) {
      auto it = s->vars_.find(name);
      if (it != s->vars_.end()) return &it->second;
    }
    return nullptr;
  }
  void set(const std::string& name, Value v) { vars_[name] = std::move(v); }

 private:
  const Scope* parent_;
  std::unordered_map<std::string, Value> vars_;
};

enum class Flow { Normal, Break, Continue };

// Fills in the line of the node being run if the error does not carry one yet.
template <typename F>
auto at_line(int line, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (JinjaError& e) {
    if (e.line == 0) e.line = line;
    throw;
  }
}

// The items a for loop visits, without copying a list or building a range.
class LoopItems {
 public:
  explicit LoopItems(const Value& v) {
    if (v.is_array()) {
      array_ = v.as_array();
      n_ = static_cast<int64_t>(array_->items.size());
    } else if (v.is_range()) {
      range_ = v.as_range();
      is_range_ = true;
      n_ = range_.size();
    } else {  // dict keys, string characters (Undefined: none); a list built within the budgets
      array_ = std::make_shared<Array>();
      array_->items = iterate(v);
      n_ = static_cast<int64_t>(array_->items.size());
    }
  }
  explicit LoopItems(std::vector<Value> kept) : array_(std::make_shared<Array>()) {
    array_->items = std::move(kept);
    n_ = static_cast<int64_t>(array_->items.size());
  }
  int64_t size() const { return n_; }
  Value at(int64_t i) const { return is_range_ ? Value(range_.at(i)) : array_->items[static_cast<size_t>(i)]; }

 private:
  ArrayPtr array_;
  Range range_;
  bool is_range_ = false;
  int64_t n_ = 0;
};

class Evaluator {
 public:
  Evaluator(Scope& root, Budget& budget) : root_(root), budget_(budget) {}

  Flow exec_body(const Body& body, Scope& s, std::string& out) {
    Enter enter(*this);
    for (const auto& st : body) {
      budget_.steps(1);
      Flow f = at_line(st->line, [&] { return exec(*st, s, out); });
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

 private:
  // One level of evaluation (an expression node or a statement body): bounds the stack.
  struct Enter {
    Evaluator& ev;
    explicit Enter(Evaluator& e) : ev(e) {
      if (++ev.depth_ > kMaxEvalDepth) {
        --ev.depth_;
        throw JinjaError("evaluation nested more than " + with_commas(kMaxEvalDepth) + " levels deep");
      }
    }
    ~Enter() { --ev.depth_; }
    Enter(const Enter&) = delete;
    Enter& operator=(const Enter&) = delete;
  };

  // Appends to an output buffer: each is capped, and its bytes count as created.
  void emit(std::string& out, const std::string& text) {
    budget_.check_output(add_sat(out.size(), text.size()));
    budget_.bytes(text.size());
    out += text;
  }

  Flow exec(const Stmt& st, Scope& s, std::string& out) {
    switch (st.kind) {
      case StmtKind::Text: emit(out, st.text); return Flow::Normal;
      case StmtKind::Output: emit(out, to_str(eval(*st.expr, s))); return Flow::Normal;
      case StmtKind::If: {
        if (eval(*st.cond, s).truthy()) return exec_body(st.body, s, out);
        for (const auto& e : st.elifs)
          if (at_line(e->line, [&] { return eval(*e->cond, s).truthy(); })) return exec_body(e->body, s, out);
        return exec_body(st.else_body, s, out);
      }
      case StmtKind::For: exec_for(st, s, out); return Flow::Normal;
      case StmtKind::Set: exec_set(st, s); return Flow::Normal;
      case StmtKind::Macro: s.set(st.text, make_macro(st)); return Flow::Normal;
      case StmtKind::Break: return Flow::Break;
      case StmtKind::Continue: return Flow::Continue;
      case StmtKind::FilterBlock: {
        std::string inner;
        Scope child(&s);
        exec_body(st.body, child, inner);
        Value text(std::move(inner));
        const Value* saved = block_subject_;
        block_subject_ = &text;
        Value r = eval(*st.expr, s);
        block_subject_ = saved;
        emit(out, to_str(r));
        return Flow::Normal;
      }
      case StmtKind::Block: return exec_body(st.body, s, out);
    }
    return Flow::Normal;
  }

  void bind_targets(const std::vector<std::string>& targets, const Value& v, Scope& s) {
    if (targets.size() == 1) {
      s.set(targets[0], v);
      return;
    }
    std::vector<Value> parts = iterate(v);
    if (parts.size() != targets.size())
      throw JinjaError((parts.size() > targets.size() ? "too many" : "not enough") +
                       std::string(" values to unpack (expected ") + std::to_string(targets.size()) + ", got " +
                       std::to_string(parts.size()) + ")");
    for (size_t i = 0; i < parts.size(); ++i) s.set(targets[i], parts[i]);
  }

  void exec_for(const Stmt& st, Scope& s, std::string& out) {
    LoopItems items(eval(*st.expr, s));
    if (st.cond) {  // `for x in xs if cond`: filtered before loop.* is computed
      std::vector<Value> kept;
      for (int64_t i = 0; i < items.size(); ++i) {
        budget_.steps(1);
        Value item = items.at(i);
        Scope probe(&s);
        bind_targets(st.targets, item, probe);
        if (eval(*st.cond, probe).truthy()) {
          budget_.check_room(mul_sat(kept.size() + 1, sizeof(Value)));
          kept.push_back(std::move(item));
        }
      }
      items = LoopItems(std::move(kept));
    }
    if (items.size() == 0) {
      Scope child(&s);
      exec_body(st.else_body, child, out);
      return;
    }
    // One loop object, updated in place each iteration (jinja2's LoopContext is one object too).
    const int64_t n = items.size();
    auto index = std::make_shared<int64_t>(0);
    auto loop = std::make_shared<Object>();
    loop->items = {{"index0", Value()},    {"index", Value()}, {"revindex0", Value()}, {"revindex", Value()},
                   {"first", Value()},     {"last", Value()},  {"length", Value(n)},   {"depth", Value(int64_t{1})},
                   {"depth0", Value(int64_t{0})}, {"previtem", Value()}, {"nextitem", Value()}};
    loop->items.emplace_back("cycle", make_function("cycle", [index](const CallArgs& a) {
                               if (a.pos.empty()) throw JinjaError("no items for cycling given");
                               return a.pos[static_cast<size_t>(*index) % a.pos.size()];
                             }));
    const Value loop_value(loop);
    const Value no_prev(Undefined{"there is no previous item"}), no_next(Undefined{"there is no next item"});
    for (int64_t i = 0; i < n; ++i) {
      budget_.steps(1);
      *index = i;
      auto& f = loop->items;
      f[0].second = Value(i);
      f[1].second = Value(i + 1);
      f[2].second = Value(n - i - 1);
      f[3].second = Value(n - i);
      f[4].second = Value(i == 0);
      f[5].second = Value(i == n - 1);
      f[9].second = i > 0 ? items.at(i - 1) : no_prev;
      f[10].second = i + 1 < n ? items.at(i + 1) : no_next;
      Scope iter(&s);  // fresh each iteration: sets inside the body do not persist
      bind_targets(st.targets, items.at(i), iter);
      iter.set("loop", loop_value);
      Flow fl = exec_body(st.body, iter, out);
      if (fl == Flow::Break) break;
    }
  }

  void exec_set(const Stmt& st, Scope& s) {
    if (!st.attr.empty()) {
      const Value* ns = s.find(st.targets[0]);
      if (!ns || !ns->is_object() || !ns->as_object()->is_namespace)
        throw JinjaError("cannot assign attribute on non-namespace object '" + st.targets[0] + "'");
      ns->as_object()->set(st.attr, eval(*st.expr, s));
      return;
    }
    if (st.expr) {
      bind_targets(st.targets, eval(*st.expr, s), s);
      return;
    }
    std::string text;
    Scope child(&s);
    exec_body(st.body, child, text);
    s.set(st.targets[0], Value(std::move(text)));
  }

  Value make_macro(const Stmt& st) {
    const Stmt* m = &st;
    return make_function(st.text, [this, m](const CallArgs& a) {
      if (a.pos.size() > m->targets.size())
        throw JinjaError("macro '" + m->text + "' takes not more than " + std::to_string(m->targets.size()) +
                         " argument(s)");
      if (call_depth_ >= kMaxMacroDepth)
        throw JinjaError("maximum macro recursion depth exceeded (more than " + std::to_string(kMaxMacroDepth) +
                         " nested calls)");
      ++call_depth_;
      struct Leave {
        int& d;
        ~Leave() { --d; }
      } leave{call_depth_};
      Scope local(&root_);
      for (const auto& [k, v] : a.kw) {
        bool known = false;
        for (const auto& p : m->targets) known = known || p == k;
        if (!known) throw JinjaError("macro '" + m->text + "' takes no keyword argument '" + k + "'");
      }
      for (size_t i = 0; i < m->targets.size(); ++i) {
        if (const Value* v = a.get(i, m->targets[i])) local.set(m->targets[i], *v);
        else if (m->defaults[i]) local.set(m->targets[i], eval(*m->defaults[i], local));
        else local.set(m->targets[i], Value(Undefined{"parameter '" + m->targets[i] + "' was not provided"}));
      }
      std::string out;
      exec_body(m->body, local, out);
      return Value(std::move(out));
    });
  }

  Value eval(const Expr& e, Scope& s) {
    Enter enter(*this);
    budget_.steps(1);
    return at_line(e.line, [&] { return eval_inner(e, s); });
  }

  Value eval_inner(const Expr& e, Scope& s) {
    switch (e.kind) {
      case ExprKind::Literal: return e.literal;
      case ExprKind::Name: {
        if (const Value* v = s.find(e.name)) return *v;
        return Value(Undefined{"'" + e.name + "' is undefined"});
      }
      case ExprKind::List:
      case ExprKind::Tuple: {
        std::vector<Value> items;
        for (const auto& a : e.args) items.push_back(eval(*a, s));
        return make_array(std::move(items), e.kind == ExprKind::Tuple);
      }
      case ExprKind::Dict: {
        auto o = std::make_shared<Object>();
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i], s);
          o->set(to_str(k), eval(*e.args[i + 1], s));
        }
        return Value(o);
      }
      case ExprKind::GetAttr: return get_attr(eval(*e.args[0], s), e.name);
      case ExprKind::GetItem: return get_item(eval(*e.args[0], s), eval(*e.args[1], s));
      case ExprKind::Slice: {
        Value obj = eval(*e.args[0], s);
        Value parts[3];
        const Value* p[3] = {nullptr, nullptr, nullptr};
        for (int i = 0; i < 3; ++i)
          if (e.args[static_cast<size_t>(i) + 1]) {
            parts[i] = eval(*e.args[static_cast<size_t>(i) + 1], s);
            p[i] = &parts[i];
          }
        return get_slice(obj, p[0], p[1], p[2]);
      }
      case ExprKind::Call: {
        Value f = eval(*e.args[0], s);
        CallArgs a = eval_args(e, s);
        require_defined(f);
        if (!f.is_function()) throw JinjaError("'" + f.type_name() + "' object is not callable");
        return f.as_function()->fn(a);
      }
      case ExprKind::Filter: {
        Value subject;
        if (e.args[0]) subject = eval(*e.args[0], s);
        else if (block_subject_) subject = *block_subject_;
        return apply_filter(e.name, subject, eval_args(e, s));
      }
      case ExprKind::Test: {
        Value subject = eval(*e.args[0], s);
        bool r = apply_test(e.name, subject, eval_args(e, s));
        return Value(e.negated ? !r : r);
      }
      case ExprKind::Unary: return unary_op(e.name, eval(*e.args[0], s));
      case ExprKind::Binary: {
        Value a = eval(*e.args[0], s);
        if (e.name == "and") return a.truthy() ? eval(*e.args[1], s) : a;
        if (e.name == "or") return a.truthy() ? a : eval(*e.args[1], s);
        return binary_op(e.name, a, eval(*e.args[1], s));
      }
      case ExprKind::Concat: {  // a ~ b ~ c: one string, its size checked before each part is added
        std::string out;
        for (const auto& a : e.args) {
          std::string part = to_str(eval(*a, s));
          budget_.check_room(add_sat(out.size(), part.size()));
          out += part;
        }
        return Value(std::move(out));
      }
      case ExprKind::Compare: {  // a < b < c means a < b and b < c, each operand evaluated once
        Value left = eval(*e.args[0], s);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], s);
          if (!binary_op(e.ops[i], left, right).truthy()) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case ExprKind::Cond:
        if (eval(*e.args[0], s).truthy()) return eval(*e.args[1], s);
        return e.args[2] ? eval(*e.args[2], s) : Value(Undefined{"the condition was false and there is no else"});
    }
    return Value();
  }

  // Positional args after the subject/callee (args[0]) and keyword args.
  CallArgs eval_args(const Expr& e, Scope& s) {
    CallArgs a;
    for (size_t i = 1; i < e.args.size(); ++i) a.pos.push_back(eval(*e.args[i], s));
    for (const auto& [k, v] : e.kwargs) a.kw.emplace_back(k, eval(*v, s));
    return a;
  }

  Scope& root_;
  Budget& budget_;
  int call_depth_ = 0;
  int depth_ = 0;
  const Value* block_subject_ = nullptr;
};

// namespaces: every namespace() the render creates (the only values that can come to contain
// themselves), emptied when it ends so that such cycles are not leaked.
void add_globals(Scope& g, std::vector<std::weak_ptr<Object>>& namespaces) {
  g.set("range", make_function("range", [](const CallArgs& a) {
          if (a.pos.empty() || a.pos.size() > 3) throw JinjaError("range expected 1 to 3 arguments");
          for (const auto& v : a.pos)
            if (!v.is_int() && !v.is_bool()) throw JinjaError("range() arguments must be integers");
          Range r;
          if (a.pos.size() == 1) r.stop = a.pos[0].to_int();
          else r.start = a.pos[0].to_int(), r.stop = a.pos[1].to_int();
          if (a.pos.size() == 3) r.step = a.pos[2].to_int();
          if (r.step == 0) throw JinjaError("range() arg 3 must not be zero");
          if (r.size() == INT64_MAX) throw JinjaError("range() has more than 2**63 - 1 items");
          return Value(r);  // lazy: a loop computes each item; list() and filters build it within the budgets
        }));
  auto make_dict = [&namespaces](bool ns) {
    return [ns, &namespaces](const CallArgs& a) {
      charge_bytes(sizeof(Object) + sizeof(std::weak_ptr<Object>));
      auto o = std::make_shared<Object>();
      o->is_namespace = ns;
      if (ns) namespaces.push_back(o);
      for (const auto& p : a.pos) {
        if (!p.is_object()) throw JinjaError("expected a mapping argument");
        for (const auto& [k, v] : p.as_object()->items) o->set(k, v);
      }
      for (const auto& [k, v] : a.kw) o->set(k, v);
      return Value(o);
    };
  };
  g.set("namespace", make_function("namespace", make_dict(true)));
  g.set("dict", make_function("dict", make_dict(false)));
  g.set("raise_exception", make_function("raise_exception", [](const CallArgs& a) -> Value {
          throw JinjaError(a.pos.empty() ? std::string("raise_exception called") : to_str(a.pos[0]));
        }));
  g.set("strftime_now", make_function("strftime_now", [](const CallArgs& a) {
          std::string fmt = a.pos.empty() ? std::string("%Y-%m-%d") : to_str(a.pos[0]);
          std::time_t t = std::time(nullptr);
          std::tm tm{};
          localtime_r(&t, &tm);
          char buf[512];
          size_t n = fmt.empty() ? 0 : std::strftime(buf, sizeof buf, fmt.c_str(), &tm);
          return Value(std::string(buf, n));
        }));
}

// ---- static checks ------------------------------------------------------------------------
// jinja2 rejects unknown filters/tests when compiling, except in "soft" frames (`if` tests and
// bodies, branches of `a if c else b`), where the error waits until the code runs. Loop and macro
// bodies start a fresh, strict frame even inside an `if`.
void check_expr(const Expr* e, bool soft) {
  if (!e || soft) return;
  if (e->kind == ExprKind::Filter && !is_filter(e->name)) throw JinjaError("no filter named '" + e->name + "'", e->line);
  if (e->kind == ExprKind::Test && !is_test(e->name)) throw JinjaError("no test named '" + e->name + "'", e->line);
  for (size_t i = 0; i < e->args.size(); ++i)
    check_expr(e->args[i].get(), e->kind == ExprKind::Cond && i > 0);
  for (const auto& kv : e->kwargs) check_expr(kv.second.get(), false);
}

void check_body(const Body& body, int loop_depth, bool soft) {
  for (const auto& st : body) {
    if ((st->kind == StmtKind::Break || st->kind == StmtKind::Continue) && loop_depth == 0)
      throw JinjaError(std::string("'") + (st->kind == StmtKind::Break ? "break" : "continue") + "' outside of a loop",
                       st->line);
    check_expr(st->expr.get(), soft);
    check_expr(st->cond.get(), soft || st->kind == StmtKind::If);  // an if test is soft too
    for (const auto& d : st->defaults) check_expr(d.get(), false);
    switch (st->kind) {
      case StmtKind::If:
        check_body(st->body, loop_depth, true);
        check_body(st->elifs, loop_depth, true);  // each an If: its test and body are soft
        check_body(st->else_body, loop_depth, true);
        break;
      case StmtKind::For:
        check_body(st->body, loop_depth + 1, false);
        check_body(st->else_body, loop_depth, false);
        break;
      case StmtKind::Macro: check_body(st->body, 0, false); break;
      default: check_body(st->body, loop_depth, soft);
    }
  }
}

}  // namespace

Status check_names(const Body& body) {
  try {
    check_body(body, 0, false);
  } catch (const JinjaError& e) {
    return err("template syntax error at line " + std::to_string(e.line) + ": " + e.what());
  }
  return Ok{};
}

Result<std::string> render(const Body& body, const Vars& vars, const RenderLimits& limits, RenderStats* stats) {
  Budget budget(limits);
  std::string out;
  std::string error;
  std::vector<std::weak_ptr<Object>> namespaces;
  {
    BudgetScope active(&budget);
    Scope globals(nullptr);
    add_globals(globals, namespaces);
    Scope top(&globals);
    for (const auto& [k, v] : vars) top.set(k, v);
    Evaluator ev(top, budget);
    try {
      ev.exec_body(body, top, out);
    } catch (const JinjaError& e) {
      error = "template error at line " + std::to_string(e.line) + ": " + e.what();
    } catch (const std::exception& e) {
      error = std::string("template error: ") + e.what();
    }
  }  // the render's values are freed here, and those in namespace cycles below
  for (const auto& w : namespaces)
    if (ObjectPtr ns = w.lock()) std::vector<std::pair<std::string, Value>>().swap(ns->items);
  if (stats) *stats = budget.used();
  if (!error.empty()) return err(error);
  return out;
}

}  // namespace qnext::jinja
