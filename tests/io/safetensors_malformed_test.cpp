// Every malformed file gets a one-line afq::Error that starts with the file's path and names the
// tensor or field at fault.
#include <gtest/gtest.h>

#include "afq/error.h"
#include "afq/safetensors.h"
#include "io_test_util.h"

namespace afq {
namespace {

namespace fs = std::filesystem;
using MalformedSafetensors = afq::testing::TempDirTest;

const std::string kGood = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";

void expect_open_error(const fs::path& path, const std::vector<std::string>& fragments) {
  afq::testing::expect_error([&] { SafetensorsFile::open(path); }, path.string() + ": ", fragments);
}

TEST_F(MalformedSafetensors, AFileShorterThanTheLengthFieldIsRefused) {
  std::ofstream(dir_ / "tiny", std::ios::binary) << "abc";
  expect_open_error(dir_ / "tiny", {"3 bytes", "too short"});
  std::ofstream(dir_ / "zero", std::ios::binary).flush();
  expect_open_error(dir_ / "zero", {"0 bytes", "too short"});
}

TEST_F(MalformedSafetensors, AHeaderLengthPastTheEndOrAbsurdlyLargeIsRefused) {
  expect_open_error(raw_file("past_end", "{" + kGood + "}", 8, 1000), {"header length 1000", "past the end"});
  expect_open_error(raw_file("huge", "{}", 0, 1ull << 40), {"header length 1099511627776", "100 MB"});
  expect_open_error(raw_file("max", "{}", 0, UINT64_MAX - 1), {"100 MB"});
}

TEST_F(MalformedSafetensors, InvalidJsonOrANonObjectHeaderIsRefused) {
  expect_open_error(raw_file("json", "{\"t\": [", 8), {"invalid JSON"});
  expect_open_error(raw_file("number", R"({"t": 1e999})", 0), {"invalid JSON", "1e999"});
  expect_open_error(raw_file("array", "[1, 2]", 0), {"not a JSON object", "[1,2]"});
  expect_open_error(raw_file("empty", "", 0), {"invalid JSON"});
}

TEST_F(MalformedSafetensors, UnknownDtypesAreNamedWithTheTensor) {
  expect_open_error(raw_file("dtype", R"({"w.scales":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2),
                    {"tensor \"w.scales\"", "unknown dtype \"F8\"", "BF16"});
  expect_open_error(raw_file("dtype_type", R"({"t":{"dtype":4,"shape":[2],"data_offsets":[0,8]}})", 8),
                    {"tensor \"t\"", "\"dtype\" must be a string, got 4"});
  expect_open_error(raw_file("entry_type", R"({"t":[1]})", 0), {"tensor \"t\"", "expected an object"});
}

TEST_F(MalformedSafetensors, ShapesMustBeListsOfNonNegativeIntegers) {
  expect_open_error(raw_file("negative", R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                    {"tensor \"t\"", "\"shape\" entry 0", "non-negative integer, got -2"});
  expect_open_error(raw_file("fraction", R"({"t":{"dtype":"F32","shape":[2,1.5],"data_offsets":[0,8]}})", 8),
                    {"\"shape\" entry 1", "got 1.5"});
  expect_open_error(raw_file("string", R"({"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8),
                    {"tensor \"t\"", "\"shape\" must be a list", "got \"2\""});
  expect_open_error(raw_file("missing", R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", 8),
                    {"\"shape\" must be a list", "got nothing"});
  expect_open_error(raw_file("nested", R"({"t":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}})", 8),
                    {"tensor \"t\"", "nested deeper"});
}

TEST_F(MalformedSafetensors, ElementCountsThatOverflowAreRefused) {
  expect_open_error(
      raw_file("overflow", R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
      {"tensor \"t\"", "more than 2^60 elements"});
  // A zero dimension does not excuse a dimension that int64 cannot hold.
  expect_open_error(
      raw_file("zero_huge", R"({"t":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}})", 0),
      {"tensor \"t\"", "more than 2^60 elements"});
}

TEST_F(MalformedSafetensors, DataOffsetsMustBeTwoOrderedIntegersInsideTheDataSection) {
  expect_open_error(raw_file("one", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8),
                    {"tensor \"t\"", "\"data_offsets\" must be [begin, end], got [0]"});
  expect_open_error(raw_file("text", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":["0",8]}})", 8),
                    {"tensor \"t\"", "\"data_offsets\" begin", "got \"0\""});
  expect_open_error(raw_file("reversed", R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 8),
                    {"tensor \"t\"", "[4, 0] end before they begin"});
  expect_open_error(raw_file("outside", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 8),
                    {"tensor \"t\"", "[8, 16] run past the data section of 8 bytes"});
}

TEST_F(MalformedSafetensors, AByteCountThatDisagreesWithTheShapeIsRefused) {
  expect_open_error(raw_file("bytes", R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                    {"tensor \"t\"", "F32 [3] needs 12 bytes", "hold 8"});
}

TEST_F(MalformedSafetensors, OverlappingTensorsAreRefusedButEmptyOnesMayShareAnOffset) {
  expect_open_error(raw_file("overlap",
                             R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12),
                    {"tensors \"a\" [0, 8] and \"b\" [4, 12] overlap"});
  const auto ok = raw_file("empties",
                           R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                           R"("b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                           R"("c":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                           8);
  EXPECT_EQ(SafetensorsFile::open(ok).entries().size(), 3u);
}

TEST_F(MalformedSafetensors, DuplicateNamesAndFieldsAreRefused) {
  expect_open_error(raw_file("dup", "{" + kGood + "," + kGood + "}", 8), {"tensor \"t\" appears twice"});
  expect_open_error(raw_file("dup_field", R"({"t":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", 8),
                    {"tensor \"t\"", "field \"dtype\" appears twice"});
}

TEST_F(MalformedSafetensors, MetadataMustBeAnObjectOfStringsOrNull) {
  expect_open_error(raw_file("meta_value", R"({"__metadata__":{"format":1},)" + kGood + "}", 8),
                    {"\"__metadata__\" entry \"format\" must be a string, got 1"});
  expect_open_error(raw_file("meta_list", R"({"__metadata__":["mlx"],)" + kGood + "}", 8),
                    {"\"__metadata__\" must be an object of strings"});
  auto null_meta = raw_file("meta_null", R"({"__metadata__":null,)" + kGood + "}", 8);
  EXPECT_TRUE(SafetensorsFile::open(null_meta).metadata().empty());
}

TEST_F(MalformedSafetensors, NamesWithControlCharactersStillGiveOneLineMessages) {
  // The tensor name holds a newline; the message quotes it escaped.
  expect_open_error(raw_file("newline", R"({"a\nb":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}})", 2),
                    {"tensor \"a\\nb\"", "unknown dtype"});
  // A very long value is shortened in the message.
  const std::string long_dtype(10000, 'X');
  const std::string what = afq::testing::expect_error(
      [&] { SafetensorsFile::open(raw_file("long", R"({"t":{"dtype":")" + long_dtype + R"(","shape":[]}})", 0)); },
      (dir_ / "long").string(), {"unknown dtype", "..."});
  EXPECT_LT(what.size(), 500u);
}

TEST_F(MalformedSafetensors, MissingFilesAndDirectoriesAreNamed) {
  expect_open_error(dir_ / "missing.safetensors", {"cannot open", "No such file"});
  expect_open_error(dir_, {"not a regular file"});
}

}  // namespace
}  // namespace afq
