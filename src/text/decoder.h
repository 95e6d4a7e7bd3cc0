// tokenizer.json's "decoder": from token strings back to text, as Hugging Face decodes.
// - ByteLevel: each character stands for a byte (GPT-2's table).
// - SentencePiece-style Sequence: Replace ("▁" -> " ") on each token, ByteFallback (a run of
//   <0xXX> tokens is its bytes, or one U+FFFD per token when the run is not valid UTF-8), Fuse,
//   Strip(" ", start 1, stop 0): the decoded text loses one leading space.
// - Metaspace: "▁" -> " ", except in the first token, where every "▁" is dropped.
// - none: tokens joined with spaces (byte-level models: their bytes, as afq always did).
// What the first token gives depends on its being first, so piece() takes that as a flag.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace afq::text {

class Decoder {
 public:
  Decoder() = default;
  // `spec`: the "decoder" value. `byte_level`: the model's pieces are in GPT-2's byte alphabet
  // (a missing decoder then decodes bytes). Throws afq::Error naming `file` and the field.
  Decoder(const nlohmann::json& spec, bool byte_level, const std::string& file);

  // The text (bytes: a byte-fallback token gives one byte) that `token` adds to a decode;
  // `first`: it is the first token decoded.
  std::string piece(std::string_view token, bool first) const;

  // A whole decode, exactly as Hugging Face's (invalid byte-fallback runs included).
  std::string decode(const std::vector<std::string_view>& tokens) const;

 private:
  enum class Kind { kByteLevel, kSentencePiece, kMetaspace, kJoin };
  std::string replaced(std::string_view token) const;
  std::optional<unsigned char> fallback_byte(std::string_view token) const;

  Kind kind_ = Kind::kByteLevel;
  std::vector<std::pair<std::string, std::string>> replacements_;  // kSentencePiece, in order
  bool byte_fallback_ = false;                                     // kSentencePiece
  std::string strip_;  // kSentencePiece: Strip's content, dropped once from the start ("" = no Strip)
  std::string metaspace_;       // kMetaspace: the replacement character
  bool metaspace_first_ = true;  // kMetaspace: drop it from the first token (prepend_scheme not "never")
};

}  // namespace afq::text
