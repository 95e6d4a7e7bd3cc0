#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "io_test_util.h"

namespace afq {
namespace {

namespace fs = std::filesystem;
using afq::testing::expect_error;
using afq::testing::ramp;
using CheckpointOpen = afq::testing::TempDirTest;

TEST_F(CheckpointOpen, ReadsMlxLmsCheckpointThroughItsIndex) {
  const fs::path dir = AFQ_TEST_DATA "/tinyshakes-5m-mlx-mixed_4_6";
  Checkpoint c = Checkpoint::open(dir);
  EXPECT_EQ(c.dir(), dir);
  ASSERT_EQ(c.files().size(), 1u);
  EXPECT_EQ(c.files()[0].metadata().at("format"), "mlx");
  const std::vector<std::string> names = c.tensor_names();
  EXPECT_EQ(names.size(), 142u);  // as many as the index's weight_map
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_TRUE(c.contains("model.embed_tokens.scales"));
  EXPECT_FALSE(c.contains("lm_head.weight"));  // tied embeddings
  EXPECT_EQ(c.entry("model.embed_tokens.weight").dtype, DType::U32);
  EXPECT_EQ(c.tensor("model.embed_tokens.weight").shape(), (Shape{2048, 32}));  // 256 columns at 4 bits
  EXPECT_EQ(c.file_of("model.norm.weight").path().filename(), "model.safetensors");
  expect_error([&] { c.tensor("lm_head.weight"); }, dir.string(), {"no tensor named 'lm_head.weight'"});
}

TEST_F(CheckpointOpen, ASingleFileIsACheckpointInItsDirectory) {
  write_safetensors(dir_ / "weights.safetensors", {{"a", ramp(2, 0)}});
  Checkpoint c = Checkpoint::open(dir_ / "weights.safetensors");
  EXPECT_EQ(c.dir(), dir_);
  EXPECT_EQ(c.tensor_names(), std::vector<std::string>{"a"});
}

TEST_F(CheckpointOpen, ModelSafetensorsIsPreferredToOtherFilesWithoutAnIndex) {
  write_safetensors(dir_ / "model.safetensors", {{"a", ramp(2, 0)}});
  write_safetensors(dir_ / "consolidated.safetensors", {{"a", ramp(2, 0)}});  // would clash if read
  EXPECT_EQ(Checkpoint::open(dir_).files().size(), 1u);
}

TEST_F(CheckpointOpen, WithoutIndexOrModelSafetensorsEveryShardIsReadInNameOrder) {
  write_safetensors(dir_ / "b.safetensors", {{"y", ramp(2, 2)}});
  write_safetensors(dir_ / "a.safetensors", {{"x", ramp(2, 0)}});
  std::ofstream(dir_ / "notes.txt") << "not weights";
  Checkpoint c = Checkpoint::open(dir_);
  ASSERT_EQ(c.files().size(), 2u);
  EXPECT_EQ(c.files()[0].path().filename(), "a.safetensors");
  EXPECT_EQ(c.file_of("y").path().filename(), "b.safetensors");
  EXPECT_EQ(c.tensor("y").data<float>()[1], 3.0f);
}

TEST_F(CheckpointOpen, AMissingShardIsNamed) {
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", ramp(2, 0)}});
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";
  expect_error([&] { Checkpoint::open(dir_); }, (dir_ / "model-00002-of-00002.safetensors").string(),
               {"shard named by model.safetensors.index.json is missing"});
}

TEST_F(CheckpointOpen, ATensorTheIndexNamesButItsShardLacksIsNamed) {
  write_safetensors(dir_ / "model-00001-of-00002.safetensors", {{"a", ramp(2, 0)}});
  write_safetensors(dir_ / "model-00002-of-00002.safetensors", {{"c", ramp(2, 0)}});
  std::ofstream(dir_ / "model.safetensors.index.json")
      << R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})";
  expect_error([&] { Checkpoint::open(dir_); }, (dir_ / "model.safetensors.index.json").string(),
               {"tensor 'b'", "model-00002-of-00002.safetensors"});
}

TEST_F(CheckpointOpen, AMalformedIndexIsNamed) {
  write_safetensors(dir_ / "model.safetensors", {{"a", ramp(2, 0)}});
  const fs::path index = dir_ / "model.safetensors.index.json";
  std::ofstream(index) << "{not json";
  expect_error([&] { Checkpoint::open(dir_); }, index.string(), {"invalid JSON"});
  std::ofstream(index) << R"({"metadata": {}})";
  expect_error([&] { Checkpoint::open(dir_); }, index.string(), {"\"weight_map\""});
  std::ofstream(index) << R"({"weight_map": {"a": 3}})";
  expect_error([&] { Checkpoint::open(dir_); }, index.string(), {"'a'", "not a file name"});
  std::ofstream(index) << R"({"weight_map": {"a": "../model.safetensors"}})";
  expect_error([&] { Checkpoint::open(dir_); }, index.string(), {"'a'", "not a file in this directory"});
}

TEST_F(CheckpointOpen, ATensorInTwoShardsIsAnErrorNamingBoth) {
  write_safetensors(dir_ / "a.safetensors", {{"w", ramp(2, 0)}});
  write_safetensors(dir_ / "b.safetensors", {{"w", ramp(2, 0)}});
  expect_error([&] { Checkpoint::open(dir_); }, (dir_ / "b.safetensors").string(),
               {"tensor 'w'", "also in " + (dir_ / "a.safetensors").string()});
}

TEST_F(CheckpointOpen, ADirectoryWithoutSafetensorsOrAMissingPathIsNamed) {
  expect_error([&] { Checkpoint::open(dir_); }, dir_.string(), {"no .safetensors files"});
  expect_error([&] { Checkpoint::open(dir_ / "nope"); }, (dir_ / "nope").string(), {"no such file or directory"});
}

TEST_F(CheckpointOpen, AMalformedShardIsNamed) {
  raw_file("model.safetensors", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8);
  expect_error([&] { Checkpoint::open(dir_); }, (dir_ / "model.safetensors").string(), {"tensor \"t\"", "needs 12"});
}

}  // namespace
}  // namespace afq
