#include "bpe_model.h"

#include <cstdio>
#include <queue>

#include "json_fields.h"
#include "utf8.h"

namespace afq::text {

namespace {

constexpr size_t kCacheWordBytes = 256;  // Hugging Face's MAX_LENGTH for cached words
constexpr size_t kCacheEntries = 100'000;

}  // namespace

BpeModel::BpeModel(const nlohmann::json& model, const std::string& file) {
  const std::string type = model.contains("type") ? string_field(model, "type") : "BPE";
  if (type != "BPE") unsupported(file, "model.type", type, "BPE only");
  if (const auto& d = model.value("dropout", nlohmann::json()); !d.is_null() && d.get<double>() != 0.0)
    unsupported(file, "model.dropout", d, "null or 0");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (!string_field(model, key).empty()) unsupported(file, std::string("model.") + key, model[key], "null");

  int32_t size = 0;
  for (const auto& [token, id] : model.at("vocab").items()) {
    const int32_t i = id.get<int32_t>();
    if (i < 0) throw Error(file + ": model.vocab \"" + token + "\" has the negative id " + std::to_string(i));
    vocab_.emplace(token, i);
    size = std::max(size, i + 1);
  }
  tokens_.resize(size);
  for (const auto& [token, id] : vocab_) tokens_[id] = token;

  const auto lookup = [&](const std::string& token, size_t rank) {
    auto it = vocab_.find(token);
    if (it == vocab_.end())
      throw Error(file + ": model.merges[" + std::to_string(rank) + "]: \"" + token + "\" is not in model.vocab");
    return it->second;
  };
  const auto& merges = model.at("merges");
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& m = merges[rank];
    std::string a, b;
    if (m.is_string()) {
      // The older form "a b": exactly one space, as Hugging Face splits it.
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        throw Error(file + ": model.merges[" + std::to_string(rank) + "] \"" + s + "\" is not two pieces");
      a = s.substr(0, space);
      b = s.substr(space + 1);
    } else {
      if (!m.is_array() || m.size() != 2)
        throw Error(file + ": model.merges[" + std::to_string(rank) + "] " + m.dump() + " is not two pieces");
      a = m[0].get<std::string>();
      b = m[1].get<std::string>();
    }
    // A pair listed twice keeps its last rank, as Hugging Face's hash map does.
    const int32_t left = lookup(a, rank), right = lookup(b, rank), merged = lookup(a + b, rank);
    merges_[pair_key(left, right)] = {static_cast<int32_t>(rank), merged};
  }

  if (const std::string unk = string_field(model, "unk_token"); !unk.empty()) {
    auto it = vocab_.find(unk);
    if (it == vocab_.end()) throw Error(file + ": model.unk_token \"" + unk + "\" is not in model.vocab");
    unk_ = it->second;
  }
  fuse_unk_ = model.value("fuse_unk", false);
  ignore_merges_ = model.value("ignore_merges", false);
  byte_fallback_ = model.value("byte_fallback", false);
  byte_ids_.fill(-1);
  if (byte_fallback_) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (auto it = vocab_.find(std::string_view(name)); it != vocab_.end()) byte_ids_[b] = it->second;
    }
  }
}

std::optional<int32_t> BpeModel::id(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::vector<int32_t> BpeModel::merge_word(std::string_view word) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;  // neighbours in the list; -1 at the ends
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&](int32_t id) {
    const int32_t n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, -1, true});
    if (n > 0) symbols[n - 1].next = n;
  };

  // Characters to pieces. A pending <unk> is only written out before the next known character or
  // at the end, so byte-fallback pieces may come before it: Hugging Face's order, kept.
  bool unk_pending = false;
  for (size_t i = 0; i < word.size();) {
    const std::string_view ch = utf8_char_at(word, i);
    i += ch.size();
    if (auto it = vocab_.find(ch); it != vocab_.end()) {
      if (unk_pending) add(*unk_);
      unk_pending = false;
      add(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char c : ch) all &= byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : ch) add(byte_ids_[c]);
        continue;
      }
    }
    if (!unk_) continue;  // no <unk>: the character is dropped, as Hugging Face does
    if (unk_pending && !fuse_unk_) add(*unk_);
    unk_pending = true;
  }
  if (unk_pending) add(*unk_);

  // Merge, lowest (rank, position) first. Entries go stale when a neighbour merges first; an entry
  // is used only while its pair still makes the same piece (Hugging Face's check, kept exactly).
  struct Candidate {
    int32_t rank, pos, new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto push_pair = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.new_id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) push_pair(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = symbols[left.next];
    auto it = merges_.find(pair_key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) push_pair(left.prev);
    push_pair(top.pos);
  }
  std::vector<int32_t> ids;
  for (const Symbol& s : symbols)
    if (s.alive) ids.push_back(s.id);
  return ids;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const bool cached = word.size() < kCacheWordBytes;
  if (cached) {
    std::lock_guard lock(cache_mutex_);
    if (auto it = cache_.find(std::string(word)); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge_word(word);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cached) {
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

}  // namespace afq::text
