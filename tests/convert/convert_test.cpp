#include "afq/convert.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>

#include "afq/error.h"
#include "afq/half.h"
#include "afq/safetensors.h"
#include "json_file.h"

namespace afq {
namespace {

namespace fs = std::filesystem;

const fs::path kModel = AFQ_SOURCE_DIR "/models/tinyshakes-5m";
const fs::path kMlxModel = AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6";

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("afq-convert-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  bool same_bytes(const Tensor& a, const Tensor& b) {
    return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.bytes(), b.bytes(), a.nbytes()) == 0;
  }

  // Only the output (or nothing) may be left in dir_: no staging directory.
  std::vector<std::string> leftovers() {
    std::vector<std::string> names;
    for (const auto& item : fs::directory_iterator(dir_)) names.push_back(item.path().filename().string());
    return names;
  }

  // A small float checkpoint: one linear layer [rows, cols] in bf16 and a norm.
  fs::path small_checkpoint(int64_t rows, int64_t cols, float poison = 0.0f) {
    fs::path in = dir_ / "small";
    fs::create_directories(in);
    Tensor w = Tensor::zeros(DType::BF16, {rows, cols});
    for (int64_t i = 0; i < w.numel(); ++i)
      w.mutable_data<uint16_t>()[i] = f32_to_bf16(std::sin(0.37f * static_cast<float>(i)));
    if (poison != 0.0f) w.mutable_data<uint16_t>()[cols + 3] = f32_to_bf16(poison);
    Tensor norm = Tensor::zeros(DType::BF16, {cols});
    write_safetensors(in / "model.safetensors",
                      {{"model.layers.0.mlp.up_proj.weight", w}, {"model.norm.weight", norm}}, {{"format", "pt"}});
    std::ofstream(in / "config.json") << R"({"model_type": "llama", "hidden_size": )" << cols << "}";
    std::ofstream(in / "tokenizer.json") << "{}";
    return in;
  }

  fs::path dir_;
};

