#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "afq/error.h"
#include "afq/sampling.h"

namespace afq {
namespace {

std::map<int32_t, int> histogram(SamplingOptions options, std::vector<float> logits, int draws) {
  Sampler sampler(options);
  std::map<int32_t, int> counts;
  for (int i = 0; i < draws; ++i) {
    std::vector<float> l = logits;
    ++counts[sampler.sample(l, {})];
  }
  return counts;
}

TEST(Sampler, TemperatureZeroIsArgmax) {
  SamplingOptions o;
  o.temperature = 0;
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 2.9f};
  EXPECT_EQ(Sampler(o).sample(logits, {}), 1);
}

TEST(Sampler, TopKOneIsGreedyAndTopKLimitsTheChoice) {
  SamplingOptions o;
  o.temperature = 1.0f;
  o.top_k = 1;
  EXPECT_EQ(histogram(o, {1, 2, 3, 2.5f}, 200), (std::map<int32_t, int>{{2, 200}}));
  o.top_k = 2;
  auto h = histogram(o, {1, 2, 3, 2.5f}, 2000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_TRUE(h.count(2) && h.count(3));
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  SamplingOptions o;
  o.temperature = 1.0f;
  o.top_p = 0.5f;  // p = [0.64, 0.24, 0.09, ...]: only the first
  auto h = histogram(o, {3, 2, 1, 0}, 500);
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 0);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplingOptions o;
  o.temperature = 1.0f;
  o.min_p = 0.3f;  // keeps tokens with p >= 0.3 * p_max: e^0, e^-1 of e^0 (0.37) but not e^-2
  auto h = histogram(o, {0, -1, -2, -5}, 3000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_FALSE(h.count(2));
}

// A vocabulary large enough for the sampler's partial sorting (a selection past 1,024
// candidates, top-p's prefix grown from 64 by 8x): the tokens drawn are exactly the reference
// nucleus (computed here by a full sort), in proportion to their probabilities.
TEST(Sampler, LargeVocabulariesKeepTheSameNucleusAsAFullSort) {
  const int64_t vocab = 20000;
  std::vector<float> logits(vocab);
  for (int64_t i = 0; i < vocab; ++i) logits[i] = -0.01f * static_cast<float>((i * 7919) % vocab);  // a permutation
  for (int top_k : {0, 3000}) {
    for (float min_p : {0.0f, 0.2f}) {
      SamplingOptions o;
      o.temperature = 1.0f;
      o.top_k = top_k;
      o.min_p = min_p;
      o.top_p = 0.9f;
      // Reference: sort everything, cut by top-k, min-p, then the smallest prefix with 90% of the mass.
      std::vector<int32_t> order(vocab);
      for (int64_t i = 0; i < vocab; ++i) order[i] = static_cast<int32_t>(i);
      std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
      int64_t keep = top_k > 0 ? top_k : vocab;
      while (keep > 1 && std::exp(logits[order[keep - 1]] - logits[order[0]]) < min_p) --keep;
      double total = 0, cumulative = 0;
      for (int64_t i = 0; i < keep; ++i) total += std::exp(double(logits[order[i]]));
      int64_t nucleus = keep;
      for (int64_t i = 0; i < keep; ++i)
        if ((cumulative += std::exp(double(logits[order[i]])) / total) >= 0.9) {
          nucleus = i + 1;
          break;
        }
      const std::set<int32_t> allowed(order.begin(), order.begin() + nucleus);
      const auto h = histogram(o, logits, 4000);
      for (const auto& [id, count] : h)
        ASSERT_TRUE(allowed.count(id)) << "token " << id << " is outside the nucleus of " << nucleus
                                       << " (top_k " << top_k << ", min_p " << min_p << ")";
      // The most likely token: p = 1 / sum over the nucleus of exp(logit - top).
      double nucleus_mass = 0;
      for (int64_t i = 0; i < nucleus; ++i) nucleus_mass += std::exp(double(logits[order[i]] - logits[order[0]]));
      EXPECT_NEAR(h.count(order[0]) ? h.at(order[0]) / 4000.0 : 0.0, 1.0 / nucleus_mass, 0.02)
          << "top_k " << top_k << ", min_p " << min_p << ", nucleus " << nucleus;
      EXPECT_GT(nucleus, 64) << "the case should need more than the first sorted prefix";
    }
  }
}

TEST(Sampler, SamplesFollowTheSoftmax) {
  SamplingOptions o;
  o.temperature = 1.0f;
  auto h = histogram(o, {std::log(0.7f), std::log(0.2f), std::log(0.1f)}, 20000);
  EXPECT_NEAR(h[0] / 20000.0, 0.7, 0.02);
  EXPECT_NEAR(h[1] / 20000.0, 0.2, 0.02);
  EXPECT_NEAR(h[2] / 20000.0, 0.1, 0.02);
}

TEST(Sampler, SameSeedSameTokens) {
  SamplingOptions o;
  o.temperature = 1.0f;
  o.seed = 42;
  EXPECT_EQ(histogram(o, {1, 1, 1, 1, 1}, 50), histogram(o, {1, 1, 1, 1, 1}, 50));
}

TEST(Sampler, RepetitionPenaltyDiscouragesSeenTokens) {
  SamplingOptions o;
  o.temperature = 0;
  o.repetition_penalty = 2.0f;
  std::vector<float> logits = {2.0f, 1.5f, -1.0f};
  std::vector<int32_t> history = {0};
  EXPECT_EQ(Sampler(o).sample(logits, history), 1);  // 2.0 / 2 < 1.5
  EXPECT_EQ(logits[0], 1.0f);
}

TEST(Sampler, RejectsBadSettings) {
  SamplingOptions o;
  o.top_p = 0;
  EXPECT_THROW(Sampler{o}, Error);
  o = {};
  o.temperature = -1;
  EXPECT_THROW(Sampler{o}, Error);
}

}  // namespace
}  // namespace afq
