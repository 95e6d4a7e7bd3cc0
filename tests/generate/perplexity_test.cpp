#include "afq/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "afq/error.h"
#include "afq/safetensors.h"

namespace afq {
namespace {

// afq's perplexity over the fixture prompt against the one worked out from transformers' own
// logits for it.
TEST(Perplexity, EqualsTheOneFromTransformersLogits) {
  SafetensorsFile f = SafetensorsFile::open(AFQ_TEST_DATA "/models/tinyshakes-5m.expected.safetensors");
  Tensor prompt = f.tensor("prompt"), logits = f.tensor("logits");
  std::vector<int32_t> tokens(prompt.data<int32_t>(), prompt.data<int32_t>() + prompt.numel());
  const int window = static_cast<int>(tokens.size()) - 1;
  const int64_t vocab = logits.dim(1);
  double nll = 0;
  for (int t = 0; t < window; ++t) {
    const float* row = logits.data<float>() + t * vocab;
    double top = *std::max_element(row, row + vocab), sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - top);
    nll -= row[tokens[t + 1]] - top - std::log(sum);
  }
  const double expected = std::exp(nll / window);

  Model model = Model::load(AFQ_SOURCE_DIR "/models/tinyshakes-5m");
  PerplexityResult r = perplexity(model, tokens, window);
  EXPECT_EQ(r.windows, 1);
  EXPECT_EQ(r.tokens_scored, window);
  EXPECT_NEAR(r.perplexity, expected, 1e-4 * expected);
  EXPECT_THROW(perplexity(model, tokens, window + 1), Error);  // not one whole window
}

}  // namespace
}  // namespace afq