TEST_F(ConvertTest, MlxLayoutReproducesMlxOwnCheckpointBitForBit) {
  // tinyshakes-5m-mlx-mixed_4_6 was made by MLX's own quantize from the same bf16 weights: every
  // tensor we write must equal MLX's, module by module, at the bits MLX chose for it.
  QuantizeOptions options;
  options.quantize_embeddings = true;  // mlx-lm quantizes the (tied) embedding too
  fs::path out = dir_ / "q";
  quantize_checkpoint(kModel, out, options);
  Checkpoint ours = Checkpoint::open(out);
  Checkpoint mlx = Checkpoint::open(kMlxModel);
  EXPECT_EQ(ours.tensor_names(), mlx.tensor_names());

  auto mlx_config = read_quant_config(read_json_file(kMlxModel / "config.json"), "mlx");
  Checkpoint source = Checkpoint::open(kModel);
  int compared = 0;
  for (const auto& name : mlx.tensor_names()) {
    if (!name.ends_with(".scales")) continue;
    std::string module = name.substr(0, name.size() - 7);
    ModuleQuant settings = *mlx_config->for_module(module);
    QuantizedWeight expected{mlx.tensor(module + ".weight"), mlx.tensor(module + ".scales"),
                             mlx.tensor(module + ".biases"), settings.bits, settings.group_size};
    QuantizedWeight got = settings.bits == 4 ? QuantizedWeight{ours.tensor(module + ".weight"),
                                                               ours.tensor(module + ".scales"),
                                                               ours.tensor(module + ".biases"), 4, 64}
                                             : quantize(source.tensor(module + ".weight"), settings.bits,
                                                        settings.group_size, QuantMethod::Mlx);
    EXPECT_TRUE(same_bytes(got.weight, expected.weight)) << module;
    EXPECT_TRUE(same_bytes(got.scales, expected.scales)) << module;
    EXPECT_TRUE(same_bytes(got.biases, expected.biases)) << module;
    ++compared;
  }
  EXPECT_EQ(compared, 43);  // 6 layers x 7 linear layers + the embedding

  // mlx-lm's files: an index even for one shard, {"format": "mlx"}, both config keys.
  EXPECT_TRUE(fs::exists(out / "model.safetensors.index.json"));
  EXPECT_EQ(ours.files().at(0).metadata().at("format"), "mlx");
  auto config = read_json_file(out / "config.json");
  EXPECT_EQ(config["quantization"], config["quantization_config"]);
  EXPECT_EQ(config["quantization"]["bits"], 4);
  EXPECT_EQ(config["quantization"]["group_size"], 64);
  EXPECT_EQ(config["quantization"]["mode"], "affine");
  auto index = read_json_file(out / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_parameters"], 5246208);  // mlx-lm counts a quantized weight as N x K
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
}

TEST_F(ConvertTest, TransformersLayoutNamesQbiasesAndKeepsEmbeddingsInFloat) {
  QuantizeOptions options;
  options.layout = CheckpointLayout::Transformers;
  options.method = QuantMethod::MinMax;
  options.bits = 8;
  options.group_size = 32;
  fs::path out = dir_ / "q";
  ConversionSummary summary = quantize_checkpoint(kModel, out, options);
  EXPECT_EQ(summary.modules_quantized, 42u);
  Checkpoint ours = Checkpoint::open(out);
  EXPECT_TRUE(ours.contains("model.layers.0.self_attn.q_proj.qbiases"));
  EXPECT_FALSE(ours.contains("model.layers.0.self_attn.q_proj.biases"));
  EXPECT_EQ(ours.entry("model.embed_tokens.weight").dtype, DType::BF16);
  EXPECT_EQ(ours.entry("model.layers.0.self_attn.q_proj.weight").shape, (Shape{256, 64}));
  EXPECT_FALSE(fs::exists(out / "model.safetensors.index.json"));
  auto qc = read_json_file(out / "config.json")["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "metal");
  EXPECT_EQ(qc["bits"], 8);
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_EQ(qc["modules_to_not_convert"], nlohmann::json::array({"lm_head"}));
  EXPECT_FALSE(read_json_file(out / "config.json").contains("quantization"));
}

TEST_F(ConvertTest, DequantizeGivesBackExactlyTheDequantizedWeights) {
  QuantizeOptions options;
  options.bits = 3;
  options.group_size = 32;
  options.exclude = {"mlp.down_proj"};
  fs::path q = dir_ / "q", f = dir_ / "f";
  quantize_checkpoint(kModel, q, options);
  EXPECT_EQ(find_quantized_modules(q).size(), 36u);
  dequantize_checkpoint(q, f, {});
  Checkpoint source = Checkpoint::open(kModel), back = Checkpoint::open(f);
  EXPECT_EQ(back.tensor_names(), source.tensor_names());
  for (const auto& name : source.tensor_names()) {
    Tensor original = source.tensor(name);
    Tensor restored = back.tensor(name);
    EXPECT_EQ(restored.dtype(), DType::BF16) << name;
    if (name.find("proj") != std::string::npos && name.find("down_proj") == std::string::npos) {
      Tensor expected = dequantize(quantize(original, 3, 32, QuantMethod::Mlx), DType::BF16);
      EXPECT_TRUE(same_bytes(restored, expected)) << name;
    } else {
      EXPECT_TRUE(same_bytes(restored, original)) << name;  // excluded or not a linear layer
    }
  }
  auto config = read_json_file(f / "config.json");
  EXPECT_FALSE(config.contains("quantization"));
  EXPECT_FALSE(config.contains("quantization_config"));
}

TEST_F(ConvertTest, DequantizesMlxOwnMixedCheckpoint) {
  DequantizeOptions options;
  options.dtype = DType::F32;
  dequantize_checkpoint(kMlxModel, dir_ / "f", options);
  Checkpoint back = Checkpoint::open(dir_ / "f");
  EXPECT_EQ(back.entry("model.embed_tokens.weight").shape, (Shape{2048, 256}));
  EXPECT_EQ(back.entry("model.embed_tokens.weight").dtype, DType::F32);
  EXPECT_FALSE(back.contains("model.embed_tokens.scales"));
  // Dequantized weights stay close to the float originals (6-bit and 4-bit, group 64).
  Checkpoint source = Checkpoint::open(kModel);
  Tensor w = source.tensor("model.layers.2.mlp.down_proj.weight");
  Tensor d = back.tensor("model.layers.2.mlp.down_proj.weight");
  double err = 0, norm = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    double a = float_at(w, i), b = float_at(d, i);
    err += (a - b) * (a - b);
    norm += a * a;
  }
  EXPECT_LT(std::sqrt(err / norm), 0.1);
}

TEST_F(ConvertTest, ShardsLikeHuggingFaceWhenAskedForSmallShards) {
  QuantizeOptions options;
  options.max_shard_bytes = 2 << 20;
  quantize_checkpoint(kModel, dir_ / "q", options);
  auto index = read_json_file(dir_ / "q" / "model.safetensors.index.json");
  EXPECT_GT(Checkpoint::open(dir_ / "q").files().size(), 1u);
  EXPECT_TRUE(fs::exists(dir_ / "q" / "model-00001-of-00003.safetensors") ||
              fs::exists(dir_ / "q" / "model-00001-of-00002.safetensors") ||
              fs::exists(dir_ / "q" / "model-00001-of-00004.safetensors"));
  EXPECT_EQ(index["weight_map"].size(), Checkpoint::open(dir_ / "q").tensor_names().size());
}

TEST_F(ConvertTest, RefusesAnExistingOutput) {
  fs::create_directories(dir_ / "taken");
  try {
    quantize_checkpoint(kModel, dir_ / "taken", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("exists"), std::string::npos) << e.what();
  }
}

TEST_F(ConvertTest, NanWeightFailsNamingTheTensorAndLeavesNoOutput) {
  fs::path in = small_checkpoint(4, 64, std::numeric_limits<float>::quiet_NaN());
  try {
    quantize_checkpoint(in, dir_ / "out", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << e.what();
  }
  EXPECT_EQ(leftovers(), std::vector<std::string>{"small"});
}

TEST_F(ConvertTest, ColumnsNotAMultipleOfTheGroupSizeNameTheTensor) {
  fs::path in = small_checkpoint(4, 96);
  QuantizeOptions options;  // group size 64
  try {
    quantize_checkpoint(in, dir_ / "out", options);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp.up_proj.weight has 96 columns"), std::string::npos)
        << e.what();
  }
  options.group_size = 32;
  EXPECT_NO_THROW(quantize_checkpoint(in, dir_ / "out", options));
  EXPECT_TRUE(fs::exists(dir_ / "out" / "tokenizer.json"));
}

TEST_F(ConvertTest, RejectsSettingsTransformersCannotLoad) {
  QuantizeOptions options;
  options.layout = CheckpointLayout::Transformers;
  options.bits = 3;
  EXPECT_THROW(quantize_checkpoint(kModel, dir_ / "out", options), Error);
  options.bits = 4;
  options.quantize_embeddings = true;
  EXPECT_THROW(quantize_checkpoint(kModel, dir_ / "out", options), Error);
  options.quantize_embeddings = false;
  options.group_size = 48;
  EXPECT_THROW(quantize_checkpoint(kModel, dir_ / "out", options), Error);
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(ConvertTest, RefusesToQuantizeTwiceOrDequantizeAFloatModel) {
  EXPECT_THROW(quantize_checkpoint(kMlxModel, dir_ / "a", {}), Error);
  EXPECT_THROW(dequantize_checkpoint(kModel, dir_ / "b", {}), Error);
}

TEST_F(ConvertTest, InspectShowsSettingsAndSizes) {
  ::testing::internal::CaptureStdout();
  print_inspection(kMlxModel, true);
  std::string text = ::testing::internal::GetCapturedStdout();
  EXPECT_NE(text.find("mlx layout, affine, 4 bits, group size 64"), std::string::npos) << text;
  EXPECT_NE(text.find("6-bit g64"), std::string::npos);
  EXPECT_NE(text.find("4-bit g64"), std::string::npos);
  EXPECT_NE(text.find("model.layers.0.mlp.down_proj.weight"), std::string::npos);
  EXPECT_NE(text.find("the same model in bf16"), std::string::npos);
}

}  // namespace
}  // namespace afq
