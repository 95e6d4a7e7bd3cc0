// Chat templates rendered as transformers renders them: every case of tests/data/chat/cases.json
// (made by scripts/make_chat_template_fixtures.py with jinja2 3.1.6) must give jinja2's text, or
// fail where jinja2 fails with a one-line afq::Error at jinja2's template line. "models" are the
// real Llama 3 and Qwen3 templates through ChatTemplate::apply; "features" one Jinja feature each.
#include "afq/chat_template.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "afq/error.h"

namespace afq {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

const ordered_json& cases() {
  static const ordered_json all = [] {
    std::ifstream in(AFQ_TEST_DATA "/chat/cases.json");
    std::stringstream text;
    text << in.rdbuf();
    return ordered_json::parse(text.str());
  }();
  return all;
}

struct Case {
  std::string section;  // "models" or "features"
  size_t index;
};

void PrintTo(const Case& c, std::ostream* os) { *os << cases()[c.section][c.index]["name"].get<std::string>(); }

std::vector<Case> cases_of(const std::string& section) {
  std::vector<Case> out;
  for (size_t i = 0; i < cases()[section].size(); ++i) out.push_back({section, i});
  return out;
}

// A test name from a case name: "error: str + int" -> "error_str_int".
std::string test_name(const ::testing::TestParamInfo<Case>& info) {
  std::string name;
  for (char c : cases()[info.param.section][info.param.index]["name"].get<std::string>()) {
    if (std::isalnum(static_cast<unsigned char>(c)))
      name += c;
    else if (!name.empty() && name.back() != '_')
      name += '_';
  }
  while (!name.empty() && name.back() == '_') name.pop_back();
  return name + "_" + std::to_string(info.param.index);
}

// The case's expected text, or that rendering throws the one-line error jinja2's case describes.
void check(const ordered_json& c, const std::function<std::string()>& render) {
  if (c.contains("expected")) {
    EXPECT_EQ(render(), c["expected"].get<std::string>());
    return;
  }
  SCOPED_TRACE("jinja2: " + c["error"].get<std::string>());
  try {
    const std::string got = render();
    ADD_FAILURE() << "rendered instead of failing: " << got;
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    if (c.contains("error_line")) {
      const std::string line = "chat template " + std::to_string(c["error_line"].get<int>()) + ":";
      EXPECT_EQ(message.rfind(line, 0), 0u) << message;
    }
    if (c.contains("error_contains")) {
      EXPECT_NE(message.find(c["error_contains"].get<std::string>()), std::string::npos) << message;
    }
  }
}

class RealTemplates : public ::testing::TestWithParam<Case> {};

TEST_P(RealTemplates, RenderAsTransformers) {
  const ordered_json& c = cases()["models"][GetParam().index];
  SCOPED_TRACE(c["name"].get<std::string>());
  std::optional<ChatTemplate> t =
      ChatTemplate::from_tokenizer_config(AFQ_TEST_DATA "/chat/" + c["config"].get<std::string>());
  ASSERT_TRUE(t.has_value());
  std::vector<ChatMessage> messages;
  bool plain = true;  // only role and content: what apply() takes
  for (const auto& m : c["messages"]) {
    messages.push_back({m["role"], m.value("content", "")});
    plain = plain && m.size() == 2 && m.contains("content") && m["content"].is_string();
  }
  const nlohmann::json extra = nlohmann::json::parse(c["extra"].dump());
  check(c, [&] {
    if (plain) return t->apply(messages, c["add_generation_prompt"], extra);
    // Tool calls and reasoning_content: the same context as apply's, with the messages as given.
    ordered_json context = {{"messages", c["messages"]},
                            {"tools", nullptr},
                            {"documents", nullptr},
                            {"add_generation_prompt", c["add_generation_prompt"]}};
    if (!t->bos_token().empty()) context["bos_token"] = t->bos_token();
    if (!t->eos_token().empty()) context["eos_token"] = t->eos_token();
    for (const auto& [k, v] : c["extra"].items()) context[k] = v;
    return t->render(context);
  });
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, RealTemplates, ::testing::ValuesIn(cases_of("models")), test_name);

class Features : public ::testing::TestWithParam<Case> {};

TEST_P(Features, RenderAsJinja2) {
  const ordered_json& c = cases()["features"][GetParam().index];
  SCOPED_TRACE(c["name"].get<std::string>() + "\ntemplate: " + c["template"].get<std::string>());
  check(c, [&] { return ChatTemplate(c["template"], "", "").render(c["context"]); });
}

INSTANTIATE_TEST_SUITE_P(ChatTemplate, Features, ::testing::ValuesIn(cases_of("features")), test_name);

TEST(ChatTemplate, FixturesAreThere) {
  EXPECT_EQ(cases()["models"].size(), 20u);
  EXPECT_GE(cases()["features"].size(), 120u);
}

// ---- what jinja2 cannot tell: afq's own messages, files and API ----

std::string error_of(const std::string& source, const ordered_json& context = ordered_json::object()) {
  try {
    ChatTemplate(source, "", "").render(context);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ChatTemplate, ErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("ok\n  {{ 1 + 'a' }}"), "chat template 2:8: unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(error_of("{% if x %}\n{% for %}"), "chat template 2:8: cannot assign to end of statement block");
  EXPECT_EQ(error_of("{{ 'é' ~ x.y }}"), "chat template 1:11: 'x' is undefined");
  EXPECT_EQ(error_of("{% filter nope %}x{% endfilter %}"), "chat template 1:11: no filter named 'nope'");
  EXPECT_EQ(error_of("{{ 'a' | truncate(2) }}"),
            "chat template 1:10: the filter 'truncate' is not supported by afq's chat templates");
  EXPECT_EQ(error_of("{% include 'x' %}"),
            "chat template 1:4: 'include' tags are not supported by afq's chat templates");
}

TEST(ChatTemplate, IntegersAre64BitAndSayWhenTheyOverflow) {
  EXPECT_EQ(error_of("{{ 2 ** 62 * 2 }}"),
            "chat template 1:12: integer overflow: afq's chat templates compute with 64-bit integers");
  EXPECT_EQ(error_of("{{ 99999999999999999999 }}"),
            "chat template 1:4: integer 99999999999999999999 does not fit in 64 bits");
  EXPECT_EQ(ChatTemplate("{{ 2 ** 62 }} {{ -9223372036854775807 - 1 }}", "", "").render(ordered_json::object()),
            "4611686018427387904 -9223372036854775808");
}

TEST(ChatTemplate, DeepNestingIsAnErrorNotACrash) {
  EXPECT_EQ(error_of("{{ " + std::string(300, '(') + "1" + std::string(300, ')') + " }}"),
            "chat template 1:260: the template nests more than 256 levels deep");
  std::string blocks;
  for (int i = 0; i < 300; ++i) blocks += "{% if true %}";
  EXPECT_EQ(error_of(blocks), "chat template 1:3322: the template nests more than 256 levels deep");
}

TEST(ChatTemplate, ReferenceCyclesDoNotOutliveTheRender) {
  // Under the asan preset, LeakSanitizer checks that these free everything.
  ChatTemplate t("{% set ns = namespace() %}{% set ns.self = ns %}{% macro m() %}{{ ns.self is defined }}{% endmacro %}"
                 "{% set ns.m = m %}{{ ns.m() }}",
                 "", "");
  EXPECT_EQ(t.render(ordered_json::object()), "True");
}

TEST(ChatTemplate, RaiseExceptionGivesOneLine) {
  EXPECT_EQ(error_of("\n\n   {{ raise_exception('two\\nlines') }}"), "chat template 3:7: two lines");
}

TEST(ChatTemplate, ApplyLeavesAbsentSpecialTokensUndefined) {
  ChatTemplate t(
      "{{ bos_token is defined }} {{ eos_token }} {{ messages | length }} {{ add_generation_prompt }}"
      " {{ tools is none }} {{ enable_thinking }}",
      "", "</s>");
  EXPECT_EQ(t.apply({{"user", "hi"}}, true, {{"enable_thinking", false}}), "False </s> 1 True True False");
}

class TokenizerConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("afq-chat-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return dir_ / name;
  }
  fs::path dir_;
};

TEST_F(TokenizerConfig, NoTemplateIsNullopt) {
  EXPECT_FALSE(ChatTemplate::from_tokenizer_config(AFQ_SOURCE_DIR "/models/tinyshakes-5m/tokenizer_config.json"));
}

TEST_F(TokenizerConfig, TakesTheDefaultOfNamedTemplatesAndAddedTokenObjects) {
  fs::path config = write("tokenizer_config.json",
                          R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": null,
                              "chat_template": [{"name": "tool_use", "template": "T"},
                                                {"name": "default", "template": "{{ bos_token }}D"}]})");
  auto t = ChatTemplate::from_tokenizer_config(config);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->apply({}, false), "<s>D");
}

TEST_F(TokenizerConfig, ReadsChatTemplateJinjaBesideIt) {
  fs::path config = write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  write("chat_template.jinja", "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}\n");
  auto t = ChatTemplate::from_tokenizer_config(config);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->apply({{"user", "a"}, {"assistant", "b"}}, false), "a</s>b</s>");
}

TEST_F(TokenizerConfig, SyntaxErrorNamesTheFile) {
  fs::path config = write("tokenizer_config.json", R"({"chat_template": "{% if %}"})");
  try {
    ChatTemplate::from_tokenizer_config(config);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              config.string() + ": chat template 1:7: expected an expression, got end of statement block");
  }
}

}  // namespace
}  // namespace afq
