// Finding the quantized modules of a checkpoint: a module is quantized exactly when its scales
// tensor is present (mlx-lm's rule); its bits and group size come from config.json.
#include <string>
#include <vector>

#include "afq/convert.h"
#include "afq/error.h"
#include "afq/safetensors.h"
#include "json_file.h"
#include "weight_kinds.h"

namespace afq {

namespace fs = std::filesystem;

std::vector<QuantizedModuleInfo> find_quantized_modules(const fs::path& path) {
  Checkpoint checkpoint = Checkpoint::open(path);
  const fs::path config_path = checkpoint.dir() / "config.json";
  std::optional<QuantConfig> quant;
  if (fs::exists(config_path)) quant = read_quant_config(read_json_file(config_path), config_path.string());

  std::vector<QuantizedModuleInfo> modules;
  for (const std::string& name : checkpoint.tensor_names()) {
    if (!name.ends_with(".scales")) continue;
    const std::string module = module_of(name);
    const std::string where = checkpoint.file_of(name).path().string() + ": module " + module;
    if (!quant) throw Error(where + " is quantized but " + config_path.string() + " has no quantization settings");
    std::string biases = module + "." + std::string(quant->biases_suffix());
    if (!checkpoint.contains(biases)) {
      // Tolerate the other layout's name: the tensors are the same.
      std::string other = module + (quant->layout == CheckpointLayout::Mlx ? ".qbiases" : ".biases");
      if (!checkpoint.contains(other)) throw Error(where + " has scales but no " + biases);
      biases = other;
    }
    const std::string weight = module + ".weight";
    if (!checkpoint.contains(weight)) throw Error(where + " has scales but no " + weight);
    const TensorEntry& w = checkpoint.entry(weight);
    const TensorEntry& s = checkpoint.entry(name);
    const TensorEntry& b = checkpoint.entry(biases);
    std::optional<ModuleQuant> settings = quant->for_module(module);
    if (!settings) throw Error(where + " is quantized but config.json says it stays in float");
    if (w.dtype != DType::U32 && w.dtype != DType::I32)
      throw Error(where + ": weight dtype is " + std::string(dtype_name(w.dtype)) + ", expected U32");
    if (w.shape.size() != 2 || s.shape.size() != 2 || s.shape != b.shape || w.shape[0] != s.shape[0])
      throw Error(where + ": shapes weight " + shape_to_string(w.shape) + ", scales " + shape_to_string(s.shape) +
                  ", biases " + shape_to_string(b.shape) + " do not fit together");
    if (!is_float(s.dtype) || s.dtype != b.dtype)
      throw Error(where + ": scales and biases must share a float dtype");
    QuantizedModuleInfo info;
    info.module = module;
    info.settings = *settings;
    info.scales_dtype = s.dtype;
    info.rows = w.shape[0];
    info.cols = s.shape[1] * settings->group_size;
    if (w.shape[1] * 32 != info.cols * settings->bits)
      throw Error(where + ": weight " + shape_to_string(w.shape) + " and scales " + shape_to_string(s.shape) +
                  " do not fit bits " + std::to_string(settings->bits) + ", group size " +
                  std::to_string(settings->group_size));
    modules.push_back(std::move(info));
  }
  return modules;
}

}  // namespace afq
