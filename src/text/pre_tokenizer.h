// tokenizer.json's "pre_tokenizer": how normalized text is cut into the words BPE merges within.
// Split (regex, Isolated) and ByteLevel for byte-level BPE; Metaspace for SentencePiece-style BPE;
// null keeps the whole text one word (Llama 2's layout, where the normalizer does the work).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "regex.h"

namespace afq::text {

class PreTokenizer {
 public:
  PreTokenizer() = default;
  // Throws afq::Error naming `file` and the field of anything unsupported.
  PreTokenizer(const nlohmann::json& spec, const std::string& file);

  // Appends the words of `text`. `at_start`: `text` begins the input (Metaspace's prepend_scheme
  // "first" adds "▁" only there, as Hugging Face checks the original offset for 0).
  void split(std::string_view text, bool at_start, std::vector<std::string>& words) const;

  bool byte_level() const;  // has a ByteLevel step: words are in GPT-2's byte alphabet

 private:
  enum class Kind { kSplit, kByteLevel, kMetaspace };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind;
    std::unique_ptr<Regex> regex;   // Split; ByteLevel with use_regex
    bool add_prefix_space = false;  // ByteLevel
    std::string replacement;        // Metaspace, usually "▁"
    Prepend prepend = Prepend::kAlways;
    bool split = true;  // Metaspace: a new word at every replacement character
  };
  void add(const nlohmann::json& spec, const std::string& field, const std::string& file);
  std::vector<Step> steps_;
};

}  // namespace afq::text
