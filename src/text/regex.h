// A compiled PCRE2 pattern (UTF + Unicode properties, JIT when available) that splits text into
// the pieces a pre-tokenizer produces.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace afq {

class Regex {
 public:
  explicit Regex(const std::string& pattern);  // throws afq::Error with PCRE2's message
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // "Isolated" splitting: every match is a piece, and so is every stretch between matches.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
};

}  // namespace afq
