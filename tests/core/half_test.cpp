#include "afq/half.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace afq {
namespace {

// Round-to-nearest-even to bf16 worked out with doubles, independently of the bit trick.
uint16_t bf16_by_doubles(float f) {
  uint32_t bits = std::bit_cast<uint32_t>(f);
  uint16_t down = static_cast<uint16_t>(bits >> 16);
  uint16_t up = static_cast<uint16_t>(down + 1);
  double lo = bf16_to_f32(down), hi = bf16_to_f32(up);
  double d_lo = std::fabs(double(f) - lo), d_hi = std::fabs(hi - double(f));
  if (std::isinf(hi)) d_hi = std::ldexp(1.0, 128) - std::fabs(double(f));  // the overflow threshold
  if (d_lo < d_hi) return down;
  if (d_hi < d_lo) return up;
  return (down & 1) ? up : down;
}

TEST(Bf16, RoundsToNearestEvenOnRandomFloats) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2'000'000; ++i) {
    float f = std::bit_cast<float>(static_cast<uint32_t>(rng()));
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_bf16(f), bf16_by_doubles(f)) << std::hexfloat << f;
  }
}

TEST(Bf16, TiesGoToEven) {
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie, even below
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie, even above
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
}

TEST(Bf16, KeepsNanInfAndOverflowsToInf) {
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  // A NaN whose payload sits only in the low 16 bits must not become infinity.
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0x7F800001u)))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::bit_cast<float>(0xFF800001u)))));
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-std::numeric_limits<float>::infinity()), 0xFF80);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
}

#if defined(__FLT16_MAX__)
// The compiler's own _Float16 conversion is IEEE round-to-nearest-even: compare every f16 and
// many floats against it.
TEST(F16, WideningMatchesTheCompilerForEveryValue) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    _Float16 ref = std::bit_cast<_Float16>(static_cast<uint16_t>(h));
    float expected = static_cast<float>(ref);
    float got = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(expected)) {
      ASSERT_TRUE(std::isnan(got)) << h;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(expected)) << h;
    }
  }
}

TEST(F16, NarrowingMatchesTheCompilerOnRandomAndBoundaryFloats) {
  std::mt19937 rng(11);
  auto check = [](float f) {
    uint16_t expected = std::bit_cast<uint16_t>(static_cast<_Float16>(f));
    uint16_t got = f32_to_f16(f);
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(f16_to_f32(got)));
      return;
    }
    ASSERT_EQ(got, expected) << std::hexfloat << f;
  };
  for (int i = 0; i < 2'000'000; ++i) check(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  // Dense sweep over the f16 range, where rounding matters, including subnormals.
  for (uint32_t bits = 0x33000000u; bits < 0x47800000u; bits += 97) {
    check(std::bit_cast<float>(bits));
    check(-std::bit_cast<float>(bits));
  }
  for (float f : {65504.0f, 65519.99f, 65520.0f, 1e-8f, 0x1p-25f, 0x1.8p-25f, 0x1p-24f, 0.0f, -0.0f})
    check(f);
}
#endif

TEST(F16, KnownValues) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3C00);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7BFF);
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);
  EXPECT_EQ(f32_to_f16(0x1p-24f), 0x0001);
  EXPECT_EQ(f32_to_f16(0x1p-25f), 0x0000);  // a tie between 0 and the smallest subnormal: even
  EXPECT_EQ(f32_to_f16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
}

}  // namespace
}  // namespace afq
