// afq::cuda::quantize against afq::quantize (the CPU's, itself checked against the spec and
// transformers): identical bytes of packed words, scales and biases for every bit width, group
// size, method and weight dtype, on weights built to hit the rules' edge cases; and the CPU's
// error for a weight it cannot quantize. Skips without a CUDA device (CI has none).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "afq/cuda.h"
#include "afq/error.h"
#include "afq/quant.h"

namespace afq::cuda {
namespace {

// Rows of different kinds: Gaussian, all positive, all negative, constant, zeros with -0 among
// them (the first of equal values must stay), a row spanning 1e-30 to 1e30 (F16: 1e-4 to 1e4,
// into its subnormals).
Tensor edge_case_weight(int64_t n, int64_t k, DType dtype, std::mt19937& rng) {
  const float decades = dtype == DType::F16 ? 4.f : 30.f;
  Tensor f = Tensor::zeros(DType::F32, {n, k});
  std::normal_distribution<float> normal(0.f, 1.f);
  float* w = f.mutable_data<float>();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      const float g = normal(rng);
      float v = g;
      switch (r % 6) {
        case 1:
          v = std::fabs(g) + 0.5f;
          break;
        case 2:
          v = -std::fabs(g) * 3.f;
          break;
        case 3:
          v = 0.25f;
          break;
        case 4:
          v = c % 3 == 0 ? -0.0f : (c % 3 == 1 ? 0.0f : g * 1e-3f);
          break;
        case 5:
          v = std::copysign(std::pow(10.f, std::fmod(std::fabs(g) * 20.f, 2 * decades) - decades), g);
          break;
        default:
          break;
      }
      w[r * k + c] = v;
    }
  return dtype == DType::F32 ? f : to_dtype(f, dtype);
}

void expect_same_bytes(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.nbytes(), b.nbytes()) << what;
  EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), a.nbytes()), 0) << what;
}

class CudaQuantize : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(CudaQuantize, EqualsTheCpuBitForBit) {
  std::mt19937 rng(21);
  for (DType dtype : {DType::BF16, DType::F16, DType::F32}) {
    const Tensor w = edge_case_weight(37, 384, dtype, rng);
    for (int bits : kSupportedBits)
      for (int group_size : kSupportedGroupSizes)
        for (QuantMethod method : {QuantMethod::Mlx, QuantMethod::MinMax}) {
          const std::string name = std::string(dtype_name(dtype)) + " bits=" + std::to_string(bits) +
                                   " group=" + std::to_string(group_size) + " " +
                                   std::string(quant_method_name(method));
          const QuantizedWeight want = afq::quantize(w, bits, group_size, method);
          const QuantizedWeight got = cuda::quantize(w, bits, group_size, method);
          expect_same_bytes(got.weight, want.weight, name + " weight");
          expect_same_bytes(got.scales, want.scales, name + " scales");
          expect_same_bytes(got.biases, want.biases, name + " biases");
        }
  }
}

TEST_F(CudaQuantize, ALargeLayerEqualsTheCpu) {
  std::mt19937 rng(22);
  const Tensor w = edge_case_weight(1024, 4096, DType::BF16, rng);
  const QuantizedWeight want = afq::quantize(w, 4, 64, QuantMethod::Mlx);
  const QuantizedWeight got = cuda::quantize(w, 4, 64, QuantMethod::Mlx);
  expect_same_bytes(got.weight, want.weight, "weight");
  expect_same_bytes(got.scales, want.scales, "scales");
  expect_same_bytes(got.biases, want.biases, "biases");
}

TEST_F(CudaQuantize, ReportsWhatTheCpuReports) {
  std::mt19937 rng(23);
  Tensor w = edge_case_weight(4, 128, DType::F32, rng);
  w.mutable_data<float>()[2 * 128 + 70] = std::numeric_limits<float>::quiet_NaN();
  try {
    cuda::quantize(w, 4, 64, QuantMethod::Mlx);
    ADD_FAILURE() << "a NaN weight was quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NaN in the weight at [2, 70]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(cuda::quantize(Tensor::zeros(DType::F32, {4, 100}), 4, 64, QuantMethod::Mlx), Error);  // K % 64 != 0
  EXPECT_THROW(cuda::quantize(w, 7, 64, QuantMethod::Mlx), Error);
}

}  // namespace
}  // namespace afq::cuda
