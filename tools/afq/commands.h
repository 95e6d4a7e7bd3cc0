// Subcommands of the afq tool: each file defines one add_<name>_command.
#pragma once

#include <CLI/CLI.hpp>

namespace afq::cli {

void add_inspect_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_dequantize_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_bench_generate_command(CLI::App& bench);  // a subcommand of bench
void add_generate_command(CLI::App& app);
void add_perplexity_command(CLI::App& app);

inline void register_commands(CLI::App& app) {
  add_generate_command(app);
  add_inspect_command(app);
  add_quantize_command(app);
  add_dequantize_command(app);
  add_perplexity_command(app);
  add_bench_command(app);
}

}  // namespace afq::cli
