// The tokenizer as Hugging Face tokenizers runs it: added tokens are cut out of the raw text
// first; each stretch between them is normalized, split into words by the pre-tokenizer and
// merged by the BPE model; the post-processor adds BOS/EOS around the whole. Decoding maps the
// tokens back through the decoder. Each stage is a file of its own beside this one.
#include "afq/tokenizer.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <unordered_map>

#include "added_tokens.h"
#include "afq/error.h"
#include "bpe_model.h"
#include "decoder.h"
#include "json_fields.h"
#include "normalizer.h"
#include "pre_tokenizer.h"
#include "utf8.h"

namespace afq {

namespace {

using nlohmann::json;

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

// The ids a post-processor puts before and after a single sequence: TemplateProcessing's
// "single" (`<s> $A`), possibly inside a Sequence; ByteLevel only trims offsets.
void read_post_processor(const json& post, const std::string& field, const std::string& file,
                         std::vector<int32_t>& prefix, std::vector<int32_t>& suffix) {
  if (post.is_null()) return;
  const std::string type = text::string_field(post, "type");
  if (type == "Sequence") {
    const auto& list = post.at("processors");
    for (size_t i = 0; i < list.size(); ++i)
      read_post_processor(list[i], field + ".processors[" + std::to_string(i) + "]", file, prefix, suffix);
  } else if (type == "TemplateProcessing") {
    bool after = false;
    for (const auto& item : post.at("single")) {
      if (item.contains("Sequence")) {
        after = true;
      } else if (item.contains("SpecialToken")) {
        const std::string name = item["SpecialToken"].at("id").get<std::string>();
        for (const auto& id : post.at("special_tokens").at(name).at("ids"))
          (after ? suffix : prefix).push_back(id.get<int32_t>());
      }
    }
  } else if (type != "ByteLevel") {
    text::unsupported(file, field + ".type", type, "TemplateProcessing, ByteLevel, Sequence");
  }
}

}  // namespace

struct Tokenizer::Impl {
  std::string source;
  text::Normalizer normalizer;
  text::PreTokenizer pre_tokenizer;
  std::unique_ptr<text::BpeModel> model;
  text::Decoder decoder;
  text::AddedTokens added;
  std::unordered_map<std::string, int32_t> added_ids;  // content -> id
  std::vector<std::string> id_to_token;  // the model's tokens, the added ones over them
  std::vector<bool> special;             // by id
  std::vector<int32_t> prefix_ids, suffix_ids;  // the post-processor's, around a single sequence
  std::optional<int32_t> bos;
  std::vector<int32_t> eos;

