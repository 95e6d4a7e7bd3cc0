// The int8-activation GEMV (QmmPath::Int8) against the scalar reference and a float64 matmul of
// the dequantized weight, for every bit width, group size, scale dtype and SIMD target. Its
// tolerance (issue 3): relative error under 5e-3.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "afq/cpu.h"
#include "afq/quant.h"
#include "hwy/targets.h"
#include "src/cpu/qmm.h"
#include "test_util.h"

namespace afq::cpu {
namespace {

constexpr double kInt8Tolerance = 5e-3;

struct Shape3 {
  int64_t m, n, k_groups;  // K = k_groups * group_size
};

// M = 1 .. 8 (decode), one M past kGemmMinRows (Int8 takes any M when forced); N odd and tiny;
// K one group; K not a multiple of any vector's span.
const Shape3 kShapes[] = {{1, 1, 1}, {1, 7, 3}, {2, 33, 2}, {3, 5, 9}, {5, 66, 4}, {8, 19, 5}, {17, 37, 3}};

double relative_error(const float* y, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (y[i] - ref[i]) * (y[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

std::vector<double> as_double(const Tensor& t) { return {t.data<float>(), t.data<float>() + t.numel()}; }

// A float weight of N(0, 0.02) values with a few larger ones (as trained weights have), quantized
// by `method`: groups whose q's centre on the middle of their range, unlike random q's.
QuantizedWeight trained_like_weight(int64_t n, int64_t k, int bits, int group_size, QuantMethod method,
                                    std::mt19937& rng) {
  Tensor w = Tensor::zeros(DType::F32, {n, k});
  std::normal_distribution<float> normal(0.f, 0.02f);
  std::uniform_int_distribution<int> outlier(0, 99);
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<float>()[i] = normal(rng) * (outlier(rng) == 0 ? 4.f : 1.f);
  return quantize(w, bits, group_size, method);
}

class QmmInt8OnEveryTarget : public testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
  ForceQmmPath int8_{QmmPath::Int8};
  // HWY_SCALAR has no int8 path: Int8 runs the float GEMM there.
  bool runs_int8() const { return GetParam() != HWY_SCALAR; }
};

TEST_P(QmmInt8OnEveryTarget, MatchesReferenceWithinInt8ToleranceForEveryBitsAndGroupSize) {
  std::mt19937 rng(4321);
  double largest = 0;
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
          const double err_ref = relative_error(y.data<float>(), as_double(reference_affine_qmm_t(x, w, b)));
          EXPECT_LT(err_ref, kInt8Tolerance) << where;
          EXPECT_LT(relative_error(y.data<float>(), float64_matmul_t(x, dequantize(w, DType::F32), b)),
                    kInt8Tolerance)
              << where;
          largest = std::max(largest, err_ref);
        }
      }
    }
  }
  RecordProperty("largest_relative_error", std::to_string(largest));
}

// Weights quantized from trained-like floats (q's centred in each group, biases near -scale * c)
// at a decode shape of Llama's: here the error is that of int8 x alone, not shrunk by large biases.
TEST_P(QmmInt8OnEveryTarget, StaysWithinToleranceOnQuantizedTrainedLikeWeights) {
  std::mt19937 rng(99);
  double largest = 0;
  for (int bits : {2, 3, 4, 8}) {
    for (QuantMethod method : {QuantMethod::Mlx, QuantMethod::MinMax}) {
      const int64_t n = 48, k = 4096;
      QuantizedWeight w = trained_like_weight(n, k, bits, 64, method, rng);
      for (int64_t m : {1, 4}) {
        Tensor x = random_tensor({m, k}, DType::F32, rng);
        const Tensor y = affine_qmm_t(x, w);
        const double err = relative_error(y.data<float>(), float64_matmul_t(x, dequantize(w, DType::F32), nullptr));
        EXPECT_LT(err, kInt8Tolerance) << "bits " << bits << " m " << m;
        largest = std::max(largest, err);
      }
    }
  }
  RecordProperty("largest_relative_error", std::to_string(largest));
}

