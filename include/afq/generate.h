// The generation loop: prompt in, tokens streamed out as text, with stop conditions and timings.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "afq/model.h"
#include "afq/sampling.h"
#include "afq/tokenizer.h"

namespace afq {

struct GenerateOptions {
  int max_tokens = 128;
  SamplingOptions sampling;
  std::vector<std::string> stop;  // stop strings (not printed)
  bool stop_at_eos = true;
};

struct GenerateResult {
  std::vector<int32_t> tokens;  // generated ids (the stopping EOS excluded)
  int64_t prompt_tokens = 0;
  double prompt_seconds = 0;    // prefill, up to the first generated token
  double generate_seconds = 0;  // the decode steps after it
  std::string stop_reason;      // "eos", "stop string", "max tokens", "context full"
};

// Generates from `prompt` (token ids); `on_text` receives text as soon as it is complete UTF-8
// and cannot be the start of a stop string.
GenerateResult generate(Model& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text);

// Generates from several prompts at once, prompt i in sequence i of the model (model.batch() of
// them at most): each prompt runs through the model on its own, then every decode step runs all
// sequences together until each has stopped on its own conditions. on_text(i, text) receives
// sequence i's text as generate() would. Sampling gives sequence i the seed options.sampling.seed
// + i. Every result's generate_seconds is the time of the whole batched decode.
std::vector<GenerateResult> generate_batch(Model& model, const Tokenizer& tokenizer,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& options,
                                           const std::function<void(size_t, std::string_view)>& on_text);

}  // namespace afq
