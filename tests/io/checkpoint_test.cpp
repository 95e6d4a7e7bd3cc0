#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "io_test_util.h"

namespace afq {
namespace {

namespace fs = std::filesystem;
using CheckpointIo = afq::testing::TempDirTest;

std::vector<TensorSpec> plan_of(int count, int64_t floats_each) {
  std::vector<TensorSpec> plan;
  for (int i = 0; i < count; ++i) plan.push_back({"layer." + std::to_string(i) + ".w", DType::F32, {floats_each}});
  return plan;
}

Tensor ramp(int64_t n, float start) {
  Tensor t = Tensor::zeros(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i) t.mutable_data<float>()[i] = start + static_cast<float>(i);
  return t;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

TEST_F(CheckpointIo, ShardsBeforeAShardWouldPassTheLimitAndWritesASortedIndex) {
  // 5 tensors of 400 bytes with 1000-byte shards: 2 + 2 + 1.
  WriteOptions options;
  options.max_shard_bytes = 1000;
  options.metadata = {{"format", "mlx"}};
  options.index_metadata = {{"total_parameters", 500}};
  auto plan = plan_of(5, 100);
  std::reverse(plan.begin(), plan.end());  // written in plan order, indexed sorted
  {
    CheckpointWriter writer(dir_, plan, options);
    EXPECT_EQ(writer.file_names(), (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                                             "model-00002-of-00003.safetensors",
                                                             "model-00003-of-00003.safetensors"}));
    for (size_t i = 0; i < plan.size(); ++i) writer.write(plan[i].name, ramp(100, 1000.0f * i));
    writer.finish();
  }
  auto index = read_json(dir_ / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"]["total_size"], 2000);
  EXPECT_EQ(index["metadata"]["total_parameters"], 500);
  EXPECT_EQ(index["weight_map"]["layer.4.w"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00003-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"].begin().key(), "layer.0.w");

  Checkpoint c = Checkpoint::open(dir_);
  EXPECT_EQ(c.files().size(), 3u);
  EXPECT_EQ(c.tensor_names().size(), 5u);
  EXPECT_EQ(c.tensor("layer.3.w").data<float>()[7], 1007.0f);
  EXPECT_EQ(c.files()[0].metadata().at("format"), "mlx");
}

TEST_F(CheckpointIo, OneShardIsModelSafetensorsAndTheIndexIsOptional) {
  WriteOptions options;
  options.always_write_index = false;
  CheckpointWriter writer(dir_, plan_of(2, 4), options);
  writer.write("layer.0.w", ramp(4, 0));
  writer.write("layer.1.w", ramp(4, 4));
  writer.finish();
  EXPECT_TRUE(fs::exists(dir_ / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors.index.json"));
  EXPECT_EQ(Checkpoint::open(dir_).tensor("layer.1.w").data<float>()[0], 4.0f);
  EXPECT_EQ(Checkpoint::open(dir_ / "model.safetensors").tensor_names().size(), 2u);
}

TEST_F(CheckpointIo, AWriterDestroyedBeforeFinishLeavesNothing) {
  {
    CheckpointWriter writer(dir_, plan_of(3, 4), {});
    writer.write("layer.0.w", ramp(4, 0));
  }
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(CheckpointIo, TheWriterChecksOrderNamesAndSizes) {
  CheckpointWriter writer(dir_, plan_of(2, 4), {});
  EXPECT_THROW(writer.write("layer.1.w", ramp(4, 0)), Error);  // out of order
  EXPECT_THROW(writer.write("layer.0.w", ramp(5, 0)), Error);  // wrong size
  writer.write("layer.0.w", ramp(4, 0));
  EXPECT_THROW(writer.finish(), Error);  // layer.1.w missing
}

TEST_F(CheckpointIo, ReadsMlxLmsCheckpointThroughItsIndex) {
  Checkpoint c = Checkpoint::open(AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6");
  EXPECT_TRUE(c.contains("model.embed_tokens.scales"));
  EXPECT_EQ(c.entry("model.embed_tokens.weight").dtype, DType::U32);
  EXPECT_EQ(c.file_of("model.norm.weight").path().filename(), "model.safetensors");
}

TEST_F(CheckpointIo, MissingShardOrTensorNamedByTheIndexIsAnError) {
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", ramp(2, 0)}});
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";
  try {
    Checkpoint::open(dir_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors: shard named by"), std::string::npos)
        << e.what();
  }
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", ramp(2, 0)}});
  EXPECT_THROW(Checkpoint::open(dir_), Error);  // "b" is not in its shard
  std::ofstream(dir_ / "model.safetensors.index.json") << "{not json";
  EXPECT_THROW(Checkpoint::open(dir_), Error);
}

TEST_F(CheckpointIo, ATensorInTwoShardsIsAnError) {
  write_safetensors(dir_ / "a.safetensors", {{"w", ramp(2, 0)}});
  write_safetensors(dir_ / "b.safetensors", {{"w", ramp(2, 0)}});
  EXPECT_THROW(Checkpoint::open(dir_), Error);
}

TEST_F(CheckpointIo, EmptyOrMissingDirectoriesAreErrors) {
  EXPECT_THROW(Checkpoint::open(dir_), Error);
  EXPECT_THROW(Checkpoint::open(dir_ / "nope"), Error);
}

}  // namespace
}  // namespace afq
