// afq inspect: what a checkpoint holds, how it is quantized, and its size against bf16.
#include <fmt/core.h>

#include <map>
#include <string>

#include "afq/convert.h"
#include "afq/safetensors.h"
#include "json_file.h"
#include "weight_kinds.h"

namespace afq {

namespace fs = std::filesystem;

namespace {

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) {
    bytes /= 1000;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} {}", bytes, units[u]) : fmt::format("{:.2f} {}", bytes, units[u]);
}

struct Totals {
  size_t count = 0;
  uint64_t params = 0;
  uint64_t bytes = 0;
};

}  // namespace

void print_inspection(const fs::path& path, bool list_tensors) {
  Checkpoint checkpoint = Checkpoint::open(path);
  const fs::path config_path = checkpoint.dir() / "config.json";
  std::optional<QuantConfig> quant;
  if (fs::exists(config_path)) quant = read_quant_config(read_json_file(config_path), config_path.string());

  std::map<std::string, QuantizedModuleInfo> modules;
  for (auto& info : find_quantized_modules(path)) modules.emplace(info.module, info);

  uint64_t total_bytes = 0;
  for (const auto& name : checkpoint.tensor_names()) total_bytes += checkpoint.entry(name).end - checkpoint.entry(name).begin;
  fmt::print("checkpoint: {} ({} file{}, {} tensors, {})\n", path.string(), checkpoint.files().size(),
             checkpoint.files().size() == 1 ? "" : "s", checkpoint.tensor_names().size(), human_bytes(total_bytes));
  if (!quant) {
    fmt::print("quantization: none\n");
  } else {
    size_t overrides = quant->per_module.size();
    fmt::print("quantization: {} layout, affine, {} bits, group size {}", layout_name(quant->layout),
               quant->defaults.bits, quant->defaults.group_size);
    if (overrides) fmt::print(", {} per-module entries", overrides);
    if (!quant->modules_to_not_convert.empty()) {
      fmt::print(", not converted:");
      for (const auto& m : quant->modules_to_not_convert) fmt::print(" {}", m);
    }
    fmt::print("\n");
  }

  // Totals per precision: "4-bit g64" for quantized modules, the dtype for float tensors.
  std::map<std::string, Totals> by_precision;
  uint64_t total_params = 0;
  if (list_tensors) fmt::print("\n{:<56} {:<5} {:<16} {:>12}\n", "tensor", "dtype", "shape", "bytes");
  for (const auto& name : checkpoint.tensor_names()) {
    const TensorEntry& e = checkpoint.entry(name);
    const uint64_t bytes = e.end - e.begin;
    auto it = modules.find(module_of(name));
    std::string note;
    if (it != modules.end()) {
      const QuantizedModuleInfo& info = it->second;
      Totals& t = by_precision[fmt::format("{}-bit g{}", info.settings.bits, info.settings.group_size)];
      t.bytes += bytes;
      if (name.ends_with(".weight")) {
        ++t.count;
        t.params += static_cast<uint64_t>(info.rows * info.cols);
        total_params += static_cast<uint64_t>(info.rows * info.cols);
        note = fmt::format("  {}-bit g{} of [{}, {}]", info.settings.bits, info.settings.group_size, info.rows,
                           info.cols);
      }
    } else {
      Totals& t = by_precision[std::string(dtype_name(e.dtype))];
      ++t.count;
      t.params += static_cast<uint64_t>(shape_numel(e.shape));
      t.bytes += bytes;
      total_params += static_cast<uint64_t>(shape_numel(e.shape));
    }
    if (list_tensors)
      fmt::print("{:<56} {:<5} {:<16} {:>12}{}\n", name, dtype_name(e.dtype), shape_to_string(e.shape), bytes, note);
  }

  fmt::print("\n{:<12} {:>8} {:>16} {:>12} {:>10}\n", "precision", "tensors", "parameters", "size", "bits/param");
  for (const auto& [precision, t] : by_precision)
    fmt::print("{:<12} {:>8} {:>16} {:>12} {:>10.2f}\n", precision, t.count, t.params, human_bytes(t.bytes),
               t.params ? 8.0 * t.bytes / t.params : 0.0);
  const double bf16_bytes = 2.0 * total_params;
  fmt::print("total: {} parameters, {}; the same model in bf16: {} ({:.2f}x, {:.2f} bits per parameter)\n",
             total_params, human_bytes(total_bytes), human_bytes(bf16_bytes),
             bf16_bytes ? total_bytes / bf16_bytes : 0.0, total_params ? 8.0 * total_bytes / total_params : 0.0);
}

}  // namespace afq
