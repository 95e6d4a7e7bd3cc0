// afq::sample_in_token_order: the GPU's sampling rule (src/cuda/sample.cu) on the host, in double
// precision. Model::forward_batch_sample uses it on the CPU; the GPU's tests check against it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "afq/sampling.h"

namespace afq {

int32_t sample_in_token_order(std::span<const float> logits, const SamplingOptions& options, double uniform) {
  const int64_t n = static_cast<int64_t>(logits.size());
  // The largest logit, the first of equals; NaN never (max_element would keep a leading NaN).
  int32_t best = 0;
  float top = -INFINITY;
  for (int64_t i = 0; i < n; ++i)
    if (logits[i] > top) {
      top = logits[i];
      best = static_cast<int32_t>(i);
    }
  if (options.temperature <= 0 || !std::isfinite(top)) return best;

  // The thresholds, as logits: every candidate has logit >= floor (and w >= min_p).
  float floor = -INFINITY;
  if (options.top_k > 0 && options.top_k < n) {
    std::vector<float> sorted(logits.begin(), logits.end());
    std::nth_element(sorted.begin(), sorted.begin() + (options.top_k - 1), sorted.end(), std::greater<float>());
    floor = sorted[options.top_k - 1];
  }
  const double inv_temperature = 1.0 / options.temperature;
  auto weight = [&](float v) { return std::isnan(v) ? 0.0 : std::exp((double(v) - top) * inv_temperature); };
  auto candidate = [&](float v) { return !std::isnan(v) && v >= floor && weight(v) >= options.min_p; };
  if (options.top_p < 1.0f) {
    std::vector<float> kept;
    for (float v : logits)
      if (candidate(v)) kept.push_back(v);
    std::sort(kept.begin(), kept.end(), std::greater<float>());
    double total = 0;
    for (float v : kept) total += weight(v);
    const double wanted = options.top_p * total;
    double cumulative = 0;
    for (size_t i = 0; i < kept.size(); ++i) {
      cumulative += weight(kept[i]);
      // Ties at the threshold stay: it is a logit, not a count.
      if (cumulative >= wanted && (i + 1 == kept.size() || kept[i + 1] < kept[i])) {
        floor = std::max(floor, kept[i]);
        break;
      }
    }
  }
  double total = 0;
  for (float v : logits)
    if (candidate(v)) total += weight(v);
  const double target = uniform * total;
  double cumulative = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!candidate(logits[i])) continue;
    cumulative += weight(logits[i]);
    if (cumulative > target) return static_cast<int32_t>(i);
  }
  return best;  // rounding past the end: the most likely
}

}  // namespace afq
