// tokenizer.json's "normalizer", for the SentencePiece-style layouts: Prepend and Replace (a String
// pattern), alone or in a Sequence. NFC is taken as no change: text that is already composed (nearly
// all real text) stays as it is, and afq does not recompose decomposed sequences.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace afq::text {

class Normalizer {
 public:
  Normalizer() = default;
  // `spec`: the "normalizer" value (null: none). Throws afq::Error naming `file` and the field.
  Normalizer(const nlohmann::json& spec, const std::string& file);

  // Hugging Face normalizes each stretch of text between added tokens on its own.
  std::string apply(std::string_view text) const;

 private:
  struct Step {
    bool prepend = false;  // Prepend(content) when the text is not empty; else Replace(pattern, content)
    std::string pattern, content;
  };
  void add(const nlohmann::json& spec, const std::string& field, const std::string& file);
  std::vector<Step> steps_;
};

}  // namespace afq::text
