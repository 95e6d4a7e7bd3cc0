// Checkpoint conversion: float Hugging Face checkpoint -> quantized (mlx-lm or transformers
// layout), quantized (either layout) -> float, and a summary of what a checkpoint holds.
// Conversions stream tensor by tensor from the memory-mapped input, and write into a staging
// directory that is renamed to the output only when everything is written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "afq/dtype.h"
#include "afq/quant.h"
#include "afq/quant_config.h"

namespace afq {

// Called after each tensor: (tensors done, tensors in all, name of the last one).
using ProgressFn = std::function<void(size_t done, size_t total, const std::string& name)>;

struct QuantizeOptions {
  int bits = 4;
  int group_size = 64;
  QuantMethod method = QuantMethod::Mlx;
  CheckpointLayout layout = CheckpointLayout::Mlx;
  std::vector<std::string> exclude;  // modules kept in float: exact paths, trailing parts or globs
  bool quantize_embeddings = false;  // also the input embedding and lm_head (mlx layout only)
  uint64_t max_shard_bytes = 5ull << 30;
  ProgressFn progress;
};

struct ConversionSummary {
  size_t tensors_written = 0;
  size_t modules_quantized = 0;
  uint64_t bytes_in = 0;   // tensor bytes read
  uint64_t bytes_out = 0;  // tensor bytes written
};

// Quantizes every linear layer's 2-D weight (not excluded, not lm_head unless
// quantize_embeddings) of the float checkpoint `in` into a new directory `out`, which must not
// exist. config.json gets the layout's quantization settings; other files (tokenizer,
// generation_config.json, ...) are copied along.
ConversionSummary quantize_checkpoint(const std::filesystem::path& in, const std::filesystem::path& out,
                                      const QuantizeOptions& options);

struct DequantizeOptions {
  std::optional<DType> dtype;  // default: the dtype of each module's scales
  uint64_t max_shard_bytes = 5ull << 30;
  ProgressFn progress;
};

// Turns every quantized module of `in` (either layout) back into a float `<module>.weight` and
// drops the quantization settings from config.json, so that transformers loads `out` as an
// ordinary model.
ConversionSummary dequantize_checkpoint(const std::filesystem::path& in, const std::filesystem::path& out,
                                        const DequantizeOptions& options);

// One quantized module found in a checkpoint: <module>.weight (U32), .scales and .biases/.qbiases.
struct QuantizedModuleInfo {
  std::string module;
  ModuleQuant settings;
  DType scales_dtype = DType::BF16;
  int64_t rows = 0;  // N
  int64_t cols = 0;  // K
};

// The quantized modules of a checkpoint, found by their scales tensors, with bits and group size
// worked out from the config (when present) and checked against the tensor shapes. Throws when a
// module lacks its biases, or shapes contradict the settings.
std::vector<QuantizedModuleInfo> find_quantized_modules(const std::filesystem::path& checkpoint);

// Prints a summary of a checkpoint (tensors, quantization settings, per-bits totals, size against
// bf16) to stdout.
void print_inspection(const std::filesystem::path& checkpoint, bool list_tensors);

}  // namespace afq
