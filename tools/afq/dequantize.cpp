// afq dequantize IN_DIR OUT_DIR: a quantized checkpoint (either layout) -> a float one.
#include <fmt/core.h>

#include <memory>

#include "afq/convert.h"
#include "afq/error.h"
#include "commands.h"
#include "progress.h"

namespace afq::cli {

void add_dequantize_command(CLI::App& app) {
  struct Args {
    std::string in, out, dtype;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("dequantize", "Turn a quantized checkpoint back into a float one");
  cmd->add_option("in", args->in, "Quantized checkpoint directory (mlx-lm or transformers layout)")->required();
  cmd->add_option("out", args->out, "Output directory (must not exist)")->required();
  cmd->add_option("--dtype", args->dtype, "bf16, f16 or f32 (default: the dtype of the scales)");
  cmd->callback([args] {
    DequantizeOptions options;
    if (!args->dtype.empty()) {
      options.dtype = parse_float_dtype(args->dtype);
      if (!options.dtype) throw Error("--dtype must be bf16, f16 or f32, got '" + args->dtype + "'");
    }
    options.progress = terminal_progress("dequantize");
    ConversionSummary s = dequantize_checkpoint(args->in, args->out, options);
    fmt::print("dequantized {} modules: {:.1f} MB -> {:.1f} MB in {}\n", s.modules_quantized, s.bytes_in / 1e6,
               s.bytes_out / 1e6, args->out);
  });
}

}  // namespace afq::cli
