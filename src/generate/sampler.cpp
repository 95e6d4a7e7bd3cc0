#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "afq/cpu.h"
#include "afq/error.h"
#include "afq/sampling.h"

namespace afq {

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {
  if (options.temperature < 0) throw Error("--temp must be >= 0");
  if (options.top_k < 0) throw Error("--top-k must be >= 0");
  if (!(options.top_p > 0 && options.top_p <= 1)) throw Error("--top-p must be in (0, 1]");
  if (!(options.min_p >= 0 && options.min_p < 1)) throw Error("--min-p must be in [0, 1)");
  if (!(options.repetition_penalty > 0)) throw Error("--repetition-penalty must be > 0");
}

int32_t Sampler::sample(std::span<float> logits, std::span<const int32_t> history) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  if (options_.repetition_penalty != 1.0f) {
    std::unordered_set<int32_t> seen(history.begin(), history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      float& l = logits[id];
      l = l > 0 ? l / options_.repetition_penalty : l * options_.repetition_penalty;
    }
  }
  if (options_.temperature == 0.0f)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // The candidates, first in order_: top-k's k most likely tokens (all of them without top-k).
  // Only as much of them is sorted as the settings need: sorting a vocabulary of 128k costs far
  // more than the decode step it follows.
  int64_t keep = options_.top_k > 0 ? std::min<int64_t>(options_.top_k, vocab) : vocab;
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b]; };
  constexpr int64_t kSortedUpTo = 1024;  // a heap of this many beats a selection over the vocabulary
  bool sorted = false;
  if (keep <= kSortedUpTo) {
    std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), by_logit);
    sorted = true;
  } else if (keep < vocab) {
    std::nth_element(order_.begin(), order_.begin() + keep - 1, order_.end(), by_logit);
  }

  // Unnormalized probabilities of the candidates, w = exp((logit - top) / T): the most likely has w = 1.
  const float top = sorted ? logits[order_[0]] : *std::max_element(logits.begin(), logits.end());
  weights_.resize(vocab);
  const float inv_temperature = 1.0f / options_.temperature;
  if (keep == vocab)  // every token: one vector pass
    cpu::exp_shifted_scaled(logits.data(), vocab, top, inv_temperature, weights_.data());
  else
    for (int64_t i = 0; i < keep; ++i) weights_[order_[i]] = std::exp((logits[order_[i]] - top) * inv_temperature);

  // min-p keeps the candidates with w >= min_p: the most likely of them, the first included.
  if (options_.min_p > 0) {
    const int64_t likely = std::count_if(order_.begin(), order_.begin() + keep,
                                         [&](int32_t id) { return weights_[id] >= options_.min_p; });
    const int64_t kept = std::max<int64_t>(likely, 1);
    if (kept < keep && !sorted) std::nth_element(order_.begin(), order_.begin() + kept - 1, order_.begin() + keep, by_logit);
    keep = kept;
  }

  // top-p: the smallest prefix by logit whose mass reaches top_p of the candidates'.
  int64_t n = keep;
  if (options_.top_p < 1.0f) {
    double total = 0;
    for (int64_t i = 0; i < keep; ++i) total += weights_[order_[i]];
    const double wanted = options_.top_p * total;
    for (int64_t prefix = sorted ? keep : std::min<int64_t>(keep, 64);; prefix = std::min(keep, prefix * 8)) {
      if (!sorted) std::partial_sort(order_.begin(), order_.begin() + prefix, order_.begin() + keep, by_logit);
      double cumulative = 0;
      int64_t reached = -1;
      for (int64_t i = 0; i < prefix && reached < 0; ++i)
        if ((cumulative += weights_[order_[i]]) >= wanted) reached = i + 1;
      if (reached > 0 || prefix == keep) {
        n = reached > 0 ? reached : keep;
        break;
      }
    }
  }

  // Draw among the first n candidates in proportion to w (their order does not matter).
  double mass = 0;
  for (int64_t i = 0; i < n; ++i) mass += weights_[order_[i]];
  double u = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  for (int64_t i = 0; i < n; ++i) {
    u -= weights_[order_[i]];
    if (u < 0) return order_[i];
  }
  return order_[n - 1];
}

}  // namespace afq
