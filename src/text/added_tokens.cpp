#include "added_tokens.h"

#include <algorithm>

namespace afq::text {

void AddedTokens::add(std::string content, int32_t id, bool normalized) {
  if (content.empty()) return;
  Set& set = normalized ? normalized_ : raw_;
  set.starts[static_cast<unsigned char>(content[0])] = true;
  set.tokens.emplace_back(std::move(content), id);
  std::stable_sort(set.tokens.begin(), set.tokens.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

std::vector<AddedTokens::Segment> AddedTokens::split(std::string_view text, bool normalized) const {
  const Set& set = normalized ? normalized_ : raw_;
  std::vector<Segment> segments;
  size_t plain = 0;  // start of the current stretch of text
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    if (set.starts[static_cast<unsigned char>(text[i])]) {
      for (const auto& t : set.tokens)
        if (text.compare(i, t.first.size(), t.first) == 0) {
          hit = &t;
          break;
        }
    }
    if (!hit) {
      ++i;
      continue;
    }
    if (i > plain) segments.push_back({text.substr(plain, i - plain), -1, plain});
    segments.push_back({text.substr(i, hit->first.size()), hit->second, i});
    i += hit->first.size();
    plain = i;
  }
  if (plain < text.size()) segments.push_back({text.substr(plain), -1, plain});
  return segments;
}

}  // namespace afq::text
