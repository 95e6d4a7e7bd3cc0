// SentencePiece-style BPE (byte fallback) against Hugging Face `tokenizers` on the layouts of
// Llama 2 / TinyLlama (sp-legacy) and Mistral (sp-metaspace), and on variants of them
// (tests/data/text/sp/, made by scripts/device/make_sentencepiece_tokenizers.py and
// make_sentencepiece_variants.py, the latter with tokenizers 0.23.2): every line's ids with and
// without special tokens, its decode and its streamed decode; random id sequences decoded with and
// without special tokens.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <tuple>

#include "afq/error.h"
#include "afq/tokenizer.h"

namespace afq {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kSp = AFQ_TEST_DATA "/text/sp";

Tokenizer load(const std::string& name) {
  return Tokenizer::from_file(kSp / name / "tokenizer.json", kSp / name / "tokenizer_config.json");
}

std::vector<json> read_lines(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
  return lines;
}

std::string stream(const Tokenizer& t, const std::vector<int32_t>& ids) {
  StreamingDecoder decoder(t);
  std::string out;
  for (int32_t id : ids) out += decoder.push(id);
  return out + decoder.flush();
}

struct Layout {
  std::string name;
  size_t lines;
};

std::ostream& operator<<(std::ostream& os, const Layout& l) { return os << l.name; }

class SentencePieceParity : public ::testing::TestWithParam<Layout> {};

TEST_P(SentencePieceParity, EncodesEveryLineToTheSameIdsAndDecodesToTheSameText) {
  const Layout& layout = GetParam();
  Tokenizer t = load(layout.name);
  const auto cases = read_lines(kSp / layout.name / "cases.jsonl");
  int failures = 0;
  for (const json& c : cases) {
    const std::string text = c["text"];
    const std::vector<int32_t> ids = c["ids"], ids_special = c["ids_special"];
    const std::string decoded = c["decoded"];
    bool ok = true;
    ok &= t.encode(text, /*add_special_tokens=*/false) == ids;
    ok &= t.encode(text, /*add_special_tokens=*/true) == ids_special;
    ok &= t.decode(ids) == decoded;
    ok &= stream(t, ids) == decoded;
    if (c.contains("decoded_special_skip"))
      ok &= t.decode(ids_special, /*skip_special_tokens=*/true) == c["decoded_special_skip"].get<std::string>();
    if (!ok && ++failures <= 5) {
      ADD_FAILURE() << layout.name << ": " << c.dump() << "\n  encode: " << json(t.encode(text, false)).dump()
                    << "\n  decode: " << json(t.decode(ids)).dump() << "\n  stream: " << json(stream(t, ids)).dump();
    }
  }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(cases.size(), layout.lines);
}

TEST_P(SentencePieceParity, DecodesRandomIdsAsHuggingFaceDoes) {
  // Random ids: invalid byte-fallback runs (one U+FFFD per byte), special tokens first or skipped.
  const Layout& layout = GetParam();
  Tokenizer t = load(layout.name);
  const auto cases = read_lines(kSp / layout.name / "decode.jsonl");
  int failures = 0;
  for (const json& c : cases) {
    const std::vector<int32_t> ids = c["ids"];
    if ((t.decode(ids) != c["decoded"].get<std::string>() ||
         t.decode(ids, /*skip_special_tokens=*/true) != c["decoded_skip"].get<std::string>()) &&
        ++failures <= 5)
      ADD_FAILURE() << layout.name << ": " << c.dump() << "\n  got: " << json(t.decode(ids)).dump() << " / "
                    << json(t.decode(ids, true)).dump();
  }
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(cases.size(), 300u);
}

INSTANTIATE_TEST_SUITE_P(
    HuggingFaceFixtures, SentencePieceParity,
    ::testing::Values(Layout{"sp-legacy", 521}, Layout{"sp-metaspace", 521}, Layout{"sp-metaspace-split", 527},
                      Layout{"sp-metaspace-always", 527}, Layout{"sp-metaspace-never", 527},
                      Layout{"sp-gemma-like", 527}, Layout{"sp-unk", 527}, Layout{"sp-unk-fused", 527}),
    [](const auto& info) {
      std::string name = info.param.name;
      for (char& c : name)
        if (c == '-') c = '_';
      return name;
    });

TEST(SentencePiece, AddsBosAsThePostProcessorSays) {
  Tokenizer t = load("sp-legacy");
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{2});
  EXPECT_EQ(t.encode(""), std::vector<int32_t>{1});
  EXPECT_EQ(t.encode("", /*add_special_tokens=*/false), std::vector<int32_t>{});
  EXPECT_TRUE(t.is_special(0) && t.is_special(1) && t.is_special(2));
  EXPECT_EQ(t.token_id("<0x41>"), 3 + 0x41);
  EXPECT_EQ(t.vocab_size(), 1156);
}

