#include "jinja_lexer.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>

#include "afq/error.h"
#include "jinja_value.h"

namespace afq::jinja {

std::string where(Pos pos) {
  return "chat template " + std::to_string(pos.line) + ":" + std::to_string(pos.column) + ": ";
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_name_char(char c) { return is_name_start(c) || is_digit(c); }

// jinja2 joins the source's lines with "\n" and, without keep_trailing_newline, drops one final
// newline.
std::string normalize_newlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out += source[i];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(normalize_newlines(source)) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    while (i_ < src_.size()) {
      const size_t tag = find_tag(i_);
      if (tag == std::string::npos) {
        emit_text(src_.substr(i_), i_);
        break;
      }
      const char kind = src_[tag + 1];
      const char sign = tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
      std::string text = src_.substr(i_, tag - i_);
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (sign != '+' && kind != '{') {
        // lstrip_blocks: only spaces and tabs between the line's start and the tag.
        const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((line_start > 0 || line_starting_) && text.find_first_not_of(" \t", line_start) == std::string::npos)
          text.resize(line_start);
      }
      emit_text(text, i_);
      size_t raw_body = 0;
      if (kind == '%' && raw_begin(tag, &raw_body)) {
        i_ = raw_body;
        lex_raw(tag);
      } else if (kind == '#') {
        lex_comment(tag + 2 + (sign ? 1 : 0));
      } else {
        out_.push_back({kind == '{' ? Tok::kVarBegin : Tok::kBlockBegin, "", 0, 0, pos_at(tag)});
        i_ = tag + 2 + (sign ? 1 : 0);
        lex_expression(kind == '{', tag);
      }
    }
    out_.push_back({Tok::kEnd, "", 0, 0, pos_at(src_.size())});
    return std::move(out_);
  }

 private:
  Pos pos_at(size_t offset) const {
    const size_t line = std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin();
    const size_t start = line_starts_[line - 1];
    return {static_cast<int>(line),
            static_cast<int>(code_point_count(std::string_view(src_).substr(start, offset - start))) + 1};
  }

  [[noreturn]] void fail(size_t offset, const std::string& message) const {
    throw Error(where(pos_at(offset)) + message);
  }

  bool starts_with(size_t at, std::string_view s) const { return std::string_view(src_).substr(at, s.size()) == s; }

  size_t find_tag(size_t from) const {
    for (size_t p = src_.find('{', from); p != std::string::npos; p = src_.find('{', p + 1))
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
    return std::string::npos;
  }

  void emit_text(std::string text, size_t offset) {
    if (!text.empty()) out_.push_back({Tok::kText, std::move(text), 0, 0, pos_at(offset)});
  }

  // After a tag's end: "-" eats all whitespace, "+" nothing, a plain block or comment end one
  // newline (trim_blocks). Remembers whether the next text starts a line, for lstrip_blocks.
  void after_tag_end(char sign, bool trim_newline) {
    line_starting_ = false;
    if (sign == '-') {
      const size_t start = i_;
      while (i_ < src_.size() && is_space(src_[i_])) ++i_;
      line_starting_ = i_ > start && src_[i_ - 1] == '\n';
    } else if (sign != '+' && trim_newline && i_ < src_.size() && src_[i_] == '\n') {
      ++i_;
      line_starting_ = true;
    }
  }

