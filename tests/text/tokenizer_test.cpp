// The tokenizer against Hugging Face `tokenizers` on the real tokenizer.json files: 721 lines of
// Shakespeare, code, CJK, emoji, whitespace runs and random strings each
// (tests/data/text/*.jsonl, made by scripts/device/make_tokenizer_fixtures.py).
#include "afq/tokenizer.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "afq/error.h"

namespace afq {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string name;
  fs::path tokenizer;
};

std::ostream& operator<<(std::ostream& os, const Case& c) { return os << c.name; }

class HuggingFaceParity : public ::testing::TestWithParam<Case> {};

TEST_P(HuggingFaceParity, EncodesEveryLineToTheSameIdsAndDecodesBack) {
  const Case& c = GetParam();
  if (!fs::exists(c.tokenizer)) GTEST_SKIP() << c.tokenizer << " is not here (../shared/data)";
  Tokenizer tokenizer = Tokenizer::from_file(c.tokenizer);
  std::ifstream in(AFQ_TEST_DATA "/text/" + c.name + ".jsonl");
  ASSERT_TRUE(in);
  std::string line;
  int lines = 0, mismatches = 0;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line);
    const std::string text = j["text"];
    const std::vector<int32_t> expected = j["ids"];
    std::vector<int32_t> ids = tokenizer.encode(text, /*add_special_tokens=*/false);
    if (ids != expected && ++mismatches <= 5) ADD_FAILURE() << c.name << ": '" << text << "'";
    EXPECT_EQ(tokenizer.decode(ids), text);
    StreamingDecoder stream(tokenizer);
    std::string streamed;
    for (int32_t id : ids) streamed += stream.push(id);
    streamed += stream.flush();
    EXPECT_EQ(streamed, text);
    ++lines;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(lines, 721);
}

INSTANTIATE_TEST_SUITE_P(
    RealTokenizers, HuggingFaceParity,
    ::testing::Values(Case{"tinyshakes", AFQ_SOURCE_DIR "/models/tinyshakes-5m/tokenizer.json"},
                      Case{"llama3", AFQ_SOURCE_DIR "/../shared/data/tokenizer-llama3/tokenizer.json"},
                      Case{"qwen3", AFQ_SOURCE_DIR "/../shared/data/tokenizer-qwen3/tokenizer.json"}),
    [](const auto& info) { return info.param.name; });

TEST(Tokenizer, ReadsBosAndEosFromTheConfig) {
  Tokenizer t = Tokenizer::from_file(AFQ_SOURCE_DIR "/models/tinyshakes-5m/tokenizer.json",
                                     AFQ_SOURCE_DIR "/models/tinyshakes-5m/tokenizer_config.json");
  EXPECT_EQ(t.bos_id(), 0);
  EXPECT_EQ(t.eos_ids(), std::vector<int32_t>{0});
  EXPECT_TRUE(t.is_special(0));
  EXPECT_EQ(t.vocab_size(), 2048);
  EXPECT_EQ(t.decode(std::vector<int32_t>{0, 199}, /*skip_special_tokens=*/true), t.decode(std::vector<int32_t>{199}));
}

TEST(StreamingDecoder, HoldsBackIncompleteUtf8) {
  Tokenizer t = Tokenizer::from_file(AFQ_SOURCE_DIR "/models/tinyshakes-5m/tokenizer.json");
  std::vector<int32_t> ids = t.encode("😀");  // four bytes, several byte-level tokens
  ASSERT_GT(ids.size(), 1u);
  StreamingDecoder stream(t);
  std::string out;
  for (size_t i = 0; i + 1 < ids.size(); ++i) out += stream.push(ids[i]);
  EXPECT_EQ(out, "");  // nothing printable until the last byte
  out += stream.push(ids.back());
  EXPECT_EQ(out, "😀");
}

TEST(Tokenizer, BadFilesGetErrorsNamingThem) {
  const fs::path dir = fs::temp_directory_path() / "afq-tokenizer-test";
  fs::create_directories(dir);
  EXPECT_THROW(Tokenizer::from_file(dir / "missing.json"), Error);
  std::ofstream(dir / "bad.json") << "{";
  EXPECT_THROW(Tokenizer::from_file(dir / "bad.json"), Error);
  std::ofstream(dir / "wordpiece.json") << R"({"model": {"type": "WordPiece", "vocab": {}}})";
  try {
    Tokenizer::from_file(dir / "wordpiece.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("WordPiece"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("wordpiece.json"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace afq
