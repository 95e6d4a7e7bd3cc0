#include "afq/perplexity.h"

#include <chrono>
#include <cmath>

#include "afq/error.h"

namespace afq {

PerplexityResult perplexity(Model& model, const std::vector<int32_t>& tokens, int window,
                            const std::function<void(int64_t, int64_t)>& progress) {
  if (window < 2) throw Error("--window must be at least 2");
  if (window > model.max_context()) throw Error("--window is larger than the context (raise --max-context)");
  const int64_t windows = (static_cast<int64_t>(tokens.size()) - 1) / window;
  if (windows < 1)
    throw Error("the data has " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                std::to_string(window) + " + 1");
  PerplexityResult result;
  auto start = std::chrono::steady_clock::now();
  double nll = 0;
  for (int64_t w = 0; w < windows; ++w) {
    const int32_t* chunk = tokens.data() + w * window;
    Tensor logits = model.forward(chunk, window, 0, /*all_logits=*/true);  // [window, vocab]
    const int64_t vocab = logits.dim(1);
    for (int64_t t = 0; t < window; ++t) {
      const float* row = logits.data<float>() + t * vocab;
      float top = row[0];
      for (int64_t i = 1; i < vocab; ++i) top = std::max(top, row[i]);
      double sum = 0;
      for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i]) - top);
      nll -= double(row[chunk[t + 1]]) - top - std::log(sum);  // -log softmax of the next token
    }
    if (progress) progress(w + 1, windows);
  }
  result.windows = windows;
  result.tokens_scored = windows * window;
  result.mean_nll = nll / static_cast<double>(result.tokens_scored);
  result.perplexity = std::exp(result.mean_nll);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace afq
