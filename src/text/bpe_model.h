// tokenizer.json's "model" of type BPE, as Hugging Face tokenizers runs it: a word's characters
// are looked up in the vocabulary (one missing falls back to its <0xXX> byte pieces with
// byte_fallback, else to <unk>, fused with a neighbouring <unk> under fuse_unk), then adjacent
// pieces are merged, lowest merge rank first (leftmost on ties), until no pair is in the merges.
// A heap over a linked list of pieces keeps that O(n log n) for the long words of SentencePiece
// layouts, where a whole line or file is one word.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace afq::text {

class BpeModel {
 public:
  // `model`: tokenizer.json's "model". Throws afq::Error naming `file` and the field of anything
  // unsupported (Unigram, WordPiece, dropout, subword prefixes) or inconsistent.
  BpeModel(const nlohmann::json& model, const std::string& file);
  BpeModel(const BpeModel&) = delete;
  BpeModel& operator=(const BpeModel&) = delete;

  // Appends the ids of one word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> id(std::string_view token) const;
  const std::vector<std::string>& tokens() const { return tokens_; }  // by id; "" where no token

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  struct Merge {
    int32_t rank;    // position in the merges list
    int32_t new_id;  // the merged piece
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::vector<int32_t> merge_word(std::string_view word) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> tokens_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
  std::optional<int32_t> unk_;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;    // a word that is itself in the vocabulary is one token
  std::array<int32_t, 256> byte_ids_;  // the <0xXX> pieces; -1 without byte_fallback or when missing
  bool byte_fallback_ = false;

  // Words seen before (short ones only), as Hugging Face caches them.
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace afq::text
