// The SIMD affine_qmm_t's float path against the scalar reference and a float64 matmul of the
// dequantized weight, for every bit width, group size, scale dtype, SIMD target and both regimes
// (GEMV for few rows of x, blocked GEMM for many). The int8 path: qmm_int8_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "afq/cpu.h"
#include "afq/error.h"
#include "afq/half.h"
#include "afq/quant.h"
#include "hwy/targets.h"
#include "src/cpu/qmm.h"
#include "test_util.h"

namespace afq::cpu {
namespace {

struct Shape3 {
  int64_t m, n, k_groups;  // K = k_groups * group_size
};

// M = 1 .. 5 go through the GEMV, M >= kGemmMinRows through the GEMM; N odd and tiny, K one
// group, and one K that is not a multiple of any vector's span.
const Shape3 kShapes[] = {{1, 1, 1}, {1, 7, 3}, {2, 33, 2}, {3, 5, 9}, {5, 66, 4}, {17, 37, 3}, {21, 70, 10}};

double relative_error(const Tensor& y, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  const float* v = y.data<float>();
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (v[i] - ref[i]) * (v[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

class QmmOnEveryTarget : public testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
  ForceQmmPath float_{QmmPath::Float};
};

TEST_P(QmmOnEveryTarget, MatchesFloat64MatmulAndScalarReferenceForEveryBitsAndGroupSize) {
  std::mt19937 rng(1234);
  for (int bits : kSupportedBits) {
    for (int group_size : kSupportedGroupSizes) {
      for (DType scale_dtype : {DType::BF16, DType::F16, DType::F32}) {
        for (const Shape3& s : kShapes) {
          const int64_t k = s.k_groups * group_size;
          QuantizedWeight w = random_quantized_weight(s.n, k, bits, group_size, scale_dtype, rng);
          Tensor x = random_tensor({s.m, k}, DType::F32, rng);
          Tensor bias = random_tensor({s.n}, DType::F32, rng);
          const Tensor* b = (s.n % 2) ? &bias : nullptr;
          const Tensor y = affine_qmm_t(x, w, b);
          const std::string where = "bits " + std::to_string(bits) + " group " + std::to_string(group_size) +
                                    " scales " + std::string(dtype_name(scale_dtype)) + " m " +
                                    std::to_string(s.m) + " n " + std::to_string(s.n) + " k " + std::to_string(k);
          ASSERT_EQ(y.shape(), (Shape{s.m, s.n})) << where;
          EXPECT_LT(relative_error(y, float64_matmul_t(x, dequantize(w, DType::F32), b)), 1e-5) << where;
          const Tensor ref = reference_affine_qmm_t(x, w, b);
          std::vector<double> ref64(ref.data<float>(), ref.data<float>() + ref.numel());
          EXPECT_LT(relative_error(y, ref64), 1e-5) << where;
        }
      }
    }
  }
}

// Both blocked GEMMs past one of each of their blocks: several tiles of x's rows (the last one
// partial), panels of W (the last one partial, N odd) and blocks of K (the last one partial).
TEST_P(QmmOnEveryTarget, BlockedGemmMatchesFloat64MatmulAcrossTilesPanelsAndBlocksOfK) {
  std::mt19937 rng(99);
  for (int bits : {3, 4, 8}) {
    for (int group_size : {64, 128}) {
      for (int64_t m : {37, 70}) {  // the dot-product GEMM, then the outer-product one
        const int64_t n = 101, k = 23 * group_size;  // 1472 or 2944 columns
        QuantizedWeight w = random_quantized_weight(n, k, bits, group_size, DType::BF16, rng);
        Tensor x = random_tensor({m, k}, DType::F32, rng);
        Tensor bias = random_tensor({n}, DType::F32, rng);
        const Tensor y = affine_qmm_t(x, w, &bias);
        EXPECT_LT(relative_error(y, float64_matmul_t(x, dequantize(w, DType::F32), &bias)), 1e-5)
            << "bits " << bits << " group " << group_size << " m " << m;
      }
    }
  }
}

TEST_P(QmmOnEveryTarget, TakesHalfPrecisionActivations) {
  std::mt19937 rng(7);
  QuantizedWeight w = random_quantized_weight(9, 128, 4, 64, DType::BF16, rng);
  for (DType x_dtype : {DType::BF16, DType::F16}) {
    for (int64_t m : {1, 20}) {
      Tensor x = random_tensor({m, 128}, x_dtype, rng);
      const Tensor y = affine_qmm_t(x, w);
      EXPECT_LT(relative_error(y, float64_matmul_t(x, dequantize(w, DType::F32), nullptr)), 1e-5)
          << dtype_name(x_dtype) << " m " << m;
    }
  }
}

TEST_P(QmmOnEveryTarget, RawPointerFormWritesEveryOutput) {
  std::mt19937 rng(3);
  QuantizedWeight w = random_quantized_weight(31, 256, 3, 32, DType::F16, rng);
  Tensor x = random_tensor({2, 256}, DType::F32, rng);
  std::vector<float> y(2 * 31, std::nanf(""));
  affine_qmm_t(x.data<float>(), 2, w, nullptr, y.data());
  const Tensor expect = affine_qmm_t(x, w);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_FLOAT_EQ(y[i], expect.data<float>()[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Targets, QmmOnEveryTarget, testing::ValuesIn(compiled_simd_targets()),
                         [](const testing::TestParamInfo<int64_t>& info) { return hwy::TargetName(info.param); });

TEST(Qmm, GivesTheSameResultWithAnyThreadCount) {
  ForceQmmPath float_path(QmmPath::Float);
  std::mt19937 rng(11);
  QuantizedWeight w = random_quantized_weight(45, 512, 4, 64, DType::BF16, rng);
  for (int64_t m : {1, 3, 40}) {
    Tensor x = random_tensor({m, 512}, DType::F32, rng);
    set_num_threads(1);
    const Tensor one = affine_qmm_t(x, w);
    set_num_threads(3);
    const Tensor three = affine_qmm_t(x, w);
    set_num_threads(0);
    for (int64_t i = 0; i < one.numel(); ++i) EXPECT_EQ(one.data<float>()[i], three.data<float>()[i]) << i;
  }
}

TEST(Qmm, FlattensLeadingDimensionsOfX) {
  ForceQmmPath float_path(QmmPath::Float);
  std::mt19937 rng(5);
  QuantizedWeight w = random_quantized_weight(6, 64, 8, 32, DType::F32, rng);
  Tensor x = random_tensor({2, 3, 64}, DType::F32, rng);
  const Tensor y = affine_qmm_t(x, w);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 6}));
  EXPECT_LT(relative_error(y, float64_matmul_t(x.reshape({6, 64}), dequantize(w, DType::F32), nullptr)), 1e-5);
}

TEST(Qmm, RejectsXWhoseLastDimensionIsNotK) {
  std::mt19937 rng(5);
  QuantizedWeight w = random_quantized_weight(6, 64, 4, 32, DType::F32, rng);
  Tensor x = random_tensor({2, 32}, DType::F32, rng);
  EXPECT_THROW(affine_qmm_t(x, w), Error);
  Tensor ints = Tensor::zeros(DType::I32, {2, 64});
  EXPECT_THROW(affine_qmm_t(ints, w), Error);
  Tensor bad_bias = Tensor::zeros(DType::F32, {5});
  Tensor x_ok = random_tensor({2, 64}, DType::F32, rng);
  EXPECT_THROW(affine_qmm_t(x_ok, w, &bad_bias), Error);
}

}  // namespace
}  // namespace afq::cpu
