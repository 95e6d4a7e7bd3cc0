// Tokenizers from Hugging Face tokenizer.json files, with the ids Hugging Face tokenizers gives:
// byte-level BPE (GPT-2, Llama 3, Qwen) with its pre-tokenizer regex (PCRE2), and
// SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama, Mistral: Prepend/Replace
// normalizers or a Metaspace pre-tokenizer); added and special tokens, the post-processor's BOS,
// and streaming decoding that only ever emits complete UTF-8.
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
  // Reads tokenizer.json, and tokenizer_config.json (when given) for the bos/eos tokens and
  // add_bos_token / add_eos_token, which, when set, decide whether encode() adds them (as
  // transformers' Llama tokenizer does); else the post-processor (TemplateProcessing) does.
  // Throws afq::Error naming the file and field of anything unsupported.
  static Tokenizer from_file(const std::filesystem::path& tokenizer_json,
                             const std::filesystem::path& tokenizer_config_json = {});
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // add_special_tokens: what the post-processor adds around the text (Llama's BOS).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // As Hugging Face decodes: SentencePiece decoders drop the leading space of the first token.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;
  int32_t vocab_size() const;
  std::optional<int32_t> token_id(std::string_view token) const;
  std::optional<int32_t> bos_id() const;
  std::vector<int32_t> eos_ids() const;
  bool is_special(int32_t id) const;

  // The bytes a token stands for (what decode appends for it; one byte for <0xXX> byte-fallback
  // tokens; "" for ids past the vocabulary, which decode() drops as Hugging Face does). `first`:
  // as the first token of a decode (SentencePiece: no leading space).
  std::string token_bytes(int32_t id, bool first = false) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Turns ids into text as they are generated, emitting only complete UTF-8: the pushes of a
// sequence concatenate to decode() of it. A byte that starts no valid character becomes U+FFFD at
// once (decode() turns a whole invalid byte-fallback run into U+FFFDs, as Hugging Face does).
class StreamingDecoder {
 public:
  // `after`: ids shown before the pushed ones (a prompt). When one of them is not special, the
  // first pushed token continues their text and keeps its leading space (SentencePiece's "▁the"
  // gives " the"); else it opens the text and loses it, as in decode().
  explicit StreamingDecoder(const Tokenizer& tokenizer, std::span<const int32_t> after = {});
  std::string push(int32_t id);  // the newly complete text, possibly empty
  std::string flush();           // the rest: an unfinished character as one U+FFFD per byte

 private:
  const Tokenizer& tokenizer_;
  std::string pending_;  // bytes of an unfinished UTF-8 character
  bool first_ = true;    // the next token opens the text
};

}  // namespace afq