// The documented arithmetic (qmv_int8-inl.h) on one block: x = (1, 0.001, 0, ...) has dx = 1/127,
// so 0.001 becomes the digits (0, 16): 16 / 128 / 127. With q = 1 there (0 elsewhere), s = 1,
// b = 0 and c = 8, y = sum (q - c) * xhat + c * sum x = -7 * xhat[1] - 8 * 1 + 8 * 1.001.
TEST_P(QmmInt8OnEveryTarget, RoundsXToTwoInt8DigitsPerBlockOf32) {
  if (!runs_int8()) GTEST_SKIP() << "no int8 path on this target";
  QuantizedWeight w;
  w.bits = 4;
  w.group_size = 32;
  w.weight = Tensor::zeros(DType::U32, {1, 4});
  w.weight.mutable_data<uint32_t>()[0] = 1u << 4;  // q[1] = 1
  w.scales = Tensor::zeros(DType::F32, {1, 1});
  w.scales.mutable_data<float>()[0] = 1.f;
  w.biases = Tensor::zeros(DType::F32, {1, 1});
  Tensor x = Tensor::zeros(DType::F32, {1, 32});
  x.mutable_data<float>()[0] = 1.f;
  x.mutable_data<float>()[1] = 0.001f;
  const double xhat = 16.0 / 128.0 / 127.0;
  EXPECT_NEAR(affine_qmm_t(x, w).data<float>()[0], -7.0 * xhat + 8.0 * 0.001, 1e-6);
}

// A group of zeros in x (its dx is 0) and a row of x that is zero throughout.
TEST_P(QmmInt8OnEveryTarget, HandlesZeroBlocksOfX) {
  std::mt19937 rng(8);
  QuantizedWeight w = random_quantized_weight(9, 256, 4, 32, DType::BF16, rng);
  Tensor x = random_tensor({2, 256}, DType::F32, rng);
  for (int64_t i = 32; i < 96; ++i) x.mutable_data<float>()[i] = 0.f;
  for (int64_t i = 256; i < 512; ++i) x.mutable_data<float>()[i] = 0.f;
  const Tensor y = affine_qmm_t(x, w);
  const std::vector<double> ref = float64_matmul_t(x, dequantize(w, DType::F32), nullptr);
  EXPECT_LT(relative_error(y.data<float>(), ref), kInt8Tolerance);
  for (int64_t j = 0; j < 9; ++j) EXPECT_EQ(y.data<float>()[9 + j], 0.f) << j;
}

INSTANTIATE_TEST_SUITE_P(Targets, QmmInt8OnEveryTarget, testing::ValuesIn(compiled_simd_targets()),
                         [](const testing::TestParamInfo<int64_t>& info) { return hwy::TargetName(info.param); });

TEST(QmmInt8, GivesTheSameResultWithAnyThreadCount) {
  ForceQmmPath int8(QmmPath::Int8);
  std::mt19937 rng(12);
  QuantizedWeight w = random_quantized_weight(45, 512, 5, 64, DType::F16, rng);
  for (int64_t m : {1, 6}) {
    Tensor x = random_tensor({m, 512}, DType::F32, rng);
    set_num_threads(1);
    const Tensor one = affine_qmm_t(x, w);
    set_num_threads(3);
    const Tensor three = affine_qmm_t(x, w);
    set_num_threads(0);
    for (int64_t i = 0; i < one.numel(); ++i) EXPECT_EQ(one.data<float>()[i], three.data<float>()[i]) << i;
  }
}

TEST(QmmInt8, ForcingAPathOverridesTheDefaultOnThisThreadOnly) {
  if (std::getenv("AFQ_CPU_QMM")) GTEST_SKIP() << "AFQ_CPU_QMM is set";
  EXPECT_EQ(forced_qmm_path(), QmmPath::Auto);
  {
    ForceQmmPath f(QmmPath::Float);
    EXPECT_EQ(forced_qmm_path(), QmmPath::Float);
    {
      ForceQmmPath i(QmmPath::Int8);
      EXPECT_EQ(forced_qmm_path(), QmmPath::Int8);
    }
    EXPECT_EQ(forced_qmm_path(), QmmPath::Float);
  }
  EXPECT_EQ(forced_qmm_path(), QmmPath::Auto);
}

}  // namespace
}  // namespace afq::cpu
