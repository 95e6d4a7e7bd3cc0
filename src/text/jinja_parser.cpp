// Tokens to the template's tree, a recursive descent that follows jinja2's Parser method for
// method (parse_tuple, parse_condexpr, parse_or ... parse_unary, parse_postfix), so that
// precedence matches: filters and tests bind tighter than arithmetic (`a + b | trim` trims b).
#include <algorithm>

#include "afq/error.h"
#include "jinja_ast.h"

namespace afq::jinja {

namespace {

ExprPtr make(ExprKind kind, Pos pos) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->pos = pos;
  return e;
}

ExprPtr make(ExprKind kind, Pos pos, ExprPtr a, ExprPtr b = nullptr) {
  ExprPtr e = make(kind, pos);
  e->args.push_back(std::move(a));
  if (b) e->args.push_back(std::move(b));
  return e;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : toks_(std::move(tokens)) {}

  Body parse_template() { return subparse({}, "", {}); }

 private:
  const Token& cur() const { return toks_[i_]; }
  const Token& peek() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[i_];
    if (i_ + 1 < toks_.size()) ++i_;
    return t;
  }
  bool is_name(std::string_view n) const { return cur().type == Tok::kName && cur().text == n; }
  bool is_op(std::string_view o) const { return cur().type == Tok::kOp && cur().text == o; }
  bool skip_name(std::string_view n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  bool skip_op(std::string_view o) {
    if (!is_op(o)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case Tok::kVarEnd:
        return "end of print statement";
      case Tok::kBlockEnd:
        return "end of statement block";
      case Tok::kEnd:
        return "end of template";
      case Tok::kText:
        return "template data";
      case Tok::kVarBegin:
        return "begin of print statement";
      case Tok::kBlockBegin:
        return "begin of statement block";
      case Tok::kString:
        return "string";
      default:
        return "'" + t.text + "'";
    }
  }

  [[noreturn]] void fail(Pos pos, const std::string& message) const { throw Error(where(pos) + message); }

  void expect_op(std::string_view o) {
    if (!skip_op(o)) fail(cur().pos, "expected '" + std::string(o) + "', got " + describe(cur()));
  }
  void expect(Tok type, const char* what) {
    if (cur().type != type) fail(cur().pos, std::string("expected ") + what + ", got " + describe(cur()));
    next();
  }
  std::string expect_name() {
    if (cur().type != Tok::kName) fail(cur().pos, "expected a name, got " + describe(cur()));
    return next().text;
  }

  // ---- statements ----

  // The nodes up to a {% tag %} named in `ends`, left as the current token.
  Body subparse(std::vector<std::string_view> ends, const std::string& open_tag, Pos opened) {
    Body body;
    for (;;) {
      const Token& t = cur();
      if (t.type == Tok::kText) {
        Node n{NodeKind::kText, t.pos};
        n.text = t.text;
        body.push_back(std::move(n));
        next();
      } else if (t.type == Tok::kVarBegin) {
        Node n{NodeKind::kOutput, t.pos};
        next();
        n.expr = parse_tuple(false, true, {}, false);
        expect(Tok::kVarEnd, "end of print statement");
        body.push_back(std::move(n));
      } else if (t.type == Tok::kBlockBegin) {
        next();
        if (cur().type == Tok::kName && std::find(ends.begin(), ends.end(), cur().text) != ends.end()) return body;
        parse_statement(body);
        expect(Tok::kBlockEnd, "end of statement block");
      } else if (t.type == Tok::kEnd) {
        if (!ends.empty()) {
          std::string wanted;
          for (auto e : ends) wanted += (wanted.empty() ? "'" : " or '") + std::string(e) + "'";
          fail(t.pos, "unexpected end of template: the '" + open_tag + "' at " + std::to_string(opened.line) + ":" +
                          std::to_string(opened.column) + " needs " + wanted);
        }
        return body;
      } else {
        fail(t.pos, "unexpected " + describe(t));
      }
    }
  }

  // After a statement's head: its %} and the body up to one of `ends` (dropped when asked).
  Body parse_statements(std::vector<std::string_view> ends, const std::string& open_tag, Pos opened, bool drop_end) {
    skip_op(":");
    expect(Tok::kBlockEnd, "end of statement block");
    Body body = subparse(std::move(ends), open_tag, opened);
    if (drop_end) next();
    return body;
  }

  // Nesting deep enough to exhaust the stack is refused (jinja2 hits Python's recursion limit).
  class Nesting {
   public:
    Nesting(Parser& p, Pos pos) : p_(p) {
      if (++p_.depth_ > 256) p_.fail(pos, "the template nests more than 256 levels deep");
    }
    ~Nesting() { --p_.depth_; }

   private:
    Parser& p_;
  };

  void parse_statement(Body& body) {
    const Token& t = cur();
    const Nesting nesting(*this, t.pos);
    if (t.type != Tok::kName) fail(t.pos, "tag name expected, got " + describe(t));
    const std::string tag = t.text;
    const Pos pos = t.pos;
    if (tag == "for") return body.push_back(parse_for());
    if (tag == "if") return body.push_back(parse_if());
    if (tag == "set") return body.push_back(parse_set());
    if (tag == "macro") return body.push_back(parse_macro());
    if (tag == "filter") {
      next();
      Node n{NodeKind::kFilterBlock, pos};
      n.expr = parse_filter(make_block_value(pos), true);
      n.body = parse_statements({"endfilter"}, tag, pos, true);
      return body.push_back(std::move(n));
    }
    if (tag == "generation") {
      next();
      Node n{NodeKind::kScope, pos};
      n.body = parse_statements({"endgeneration"}, tag, pos, true);
      return body.push_back(std::move(n));
    }
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail(pos, "'" + tag + "' outside a for loop");
      next();
      return body.push_back(Node{tag == "break" ? NodeKind::kBreak : NodeKind::kContinue, pos});
    }
    for (const char* unsupported : {"call", "block", "extends", "include", "import", "from", "with", "autoescape"})
      if (tag == unsupported) fail(pos, "'" + tag + "' tags are not supported by afq's chat templates");
    fail(pos, "unknown tag '" + tag + "'");
  }

