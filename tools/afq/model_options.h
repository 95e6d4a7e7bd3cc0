// Options shared by the commands that run a model (generate, perplexity): which checkpoint, how
// to load it (as stored, quantized on load, dequantized) and on which device.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <string>
#include <vector>

#include "afq/model.h"
#include "afq/tokenizer.h"

namespace afq::cli {

struct ModelArgs {
  std::string model;  // empty: the model shipped with afq
  int bits = 0;       // 0: run the checkpoint as stored
  int group_size = 64;
  std::string method = "mlx";
  std::vector<std::string> exclude;
  bool dequantize = false;
  std::string device = "auto";  // auto: cuda when a device is present (and the model fits), else cpu
  int max_context = 0;
  int batch = 1;  // sequences decoded together (set by generate --batch-file, not an option)
};

void add_model_options(CLI::App* cmd, ModelArgs& args);

// The checkpoint directory the arguments name (the shipped tinyshakes-5m by default).
std::string model_dir(const ModelArgs& args);

// Loads the model as the arguments ask, printing one-line notices on stderr.
Model load_model(const ModelArgs& args);

Tokenizer load_tokenizer(const std::string& dir);

}  // namespace afq::cli