TEST(SentencePiece, AddBosAndEosTokenInTheConfigDecide) {
  const fs::path dir = fs::temp_directory_path() / "afq-sp-config-test";
  fs::create_directories(dir);
  Tokenizer plain = load("sp-legacy");
  const std::vector<int32_t> hello = plain.encode("Hello", /*add_special_tokens=*/false);
  std::ofstream(dir / "no_bos.json") << R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": false})";
  Tokenizer no_bos = Tokenizer::from_file(kSp / "sp-legacy" / "tokenizer.json", dir / "no_bos.json");
  EXPECT_EQ(no_bos.encode("Hello"), hello);
  std::ofstream(dir / "eos.json") << R"({"bos_token": "<s>", "eos_token": "</s>", "add_eos_token": true})";
  Tokenizer eos = Tokenizer::from_file(kSp / "sp-legacy" / "tokenizer.json", dir / "eos.json");
  std::vector<int32_t> expected{1};
  expected.insert(expected.end(), hello.begin(), hello.end());
  expected.push_back(2);
  EXPECT_EQ(eos.encode("Hello"), expected);
  fs::remove_all(dir);
}

TEST(SentencePieceStreaming, HoldsBackACharacterSplitOverByteTokens) {
  Tokenizer t = load("sp-legacy");
  const std::vector<int32_t> ids = t.encode("한", /*add_special_tokens=*/false);  // ▁ + three <0xXX>
  ASSERT_EQ(ids.size(), 4u);
  StreamingDecoder decoder(t);
  EXPECT_EQ(decoder.push(ids[0]), "");  // the first token's leading space is dropped, as decode does
  EXPECT_EQ(decoder.push(ids[1]), "");
  EXPECT_EQ(decoder.push(ids[2]), "");
  EXPECT_EQ(decoder.push(ids[3]), "한");
  EXPECT_EQ(decoder.flush(), "");
}

TEST(SentencePieceStreaming, ContinuesAPromptWithItsLeadingSpace) {
  for (const char* name : {"sp-legacy", "sp-metaspace"}) {
    Tokenizer t = load(name);
    const std::vector<int32_t> prompt = t.encode("ROMEO: But"), all = t.encode("ROMEO: But soft");
    ASSERT_EQ(std::vector<int32_t>(all.begin(), all.begin() + prompt.size()), prompt);
    StreamingDecoder decoder(t, prompt);
    std::string out;
    for (size_t i = prompt.size(); i < all.size(); ++i) out += decoder.push(all[i]);
    EXPECT_EQ(out + decoder.flush(), " soft") << name;
    // A prompt of special tokens alone opens no text: the first word loses its space, as in decode.
    const int32_t word = t.encode("soft", false).front();  // "▁so"
    StreamingDecoder after_bos(t, std::vector<int32_t>{1});
    EXPECT_EQ(after_bos.push(word), "so") << name;
  }
}

