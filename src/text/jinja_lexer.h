// Jinja source to tokens, as jinja2's lexer makes them with transformers' settings: trim_blocks
// (a block or comment tag eats the newline after it), lstrip_blocks (spaces and tabs before a
// block or comment tag on its own line go), "-" and "+" whitespace control on any tag, the one
// trailing newline of the source dropped, and newlines normalized to "\n". Text between tags
// comes out already stripped; comments are dropped; {% raw %} comes out as text.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace afq::jinja {

struct Pos {
  int line = 1;
  int column = 1;  // in code points, from 1
};

enum class Tok {
  kText,        // template text, in `text`
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifier or keyword, in `text`
  kString,      // string literal, escapes decoded, in `text`
  kInt,         // in `integer`
  kFloat,       // in `real`
  kOp,          // operator or punctuation, in `text`: + - * / // % ** ~ == != < <= > >= = . , : | ( ) [ ] { }
  kEnd,         // end of the source
};

struct Token {
  Tok type;
  std::string text;
  int64_t integer = 0;
  double real = 0;
  Pos pos;
};

// Throws afq::Error "chat template LINE:COL: ..." for an unterminated tag, comment or string, or
// a character no token starts with.
std::vector<Token> lex(std::string_view source);

// The error prefix every message of the interpreter carries: "chat template 3:14: ".
std::string where(Pos pos);

}  // namespace afq::jinja
