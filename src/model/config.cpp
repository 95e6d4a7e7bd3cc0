// config.json of the Llama family, as transformers 4.x and 5.x write it.
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "afq/error.h"
#include "afq/model.h"

namespace afq {

namespace {

using nlohmann::json;

const char* kArchitectures[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM"};

template <class T>
T get_or(const json& j, const char* key, T fallback) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? fallback : it->get<T>();
}

std::vector<int32_t> ids_of(const json& value) {
  if (value.is_null()) return {};
  if (value.is_number_integer()) return {value.get<int32_t>()};
  return value.get<std::vector<int32_t>>();
}

}  // namespace

ModelConfig read_model_config(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw Error(path.string() + ": cannot open (a model directory needs config.json)");
  std::stringstream text;
  text << in.rdbuf();
  json c;
  try {
    c = json::parse(text.str());
  } catch (const json::parse_error& e) {
    throw Error(path.string() + ": invalid JSON");
  }
  const std::string where = path.string() + ": ";
  ModelConfig m;
  try {
    auto archs = c.value("architectures", json::array());
    if (archs.empty()) throw Error(where + "no \"architectures\" entry");
    m.architecture = archs.at(0).get<std::string>();
    bool supported = false;
    for (const char* a : kArchitectures) supported |= m.architecture == a;
    if (!supported)
      throw Error(where + "architecture " + m.architecture +
                  " is not supported (afq runs LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)");
    const std::string act = get_or<std::string>(c, "hidden_act", "silu");
    if (act != "silu") throw Error(where + "hidden_act \"" + act + "\" is not supported (silu only)");

    m.hidden_size = c.at("hidden_size").get<int>();
    m.intermediate_size = c.at("intermediate_size").get<int>();
    m.num_layers = c.at("num_hidden_layers").get<int>();
    m.num_heads = c.at("num_attention_heads").get<int>();
    m.num_kv_heads = get_or<int>(c, "num_key_value_heads", m.num_heads);
    m.head_dim = get_or<int>(c, "head_dim", m.hidden_size / m.num_heads);
    m.vocab_size = c.at("vocab_size").get<int>();
    m.max_position_embeddings = get_or<int>(c, "max_position_embeddings", 4096);
    m.rms_norm_eps = get_or<float>(c, "rms_norm_eps", 1e-6f);
    m.tie_word_embeddings = get_or<bool>(c, "tie_word_embeddings", false);
    m.mlp_bias = get_or<bool>(c, "mlp_bias", false);
    m.attention_bias = get_or<bool>(c, "attention_bias", m.architecture == "Qwen2ForCausalLM");
    m.qk_norm = m.architecture == "Qwen3ForCausalLM";
    // Sliding windows: Mistral applies its window to every layer; Qwen2/3 only with use_sliding_window.
    if (m.architecture == "MistralForCausalLM" ||
        (m.architecture != "LlamaForCausalLM" && get_or<bool>(c, "use_sliding_window", false)))
      m.sliding_window = get_or<int>(c, "sliding_window", 0);
    if (m.num_heads <= 0 || m.num_kv_heads <= 0 || m.num_heads % m.num_kv_heads != 0)
      throw Error(where + "num_attention_heads must be a multiple of num_key_value_heads");
    if (m.head_dim % 2 != 0) throw Error(where + "head_dim must be even for RoPE");

    // RoPE: transformers 5 nests everything in rope_parameters; 4.x has rope_theta + rope_scaling.
    json rope = c.contains("rope_parameters") && c["rope_parameters"].is_object() ? c["rope_parameters"]
                : c.contains("rope_scaling") && c["rope_scaling"].is_object() ? c["rope_scaling"]
                                                                               : json::object();
    m.rope_theta = get_or<float>(rope, "rope_theta", get_or<float>(c, "rope_theta", 10000.0f));
    std::string type = get_or<std::string>(rope, "rope_type", get_or<std::string>(rope, "type", "default"));
    if (type == "default") {
      m.rope_scaling.type = RopeScaling::Type::None;
    } else if (type == "linear") {
      m.rope_scaling.type = RopeScaling::Type::Linear;
      m.rope_scaling.factor = rope.at("factor").get<float>();
    } else if (type == "llama3") {
      m.rope_scaling.type = RopeScaling::Type::Llama3;
      m.rope_scaling.factor = rope.at("factor").get<float>();
      m.rope_scaling.low_freq_factor = get_or<float>(rope, "low_freq_factor", 1.0f);
      m.rope_scaling.high_freq_factor = get_or<float>(rope, "high_freq_factor", 4.0f);
      m.rope_scaling.original_max_position_embeddings = get_or<int>(rope, "original_max_position_embeddings", 8192);
    } else {
      throw Error(where + "rope type \"" + type + "\" is not supported (default, linear, llama3)");
    }
    m.eos_token_ids = ids_of(c.value("eos_token_id", json()));
    if (auto bos = c.find("bos_token_id"); bos != c.end() && bos->is_number_integer()) m.bos_token_id = bos->get<int32_t>();
  } catch (const json::exception& e) {
    std::string what = e.what();
    if (auto p = what.find("] "); p != std::string::npos) what = what.substr(p + 2);
    throw Error(where + what);
  }
  return m;
}

}  // namespace afq
