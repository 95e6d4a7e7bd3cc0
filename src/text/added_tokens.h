// Added tokens (<s>, <|im_start|>, ...) are cut out of the text before anything else runs on it:
// at the leftmost position where one occurs, the longest, as Hugging Face's Aho-Corasick
// (LeftmostLongest) finds them. Tokens marked "normalized" are looked for afterwards in each
// normalized stretch, in their normalized form; the others in the raw text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace afq::text {

class AddedTokens {
 public:
  struct Segment {
    std::string_view text;  // the token's content, or a stretch of text
    int32_t id;             // -1 for a stretch of text
    size_t offset;          // where it starts in the text split
  };

  // `content` as it is looked for (normalized already when `normalized`).
  void add(std::string content, int32_t id, bool normalized);

  // `text` in order, cut at the raw tokens (or the normalized ones); no empty stretches.
  std::vector<Segment> split(std::string_view text, bool normalized) const;

 private:
  struct Set {
    std::vector<std::pair<std::string, int32_t>> tokens;  // longest first
    std::array<bool, 256> starts{};                       // first bytes of the tokens
  };
  Set raw_, normalized_;
};

}  // namespace afq::text
