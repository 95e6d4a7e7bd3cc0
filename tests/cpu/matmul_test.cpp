// matmul_t with float weights against a float64 matmul, on every SIMD target.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "afq/cpu.h"
#include "afq/error.h"
#include "hwy/targets.h"
#include "src/cpu/qmm.h"
#include "test_util.h"

namespace afq::cpu {
namespace {

double relative_error(const Tensor& y, const std::vector<double>& ref) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff += (y.data<float>()[i] - ref[i]) * (y.data<float>()[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return std::sqrt(diff / norm);
}

class MatmulOnEveryTarget : public testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_P(MatmulOnEveryTarget, MatchesFloat64MatmulForEveryWeightDtype) {
  std::mt19937 rng(42);
  struct Case { int64_t m, n, k; };
  // K = 37 and 100 leave tails shorter than a vector; M = 17 and 33 take the blocked GEMM.
  for (Case c : {Case{1, 1, 37}, Case{1, 9, 256}, Case{3, 13, 100}, Case{17, 5, 64}, Case{33, 41, 2100}}) {
    for (DType w_dtype : {DType::F32, DType::BF16, DType::F16}) {
      Tensor x = random_tensor({c.m, c.k}, DType::F32, rng);
      Tensor w = random_tensor({c.n, c.k}, w_dtype, rng);
      Tensor bias = random_tensor({c.n}, DType::F32, rng);
      const Tensor y = matmul_t(x, w, &bias);
      EXPECT_LT(relative_error(y, float64_matmul_t(x, w, &bias)), 1e-5)
          << dtype_name(w_dtype) << " m " << c.m << " n " << c.n << " k " << c.k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, MatmulOnEveryTarget, testing::ValuesIn(compiled_simd_targets()),
                         [](const testing::TestParamInfo<int64_t>& info) { return hwy::TargetName(info.param); });

TEST(Matmul, RejectsWeightsThatAreNotFloatMatrices) {
  Tensor x = Tensor::zeros(DType::F32, {1, 8});
  Tensor ints = Tensor::zeros(DType::I32, {4, 8});
  Tensor three_d = Tensor::zeros(DType::F32, {1, 4, 8});
  Tensor wrong_k = Tensor::zeros(DType::F32, {4, 9});
  EXPECT_THROW(matmul_t(x, ints), Error);
  EXPECT_THROW(matmul_t(x, three_d), Error);
  EXPECT_THROW(matmul_t(x, wrong_k), Error);
}

}  // namespace
}  // namespace afq::cpu
