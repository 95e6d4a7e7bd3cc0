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

// The rule of the samples a GPU draws (Model::forward_batch_sample), on the host: the candidates
// are the tokens that top-k (the k largest logits, ties at the k-th kept), min-p (w >= min_p,
// w = exp((logit - max) / T)) and top-p (the smallest set of the largest logits, ties kept, that
// holds top_p of the candidates' mass) leave, and the token drawn is the one at which their
// cumulative mass, in token order, passes uniform * their total (uniform in [0, 1)). Temperature
// 0: the argmax. The repetition penalty is not part of it (the caller applies it to the logits).
int32_t sample_in_token_order(std::span<const float> logits, const SamplingOptions& options, double uniform);

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
