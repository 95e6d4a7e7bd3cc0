#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "io_test_util.h"
#include "safetensors_buffer.h"

namespace afq {
namespace {

using afq::testing::patterned;
using Safetensors = afq::testing::TempDirTest;

const std::vector<DType> kAllDtypes = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64, DType::I32,
                                       DType::I16, DType::I8,  DType::U8,  DType::U32,  DType::Bool};

TEST_F(Safetensors, EveryDtypeRoundTripsBitForBit) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  int seed = 0;
  // Odd element counts, so that a careless layout would misalign the wider types after them.
  for (DType d : kAllDtypes) tensors.emplace_back(std::string(dtype_name(d)) + ".t", patterned(d, {3, 5}, ++seed));
  tensors.emplace_back("empty", Tensor::zeros(DType::F32, {0, 4}));
  tensors.emplace_back("scalar", patterned(DType::F32, {}, 9));
  write_safetensors(dir_ / "all.safetensors", tensors, {{"format", "pt"}});

  SafetensorsFile f = SafetensorsFile::open(dir_ / "all.safetensors");
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  ASSERT_EQ(f.entries().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    Tensor back = f.tensor(name);
    EXPECT_EQ(back.dtype(), t.dtype()) << name;
    EXPECT_EQ(back.shape(), t.shape()) << name;
    EXPECT_EQ(std::memcmp(back.bytes(), t.bytes(), t.nbytes()), 0) << name;
    // The writer puts wider elements first, so every view is aligned to its element size.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(back.bytes()) % dtype_size(back.dtype()), 0u) << name;
  }
  EXPECT_EQ(files_in_dir(), std::vector<std::string>{"all.safetensors"});  // no temporary left
}

TEST_F(Safetensors, TensorsAreViewsIntoTheMappingThatOutliveTheFileObject) {
  write_safetensors(dir_ / "a.safetensors",
                    {{"w", patterned(DType::F32, {4, 4}, 1)}, {"v", patterned(DType::F32, {3}, 2)}});
  Tensor w, v;
  uint64_t header_size = 0;
  {
    std::ifstream in(dir_ / "a.safetensors", std::ios::binary);
    in.read(reinterpret_cast<char*>(&header_size), 8);
  }
  {
    SafetensorsFile f = SafetensorsFile::open(dir_ / "a.safetensors");
    w = f.tensor("w");
    v = f.tensor("v");
    EXPECT_FALSE(w.writable());
    EXPECT_EQ(w.bytes(), f.tensor("w").bytes());  // the same bytes each time: no copy
    // Both sit where the file puts them relative to one page-aligned mapping of the whole file.
    const TensorEntry& we = *f.find("w");
    const TensorEntry& ve = *f.find("v");
    EXPECT_EQ(v.bytes() - w.bytes(), static_cast<ptrdiff_t>(ve.begin) - static_cast<ptrdiff_t>(we.begin));
    const auto file_start = reinterpret_cast<uintptr_t>(w.bytes()) - 8 - header_size - we.begin;
    EXPECT_EQ(file_start % static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE)), 0u);
  }
  // The file object is gone; the views keep the mapping.
  EXPECT_EQ(std::memcmp(w.bytes(), patterned(DType::F32, {4, 4}, 1).bytes(), w.nbytes()), 0);
  EXPECT_EQ(std::memcmp(v.bytes(), patterned(DType::F32, {3}, 2).bytes(), v.nbytes()), 0);
}

TEST_F(Safetensors, HeaderIsPaddedWithSpacesToEightBytes) {
  write_safetensors(dir_ / "a.safetensors", {{"abc", patterned(DType::U8, {3}, 1)}});
  std::ifstream in(dir_ / "a.safetensors", std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header(n, '\0');
  in.read(header.data(), static_cast<std::streamsize>(n));
  const size_t last = header.find_last_not_of(' ');
  EXPECT_EQ(header[last], '}') << header;
  EXPECT_LT(header.size() - last - 1, 8u) << header;  // at most 7 spaces of padding
}

TEST_F(Safetensors, ReadsTheSpecFixtureInputs) {
  SafetensorsFile f = SafetensorsFile::open(AFQ_TEST_DATA "/spec/weights_in.safetensors");
  EXPECT_EQ(f.entries().size(), 4u);
  EXPECT_EQ(f.tensor("f32").dtype(), DType::F32);
  EXPECT_EQ(f.tensor("bf16").dtype(), DType::BF16);
  EXPECT_EQ(f.tensor("f16").dtype(), DType::F16);
  for (const char* name : {"f32", "bf16", "f16"}) EXPECT_EQ(f.tensor(name).shape(), (Shape{16, 256})) << name;
  Tensor edge = f.tensor("edge");
  EXPECT_EQ(edge.shape(), (Shape{8, 256}));
  EXPECT_EQ(float_at(edge, 0), 0.0f);    // row 0: all zero
  EXPECT_EQ(float_at(edge, 256), 0.5f);  // row 1: constant 0.5
  for (int64_t k = 0; k < 256; ++k) EXPECT_LT(float_at(edge, 2 * 256 + k), 0.0f) << k;  // row 2: all negative
  float row3_max = 0;  // row 3: one outlier of 3.0
  for (int64_t k = 0; k < 256; ++k) row3_max = std::max(row3_max, float_at(edge, 3 * 256 + k));
  EXPECT_EQ(row3_max, 3.0f);
  for (const char* name : {"f32", "bf16", "f16"})
    for (int64_t i = 0; i < 16 * 256; ++i) ASSERT_TRUE(std::isfinite(float_at(f.tensor(name), i))) << name << i;
}

TEST_F(Safetensors, ReadsMlxFilesWhoseMetadataIsNull) {
  SafetensorsFile f = SafetensorsFile::open(AFQ_TEST_DATA "/spec/mlx_b3_g64.safetensors");
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.entries().size(), 12u);
  EXPECT_EQ(f.tensor("f32.weight").shape(), (Shape{16, 24}));  // 256 columns * 3 bits / 32
  EXPECT_EQ(f.tensor("f32.weight").dtype(), DType::U32);
  EXPECT_EQ(f.tensor("bf16.scales").shape(), (Shape{16, 4}));
  EXPECT_EQ(f.tensor("bf16.scales").dtype(), DType::BF16);
}

TEST_F(Safetensors, EntriesAreInDataOrderAndFindLooksUpByName) {
  SafetensorsFile f = SafetensorsFile::open(AFQ_TEST_DATA "/spec/weights_in.safetensors");
  for (size_t i = 1; i < f.entries().size(); ++i) EXPECT_LE(f.entries()[i - 1].end, f.entries()[i].begin);
  EXPECT_EQ(f.find("nope"), nullptr);
  afq::testing::expect_error([&] { f.tensor("nope"); }, f.path().string(), {"no tensor named 'nope'"});
}

TEST(SafetensorsBuffer, AcceptsAHeaderThatEndsExactlyAtTheBufferEnd) {
  std::string header = "{}";
  std::vector<std::byte> bytes(8 + header.size());
  bytes[0] = std::byte(header.size());
  std::memcpy(bytes.data() + 8, header.data(), header.size());
  ParsedSafetensors parsed = parse_safetensors_buffer(bytes, "buf");
  EXPECT_EQ(parsed.data_offset, bytes.size());
  EXPECT_TRUE(parsed.header.entries.empty());
  bytes[0] = std::byte(header.size() + 1);  // one byte more runs past the end
  afq::testing::expect_error([&] { parse_safetensors_buffer(bytes, "buf"); }, "buf: ", {"past the end"});
}

}  // namespace
}  // namespace afq
