#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "afq/error.h"
#include "afq/model.h"

namespace afq {
namespace {

std::filesystem::path write_config(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("afq-config-" + std::to_string(::getpid()) + ".json");
  std::ofstream(path) << text;
  return path;
}

TEST(ModelConfig, ReadsTransformers4StyleRopeScaling) {
  auto path = write_config(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 2048,
    "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8,
    "vocab_size": 128256, "rope_theta": 500000.0, "torch_dtype": "bfloat16", "tie_word_embeddings": true,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "eos_token_id": [128001, 128008, 128009]})");
  ModelConfig c = read_model_config(path);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.rope_theta, 500000.0f);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_EQ(c.rope_scaling.factor, 32.0f);
  EXPECT_EQ(c.eos_token_ids, (std::vector<int32_t>{128001, 128008, 128009}));
  std::filesystem::remove(path);
}

TEST(ModelConfig, UnsupportedArchitecturesAndFieldsAreNamed) {
  const std::string base = R"("hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
    "num_attention_heads": 4, "vocab_size": 10)";
  for (auto [text, fragment] : std::vector<std::pair<std::string, std::string>>{
           {R"({"architectures": ["GPT2LMHeadModel"], )" + base + "}", "GPT2LMHeadModel"},
           {R"({"architectures": ["LlamaForCausalLM"], "hidden_act": "gelu", )" + base + "}", "gelu"},
           {R"({"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "yarn", "factor": 4}, )" + base + "}",
            "yarn"},
           {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64})", "intermediate_size"},
       }) {
    auto path = write_config(text);
    try {
      read_model_config(path);
      ADD_FAILURE() << text;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
    std::filesystem::remove(path);
  }
}

}  // namespace
}  // namespace afq
