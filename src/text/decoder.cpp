#include "decoder.h"

#include "byte_level.h"
#include "json_fields.h"
#include "utf8.h"

namespace afq::text {

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
}

}  // namespace

Decoder::Decoder(const nlohmann::json& spec, bool byte_level, const std::string& file) {
  const std::string type = spec.is_null() ? "" : string_field(spec, "type");
  if (spec.is_null()) {
    kind_ = byte_level ? Kind::kByteLevel : Kind::kJoin;
  } else if (type == "ByteLevel") {
    kind_ = Kind::kByteLevel;
  } else if (type == "Metaspace") {
    kind_ = Kind::kMetaspace;
    metaspace_ = spec.at("replacement").get<std::string>();
    const std::string scheme = spec.contains("prepend_scheme") ? string_field(spec, "prepend_scheme") : "always";
    metaspace_first_ = scheme != "never" && !(spec.contains("add_prefix_space") && spec["add_prefix_space"] == false);
  } else if (type == "Sequence") {
    // Each step must come in this order: what comes before Fuse works on each token, what comes
    // after it on the whole text, and only these steps can decode one token at a time.
    kind_ = Kind::kSentencePiece;
    enum Stage { kReplace, kByteFallback, kFuse, kStrip } stage = kReplace;
    const auto& list = spec.at("decoders");
    for (size_t i = 0; i < list.size(); ++i) {
      const auto& d = list[i];
      const std::string field = "decoder.decoders[" + std::to_string(i) + "]";
      const std::string t = string_field(d, "type");
      const std::string order = "Replace, ByteFallback, Fuse, Strip, in this order";
      if (t == "Replace" && stage == kReplace) {
        const auto& pattern = d.at("pattern");
        if (!pattern.contains("String")) unsupported(file, field + ".pattern", pattern, "String patterns only");
        std::string from = pattern["String"].get<std::string>();
        if (from.empty()) unsupported(file, field + ".pattern", pattern, "a non-empty String");
        replacements_.emplace_back(std::move(from), d.at("content").get<std::string>());
      } else if (t == "ByteFallback" && stage < kByteFallback) {
        byte_fallback_ = true;
        stage = kByteFallback;
      } else if (t == "Fuse" && stage < kFuse) {
        stage = kFuse;
      } else if (t == "Strip" && stage == kFuse) {
        if (d.value("stop", 0) != 0) unsupported(file, field + ".stop", d["stop"], "0: a stream cannot know its end");
        const int start = d.value("start", 0);
        if (start < 0 || start > 1) unsupported(file, field + ".start", d["start"], "0 or 1");
        if (start == 1) strip_ = d.at("content").get<std::string>();
        stage = kStrip;
      } else {
        unsupported(file, field + ".type", t, order);
      }
    }
  } else {
    unsupported(file, "decoder.type", type, "ByteLevel, Metaspace, Sequence of Replace, ByteFallback, Fuse, Strip");
  }
}

std::string Decoder::replaced(std::string_view token) const {
  std::string s(token);
  for (const auto& [from, to] : replacements_) replace_all(s, from, to);
  return s;
}

std::optional<unsigned char> Decoder::fallback_byte(std::string_view token) const {
  // Hugging Face reads any "<0xHH>" token as a byte (either case of hex digits).
  if (!byte_fallback_ || token.size() != 6 || token.substr(0, 3) != "<0x" || token[5] != '>') return std::nullopt;
  const auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
  };
  const int hi = hex(token[3]), lo = hex(token[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<unsigned char>(hi * 16 + lo);
}

std::string Decoder::piece(std::string_view token, bool first) const {
  switch (kind_) {
    case Kind::kByteLevel:
      return byte_level_decode(token);
    case Kind::kJoin:
      return first ? std::string(token) : " " + std::string(token);
    case Kind::kMetaspace: {
      std::string s(token);
      replace_all(s, metaspace_, first && metaspace_first_ ? "" : " ");
      return s;
    }
    case Kind::kSentencePiece: {
      std::string s = replaced(token);
      if (auto b = fallback_byte(s)) s.assign(1, static_cast<char>(*b));
      if (first && !strip_.empty() && s.compare(0, strip_.size(), strip_) == 0) s.erase(0, strip_.size());
      return s;
    }
  }
  return {};
}

std::string Decoder::decode(const std::vector<std::string_view>& tokens) const {
  std::string text;
  if (kind_ != Kind::kSentencePiece) {
    for (size_t i = 0; i < tokens.size(); ++i) text += piece(tokens[i], i == 0);
    return text;
  }
  std::string run;  // bytes of consecutive byte-fallback tokens
  const auto end_run = [&] {
    if (is_valid_utf8(run)) {
      text += run;
    } else {
      for (size_t i = 0; i < run.size(); ++i) text += kReplacementChar;
    }
    run.clear();
  };
  for (std::string_view token : tokens) {
    std::string s = replaced(token);
    if (auto b = fallback_byte(s)) {
      run += static_cast<char>(*b);
      continue;
    }
    end_run();
    text += s;
  }
  end_run();
  if (!strip_.empty() && text.compare(0, strip_.size(), strip_) == 0) text.erase(0, strip_.size());
  return text;
}

}  // namespace afq::text
