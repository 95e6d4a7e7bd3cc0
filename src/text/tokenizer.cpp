// Byte-level BPE as Hugging Face tokenizers runs it: added tokens are cut out of the text first;
// the rest is normalized, split by the pre-tokenizer, each byte mapped to a printable character
// (GPT-2's bytes_to_unicode), and merged pair by pair in merge-rank order.
#include "afq/tokenizer.h"

#include <algorithm>
#include <climits>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "afq/error.h"
#include "regex.h"

namespace afq {

namespace {

using nlohmann::json;

// GPT-2's regex, used by a ByteLevel pre-tokenizer with use_regex.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Splits a UTF-8 string into its characters.
std::vector<std::string> utf8_chars(std::string_view s) {
  std::vector<std::string> chars;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    chars.emplace_back(s.substr(i, n));
    i += n;
  }
  return chars;
}

struct PairHash {
  size_t operator()(const std::pair<std::string, std::string>& p) const {
    return std::hash<std::string>()(p.first) * 1000003u ^ std::hash<std::string>()(p.second);
  }
};

struct PreTokenizerStep {
  std::unique_ptr<Regex> split;  // Split(Isolated) or ByteLevel(use_regex)
  bool add_prefix_space = false;
};

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  std::unordered_map<std::pair<std::string, std::string>, int32_t, PairHash> merge_rank;
  bool ignore_merges = false;
  std::vector<PreTokenizerStep> steps;
  std::string byte_to_char[256];
  std::unordered_map<std::string, uint8_t> char_to_byte;
  // Added tokens, matched in the raw text: content -> id, longest first.
  std::vector<std::pair<std::string, int32_t>> added;
  std::vector<bool> special;  // by id
  std::vector<int32_t> prefix_ids, suffix_ids;  // TemplateProcessing around a single sequence
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void bpe(const std::string& piece, std::vector<int32_t>& out) const;
  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
};

