// afq inspect PATH: tensors, quantization settings and sizes of a checkpoint.
#include <memory>

#include "afq/convert.h"
#include "commands.h"

namespace afq::cli {

void add_inspect_command(CLI::App& app) {
  struct Args {
    std::string path;
    bool summary_only = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a checkpoint's tensors, quantization and size");
  cmd->add_option("path", args->path, "Checkpoint directory or .safetensors file")->required();
  cmd->add_flag("--summary", args->summary_only, "Only the totals, not every tensor");
  cmd->callback([args] { print_inspection(args->path, !args->summary_only); });
}

}  // namespace afq::cli
