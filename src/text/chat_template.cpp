// ChatTemplate: the jinja_* interpreter behind the context transformers' apply_chat_template
// gives a template (messages, add_generation_prompt, the special tokens, tools = documents = None).
#include "afq/chat_template.h"

#include <fstream>
#include <new>
#include <sstream>
#include <stdexcept>

#include "afq/error.h"
#include "jinja_ast.h"
#include "jinja_eval.h"
#include "jinja_lexer.h"

namespace afq {

namespace {

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A special token in tokenizer_config.json: a string, an AddedToken object {"content": ...}, or null.
std::string token_string(const nlohmann::json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"];
  return "";
}

}  // namespace

struct ChatTemplate::Impl {
  jinja::Body body;
  std::string bos_token, eos_token;
};

ChatTemplate::ChatTemplate(const std::string& source, std::string bos_token, std::string eos_token)
    : impl_(std::make_unique<Impl>()) {
  impl_->body = jinja::parse(jinja::lex(source));
  impl_->bos_token = std::move(bos_token);
  impl_->eos_token = std::move(eos_token);
}

ChatTemplate::~ChatTemplate() = default;
ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;

const std::string& ChatTemplate::bos_token() const { return impl_->bos_token; }
const std::string& ChatTemplate::eos_token() const { return impl_->eos_token; }

std::optional<ChatTemplate> ChatTemplate::from_tokenizer_config(const std::filesystem::path& tokenizer_config_json) {
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_text(tokenizer_config_json));
  } catch (const nlohmann::json::parse_error&) {
    throw Error(tokenizer_config_json.string() + ": invalid JSON");
  }
  std::string source;
  std::filesystem::path origin = tokenizer_config_json;
  const auto it = config.find("chat_template");
  if (it != config.end() && it->is_string()) {
    source = it->get<std::string>();
  } else if (it != config.end() && it->is_array()) {
    // Named templates (e.g. "default", "tool_use"): transformers takes "default".
    for (const auto& entry : *it)
      if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template"))
        source = entry["template"].get<std::string>();
    if (source.empty())
      throw Error(tokenizer_config_json.string() + ": chat_template lists named templates but none named \"default\"");
  } else if (it != config.end() && !it->is_null()) {
    throw Error(tokenizer_config_json.string() + ": chat_template must be a string or a list of named templates");
  } else {
    // Newer transformers save the template beside the config.
    origin = tokenizer_config_json.parent_path() / "chat_template.jinja";
    if (!std::filesystem::exists(origin)) return std::nullopt;
    source = read_text(origin);
  }
  try {
    return ChatTemplate(source, token_string(config, "bos_token"), token_string(config, "eos_token"));
  } catch (const Error& e) {
    throw Error(origin.string() + ": " + e.what());
  }
}

std::string ChatTemplate::render(const nlohmann::ordered_json& context) const {
  if (!context.is_object()) throw Error("chat template: the context must be a JSON object");
  try {
    return jinja::render(impl_->body, jinja::from_json(context).dict());
  } catch (const std::bad_alloc&) {
    throw Error("chat template: out of memory while rendering");
  } catch (const std::length_error& e) {
    throw Error(std::string("chat template: a string or list grew too long (") + e.what() + ")");
  }
}

std::string ChatTemplate::apply(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                                const nlohmann::json& extra) const {
  nlohmann::ordered_json context;
  context["messages"] = nlohmann::ordered_json::array();
  for (const ChatMessage& m : messages) context["messages"].push_back({{"role", m.role}, {"content", m.content}});
  context["tools"] = nullptr;
  context["documents"] = nullptr;
  context["add_generation_prompt"] = add_generation_prompt;
  // As transformers' special_tokens_map: a token the tokenizer lacks is left undefined.
  if (!impl_->bos_token.empty()) context["bos_token"] = impl_->bos_token;
  if (!impl_->eos_token.empty()) context["eos_token"] = impl_->eos_token;
  if (extra.is_object())
    for (const auto& [key, value] : extra.items()) context[key] = nlohmann::ordered_json::parse(value.dump());
  return render(context);
}

}  // namespace afq
