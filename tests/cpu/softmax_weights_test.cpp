// exp_shifted_scaled (the sampler's vector exponential) against std::exp in double on every
// compiled SIMD target, from values that underflow to zero up to the shift itself (exp(0) = 1).
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "afq/cpu.h"
#include "hwy/targets.h"
#include "src/cpu/qmm.h"

namespace afq::cpu {
namespace {

class ExpOnEveryTarget : public testing::TestWithParam<int64_t> {
 protected:
  void SetUp() override { hwy::SetSupportedTargetsForTest(GetParam()); }
  void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

TEST_P(ExpOnEveryTarget, MatchesStdExpWithinAFewUlp) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-120.f, 12.f);
  for (int64_t n : {1, 7, 16, 1000, 128256}) {
    std::vector<float> x(n), out(n, -1.f);
    for (auto& v : x) v = uniform(rng);
    x[0] = 12.f;  // the shift: exp(0)
    exp_shifted_scaled(x.data(), n, 12.f, 1.25f, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const double ref = std::exp((double(x[i]) - 12.0) * 1.25);
      if (ref < 1e-37) {
        EXPECT_LE(out[i], 1e-37f) << "n " << n << " x " << x[i];  // underflow: zero or subnormal, never garbage
        EXPECT_GE(out[i], 0.f) << "n " << n << " x " << x[i];
      } else {
        // The argument is rounded to float first, and exp turns its error into |arg| * eps relative.
        const double arg = std::abs((double(x[i]) - 12.0) * 1.25);
        EXPECT_NEAR(out[i], ref, (arg + 4) * 1.2e-7 * ref) << "n " << n << " x " << x[i];
      }
    }
    EXPECT_FLOAT_EQ(out[0], 1.f);
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, ExpOnEveryTarget, testing::ValuesIn(compiled_simd_targets()),
                         [](const testing::TestParamInfo<int64_t>& info) { return hwy::TargetName(info.param); });

}  // namespace
}  // namespace afq::cpu
