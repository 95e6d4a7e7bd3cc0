#include "afq/quant_config.h"

#include <nlohmann/json.hpp>

#include "afq/error.h"
#include "afq/quant.h"

namespace afq {
namespace {

using nlohmann::json;

int read_int(const json& obj, const char* key, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) throw Error(where + ": missing \"" + key + "\"");
  if (!it->is_number_integer()) throw Error(where + ": \"" + key + "\" must be an integer, got " + it->dump());
  return it->get<int>();
}

ModuleQuant read_module_quant(const json& obj, const ModuleQuant& fallback, const std::string& where) {
  ModuleQuant q = fallback;
  if (obj.contains("bits")) q.bits = read_int(obj, "bits", where);
  if (obj.contains("group_size")) q.group_size = read_int(obj, "group_size", where);
  if (auto mode = obj.find("mode"); mode != obj.end() && *mode != "affine")
    throw Error(where + ": quantization mode " + mode->dump() +
                " is another format (afq reads mode \"affine\" only: mxfp4, nvfp4 and mxfp8 are not affine)");
  try {
    check_bits(q.bits);
    check_group_size(q.group_size);
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  return q;
}

QuantConfig read_mlx(const json& dict, const std::string& where) {
  QuantConfig config;
  config.layout = CheckpointLayout::Mlx;
  config.defaults = read_module_quant(dict, ModuleQuant{}, where);
  for (const auto& [key, value] : dict.items()) {
    if (key == "bits" || key == "group_size" || key == "mode") continue;
    if (value.is_boolean()) {
      // `false` keeps the module in float; `true` means the defaults.
      config.per_module[key] = value.get<bool>() ? std::optional<ModuleQuant>(config.defaults) : std::nullopt;
    } else if (value.is_object()) {
      config.per_module[key] = read_module_quant(value, config.defaults, where + "[\"" + key + "\"]");
    } else {
      throw Error(where + "[\"" + key + "\"]: expected an object or a boolean, got " + value.dump());
    }
  }
  return config;
}

}  // namespace

std::optional<CheckpointLayout> parse_layout(std::string_view name) {
  if (name == "mlx") return CheckpointLayout::Mlx;
  if (name == "transformers") return CheckpointLayout::Transformers;
  return std::nullopt;
}

std::string_view layout_name(CheckpointLayout layout) {
  return layout == CheckpointLayout::Mlx ? "mlx" : "transformers";
}

std::optional<ModuleQuant> QuantConfig::for_module(std::string_view module) const {
  if (auto it = per_module.find(std::string(module)); it != per_module.end()) return it->second;
  if (module_matches_any(module, modules_to_not_convert)) return std::nullopt;
  return defaults;
}

std::optional<QuantConfig> read_quant_config(const json& config, const std::string& source) {
  if (!config.is_object()) throw Error(source + ": config is not a JSON object");
  // mlx-lm writes "quantization" (and the same under "quantization_config").
  if (auto it = config.find("quantization"); it != config.end() && !it->is_null()) {
    if (!it->is_object()) throw Error(source + ": \"quantization\" must be an object");
    return read_mlx(*it, source + ": quantization");
  }
  auto it = config.find("quantization_config");
  if (it == config.end() || it->is_null()) return std::nullopt;
  const json& qc = *it;
  const std::string where = source + ": quantization_config";
  if (!qc.is_object()) throw Error(where + " must be an object");
  auto method = qc.find("quant_method");
  if (method == qc.end()) return read_mlx(qc, where);  // mlx-lm's copy without "quantization"
  if (!method->is_string() || method->get<std::string>() != "metal")
    throw Error(where + ": quant_method " + method->dump() +
                " is not supported (afq reads \"metal\" and mlx-lm's \"quantization\")");
  QuantConfig metal;
  metal.layout = CheckpointLayout::Transformers;
  metal.defaults = read_module_quant(qc, ModuleQuant{}, where);
  if (auto skip = qc.find("modules_to_not_convert"); skip != qc.end() && !skip->is_null()) {
    if (!skip->is_array()) throw Error(where + ": modules_to_not_convert must be a list of names");
    for (const auto& name : *skip) {
      if (!name.is_string()) throw Error(where + ": modules_to_not_convert holds " + name.dump() + ", not a name");
      metal.modules_to_not_convert.push_back(name.get<std::string>());
    }
  }
  return metal;
}

void write_quant_config(const QuantConfig& quant, json& config) {
  if (quant.layout == CheckpointLayout::Mlx) {
    json dict = {{"group_size", quant.defaults.group_size}, {"bits", quant.defaults.bits}, {"mode", "affine"}};
    for (const auto& [module, settings] : quant.per_module) {
      if (settings)
        dict[module] = {{"group_size", settings->group_size}, {"bits", settings->bits}, {"mode", "affine"}};
      else
        dict[module] = false;
    }
    config["quantization"] = dict;
    config["quantization_config"] = dict;
  } else {
    config["quantization_config"] = {
        {"quant_method", "metal"},
        {"bits", quant.defaults.bits},
        {"group_size", quant.defaults.group_size},
        {"modules_to_not_convert", quant.modules_to_not_convert},
    };
  }
}

bool module_matches(std::string_view module, std::string_view pattern) {
  if (pattern.empty()) return false;
  if (pattern.find('*') != std::string_view::npos) {
    // Glob: '*' matches any run of characters (dots included).
    size_t m = 0, p = 0, star = std::string_view::npos, mark = 0;
    while (m < module.size()) {
      if (p < pattern.size() && pattern[p] == '*') {
        star = p++;
        mark = m;
      } else if (p < pattern.size() && pattern[p] == module[m]) {
        ++p;
        ++m;
      } else if (star != std::string_view::npos) {
        p = star + 1;
        m = ++mark;
      } else {
        return false;
      }
    }
    while (p < pattern.size() && pattern[p] == '*') ++p;
    return p == pattern.size();
  }
  if (module == pattern) return true;
  // A trailing part on a dot boundary: "lm_head", "self_attn.q_proj".
  return module.size() > pattern.size() && module.ends_with(pattern) &&
         module[module.size() - pattern.size() - 1] == '.';
}

bool module_matches_any(std::string_view module, const std::vector<std::string>& patterns) {
  for (const auto& p : patterns)
    if (module_matches(module, p)) return true;
  return false;
}

}  // namespace afq
