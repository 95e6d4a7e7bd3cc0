// How a checkpoint is quantized, as its config.json says: mlx-lm's "quantization" dict (defaults
// plus per-module overrides, or false for a module left in float) or transformers' MetalConfig
// "quantization_config" ({"quant_method": "metal", "bits", "group_size", "modules_to_not_convert"}).
#pragma once

#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace afq {

enum class CheckpointLayout {
  Mlx,           // third tensor "<module>.biases"; config "quantization" (+ identical "quantization_config")
  Transformers,  // third tensor "<module>.qbiases"; config "quantization_config" with quant_method "metal"
};

std::optional<CheckpointLayout> parse_layout(std::string_view name);  // "mlx" | "transformers"
std::string_view layout_name(CheckpointLayout layout);

struct ModuleQuant {
  int bits = 4;
  int group_size = 64;
  bool operator==(const ModuleQuant&) const = default;
};

struct QuantConfig {
  CheckpointLayout layout = CheckpointLayout::Mlx;
  ModuleQuant defaults;
  // mlx-lm per-module entries keyed by module path ("model.layers.0.mlp.down_proj"); nullopt is
  // `false` (left in float).
  std::map<std::string, std::optional<ModuleQuant>> per_module;
  // transformers: modules kept in float (exact names or patterns, see module_matches).
  std::vector<std::string> modules_to_not_convert;

  // "biases" or "qbiases".
  std::string_view biases_suffix() const { return layout == CheckpointLayout::Mlx ? "biases" : "qbiases"; }

  // The settings of a module that the checkpoint stores quantized (per-module entry, else the
  // defaults); nullopt when the config says it stays float. Whether a module *is* quantized in a
  // checkpoint is decided by the presence of its scales tensor; this gives its bits and group size.
  std::optional<ModuleQuant> for_module(std::string_view module) const;
};

// Reads the quantization settings of a parsed config.json; nullopt when it has none. Throws
// afq::Error naming `source` and the field on malformed or unsupported settings (another
// quant_method, an mlx "mode" other than "affine", unsupported bits or group size).
std::optional<QuantConfig> read_quant_config(const nlohmann::json& config, const std::string& source);

// Writes the settings into config.json's object as mlx-lm or transformers write them.
void write_quant_config(const QuantConfig& quant, nlohmann::json& config);

// True when `module` ("model.layers.0.self_attn.q_proj") is named by `pattern`: the exact path,
// a trailing part of it on a dot boundary ("lm_head", "self_attn.q_proj"), or a glob with '*'.
bool module_matches(std::string_view module, std::string_view pattern);
bool module_matches_any(std::string_view module, const std::vector<std::string>& patterns);

}  // namespace afq
