// afq quantize IN_DIR OUT_DIR: a float Hugging Face checkpoint -> a quantized one.
#include <fmt/core.h>

#include <memory>

#include "afq/convert.h"
#include "afq/error.h"
#include "commands.h"
#include "progress.h"

namespace afq::cli {

void add_quantize_command(CLI::App& app) {
  struct Args {
    std::string in, out, method = "mlx", layout = "mlx";
    QuantizeOptions options;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("quantize", "Quantize a float Hugging Face checkpoint (safetensors)");
  cmd->add_option("in", args->in, "Input checkpoint directory")->required();
  cmd->add_option("out", args->out, "Output directory (must not exist)")->required();
  cmd->add_option("--bits", args->options.bits, "Bits per weight: 2, 3, 4, 5, 6 or 8")->capture_default_str();
  cmd->add_option("--group-size", args->options.group_size, "Weights per scale/bias: 32, 64 or 128")
      ->capture_default_str();
  cmd->add_option("--method", args->method, "mlx (MLX's rule) or minmax (transformers' rule)")->capture_default_str();
  cmd->add_option("--layout", args->layout, "mlx (mlx-lm: 'biases') or transformers (MetalConfig: 'qbiases')")
      ->capture_default_str();
  cmd->add_option("--exclude", args->options.exclude, "Modules to keep in float (names, trailing parts or globs)");
  cmd->add_flag("--quantize-embeddings", args->options.quantize_embeddings,
                "Also quantize the input embedding and lm_head, as mlx-lm does (mlx layout)");
  cmd->add_option("--max-shard-gb", [args](const CLI::results_t& r) {
        double gb = std::stod(r.at(0));
        if (!(gb > 0)) return false;
        args->options.max_shard_bytes = static_cast<uint64_t>(gb * (1ull << 30));
        return true;
      }, "Largest shard in GiB (default 5)");
  cmd->callback([args] {
    auto method = parse_quant_method(args->method);
    if (!method) throw Error("--method must be mlx or minmax, got '" + args->method + "'");
    auto layout = parse_layout(args->layout);
    if (!layout) throw Error("--layout must be mlx or transformers, got '" + args->layout + "'");
    args->options.method = *method;
    args->options.layout = *layout;
    args->options.progress = terminal_progress("quantize");
    ConversionSummary s = quantize_checkpoint(args->in, args->out, args->options);
    fmt::print("quantized {} linear layers to {} bits (group size {}, {} rule, {} layout): {:.1f} MB -> {:.1f} MB in {}\n",
               s.modules_quantized, args->options.bits, args->options.group_size, args->method, args->layout,
               s.bytes_in / 1e6, s.bytes_out / 1e6, args->out);
  });
}

}  // namespace afq::cli
