// Perplexity over a token stream in non-overlapping windows: each window of `window` tokens
// predicts the token after each of its positions (so it reads window + 1 tokens).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "afq/model.h"

namespace afq {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;       // nats per token
  int64_t tokens_scored = 0;
  int64_t windows = 0;
  double seconds = 0;
};

PerplexityResult perplexity(Model& model, const std::vector<int32_t>& tokens, int window,
                            const std::function<void(int64_t done, int64_t total)>& progress = {});

}  // namespace afq
