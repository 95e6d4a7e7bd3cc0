#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "io_test_util.h"

namespace afq {
namespace {

namespace fs = std::filesystem;
using afq::testing::expect_error;
using afq::testing::patterned;
using afq::testing::ramp;
using CheckpointWriting = afq::testing::TempDirTest;

std::vector<TensorSpec> plan_of(int count, int64_t floats_each) {
  std::vector<TensorSpec> plan;
  for (int i = 0; i < count; ++i) plan.push_back({"layer." + std::to_string(i) + ".w", DType::F32, {floats_each}});
  return plan;
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

TEST_F(CheckpointWriting, StartsANewShardBeforeOneWouldPassTheLimitAndWritesASortedIndex) {
  // 5 tensors of 400 bytes with 1000-byte shards: 2 + 2 + 1.
  WriteOptions options;
  options.max_shard_bytes = 1000;
  options.metadata = {{"format", "mlx"}};
  options.index_metadata = {{"total_parameters", 500}};
  auto plan = plan_of(5, 100);
  std::reverse(plan.begin(), plan.end());  // written in plan order, indexed in name order
  {
    CheckpointWriter writer(dir_, plan, options);
    EXPECT_EQ(writer.file_names(), (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                                             "model-00002-of-00003.safetensors",
                                                             "model-00003-of-00003.safetensors"}));
    for (size_t i = 0; i < plan.size(); ++i) writer.write(plan[i].name, ramp(100, 1000.0f * i));
    writer.finish();
  }
  EXPECT_EQ(files_in_dir(), (std::vector<std::string>{"model-00001-of-00003.safetensors",
                                                      "model-00002-of-00003.safetensors",
                                                      "model-00003-of-00003.safetensors",
                                                      "model.safetensors.index.json"}));
  auto index = read_json(dir_ / "model.safetensors.index.json");
  EXPECT_EQ(index["metadata"], (nlohmann::json{{"total_size", 2000}, {"total_parameters", 500}}));
  std::vector<std::string> keys;
  for (const auto& [name, file] : index["weight_map"].items()) keys.push_back(name);
  EXPECT_EQ(keys, (std::vector<std::string>{"layer.0.w", "layer.1.w", "layer.2.w", "layer.3.w", "layer.4.w"}));
  EXPECT_EQ(index["weight_map"]["layer.4.w"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.3.w"], "model-00001-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.2.w"], "model-00002-of-00003.safetensors");
  EXPECT_EQ(index["weight_map"]["layer.0.w"], "model-00003-of-00003.safetensors");

  Checkpoint c = Checkpoint::open(dir_);
  EXPECT_EQ(c.files().size(), 3u);
  EXPECT_EQ(c.tensor_names().size(), 5u);
  EXPECT_EQ(c.tensor("layer.3.w").data<float>()[7], 1007.0f);
  for (const auto& f : c.files()) EXPECT_EQ(f.metadata(), options.metadata) << f.path();
}

TEST_F(CheckpointWriting, ATensorLargerThanTheLimitGetsAShardOfItsOwn) {
  WriteOptions options;
  options.max_shard_bytes = 100;
  CheckpointWriter writer(dir_, {{"small", DType::F32, {4}}, {"big", DType::F32, {64}}, {"tail", DType::U8, {1}}},
                          options);
  EXPECT_EQ(writer.file_names().size(), 3u);
}

TEST_F(CheckpointWriting, OneShardIsModelSafetensorsWithAnIndexByDefault) {
  {
    CheckpointWriter writer(dir_, plan_of(2, 4));
    EXPECT_EQ(writer.file_names(), std::vector<std::string>{"model.safetensors"});
    writer.write("layer.0.w", ramp(4, 0));
    writer.write("layer.1.w", ramp(4, 4));
    writer.finish();
  }
  EXPECT_EQ(files_in_dir(), (std::vector<std::string>{"model.safetensors", "model.safetensors.index.json"}));
  EXPECT_EQ(read_json(dir_ / "model.safetensors.index.json")["weight_map"]["layer.1.w"], "model.safetensors");
  EXPECT_EQ(Checkpoint::open(dir_).tensor("layer.1.w").data<float>()[0], 4.0f);
}

TEST_F(CheckpointWriting, TheIndexOfOneShardCanBeLeftOut) {
  WriteOptions options;
  options.always_write_index = false;
  CheckpointWriter writer(dir_, plan_of(1, 4), options);
  writer.write("layer.0.w", ramp(4, 0));
  writer.finish();
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"model.safetensors"});
}

TEST_F(CheckpointWriting, WiderElementsComeFirstSoEveryViewIsAligned) {
  // Plan order puts 3 bytes before the floats; the file does not.
  const std::vector<TensorSpec> plan = {{"bytes", DType::U8, {3}}, {"halves", DType::BF16, {3}}, {"floats", DType::F32, {5}},
                                        {"doubles", DType::F64, {2}}};
  {
    CheckpointWriter writer(dir_, plan);
    for (int i = 0; i < 4; ++i) writer.write(plan[i].name, patterned(plan[i].dtype, plan[i].shape, i));
    writer.finish();
  }
  Checkpoint c = Checkpoint::open(dir_);
  EXPECT_EQ(c.entry("doubles").begin, 0u);
  EXPECT_EQ(c.entry("floats").begin, 16u);
  EXPECT_EQ(c.entry("halves").begin, 36u);
  EXPECT_EQ(c.entry("bytes").begin, 42u);
  for (int i = 0; i < 4; ++i) {
    Tensor t = c.tensor(plan[i].name);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.bytes()) % dtype_size(t.dtype()), 0u) << plan[i].name;
    Tensor expected = patterned(plan[i].dtype, plan[i].shape, i);
    EXPECT_EQ(std::memcmp(t.bytes(), expected.bytes(), t.nbytes()), 0) << plan[i].name;
  }
}

