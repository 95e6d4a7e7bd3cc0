#include "pre_tokenizer.h"

#include "byte_level.h"
#include "json_fields.h"

namespace afq::text {

namespace {

// GPT-2's regex, used by a ByteLevel pre-tokenizer with use_regex.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr const char* kAllowed = "Sequence, Split, ByteLevel, Metaspace";

std::string replace_all(std::string_view s, char from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == from) {
      out += to;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

PreTokenizer::PreTokenizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add(spec, "pre_tokenizer", file);
}

void PreTokenizer::add(const nlohmann::json& spec, const std::string& field, const std::string& file) {
  const std::string type = string_field(spec, "type");
  Step step;
  if (type == "Sequence") {
    const auto& list = spec.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], field + ".pretokenizers[" + std::to_string(i) + "]", file);
    return;
  } else if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
    step.add_prefix_space = spec.value("add_prefix_space", false);
    if (spec.value("use_regex", true)) step.regex = std::make_unique<Regex>(kGpt2Pattern);
  } else if (type == "Split") {
    step.kind = Kind::kSplit;
    if (string_field(spec, "behavior") != "Isolated") unsupported(file, field + ".behavior", spec.at("behavior"), "Isolated");
    if (spec.value("invert", false)) unsupported(file, field + ".invert", true, "false");
    const auto& pattern = spec.at("pattern");
    if (!pattern.contains("Regex")) unsupported(file, field + ".pattern", pattern, "Regex patterns only");
    step.regex = std::make_unique<Regex>(pattern["Regex"].get<std::string>());
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.replacement = spec.at("replacement").get<std::string>();
    // As Hugging Face reads it: prepend_scheme defaults to "always"; add_prefix_space false means "never".
    const std::string scheme = spec.contains("prepend_scheme") ? string_field(spec, "prepend_scheme") : "always";
    if (scheme == "always") {
      step.prepend = Prepend::kAlways;
    } else if (scheme == "first") {
      step.prepend = Prepend::kFirst;
    } else if (scheme == "never") {
      step.prepend = Prepend::kNever;
    } else {
      unsupported(file, field + ".prepend_scheme", scheme, "always, first, never");
    }
    if (spec.contains("add_prefix_space") && spec["add_prefix_space"] == false) step.prepend = Prepend::kNever;
    step.split = spec.value("split", true);
  } else {
    unsupported(file, field + ".type", type, kAllowed);
  }
  steps_.push_back(std::move(step));
}

bool PreTokenizer::byte_level() const {
  for (const Step& step : steps_)
    if (step.kind == Kind::kByteLevel) return true;
  return false;
}

void PreTokenizer::split(std::string_view text, bool at_start, std::vector<std::string>& words) const {
  if (text.empty()) return;
  // The first piece always begins where `text` begins: splits keep order and drop nothing.
  std::vector<std::string> pieces{std::string(text)}, next;
  for (const Step& step : steps_) {
    next.clear();
    for (size_t k = 0; k < pieces.size(); ++k) {
      std::string& p = pieces[k];
      switch (step.kind) {
        case Kind::kSplit:
          for (std::string_view s : step.regex->split(p)) next.emplace_back(s);
          break;
        case Kind::kByteLevel: {
          if (step.add_prefix_space && p[0] != ' ') p.insert(p.begin(), ' ');
          std::vector<std::string_view> parts;
          if (step.regex) {
            parts = step.regex->split(p);
          } else {
            parts.push_back(p);
          }
          for (std::string_view s : parts) {
            std::string mapped;
            for (unsigned char c : s) mapped += byte_to_char(c);
            next.push_back(std::move(mapped));
          }
          break;
        }
        case Kind::kMetaspace: {
          std::string s = replace_all(p, ' ', step.replacement);
          const bool starts = s.compare(0, step.replacement.size(), step.replacement) == 0;
          if (!starts && (step.prepend == Prepend::kAlways || (step.prepend == Prepend::kFirst && at_start && k == 0)))
            s.insert(0, step.replacement);
          if (!step.split) {
            next.push_back(std::move(s));
            break;
          }
          // Hugging Face's MergedWithNext: every replacement character opens a new word.
          size_t begin = 0;
          for (size_t at = s.find(step.replacement, 1); at != std::string::npos;
               at = s.find(step.replacement, at + step.replacement.size())) {
            next.push_back(s.substr(begin, at - begin));
            begin = at;
          }
          next.push_back(s.substr(begin));
          break;
        }
      }
    }
    std::swap(pieces, next);
  }
  for (auto& p : pieces) words.push_back(std::move(p));
}

}  // namespace afq::text
