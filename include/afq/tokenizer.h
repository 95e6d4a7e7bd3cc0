// Tokenizers from Hugging Face tokenizer.json files: byte-level BPE (GPT-2, Llama 3, Qwen) with
// its pre-tokenizer regex (PCRE2), added and special tokens, and streaming decoding that only
// ever emits complete UTF-8.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace afq {

class Tokenizer {
 public:
  // Reads tokenizer.json, and tokenizer_config.json (when given) for the bos/eos tokens. Throws
  // afq::Error naming the file and field of anything unsupported.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json,
                             const std::filesystem::path& tokenizer_config_json = {});
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  int32_t vocab_size() const;
  std::optional<int32_t> token_id(std::string_view token) const;
  std::optional<int32_t> bos_id() const;
  std::vector<int32_t> eos_ids() const;
  bool is_special(int32_t id) const;

  // The bytes a token stands for (what decode appends for it).
  std::string token_bytes(int32_t id) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns ids into text as they are generated, emitting only complete UTF-8 sequences.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
  std::string push(int32_t id);  // the newly complete text, possibly empty
  std::string flush();           // whatever is left, as is

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;
};

}  // namespace afq
