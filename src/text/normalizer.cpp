#include "normalizer.h"

#include "json_fields.h"

namespace afq::text {

namespace {

constexpr const char* kAllowed = "Sequence, Prepend, Replace, NFC";

}  // namespace

Normalizer::Normalizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add(spec, "normalizer", file);
}

void Normalizer::add(const nlohmann::json& spec, const std::string& field, const std::string& file) {
  const std::string type = string_field(spec, "type");
  if (type == "Sequence") {
    const auto& list = spec.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i) add(list[i], field + ".normalizers[" + std::to_string(i) + "]", file);
  } else if (type == "Prepend") {
    steps_.push_back({true, "", spec.at("prepend").get<std::string>()});
  } else if (type == "Replace") {
    const auto& pattern = spec.at("pattern");
    if (!pattern.contains("String")) unsupported(file, field + ".pattern", pattern, "String patterns only");
    Step step{false, pattern["String"].get<std::string>(), spec.at("content").get<std::string>()};
    if (step.pattern.empty()) unsupported(file, field + ".pattern", pattern, "a non-empty String");
    steps_.push_back(std::move(step));
  } else if (type != "NFC") {
    unsupported(file, field + ".type", type, kAllowed);
  }
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    if (step.prepend) {
      if (!s.empty()) s.insert(0, step.content);
      continue;
    }
    if (s.find(step.pattern) == std::string::npos) continue;
    std::string out;
    out.reserve(s.size() + s.size() / 2);
    size_t from = 0;
    for (size_t at; (at = s.find(step.pattern, from)) != std::string::npos; from = at + step.pattern.size()) {
      out.append(s, from, at - from);
      out += step.content;
    }
    out.append(s, from);
    s = std::move(out);
  }
  return s;
}

}  // namespace afq::text
