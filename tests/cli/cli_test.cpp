// The afq binary as a user runs it: exit codes and one-line errors.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "afq/cuda.h"
#include "afq/tokenizer.h"

namespace {

namespace fs = std::filesystem;

struct Result {
  int exit_code;
  std::string output;  // stdout and stderr
};

Result run(const std::string& args) {
  std::string command = std::string(AFQ_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("afq-cli-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

const std::string kModel = AFQ_SOURCE_DIR "/models/tinyshakes-5m";

TEST_F(Cli, QuantizeInspectDequantizeRoundTrip) {
  Result q = run("quantize " + kModel + " " + (dir_ / "q").string() + " --bits 4 --group-size 64");
  ASSERT_EQ(q.exit_code, 0) << q.output;
  EXPECT_NE(q.output.find("quantized 42 linear layers to 4 bits"), std::string::npos) << q.output;
  Result i = run("inspect " + (dir_ / "q").string() + " --summary");
  ASSERT_EQ(i.exit_code, 0) << i.output;
  EXPECT_NE(i.output.find("4-bit g64"), std::string::npos) << i.output;
  Result d = run("dequantize " + (dir_ / "q").string() + " " + (dir_ / "f").string() + " --dtype f16");
  ASSERT_EQ(d.exit_code, 0) << d.output;
  EXPECT_TRUE(fs::exists(dir_ / "f" / "model.safetensors"));
}

TEST_F(Cli, BadInputGetsOneLineErrorAndNonZeroExit) {
  const std::string out = (dir_ / "out").string();
  for (const std::string& args : {
           "quantize " + kModel + " " + out + " --bits 7",
           "quantize " + kModel + " " + out + " --group-size 48",
           "quantize " + kModel + " " + out + " --method rtn",
           "quantize " + (dir_ / "missing").string() + " " + out,
           "inspect " + (dir_ / "missing.safetensors").string(),
       }) {
    Result r = run(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(r.output.rfind("afq: error: ", 0), 0u) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(out)) << args;
  }
  Result bits = run("quantize " + kModel + " " + out + " --bits 7");
  EXPECT_NE(bits.output.find("7"), std::string::npos);
  EXPECT_NE(bits.output.find("2, 3, 4, 5, 6"), std::string::npos) << bits.output;
}

// The main job end to end: the shipped model, greedy, against transformers' own 32 greedy tokens
// for the same prompt (tests/data/models/tinyshakes-5m.expected.safetensors).
TEST_F(Cli, GenerateGreedyMatchesTransformersTokenForToken) {
  Result r = run("generate --prompt \"$(printf 'ROMEO:\\nBut soft, what light through yonder window breaks?')\" --temp 0 "
                 "--max-tokens 32 --ignore-eos --print-ids");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("ids: 199 199 814 26 199 873 12 533 12 259 889 269 575 297 259 272 384 298 12 199 431 "
                          "292 593 914 12 292 458 322 305 259 289 275\n"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("tokens/s"), std::string::npos);
  EXPECT_NE(r.output.find("peak memory"), std::string::npos);
}

TEST_F(Cli, GenerateQuantizesOnLoadAndStopsAtStopStrings) {
  Result r = run("generate --bits 4 --group-size 64 --prompt ROMEO: --max-tokens 40 --seed 3 --stop JULIET");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("quantized 42 linear layers on load to 4 bits"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("JULIET"), std::string::npos) << r.output;
  Result same = run("generate --bits 4 --group-size 64 --prompt ROMEO: --max-tokens 40 --seed 3 --stop JULIET");
  EXPECT_EQ(r.output.substr(0, r.output.find("prompt:")), same.output.substr(0, same.output.find("prompt:")));
}

// --batch-file: every line's completion, in order, as `afq generate --prompt LINE` gives it.
TEST_F(Cli, GenerateBatchFilePrintsEachCompletionAsGeneratingItAlone) {
  const fs::path prompts = dir_ / "prompts.txt";
  std::ofstream(prompts) << "ROMEO:\n\nFirst Citizen:\r\nKING RICHARD:\n";  // an empty line, a CRLF one
  Result batch = run("generate --batch-file " + prompts.string() + " --temp 0 --max-tokens 16 --print-ids");
  ASSERT_EQ(batch.exit_code, 0) << batch.output;
  EXPECT_NE(batch.output.find("batch of 3 | prompt:"), std::string::npos) << batch.output;
  size_t from = 0;
  int index = 1;
  for (const char* prompt : {"ROMEO:", "First Citizen:", "KING RICHARD:"}) {
    Result alone = run(std::string("generate --prompt '") + prompt + "' --temp 0 --max-tokens 16 --print-ids");
    ASSERT_EQ(alone.exit_code, 0) << alone.output;
    const std::string text = alone.output.substr(0, alone.output.find("prompt ids:"));
    const std::string ids = alone.output.substr(alone.output.find("\nids:") + 1);
    const std::string expected = "--- " + std::to_string(index++) + "/3 (max tokens) ---\n" + text + "prompt ids:";
    const size_t at = batch.output.find(expected, from);
    ASSERT_NE(at, std::string::npos) << "expected\n" << expected << "\nin\n" << batch.output;
    EXPECT_NE(batch.output.find(ids.substr(0, ids.find('\n')), at), std::string::npos) << prompt;
    from = at + expected.size();
  }
}

TEST_F(Cli, GenerateBatchFileErrorsAreOneLine) {
  const fs::path empty = dir_ / "empty.txt", one = dir_ / "one.txt";
  std::ofstream(empty) << "\n\n";
  std::ofstream(one) << "ROMEO:\n";
  for (const std::string& args :
       {"generate --batch-file " + (dir_ / "missing.txt").string(), "generate --batch-file " + empty.string(),
        "generate --batch-file " + one.string() + " --prompt ROMEO:"}) {
    Result r = run(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(r.output.rfind("afq: error: --batch-file", 0), 0u) << args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

TEST_F(Cli, GenerateRejectsBadOptionsInOneLine) {
  std::vector<std::string> bad = {
      "generate --bits 7", "generate --device tpu", "generate --top-p 0", "generate --model /nonexistent",
      "generate --model " + std::string(AFQ_TEST_DATA) + "/tinyshakes-5m-mlx-mixed_4_6 --bits 4"};
  if (!afq::cuda::cuda_available()) bad.push_back("generate --device cuda");  // no GPU here: a one-line error
  for (const std::string& args : bad) {
    Result r = run(args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(r.output.rfind("afq: error: ", 0), 0u) << args << "\n" << r.output;
  }
}

// --chat: a copy of the shipped model given the real Llama 3 chat template (its BOS
// "<|endoftext|>"): the prompt becomes the rendered conversation, tokenized without a second BOS.
TEST_F(Cli, GenerateChatRendersTheTemplateWithOneBos) {
  const fs::path model = dir_ / "chat-model";
  fs::create_directories(model);
  for (const char* file : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"})
    fs::create_symlink(fs::path(kModel) / file, model / file);
  std::ifstream llama3(AFQ_TEST_DATA "/chat/llama3_tokenizer_config.json");
  std::ifstream shipped(kModel + "/tokenizer_config.json");
  nlohmann::json config = nlohmann::json::parse(shipped);
  config["chat_template"] = nlohmann::json::parse(llama3)["chat_template"];
  std::ofstream(model / "tokenizer_config.json") << config.dump();

  Result r = run("generate --model " + model.string() +
                 " --chat --system 'Be brief.' --prompt 'Who art thou?' --max-tokens 1 --temp 0 --print-ids");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string rendered =
      "<|endoftext|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user"
      "<|end_header_id|>\n\nWho art thou?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
  EXPECT_EQ(r.output.rfind(rendered, 0), 0u) << r.output;  // echoed as the text being continued
  afq::Tokenizer tokenizer = afq::Tokenizer::from_file(kModel + "/tokenizer.json", kModel + "/tokenizer_config.json");
  std::string expected = "prompt ids:";
  for (int32_t id : tokenizer.encode(rendered, /*add_special_tokens=*/false)) expected += " " + std::to_string(id);
  EXPECT_NE(r.output.find(expected + "\n"), std::string::npos) << r.output;
  EXPECT_EQ(expected.rfind("prompt ids: 0 ", 0), 0u) << expected;  // one BOS (<|endoftext|> is id 0)...
  EXPECT_NE(expected.substr(13, 2), "0 ") << expected;              // ...not two
}

TEST_F(Cli, GenerateChatNeedsAChatTemplate) {
  Result r = run("generate --chat --prompt hi");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.output, "afq: error: --chat: the model has no chat template (no \"chat_template\" in " + kModel +
                          "/tokenizer_config.json)\n");
  Result system = run("generate --system 'Be brief.' --prompt hi");
  EXPECT_NE(system.exit_code, 0);
  EXPECT_EQ(system.output, "afq: error: --system needs --chat\n");
}

TEST_F(Cli, CorruptSafetensorsIsAOneLineError) {
  fs::create_directories(dir_ / "bad");
  std::ofstream(dir_ / "bad" / "model.safetensors") << "\xff\xff\xff\xff\xff\xff\x00\x00{}";
  std::ofstream(dir_ / "bad" / "config.json") << "{}";
  Result r = run("quantize " + (dir_ / "bad").string() + " " + (dir_ / "out").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("model.safetensors"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

}  // namespace