TEST_F(CheckpointWriting, LargeTensorsStreamThroughTheBufferIntact) {
  // 12 MiB crosses the 8 MiB buffer: written straight from the caller's memory.
  const std::vector<TensorSpec> plan = {{"a", DType::U8, {5}}, {"big", DType::U32, {3 << 20}}, {"c", DType::U8, {7}}};
  {
    CheckpointWriter writer(dir_, plan);
    for (int i = 0; i < 3; ++i) writer.write(plan[i].name, patterned(plan[i].dtype, plan[i].shape, i));
    writer.finish();
  }
  Checkpoint c = Checkpoint::open(dir_);
  for (int i = 0; i < 3; ++i) {
    Tensor expected = patterned(plan[i].dtype, plan[i].shape, i);
    EXPECT_EQ(std::memcmp(c.tensor(plan[i].name).bytes(), expected.bytes(), expected.nbytes()), 0) << plan[i].name;
  }
}

TEST_F(CheckpointWriting, AnEmptyPlanWritesAnEmptyCheckpoint) {
  {
    CheckpointWriter writer(dir_, {});
    writer.finish();
  }
  Checkpoint c = Checkpoint::open(dir_);
  EXPECT_TRUE(c.tensor_names().empty());
  EXPECT_EQ(read_json(dir_ / "model.safetensors.index.json")["metadata"]["total_size"], 0);
}

TEST_F(CheckpointWriting, AWriterDestroyedBeforeFinishLeavesNothing) {
  {
    WriteOptions options;
    options.max_shard_bytes = 16;
    CheckpointWriter writer(dir_, plan_of(3, 4), options);
    writer.write("layer.0.w", ramp(4, 0));
    writer.write("layer.1.w", ramp(4, 0));
    EXPECT_FALSE(files_in_dir().empty());  // temporaries exist meanwhile, under hidden names
    for (const auto& name : files_in_dir()) EXPECT_EQ(name[0], '.') << name;
  }
  EXPECT_TRUE(files_in_dir().empty());
}

