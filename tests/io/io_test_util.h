#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "afq/error.h"
#include "afq/tensor.h"

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

  // A safetensors file from a header text and a data section of `data_bytes` bytes; the length
  // field says `claimed_header_size` when given.
  std::filesystem::path raw_file(const std::string& name, const std::string& header, size_t data_bytes,
                                 uint64_t claimed_header_size = UINT64_MAX) {
    const auto path = dir_ / name;
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = claimed_header_size == UINT64_MAX ? header.size() : claimed_header_size;
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(n >> (8 * i)));
    out << header << std::string(data_bytes, '\0');
    return path;
  }

  std::vector<std::string> files_in_dir() const {
    std::vector<std::string> names;
    for (const auto& item : std::filesystem::directory_iterator(dir_)) names.push_back(item.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

  std::filesystem::path dir_;
};

// Runs `f`, expects an afq::Error whose message is one line, starts with `prefix` and contains
// every fragment; returns the message.
template <class F>
std::string expect_error(F&& f, const std::string& prefix, const std::vector<std::string>& fragments) {
  try {
    f();
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind(prefix, 0), 0u) << "message does not start with " << prefix << ": " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    for (const auto& fragment : fragments) EXPECT_NE(what.find(fragment), std::string::npos) << what;
    return what;
  }
  ADD_FAILURE() << "no afq::Error; expected one with " << (fragments.empty() ? prefix : fragments[0]);
  return {};
}

// A tensor whose bytes follow a pattern that differs per seed.
inline Tensor patterned(DType dtype, Shape shape, int seed) {
  Tensor t = Tensor::zeros(dtype, std::move(shape));
  for (size_t i = 0; i < t.nbytes(); ++i) t.mutable_bytes()[i] = std::byte(static_cast<uint8_t>(i * 31 + seed));
  return t;
}

inline Tensor ramp(int64_t n, float start) {
  Tensor t = Tensor::zeros(DType::F32, {n});
  for (int64_t i = 0; i < n; ++i) t.mutable_data<float>()[i] = start + static_cast<float>(i);
  return t;
}

}  // namespace afq::testing