TEST(SentencePieceStreaming, ReplacesBytesThatStartNoCharacter) {
  Tokenizer t = load("sp-legacy");
  const int32_t a = *t.token_id("a");
  StreamingDecoder decoder(t);
  EXPECT_EQ(decoder.push(a), "a");
  EXPECT_EQ(decoder.push(3 + 0x80), "\xEF\xBF\xBD");  // a lone continuation byte
  EXPECT_EQ(decoder.push(3 + 0xE6), "");              // the start of a three-byte character
  EXPECT_EQ(decoder.flush(), "\xEF\xBF\xBD");
}

TEST(SentencePiece, EncodesAMegabyteAsOneWordQuickly) {
  // The Llama 2 layout has no pre-tokenizer: a whole text is one word, so merging must not be
  // quadratic in its length.
  std::ifstream in(AFQ_SOURCE_DIR "/models/tinyshakes-5m/valid.txt");
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string text;
  while (text.size() < (1u << 20)) text += buffer.str();
  Tokenizer t = load("sp-legacy");
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = t.encode(text, /*add_special_tokens=*/false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(seconds, 10.0);
  EXPECT_LT(ids.size(), text.size() / 2);
  EXPECT_EQ(t.decode(ids), text);
}

// tokenizer.json of sp-legacy with one field changed.
class UnsupportedField : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / "afq-sp-error-test";
    fs::create_directories(dir_);
    std::ifstream in(kSp / "sp-legacy" / "tokenizer.json");
    base_ = json::parse(in);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // The message of the error loading the changed file.
  std::string error(const std::string& pointer, const json& value) {
    json doc = base_;
    doc[json::json_pointer(pointer)] = value;
    const fs::path path = dir_ / "tokenizer.json";
    std::ofstream(path) << doc.dump();
    try {
      Tokenizer::from_file(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }

  fs::path dir_;
  json base_;
};

TEST_F(UnsupportedField, ModelTypeIsNamed) {
  const std::string message = error("/model/type", "Unigram");
  EXPECT_NE(message.find("tokenizer.json: model.type \"Unigram\" is not supported (BPE only)"), std::string::npos)
      << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST_F(UnsupportedField, EachStageNamesItsField) {
  const std::vector<std::tuple<std::string, json, std::string>> cases = {
      {"/model/type", "WordPiece", "model.type \"WordPiece\""},
      {"/model/dropout", 0.1, "model.dropout 0.1"},
      {"/model/end_of_word_suffix", "</w>", "model.end_of_word_suffix \"</w>\""},
      {"/model/unk_token", "<nope>", "model.unk_token \"<nope>\" is not in model.vocab"},
      {"/model/merges/0", json::array({"▁", "zzz"}), "model.merges[0]: \"zzz\" is not in model.vocab"},
      {"/model/merges/1", "a b c", "model.merges[1] \"a b c\" is not two pieces"},
      {"/normalizer/normalizers/0/type", "NFKC", "normalizer.normalizers[0].type \"NFKC\""},
      {"/normalizer/normalizers/1/pattern", {{"Regex", " +"}}, "normalizer.normalizers[1].pattern"},
      {"/normalizer", {{"type", "Precompiled"}}, "normalizer.type \"Precompiled\""},
      {"/pre_tokenizer", {{"type", "Whitespace"}}, "pre_tokenizer.type \"Whitespace\""},
      {"/pre_tokenizer",
       {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "sometimes"}},
       "pre_tokenizer.prepend_scheme \"sometimes\""},
      {"/decoder/decoders/3/stop", 1, "decoder.decoders[3].stop 1"},
      {"/decoder/decoders/3/start", 2, "decoder.decoders[3].start 2"},
      {"/decoder/decoders/2/type", "Strip", "decoder.decoders[2].type \"Strip\""},
      {"/decoder", {{"type", "WordPiece"}}, "decoder.type \"WordPiece\""},
      {"/post_processor", {{"type", "RobertaProcessing"}}, "post_processor.type \"RobertaProcessing\""},
  };
  for (const auto& [pointer, value, expected] : cases) {
    const std::string message = error(pointer, value);
    EXPECT_NE(message.find("tokenizer.json: " + expected), std::string::npos) << pointer << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace afq
