// generate_batch against generate(): every sequence of a batch produces what it produces alone,
// with its own stop conditions, on the shipped model (CPU; tests/cuda/model_test.cpp runs the
// batch on the GPU).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "afq/error.h"
#include "afq/generate.h"

namespace afq {
namespace {

const std::string kShipped = AFQ_SOURCE_DIR "/models/tinyshakes-5m";

struct Alone {
  std::vector<int32_t> tokens;
  std::string text, stop_reason;
};

Alone generate_alone(Model& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                     const GenerateOptions& options) {
  Alone a;
  const GenerateResult r = generate(model, tokenizer, prompt, options, [&](std::string_view t) { a.text += t; });
  a.tokens = r.tokens;
  a.stop_reason = r.stop_reason;
  return a;
}

void expect_batch_equals_alone(const GenerateOptions& options, const std::string& what) {
  const Tokenizer tokenizer = Tokenizer::from_file(kShipped + "/tokenizer.json");
  const std::vector<std::vector<int32_t>> prompts = {
      tokenizer.encode("ROMEO:"), tokenizer.encode("First Citizen:\nBefore we proceed any further, hear me speak."),
      tokenizer.encode("KING")};
  Model one = Model::load(kShipped);
  LoadOptions load;
  load.batch = 3;
  Model batch = Model::load(kShipped, load);
  std::map<size_t, std::string> texts;
  const std::vector<GenerateResult> results =
      generate_batch(batch, tokenizer, prompts, options, [&](size_t i, std::string_view t) { texts[i] += t; });
  ASSERT_EQ(results.size(), prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerateOptions own = options;
    own.sampling.seed += i;
    const Alone a = generate_alone(one, tokenizer, prompts[i], own);
    EXPECT_EQ(results[i].tokens, a.tokens) << what << ", sequence " << i;
    EXPECT_EQ(texts[i], a.text) << what << ", sequence " << i;
    EXPECT_EQ(results[i].stop_reason, a.stop_reason) << what << ", sequence " << i;
    EXPECT_EQ(results[i].prompt_tokens, static_cast<int64_t>(prompts[i].size()));
  }
}

TEST(GenerateBatch, GreedySequencesEqualGeneratingEachAlone) {
  GenerateOptions options;
  options.max_tokens = 40;
  options.sampling.temperature = 0;
  options.stop_at_eos = false;
  expect_batch_equals_alone(options, "greedy");
  // Sequences that stop at different steps: a stop string some reach and others do not.
  options.stop = {"\n\n", "the"};
  expect_batch_equals_alone(options, "greedy with stop strings");
}

TEST(GenerateBatch, SampledSequencesEqualGeneratingEachAloneWithTheirSeeds) {
  GenerateOptions options;
  options.max_tokens = 30;
  options.sampling.temperature = 0.9f;
  options.sampling.top_k = 40;
  options.sampling.top_p = 0.95f;
  options.sampling.repetition_penalty = 1.1f;
  options.sampling.seed = 7;
  expect_batch_equals_alone(options, "sampled");
}

TEST(GenerateBatch, RejectsMorePromptsThanTheBatchAndEmptyPrompts) {
  const Tokenizer tokenizer = Tokenizer::from_file(kShipped + "/tokenizer.json");
  LoadOptions load;
  load.batch = 2;
  Model model = Model::load(kShipped, load);
  GenerateOptions options;
  auto ignore = [](size_t, std::string_view) {};
  const std::vector<int32_t> p = tokenizer.encode("ROMEO:");
  EXPECT_THROW(generate_batch(model, tokenizer, {p, p, p}, options, ignore), Error);
  EXPECT_THROW(generate_batch(model, tokenizer, {}, options, ignore), Error);
  EXPECT_THROW(generate_batch(model, tokenizer, {p, {}}, options, ignore), Error);
}

}  // namespace
}  // namespace afq
