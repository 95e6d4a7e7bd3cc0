// afq dequantize: a quantized checkpoint (either layout) -> a plain float checkpoint.
#include <map>
#include <string>
#include <vector>

#include "afq/convert.h"
#include "afq/error.h"
#include "afq/safetensors.h"
#include "json_file.h"
#include "side_files.h"
#include "staging_dir.h"
#include "weight_kinds.h"

namespace afq {

namespace fs = std::filesystem;

ConversionSummary dequantize_checkpoint(const fs::path& in, const fs::path& out, const DequantizeOptions& options) {
  if (options.dtype && *options.dtype != DType::F32 && *options.dtype != DType::F16 && *options.dtype != DType::BF16)
    throw Error("--dtype must be bf16, f16 or f32");
  Checkpoint checkpoint = Checkpoint::open(in);
  const fs::path config_path = checkpoint.dir() / "config.json";
  if (!fs::exists(config_path)) throw Error(config_path.string() + ": missing (a Hugging Face checkpoint needs it)");
  nlohmann::json config = read_json_file(config_path);
  if (!read_quant_config(config, config_path.string()))
    throw Error(config_path.string() + ": the checkpoint is not quantized (no quantization settings)");

  std::map<std::string, QuantizedModuleInfo> modules;
  for (auto& info : find_quantized_modules(in)) modules.emplace(info.module, info);

  // The plan: a quantized module's three tensors become one float weight, at the weight's place.
  std::vector<TensorSpec> specs;
  std::vector<std::string> sources;
  for (const std::string& name : checkpoint.tensor_names()) {
    auto it = modules.find(module_of(name));
    if (it == modules.end()) {
      specs.push_back({name, checkpoint.entry(name).dtype, checkpoint.entry(name).shape});
      sources.push_back(name);
    } else if (name.ends_with(".weight")) {
      const QuantizedModuleInfo& info = it->second;
      specs.push_back({name, options.dtype.value_or(info.scales_dtype), {info.rows, info.cols}});
      sources.push_back(name);
    }  // scales and biases fold into the weight
  }

  StagingDir staging(out);
  WriteOptions write_options;
  write_options.max_shard_bytes = options.max_shard_bytes;
  write_options.metadata = {{"format", "pt"}};
  write_options.always_write_index = false;  // as transformers' save_pretrained: an index only for shards
  CheckpointWriter writer(staging.path(), specs, write_options);

  ConversionSummary summary;
  for (size_t i = 0; i < sources.size(); ++i) {
    const std::string& name = sources[i];
    auto it = modules.find(module_of(name));
    Tensor tensor;
    if (it == modules.end()) {
      tensor = checkpoint.tensor(name);
      summary.bytes_in += tensor.nbytes();
    } else {
      const QuantizedModuleInfo& info = it->second;
      const std::string biases_name =
          checkpoint.contains(info.module + ".biases") ? info.module + ".biases" : info.module + ".qbiases";
      QuantizedWeight q{checkpoint.tensor(name), checkpoint.tensor(info.module + ".scales"),
                        checkpoint.tensor(biases_name), info.settings.bits, info.settings.group_size};
      if (q.weight.dtype() == DType::I32) q.weight = Tensor::borrow(DType::U32, q.weight.shape(), q.weight.bytes(), nullptr);
      summary.bytes_in += q.weight.nbytes() + q.scales.nbytes() + q.biases.nbytes();
      tensor = dequantize(q, specs[i].dtype);
      ++summary.modules_quantized;
    }
    writer.write(name, tensor);
    summary.bytes_out += tensor.nbytes();
    ++summary.tensors_written;
    if (options.progress) options.progress(i + 1, sources.size(), name);
  }
  writer.finish();

  config.erase("quantization");
  config.erase("quantization_config");
  write_json_file(staging.path() / "config.json", config, 2);
  copy_side_files(checkpoint.dir(), staging.path());
  staging.commit();
  return summary;
}

}  // namespace afq