  static ExprPtr make_block_value(Pos pos) {
    ExprPtr e = make(ExprKind::kName, pos);
    e->name = kBlockValue;
    return e;
  }

  Node parse_for() {
    Node n{NodeKind::kFor, next().pos};
    n.target = parse_target(false, "in");
    if (!skip_name("in")) fail(cur().pos, "expected 'in', got " + describe(cur()));
    n.expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) n.condition = parse_expression(true);
    if (is_name("recursive")) fail(cur().pos, "recursive for loops are not supported");
    ++loop_depth_;
    n.body = parse_statements({"endfor", "else"}, "for", n.pos, false);
    --loop_depth_;
    if (next().text == "else") n.else_body = parse_statements({"endfor"}, "for", n.pos, true);
    return n;
  }

  Node parse_if() {
    Node n{NodeKind::kIf, next().pos};
    for (;;) {
      Branch b;
      b.condition = parse_tuple(false, false, {}, false);
      b.body = parse_statements({"elif", "else", "endif"}, "if", n.pos, false);
      n.branches.push_back(std::move(b));
      const std::string end = next().text;
      if (end == "elif") continue;
      if (end == "else") n.body = parse_statements({"endif"}, "if", n.pos, true);
      break;
    }
    return n;
  }

  Node parse_set() {
    Node n{NodeKind::kSet, next().pos};
    n.target = parse_target(true, "");
    if (skip_op("=")) {
      n.expr = parse_tuple(false, true, {}, false);
      return n;
    }
    n.kind = NodeKind::kSetBlock;
    if (!n.target.attr.empty() || n.target.tuple) fail(n.pos, "a block set assigns one name");
    if (is_op("|")) n.expr = parse_filter(make_block_value(n.pos), false);
    n.body = parse_statements({"endset"}, "set", n.pos, true);
    return n;
  }

  Node parse_macro() {
    Node n{NodeKind::kMacro, next().pos};
    n.text = expect_name();
    expect_op("(");
    bool defaults = false;
    while (!is_op(")")) {
      if (!n.params.empty()) expect_op(",");
      if (is_op(")")) break;
      const Pos pos = cur().pos;
      std::string name = expect_name();
      ExprPtr def;
      if (skip_op("=")) {
        def = parse_expression(true);
        defaults = true;
      } else if (defaults) {
        fail(pos, "non-default argument follows default argument");
      }
      n.params.emplace_back(std::move(name), std::move(def));
    }
    expect_op(")");
    const int depth = loop_depth_;
    loop_depth_ = 0;  // a macro's body is outside any loop around its definition
    n.body = parse_statements({"endmacro"}, "macro", n.pos, true);
    loop_depth_ = depth;
    return n;
  }

  // Names (a, b), or with `namespace` also ns.attr.
  Target parse_target(bool with_namespace, std::string_view end_name) {
    Target t;
    if (with_namespace && cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == ".") {
      t.names.push_back(next().text);
      next();
      t.attr = expect_name();
      return t;
    }
    const bool parens = skip_op("(");
    for (;;) {
      const Token& name = cur();
      static const char* const kConstants[] = {"true", "false", "none", "True", "False", "None"};
      if (name.type != Tok::kName ||
          std::any_of(std::begin(kConstants), std::end(kConstants), [&](const char* c) { return name.text == c; }))
        fail(name.pos, "cannot assign to " + describe(name));
      t.names.push_back(next().text);
      if (!skip_op(",")) break;
      t.tuple = true;
      if ((parens && is_op(")")) || (!end_name.empty() && is_name(end_name)) || is_op("=")) break;
    }
    if (parens) expect_op(")");
    return t;
  }

  // ---- expressions ----

  bool is_tuple_end(const std::vector<std::string_view>& extra_end) const {
    if (cur().type == Tok::kVarEnd || cur().type == Tok::kBlockEnd || cur().type == Tok::kEnd || is_op(")"))
      return true;
    return cur().type == Tok::kName && std::find(extra_end.begin(), extra_end.end(), cur().text) != extra_end.end();
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr, std::vector<std::string_view> extra_end,
                      bool explicit_parens) {
    const Pos pos = cur().pos;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    for (;;) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (!is_op(",")) break;
      is_tuple = true;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) fail(cur().pos, "expected an expression, got " + describe(cur()));
    }
    ExprPtr e = make(ExprKind::kList, pos);
    e->args = std::move(items);
    e->tuple = true;
    return e;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    ExprPtr expr = parse_or();
    while (is_name("if")) {
      const Pos pos = next().pos;
      ExprPtr cond = parse_or();
      ExprPtr otherwise = skip_name("else") ? parse_condexpr() : nullptr;
      ExprPtr e = make(ExprKind::kCond, pos, std::move(expr), std::move(cond));
      e->args.push_back(std::move(otherwise));
      expr = std::move(e);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Pos pos = next().pos;
      left = make(ExprKind::kOr, pos, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Pos pos = next().pos;
      left = make(ExprKind::kAnd, pos, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      const Pos pos = next().pos;
      return make(ExprKind::kNot, pos, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Pos pos = cur().pos;
    ExprPtr first = parse_math1();
    ExprPtr e;
    for (;;) {
      std::string op;
      if (cur().type == Tok::kOp && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                     cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        next();
        op = "in";
      } else if (is_name("not") && peek().type == Tok::kName && peek().text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!e) e = make(ExprKind::kCompare, pos, std::move(first));
      e->ops.push_back(op);
      e->args.push_back(parse_math1());
    }
    return e ? std::move(e) : std::move(first);
  }

  ExprPtr binary(ExprPtr left, const Token& op, ExprPtr right) {
    ExprPtr e = make(ExprKind::kBinary, op.pos, std::move(left), std::move(right));
    e->name = op.text;
    return e;
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& op = next();
      left = binary(std::move(left), op, parse_concat());
    }
    return left;
  }

  ExprPtr parse_concat() {
    const Pos pos = cur().pos;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    ExprPtr e = make(ExprKind::kConcat, pos, std::move(first));
    while (skip_op("~")) e->args.push_back(parse_math2());
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& op = next();
      left = binary(std::move(left), op, parse_pow());
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& op = next();
      left = binary(std::move(left), op, parse_unary(true));
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    const Nesting nesting(*this, cur().pos);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& op = next();
      node = make(op.text == "-" ? ExprKind::kNeg : ExprKind::kPos, op.pos, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    if (t.type == Tok::kName) {
      next();
      ExprPtr e = make(ExprKind::kLiteral, t.pos);
      if (t.text == "true" || t.text == "True") {
        e->value = true;
      } else if (t.text == "false" || t.text == "False") {
        e->value = false;
      } else if (t.text == "none" || t.text == "None") {
        e->value = None{};
      } else {
        e->kind = ExprKind::kName;
        e->name = t.text;
      }
      return e;
    }
    if (t.type == Tok::kString) {
      ExprPtr e = make(ExprKind::kLiteral, t.pos);
      std::string s;
      while (cur().type == Tok::kString) s += next().text;  // adjacent literals join, as in Python
      e->value = std::move(s);
      return e;
    }
    if (t.type == Tok::kInt || t.type == Tok::kFloat) {
      next();
      ExprPtr e = make(ExprKind::kLiteral, t.pos);
      e->value = t.type == Tok::kInt ? Value(t.integer) : Value(t.real);
      return e;
    }
    if (is_op("(")) {
      next();
      ExprPtr e = parse_tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      ExprPtr e = make(ExprKind::kList, next().pos);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      ExprPtr e = make(ExprKind::kDict, next().pos);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    fail(t.pos, "unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr node) {
    for (;;) {
      if (is_op(".")) {
        const Pos dot = next().pos;  // errors point at the lookup that failed
        const Token& attr = cur();
        if (attr.type == Tok::kName) {
          next();
          ExprPtr e = make(ExprKind::kAttr, dot, std::move(node));
          e->name = attr.text;
          node = std::move(e);
        } else if (attr.type == Tok::kInt) {
          next();
          ExprPtr index = make(ExprKind::kLiteral, attr.pos);
          index->value = attr.integer;
          node = make(ExprKind::kItem, dot, std::move(node), std::move(index));
        } else {
          fail(attr.pos, "expected a name or number after '.', got " + describe(attr));
        }
      } else if (is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  // [index], [a, b] (a tuple key) or [start:stop:step] (any part may be left out).
  ExprPtr parse_subscript(ExprPtr node) {
    const Pos pos = next().pos;
    ExprPtr parts[3];
    bool slice = false;
    if (is_op("]")) {  // x[] is x[()] in jinja2
      parts[0] = make(ExprKind::kList, pos);
      parts[0]->tuple = true;
    } else if (!is_op(":")) {
      parts[0] = parse_expression(true);
    }
    if (skip_op(":")) {
      slice = true;
      if (!is_op(":") && !is_op("]")) parts[1] = parse_expression(true);
      if (skip_op(":") && !is_op("]")) parts[2] = parse_expression(true);
    } else if (is_op(",")) {
      const Pos first = parts[0]->pos;
      ExprPtr key = make(ExprKind::kList, first, std::move(parts[0]));
      key->tuple = true;
      while (skip_op(",") && !is_op("]")) key->args.push_back(parse_expression(true));
      parts[0] = std::move(key);
    }
    expect_op("]");
    if (!slice) return make(ExprKind::kItem, pos, std::move(node), std::move(parts[0]));
    ExprPtr e = make(ExprKind::kSlice, pos, std::move(node));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
  }

  void parse_call_args(Expr& e) {
    expect_op("(");
    bool need_comma = false;
    while (!is_op(")")) {
      if (need_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail(cur().pos, "*args and **kwargs in calls are not supported");
      if (cur().type == Tok::kName && peek().type == Tok::kOp && peek().text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail(cur().pos, "positional argument follows keyword argument");
        e.args.push_back(parse_expression(true));
      }
      need_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    const Pos pos = node->pos;  // raise_exception's message points at the call's start
    ExprPtr e = make(ExprKind::kCall, pos, std::move(node));
    parse_call_args(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const Pos pos = cur().pos;
      std::string name = expect_name();
      while (skip_op(".")) name += "." + expect_name();
      ExprPtr e = make(ExprKind::kFilter, pos, std::move(node));
      e->name = std::move(name);
      if (is_op("(")) parse_call_args(*e);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const Pos pos = next().pos;  // 'is'
    const bool negated = skip_name("not");
    ExprPtr e = make(ExprKind::kTest, cur().pos, std::move(node));
    e->name = expect_name();
    while (skip_op(".")) e->name += "." + expect_name();
    const Token& t = cur();
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((t.type == Tok::kName || t.type == Tok::kString || t.type == Tok::kInt || t.type == Tok::kFloat ||
                is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail(t.pos, "you cannot chain multiple tests with is");
      e->args.push_back(parse_postfix(parse_primary()));  // `x is divisibleby 3`
    }
    return negated ? make(ExprKind::kNot, pos, std::move(e)) : std::move(e);
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    for (;;) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  std::vector<Token> toks_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  int depth_ = 0;  // statements and unary expressions being parsed, one inside the other
};

}  // namespace

Body parse(std::vector<Token> tokens) { return Parser(std::move(tokens)).parse_template(); }

}  // namespace afq::jinja
