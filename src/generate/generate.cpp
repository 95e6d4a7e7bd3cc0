#include "afq/generate.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "afq/error.h"

namespace afq {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Length of the longest suffix of `text` that is a proper prefix of some stop string: that much
// must be held back until the next token says whether a stop string follows.
size_t held_back(std::string_view text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& stop : stops)
    for (size_t n = std::min(stop.size() - 1, text.size()); n > hold; --n)
      if (text.substr(text.size() - n) == std::string_view(stop).substr(0, n)) {
        hold = n;
        break;
      }
  return hold;
}

void check_prompt(const std::vector<int32_t>& prompt, const Model& model, const std::string& which) {
  if (prompt.empty()) throw Error(which + " has no tokens");
  if (static_cast<int64_t>(prompt.size()) >= model.max_context())
    throw Error(which + " has " + std::to_string(prompt.size()) + " tokens, the context holds " +
                std::to_string(model.max_context()) + " (raise --max-context)");
}

// One sequence's output as its tokens arrive: the stop conditions, and its text handed out as
// soon as it is complete UTF-8 and cannot be the start of a stop string.
class Continuation {
 public:
  Continuation(const Model& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
               const GenerateOptions& options, std::function<void(std::string_view)> on_text)
      : options_(options), decoder_(tokenizer, prompt), history_(prompt), on_text_(std::move(on_text)) {
    eos_ = tokenizer.eos_ids();
    for (int32_t id : model.config().eos_token_ids)
      if (std::find(eos_.begin(), eos_.end(), id) == eos_.end()) eos_.push_back(id);
    for (const auto& s : options.stop)
      if (!s.empty()) stops_.push_back(s);
    result.prompt_tokens = static_cast<int64_t>(prompt.size());
    result.stop_reason = "max tokens";
  }

  // Takes the next token; false when the sequence stops here (EOS, a stop string, max tokens).
  bool push(int32_t token) {
    if (options_.stop_at_eos && std::find(eos_.begin(), eos_.end(), token) != eos_.end()) {
      result.stop_reason = "eos";
      return false;
    }
    result.tokens.push_back(token);
    history_.push_back(token);
    pending_ += decoder_.push(token);
    // A stop string ends generation; the text before it is the last output.
    bool stopped = false;
    for (const auto& stop : stops_) {
      if (auto at = pending_.find(stop); at != std::string::npos) {
        pending_.resize(at);
        stopped = true;
      }
    }
    const size_t hold = stopped ? 0 : held_back(pending_, stops_);
    if (pending_.size() > hold) {
      on_text_(std::string_view(pending_).substr(0, pending_.size() - hold));
      pending_.erase(0, pending_.size() - hold);
    }
    if (stopped) {
      result.stop_reason = "stop string";
      pending_.clear();
      return false;
    }
    return static_cast<int>(result.tokens.size()) < options_.max_tokens;
  }

  // The text held back for a stop string that did not come, and what the decoder still holds.
  void finish() {
    if (result.stop_reason != "stop string") pending_ += decoder_.flush();
    if (!pending_.empty()) on_text_(pending_);
    pending_.clear();
  }

  const std::vector<int32_t>& history() const { return history_; }

  GenerateResult result;

 private:
  const GenerateOptions& options_;
  StreamingDecoder decoder_;  // continues the prompt: SentencePiece keeps the space
  std::vector<int32_t> history_;
  std::vector<int32_t> eos_;
  std::vector<std::string> stops_;
  std::string pending_;  // decoded text not yet handed to on_text
  std::function<void(std::string_view)> on_text_;
};

// Greedy without a penalty needs no logits on the host: the model's own argmax (on the GPU,
// only the token ids come back). Sampling without a penalty on the GPU draws there too
// (Model::forward_batch_sample, at uniforms drawn here from the seed). Anything else samples from
// the logits on the CPU.
bool is_greedy(const SamplingOptions& s) { return s.temperature == 0.0f && s.repetition_penalty == 1.0f; }

bool samples_on_device(const Model& model, const SamplingOptions& s) {
  return model.device() == Device::Cuda && s.temperature > 0.0f && s.repetition_penalty == 1.0f;
}

// The uniforms of one sequence's draws on the device, from its seed.
class Uniforms {
 public:
  explicit Uniforms(uint64_t seed) : rng_(seed) {}
  // In [0, 1): a double just below 1 would round to 1.0f.
  float next() { return std::min(static_cast<float>(std::generate_canonical<double, 53>(rng_)), 0x1.fffffep-1f); }

 private:
  std::mt19937_64 rng_;
};

// Row `row` of logits (the sampler may change it: penalties, temperature).
int32_t sample_row(Sampler& sampler, Tensor& logits, int64_t row, std::span<const int32_t> history) {
  const int64_t vocab = logits.dim(1);
  float* values = logits.mutable_data<float>() + row * vocab;
  return sampler.sample({values, static_cast<size_t>(vocab)}, history);
}

}  // namespace

