#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace afq::testing {

// A fresh directory per test, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("afq-io-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A safetensors file from a header text and a data section of `data_bytes` bytes.
  std::filesystem::path raw_file(const std::string& name, const std::string& header, size_t data_bytes,
                                 uint64_t claimed_header_size = UINT64_MAX) {
    const auto path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = claimed_header_size == UINT64_MAX ? header.size() : claimed_header_size;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
    out << header << std::string(data_bytes, '\0');
    return path;
  }

  std::filesystem::path dir_;
};

}  // namespace afq::testing
