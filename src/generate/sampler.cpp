#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

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

  // Candidates sorted by logit, highest first; top-k cuts the list before the softmax.
  order_.resize(vocab);
  std::iota(order_.begin(), order_.end(), 0);
  int64_t keep = options_.top_k > 0 ? std::min<int64_t>(options_.top_k, vocab) : vocab;
  auto by_logit = [&](int32_t a, int32_t b) { return logits[a] > logits[b]; };
  std::partial_sort(order_.begin(), order_.begin() + keep, order_.end(), by_logit);
  order_.resize(keep);

  probs_.resize(keep);
  const float top = logits[order_[0]];
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) {
    probs_[i] = std::exp((logits[order_[i]] - top) / options_.temperature);
    sum += probs_[i];
  }
  // min-p: drop tokens below min_p times the most likely one (probs_[0] / sum).
  int64_t n = keep;
  if (options_.min_p > 0) {
    const float floor = options_.min_p * probs_[0];
    while (n > 1 && probs_[n - 1] < floor) --n;
  }
  // top-p: the smallest prefix whose mass reaches top_p.
  if (options_.top_p < 1.0f) {
    double total = std::accumulate(probs_.begin(), probs_.begin() + n, 0.0), cumulative = 0;
    for (int64_t i = 0; i < n; ++i) {
      cumulative += probs_[i] / total;
      if (cumulative >= options_.top_p) {
        n = i + 1;
        break;
      }
    }
  }
  double mass = std::accumulate(probs_.begin(), probs_.begin() + n, 0.0);
  double u = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  for (int64_t i = 0; i < n; ++i) {
    u -= probs_[i];
    if (u < 0) return order_[i];
  }
  return order_[n - 1];
}

}  // namespace afq
