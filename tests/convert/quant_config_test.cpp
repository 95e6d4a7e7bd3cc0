#include "afq/quant_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "afq/error.h"
#include "json_file.h"

namespace afq {
namespace {

using nlohmann::json;

TEST(QuantConfig, ReadsMlxLmDefaultsAndPerModuleEntries) {
  json config = read_json_file(AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6/config.json");
  auto quant = read_quant_config(config, "config.json");
  ASSERT_TRUE(quant);
  EXPECT_EQ(quant->layout, CheckpointLayout::Mlx);
  EXPECT_EQ(quant->defaults, (ModuleQuant{4, 64}));
  EXPECT_EQ(quant->biases_suffix(), "biases");
  // mixed_4_6 gives some v_proj / down_proj 6 bits; every quantized module has an entry.
  int six_bit = 0;
  for (const auto& [module, settings] : quant->per_module) six_bit += settings && settings->bits == 6;
  EXPECT_GT(six_bit, 0);
  EXPECT_EQ(quant->for_module("model.embed_tokens"), (ModuleQuant{4, 64}));
}

TEST(QuantConfig, FalseKeepsAModuleInFloat) {
  json config = {{"quantization", {{"bits", 4}, {"group_size", 32}, {"lm_head", false},
                                   {"model.layers.0.mlp.down_proj", {{"bits", 8}, {"group_size", 64}}}}}};
  auto quant = read_quant_config(config, "c");
  ASSERT_TRUE(quant);
  EXPECT_FALSE(quant->for_module("lm_head"));
  EXPECT_EQ(quant->for_module("model.layers.0.mlp.down_proj"), (ModuleQuant{8, 64}));
  EXPECT_EQ(quant->for_module("model.layers.1.mlp.down_proj"), (ModuleQuant{4, 32}));
  // An old checkpoint without "mode" reads as affine.
  EXPECT_EQ(quant->defaults, (ModuleQuant{4, 32}));
}

TEST(QuantConfig, RefusesOtherModesAndMethodsNamingTheField) {
  json mxfp4 = {{"quantization", {{"bits", 4}, {"group_size", 32}, {"mode", "mxfp4"}}}};
  try {
    read_quant_config(mxfp4, "m/config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("m/config.json: quantization"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mxfp4"), std::string::npos);
  }
  json gptq = {{"quantization_config", {{"quant_method", "gptq"}, {"bits", 4}}}};
  EXPECT_THROW(read_quant_config(gptq, "c"), Error);
  json bad_bits = {{"quantization_config", {{"quant_method", "metal"}, {"bits", 7}, {"group_size", 64}}}};
  EXPECT_THROW(read_quant_config(bad_bits, "c"), Error);
  json bad_type = {{"quantization", {{"bits", "4"}, {"group_size", 64}}}};
  EXPECT_THROW(read_quant_config(bad_type, "c"), Error);
}

TEST(QuantConfig, ReadsTransformersMetalConfig) {
  json config = {{"quantization_config",
                  {{"quant_method", "metal"}, {"bits", 2}, {"group_size", 128}, {"modules_to_not_convert", {"lm_head"}}}}};
  auto quant = read_quant_config(config, "c");
  ASSERT_TRUE(quant);
  EXPECT_EQ(quant->layout, CheckpointLayout::Transformers);
  EXPECT_EQ(quant->biases_suffix(), "qbiases");
  EXPECT_FALSE(quant->for_module("lm_head"));
  EXPECT_EQ(quant->for_module("model.layers.0.self_attn.q_proj"), (ModuleQuant{2, 128}));
  EXPECT_FALSE(read_quant_config(json{{"hidden_size", 8}}, "c"));
}

TEST(QuantConfig, WritesWhatItReads) {
  for (auto layout : {CheckpointLayout::Mlx, CheckpointLayout::Transformers}) {
    QuantConfig quant;
    quant.layout = layout;
    quant.defaults = {3, 32};
    if (layout == CheckpointLayout::Transformers) {
      quant.defaults = {8, 32};
      quant.modules_to_not_convert = {"lm_head", "model.layers.*.mlp.down_proj"};
    } else {
      quant.per_module["model.layers.0.mlp.down_proj"] = ModuleQuant{6, 64};
      quant.per_module["lm_head"] = std::nullopt;
    }
    json config = {{"hidden_size", 8}};
    write_quant_config(quant, config);
    if (layout == CheckpointLayout::Mlx) {
      EXPECT_EQ(config["quantization"], config["quantization_config"]);
    }
    auto back = read_quant_config(config, "c");
    ASSERT_TRUE(back);
    EXPECT_EQ(back->layout, layout);
    EXPECT_EQ(back->defaults, quant.defaults);
    EXPECT_EQ(back->per_module, quant.per_module);
    EXPECT_EQ(back->modules_to_not_convert, quant.modules_to_not_convert);
  }
}

TEST(ModuleMatches, ExactTrailingPartsAndGlobs) {
  EXPECT_TRUE(module_matches("lm_head", "lm_head"));
  EXPECT_TRUE(module_matches("model.layers.0.self_attn.q_proj", "q_proj"));
  EXPECT_TRUE(module_matches("model.layers.0.self_attn.q_proj", "self_attn.q_proj"));
  EXPECT_FALSE(module_matches("model.layers.0.self_attn.qq_proj", "q_proj"));
  EXPECT_FALSE(module_matches("model.layers.0.self_attn.q_proj", "layers.0"));
  EXPECT_TRUE(module_matches("model.layers.3.mlp.down_proj", "model.layers.*.mlp.down_proj"));
  EXPECT_TRUE(module_matches("model.layers.3.mlp.down_proj", "*down*"));
  EXPECT_FALSE(module_matches("model.layers.3.mlp.up_proj", "*down*"));
  EXPECT_FALSE(module_matches("anything", ""));
}

}  // namespace
}  // namespace afq
