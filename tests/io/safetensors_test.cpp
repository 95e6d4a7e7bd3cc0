#include <gtest/gtest.h>

#include <cstring>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "io_test_util.h"
#include "safetensors_buffer.h"

namespace afq {
namespace {

using Safetensors = afq::testing::TempDirTest;

Tensor filled(DType dtype, Shape shape, int seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  for (size_t i = 0; i < t.nbytes(); ++i) t.mutable_bytes()[i] = std::byte(static_cast<uint8_t>(i * 31 + seed));
  return t;
}

TEST_F(Safetensors, EveryDtypeRoundTrips) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  int seed = 0;
  for (DType d : {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32, DType::I16, DType::I8,
                  DType::U8, DType::U32, DType::Bool})
    tensors.emplace_back(std::string(dtype_name(d)) + ".t", filled(d, {3, 5}, ++seed));
  tensors.emplace_back("empty", Tensor::zeros(DType::F32, {0, 4}));
  tensors.emplace_back("scalar", filled(DType::F32, {}, 9));
  write_safetensors(dir_ / "all.safetensors", tensors, {{"format", "pt"}});
  SafetensorsFile f = SafetensorsFile::open(dir_ / "all.safetensors");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.entries().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    Tensor back = f.tensor(name);
    EXPECT_EQ(back.dtype(), t.dtype()) << name;
    EXPECT_EQ(back.shape(), t.shape()) << name;
    EXPECT_EQ(std::memcmp(back.bytes(), t.bytes(), t.nbytes()), 0) << name;
  }
  // Nothing but the file itself is left: no temporary or staging names.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& item : std::filesystem::directory_iterator(dir_)) ++entries;
  EXPECT_EQ(entries, 1u);
}

TEST_F(Safetensors, TensorsAreViewsIntoTheMappingThatOutliveTheFileObject) {
  write_safetensors(dir_ / "a.safetensors", {{"w", filled(DType::F32, {4, 4}, 1)}});
  Tensor view;
  {
    SafetensorsFile f = SafetensorsFile::open(dir_ / "a.safetensors");
    view = f.tensor("w");
    EXPECT_FALSE(view.writable());
    EXPECT_EQ(view.bytes(), f.tensor("w").bytes());  // no copy
  }
  EXPECT_EQ(view.bytes()[5], filled(DType::F32, {4, 4}, 1).bytes()[5]);  // mapping kept alive
}

TEST_F(Safetensors, HeaderIsPaddedToEightBytes) {
  write_safetensors(dir_ / "a.safetensors", {{"abc", filled(DType::U8, {3}, 1)}});
  std::ifstream in(dir_ / "a.safetensors", std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST_F(Safetensors, ReadsMlxFilesWhoseMetadataIsNull) {
  SafetensorsFile f = SafetensorsFile::open(AFQ_TEST_DATA "/spec/mlx_b3_g64.safetensors");
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.tensor("f32.weight").shape(), (Shape{16, 24}));
  EXPECT_EQ(f.tensor("f32.weight").dtype(), DType::U32);
}

// Each malformed file gets an error that names the file and what is wrong.
void expect_error(const std::filesystem::path& path, const std::string& fragment) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "no error for " << fragment;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(path.string(), 0), 0u) << what;
    EXPECT_NE(what.find(fragment), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST_F(Safetensors, MalformedFilesGetOneLineErrorsNamingTheFault) {
  const std::string ok = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  {
    std::ofstream(dir_ / "tiny", std::ios::binary) << "abc";
    expect_error(dir_ / "tiny", "too short");
  }
  expect_error(raw_file("past_end", "{" + ok + "}", 8, 1000), "past the end");
  expect_error(raw_file("huge", "{}", 0, 1ull << 40), "100 MB");
  expect_error(raw_file("json", "{\"t\": [", 8), "invalid JSON");
  expect_error(raw_file("array", "[1, 2]", 0), "not a JSON object");
  expect_error(raw_file("dtype", R"({"t":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2), "unknown dtype");
  expect_error(raw_file("shape", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), "shape");
  expect_error(raw_file("shape_type", R"({"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8), "shape");
  expect_error(raw_file("bytes", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12 bytes");
  expect_error(raw_file("outside", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8),
               "past the data section");
  expect_error(raw_file("reversed", R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 8), "end before");
  expect_error(raw_file("overlap",
                        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        12),
               "overlap");
  expect_error(raw_file("dup", "{" + ok + "," + ok + "}", 8), "appears twice");
  expect_error(raw_file("offsets", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "data_offsets");
  expect_error(raw_file("meta", R"({"__metadata__":{"a":1},)" + ok + "}", 8), "__metadata__");
  expect_error(raw_file("overflow", R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
               "too large");
  expect_error(dir_ / "missing.safetensors", "cannot open");
}

TEST(SafetensorsBuffer, NeverReadsPastTheBuffer) {
  // A header length that points exactly at the end is fine; one byte more is not.
  std::string header = "{}";
  std::vector<std::byte> bytes(8 + header.size());
  bytes[0] = std::byte(header.size());
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  EXPECT_NO_THROW(parse_safetensors_buffer(bytes, "buf"));
  bytes[0] = std::byte(header.size() + 1);
  EXPECT_THROW(parse_safetensors_buffer(bytes, "buf"), Error);
}

}  // namespace
}  // namespace afq
