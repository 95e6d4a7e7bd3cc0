#include "model_options.h"

#include <fmt/core.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "afq/cuda.h"
#include "afq/error.h"
#include "progress.h"

namespace afq::cli {

namespace fs = std::filesystem;

void add_model_options(CLI::App* cmd, ModelArgs& a) {
  cmd->add_option("--model", a.model, "Hugging Face checkpoint directory (default: the shipped tinyshakes-5m)");
  cmd->add_option("--bits", a.bits, "Quantize a float checkpoint on load to 2, 3, 4, 5, 6 or 8 bits");
  cmd->add_option("--group-size", a.group_size, "Group size for --bits: 32, 64 or 128")->capture_default_str();
  cmd->add_option("--method", a.method, "Quantize rule for --bits: mlx or minmax")->capture_default_str();
  cmd->add_option("--exclude", a.exclude, "Modules --bits keeps in float (names, trailing parts or globs)");
  cmd->add_flag("--dequantize", a.dequantize, "Run a quantized checkpoint dequantized to float");
  cmd->add_option("--device", a.device,
                  "auto, cpu or cuda (the whole forward pass on the GPU: bf16 activations and KV cache); auto "
                  "takes the GPU when there is one and the model fits, else the CPU")
      ->capture_default_str();
  cmd->add_option("--max-context", a.max_context, "KV cache length (default: min(model maximum, 4096))");
}

std::string model_dir(const ModelArgs& a) {
  if (!a.model.empty()) return a.model;
  // The shipped model: beside the source tree this binary was built from, or ../models from it.
  if (fs::exists(AFQ_DEFAULT_MODEL)) return AFQ_DEFAULT_MODEL;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  fs::path beside = exe.parent_path().parent_path() / "models" / "tinyshakes-5m";
  if (!ec && fs::exists(beside)) return beside.string();
  throw Error("no --model given and the shipped model was not found at " + std::string(AFQ_DEFAULT_MODEL));
}

Model load_model(const ModelArgs& a) {
  if (a.device != "auto" && a.device != "cpu" && a.device != "cuda")
    throw Error("--device must be auto, cpu or cuda, got '" + a.device + "'");
  LoadOptions options;
  const bool automatic = a.device == "auto";
  options.device = a.device == "cuda" || (automatic && cuda::cuda_available()) ? Device::Cuda : Device::Cpu;
  options.max_context = a.max_context;
  options.batch = a.batch;
  options.dequantize = a.dequantize;
  options.notice = [](const std::string& line) { fmt::print(stderr, "afq: {}\n", line); };
  options.progress = terminal_progress("load");
  if (a.bits != 0) {
    auto method = parse_quant_method(a.method);
    if (!method) throw Error("--method must be mlx or minmax, got '" + a.method + "'");
    check_bits(a.bits);
    check_group_size(a.group_size);
    options.quantize = QuantizeOnLoad{a.bits, a.group_size, *method, a.exclude};
  }
  if (a.bits != 0 && a.dequantize) throw Error("--bits and --dequantize ask for opposite things; give one");
  if (!automatic || options.device == Device::Cpu) return Model::load(model_dir(a), options);
  try {
    return Model::load(model_dir(a), options);
  } catch (const DeviceError& e) {
    // Only what the GPU refused (no room, no usable device); a bad checkpoint fails on the CPU too.
    options.notice("the GPU cannot take this model (" + std::string(e.what()) + "); running on the CPU");
    options.device = Device::Cpu;
    return Model::load(model_dir(a), options);
  }
}

Tokenizer load_tokenizer(const std::string& dir) {
  const fs::path config = fs::path(dir) / "tokenizer_config.json";
  return Tokenizer::from_file(fs::path(dir) / "tokenizer.json", fs::exists(config) ? config : fs::path());
}

}  // namespace afq::cli
