#include "jinja_eval.h"

#include <memory>
#include <optional>

#include "afq/error.h"
#include "jinja_builtins.h"

namespace afq::jinja {

namespace {

struct Scope {
  std::shared_ptr<const Scope> parent;
  Dict vars;

  const Value* find(std::string_view name) const {
    for (const Scope* s = this; s; s = s->parent.get())
      if (const Value* v = s->vars.find(name)) return v;
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

ScopePtr child(const ScopePtr& parent) {
  auto s = std::make_shared<Scope>();
  s->parent = parent;
  return s;
}

// One line for the CLI: a message's newlines (raise_exception's text may have some) become spaces.
std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

[[noreturn]] void fail_at(Pos pos, const std::string& message) { throw Error(where(pos) + one_line(message)); }

enum class Flow { kNormal, kBreak, kContinue };

class Renderer {
 public:
  Flow exec(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const Node& n : body) {
      Flow flow;
      try {
        flow = exec(n, scope, out);
      } catch (const Failure& f) {
        fail_at(n.pos, f.what());
      }
      if (flow != Flow::kNormal) return flow;
    }
    return Flow::kNormal;
  }

 private:
  Flow exec(const Node& n, const ScopePtr& scope, std::string& out) {
    switch (n.kind) {
      case NodeKind::kText:
        out += n.text;
        break;
      case NodeKind::kOutput:
        out += to_str(eval(*n.expr, scope));
        break;
      case NodeKind::kIf:
        for (const Branch& b : n.branches)
          if (truthy(eval(*b.condition, scope))) return exec(b.body, scope, out);
        return exec(n.body, scope, out);
      case NodeKind::kFor:
        exec_for(n, scope, out);
        break;
      case NodeKind::kSet:
        assign(n.target, eval(*n.expr, scope), *scope);
        break;
      case NodeKind::kSetBlock:
        assign(n.target, render_block(n, scope), *scope);
        break;
      case NodeKind::kFilterBlock:
        out += to_str(render_block(n, scope));
        break;
      case NodeKind::kMacro:
        scope->vars.set(n.text, macro(n, scope));
        break;
      case NodeKind::kScope:
        exec(n.body, child(scope), out);
        break;
      case NodeKind::kBreak:
        return Flow::kBreak;
      case NodeKind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  // A block's body rendered in a scope of its own, through the block's filters when it has any.
  Value render_block(const Node& n, const ScopePtr& scope) {
    std::string text;
    exec(n.body, child(scope), text);
    if (!n.expr) return Value(text);
    ScopePtr with_block = child(scope);
    with_block->vars.set(kBlockValue, Value(text));
    return eval(*n.expr, with_block);
  }

  static void unpack(const Target& target, const Value& value, Scope& scope) {
    if (!target.tuple) {
      scope.vars.set(target.names[0], value);
      return;
    }
    std::vector<Value> items = iterate(value);
    if (items.size() < target.names.size())
      throw Failure("not enough values to unpack (expected " + std::to_string(target.names.size()) + ", got " +
                    std::to_string(items.size()) + ")");
    if (items.size() > target.names.size())
      throw Failure("too many values to unpack (expected " + std::to_string(target.names.size()) + ")");
    for (size_t i = 0; i < items.size(); ++i) scope.vars.set(target.names[i], items[i]);
  }

  static void assign(const Target& target, const Value& value, Scope& scope) {
    if (target.attr.empty()) return unpack(target, value, scope);
    const Value* ns = scope.find(target.names[0]);
    if (!ns || ns->kind() != Value::Kind::kNamespace) throw Failure("cannot assign attribute on non-namespace object");
    ns->ns().attrs.set(target.attr, value);
  }

  void exec_for(const Node& n, const ScopePtr& scope, std::string& out) {
    const Value iterable = eval(*n.expr, scope);
    std::vector<Value> items;
    try {
      items = iterate(iterable);
    } catch (const Failure& f) {
      fail_at(n.expr->pos, f.what());
    }
    if (n.condition) {  // `for x in xs if cond`: loop.index and loop.length count what passes
      std::vector<Value> kept;
      for (const Value& item : items) {
        ScopePtr s = child(scope);
        unpack(n.target, item, *s);
        if (truthy(eval(*n.condition, s))) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec(n.else_body, scope, out);
      return;
    }
    auto shared_items = std::make_shared<const std::vector<Value>>(std::move(items));
    auto last_changed = std::make_shared<std::optional<Value>>();  // loop.changed()'s memory
    const size_t count = shared_items->size();
    for (size_t i = 0; i < count; ++i) {
      ScopePtr s = child(scope);
      unpack(n.target, (*shared_items)[i], *s);
      s->vars.set("loop", loop_value(shared_items, i, last_changed));
      if (exec(n.body, s, out) == Flow::kBreak) break;
    }
  }

  static Value loop_value(const std::shared_ptr<const std::vector<Value>>& items, size_t i,
                          const std::shared_ptr<std::optional<Value>>& last_changed) {
    const int64_t n = static_cast<int64_t>(items->size()), k = static_cast<int64_t>(i);
    Dict loop;
    loop.set("index", k + 1);
    loop.set("index0", k);
    loop.set("revindex", n - k);
    loop.set("revindex0", n - k - 1);
    loop.set("first", k == 0);
    loop.set("last", k == n - 1);
    loop.set("length", n);
    loop.set("depth", 1);
    loop.set("depth0", 0);
    loop.set("previtem", k > 0 ? (*items)[i - 1] : Value::undefined("there is no previous item"));
    loop.set("nextitem", k + 1 < n ? (*items)[i + 1] : Value::undefined("there is no next item"));
    loop.set("cycle", Value::function("cycle", [k](const Args& a) {
               if (a.positional.empty()) throw Failure("no items for cycling given");
               return a.positional[k % static_cast<int64_t>(a.positional.size())];
             }));
    loop.set("changed", Value::function("changed", [last_changed](const Args& a) {
               Value args = Value::list(a.positional, true);
               if (*last_changed && equal(**last_changed, args)) return false;
               *last_changed = args;
               return true;
             }));
    return Value::dict(std::move(loop));
  }

  // The macro holds its scope weakly (the scope holds the macro: a cycle otherwise); the renderer
  // keeps the scope alive, for a macro may be called after its scope ends (stored in a namespace).
  Value macro(const Node& n, const ScopePtr& defined_in) {
    macro_scopes_.push_back(defined_in);
    return Value::function(n.text, [this, &n, weak = std::weak_ptr<Scope>(defined_in)](const Args& a) {
      const ScopePtr defined_in = weak.lock();
      if (a.positional.size() > n.params.size())
        throw Failure("macro '" + n.text + "' takes not more than " + std::to_string(n.params.size()) + " argument(s)");
      for (const auto& [key, unused] : a.keyword) {
        bool known = false;
        for (const auto& p : n.params) known = known || p.first == key;
        if (!known) throw Failure("macro '" + n.text + "' takes no keyword argument '" + key + "'");
      }
      if (++depth_ > 256) throw Failure("maximum recursion depth exceeded in macro '" + n.text + "'");
      ScopePtr s = child(defined_in);
      for (size_t i = 0; i < n.params.size(); ++i) {
        const auto& [name, fallback] = n.params[i];
        if (const Value* v = a.get(i, name))
          s->vars.set(name, *v);
        else if (fallback)
          s->vars.set(name, eval(*fallback, s));
        else
          s->vars.set(name, Value::undefined("parameter '" + name + "' was not provided"));
      }
      std::string text;
      exec(n.body, s, text);
      --depth_;
      return Value(text);
    });
  }

  Value eval(const Expr& e, const ScopePtr& scope) {
    try {
      return eval_here(e, scope);
    } catch (const Failure& f) {
      fail_at(e.pos, f.what());
    }
  }

  Args eval_args(const Expr& e, const ScopePtr& scope) {
    Args a;
    for (size_t i = 1; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i], scope));
    for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v, scope));
    return a;
  }

