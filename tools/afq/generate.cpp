// afq generate: load a model (quantizing it on the way if asked), tokenize (through the model's
// chat template with --chat), generate, stream; or, with --batch-file, generate from many prompts
// decoded together and print each completion when all are done.
#include "afq/generate.h"

#include <fmt/core.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "afq/chat_template.h"
#include "afq/error.h"
#include "commands.h"
#include "model_options.h"

namespace afq::cli {

namespace {

// --chat: the prompt as the user's message (after a system message, when given) in the model's
// chat template, ending with the generation prompt that opens the assistant's turn.
std::string chat_prompt(const std::string& dir, const std::optional<std::string>& system, const std::string& prompt) {
  const std::filesystem::path config = std::filesystem::path(dir) / "tokenizer_config.json";
  std::optional<ChatTemplate> chat_template;
  if (std::filesystem::exists(config)) chat_template = ChatTemplate::from_tokenizer_config(config);
  if (!chat_template)
    throw Error("--chat: the model has no chat template (no \"chat_template\" in " + config.string() + ")");
  std::vector<ChatMessage> messages;
  if (system) messages.push_back({"system", *system});
  messages.push_back({"user", prompt});
  return chat_template->apply(messages, /*add_generation_prompt=*/true);
}

void print_ids(const char* label, const std::vector<int32_t>& ids) {
  fmt::print("{}:", label);
  for (int32_t id : ids) fmt::print(" {}", id);
  fmt::print("\n");
}

// --batch-file: one prompt per line (empty lines skipped), at most kMaxBatch of them.
std::vector<std::string> read_batch_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("--batch-file: cannot read " + path);
  std::vector<std::string> prompts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) prompts.push_back(line);
  }
  if (prompts.empty()) throw Error("--batch-file: " + path + " has no prompts (one per line)");
  if (prompts.size() > static_cast<size_t>(kMaxBatch))
    throw Error("--batch-file: " + path + " has " + std::to_string(prompts.size()) + " prompts, at most " +
                std::to_string(kMaxBatch) + " run together");
  return prompts;
}

double peak_memory_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace

