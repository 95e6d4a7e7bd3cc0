// afq::sample_in_token_order, the rule of the GPU's draws (tests/cuda/ops_test.cpp checks the
// kernel against it): which tokens are candidates, and which one a uniform picks.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "afq/sampling.h"

namespace afq {
namespace {

// The tokens drawn over a fine grid of uniforms.
std::set<int32_t> drawn(const std::vector<float>& logits, const SamplingOptions& options) {
  std::set<int32_t> tokens;
  for (int i = 0; i < 1000; ++i) tokens.insert(sample_in_token_order(logits, options, (i + 0.5) / 1000));
  return tokens;
}

SamplingOptions at_temperature(float t) {
  SamplingOptions o;
  o.temperature = t;
  return o;
}

TEST(SampleInTokenOrder, TemperatureZeroIsTheFirstArgmax) {
  EXPECT_EQ(sample_in_token_order(std::vector<float>{0.1f, 3.0f, -1.0f, 3.0f}, at_temperature(0), 0.7), 1);
}

TEST(SampleInTokenOrder, TheUniformInvertsTheCumulativeMassInTokenOrder) {
  // Softmax of {0, ln 2, ln 3, ln 4} is {1, 2, 3, 4} / 10: cumulative 0.1, 0.3, 0.6, 1.0.
  const std::vector<float> logits = {0.f, std::log(2.f), std::log(3.f), std::log(4.f)};
  const SamplingOptions o = at_temperature(1);
  EXPECT_EQ(sample_in_token_order(logits, o, 0.05), 0);
  EXPECT_EQ(sample_in_token_order(logits, o, 0.25), 1);
  EXPECT_EQ(sample_in_token_order(logits, o, 0.31), 2);
  EXPECT_EQ(sample_in_token_order(logits, o, 0.59), 2);
  EXPECT_EQ(sample_in_token_order(logits, o, 0.61), 3);
  EXPECT_EQ(sample_in_token_order(logits, o, 0.999), 3);
  // Temperature 2 halves the logits: weights 1, sqrt 2, sqrt 3, 2 (total 6.146): 0.4 falls in token 2.
  EXPECT_EQ(sample_in_token_order(logits, at_temperature(2), 0.4), 2);
}

TEST(SampleInTokenOrder, TopKKeepsTheKLargestAndEveryTieAtTheKth) {
  SamplingOptions o = at_temperature(1);
  o.top_k = 2;
  EXPECT_EQ(drawn({1, 2, 3, 2.5f}, o), (std::set<int32_t>{2, 3}));
  EXPECT_EQ(drawn({1, 2, 2, 0, 3}, o), (std::set<int32_t>{1, 2, 4}));  // the 2nd largest is tied
  o.top_k = 1;
  EXPECT_EQ(drawn({1, 2, 3, 2.5f}, o), (std::set<int32_t>{2}));
}

TEST(SampleInTokenOrder, TopPKeepsTheSmallestSetOfTheLargestReachingTheMass) {
  SamplingOptions o = at_temperature(1);
  const std::vector<float> logits = {0, 3, 1, 2};  // p = 0.032, 0.644, 0.087, 0.237
  o.top_p = 0.5f;
  EXPECT_EQ(drawn(logits, o), (std::set<int32_t>{1}));
  o.top_p = 0.8f;
  EXPECT_EQ(drawn(logits, o), (std::set<int32_t>{1, 3}));
  o.top_p = 0.9f;
  EXPECT_EQ(drawn(logits, o), (std::set<int32_t>{1, 2, 3}));
}

TEST(SampleInTokenOrder, MinPKeepsTokensWithinItsFactorOfTheBest) {
  SamplingOptions o = at_temperature(1);
  o.min_p = 0.3f;  // e^-1 = 0.37 stays, e^-2 = 0.14 goes
  EXPECT_EQ(drawn({0, -1, -2, -5}, o), (std::set<int32_t>{0, 1}));
}

TEST(SampleInTokenOrder, NaNAndMinusInfinityAreNeverDrawn) {
  const float nan = std::nanf("");
  EXPECT_EQ(drawn({nan, 1, -INFINITY, 1}, at_temperature(1)), (std::set<int32_t>{1, 3}));
}

}  // namespace
}  // namespace afq
