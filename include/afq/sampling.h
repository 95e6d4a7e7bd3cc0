// Choosing the next token from logits: greedy, or sampled with temperature, top-k, top-p
// (nucleus), min-p and a repetition penalty, reproducible from a seed.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace afq {

struct SamplingOptions {
  float temperature = 0.8f;        // 0: greedy
  int top_k = 0;                   // 0: off
  float top_p = 1.0f;              // 1: off
  float min_p = 0.0f;              // 0: off; keep tokens with p >= min_p * p_max
  float repetition_penalty = 1.0f; // 1: off; as transformers: divide positive logits, multiply negative
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // `logits` may be modified (penalties, temperature). `history` holds the tokens so far.
  int32_t sample(std::span<float> logits, std::span<const int32_t> history);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;   // scratch: token ids, the candidates first
  std::vector<float> weights_;   // scratch: exp((logit - max) / T) per token
};

}  // namespace afq