void Tokenizer::Impl::bpe(const std::string& piece, std::vector<int32_t>& out) const {
  {
    std::lock_guard lock(cache_mutex);
    if (auto it = cache.find(piece); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  auto whole = vocab.find(piece);
  if (ignore_merges && whole != vocab.end()) {
    ids.push_back(whole->second);
  } else {
    std::vector<std::string> symbols = utf8_chars(piece);
    // Merge the lowest-ranked adjacent pair until none is in the merge table.
    while (symbols.size() > 1) {
      int32_t best_rank = INT32_MAX;
      size_t best = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = merge_rank.find({symbols[i], symbols[i + 1]});
        if (it != merge_rank.end() && it->second < best_rank) {
          best_rank = it->second;
          best = i;
        }
      }
      if (best_rank == INT32_MAX) break;
      symbols[best] += symbols[best + 1];
      symbols.erase(symbols.begin() + best + 1);
    }
    for (const auto& s : symbols) {
      auto it = vocab.find(s);
      if (it == vocab.end()) throw Error(source + ": symbol '" + s + "' is not in the vocabulary");
      ids.push_back(it->second);
    }
  }
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard lock(cache_mutex);
  if (cache.size() > 200'000) cache.clear();
  cache.emplace(piece, std::move(ids));
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  std::vector<std::string> pieces{std::string(text)};
  for (const auto& step : steps) {
    std::vector<std::string> next;
    for (auto& p : pieces) {
      if (step.add_prefix_space && !p.empty() && p[0] != ' ') p.insert(p.begin(), ' ');
      if (!step.split) {
        next.push_back(std::move(p));
        continue;
      }
      for (std::string_view s : step.split->split(p)) next.emplace_back(s);
    }
    pieces = std::move(next);
  }
  std::string mapped;
  for (const auto& p : pieces) {
    mapped.clear();
    for (unsigned char c : p) mapped += byte_to_char[c];
    bpe(mapped, out);
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

namespace {

json read_json(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  try {
    return json::parse(text.str());
  } catch (const json::parse_error&) {
    throw Error(path.string() + ": invalid JSON");
  }
}

std::optional<std::string> token_content(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content")) return value["content"].get<std::string>();
  return std::nullopt;
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json,
                               const std::filesystem::path& tokenizer_config_json) {
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  t.source = tokenizer_json.string();
  const json doc = read_json(tokenizer_json);
  const std::string& where = t.source;
  try {
    const json& model = doc.at("model");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE") throw Error(where + ": model type '" + type + "' is not supported (BPE only)");
    if (model.value("byte_fallback", false))
      throw Error(where + ": SentencePiece-style BPE (byte_fallback) is not supported yet; byte-level BPE only");
    t.ignore_merges = model.value("ignore_merges", false);
    for (const auto& [token, id] : model.at("vocab").items()) t.vocab[token] = id.get<int32_t>();
    int32_t rank = 0;
    for (const auto& merge : model.at("merges")) {
      std::pair<std::string, std::string> pair;
      if (merge.is_string()) {
        const std::string s = merge.get<std::string>();
        const size_t space = s.find(' ', 1);
        if (space == std::string::npos) throw Error(where + ": merge '" + s + "' is not two symbols");
        pair = {s.substr(0, space), s.substr(space + 1)};
      } else {
        pair = {merge.at(0).get<std::string>(), merge.at(1).get<std::string>()};
      }
      t.merge_rank.emplace(std::move(pair), rank++);
    }

    if (const json& norm = doc.value("normalizer", json()); !norm.is_null()) {
      const std::string ntype = norm.value("type", "");
      // NFC leaves text that is already composed (nearly all real text) unchanged; afq does not
      // recompose decomposed sequences.
      if (ntype != "NFC") throw Error(where + ": normalizer type '" + ntype + "' is not supported");
    }

    auto add_step = [&](const json& pre) {
      const std::string ptype = pre.value("type", "");
      PreTokenizerStep step;
      if (ptype == "ByteLevel") {
        step.add_prefix_space = pre.value("add_prefix_space", false);
        if (pre.value("use_regex", true)) step.split = std::make_unique<Regex>(kGpt2Pattern);
      } else if (ptype == "Split") {
        if (pre.value("behavior", "") != "Isolated" || pre.value("invert", false))
          throw Error(where + ": Split pre-tokenizer behavior other than Isolated is not supported");
        const json& pattern = pre.at("pattern");
        if (pattern.contains("Regex")) {
          step.split = std::make_unique<Regex>(pattern["Regex"].get<std::string>());
        } else {
          throw Error(where + ": Split pre-tokenizer with a String pattern is not supported");
        }
      } else {
        throw Error(where + ": pre_tokenizer type '" + ptype + "' is not supported");
      }
      t.steps.push_back(std::move(step));
    };
    const json& pre = doc.value("pre_tokenizer", json());
    if (pre.is_null()) throw Error(where + ": no pre_tokenizer: not a byte-level BPE tokenizer");
    if (pre.value("type", "") == "Sequence") {
      for (const auto& p : pre.at("pretokenizers")) add_step(p);
    } else {
      add_step(pre);
    }
    if (const json& dec = doc.value("decoder", json()); !dec.is_null() && dec.value("type", "") != "ByteLevel")
      throw Error(where + ": decoder type '" + dec.value("type", "") + "' is not supported (ByteLevel)");

    // GPT-2's byte <-> printable character table.
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      std::string ch;
      append_utf8(ch, printable ? static_cast<uint32_t>(b) : static_cast<uint32_t>(next++));
      t.byte_to_char[b] = ch;
      t.char_to_byte[ch] = static_cast<uint8_t>(b);
    }

    int32_t size = 0;
    for (const auto& [token, id] : t.vocab) size = std::max(size, id + 1);
    for (const auto& a : doc.value("added_tokens", json::array())) {
      const int32_t id = a.at("id").get<int32_t>();
      const std::string content = a.at("content").get<std::string>();
      t.added.emplace_back(content, id);
      size = std::max(size, id + 1);
    }
    std::sort(t.added.begin(), t.added.end(), [](auto& a, auto& b) { return a.first.size() > b.first.size(); });
    t.id_to_token.resize(size);
    t.special.assign(size, false);
    for (const auto& [token, id] : t.vocab) t.id_to_token[id] = token;
    for (const auto& a : doc.value("added_tokens", json::array())) {
      const int32_t id = a.at("id").get<int32_t>();
      t.id_to_token[id] = a.at("content").get<std::string>();
      t.special[id] = a.value("special", false);
      t.vocab[a.at("content").get<std::string>()] = id;
    }

    if (const json& post = doc.value("post_processor", json()); !post.is_null()) {
      const std::string ptype = post.value("type", "");
      if (ptype == "TemplateProcessing") {
        bool after = false;
        for (const auto& item : post.at("single")) {
          if (item.contains("Sequence")) {
            after = true;
          } else if (item.contains("SpecialToken")) {
            const std::string name = item["SpecialToken"].at("id").get<std::string>();
            const auto& ids = post.at("special_tokens").at(name).at("ids");
            for (const auto& id : ids) (after ? t.suffix_ids : t.prefix_ids).push_back(id.get<int32_t>());
          }
        }
      } else if (ptype != "ByteLevel") {
        throw Error(where + ": post_processor type '" + ptype + "' is not supported");
      }
    }
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw Error(where + ": " + what);
  }

  if (!tokenizer_config_json.empty()) {
    const json config = read_json(tokenizer_config_json);
    auto lookup = [&](const char* key) -> std::optional<int32_t> {
      auto it = config.find(key);
      if (it == config.end()) return std::nullopt;
      auto content = token_content(*it);
      if (!content) return std::nullopt;
      auto id = t.vocab.find(*content);
      if (id == t.vocab.end())
        throw Error(tokenizer_config_json.string() + ": " + key + " '" + *content + "' is not a token");
      return id->second;
    };
    t.bos = lookup("bos_token");
    if (auto eos = lookup("eos_token")) t.eos.push_back(*eos);
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = t.prefix_ids;
  // Cut the added tokens out of the raw text (longest first at each position).
  size_t plain_start = 0;
  for (size_t i = 0; i < text.size();) {
    const std::pair<std::string, int32_t>* hit = nullptr;
    for (const auto& a : t.added)
      if (!a.first.empty() && text.compare(i, a.first.size(), a.first) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      ++i;
      continue;
    }
    t.encode_plain(text.substr(plain_start, i - plain_start), ids);
    ids.push_back(hit->second);
    i += hit->first.size();
    plain_start = i;
  }
  t.encode_plain(text.substr(plain_start), ids);
  if (add_special_tokens) ids.insert(ids.end(), t.suffix_ids.begin(), t.suffix_ids.end());
  return ids;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const Impl& t = *impl_;
  if (id < 0 || id >= static_cast<int32_t>(t.id_to_token.size()))
    throw Error("token id " + std::to_string(id) + " is outside the vocabulary");
  const std::string& token = t.id_to_token[id];
  bool is_added = false;
  for (const auto& a : t.added) is_added |= a.second == id;
  if (is_added) return token;  // added tokens are plain text
  std::string bytes;
  for (const auto& ch : utf8_chars(token)) {
    auto it = t.char_to_byte.find(ch);
    if (it == t.char_to_byte.end()) return token;  // not byte-level: keep as is
    bytes += static_cast<char>(it->second);
  }
  return bytes;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string text;
  for (int32_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    text += token_bytes(id);
  }
  return text;
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  auto it = impl_->vocab.find(std::string(token));
  if (it == impl_->vocab.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < static_cast<int32_t>(impl_->special.size()) && impl_->special[id];
}

std::string StreamingDecoder::push(int32_t id) {
  pending_ += tokenizer_.token_bytes(id);
  // Emit up to the last complete UTF-8 sequence; hold back a trailing partial one.
  size_t end = pending_.size();
  size_t i = end;
  int back = 0;
  while (i > 0 && back < 4) {
    --i;
    ++back;
    const unsigned char c = static_cast<unsigned char>(pending_[i]);
    if ((c & 0xC0) != 0x80) {  // a lead byte (or ASCII)
      const size_t need = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
      if (end - i < need) end = i;
      break;
    }
  }
  std::string out = pending_.substr(0, end);
  pending_.erase(0, end);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out = std::move(pending_);
  pending_.clear();
  return out;
}

}  // namespace afq