GenerateResult generate(Model& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text) {
  check_prompt(prompt, model, "the prompt");
  Sampler sampler(options.sampling);
  Continuation out(model, tokenizer, prompt, options, on_text);
  const bool greedy = is_greedy(options.sampling), on_device = samples_on_device(model, options.sampling);
  Uniforms uniforms(options.sampling.seed);
  auto next_token = [&](const int32_t* tokens, int64_t n, int64_t at) {
    if (greedy) return model.forward_argmax(tokens, n, at);
    if (on_device && n == 1) {
      const float u = uniforms.next();
      return model.forward_batch_sample(tokens, &at, 1, options.sampling, &u)[0];
    }
    Tensor logits = model.forward(tokens, n, at);
    if (on_device)  // the prompt's token by the device's rule, on the host
      return sample_in_token_order({logits.data<float>(), static_cast<size_t>(logits.dim(1))}, options.sampling,
                                   uniforms.next());
    return sample_row(sampler, logits, 0, out.history());
  };

  const auto start = Clock::now();
  int32_t next = next_token(prompt.data(), static_cast<int64_t>(prompt.size()), 0);
  out.result.prompt_seconds = seconds_since(start);
  const auto decode_start = Clock::now();
  int64_t position = static_cast<int64_t>(prompt.size());
  if (options.max_tokens > 0) {
    while (out.push(next)) {
      if (position + 1 > model.max_context()) {
        out.result.stop_reason = "context full";
        break;
      }
      const int32_t token = next;
      next = next_token(&token, 1, position++);
    }
  }
  out.finish();
  out.result.generate_seconds = seconds_since(decode_start);
  return out.result;
}

std::vector<GenerateResult> generate_batch(Model& model, const Tokenizer& tokenizer,
                                           const std::vector<std::vector<int32_t>>& prompts,
                                           const GenerateOptions& options,
                                           const std::function<void(size_t, std::string_view)>& on_text) {
  const int64_t count = static_cast<int64_t>(prompts.size());
  if (count < 1 || count > model.batch())
    throw Error(std::to_string(count) + " prompts, the model was loaded for a batch of 1 to " +
                std::to_string(model.batch()));
  for (size_t i = 0; i < prompts.size(); ++i) check_prompt(prompts[i], model, "prompt " + std::to_string(i + 1));
  const bool greedy = is_greedy(options.sampling), on_device = samples_on_device(model, options.sampling);
  std::vector<Sampler> samplers;
  std::vector<Uniforms> uniforms;
  std::vector<Continuation> outs;
  outs.reserve(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    SamplingOptions sampling = options.sampling;
    sampling.seed += i;  // each sequence its own stream, reproducible from the one seed
    samplers.emplace_back(sampling);
    uniforms.emplace_back(sampling.seed);
    outs.emplace_back(model, tokenizer, prompts[i], options, [&on_text, i](std::string_view t) { on_text(i, t); });
  }

  // Each prompt into its own sequence's cache, one after the other.
  std::vector<int32_t> next(prompts.size());
  std::vector<int64_t> positions(prompts.size());
  for (int64_t i = 0; i < count; ++i) {
    const auto start = Clock::now();
    const int64_t n = static_cast<int64_t>(prompts[i].size());
    const int sequence = static_cast<int>(i);
    if (greedy) {
      next[i] = model.forward_argmax(prompts[i].data(), n, 0, sequence);
    } else {
      Tensor logits = model.forward(prompts[i].data(), n, 0, false, sequence);
      next[i] = on_device ? sample_in_token_order({logits.data<float>(), static_cast<size_t>(logits.dim(1))},
                                                  options.sampling, uniforms[i].next())
                          : sample_row(samplers[i], logits, 0, outs[i].history());
    }
    positions[i] = n;
    outs[i].result.prompt_seconds = seconds_since(start);
  }

  // Then decode steps of all sequences together until every one has stopped. A stopped sequence
  // still takes part while one after it runs (its row recomputes its last position, unused), so
  // that the steps keep their shape; the steps shrink past the last running one.
  const auto decode_start = Clock::now();
  std::vector<bool> running(prompts.size(), options.max_tokens > 0);
  for (;;) {
    for (int64_t i = 0; i < count; ++i) {
      if (!running[i]) continue;
      if (!outs[i].push(next[i])) {
        running[i] = false;
      } else if (positions[i] + 1 > model.max_context()) {
        outs[i].result.stop_reason = "context full";
        running[i] = false;
      }
    }
    int64_t rows = count;
    while (rows > 0 && !running[rows - 1]) --rows;
    if (rows == 0) break;
    std::vector<int64_t> step_positions(positions.begin(), positions.begin() + rows);
    for (int64_t i = 0; i < rows; ++i)
      if (!running[i]) step_positions[i] = std::min<int64_t>(positions[i], model.max_context() - 1);
    std::vector<int32_t> ids;
    if (greedy) {
      ids = model.forward_batch_argmax(next.data(), step_positions.data(), rows);
    } else if (on_device) {
      std::vector<float> u(static_cast<size_t>(rows), 0.0f);
      for (int64_t i = 0; i < rows; ++i)
        if (running[i]) u[i] = uniforms[i].next();
      ids = model.forward_batch_sample(next.data(), step_positions.data(), rows, options.sampling, u.data());
    } else {
      Tensor logits = model.forward_batch(next.data(), step_positions.data(), rows);
      ids.resize(static_cast<size_t>(rows));
      for (int64_t i = 0; i < rows; ++i)
        if (running[i]) ids[i] = sample_row(samplers[i], logits, i, outs[i].history());
    }
    for (int64_t i = 0; i < rows; ++i)
      if (running[i]) {
        next[i] = ids[i];
        ++positions[i];
      }
  }
  const double decode_seconds = seconds_since(decode_start);
  std::vector<GenerateResult> results;
  for (Continuation& out : outs) {
    out.finish();
    out.result.generate_seconds = decode_seconds;
    results.push_back(std::move(out.result));
  }
  return results;
}

}  // namespace afq
