#include "afq/generate.h"

#include <algorithm>
#include <chrono>

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

}  // namespace

GenerateResult generate(Model& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(std::string_view)>& on_text) {
  if (prompt.empty()) throw Error("the prompt has no tokens");
  if (static_cast<int64_t>(prompt.size()) >= model.max_context())
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, the context holds " +
                std::to_string(model.max_context()) + " (raise --max-context)");
  std::vector<int32_t> eos = tokenizer.eos_ids();
  for (int32_t id : model.config().eos_token_ids)
    if (std::find(eos.begin(), eos.end(), id) == eos.end()) eos.push_back(id);
  std::vector<std::string> stops;
  for (const auto& s : options.stop)
    if (!s.empty()) stops.push_back(s);

  GenerateResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  Sampler sampler(options.sampling);
  StreamingDecoder decoder(tokenizer, prompt);  // continues the prompt: SentencePiece keeps the space
  std::vector<int32_t> history = prompt;
  std::string pending;  // decoded text not yet handed to on_text

  // Greedy without a penalty needs no logits on the host: the model's own argmax (on the GPU,
  // only the token id comes back). Anything else samples from the logits on the CPU.
  const bool greedy = options.sampling.temperature == 0.0f && options.sampling.repetition_penalty == 1.0f;
  auto next_token = [&](const int32_t* tokens, int64_t n, int64_t at) {
    if (greedy) return model.forward_argmax(tokens, n, at);
    Tensor logits = model.forward(tokens, n, at);
    return sampler.sample({logits.mutable_data<float>(), static_cast<size_t>(logits.dim(1))}, history);
  };

  auto start = Clock::now();
  int32_t next = next_token(prompt.data(), static_cast<int64_t>(prompt.size()), 0);
  int64_t position = static_cast<int64_t>(prompt.size());
  auto decode_start = start;
  result.stop_reason = "max tokens";
  for (int step = 0; step < options.max_tokens; ++step) {
    if (step == 0) {
      result.prompt_seconds = seconds_since(start);
      decode_start = Clock::now();
    }
    if (options.stop_at_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      result.stop_reason = "eos";
      break;
    }
    result.tokens.push_back(next);
    history.push_back(next);
    pending += decoder.push(next);
    // A stop string ends generation; the text before it is the last output.
    bool stopped = false;
    for (const auto& stop : stops) {
      if (auto at = pending.find(stop); at != std::string::npos) {
        pending.resize(at);
        stopped = true;
      }
    }
    const size_t hold = stopped ? 0 : held_back(pending, stops);
    if (pending.size() > hold) {
      on_text(std::string_view(pending).substr(0, pending.size() - hold));
      pending.erase(0, pending.size() - hold);
    }
    if (stopped) {
      result.stop_reason = "stop string";
      pending.clear();
      break;
    }
    if (step + 1 == options.max_tokens) break;
    if (position + 1 > model.max_context()) {
      result.stop_reason = "context full";
      break;
    }
    const int32_t token = next;
    next = next_token(&token, 1, position++);
  }
  if (result.stop_reason != "stop string") pending += decoder.flush();
  if (!pending.empty()) on_text(pending);
  result.generate_seconds = seconds_since(decode_start);
  return result;
}

}  // namespace afq