  // {% raw %} or {%- raw -%}: sets *body to where the raw text starts.
  bool raw_begin(size_t tag, size_t* body) {
    size_t p = tag + 2;
    if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) ++p;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (!starts_with(p, "raw")) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (starts_with(p, "-%}")) {
      p += 3;
      const size_t start = p;
      while (p < src_.size() && is_space(src_[p])) ++p;
      line_starting_ = p > start && src_[p - 1] == '\n';
    } else if (starts_with(p, "%}")) {
      p += 2;
      line_starting_ = false;
    } else {
      return false;
    }
    *body = p;
    return true;
  }

  void lex_raw(size_t tag) {
    for (size_t p = src_.find("{%", i_); p != std::string::npos; p = src_.find("{%", p + 1)) {
      size_t q = p + 2;
      const char sign = q < src_.size() && (src_[q] == '-' || src_[q] == '+') ? src_[q] : 0;
      if (sign) ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (!starts_with(q, "endraw")) continue;
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      char end_sign = 0;
      if (starts_with(q, "-%}") || starts_with(q, "+%}")) {
        end_sign = src_[q];
        q += 3;
      } else if (starts_with(q, "%}")) {
        q += 2;
      } else {
        continue;
      }
      std::string text = src_.substr(i_, p - i_);
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (sign != '+') {
        const size_t line_start = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
        if ((line_start > 0 || line_starting_) && text.find_first_not_of(" \t", line_start) == std::string::npos)
          text.resize(line_start);
      }
      emit_text(text, i_);
      i_ = q;
      after_tag_end(end_sign, true);
      return;
    }
    fail(tag, "missing end of raw directive");
  }

  void lex_comment(size_t body) {
    const size_t end = src_.find("#}", body);
    if (end == std::string::npos) fail(body, "missing end of comment tag");
    const char sign = end > body && (src_[end - 1] == '-' || src_[end - 1] == '+') ? src_[end - 1] : 0;
    i_ = end + 2;
    after_tag_end(sign, true);
  }

  void lex_expression(bool variable, size_t tag) {
    std::vector<char> brackets;  // the closing brackets expected, innermost last
    for (;;) {
      if (i_ >= src_.size())
        fail(tag, variable ? "unclosed '{{': no '}}' before the end" : "unclosed '{%': no '%}' before the end");
      // An end tag ends the expression only outside brackets: {{ {'a': {'b': 1}} }} is one.
      if (brackets.empty()) {
        const std::string_view close = variable ? "}}" : "%}";
        for (char sign : {'-', '+', '\0'}) {
          if (sign == '+' && variable) continue;
          const std::string end = sign ? std::string(1, sign) + std::string(close) : std::string(close);
          if (starts_with(i_, end)) {
            out_.push_back({variable ? Tok::kVarEnd : Tok::kBlockEnd, "", 0, 0, pos_at(i_)});
            i_ += end.size();
            after_tag_end(sign, !variable);
            return;
          }
        }
      }
      const char c = src_[i_];
      if (is_space(c)) {
        ++i_;
      } else if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        const size_t start = i_;
        while (i_ < src_.size() && is_name_char(src_[i_])) ++i_;
        out_.push_back({Tok::kName, src_.substr(start, i_ - start), 0, 0, pos_at(start)});
      } else if (c == '\'' || c == '"') {
        lex_string();
      } else {
        lex_operator(brackets);
      }
    }
  }

  // Digits with single underscores between them: (\d+_)*\d+. Returns the digits without them.
  std::string digits(size_t& p) const {
    std::string out;
    while (p < src_.size()) {
      if (is_digit(src_[p])) {
        out += src_[p++];
      } else if (src_[p] == '_' && p + 1 < src_.size() && is_digit(src_[p + 1]) && !out.empty()) {
        ++p;
      } else {
        break;
      }
    }
    return out;
  }

  void lex_number() {
    const size_t start = i_;
    const Pos pos = pos_at(start);
    if (src_[i_] == '0' && i_ + 2 < src_.size() && std::string_view("xXoObB").find(src_[i_ + 1]) != std::string::npos) {
      const char base_char = static_cast<char>(std::tolower(src_[i_ + 1]));
      const int base = base_char == 'x' ? 16 : base_char == 'o' ? 8 : 2;
      size_t p = i_ + 2;
      int64_t value = 0;
      bool any = false;
      for (; p < src_.size(); ++p) {
        const char d = static_cast<char>(std::tolower(src_[p]));
        int digit = is_digit(d) ? d - '0' : (d >= 'a' && d <= 'f') ? d - 'a' + 10 : 99;
        if (d == '_') continue;
        if (digit >= base) break;
        if (value > (INT64_MAX - digit) / base) fail(start, "integer literal does not fit in 64 bits");
        value = value * base + digit;
        any = true;
      }
      if (any) {
        i_ = p;
        out_.push_back({Tok::kInt, src_.substr(start, p - start), value, 0, pos});
        return;
      }
    }
    size_t p = i_;
    std::string text = digits(p);
    bool is_float = false;
    // A float cannot follow a dot (jinja2's (?<!\.)): foo.0.1 is two lookups.
    const bool after_dot = start > 0 && src_[start - 1] == '.';
    if (!after_dot) {
      size_t q = p;
      std::string fraction;
      if (q + 1 < src_.size() && src_[q] == '.' && is_digit(src_[q + 1])) {
        ++q;
        fraction = "." + digits(q);
      }
      std::string exponent;
      if (q < src_.size() && (src_[q] == 'e' || src_[q] == 'E')) {
        size_t r = q + 1;
        std::string sign;
        if (r < src_.size() && (src_[r] == '+' || src_[r] == '-')) sign = src_[r++];
        if (r < src_.size() && is_digit(src_[r])) {
          exponent = "e" + sign + digits(r);
          q = r;
        }
      }
      if (!fraction.empty() || !exponent.empty()) {
        is_float = true;
        text += fraction + exponent;
        p = q;
      }
    }
    i_ = p;
    if (is_float) {
      out_.push_back({Tok::kFloat, text, 0, std::strtod(text.c_str(), nullptr), pos});  // inf past the range
      return;
    }
    errno = 0;
    const long long value = std::strtoll(text.c_str(), nullptr, 10);
    if (errno == ERANGE) fail(start, "integer " + text + " does not fit in 64 bits");
    out_.push_back({Tok::kInt, text, value, 0, pos});
  }

  // Python's string escapes (jinja2 decodes literals with "unicode-escape").
  void lex_string() {
    const size_t start = i_;
    const char quote = src_[i_++];
    std::string value;
    for (;;) {
      if (i_ >= src_.size()) fail(start, "unterminated string");
      const char c = src_[i_++];
      if (c == quote) break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (i_ >= src_.size()) fail(start, "unterminated string");
      const char e = src_[i_++];
      auto hex = [&](int n) {
        uint32_t cp = 0;
        for (int k = 0; k < n; ++k) {
          const char h = i_ < src_.size() ? static_cast<char>(std::tolower(src_[i_])) : 0;
          if (!is_digit(h) && !(h >= 'a' && h <= 'f'))
            fail(start, "truncated \\" + std::string(1, e) + " escape in string");
          cp = cp * 16 + (is_digit(h) ? h - '0' : h - 'a' + 10);
          ++i_;
        }
        append_utf8(value, cp);
      };
      switch (e) {
        case '\n':
          break;  // a backslash at the end of a line continues it
        case '\\':
          value += '\\';
          break;
        case '\'':
          value += '\'';
          break;
        case '"':
          value += '"';
          break;
        case 'a':
          value += '\a';
          break;
        case 'b':
          value += '\b';
          break;
        case 'f':
          value += '\f';
          break;
        case 'n':
          value += '\n';
          break;
        case 'r':
          value += '\r';
          break;
        case 't':
          value += '\t';
          break;
        case 'v':
          value += '\v';
          break;
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = e - '0';
            for (int k = 0; k < 2 && i_ < src_.size() && src_[i_] >= '0' && src_[i_] <= '7'; ++k)
              cp = cp * 8 + (src_[i_++] - '0');
            append_utf8(value, cp);
          } else {
            value += '\\';  // unknown escapes stay as written
            value += e;
          }
      }
    }
    out_.push_back({Tok::kString, std::move(value), 0, 0, pos_at(start)});
  }

  void lex_operator(std::vector<char>& brackets) {
    const size_t start = i_;
    for (std::string_view op : {"//", "**", "==", "!=", ">=", "<="})
      if (starts_with(i_, op)) {
        i_ += 2;
        out_.push_back({Tok::kOp, std::string(op), 0, 0, pos_at(start)});
        return;
      }
    const char c = src_[i_];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos)
      fail(start, "unexpected character '" + std::string(1, c) + "'");
    if (c == '(' || c == '[' || c == '{') brackets.push_back(c == '(' ? ')' : c == '[' ? ']' : '}');
    if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty()) fail(start, "unexpected '" + std::string(1, c) + "'");
      if (brackets.back() != c)
        fail(start, "unexpected '" + std::string(1, c) + "', expected '" + std::string(1, brackets.back()) + "'");
      brackets.pop_back();
    }
    ++i_;
    out_.push_back({Tok::kOp, std::string(1, c), 0, 0, pos_at(start)});
  }

  std::string src_;
  std::vector<size_t> line_starts_;
  size_t i_ = 0;
  bool line_starting_ = true;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex(std::string_view source) { return Lexer(source).run(); }

}  // namespace afq::jinja