void add_generate_command(CLI::App& app) {
  struct Args {
    ModelArgs model;
    std::string prompt;
    GenerateOptions gen;
    bool print_ids = false;
    bool chat = false;
    std::string system;
    std::string batch_file;
  };
  auto args = std::make_shared<Args>();
  args->gen.max_tokens = 100;
  CLI::App* cmd = app.add_subcommand("generate", "Generate text with a model on the CPU or an NVIDIA GPU (--device cuda)");
  add_model_options(cmd, args->model);
  CLI::Option* prompt_option =
      cmd->add_option("--prompt,-p", args->prompt, "Text to continue (empty: start from the BOS token)");
  CLI::Option* batch_file = cmd->add_option(
      "--batch-file", args->batch_file,
      "Generate from every line of this file at once (one prompt per line, at most 256), decoded together; "
      "each completion is printed when all are done");
  cmd->add_option("--max-tokens,-n", args->gen.max_tokens, "Tokens to generate at most")->capture_default_str();
  cmd->add_option("--temp", args->gen.sampling.temperature, "Sampling temperature; 0 is greedy")->capture_default_str();
  cmd->add_option("--top-k", args->gen.sampling.top_k, "Keep the k most likely tokens (0: off)")->capture_default_str();
  cmd->add_option("--top-p", args->gen.sampling.top_p, "Nucleus sampling mass (1: off)")->capture_default_str();
  cmd->add_option("--min-p", args->gen.sampling.min_p, "Drop tokens below min-p x the best (0: off)")
      ->capture_default_str();
  cmd->add_option("--repetition-penalty", args->gen.sampling.repetition_penalty, "Penalty for seen tokens (1: off)")
      ->capture_default_str();
  cmd->add_option("--seed", args->gen.sampling.seed, "Random seed")->capture_default_str();
  cmd->add_option("--stop", args->gen.stop, "Stop when this text appears (repeatable)");
  cmd->add_flag("--ignore-eos", [args](int64_t) { args->gen.stop_at_eos = false; }, "Do not stop at end-of-sequence");
  cmd->add_flag("--print-ids", args->print_ids,
                "End with lines 'prompt ids: ...' and 'ids: ...' of the prompt's and the generated token ids");
  cmd->add_flag("--chat", args->chat,
                "Send --prompt as a user message through the model's chat template (tokenizer_config.json)");
  CLI::Option* system = cmd->add_option("--system", args->system, "With --chat: a system message before the prompt");
  cmd->callback([args, system, prompt_option, batch_file] {
    if (args->gen.max_tokens < 0) throw Error("--max-tokens must be >= 0");
    if (system->count() && !args->chat) throw Error("--system needs --chat");
    const std::string dir = model_dir(args->model);
    const std::optional<std::string> system_message = system->count() ? std::optional(args->system) : std::nullopt;
    // The texts the model continues (and that are echoed): the prompts, or the rendered chats.
    std::vector<std::string> texts;
    if (batch_file->count()) {
      if (prompt_option->count()) throw Error("--batch-file and --prompt both give prompts; give one");
      texts = read_batch_file(args->batch_file);
    } else {
      texts.push_back(args->prompt);
    }
    if (args->chat)
      for (std::string& text : texts) text = chat_prompt(dir, system_message, text);
    args->model.batch = static_cast<int>(texts.size());
    Model model = load_model(args->model);
    Tokenizer tokenizer = load_tokenizer(dir);
    std::vector<std::vector<int32_t>> prompts;
    for (const std::string& text : texts) {
      // A chat template writes the special tokens itself (Llama 3's starts with the BOS): adding
      // the tokenizer's too would double the BOS. transformers' apply_chat_template tokenizes alike.
      std::vector<int32_t> prompt = tokenizer.encode(text, /*add_special_tokens=*/!args->chat);
      if (prompt.empty()) {
        auto bos = tokenizer.bos_id() ? tokenizer.bos_id() : model.config().bos_token_id;
        if (!bos) throw Error("--prompt is empty and the model has no BOS token to start from");
        prompt.push_back(*bos);
      }
      prompts.push_back(std::move(prompt));
    }
    std::vector<GenerateResult> results;
    if (!batch_file->count()) {
      fmt::print("{}", texts[0]);
      std::fflush(stdout);
      results.push_back(generate(model, tokenizer, prompts[0], args->gen, [](std::string_view text) {
        std::fwrite(text.data(), 1, text.size(), stdout);
        std::fflush(stdout);
      }));
      fmt::print("\n");
      if (args->print_ids) {
        print_ids("prompt ids", prompts[0]);
        print_ids("ids", results[0].tokens);
      }
    } else {
      std::vector<std::string> outputs(texts.size());
      results = generate_batch(model, tokenizer, prompts, args->gen,
                               [&](size_t i, std::string_view text) { outputs[i] += text; });
      for (size_t i = 0; i < texts.size(); ++i) {
        fmt::print("--- {}/{} ({}) ---\n{}{}\n", i + 1, texts.size(), results[i].stop_reason, texts[i], outputs[i]);
        if (args->print_ids) {
          print_ids("prompt ids", prompts[i]);
          print_ids("ids", results[i].tokens);
        }
      }
    }
    // The text and the ids before the summary, where both streams go to one file (stdout is
    // buffered there, stderr is not).
    std::fflush(stdout);
    int64_t prompt_tokens = 0, generated = 0, decode_steps_tokens = 0;
    double prompt_seconds = 0;
    for (const GenerateResult& r : results) {
      prompt_tokens += r.prompt_tokens;
      prompt_seconds += r.prompt_seconds;
      generated += static_cast<int64_t>(r.tokens.size());
      // The first token of each comes with its prompt; the decode steps make the rest.
      decode_steps_tokens += r.tokens.size() > 1 ? static_cast<int64_t>(r.tokens.size()) - 1 : 0;
    }
    const double generate_seconds = results[0].generate_seconds;
    const std::string batch = results.size() > 1 ? fmt::format("batch of {} | ", results.size()) : std::string();
    const std::string stop = results.size() > 1 ? std::string() : " (" + results[0].stop_reason + ")";
    fmt::print(stderr,
               "{}prompt: {} tokens, {:.1f} tokens/s | generation: {} tokens, {:.1f} tokens/s{} | weights {:.1f} MB, "
               "peak memory {:.0f} MB{}\n",
               batch, prompt_tokens, prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0.0, generated,
               generate_seconds > 0 ? decode_steps_tokens / generate_seconds : 0.0, stop, model.weight_bytes() / 1e6,
               peak_memory_mb(),
               model.device() == Device::Cuda ? fmt::format(", device memory {:.0f} MB", model.device_bytes() / 1e6)
                                              : std::string());
  });
}

}  // namespace afq::cli
