// Chat templates: the Jinja program in a model's tokenizer_config.json ("chat_template") that turns
// a conversation into the prompt text the model was trained on. An interpreter for the subset of
// Jinja that chat templates use, rendering as transformers' apply_chat_template does (jinja2 with
// trim_blocks and lstrip_blocks, loop controls, raise_exception, strftime_now, and a tojson that
// keeps non-ASCII text).
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace afq {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

class ChatTemplate {
 public:
  // Parses `source` once; a syntax error throws afq::Error "chat template LINE:COL: ...".
  // bos_token / eos_token are the special-token strings templates refer to (empty when none).
  ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token);
  ~ChatTemplate();
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;

  // The template of a tokenizer_config.json ("chat_template": a string, or a list of named
  // templates of which "default" is taken), else of chat_template.jinja beside it; with its
  // bos_token and eos_token. nullopt when the model has none.
  static std::optional<ChatTemplate> from_tokenizer_config(const std::filesystem::path& tokenizer_config_json);

  // The prompt for `messages`: the context is messages, add_generation_prompt, bos_token,
  // eos_token, tools = documents = None, then `extra` (e.g. {"enable_thinking": false}).
  // Errors (raise_exception, undefined values, type errors) throw a one-line afq::Error with the
  // template's line:column.
  std::string apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                    const nlohmann::json& extra = {}) const;

  // Renders with exactly `context` as the template's variables (dicts keep their key order).
  std::string render(const nlohmann::ordered_json& context) const;

  const std::string& bos_token() const;
  const std::string& eos_token() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace afq