  static bool compare_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contains(b, a);
    if (op == "notin") return !contains(b, a);
    const int c = compare(a, b);
    if (op == "<") return c < 0;
    if (op == "<=") return c <= 0;
    if (op == ">") return c > 0;
    return c >= 0;
  }

  Value eval_here(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.value;
      case ExprKind::kName: {
        const Value* v = scope->find(e.name);
        return v ? *v : Value::undefined("'" + e.name + "' is undefined");
      }
      case ExprKind::kList: {
        std::vector<Value> items;
        for (const auto& item : e.args) items.push_back(eval(*item, scope));
        return Value::list(std::move(items), e.tuple);
      }
      case ExprKind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value key = eval(*e.args[i], scope);
          if (!key.is_string()) fail_at(e.args[i]->pos, "afq's chat templates take only string dict keys");
          d.set(key.str(), eval(*e.args[i + 1], scope));
        }
        return Value::dict(std::move(d));
      }
      case ExprKind::kAttr:
        return get_attr(eval(*e.args[0], scope), e.name);
      case ExprKind::kItem: {
        Value obj = eval(*e.args[0], scope);
        return get_item(obj, eval(*e.args[1], scope));
      }
      case ExprKind::kSlice: {
        Value obj = eval(*e.args[0], scope);
        Value parts[3];
        for (int i = 0; i < 3; ++i) parts[i] = e.args[i + 1] ? eval(*e.args[i + 1], scope) : Value(None{});
        return get_slice(obj, parts[0], parts[1], parts[2]);
      }
      case ExprKind::kCall: {
        Value callee = eval(*e.args[0], scope);
        if (callee.is_undefined()) fail_undefined(callee);
        if (callee.kind() != Value::Kind::kFunction)
          throw Failure("'" + type_name(callee) + "' object is not callable");
        return callee.function().call(eval_args(e, scope));
      }
      case ExprKind::kFilter: {
        Value input = eval(*e.args[0], scope);
        FilterFn filter = find_filter(e.name);
        if (!filter) throw Failure("no filter named '" + e.name + "'");
        return filter(input, eval_args(e, scope));
      }
      case ExprKind::kTest: {
        Value input = eval(*e.args[0], scope);
        TestFn test = find_test(e.name);
        if (!test) throw Failure("no test named '" + e.name + "'");
        const Args args = eval_args(e, scope);
        check_test_arguments(e.name, args);
        return test(input, args);
      }
      case ExprKind::kNeg:
        return negate(eval(*e.args[0], scope));
      case ExprKind::kPos: {
        Value v = eval(*e.args[0], scope);
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_number()) throw Failure("bad operand type for unary +: '" + type_name(v) + "'");
        return v.is_integral() ? Value(v.integer()) : v;
      }
      case ExprKind::kNot:
        return !truthy(eval(*e.args[0], scope));
      case ExprKind::kBinary: {
        Value a = eval(*e.args[0], scope);
        return binary_op(e.name, a, eval(*e.args[1], scope));
      }
      case ExprKind::kConcat: {
        std::string s;
        for (const auto& part : e.args) s += to_str(eval(*part, scope));
        return s;
      }
      case ExprKind::kAnd: {
        Value a = eval(*e.args[0], scope);
        return truthy(a) ? eval(*e.args[1], scope) : a;
      }
      case ExprKind::kOr: {
        Value a = eval(*e.args[0], scope);
        return truthy(a) ? a : eval(*e.args[1], scope);
      }
      case ExprKind::kCompare: {
        Value left = eval(*e.args[0], scope);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], scope);
          if (!compare_op(e.ops[i], left, right)) return false;
          left = std::move(right);
        }
        return true;
      }
      case ExprKind::kCond:
        if (truthy(eval(*e.args[1], scope))) return eval(*e.args[0], scope);
        if (e.args[2]) return eval(*e.args[2], scope);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.pos.line) +
                                " evaluated to false and no else section was defined.");
    }
    return Value();
  }

  int depth_ = 0;
  std::vector<ScopePtr> macro_scopes_;
};

// Empties the namespaces a render made, which may refer to each other or themselves.
struct BreakCycles {
  std::vector<Value>& namespaces;
  ~BreakCycles() {
    for (Value& ns : namespaces) ns.ns().attrs.entries.clear();
  }
};

}  // namespace

std::string render(const Body& body, const Dict& context) {
  std::vector<Value> namespaces;
  const BreakCycles break_cycles{namespaces};
  auto globals = std::make_shared<Scope>();
  globals->vars = make_globals(&namespaces);
  ScopePtr root = child(globals);
  root->vars = context;
  std::string out;
  Renderer().exec(body, root, out);
  return out;
}

}  // namespace afq::jinja
