// The parsed template: expressions and statements as jinja2's parser builds them.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja_lexer.h"
#include "jinja_value.h"

namespace afq::jinja {

enum class ExprKind {
  kLiteral,  // value
  kName,     // name
  kList,     // [args...] or, with `tuple`, (args...)
  kDict,     // {args[0]: args[1], args[2]: args[3], ...}
  kAttr,     // args[0].name
  kItem,     // args[0][args[1]]
  kSlice,    // args[0][args[1]:args[2]:args[3]], a null part left out
  kCall,     // args[0](args[1:], kwargs)
  kFilter,   // args[0] | name(args[1:], kwargs)
  kTest,     // args[0] is name(args[1:], kwargs)
  kNeg,      // -args[0]
  kPos,      // +args[0]
  kNot,      // not args[0]
  kBinary,   // args[0] name args[1], name one of + - * / // % **
  kConcat,   // args[0] ~ args[1] ~ ...
  kAnd,      // args[0] and args[1]
  kOr,       // args[0] or args[1]
  kCompare,  // args[0] ops[0] args[1] ops[1] args[2] ... (chained as in Python)
  kCond,     // args[0] if args[1] else args[2] (args[2] null: undefined)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind;
  Pos pos;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare: == != < <= > >= in notin
  bool tuple = false;
};

// Where a for loop or set stores its value: names (unpacked when tuple), or a namespace's
// attribute (`ns.attr`: names = {"ns"}).
struct Target {
  std::vector<std::string> names;
  std::string attr;
  bool tuple = false;
};

enum class NodeKind {
  kText,         // text
  kOutput,       // {{ expr }}
  kIf,           // branches, then body as the else
  kFor,          // for target in expr [if condition]: body, else_body
  kSet,          // set target = expr
  kSetBlock,     // set target [| filters in expr] ... endset: body
  kMacro,        // macro text(params): body
  kFilterBlock,  // filter (expr) ... endfilter: body
  kBreak,
  kContinue,
  kScope,  // a body with a scope of its own (transformers' {% generation %})
};

// The name the filters of a block (set, filter) read the rendered body from.
inline constexpr const char* kBlockValue = "\x01block";

struct Branch;

struct Node {
  Node(NodeKind k, Pos p) : kind(k), pos(p) {}
  NodeKind kind;
  Pos pos;
  std::string text;
  ExprPtr expr;
  ExprPtr condition;
  Target target;
  std::vector<Branch> branches;
  std::vector<Node> body;
  std::vector<Node> else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters, null: no default
};

struct Branch {
  ExprPtr condition;
  std::vector<Node> body;
};

using Body = std::vector<Node>;

// Throws afq::Error "chat template LINE:COL: ..." for a syntax error.
Body parse(std::vector<Token> tokens);

}  // namespace afq::jinja