  // Ids past the tokenizer's vocabulary (a model's padded embedding rows) decode to nothing, as
  // Hugging Face drops them.
  bool has_token(int32_t id) const;
  void encode_stretch(std::string_view text, bool at_start, std::vector<int32_t>& ids) const;
};

void Tokenizer::Impl::encode_stretch(std::string_view text, bool at_start, std::vector<int32_t>& ids) const {
  const std::string normalized = normalizer.apply(text);
  std::vector<std::string> words;
  for (const auto& seg : added.split(normalized, /*normalized=*/true)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    words.clear();
    pre_tokenizer.split(seg.text, at_start && seg.offset == 0, words);
    for (const auto& w : words) model->tokenize(w, ids);
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::from_file(const std::filesystem::path& tokenizer_json,
                               const std::filesystem::path& tokenizer_config_json) {
  auto impl = std::make_unique<Impl>();
  Impl& t = *impl;
  t.source = tokenizer_json.string();
  const json doc = read_json(tokenizer_json);
  const std::string& file = t.source;
  try {
    t.model = std::make_unique<text::BpeModel>(doc.at("model"), file);
    t.normalizer = text::Normalizer(doc.value("normalizer", json()), file);
    t.pre_tokenizer = text::PreTokenizer(doc.value("pre_tokenizer", json()), file);
    t.decoder = text::Decoder(doc.value("decoder", json()), t.pre_tokenizer.byte_level(), file);

    t.id_to_token = t.model->tokens();
    const json added = doc.value("added_tokens", json::array());
    for (const auto& a : added) {
      const int32_t id = a.at("id").get<int32_t>();
      if (id < 0) throw Error(file + ": added_tokens: id " + std::to_string(id) + " is negative");
      t.id_to_token.resize(std::max<size_t>(t.id_to_token.size(), static_cast<size_t>(id) + 1));
    }
    t.special.assign(t.id_to_token.size(), false);
    for (const auto& a : added) {
      const int32_t id = a.at("id").get<int32_t>();
      std::string content = a.at("content").get<std::string>();
      t.id_to_token[id] = content;
      t.special[id] = a.value("special", false);
      t.added_ids[content] = id;
      const bool normalized = a.value("normalized", !t.special[id]);
      t.added.add(normalized ? t.normalizer.apply(content) : content, id, normalized);
    }

    read_post_processor(doc.value("post_processor", json()), "post_processor", file, t.prefix_ids, t.suffix_ids);
    for (const auto* ids : {&t.prefix_ids, &t.suffix_ids})
      for (int32_t id : *ids)
        if (id < 0 || id >= static_cast<int32_t>(t.id_to_token.size()))
          throw Error(file + ": post_processor: token id " + std::to_string(id) + " is outside the vocabulary");
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw Error(file + ": " + what);
  }

  if (!tokenizer_config_json.empty()) {
    const json config = read_json(tokenizer_config_json);
    const std::string config_file = tokenizer_config_json.string();
    auto lookup = [&](const char* key) -> std::optional<int32_t> {
      auto it = config.find(key);
      if (it == config.end()) return std::nullopt;
      auto content = token_content(*it);
      if (!content) return std::nullopt;
      auto id = t.added_ids.count(*content) ? std::optional<int32_t>(t.added_ids[*content]) : t.model->id(*content);
      if (!id) throw Error(config_file + ": " + key + " '" + *content + "' is not a token");
      return id;
    };
    t.bos = lookup("bos_token");
    if (auto eos = lookup("eos_token")) t.eos.push_back(*eos);
    // transformers' Llama tokenizers rebuild the post-processor from these two flags.
    auto flag = [&](const char* key, const std::optional<int32_t>& id, std::vector<int32_t>& ids, bool front) {
      auto it = config.find(key);
      if (it == config.end() || !it->is_boolean() || !id) return;
      const bool has = front ? !ids.empty() && ids.front() == *id : !ids.empty() && ids.back() == *id;
      if (it->get<bool>() && !has) ids.insert(front ? ids.begin() : ids.end(), *id);
      if (!it->get<bool>() && has) ids.erase(front ? ids.begin() : ids.end() - 1);
    };
    flag("add_bos_token", t.bos, t.prefix_ids, /*front=*/true);
    flag("add_eos_token", t.eos.empty() ? std::nullopt : std::optional<int32_t>(t.eos[0]), t.suffix_ids, false);
  }
  return Tokenizer(std::move(impl));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<int32_t> ids;
  if (add_special_tokens) ids = t.prefix_ids;
  for (const auto& seg : t.added.split(text, /*normalized=*/false)) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
    } else {
      t.encode_stretch(seg.text, /*at_start=*/seg.offset == 0, ids);
    }
  }
  if (add_special_tokens) ids.insert(ids.end(), t.suffix_ids.begin(), t.suffix_ids.end());
  return ids;
}

bool Tokenizer::Impl::has_token(int32_t id) const {
  return id >= 0 && id < static_cast<int32_t>(id_to_token.size()) && !id_to_token[id].empty();
}

std::string Tokenizer::token_bytes(int32_t id, bool first) const {
  if (!impl_->has_token(id)) return {};
  return impl_->decoder.piece(impl_->id_to_token[id], first);
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::vector<std::string_view> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (!impl_->has_token(id) || (skip_special_tokens && is_special(id))) continue;
    tokens.push_back(impl_->id_to_token[id]);
  }
  return impl_->decoder.decode(tokens);
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_token.size()); }

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  auto it = impl_->added_ids.find(std::string(token));
  if (it != impl_->added_ids.end()) return it->second;
  return impl_->model->id(token);
}

std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::vector<int32_t> Tokenizer::eos_ids() const { return impl_->eos; }

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < static_cast<int32_t>(impl_->special.size()) && impl_->special[id];
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, std::span<const int32_t> after)
    : tokenizer_(tokenizer) {
  for (int32_t id : after) first_ &= tokenizer.is_special(id);
}

std::string StreamingDecoder::push(int32_t id) {
  const std::string bytes = tokenizer_.token_bytes(id, first_);
  if (id >= 0 && id < tokenizer_.vocab_size()) first_ = false;
  pending_ += bytes;
  // Emit every complete character; hold back an unfinished one; a byte that cannot start or
  // continue one becomes U+FFFD.
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const int n = text::utf8_valid_prefix(std::string_view(pending_).substr(i));
    if (n == 0) break;
    if (n < 0) {
      out += text::kReplacementChar;
      ++i;
      continue;
    }
    out.append(pending_, i, static_cast<size_t>(n));
    i += static_cast<size_t>(n);
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamingDecoder::flush() {
  std::string out;
  for (size_t i = 0; i < pending_.size(); ++i) out += text::kReplacementChar;
  pending_.clear();
  return out;
}

}  // namespace afq