TEST_F(CheckpointWriting, TheWriterChecksOrderNamesDtypesAndSizes) {
  CheckpointWriter writer(dir_, plan_of(2, 4));
  const std::string where = dir_.string();
  expect_error([&] { writer.write("layer.1.w", ramp(4, 0)); }, where,
               {"expected tensor 'layer.0.w' next", "got 'layer.1.w'"});
  expect_error([&] { writer.write("layer.0.w", ramp(5, 0)); }, where, {"'layer.0.w'", "F32 [5]", "F32 [4]"});
  expect_error([&] { writer.write("layer.0.w", Tensor::zeros(DType::BF16, {4})); }, where, {"BF16 [4]"});
  expect_error([&] { writer.write("layer.0.w", std::span<const std::byte>()); }, where, {"has 0 bytes", "needs 16"});
  expect_error([&] { writer.write("layer.0.w", Tensor()); }, where, {"'layer.0.w' is undefined"});
  writer.write("layer.0.w", ramp(4, 0));
  expect_error([&] { writer.finish(); }, where, {"1 planned tensors not written", "'layer.1.w'"});
  writer.write("layer.1.w", ramp(4, 0));
  expect_error([&] { writer.write("layer.2.w", ramp(4, 0)); }, where, {"after every planned tensor"});
}

TEST_F(CheckpointWriting, BadPlansAreRefusedBeforeAnythingIsWritten) {
  const std::string where = dir_.string();
  expect_error([&] { CheckpointWriter(dir_, {{"a", DType::F32, {1}}, {"a", DType::F32, {2}}}); }, where,
               {"tensor 'a' is planned twice"});
  expect_error([&] { CheckpointWriter(dir_, {{"__metadata__", DType::F32, {1}}}); }, where, {"__metadata__"});
  expect_error([&] { CheckpointWriter(dir_, {{"a", DType::F32, {2, -1}}}); }, where, {"tensor 'a'", "[2, -1]"});
  expect_error([&] { CheckpointWriter(dir_, {{"a\xff", DType::F32, {1}}}); }, where, {"cannot write the header"});
  expect_error([&] { CheckpointWriter(dir_ / "nope", plan_of(1, 1)); }, (dir_ / "nope").string(),
               {"output directory does not exist"});
  EXPECT_TRUE(files_in_dir().empty());
}

// Lowers the file size limit so that writes fail as they would on a full disk (EFBIG instead of ENOSPC).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit lowered = old_;
    lowered.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &lowered);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  void (*old_handler_)(int) = nullptr;
};

TEST_F(CheckpointWriting, AFailedWriteIsAnErrorNamingTheFileAndLeavesNothing) {
  const Tensor big = patterned(DType::U8, {1 << 20}, 1);
  {
    FileSizeLimit limit(64 << 10);
    expect_error([&] { write_safetensors(dir_ / "w.safetensors", {{"big", big}}); },
                 (dir_ / ".w.safetensors.tmp").string(), {"write failed"});
    expect_error(
        [&] {
          CheckpointWriter writer(dir_, {{"big", DType::U8, {1 << 20}}});
          writer.write("big", big);
          writer.finish();
        },
        (dir_ / ".model.safetensors.tmp").string(), {"write failed"});
  }
  EXPECT_TRUE(files_in_dir().empty());
}

TEST_F(CheckpointWriting, WriteSafetensorsReplacesAnExistingFileWhole) {
  write_safetensors(dir_ / "w.safetensors", {{"old", ramp(100, 0)}});
  write_safetensors(dir_ / "w.safetensors", {{"new", ramp(2, 5)}}, {{"format", "pt"}});
  SafetensorsFile f = SafetensorsFile::open(dir_ / "w.safetensors");
  EXPECT_EQ(f.entries().size(), 1u);
  EXPECT_EQ(f.tensor("new").data<float>()[1], 6.0f);
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"w.safetensors"});
}

}  // namespace
}  // namespace afq
