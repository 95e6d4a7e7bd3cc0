// afq quantize: float checkpoint -> quantized checkpoint in mlx-lm's or transformers' layout.
#include <optional>
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

namespace {

// One step of the write plan: a tensor copied as it is, or a weight quantized into three.
struct PlanStep {
  std::string source;  // input tensor name
  bool quantize = false;
};

bool should_quantize(const std::string& name, const TensorEntry& entry, const QuantizeOptions& options) {
  if (!is_float(entry.dtype)) return false;
  WeightKind kind = classify_weight(name, entry.shape);
  bool wanted = kind == WeightKind::Linear ||
                (options.quantize_embeddings && (kind == WeightKind::Embedding || kind == WeightKind::OutputHead));
  return wanted && !module_matches_any(module_of(name), options.exclude);
}

void check_options(const QuantizeOptions& options) {
  check_bits(options.bits);
  check_group_size(options.group_size);
  if (options.layout == CheckpointLayout::Transformers) {
    if (options.bits != 2 && options.bits != 4 && options.bits != 8)
      throw Error("--layout transformers: MetalConfig accepts bits 2, 4 and 8, not " + std::to_string(options.bits) +
                  " (use --layout mlx for 3, 5 or 6 bits)");
    if (options.quantize_embeddings)
      throw Error("--quantize-embeddings needs --layout mlx: transformers' MetalConfig quantizes only nn.Linear "
                  "modules and would not load a quantized embedding");
  }
}

}  // namespace

ConversionSummary quantize_checkpoint(const fs::path& in, const fs::path& out, const QuantizeOptions& options) {
  check_options(options);
  Checkpoint checkpoint = Checkpoint::open(in);
  const fs::path config_path = checkpoint.dir() / "config.json";
  if (!fs::exists(config_path)) throw Error(config_path.string() + ": missing (a Hugging Face checkpoint needs it)");
  nlohmann::json config = read_json_file(config_path);
  if (read_quant_config(config, config_path.string()))
    throw Error(config_path.string() + ": the checkpoint is already quantized (use afq dequantize first)");

  // Plan every output tensor before writing, so the writer knows the headers up front.
  std::vector<PlanStep> steps;
  std::vector<TensorSpec> specs;
  uint64_t total_parameters = 0;
  ConversionSummary summary;
  const std::string biases_suffix = options.layout == CheckpointLayout::Mlx ? "biases" : "qbiases";
  for (const std::string& name : checkpoint.tensor_names()) {
    const TensorEntry& entry = checkpoint.entry(name);
    total_parameters += static_cast<uint64_t>(shape_numel(entry.shape));
    if (!should_quantize(name, entry, options)) {
      steps.push_back({name, false});
      specs.push_back({name, entry.dtype, entry.shape});
      continue;
    }
    const int64_t rows = entry.shape[0], cols = entry.shape[1];
    const std::string module = module_of(name);
    if (cols % options.group_size != 0)
      throw Error(checkpoint.file_of(name).path().string() + ": tensor " + name + " has " + std::to_string(cols) +
                  " columns, not a multiple of the group size " + std::to_string(options.group_size) +
                  " (keep it in float with --exclude " + module + ")");
    DType scale_dtype = entry.dtype == DType::F64 ? DType::F32 : entry.dtype;
    steps.push_back({name, true});
    specs.push_back({module + ".weight", DType::U32, {rows, cols * options.bits / 32}});
    specs.push_back({module + ".scales", scale_dtype, {rows, cols / options.group_size}});
    specs.push_back({module + "." + biases_suffix, scale_dtype, {rows, cols / options.group_size}});
    ++summary.modules_quantized;
  }
  if (summary.modules_quantized == 0)
    throw Error(in.string() + ": no linear layer to quantize (every 2-D weight was excluded or is not a linear layer)");

  QuantConfig quant;
  quant.layout = options.layout;
  quant.defaults = {options.bits, options.group_size};
  if (options.layout == CheckpointLayout::Transformers) {
    quant.modules_to_not_convert = {"lm_head"};
    for (const auto& pattern : options.exclude)
      if (pattern != "lm_head") quant.modules_to_not_convert.push_back(pattern);
  }

  StagingDir staging(out);
  WriteOptions write_options;
  write_options.max_shard_bytes = options.max_shard_bytes;
  write_options.metadata = {{"format", options.layout == CheckpointLayout::Mlx ? "mlx" : "pt"}};
  write_options.always_write_index = options.layout == CheckpointLayout::Mlx;
  write_options.index_metadata = {{"total_parameters", total_parameters}};
  CheckpointWriter writer(staging.path(), specs, write_options);

  size_t done = 0;
  for (const PlanStep& step : steps) {
    Tensor tensor = checkpoint.tensor(step.source);
    summary.bytes_in += tensor.nbytes();
    if (!step.quantize) {
      writer.write(step.source, tensor);
      summary.bytes_out += tensor.nbytes();
    } else {
      if (tensor.dtype() == DType::F64) tensor = to_dtype(tensor, DType::F32);
      QuantizedWeight q;
      try {
        q = quantize(tensor, options.bits, options.group_size, options.method);
      } catch (const Error& e) {
        throw Error(checkpoint.file_of(step.source).path().string() + ": tensor " + step.source + ": " + e.what());
      }
      const std::string module = module_of(step.source);
      writer.write(module + ".weight", q.weight);
      writer.write(module + ".scales", q.scales);
      writer.write(module + "." + biases_suffix, q.biases);
      summary.bytes_out += q.weight.nbytes() + q.scales.nbytes() + q.biases.nbytes();
    }
    ++summary.tensors_written;
    if (options.progress) options.progress(++done, steps.size(), step.source);
  }
  writer.finish();

  write_quant_config(quant, config);
  write_json_file(staging.path() / "config.json", config, options.layout == CheckpointLayout::Mlx ? 4 : 2);
  copy_side_files(checkpoint.dir(), staging.path());
  staging.commit();
  return summary;
}

}  // namespace afq
